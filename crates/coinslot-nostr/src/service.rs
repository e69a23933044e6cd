//! The mint's presence on nostr while the server runs: it announces the mint (NIP-87 kind
//! 38172, plus the draft NIP-74 kind 37400 info and the operator's kind 38000
//! recommendations), follows the recommendations others publish about it, and answers mint
//! requests sent over nostr.
//!
//! Relays are independent: each has its own publisher that retries with exponential backoff
//! (1 s doubling to 5 min) until it has taken the current events, so a relay that is down
//! never delays the others or the server. Subscriptions are re-sent by the relay pool when a
//! relay comes back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use coinslot_mint::Mint;
use nostr_sdk::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::nip74;
use crate::nip87::{self, MintAnnouncement, Recommendation};
use crate::responder::{Ignored, Responder, ResponderLimits};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(300);

/// `[nostr]`: where and how the mint shows itself on nostr. Nothing runs without relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NostrConfig {
    /// Relays to announce on and answer from (`wss://…`; `ws://` for local relays).
    pub relays: Vec<String>,
    /// Publish the kind 38172 announcement (and the kind 37400 info).
    pub announce: bool,
    /// Answer mint requests sent over nostr (kind 27401).
    pub serve_mint: bool,
    /// The `n` tag: mainnet, testnet, signet or regtest (default: what the backend uses).
    pub network: Option<String>,
    /// More `u` URLs besides the public URL (e.g. an onion address).
    pub urls: Vec<String>,
    /// `about` in the announcement's metadata (default: the mint's description).
    pub about: Option<String>,
    /// `picture` in the announcement's metadata.
    pub picture: Option<String>,
    /// Re-announce this often even when nothing changed, in seconds.
    pub reannounce_secs: u64,
    /// Other mints the operator trusts, published as kind 38000 recommendations.
    pub recommend: Vec<RecommendConfig>,
    /// Which requests over nostr are looked at.
    pub requests: ResponderLimits,
    /// Requests over nostr answered at the same time; more wait.
    pub max_concurrent_requests: usize,
    /// Publish the `Y` of every spent proof (see [`crate::spent_feed`]; off by default:
    /// it shows the mint's volume and tells a proof's holders when it was spent).
    pub spent_feed: bool,
    /// How often a spent-secret batch goes out, in seconds.
    pub spent_feed_secs: u64,
    /// A file holding the mint's identity as an `nsec` (or 64 hex characters), used instead
    /// of the key derived from the seed; `COINSLOT_NOSTR_NSEC` overrides it. This is the
    /// NUT-06 `pubkey` too: tokens locked to the old identity are no longer the mint's.
    pub nsec_file: Option<std::path::PathBuf>,
}

impl Default for NostrConfig {
    fn default() -> Self {
        Self {
            relays: Vec::new(),
            announce: true,
            serve_mint: true,
            network: None,
            urls: Vec::new(),
            about: None,
            picture: None,
            reannounce_secs: 86_400,
            recommend: Vec::new(),
            requests: ResponderLimits::default(),
            max_concurrent_requests: 32,
            spent_feed: false,
            spent_feed_secs: 60,
            nsec_file: None,
        }
    }
}

/// One `[[nostr.recommend]]`: a mint the operator recommends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendConfig {
    /// The mint's NUT-06 `pubkey` (66 hex characters, from its `/v1/info`).
    pub mint_pubkey: String,
    /// The mint's announcement author, if it announces itself with another key (`npub` or
    /// hex; default: the key in `mint_pubkey`).
    #[serde(default)]
    pub author: Option<String>,
    /// Its URLs.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl NostrConfig {
    /// Whether the mint is on nostr at all.
    pub fn enabled(&self) -> bool {
        !self.relays.is_empty()
    }

    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for relay in &self.relays {
            RelayUrl::parse(relay)
                .map_err(|e| format!("nostr.relays: `{relay}` is not a relay URL: {e}"))?;
        }
        if let Some(network) = &self.network {
            if !["mainnet", "testnet", "signet", "regtest"].contains(&network.as_str()) {
                return Err(format!(
                    "nostr.network: `{network}` is not mainnet, testnet, signet or regtest"
                ));
            }
        }
        for url in &self.urls {
            if !url.contains("://") {
                return Err(format!("nostr.urls: `{url}` is not a URL"));
            }
        }
        if self.reannounce_secs < 60 {
            return Err("nostr.reannounce_secs: must be at least 60".into());
        }
        if self.spent_feed_secs == 0 {
            return Err("nostr.spent_feed_secs: must be at least 1".into());
        }
        if self.max_concurrent_requests == 0 {
            return Err("nostr.max_concurrent_requests: must be at least 1".into());
        }
        for (i, recommend) in self.recommend.iter().enumerate() {
            recommend
                .author()
                .map_err(|e| format!("nostr.recommend[{i}]: {e}"))?;
        }
        Ok(())
    }
}

