//! `paid-proxy`: run the example.
//!
//! ```text
//! cargo run --release -p paid-proxy -- --listen 127.0.0.1:8080 --proxy-listen 127.0.0.1:8081 --data-dir ./paid-proxy-data
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// A forward proxy (HTTP and SOCKS5 on one port) sold by the minute in Cashu ecash.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the mint's API and the pass shop (`POST /pass`) listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the proxy listens (HTTP CONNECT, absolute-form and SOCKS5 on this one port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    proxy_listen: SocketAddr,
    /// Where the mint keeps its seed and store.
    #[arg(long, default_value = "paid-proxy-data")]
    data_dir: PathBuf,
    /// The URL clients use to reach the mint (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,
    /// Price of a minute, in sat.
    #[arg(long, default_value_t = 1)]
    price: u64,
    /// Seconds in a minute: keep 60, or shorten it to watch a pass run out.
    #[arg(long, default_value_t = 60)]
    minute_secs: u64,
    /// Also serve a small site to browse through the proxy (`/clock` ticks every second).
    #[arg(long)]
    demo_site: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen: cannot listen on {}", args.listen))?;
    let proxy = tokio::net::TcpListener::bind(args.proxy_listen)
        .await
        .with_context(|| format!("--proxy-listen: cannot listen on {}", args.proxy_listen))?;
    let addr = listener.local_addr()?;
    let proxy_addr = proxy.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let options = paid_proxy::Options {
        listen: addr,
        proxy_listen: proxy_addr,
        data_dir: args.data_dir.clone(),
        price: args.price,
        minute_secs: args.minute_secs,
    };
    let config = paid_proxy::config(&options, &public_url);
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let site = match args.demo_site {
        Some(site) => {
            let site = tokio::net::TcpListener::bind(site)
                .await
                .with_context(|| format!("--demo-site: cannot listen on {site}"))?;
            Some((site.local_addr()?, site))
        }
        None => None,
    };
    let (price, minute_secs) = (args.price, args.minute_secs);
    let opened = Arc::new(AtomicBool::new(false));
    let ready = opened.clone();
    let listeners = coinslotd::Listeners::new(listener)
        .forward(proxy)
        .on_ready(move |_| {
            ready.store(true, Ordering::Relaxed);
            // Printed only once the mint is open, as the binary `coinslotd` does.
            if let Some((addr, site)) = site {
                println!("paid-proxy: demo site on http://{addr}");
                tokio::spawn(async move {
                    let _ = axum::serve(site, paid_proxy::demo_site()).await;
                });
            }
            println!("paid-proxy: mint and pass shop on {public_url} (POST {public_url}/pass)");
            println!(
                "paid-proxy: proxy (HTTP and SOCKS5) on {proxy_addr}, {price} sat per {minute_secs}-second minute"
            );
        });
    coinslotd::run(listeners, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|err| {
        if opened.load(Ordering::Relaxed) {
            err
        } else {
            err.context(format!(
                "cannot open the mint in {}",
                args.data_dir.display()
            ))
        }
    })
}
