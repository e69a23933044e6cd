//! `paid-search`: run the example server.
//!
//! ```text
//! cargo run --release -p paid-search -- --listen 127.0.0.1:8080 --data-dir ./paid-search-data
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// A search API that charges 2 sat per query in Cashu ecash.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the mint keeps its seed and store.
    #[arg(long, default_value = "paid-search-data")]
    data_dir: PathBuf,
    /// The URL clients use to reach this server (default: http://<listen>).
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
    let embedded = paid_search::open(&args.data_dir)
        .await
        .with_context(|| format!("cannot open the mint in {}", args.data_dir.display()))?;
    println!("paid-search: listening on http://{addr} (mint at {public_url})");
    paid_search::serve(listener, embedded, &public_url, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
