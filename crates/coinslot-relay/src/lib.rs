//! # coinslot-relay
//!
//! A nostr relay where writing costs Cashu ecash and reading is free.
//!
//! - [`payment`]: what a write costs per event kind and how it is paid: a token in the
//!   event's `["cashu", "<token>"]` tag, or a prepaid balance bound to a NIP-42
//!   authenticated pubkey (the [`Cashier`]);
//! - [`nip11`]: the relay information document, with the fees and the mint;
//! - [`session`]: one websocket connection (NIP-01 `EVENT`/`REQ`/`CLOSE`, NIP-45 `COUNT`,
//!   NIP-42 `AUTH`);
//! - [`PaidRelay`]: the relay as an axum [`Router`] (`GET /`: websocket or NIP-11), to be
//!   served beside the mint's HTTP API on one port;
//! - [`front`]: the same rules in front of a relay someone already runs (any NIP-01 relay):
//!   writes are paid here, then passed on ([`RelayFront`]).
//!
//! Tokens are redeemed locally against the embedded [`Mint`] in one durable write, so the
//! rules are the mint's: a proof is never accepted twice, and a refused token stays
//! spendable. Writes are checked (signature, duplicate) *before* they are charged, and a
//! paid event the store then refuses gives its price back to the author's balance.
//!
//! Why not `nostr-relay-builder` with a write policy: its `WritePolicy` sees the event and
//! the peer address, not the connection's NIP-42 identity, and runs before the duplicate
//! check, so a re-sent event would be charged again and a balance could not be bound to an
//! authenticated pubkey. The relay here is small (one module per NIP concern) and uses
//! rust-nostr's messages, filters and databases.
//!
//! ```no_run
//! # async fn demo(mint: coinslot_mint::Mint) -> Result<(), Box<dyn std::error::Error>> {
//! use coinslot_relay::{PaidRelay, RelayConfig};
//!
//! let relay = PaidRelay::new(mint, "http://127.0.0.1:7777".parse()?, RelayConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7777").await?;
//! axum::serve(listener, relay.router()).await?;
//! # Ok(()) }
//! ```

pub mod front;
pub mod nip11;
mod nip42;
pub mod payment;
pub mod session;

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::Mint;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nostr_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

pub use front::{FrontError, RelayFront};
pub use payment::{Cashier, Charged, Prices, Refused, CASHU_TAG};

/// How the relay behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// The relay's public websocket URL (`wss://…`). NIP-42 `AUTH` events must name a relay
    /// on the same host; when unset, any relay tag is accepted (the challenge still binds
    /// the event to this connection).
    pub url: Option<String>,
    /// Name in the NIP-11 document.
    pub name: String,
    /// Description in the NIP-11 document.
    pub description: String,
    /// Prices of writes.
    pub prices: Prices,
    /// Accept only tokens locked (NUT-11) to the mint's key (the payment requests always
    /// ask for such tokens).
    pub require_lock: bool,
    /// Largest websocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Filters per `REQ`.
    pub max_filters: usize,
    /// Most stored events one filter returns (a larger or missing `limit` is capped).
    pub max_limit: usize,
    /// How far in the future an event's `created_at` may be, in seconds.
    pub max_future_secs: u64,
    /// How old an `AUTH` event may be, in seconds.
    pub auth_window_secs: u64,
    /// Events kept in memory (oldest dropped first).
    pub max_events: usize,
    /// Events one author may send per minute, paid or not, in a burst or spread out
    /// (0: no limit); more are refused with `rate-limited:`.
    pub events_per_minute: u32,
    /// Messages one connection may send per minute (0: no limit); more are answered with a
    /// `rate-limited:` notice and not handled.
    pub messages_per_minute: u32,
}

impl RelayConfig {
    /// The host NIP-42 `AUTH` events must name (that of `url`), if one is set.
    pub(crate) fn auth_host(&self) -> Option<String> {
        self.url
            .as_deref()
            .and_then(|url| RelayUrl::parse(url).ok())
            .and_then(|url| url.host().map(|host| host.to_string()))
    }
}

