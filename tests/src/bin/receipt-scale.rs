//! Benchmark of the sled store's paid-request writes as its receipts pile up: each operation
//! is what a paid request asks of the store (a spend with its new receipt, durable, then the
//! run's answer written lazily into that receipt), first on an empty store, then on one
//! holding `--receipts` older receipts of paid requests (what a day's retention keeps), and
//! how long the full store takes to open. The writers run on the load client's runtime, so
//! the server column is the store's own threads: the batch thread, which moves receipts
//! into sled, and sled's.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin receipt-scale -- --receipts 2000000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot::crates::store_sled::SledStore;
use coinslot_mint::cashu::nuts::SecretKey;
use coinslot_mint::store::{AnswerWrite, Commit, ReceiptWrite, SpentProof};
use coinslot_mint::{MintStore, ReceiptGuard};
use coinslot_tests::load::{dir_bytes, print_table, run_phase};

#[derive(Debug, Parser)]
struct Args {
    /// Receipts in the full store.
    #[arg(long, default_value_t = 2_000_000)]
    receipts: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Bytes of each receipt's data (a paid run's record is about this size).
    #[arg(long, default_value_t = 160)]
    data_bytes: usize,
    /// Bytes of each run's answer.
    #[arg(long, default_value_t = 512)]
    answer_bytes: usize,
}

/// Pays until `until` or `count` payments, whichever comes first: a spend with its receipt
/// made `age` seconds ago, then the run's answer into it.
async fn payer(
    store: Arc<SledStore>,
    args: Arc<Args>,
    until: Instant,
    count: usize,
    age: u64,
) -> anyhow::Result<Vec<Duration>> {
    let keyset = "009a1f293253e41e".parse()?;
    let (data, answer) = (vec![7u8; args.data_bytes], vec![9u8; args.answer_bytes]);
    let mut latencies = Vec::new();
    while Instant::now() < until && latencies.len() < count {
        let proof = SpentProof {
            y: SecretKey::generate().public_key(),
            keyset_id: keyset,
            amount: 1,
        };
        let key = SecretKey::generate().to_secret_bytes();
        let created_at = coinslot_mint::unix_now() - age;
        let start = Instant::now();
        let write = |guard| ReceiptWrite {
            key: &key,
            created_at,
            data: &data,
            guard,
        };
        store
            .commit(Commit {
                spend: std::slice::from_ref(&proof),
                receipt: Some(write(ReceiptGuard::OfInputs)),
                ..Commit::default()
            })
            .await?;
        store
            .commit(Commit {
                receipt: Some(write(ReceiptGuard::Version(1))),
                answer: Some(AnswerWrite {
                    key: &key,
                    expires_at: created_at + 3600,
                    data: &answer,
                }),
                lazy: true,
                ..Commit::default()
            })
            .await?;
        latencies.push(start.elapsed());
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SledStore::open(dir.path())?);
    let measure = |name: &'static str| {
        let (store, args) = (store.clone(), args.clone());
        async move {
            let until = Instant::now() + Duration::from_secs(args.seconds);
            run_phase(name, args.concurrency, |_| {
                payer(store.clone(), args.clone(), until, usize::MAX, 0)
            })
            .await
        }
    };
    let empty = measure("(a) paid, empty store").await?;
    // The fill pays as the phases do, an hour earlier: the store a day of paid requests
    // leaves, not receipts written some other way.
    let start = Instant::now();
    let per_writer = args.receipts.div_ceil(args.concurrency);
    let never = Instant::now() + Duration::from_secs(86_400);
    run_phase("fill", args.concurrency, |_| {
        payer(store.clone(), args.clone(), never, per_writer, 3600)
    })
    .await?;
    store.flush().await?;
    let filled = start.elapsed();
    eprintln!(
        "receipt-scale: {} paid receipts written in {:.1} s ({:.0}/s), store {:.0} MB",
        args.receipts,
        filled.as_secs_f64(),
        args.receipts as f64 / filled.as_secs_f64(),
        dir_bytes(dir.path())? as f64 / 1e6
    );
    let full = measure("(b) paid, store full").await?;
    print_table(&empty, &[&empty, &full]);
    println!(
        "p99 full vs empty: {:.2}×; server CPU full vs empty: {}",
        full.p99.as_secs_f64() / empty.p99.as_secs_f64(),
        match (full.server_cpu_per_op, empty.server_cpu_per_op) {
            (Some(f), Some(e)) if !e.is_zero() => {
                format!("{:.2}×", f.as_secs_f64() / e.as_secs_f64())
            }
            _ => "-".into(),
        }
    );
    // A restart reads the index of the pages back from their keys.
    drop(store);
    let start = Instant::now();
    let store = SledStore::open(dir.path())?;
    println!(
        "reopened with {} receipts in {:.2} s",
        args.receipts,
        start.elapsed().as_secs_f64()
    );
    drop(store);
    Ok(())
}
