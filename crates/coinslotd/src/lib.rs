//! # coinslotd
//!
//! The Coinslot server: the embedded closed-loop mint ([`coinslot_mint`]) with its sled store
//! ([`coinslot_store_sled`]) behind the Cashu HTTP API ([`coinslot_http`]).
//!
//! [`run`] is the one entry point, used by tests and embedders (the mini-redis pattern): give
//! it a bound listener, a [`Config`] and a shutdown future. The binary does the same in two
//! steps, [`open`] then [`serve`], so it prints its URL only once the store is open.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use coinslot::EmbeddedMint;
use coinslot_mint::{FakeBackend, PaymentBackend};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub mod config;

pub use config::{BackendConfig, Config, ConfigError};

pub use coinslot::embedded::{load_or_create_seed, SEED_FILE, STORE_DIR};

/// Opens the data directory (seed + store), the backend and the mint.
pub async fn open(config: &Config) -> anyhow::Result<EmbeddedMint> {
    let backend: Arc<dyn PaymentBackend> = match &config.backend {
        BackendConfig::Fake(fake) => Arc::new(FakeBackend::new(fake.clone())),
    };
    Ok(EmbeddedMint::open(&config.data_dir, config.mint.clone(), backend).await?)
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
    opened: EmbeddedMint,
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
