//! A nostr relay where posting costs 1 sat, with its mint's Cashu API on the same port:
//! `ws://HOST/` is the relay (reading free), `http://HOST/v1/…` the mint a wallet tops up
//! at, and `GET /` with `Accept: application/nostr+json` the NIP-11 document with the fees.
//!
//! The mint announces itself (NIP-87 kind 38172, and the NIP-74 kind 37400 info) on this
//! very relay and answers mint requests sent to it over nostr, so a client that only speaks
//! nostr can find the mint, top up and pay here.
//!
//! [`open`] opens the mint; [`serve`] serves it until a shutdown signal.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use coinslot::cashu::mint_url::MintUrl;
use coinslot::{EmbeddedMint, Mint};
use coinslot_nostr::{MintIdentity, NostrConfig, NostrService};
use coinslot_relay::{PaidRelay, RelayConfig};

/// The relay's router and the relay (for its counters), serving the mint at `public_url`.
pub fn app(mint: Mint, public_url: &str) -> anyhow::Result<(Router, PaidRelay)> {
    let mint_url: MintUrl = public_url
        .parse()
        .with_context(|| format!("public URL {public_url:?}"))?;
    let config = RelayConfig {
        url: Some(relay_url(public_url)),
        name: "coinslot paid relay (example)".into(),
        ..RelayConfig::default()
    };
    PaidRelay::validate(&config).map_err(anyhow::Error::msg)?;
    let relay = PaidRelay::new(mint.clone(), mint_url, config);
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

/// Opens the mint in `data_dir` (fake Lightning backend: quotes are paid at once).
pub async fn open(data_dir: &Path) -> anyhow::Result<EmbeddedMint> {
    Ok(EmbeddedMint::open_dev(data_dir).await?)
}

/// Serves the relay and the mint on `listener` and announces the mint on the relay itself,
/// until `shutdown` completes; then flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    embedded: EmbeddedMint,
    public_url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (router, relay) = app(embedded.mint.clone(), public_url)?;
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
