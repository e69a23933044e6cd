//! Load generator: throughput and latency of swap and mint against a real coinslotd on
//! loopback, next to a baseline (`GET /v1/info`) measured in the same run.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin coinslot-load -- --seconds 10 --concurrency 16
//! ```
//!
//! Without `--url` it starts coinslotd in-process on 127.0.0.1:0 (sled store in a temp dir,
//! fake backend); `--memory` serves the same mint API over an in-memory store instead, which
//! shows what durability costs. Swap workers each chain 1-proof → 1-proof swaps, so every request spends a
//! fresh proof and writes durably. Mint workers each run quote + mint of one 1-sat output.

use std::time::{Duration, Instant};

use clap::Parser;
use coinslot_tests::load::{print_table, run_phase};
use coinslot_tests::raw::RawClient;
use coinslot_tests::TestServer;

#[derive(Debug, Parser)]
struct Args {
    /// Mint to load (default: an in-process coinslotd on 127.0.0.1:0).
    #[arg(long)]
    url: Option<String>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Serve the in-process mint from memory instead of sled (no durability; comparison only).
    #[arg(long)]
    memory: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut server = None;
    let url = match (&args.url, args.memory) {
        (Some(url), _) => url.clone(),
        (None, true) => serve_from_memory().await?,
        (None, false) => {
            // One load generator is one client address: per-IP rate limits would measure
            // the limiter, not the mint.
            let mut config = coinslotd::Config::with_data_dir(dir.path());
            config.limits.per_ip_per_minute = 0;
            let started = TestServer::start_with(config).await?;
            let url = started.url.clone();
            server = Some(started);
            url
        }
    };
    let client = RawClient::new(&url);
    let keyset = client
        .active_keyset(&coinslot_mint::cashu::nuts::CurrencyUnit::Sat)
        .await?;
    let duration = Duration::from_secs(args.seconds);

    let baseline = run_phase("info (baseline)", args.concurrency, |_| {
        let client = client.clone();
        async move {
            let mut lat = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let t = Instant::now();
                let (status, _) = client.get("/v1/info").await?;
                anyhow::ensure!(status == 200, "info failed");
                lat.push(t.elapsed());
            }
            Ok(lat)
        }
    })
    .await?;

    let mut seeds = Vec::new();
    for _ in 0..args.concurrency {
        seeds.push(client.topup(1).await?);
    }
    let seeds = std::sync::Arc::new(parking_lot::Mutex::new(seeds));
    let swap = run_phase("swap 1→1", args.concurrency, |_| {
        let client = client.clone();
        let seeds = seeds.clone();
        let keyset = keyset.clone();
        async move {
            let mut proofs = seeds
                .lock()
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no seed"))?;
            let mut lat = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let t = Instant::now();
                let (status, body, fresh) = client.swap_with(&keyset, proofs).await?;
                anyhow::ensure!(status == 200, "swap failed: {body}");
                proofs = fresh.ok_or_else(|| anyhow::anyhow!("no proofs"))?;
                lat.push(t.elapsed());
            }
            Ok(lat)
        }
    })
    .await?;

    let mint = run_phase("mint (quote + mint)", args.concurrency, |_| {
        let client = client.clone();
        let keyset = keyset.clone();
        async move {
            let mut lat = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let t = Instant::now();
                client.topup_with(&keyset, 1).await?;
                lat.push(t.elapsed());
            }
            Ok(lat)
        }
    })
    .await?;

    println!(
        "coinslot-load: {} clients, {} s per phase, {url}{}",
        args.concurrency,
        args.seconds,
        if args.memory {
            " (in-memory store)"
        } else {
            ""
        }
    );
    print_table(&baseline, &[&baseline, &swap, &mint]);
    if let Some(server) = server {
        server.stop().await?;
    }
    Ok(())
}

/// The mint API over a `MemoryStore`, on 127.0.0.1:0, for the rest of the process.
async fn serve_from_memory() -> anyhow::Result<String> {
    let mint = coinslot_tests::load::memory_mint().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = coinslot_http::router(mint, coinslot_http::HttpOptions::default());
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("in-memory server failed: {err}");
        }
    });
    Ok(url)
}
