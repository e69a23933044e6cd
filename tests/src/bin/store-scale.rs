//! Scale benchmark: does redemption slow down as spent proofs pile up?
//!
//! For each store (sled, and PostgreSQL when a database URL is given), in one run:
//! 1. a `coinslotd` on an empty store: `--concurrency` clients chain 1-proof swaps over
//!    loopback HTTP for `--seconds` (each swap looks the input up, spends it and signs);
//! 2. another store filled with `--proofs` spent proofs (10 million by default, written
//!    through the store's own commit in batches), then the same swaps on it.
//!
//! It prints the latency table with the full store against the empty one, and the bytes the
//! store uses per spent proof.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin store-scale -- --proofs 10000000 \
//!     --postgres-url postgres://postgres@127.0.0.1:5432/test
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot::crates::store_sled::SledStore;
use coinslot_mint::cashu::nuts::{CurrencyUnit, PublicKey, SecretKey};
use coinslot_mint::store::{Commit, SpentProof};
use coinslot_mint::MintStore;
use coinslot_store_postgres::{PostgresOptions, PostgresStore};
use coinslot_tests::load::{dir_bytes, print_table, run_phase, swap_chain, Phase};
use coinslot_tests::raw::RawClient;
use coinslot_tests::TestServer;

#[derive(Debug, Parser)]
struct Args {
    /// Spent proofs in the full store.
    #[arg(long, default_value_t = 10_000_000)]
    proofs: u64,
    /// Spent proofs per commit while filling.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Seconds of swaps per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// PostgreSQL database to measure too (a schema of its own is created and dropped).
    #[arg(long, env = "COINSLOT_TEST_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Skip sled.
    #[arg(long)]
    no_sled: bool,
}

async fn measure(name: &str, mut config: coinslotd::Config, args: &Args) -> anyhow::Result<Phase> {
    // All clients come from one address: no per-IP rate limit.
    config.limits.per_ip_per_minute = 0;
    let server = TestServer::start_with(config).await?;
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await?;
    // A short warm-up (connections, caches) that is not counted.
    let warm = Instant::now() + Duration::from_secs(1);
    run_phase("warm-up", args.concurrency, |_| {
        swap_chain(client.clone(), keyset.clone(), warm)
    })
    .await?;
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let phase = run_phase(name, args.concurrency, |_| {
        swap_chain(client.clone(), keyset.clone(), until)
    })
    .await?;
    server.stop().await?;
    Ok(phase)
}

