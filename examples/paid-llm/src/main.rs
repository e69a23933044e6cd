//! `paid-llm`: run the example.
//!
//! ```text
//! cargo run --release -p paid-llm -- --listen 127.0.0.1:8080 --data-dir ./paid-llm-data
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// An OpenAI-compatible chat API paid per token in Cashu ecash, the token as the API key.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the mint and the paid API listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the mint keeps its seed and store.
    #[arg(long, default_value = "paid-llm-data")]
    data_dir: PathBuf,
    /// The URL clients use to reach the server (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,
    /// Milliseconds before each streamed word of the stand-in chat API.
    #[arg(long, default_value_t = 40)]
    word_delay_ms: u64,
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
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let delay = Duration::from_millis(args.word_delay_ms);
    let upstream = paid_llm::spawn_upstream(delay).await?;
    let options = paid_llm::Options {
        listen: addr,
        data_dir: args.data_dir.clone(),
        delay,
    };
    let config = paid_llm::config(&options, &public_url, &upstream);
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let opened = Arc::new(AtomicBool::new(false));
    let ready = opened.clone();
    let listeners = coinslotd::Listeners::new(listener).on_ready(move |_| {
        ready.store(true, Ordering::Relaxed);
        // Printed only once the mint is open.
        println!(
            "paid-llm: mint and OpenAI-compatible API on {public_url} (base URL {public_url}/v1)"
        );
        println!("paid-llm: key balance at {public_url}/cashu/balance");
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
