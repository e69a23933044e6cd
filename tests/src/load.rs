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
    /// CPU time of the server per request (everything in the process but the load client's
    /// threads, or the process given by [`set_server_pid`]), when it was measured.
    pub server_cpu_per_op: Option<Duration>,
    /// CPU time of the load client per request (its own runtime's threads).
    pub client_cpu_per_op: Option<Duration>,
}

/// Name of the load client's threads; [`CpuSplit`] counts them apart from the server's.
pub const CLIENT_THREAD: &str = "load-client";

/// The runtime the load client's workers run on: threads of their own (named
/// [`CLIENT_THREAD`]), so the server's CPU can be read apart from the client's although both
/// live in one process, as if the client were another program.
pub fn client_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(CLIENT_THREAD)
            // Blocking threads that ended would take their CPU time with them.
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("cannot build the load client's runtime: {err}"))
    })
}

/// The process whose CPU is the server's; 0 for this one.
static SERVER_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Measures the server's CPU from another process (a mint started outside this one, e.g.
/// cdk-mintd) instead of from this process's own threads; `None` goes back to this one.
pub fn set_server_pid(pid: Option<u32>) {
    SERVER_PID.store(pid.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
}

/// User + system time from a `/proc/…/stat` line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // procfs counts in USER_HZ, 100 per second on every Linux architecture we build for.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`; `None`
/// where there is no procfs.
pub fn process_cpu() -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU time of this process's live threads named `name`.
fn threads_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if comm.trim_end() != name {
            continue;
        }
        if let Some(cpu) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|stat| stat_cpu(&stat))
        {
            total += cpu;
        }
    }
    Some(total)
}

/// CPU used so far by the server and by the load client.
#[derive(Debug, Clone, Copy)]
pub struct CpuSplit {
    /// The server: this process but the client's threads, or the process of
    /// [`set_server_pid`].
    pub server: Duration,
    /// The load client's threads.
    pub client: Duration,
}

impl CpuSplit {
    /// Reads both now; `None` where there is no procfs.
    pub fn now() -> Option<Self> {
        let client = threads_cpu(CLIENT_THREAD)?;
        let server = match SERVER_PID.load(std::sync::atomic::Ordering::Relaxed) {
            0 => process_cpu()?.saturating_sub(client),
            pid => stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?,
        };
        Some(Self { server, client })
    }
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
        server_cpu_per_op: None,
        client_cpu_per_op: None,
    }
}

/// Runs `make(i)` for `concurrency` workers at once on the load client's runtime
/// ([`client_runtime`]); each returns its latencies.
pub async fn run_phase<F, Fut>(name: &str, concurrency: usize, make: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let runtime = client_runtime();
    let before = CpuSplit::now();
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency).map(|i| runtime.spawn(make(i))).collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let mut phase = summarize(name, all, start.elapsed());
    if let (Some(before), Some(after), true) = (before, CpuSplit::now(), phase.ops > 0) {
        let per_op = |a: Duration, b: Duration| a.saturating_sub(b) / phase.ops as u32;
        phase.server_cpu_per_op = Some(per_op(after.server, before.server));
        phase.client_cpu_per_op = Some(per_op(after.client, before.client));
    }
    Ok(phase)
}

/// Prints phases as a table, each with its throughput relative to `baseline` and the CPU
/// per request of the server and of the load client.
pub fn print_table(baseline: &Phase, phases: &[&Phase]) {
    println!(
        "{:<34} {:>8} {:>10} {:>9} {:>9} {:>12} {:>12} {:>12}",
        "phase", "ops", "req/s", "p50 ms", "p99 ms", "vs baseline", "server µs/op", "client µs/op"
    );
    let micros = |cpu: Option<Duration>| {
        cpu.map_or_else(
            || "-".to_string(),
            |cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6),
        )
    };
    for phase in phases {
        println!(
            "{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>12.3} {:>12} {:>12}",
            phase.name,
            phase.ops,
            phase.rps,
            phase.p50.as_secs_f64() * 1e3,
            phase.p99.as_secs_f64() * 1e3,
            phase.rps / baseline.rps,
            micros(phase.server_cpu_per_op),
            micros(phase.client_cpu_per_op),
        );
    }
}

/// Bytes of the files under `path`, recursively (a store's size on disk).
pub fn dir_bytes(path: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
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
    let proofs = client.topup_with(&keyset, 1).await?;
    swap_again(&client, &keyset, proofs, until).await
}