/// The relay operator's nostr key: the mint's.
pub(crate) fn operator(mint: &Mint) -> Option<PublicKey> {
    PublicKey::from_slice(&mint.pubkey().to_bytes()[1..]).ok()
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            url: None,
            name: "coinslot paid relay".into(),
            description: "A nostr relay where writing costs Cashu ecash; reading is free.".into(),
            prices: Prices::default(),
            require_lock: false,
            max_message_bytes: 128 * 1024,
            max_subscriptions: 20,
            max_filters: 10,
            max_limit: 500,
            max_future_secs: 900,
            auth_window_secs: 600,
            max_events: 100_000,
            events_per_minute: 120,
            messages_per_minute: 1200,
        }
    }
}

/// A paid relay. Cheap to clone: clones share the store and the live feed.
#[derive(Clone)]
pub struct PaidRelay {
    inner: Arc<Inner>,
}

struct Inner {
    config: RelayConfig,
    auth_host: Option<String>,
    cashier: Cashier,
    identity: Option<PublicKey>,
    database: Arc<dyn NostrDatabase>,
    live: broadcast::Sender<Event>,
    /// Events being charged and stored right now, so the same event sent twice at once is
    /// not charged twice.
    in_flight: Mutex<HashSet<EventId>>,
    stats: Stats,
    /// Events per author per minute, and how often it was asked.
    authors: Option<DefaultKeyedRateLimiter<PublicKey>>,
    author_checks: AtomicU64,
    /// Set once by [`PaidRelay::close`]: every connection ends.
    closing: watch::Sender<bool>,
    sessions: AtomicUsize,
}

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    refused: AtomicU64,
    earned: AtomicU64,
}

/// Counters since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelayStats {
    /// Events accepted (stored or broadcast).
    pub accepted: u64,
    /// Events refused (unpaid, invalid, …).
    pub refused: u64,
    /// Sum of the prices taken, in the price unit.
    pub earned: u64,
}