impl RecommendConfig {
    /// The announcement author: `author`, or the x-only key inside `mint_pubkey`.
    fn author(&self) -> Result<PublicKey, String> {
        let pubkey = &self.mint_pubkey;
        let valid = pubkey.len() == 66
            && (pubkey.starts_with("02") || pubkey.starts_with("03"))
            && pubkey.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(format!(
                "mint_pubkey `{pubkey}` is not a compressed public key (66 hex characters)"
            ));
        }
        match &self.author {
            Some(author) => PublicKey::parse(author)
                .map_err(|e| format!("author `{author}` is not an npub or hex key: {e}")),
            None => PublicKey::from_hex(&pubkey[2..]).map_err(|e| e.to_string()),
        }
    }

    fn recommendation(&self) -> Result<Recommendation, String> {
        let author = self.author()?;
        Ok(Recommendation {
            mint_pubkey: self.mint_pubkey.to_lowercase(),
            urls: self.urls.clone(),
            announcement: Some(
                Coordinate::new(nip87::CASHU_MINT_ANNOUNCEMENT, author)
                    .identifier(self.mint_pubkey.to_lowercase()),
            ),
            relay_hint: None,
            comment: self.comment.clone(),
        })
    }
}

/// Decodes a nostr secret key given as `nsec1…` or 64 hex characters. The error never
/// repeats the input.
pub fn parse_secret_key(text: &str) -> Result<[u8; 32], String> {
    SecretKey::parse(text.trim())
        .map(|key| key.secret_bytes())
        .map_err(|_| "not an nsec or a 64-character hex secret key".to_string())
}

/// Why the nostr service could not start.
#[derive(Debug, thiserror::Error)]
#[error("nostr: {0}")]
pub struct NostrError(pub String);

/// What the mint says about itself on nostr, read from the mint.
#[derive(Debug, Clone)]
pub struct MintIdentity {
    pub(crate) keys: Keys,
    pub(crate) mint_pubkey: String,
    info: Value,
    units: Vec<String>,
    nuts: Vec<u16>,
    urls: Vec<String>,
    network: String,
}

impl MintIdentity {
    /// The identity of `mint`, reachable at `urls`, on `network`.
    pub fn of(mint: &Mint, urls: Vec<String>, network: &str) -> Result<Self, NostrError> {
        let secret = SecretKey::from_slice(&mint.identity_key().to_secret_bytes())
            .map_err(|e| NostrError(format!("the mint's identity key: {e}")))?;
        let info = serde_json::to_value(mint.info()).map_err(|e| NostrError(e.to_string()))?;
        let mut units: Vec<String> = mint
            .keysets()
            .keysets
            .into_iter()
            .filter(|keyset| keyset.active)
            .map(|keyset| keyset.unit.to_string())
            .collect();
        units.dedup();
        Ok(Self {
            keys: Keys::new(secret),
            mint_pubkey: mint.pubkey().to_hex(),
            nuts: supported_nuts(&info),
            info,
            units,
            urls,
            network: network.to_string(),
        })
    }

    /// The mint's nostr keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The kind 38172 announcement.
    pub fn announcement(&self, config: &NostrConfig) -> MintAnnouncement {
        let text = |key: &str| self.info.get(key).and_then(Value::as_str).map(String::from);
        let mut metadata = serde_json::Map::new();
        if let Some(name) = text("name") {
            metadata.insert("name".into(), json!(name));
        }
        if let Some(about) = config.about.clone().or_else(|| text("description")) {
            metadata.insert("about".into(), json!(about));
        }
        if let Some(picture) = config.picture.clone().or_else(|| text("icon_url")) {
            metadata.insert("picture".into(), json!(picture));
        }
        MintAnnouncement {
            mint_pubkey: self.mint_pubkey.clone(),
            urls: self.urls.clone(),
            nuts: self.nuts.clone(),
            network: self.network.clone(),
            metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
        }
    }

