//! Benchmark: one `coinslotd` against two on the same PostgreSQL database, same machine,
//! same run. `--concurrency` clients chain 1-proof swaps over loopback HTTP for `--seconds`:
//! first all through one instance, then spread over two (client `i` uses instance `i % 2`).
//! Prints both phases with the two-instance throughput as a ratio of the one-instance one.
//!
//! It runs the `coinslotd` binary next to its own (build it first):
//!
//! ```text
//! cargo build --release -p coinslotd
//! cargo run --release -p coinslot-tests --bin pg-instances -- \
//!     --postgres-url postgres://postgres@127.0.0.1:5432/test
//! ```

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_store_postgres::PostgresStore;
use coinslot_tests::load::{print_table, run_phase, swap_chain, Phase};
use coinslot_tests::raw::RawClient;

#[derive(Debug, Parser)]
struct Args {
    /// The database (a schema of its own is created and dropped).
    #[arg(long, env = "COINSLOT_TEST_POSTGRES_URL")]
    postgres_url: String,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The coinslotd binary [default: next to this one].
    #[arg(long)]
    coinslotd: Option<PathBuf>,
}

struct Instance {
    child: Child,
    url: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(exe: &Path, dir: &Path, url: &str, schema: &str) -> anyhow::Result<Instance> {
    let config = dir.join("coinslotd.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nper_ip_per_minute = 0\n[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n"
        ),
    )?;
    let (child, url) = coinslot_tests::spawn_coinslotd_with(exe, dir, Some(&config))?;
    Ok(Instance { child, url })
}

async fn phase(name: &str, urls: &[&str], args: &Args) -> anyhow::Result<Phase> {
    let clients: Vec<RawClient> = urls.iter().map(|url| RawClient::new(url)).collect();
    let keyset = clients[0].active_keyset(&CurrencyUnit::Sat).await?;
    let warm = Instant::now() + Duration::from_secs(1);
    run_phase("warm-up", args.concurrency, |i| {
        swap_chain(clients[i % clients.len()].clone(), keyset.clone(), warm)
    })
    .await?;
    let until = Instant::now() + Duration::from_secs(args.seconds);
    run_phase(name, args.concurrency, |i| {
        swap_chain(clients[i % clients.len()].clone(), keyset.clone(), until)
    })
    .await
}

async fn run(exe: &Path, schema: &str, args: &Args) -> anyhow::Result<()> {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = start(exe, dir_a.path(), &args.postgres_url, schema)?;
    let one = phase("1 instance", &[&a.url], args).await?;
    // The second instance needs the same seed as the first: it signs with the same keys.
    std::fs::copy(
        dir_a.path().join(coinslot::embedded::SEED_FILE),
        dir_b.path().join(coinslot::embedded::SEED_FILE),
    )?;
    let b = start(exe, dir_b.path(), &args.postgres_url, schema)?;
    let two = phase("2 instances, one database", &[&a.url, &b.url], args).await?;
    print_table(&one, &[&one, &two]);
    println!(
        "2 instances vs 1: {:.2}x throughput, p50 {:.2}x, p99 {:.2}x",
        two.rps / one.rps,
        two.p50.as_secs_f64() / one.p50.as_secs_f64(),
        two.p99.as_secs_f64() / one.p99.as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let exe = match &args.coinslotd {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow::anyhow!("no directory for this binary"))?
            .join("coinslotd"),
    };
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: build it first (cargo build --release -p coinslotd) or pass --coinslotd",
        exe.display()
    );
    let schema = format!("instances_{:012x}", rand::random::<u64>() >> 16);
    let result = run(&exe, &schema, &args).await;
    let admin = PostgresStore::connect(&args.postgres_url, Default::default()).await?;
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    result
}
