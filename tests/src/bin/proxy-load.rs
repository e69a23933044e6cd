//! Benchmark of `coinslotd` as a paid reverse proxy on loopback, all phases in one run:
//!
//! - (a) the sample upstream called directly (baseline),
//! - (b) through coinslotd on a free route (routing, limits, metrics, forwarding),
//! - (c) through coinslotd, paid from a prepaid session,
//! - (d) through coinslotd, paid with a fresh one-proof token (verify + one durable write).
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin proxy-load -- --seconds 5 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use coinslot_tests::load::{hammer, open_sessions, premade_tokens, print_table, serve_in_process};
use coinslot_tests::proxy::{upstream_app, upstream_config, Signals};
use parking_lot::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phase_time = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir()?;

    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = format!("http://{}", upstream_listener.local_addr()?);
    let app = upstream_app(Signals::default());
    tokio::spawn(async move { axum::serve(upstream_listener, app).await });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.public_url = Some(url.clone());
    // One load generator is one client address: a per-IP limit would measure the limiter.
    config.limits.per_ip_per_minute = 0;
    config.limits.per_session_per_minute = 0;
    config.proxy.upstreams = vec![upstream_config(&upstream)];
    let server = serve_in_process(coinslotd::Listeners::new(listener), config).await?;
    let mint = server.mint.clone();

    let sessions = Arc::new(open_sessions(&mint, &url, 1_000_000, args.concurrency).await?);
    // The route costs 2: one proof of 2 per request.
    let wanted = (args.seconds as usize * 4000).max(1000);
    let tokens = Arc::new(Mutex::new(premade_tokens(&mint, &url, 2, wanted).await?));

    let a = hammer(
        "(a) upstream, direct",
        phase_time,
        args.concurrency,
        format!("{upstream}/status"),
        |_| Ok(None),
    )
    .await?;
    let b = hammer(
        "(b) proxy, free route",
        phase_time,
        args.concurrency,
        format!("{url}/status"),
        |_| Ok(None),
    )
    .await?;
    let c = hammer(
        "(c) proxy, paid from a session",
        phase_time,
        args.concurrency,
        format!("{url}/search"),
        {
            let sessions = Arc::clone(&sessions);
            move |worker| Ok(Some(("x-cashu-session", sessions[worker].clone())))
        },
    )
    .await?;
    let d = hammer(
        "(d) proxy, paid with a token",
        phase_time,
        args.concurrency,
        format!("{url}/search"),
        move |_| tokens.lock().pop().map(|t| Some(("x-cashu", t))).ok_or(()),
    )
    .await?;

    println!(
        "proxy-load: {} clients, {} s per phase, sled store, loopback, upstream on the same cores",
        args.concurrency, args.seconds
    );
    print_table(&a, &[&a, &b, &c, &d]);
    println!(
        "ratios: (b)/(a) = {:.3}  (c)/(a) = {:.3}  (d)/(a) = {:.3}",
        b.rps / a.rps,
        c.rps / a.rps,
        d.rps / a.rps
    );
    server.stop().await?;
    Ok(())
}