    fn events(&self, config: &NostrConfig, at: Timestamp) -> Result<Vec<Event>, NostrError> {
        let mut builders = Vec::new();
        if config.announce {
            builders.push(self.announcement(config).to_builder());
            builders.push(nip74::info_event(
                &self.mint_pubkey,
                &self.info,
                &self.units,
                &self.nuts,
                &self.urls,
                &config.relays,
            ));
        }
        for recommend in &config.recommend {
            builders.push(recommend.recommendation().map_err(NostrError)?.to_builder());
        }
        builders
            .into_iter()
            .map(|builder| {
                builder
                    .custom_created_at(at)
                    .sign_with_keys(&self.keys)
                    .map_err(|e| NostrError(e.to_string()))
            })
            .collect()
    }
}

/// The NUTs the NUT-06 info says are supported, with the ones every mint has (1, 2, 3, 6).
fn supported_nuts(info: &Value) -> Vec<u16> {
    let mut nuts = vec![1, 2, 3, 6];
    if let Some(listed) = info.get("nuts").and_then(Value::as_object) {
        for (nut, settings) in listed {
            let off = settings.get("disabled").and_then(Value::as_bool) == Some(true)
                || settings.get("supported").and_then(Value::as_bool) == Some(false);
            if let (false, Ok(nut)) = (off, nut.parse()) {
                nuts.push(nut);
            }
        }
    }
    nuts.sort_unstable();
    nuts.dedup();
    nuts
}

/// How one relay is doing, for the admin report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RelayReport {
    /// Whether the connection is up.
    pub connected: bool,
    /// When the relay last took the current events (unix seconds).
    pub published_at: Option<u64>,
    /// The last refusal or failure, while the publisher retries.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
}

/// A recommendation of this mint someone published.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendationReport {
    /// Who recommends it (`npub…`).
    pub author: String,
    /// When (unix seconds).
    pub created_at: u64,
    /// What they say.
    pub comment: String,
    /// The URLs they give.
    pub urls: Vec<String>,
}

/// The state of the mint on nostr (the admin API's `/admin/nostr`).
#[derive(Debug, Clone, Serialize)]
pub struct NostrReport {
    /// The mint's nostr key (`npub…`).
    pub npub: String,
    /// The kind 38172 announcement being published, if any.
    pub announcement: Option<Value>,
    /// Per relay URL.
    pub relays: BTreeMap<String, RelayReport>,
    /// Recommendations of this mint, newest first.
    pub recommendations: Vec<RecommendationReport>,
    /// Requests over nostr answered.
    pub requests_answered: u64,
    /// Events addressed to the mint that were ignored (stale, replayed, garbage, ...).
    pub requests_ignored: u64,
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) identity: MintIdentity,
    pub(crate) config: NostrConfig,
    current: watch::Sender<Vec<Event>>,
    reannounce: Notify,
    relays: Mutex<BTreeMap<String, RelayReport>>,
    recommendations: Mutex<HashMap<PublicKey, (Timestamp, Recommendation)>>,
    answered: AtomicU64,
    ignored: AtomicU64,
}

/// The running nostr side of a mint; dropping it does not stop it, [`shutdown`] does.
///
/// [`shutdown`]: NostrService::shutdown
pub struct NostrService {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NostrService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NostrService")
            .field("relays", &self.shared.config.relays)
            .finish_non_exhaustive()
    }
}

impl NostrService {
    /// Connects to the configured relays and starts announcing, following recommendations
    /// and (with `serve_mint`) answering requests through `service`, the mint's HTTP API.
    /// Returns at once: relays that are down are retried in the background.
    pub async fn start(
        identity: MintIdentity,
        service: Router,
        config: NostrConfig,
    ) -> Result<Self, NostrError> {
        config.validate().map_err(NostrError)?;
        let client = Client::builder().signer(identity.keys.clone()).build();
        for relay in &config.relays {
            // The pool reconnects on its own, from every 3 s up to every 60 s while a
            // relay keeps failing.
            let opts = RelayOptions::new().retry_interval(Duration::from_secs(3));
            client
                .pool()
                .add_relay(relay.as_str(), opts)
                .await
                .map_err(|e| NostrError(format!("relay `{relay}`: {e}")))?;
        }
        client.connect().await;
        let (current, _) = watch::channel(Vec::new());
        let shared = Arc::new(Shared {
            client,
            identity,
            config,
            current,
            reannounce: Notify::new(),
            relays: Mutex::new(BTreeMap::new()),
            recommendations: Mutex::new(HashMap::new()),
            answered: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
        });
        let mut tasks = vec![tokio::spawn(announce(shared.clone()))];
        for relay in shared.config.relays.clone() {
            tasks.push(tokio::spawn(publish(shared.clone(), relay)));
        }
        let responder = Arc::new(Responder::new(
            shared.identity.keys.clone(),
            service,
            shared.config.requests.clone(),
        ));
        subscribe(&shared).await?;
        tasks.push(tokio::spawn(listen(shared.clone(), responder)));
        tracing::info!(
            target: "coinslot::nostr",
            relays = ?shared.config.relays,
            announce = shared.config.announce,
            serve_mint = shared.config.serve_mint,
            "on nostr"
        );
        Ok(Self { shared, tasks })
    }

