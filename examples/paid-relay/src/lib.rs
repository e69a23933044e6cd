//! A nostr relay where posting costs 1 sat, with its mint's Cashu API on the same port:
//! `ws://HOST/` is the relay (reading free), `http://HOST/v1/…` the mint a wallet tops up
//! at, and `GET /` with `Accept: application/nostr+json` the NIP-11 document with the fees.
//!
//! The mint announces itself (NIP-87 kind 38172, and the NIP-74 kind 37400 info) on this
//! very relay and answers mint requests sent to it over nostr, so a client that only speaks
//! nostr can find the mint, top up and pay here.
//!
//! [`open`] opens the mint and the event store (LMDB, in the data directory); [`serve`]
//! serves them until a shutdown signal.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use coinslot::cashu::mint_url::MintUrl;
use coinslot::{EmbeddedMint, Mint};
use coinslot_nostr::nostr_sdk::prelude::NostrDatabase;
use coinslot_nostr::{MintIdentity, NostrConfig, NostrService};
use coinslot_relay::{PaidRelay, RelayConfig};

/// Where the events are kept, under the data directory.
pub const EVENTS_DIR: &str = "events";

/// What [`open`] opens: the mint (seed and sled store) and the relay's event store.
pub struct Opened {
    /// The mint.
    pub embedded: EmbeddedMint,
    /// The events (LMDB).
    pub events: Arc<dyn NostrDatabase>,
}

/// The relay's router and the relay (for its counters), serving the mint at `public_url`
/// and keeping events in `events`.
pub fn app(
    mint: Mint,
    events: Arc<dyn NostrDatabase>,
    public_url: &str,
) -> anyhow::Result<(Router, PaidRelay)> {
    let mint_url: MintUrl = public_url
        .parse()
        .with_context(|| format!("public URL {public_url:?}"))?;
    let config = RelayConfig {
        url: Some(relay_url(public_url)),
        name: "coinslot paid relay (example)".into(),
        ..RelayConfig::default()
    };
    PaidRelay::validate(&config).map_err(anyhow::Error::msg)?;
    let relay = PaidRelay::with_database(mint.clone(), mint_url, config, events);
    let router = relay
        .router()
        .merge(coinslot::mint_api(mint, Default::default()));
    Ok((router, relay))
}

/// The websocket URL of a server whose HTTP URL is `public_url`.
pub fn relay_url(public_url: &str) -> String {
    let url = public_url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_string()
    }
}

/// Opens the mint (fake Lightning backend: quotes are paid at once) and the event store in
/// `data_dir`.
pub async fn open(data_dir: &Path) -> anyhow::Result<Opened> {
    let embedded = EmbeddedMint::open_dev(data_dir).await?;
    let dir = data_dir.join(EVENTS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let events = nostr_lmdb::NostrLMDB::open(&dir)
        .with_context(|| format!("cannot open the event store in {}", dir.display()))?;
    Ok(Opened {
        embedded,
        events: Arc::new(events),
    })
}

/// Serves the relay and the mint on `listener` and announces the mint on the relay itself,
/// until `shutdown` completes; then flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opened: Opened,
    public_url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Opened { embedded, events } = opened;
    let (router, relay) = app(embedded.mint.clone(), events, public_url)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    // The relay is listening now: the mint can announce itself on it.
    let nostr = NostrConfig {
        relays: vec![relay_url(public_url)],
        ..NostrConfig::default()
    };
    let identity = MintIdentity::of(&embedded.mint, vec![public_url.to_string()], "regtest")?;
    let api = coinslot::mint_api(embedded.mint.clone(), Default::default());
    let nostr = match NostrService::start(identity, api, nostr).await {
        Ok(service) => Some(service),
        Err(e) => {
            tracing::warn!(error = %e, "the mint is not announced on the relay");
            None
        }
    };
    shutdown.await;
    if let Some(nostr) = &nostr {
        nostr.shutdown().await;
    }
    let _ = stop.send(());
    relay.close(std::time::Duration::from_secs(5)).await;
    server.await??;
    embedded.store.flush().await?;
    Ok(())
}