impl std::fmt::Debug for PaidRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaidRelay")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PaidRelay {
    /// A relay taking payment in tokens of `mint`, which clients reach at `mint_url`
    /// (named in every payment request). Events are kept in memory.
    pub fn new(mint: Mint, mint_url: MintUrl, config: RelayConfig) -> Self {
        let database = MemoryDatabase::with_opts(MemoryDatabaseOptions {
            events: true,
            max_events: Some(config.max_events.max(1)),
        });
        Self::with_database(mint, mint_url, config, Arc::new(database))
    }

    /// Like [`PaidRelay::new`], with the events in `database` (any rust-nostr backend).
    pub fn with_database(
        mint: Mint,
        mint_url: MintUrl,
        config: RelayConfig,
        database: Arc<dyn NostrDatabase>,
    ) -> Self {
        let auth_host = config.auth_host();
        let identity = operator(&mint);
        let (live, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                cashier: Cashier::new(mint, mint_url, config.prices.clone())
                    .require_lock(config.require_lock),
                auth_host,
                identity,
                authors: per_minute(config.events_per_minute).map(RateLimiter::keyed),
                author_checks: AtomicU64::new(0),
                config,
                database,
                live,
                in_flight: Mutex::new(HashSet::new()),
                stats: Stats::default(),
                closing: watch::channel(false).0,
                sessions: AtomicUsize::new(0),
            }),
        }
    }

    /// Checks a configuration: the public URL, when given, must be a websocket URL.
    pub fn validate(config: &RelayConfig) -> Result<(), String> {
        if let Some(url) = &config.url {
            let parsed = RelayUrl::parse(url)
                .map_err(|e| format!("relay url {url:?} is not a websocket URL: {e}"))?;
            if parsed.host().is_none() {
                return Err(format!("relay url {url:?} has no host"));
            }
        }
        if config.max_subscriptions == 0 || config.max_filters == 0 || config.max_limit == 0 {
            return Err("max_subscriptions, max_filters and max_limit must be at least 1".into());
        }
        if config.max_message_bytes < 1024 {
            return Err("max_message_bytes must be at least 1024".into());
        }
        Ok(())
    }

    /// The router: `GET /` upgrades to the relay's websocket, or answers the NIP-11
    /// document (`Accept: application/nostr+json`), or a short text for browsers.
    pub fn router(&self) -> Router {
        Router::new().route("/", get(root)).with_state(self.clone())
    }

    /// A new connection's state, to drive without a websocket.
    pub fn session(&self) -> session::Session {
        session::Session::new(self.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.inner.config
    }

    /// The cashier (prices and balances).
    pub fn cashier(&self) -> &Cashier {
        &self.inner.cashier
    }

    /// The event store.
    pub fn database(&self) -> &Arc<dyn NostrDatabase> {
        &self.inner.database
    }

    /// Counters since start.
    pub fn stats(&self) -> RelayStats {
        let stats = &self.inner.stats;
        RelayStats {
            accepted: stats.accepted.load(Ordering::Relaxed),
            refused: stats.refused.load(Ordering::Relaxed),
            earned: stats.earned.load(Ordering::Relaxed),
        }
    }

    /// The NIP-11 relay information document.
    pub fn information(&self) -> serde_json::Value {
        nip11::document(
            &self.inner.config,
            self.inner.cashier.mint_url(),
            self.inner.identity.as_ref(),
        )
    }

    /// Closes every websocket connection (a graceful HTTP shutdown does not end upgraded
    /// connections) and waits up to `grace` for them to end. A write being charged
    /// finishes first: connections end between messages.
    pub async fn close(&self, grace: Duration) {
        self.inner.closing.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        while self.inner.sessions.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Open websocket connections.
    pub fn connections(&self) -> usize {
        self.inner.sessions.load(Ordering::Acquire)
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    fn session_started(&self) -> SessionGuard {
        self.inner.sessions.fetch_add(1, Ordering::AcqRel);
        SessionGuard(self.clone())
    }

    fn auth_host(&self) -> Option<&str> {
        self.inner.auth_host.as_deref()
    }

    fn subscribe_live(&self) -> broadcast::Receiver<Event> {
        self.inner.live.subscribe()
    }

    fn publish_live(&self, event: Event) {
        // No receiver is not an error: nobody is listening right now.
        let _ = self.inner.live.send(event);
    }

    /// Marks `id` as being written; `None` when it already is.
    fn begin_write(&self, id: EventId) -> Option<WriteGuard> {
        let mut in_flight = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        in_flight.insert(id).then(|| WriteGuard {
            relay: self.clone(),
            id,
        })
    }

    /// Whether `author` may write one more event this minute.
    fn author_within_rate(&self, author: &PublicKey) -> bool {
        let Some(limiter) = &self.inner.authors else {
            return true;
        };
        let allowed = limiter.check_key(author).is_ok();
        let checks = self.inner.author_checks.fetch_add(1, Ordering::Relaxed);
        if checks.is_multiple_of(SWEEP_EVERY) {
            limiter.retain_recent();
        }
        allowed
    }

    fn count_refused(&self) {
        self.inner.stats.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn count_accepted(&self, price: u64) {
        let stats = &self.inner.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.earned.fetch_add(price, Ordering::Relaxed);
    }
}

/// Counts a connection while it lives.
struct SessionGuard(PaidRelay);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.inner.sessions.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A rate of `n` a minute, all of which may come at once; `None` for 0 (no limit).
pub(crate) fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

/// The per-author limiter forgets authors whose allowance is full again once in this many
/// checks (a sweep is a pass over all of them, so not on every event).
const SWEEP_EVERY: u64 = 4096;

/// Removes an event from the in-flight set when its write ends, however it ends.
struct WriteGuard {
    relay: PaidRelay,
    id: EventId,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut in_flight = self
            .relay
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        in_flight.remove(&self.id);
    }
}

async fn root(
    State(relay): State<PaidRelay>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        let max = relay.config().max_message_bytes;
        return upgrade
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| session::run(relay, socket))
            .into_response();
    }
    let wants_nip11 = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains(nip11::CONTENT_TYPE));
    if wants_nip11 {
        return (
            [
                (header::CONTENT_TYPE, nip11::CONTENT_TYPE),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            relay.information().to_string(),
        )
            .into_response();
    }
    let prices = relay.cashier().prices();
    format!(
        "{}\n\nThis is a nostr relay: connect with a websocket. Reading is free; writing costs \
         {} {} per event (see the NIP-11 document for the kinds that differ). Pay with a \
         [\"cashu\", \"<token>\"] tag in the event, or AUTH (NIP-42) and pay from the balance \
         earlier tokens left. Tokens come from the mint at {}.\n",
        relay.config().name,
        prices.default,
        prices.unit,
        relay.cashier().mint_url(),
    )
    .into_response()
}