    /// Starts the spent-secret feed of `mint` when `spent_feed` is on (a no-op otherwise).
    pub fn follow_spends(&mut self, mint: &coinslot_mint::Mint) {
        if self.shared.config.spent_feed {
            let task = crate::spent_feed::run(self.shared.clone(), mint.subscribe());
            self.tasks.push(tokio::spawn(task));
        }
    }

    /// Publishes the events again now, with a newer `created_at`.
    pub fn reannounce(&self) {
        self.shared.reannounce.notify_one();
    }

    /// The events being published (announcement, info, recommendations).
    pub fn published(&self) -> Vec<Event> {
        self.shared.current.borrow().clone()
    }

    /// What the admin report shows.
    pub async fn report(&self) -> NostrReport {
        let shared = &self.shared;
        let mut relays = shared.relays.lock().clone();
        for (url, relay) in shared.client.relays().await {
            relays.entry(url.to_string()).or_default().connected = relay.is_connected();
        }
        let announcement = shared
            .current
            .borrow()
            .iter()
            .find(|event| event.kind == nip87::CASHU_MINT_ANNOUNCEMENT)
            .and_then(|event| serde_json::to_value(event).ok());
        let mut recommendations: Vec<RecommendationReport> = shared
            .recommendations
            .lock()
            .iter()
            .map(|(author, (at, recommendation))| RecommendationReport {
                author: author.to_bech32().unwrap_or_else(|_| author.to_hex()),
                created_at: at.as_secs(),
                comment: recommendation.comment.clone(),
                urls: recommendation.urls.clone(),
            })
            .collect();
        recommendations.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        NostrReport {
            npub: shared
                .identity
                .keys
                .public_key()
                .to_bech32()
                .unwrap_or_default(),
            announcement,
            relays,
            recommendations,
            requests_answered: shared.answered.load(Ordering::Relaxed),
            requests_ignored: shared.ignored.load(Ordering::Relaxed),
        }
    }

    /// Stops every task and closes the relay connections.
    pub async fn shutdown(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.client.shutdown().await;
    }
}

