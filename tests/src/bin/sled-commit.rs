//! Benchmark of durable commits on the sled store, both modes in one run on the same disk:
//!
//! - (a) one flush per operation: commits go one at a time, each waiting for its own fsync
//!   (what a store that flushes inside every commit does);
//! - (b) group commit, as `SledStore` does: concurrent commits share one fsync.
//!
//! Both acknowledge a spend only once it is on disk. Each operation spends one fresh proof.
//! Since issue #25 a spend in (b) goes through the store's batching thread (one transaction and
//! one flush for every spend waiting). The writers run on the load client's runtime, so their
//! own CPU shows in its column and the store's threads in the server's.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin sled-commit -- --seconds 5 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot::crates::store_sled::SledStore;
use coinslot_mint::cashu::nuts::SecretKey;
use coinslot_mint::store::{Commit, SpentProof};
use coinslot_mint::MintStore;
use coinslot_tests::load::{print_table, run_phase};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per mode.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// Spends fresh proofs until `until`; with `one_at_a_time`, commits take turns.
async fn writer(
    store: Arc<SledStore>,
    turn: Option<Arc<tokio::sync::Mutex<()>>>,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let keyset = "009a1f293253e41e".parse()?;
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let proof = SpentProof {
            y: SecretKey::generate().public_key(),
            keyset_id: keyset,
            amount: 1,
        };
        let start = Instant::now();
        let _turn = match &turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        };
        store
            .commit(Commit {
                spend: std::slice::from_ref(&proof),
                ..Commit::default()
            })
            .await?;
        latencies.push(start.elapsed());
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phase = Duration::from_secs(args.seconds);
    let mut phases = Vec::new();
    for (name, one_at_a_time) in [
        ("(a) one flush per operation", true),
        ("(b) group commit", false),
    ] {
        let dir = tempfile::tempdir()?;
        let store = Arc::new(SledStore::open(dir.path())?);
        let turn = one_at_a_time.then(|| Arc::new(tokio::sync::Mutex::new(())));
        let until = Instant::now() + phase;
        let measured = run_phase(name, args.concurrency, |_| {
            writer(store.clone(), turn.clone(), until)
        })
        .await?;
        phases.push(measured);
    }
    print_table(&phases[0], &[&phases[0], &phases[1]]);
    Ok(())
}
