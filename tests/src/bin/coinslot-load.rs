//! Load generator: throughput, latency and server CPU of swap and mint against a real
//! coinslotd on loopback, next to a baseline (`GET /v1/info`) measured in the same run, and
//! optionally the same swap load against another mint (e.g. cdk-mintd) in the same run.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin coinslot-load -- --seconds 10 --concurrency 16
//! cargo run --release -p coinslot-tests --bin coinslot-load -- \
//!     --compare http://127.0.0.1:8085 --compare-pid "$(pgrep -n cdk-mintd)"
//! ```
//!
//! Without `--url` it starts coinslotd in-process on 127.0.0.1:0 (sled store in a temp dir,
//! fake backend, per-address rate limit off: one load generator is one client address);
//! `--memory` serves the same mint API over an in-memory store instead, which shows what
//! durability costs. Swap workers each chain 1-proof → 1-proof swaps, so every request
//! spends a fresh proof and writes durably. Mint workers each run quote + mint of one 1-sat
//! output. The load client runs on threads of its own, so the server's CPU per operation
//! is printed apart from the client's (for a mint in another process, give its pid).

use std::time::{Duration, Instant};

use clap::Parser;
use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_tests::load::{print_table, run_phase, set_server_pid, swap_again, Phase};
use coinslot_tests::raw::RawClient;
use coinslot_tests::TestServer;

#[derive(Debug, Parser)]
struct Args {
    /// Mint to load (default: an in-process coinslotd on 127.0.0.1:0).
    #[arg(long)]
    url: Option<String>,
    /// Process id of the mint at `--url`, to read its CPU time.
    #[arg(long, requires = "url")]
    url_pid: Option<u32>,
    /// Another mint to run the same info and swap phases against, in the same run.
    #[arg(long)]
    compare: Option<String>,
    /// Process id of the `--compare` mint, to read its CPU time.
    #[arg(long, requires = "compare")]
    compare_pid: Option<u32>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Serve the in-process mint from memory instead of sled (no durability; comparison only).
    #[arg(long)]
    memory: bool,
    /// Serve the in-process mint from this PostgreSQL database instead of sled (a schema of
    /// its own, dropped at the end).
    #[arg(long, conflicts_with_all = ["url", "memory"])]
    postgres_url: Option<String>,
    /// Only the swap phase (and its baseline), for profiling.
    #[arg(long)]
    swap_only: bool,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let schema = format!("load_{:012x}", rand::random::<u64>() >> 16);
    let mut server = None;
    let url = match (&args.url, args.memory) {
        (Some(url), _) => url.clone(),
        (None, true) => serve_from_memory().await?,
        (None, false) => {
            let mut config = coinslotd::Config::with_data_dir(dir.path());
            config.limits.per_ip_per_minute = 0;
            if let Some(pg) = &args.postgres_url {
                config.store.url = Some(pg.clone());
                config.store.schema = Some(schema.clone());
            }
            let started = TestServer::start_with(config).await?;
            let url = started.url.clone();
            server = Some(started);
            url
        }
    };
    let duration = Duration::from_secs(args.seconds);

    set_server_pid(args.url_pid);
    let mut ours = measure(&url, &args, duration, !args.swap_only).await?;
    if args.url.is_some() && args.url_pid.is_none() {
        ours.forget_server_cpu(); // in another process whose pid we were not given
    }
    let theirs = match &args.compare {
        Some(other) => {
            set_server_pid(args.compare_pid);
            let mut theirs = measure(other, &args, duration, false).await?;
            set_server_pid(None);
            if args.compare_pid.is_none() {
                theirs.forget_server_cpu();
            }
            Some(theirs)
        }
        None => None,
    };

    println!(
        "coinslot-load: {} clients, {} s per phase, {url}{}",
        args.concurrency,
        args.seconds,
        if args.memory {
            " (in-memory store)"
        } else if args.postgres_url.is_some() {
            " (PostgreSQL store)"
        } else {
            ""
        }
    );
    let mut phases = vec![&ours.info, &ours.swap];
    phases.extend(ours.mint.as_ref());
    print_table(&ours.info, &phases);
    if let (Some(theirs), Some(other)) = (&theirs, &args.compare) {
        println!("\nthe same load against {other}:");
        print_table(&theirs.info, &[&theirs.info, &theirs.swap]);
        println!(
            "\nswap 1→1: {url} does {:.2}× the swaps/s of {other} (p99 {:.2} ms vs {:.2} ms)",
            ours.swap.rps / theirs.swap.rps,
            ours.swap.p99.as_secs_f64() * 1e3,
            theirs.swap.p99.as_secs_f64() * 1e3,
        );
    }
    if let Some(server_cpu) = ours.swap.server_cpu_per_op {
        use coinslot_tests::load::{swap_crypto_us, HashToCurve};
        let crypto = swap_crypto_us(2000, HashToCurve::Coinslot)?;
        let cashu = swap_crypto_us(2000, HashToCurve::Cashu)?;
        let server = server_cpu.as_secs_f64() * 1e6;
        println!(
            "server CPU per swap: {server:.0} µs = {:.2}× its crypto alone ({crypto:.1} µs: \
             hash_to_curve + k·Y, k·B_, the DLEQ proof), measured here, one core \
             ({:.2}× with cashu's hash_to_curve, {cashu:.1} µs)",
            server / crypto,
            server / cashu
        );
    }
    if let Some(server) = server {
        server.stop().await?;
    }
    if let Some(pg) = &args.postgres_url {
        let store = coinslot_store_postgres::PostgresStore::connect(pg, Default::default()).await?;
        store
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
    }
    Ok(())
}

/// The phases measured against one mint.
struct Measured {
    info: Phase,
    swap: Phase,
    mint: Option<Phase>,
}

impl Measured {
    /// Drops the server CPU figures: this process's own threads are not the mint's.
    fn forget_server_cpu(&mut self) {
        for phase in [&mut self.info, &mut self.swap]
            .into_iter()
            .chain(self.mint.as_mut())
        {
            phase.server_cpu_per_op = None;
        }
    }
}

async fn measure(
    url: &str,
    args: &Args,
    duration: Duration,
    with_mint: bool,
) -> anyhow::Result<Measured> {
    let client = RawClient::new(url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await?;
    let info = run_phase("info (baseline)", args.concurrency, |_| {
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
        seeds.push(client.topup_with(&keyset, 1).await?);
    }
    let seeds = std::sync::Arc::new(parking_lot::Mutex::new(seeds));
    // A mark for a profiler to attach at (`perf record -p`).
    eprintln!("swaps start: pid {}", std::process::id());
    let swap = run_phase("swap 1→1", args.concurrency, |_| {
        let (client, seeds, keyset) = (client.clone(), seeds.clone(), keyset.clone());
        async move {
            let proofs = seeds
                .lock()
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no seed"))?;
            swap_again(&client, &keyset, proofs, Instant::now() + duration).await
        }
    })
    .await?;

    let mint = if with_mint {
        Some(
            run_phase("mint (quote + mint)", args.concurrency, |_| {
                let (client, keyset) = (client.clone(), keyset.clone());
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
            .await?,
        )
    } else {
        None
    };
    Ok(Measured { info, swap, mint })
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
