//! # coinslotd
//!
//! The Coinslot server: the embedded closed-loop mint ([`coinslot_mint`]) with its sled store
//! ([`coinslot_store_sled`]) behind the Cashu HTTP API ([`coinslot_http`]).
//!
//! [`run`] is the one entry point, used by tests and embedders (the mini-redis pattern): give
//! it a bound listener, a [`Config`] and a shutdown future. The binary does the same in two
//! steps, [`open`] then [`serve`], so it prints its URL only once the store is open.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use coinslot_mint::{FakeBackend, Mint, MintSeed, PaymentBackend};
use coinslot_store_sled::SledStore;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub mod config;

pub use config::{BackendConfig, Config, ConfigError};

/// File name of the seed inside the data directory.
pub const SEED_FILE: &str = "seed";
/// Directory name of the sled store inside the data directory.
pub const STORE_DIR: &str = "store";

/// A running mint and what it is built from, for embedding and tests.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The mint.
    pub mint: Mint,
    /// Its store.
    pub store: SledStore,
}

/// Opens the data directory (seed + store), the backend and the mint.
pub async fn open(config: &Config) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let seed = load_or_create_seed(&config.data_dir.join(SEED_FILE))?;
    let store = SledStore::open(&config.data_dir.join(STORE_DIR))?;
    let backend: Arc<dyn PaymentBackend> = match &config.backend {
        BackendConfig::Fake(fake) => Arc::new(FakeBackend::new(fake.clone())),
    };
    let mint = Mint::new(config.mint.clone(), seed, Arc::new(store.clone()), backend).await?;
    Ok(Opened { mint, store })
}

/// Opens the mint from `config` and serves it on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let opened = open(&config).await?;
    serve(listener, opened, &config, shutdown).await
}

/// Serves an opened mint on `listener` until `shutdown` completes, then drains connections
/// and flushes the store.
pub async fn serve(
    listener: TcpListener,
    opened: Opened,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = coinslot_http::router(opened.mint.clone(), config.http.clone())
        .layer(TraceLayer::new_for_http());
    tracing::info!(
        addr = %listener.local_addr()?,
        pubkey = %opened.mint.pubkey(),
        data_dir = %config.data_dir.display(),
        "coinslotd serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
    opened.store.flush().await?;
    tracing::info!("coinslotd stopped");
    Ok(())
}

/// Reads the hex seed at `path`, or creates one readable by the owner only (0600).
pub fn load_or_create_seed(path: &Path) -> anyhow::Result<MintSeed> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read seed file {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "seed file is readable by others; chmod 600 it"
                );
            }
        }
        return MintSeed::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("seed file {}: {e}", path.display()));
    }
    let seed = MintSeed::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create seed file {}", path.display()))?;
    std::io::Write::write_all(&mut file, seed.to_hex().as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created a new mint seed; back it up");
    Ok(seed)
}