/// Writes `count` spent proofs with distinct `Y`s: a producer thread walks the curve
/// (`Y += step`, far cheaper than a scalar multiplication per point) while two tasks commit.
async fn fill(store: Arc<dyn MintStore>, count: u64, batch: usize) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<SpentProof>>(4);
    let producer = std::thread::spawn(move || -> anyhow::Result<()> {
        let keyset = "009a1f293253e41e".parse()?;
        let step = SecretKey::generate().public_key();
        let mut y = SecretKey::generate().public_key();
        let mut left = count;
        while left > 0 {
            let n = left.min(batch as u64);
            let mut proofs = Vec::with_capacity(n as usize);
            for _ in 0..n {
                y = PublicKey::from(y.combine(&step)?);
                proofs.push(SpentProof {
                    y,
                    keyset_id: keyset,
                    amount: 1,
                });
            }
            left -= n;
            if tx.blocking_send(proofs).is_err() {
                break;
            }
        }
        Ok(())
    });
    let rx = tokio::sync::Mutex::new(rx);
    let written = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    let committer = || async {
        loop {
            let Some(proofs) = rx.lock().await.recv().await else {
                return anyhow::Ok(());
            };
            store
                .commit(Commit {
                    spend: &proofs,
                    ..Commit::default()
                })
                .await?;
            let before =
                written.fetch_add(proofs.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let after = before + proofs.len() as u64;
            if after / 1_000_000 != before / 1_000_000 {
                eprintln!(
                    "  {} M spent proofs written ({:.0}/s)",
                    after / 1_000_000,
                    after as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
    };
    let (a, b) = tokio::join!(committer(), committer());
    a?;
    b?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the point producer panicked"))??;
    Ok(())
}

/// `10 M`, `200 k`.
fn count(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{} M", n / 1_000_000)
    } else {
        format!("{} k", n / 1_000)
    }
}

fn report(store: &str, empty: &Phase, full: &Phase, bytes: u64, proofs: u64) {
    println!("\n{store}:");
    print_table(empty, &[empty, full]);
    println!(
        "p50 {:.2}x, p99 {:.2}x of the empty store; {:.1} bytes per spent proof ({:.2} GB for {})",
        full.p50.as_secs_f64() / empty.p50.as_secs_f64(),
        full.p99.as_secs_f64() / empty.p99.as_secs_f64(),
        bytes as f64 / proofs as f64,
        bytes as f64 / 1e9,
        count(proofs)
    );
}

async fn sled(args: &Args) -> anyhow::Result<()> {
    let empty_dir = tempfile::tempdir()?;
    let empty = measure(
        "sled, empty store",
        coinslotd::Config::with_data_dir(empty_dir.path()),
        args,
    )
    .await?;

    let full_dir = tempfile::tempdir()?;
    let store_dir = full_dir.path().join(coinslot::embedded::STORE_DIR);
    let before;
    {
        let store = Arc::new(SledStore::open(&store_dir)?);
        store.flush().await?;
        before = dir_bytes(&store_dir)?;
        eprintln!("sled: writing {} spent proofs", args.proofs);
        fill(store.clone(), args.proofs, args.batch).await?;
        store.flush().await?;
    }
    let bytes = dir_bytes(&store_dir)?.saturating_sub(before);
    // Opening reads every spent proof into the store's index: what a restart costs.
    let opening = Instant::now();
    drop(SledStore::open(&store_dir)?);
    eprintln!(
        "sled: opened with {} spent proofs in {:.2} s",
        count(args.proofs),
        opening.elapsed().as_secs_f64()
    );
    let name = format!("sled, {} spent", count(args.proofs));
    let full = measure(
        &name,
        coinslotd::Config::with_data_dir(full_dir.path()),
        args,
    )
    .await?;
    report("sled", &empty, &full, bytes, args.proofs);
    Ok(())
}

async fn postgres(url: &str, args: &Args) -> anyhow::Result<()> {
    let run = format!("{:012x}", rand::random::<u64>() >> 16);
    let (empty_schema, full_schema) = (format!("scale_empty_{run}"), format!("scale_full_{run}"));
    let config = |dir: &Path, schema: &str| {
        let mut config = coinslotd::Config::with_data_dir(dir);
        config.store.url = Some(url.to_string());
        config.store.schema = Some(schema.to_string());
        config
    };
    let empty_dir = tempfile::tempdir()?;
    let empty = measure(
        "postgres, empty store",
        config(empty_dir.path(), &empty_schema),
        args,
    )
    .await;

    let full_dir = tempfile::tempdir()?;
    let options = PostgresOptions {
        schema: Some(full_schema.clone()),
        ..PostgresOptions::default()
    };
    let store = Arc::new(PostgresStore::connect(url, options).await?);
    eprintln!("postgres: writing {} spent proofs", args.proofs);
    let filled = fill(store.clone(), args.proofs, args.batch).await;
    let result = match (empty, filled) {
        (Ok(empty), Ok(())) => {
            store.execute_unprepared("VACUUM ANALYZE spent").await?;
            let bytes = store
                .table_bytes()
                .await?
                .into_iter()
                .find(|(table, _)| table == "spent")
                .map(|(_, bytes)| bytes)
                .unwrap_or_default();
            let name = format!("postgres, {} spent", count(args.proofs));
            let full = measure(&name, config(full_dir.path(), &full_schema), args).await;
            full.map(|full| {
                report(
                    "postgres (spent table and its index)",
                    &empty,
                    &full,
                    bytes,
                    args.proofs,
                )
            })
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    for schema in [&empty_schema, &full_schema] {
        store
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
    }
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.proofs >= 1, "--proofs: at least 1");
    if !args.no_sled {
        sled(&args).await?;
    }
    match &args.postgres_url {
        Some(url) => postgres(url, &args).await?,
        None => {
            eprintln!("postgres skipped: pass --postgres-url or set COINSLOT_TEST_POSTGRES_URL")
        }
    }
    Ok(())
}
