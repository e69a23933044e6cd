//! Shared parts of the load generators: run a phase with N concurrent workers, summarise
//! latencies, print a table with ratios against a baseline measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One measured phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// What was measured.
    pub name: String,
    /// Requests completed.
    pub ops: usize,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU time of this whole process (server and load client: they share it) per request,
    /// when it was measured.
    pub cpu_per_op: Option<Duration>,
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`; `None`
/// where there is no procfs.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // procfs counts in USER_HZ, 100 per second on every Linux architecture we build for.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Summarises the latencies of one phase.
pub fn summarize(name: &str, mut latencies: Vec<Duration>, elapsed: Duration) -> Phase {
    latencies.sort();
    let at = |q: f64| {
        let idx = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(idx).copied().unwrap_or_default()
    };
    Phase {
        name: name.to_string(),
        ops: latencies.len(),
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        cpu_per_op: None,
    }
}

/// Runs `make(i)` for `concurrency` workers at once; each returns its latencies.
pub async fn run_phase<F, Fut>(name: &str, concurrency: usize, make: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let cpu_before = process_cpu();
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency).map(|i| tokio::spawn(make(i))).collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let mut phase = summarize(name, all, start.elapsed());
    if let (Some(before), Some(after)) = (cpu_before, process_cpu()) {
        phase.cpu_per_op = (phase.ops > 0).then(|| after.saturating_sub(before) / phase.ops as u32);
    }
    Ok(phase)
}

/// Prints phases as a table, each with its throughput relative to `baseline` and the
/// process's CPU per request (server and client together, the same client in every phase).
pub fn print_table(baseline: &Phase, phases: &[&Phase]) {
    println!(
        "{:<34} {:>8} {:>10} {:>9} {:>9} {:>12} {:>10}",
        "phase", "ops", "req/s", "p50 ms", "p99 ms", "vs baseline", "cpu µs/op"
    );
    for phase in phases {
        println!(
            "{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>12.3} {:>10}",
            phase.name,
            phase.ops,
            phase.rps,
            phase.p50.as_secs_f64() * 1e3,
            phase.p99.as_secs_f64() * 1e3,
            phase.rps / baseline.rps,
            phase.cpu_per_op.map_or_else(
                || "-".to_string(),
                |cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6)
            )
        );
    }
}

/// A mint over a `MemoryStore` (sat, fake backend): the same code without the disk.
pub async fn memory_mint() -> anyhow::Result<coinslot_mint::Mint> {
    use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
    Ok(Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        std::sync::Arc::new(MemoryStore::new()),
        std::sync::Arc::new(FakeBackend::new(Default::default())),
    )
    .await?)
}

/// What worker `i` sends with its next request: `Ok(None)` for no header, `Err(())` when it
/// has nothing left to send (out of tokens, say).
pub type NextHeader = Result<Option<(&'static str, String)>, ()>;

/// `concurrency` workers GET `url` for `duration`, each request with `headers(worker)`
/// and expecting `200`.
pub async fn hammer(
    name: &str,
    duration: Duration,
    concurrency: usize,
    url: String,
    headers: impl Fn(usize) -> NextHeader + Send + Sync + 'static,
) -> anyhow::Result<Phase> {
    let client = reqwest::Client::new();
    let headers = Arc::new(headers);
    run_phase(name, concurrency, |worker| {
        let (client, url, headers) = (client.clone(), url.clone(), Arc::clone(&headers));
        async move {
            let mut latencies = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let mut request = client.get(&url);
                match headers(worker) {
                    Ok(Some((name, value))) => request = request.header(name, value),
                    Ok(None) => {}
                    Err(()) => break,
                }
                let t = Instant::now();
                let response = request.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(
                    status == 200,
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }
    })
    .await
}

/// Starts `coinslotd` in this process ([`coinslotd::run`], the binary's) on `listeners`;
/// returns once its mint is open. It serves until [`InProcess::stop`], or until the process
/// ends if that is never called. Replaces any hook the listeners had for `on_ready`.
pub async fn serve_in_process(
    listeners: coinslotd::Listeners,
    config: coinslotd::Config,
) -> anyhow::Result<InProcess> {
    let (ready, opened) = tokio::sync::oneshot::channel();
    let listeners = listeners.on_ready(move |server| {
        let _ = ready.send(server.mint);
    });
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(coinslotd::run(listeners, config, async move {
        if stopped.await.is_err() {
            // Dropped without `stop`: serve until the process ends.
            std::future::pending::<()>().await;
        }
    }));
    match opened.await {
        Ok(mint) => Ok(InProcess {
            mint,
            shutdown,
            task,
        }),
        // The hook was dropped unused: the server stopped before its mint was open.
        Err(_) => match task.await {
            Ok(Err(err)) => Err(err.context("coinslotd did not start")),
            Ok(Ok(())) => anyhow::bail!("coinslotd stopped before its mint was open"),
            Err(err) => Err(anyhow::anyhow!("coinslotd panicked while starting: {err}")),
        },
    }
}

/// A `coinslotd` started by [`serve_in_process`].
pub struct InProcess {
    /// Its mint, to make tokens with.
    pub mint: coinslot_mint::Mint,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Stops the server gracefully: drains its connections and flushes its store.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await?
    }
}

/// `n` tokens of `mint`, each one proof worth `amount` sat, made before a run so making them
/// costs the server under test nothing.
pub async fn premade_tokens(
    mint: &coinslot_mint::Mint,
    mint_url: &str,
    amount: u64,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    use coinslot_mint::cashu::nuts::{CurrencyUnit, Token};
    let url: coinslot_mint::cashu::mint_url::MintUrl = mint_url.parse()?;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let proofs = mint.make_proofs(&CurrencyUnit::Sat, amount).await?;
        tokens.push(Token::new(url.clone(), proofs, None, CurrencyUnit::Sat).to_string());
    }
    Ok(tokens)
}

/// Opens `n` prepaid sessions at `url` (the paywall's `/cashu/session`), each with a deposit
/// of `deposit` sat made by `mint`; returns their credentials.
pub async fn open_sessions(
    mint: &coinslot_mint::Mint,
    url: &str,
    deposit: u64,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let mut sessions = Vec::with_capacity(n);
    for token in premade_tokens(mint, url, deposit, n).await? {
        let opened: serde_json::Value = client
            .post(format!("{url}/cashu/session"))
            .header("x-cashu", token)
            .send()
            .await?
            .json()
            .await?;
        let credential = opened["session"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no session: {opened}"))?;
        sessions.push(credential.to_string());
    }
    Ok(sessions)
}

/// One client of a swap benchmark: tops up 1 sat at the mint `client` talks to, then swaps
/// it for a fresh proof again and again until `until`; returns each swap's latency.
pub async fn swap_chain(
    client: crate::raw::RawClient,
    keyset: coinslot_mint::cashu::nuts::KeySet,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut proofs = client.topup_with(&keyset, 1).await?;
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let (status, body, next) = client.swap_with(&keyset, proofs).await?;
        anyhow::ensure!(status == 200, "swap failed: {status} {body}");
        latencies.push(start.elapsed());
        proofs = next.ok_or_else(|| anyhow::anyhow!("no proofs back"))?;
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_counts_work_done() {
        let before = process_cpu().expect("procfs is readable on Linux");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        // Busy until the counter moves by 30 ms or the deadline passes (a loaded machine
        // may give this thread little of the CPU).
        while process_cpu().expect("procfs") < before + Duration::from_millis(30)
            && Instant::now() < deadline
        {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(process_cpu().expect("procfs") >= before + Duration::from_millis(30));
    }
}
