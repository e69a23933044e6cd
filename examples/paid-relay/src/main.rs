//! `paid-relay`: run the example relay.
//!
//! ```text
//! cargo run --release -p paid-relay -- --listen 127.0.0.1:7777 --data-dir ./paid-relay-data
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// A nostr relay that charges 1 sat per post in Cashu ecash; reading is free.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// Where the mint keeps its seed and store.
    #[arg(long, default_value = "paid-relay-data")]
    data_dir: PathBuf,
    /// The URL clients use to reach this server (default: http://<listen>); the relay is
    /// the same URL with ws:// or wss://.
    #[arg(long)]
    public_url: Option<String>,
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
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let opened = paid_relay::open(&args.data_dir)
        .await
        .with_context(|| format!("cannot open the mint in {}", args.data_dir.display()))?;
    println!(
        "paid-relay: relay at {} (mint at {public_url}, {})",
        paid_relay::relay_url(&public_url),
        opened.embedded.mint.npub()?,
    );
    paid_relay::serve(listener, opened, &public_url, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