/// Swaps `proofs` for fresh ones again and again until `until`; each swap's latency.
pub async fn swap_again(
    client: &crate::raw::RawClient,
    keyset: &coinslot_mint::cashu::nuts::KeySet,
    mut proofs: coinslot_mint::cashu::nuts::Proofs,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let start = Instant::now();
        let (status, body, next) = client.swap_with(keyset, proofs).await?;
        anyhow::ensure!(status == 200, "swap failed: {status} {body}");
        latencies.push(start.elapsed());
        proofs = next.ok_or_else(|| anyhow::anyhow!("no proofs back"))?;
    }
    Ok(latencies)
}

/// Which `hash_to_curve` a crypto baseline runs: coinslot's (one square root per candidate,
/// what the mint runs) or cashu's (the reference, two for the point it returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashToCurve {
    /// `coinslot_mint::dhke::hash_to_curve`.
    Coinslot,
    /// `cashu::dhke::hash_to_curve`.
    Cashu,
}

impl HashToCurve {
    fn point(self, message: &[u8]) -> anyhow::Result<coinslot_mint::cashu::nuts::PublicKey> {
        Ok(match self {
            Self::Coinslot => coinslot_mint::dhke::hash_to_curve(message)?,
            Self::Cashu => coinslot_mint::cashu::dhke::hash_to_curve(message)?,
        })
    }
}

/// How many times a crypto baseline is measured: the floor is the fastest round, so a
/// neighbour's burst on this shared machine does not make everything else look cheap.
const ROUNDS: usize = 5;

/// The fastest of [`ROUNDS`] rounds of `round`, each over `n` items, in µs per item.
fn floor_us(n: usize, mut round: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        round()?;
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64);
    }
    Ok(best)
}

/// Floor µs, on this thread, of verifying one proof's signature: `hash_to_curve` of its
/// secret and one multiplication `k·Y`.
pub fn verify_crypto_us(n: usize, hash: HashToCurve) -> anyhow::Result<f64> {
    use coinslot_mint::cashu::nuts::SecretKey;
    use coinslot_mint::cashu::secret::Secret;
    use coinslot_mint::cashu::SECP256K1;

    let k = SecretKey::generate();
    let secrets: Vec<Secret> = (0..n).map(|_| Secret::generate()).collect();
    floor_us(n, || {
        for secret in &secrets {
            let y = hash.point(secret.as_bytes())?;
            std::hint::black_box(y.mul_tweak(&SECP256K1, &k.as_scalar())?);
        }
        Ok(())
    })
}

/// Floor µs, on this thread, of the crypto a 1→1 swap cannot avoid: verifying the input
/// (`hash_to_curve`, `k·Y`), signing the output (`k·B_`) and its DLEQ proof (`r·G`, `r·B_`
/// and the hash; the keyset's `A` known).
pub fn swap_crypto_us(n: usize, hash: HashToCurve) -> anyhow::Result<f64> {
    use coinslot_mint::cashu::dhke::{blind_message, hash_e, sign_message};
    use coinslot_mint::cashu::nuts::{PublicKey, SecretKey};
    use coinslot_mint::cashu::secret::Secret;
    use coinslot_mint::cashu::SECP256K1;

    let k = SecretKey::generate();
    let a = k.public_key();
    let inputs = (0..n)
        .map(|_| {
            let (blinded, _) = blind_message(Secret::generate().as_bytes(), None)?;
            Ok((Secret::generate(), blinded, SecretKey::generate()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    floor_us(n, || {
        for (secret, blinded, r) in &inputs {
            let y = hash.point(secret.as_bytes())?;
            std::hint::black_box(y.mul_tweak(&SECP256K1, &k.as_scalar())?);
            let c = sign_message(&k, blinded)?;
            let r2: PublicKey = blinded.mul_tweak(&SECP256K1, &r.as_scalar())?.into();
            std::hint::black_box(hash_e([r.public_key(), r2, a, c]));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_split_counts_the_client_threads_apart() {
        let before = CpuSplit::now().expect("procfs is readable on Linux");
        let busy = client_runtime().spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut x = 0u64;
            while threads_cpu(CLIENT_THREAD).expect("procfs")
                < before.client + Duration::from_millis(30)
                && Instant::now() < deadline
            {
                for i in 0..100_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            }
        });
        client_runtime().block_on(busy).expect("the busy task");
        let after = CpuSplit::now().expect("procfs");
        // Work on the client's runtime is the client's (other tests run beside this one, so
        // the server's share, everything else, is not checked here).
        assert!(after.client >= before.client + Duration::from_millis(30));
    }

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
