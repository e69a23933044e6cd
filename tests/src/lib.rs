//! # coinslot-tests
//!
//! End-to-end test harness: [`TestServer`] runs the real `coinslotd` (the same
//! [`coinslotd::run`] the binary uses) on `127.0.0.1:0` with a sled store; [`raw`] is a minimal
//! Cashu client for requests no honest wallet sends; [`wallet`] wraps the real cdk wallet
//! that `e2e/wallet.rs` drives.

use std::path::{Path, PathBuf};

// The allocator coinslotd runs with, so the load binaries measure what it does (and the
// tests run on it).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod browser;
pub mod direct;
pub mod flaky;
pub mod interop;
pub mod load;
pub mod nodes;
pub mod nwc;
pub mod paymentauth;
pub mod paywall;
pub mod postgres_tls;
pub mod proxy;
pub mod raw;
pub mod relay_conn;
pub mod wallet;

/// A running `coinslotd` on `127.0.0.1:0`.
pub struct TestServer {
    /// Base URL of the mint, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    /// Directory holding the server's seed and sled store.
    pub data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Starts `coinslotd` with default settings (unit `sat`, fake backend that pays at once)
    /// and its data in `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<TestServer> {
        Self::start_with(coinslotd::Config::with_data_dir(data_dir)).await
    }

    /// Starts `coinslotd` with `config` (its `listen` is ignored: the port is ephemeral).
    pub async fn start_with(config: coinslotd::Config) -> anyhow::Result<TestServer> {
        Self::start_on(config, coinslotd::Listeners::new).await
    }

    /// Starts `coinslotd` with `config` and its forward proxy on an ephemeral port too;
    /// the proxy's address.
    pub async fn start_forward(
        mut config: coinslotd::Config,
    ) -> anyhow::Result<(TestServer, std::net::SocketAddr)> {
        let forward = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = forward.local_addr()?;
        config.forward.listen = Some(addr);
        let listeners = |public| coinslotd::Listeners::new(public).forward(forward);
        Ok((Self::start_on(config, listeners).await?, addr))
    }

    /// Starts `coinslotd` with `config` and its admin API on an ephemeral port of its own;
    /// the admin API's address.
    pub async fn start_admin(
        mut config: coinslotd::Config,
    ) -> anyhow::Result<(TestServer, std::net::SocketAddr)> {
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = admin.local_addr()?;
        config.admin.listen = Some(addr);
        let listeners = |public| coinslotd::Listeners::new(public).admin(admin);
        Ok((Self::start_on(config, listeners).await?, addr))
    }

    /// Starts `coinslotd` on the [`coinslotd::Listeners`] that `listeners` makes of a public
    /// listener on an ephemeral port.
    async fn start_on(
        mut config: coinslotd::Config,
        listeners: impl FnOnce(tokio::net::TcpListener) -> coinslotd::Listeners,
    ) -> anyhow::Result<TestServer> {
        init_tracing();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        config.public_url.get_or_insert_with(|| url.clone());
        let data_dir = config.data_dir.clone();
        let listeners = listeners(listener);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(coinslotd::run(listeners, config, async move {
            let _ = rx.await;
        }));
        let server = TestServer {
            url,
            data_dir,
            shutdown: Some(tx),
            task,
        };
        let mut server = server;
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if self.task.is_finished() {
                let why = match (&mut self.task).await {
                    Ok(Err(err)) => format!("{err:#}"),
                    Ok(Ok(())) => "it stopped".into(),
                    Err(err) => err.to_string(),
                };
                anyhow::bail!("coinslotd exited during start-up: {why}");
            }
            if let Ok(response) = client.get(format!("{}/v1/info", self.url)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("coinslotd did not answer /v1/info within 5 s")
    }

    /// Stops the server gracefully and waits until its store is closed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

/// Starts the `coinslotd` binary at `exe` on 127.0.0.1:0 with its data in `data_dir`, and
/// returns the child and the URL it printed (it prints only once its store is open).
pub fn spawn_coinslotd(
    exe: &Path,
    data_dir: &Path,
) -> anyhow::Result<(std::process::Child, String)> {
    spawn_coinslotd_with(exe, data_dir, None)
}

/// [`spawn_coinslotd`] with a config file.
pub fn spawn_coinslotd_with(
    exe: &Path,
    data_dir: &Path,
    config: Option<&Path>,
) -> anyhow::Result<(std::process::Child, String)> {
    spawn_coinslotd_env(exe, data_dir, config, &[])
}

/// [`spawn_coinslotd_with`] with more environment variables.
pub fn spawn_coinslotd_env(
    exe: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    env: &[(&str, &str)],
) -> anyhow::Result<(std::process::Child, String)> {
    spawn_coinslotd_logging(exe, data_dir, config, env, std::process::Stdio::null())
}

/// [`spawn_coinslotd_env`] with its logs (stderr; `RUST_LOG=warn` unless `env` says
/// otherwise) sent to `logs`.
pub fn spawn_coinslotd_logging(
    exe: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    env: &[(&str, &str)],
    logs: std::process::Stdio,
) -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut command = Command::new(exe);
    if let Some(config) = config {
        command.env("COINSLOT_CONFIG", config);
    }
    let mut child = command
        .env("COINSLOT_LISTEN", "127.0.0.1:0")
        .env("COINSLOT_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(logs)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    if !url.starts_with("http://127.0.0.1:") {
        let _ = child.kill();
        anyhow::bail!("coinslotd did not print its URL: {line:?}");
    }
    Ok((child, url))
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A loopback port free a moment ago, for a program that binds its own (chromedriver,
/// LNbits, a PostgreSQL cluster): released before it is used, so another could take it first.
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Polls `check` every 100 ms until it gives `Some`, for at most 30 s; panics with `what`
/// otherwise (for what a server does in the background, e.g. publishing to a relay).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not within 30 s: {what}");
}