/// Builds the events to publish, on start, on [`NostrService::reannounce`] and periodically,
/// each time dated after every earlier one so relays replace the old ones.
async fn announce(shared: Arc<Shared>) {
    let me = shared.identity.keys.public_key();
    // The last announcement may be newer than our clock (another instance, a restart
    // within the same second): start after it.
    let mut last = shared
        .client
        .fetch_events(Filter::new().author(me), Duration::from_secs(3))
        .await
        .map(|events| {
            events
                .iter()
                .filter(|event| event.kind.is_addressable())
                .map(|event| event.created_at.as_secs())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    loop {
        let at = Timestamp::now().as_secs().max(last + 1);
        last = at;
        match shared
            .identity
            .events(&shared.config, Timestamp::from_secs(at))
        {
            Ok(events) => {
                shared.current.send_replace(events);
            }
            Err(err) => {
                tracing::error!(target: "coinslot::nostr", error = %err, "cannot build the announcement")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(shared.config.reannounce_secs)) => {}
            _ = shared.reannounce.notified() => {}
        }
    }
}

/// Keeps one relay up to date with the current events, retrying with backoff.
async fn publish(shared: Arc<Shared>, relay: String) {
    let mut current = shared.current.subscribe();
    let mut retry = FIRST_RETRY;
    loop {
        let events = current.borrow_and_update().clone();
        if events.is_empty() {
            if current.changed().await.is_err() {
                return;
            }
            continue;
        }
        let outcome = send_all(&shared.client, &relay, &events).await;
        {
            let mut relays = shared.relays.lock();
            let report = relays.entry(relay.clone()).or_default();
            match &outcome {
                Ok(()) => {
                    report.published_at = Some(Timestamp::now().as_secs());
                    report.last_error = None;
                    report.failures = 0;
                }
                Err(err) => {
                    report.last_error = Some(err.clone());
                    report.failures += 1;
                }
            }
        }
        match outcome {
            Ok(()) => {
                tracing::info!(target: "coinslot::nostr", relay = %relay, events = events.len(), "announced");
                retry = FIRST_RETRY;
                if current.changed().await.is_err() {
                    return;
                }
            }
            Err(err) => {
                tracing::warn!(target: "coinslot::nostr", relay = %relay, error = %err, retry_in = ?retry, "relay did not take the announcement");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    changed = current.changed() => if changed.is_err() { return },
                }
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}

async fn send_all(client: &Client, relay: &str, events: &[Event]) -> Result<(), String> {
    // Fail fast while disconnected rather than queue and wait for an OK that cannot come.
    let connected = client
        .relay(relay)
        .await
        .map(|relay| relay.is_connected())
        .unwrap_or(false);
    if !connected {
        return Err("not connected".into());
    }
    for event in events {
        let output = client
            .send_event_to([relay], event)
            .await
            .map_err(|e| e.to_string())?;
        if output.success.is_empty() {
            let why = output
                .failed
                .into_values()
                .next()
                .unwrap_or_else(|| "no answer".into());
            return Err(why);
        }
    }
    Ok(())
}

async fn subscribe(shared: &Shared) -> Result<(), NostrError> {
    let me = shared.identity.keys.public_key();
    let mut filters = Vec::new();
    if shared.config.serve_mint {
        let since = Timestamp::now().as_secs() - shared.config.requests.max_age_secs.min(60);
        filters.push(
            Filter::new()
                .kind(nip74::REQUEST)
                .pubkey(me)
                .since(Timestamp::from_secs(since)),
        );
    }
    let coordinate = shared.identity.announcement(&shared.config).coordinate(me);
    filters.extend(nip87::recommendation_filters(&coordinate));
    for filter in filters {
        shared
            .client
            .subscribe(filter, None)
            .await
            .map_err(|e| NostrError(format!("subscribe: {e}")))?;
    }
    Ok(())
}

/// Dispatches incoming events: requests to the responder, recommendations to the report.
async fn listen(shared: Arc<Shared>, responder: Arc<Responder>) {
    let me = shared.identity.keys.public_key();
    let coordinate = shared.identity.announcement(&shared.config).coordinate(me);
    let permits = Arc::new(Semaphore::new(shared.config.max_concurrent_requests));
    let mut notifications = shared.client.notifications();
    loop {
        let notification = match notifications.recv().await {
            Ok(notification) => notification,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(target: "coinslot::nostr", missed, "events arrived faster than they were read");
                continue;
            }
            Err(_) => return,
        };
        let RelayPoolNotification::Event { event, .. } = notification else {
            continue;
        };
        if event.kind == nip74::REQUEST && shared.config.serve_mint {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (shared, responder) = (shared.clone(), responder.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match responder.answer(&event).await {
                    Ok(result) => {
                        shared.answered.fetch_add(1, Ordering::Relaxed);
                        if let Err(err) = shared.client.send_event(&result).await {
                            tracing::warn!(target: "coinslot::nostr", error = %err, "cannot send a result");
                        }
                    }
                    Err(why) => {
                        shared.ignored.fetch_add(1, Ordering::Relaxed);
                        log_ignored(&why);
                    }
                }
            });
        } else if event.kind == nip87::MINT_RECOMMENDATION && event.verify().is_ok() {
            if let Ok(recommendation) = Recommendation::from_event(&event) {
                if recommendation.is_about(&coordinate) {
                    let mut known = shared.recommendations.lock();
                    let newer = known
                        .get(&event.pubkey)
                        .is_none_or(|(at, _)| *at < event.created_at);
                    if newer {
                        tracing::info!(target: "coinslot::nostr", author = %event.pubkey, "recommended");
                        known.insert(event.pubkey, (event.created_at, recommendation));
                    }
                }
            }
        }
    }
}

fn log_ignored(why: &Ignored) {
    tracing::debug!(target: "coinslot::nostr", reason = %why, "ignored an event sent to the mint");
}
