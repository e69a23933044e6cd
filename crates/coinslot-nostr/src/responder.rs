//! Answers kind 27401 requests addressed to the mint with kind 27402 results.
//!
//! A request is answered by the same axum service that answers HTTP (the mint's Cashu API),
//! so the rules, limits and errors are identical whichever way a wallet comes in. Before
//! that, an event is dropped without an answer when it is not for this mint, too old or
//! too far in the future, too large, already seen (a replay), badly signed, over its
//! author's or the mint's request rate, or when its content does not decrypt to a request: a
//! stranger learns nothing from garbage, and a flood costs the mint no signatures.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::Router;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::{BodyExt, Limited};
use nostr_sdk::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::nip74::{self, Request, Response, MAX_PLAINTEXT};

/// Which requests the responder looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponderLimits {
    /// Requests older than this are ignored, in seconds (and their ids forgotten after it).
    pub max_age_secs: u64,
    /// Requests dated further in the future are ignored, in seconds.
    pub max_future_secs: u64,
    /// Largest encrypted content looked at, in bytes (NIP-44 caps plaintext at 64 KiB,
    /// about 88 000 bytes once encrypted).
    pub max_content_bytes: usize,
    /// Most request ids remembered to refuse replays; the oldest are forgotten first.
    pub max_remembered: usize,
    /// Requests answered per minute for one pubkey, in a burst or spread out (0: no limit).
    pub per_pubkey_per_minute: u32,
    /// Requests answered per minute in all (0: no limit).
    pub per_minute: u32,
}

impl Default for ResponderLimits {
    fn default() -> Self {
        Self {
            max_age_secs: 300,
            max_future_secs: 60,
            max_content_bytes: 90_000,
            max_remembered: 100_000,
            per_pubkey_per_minute: 120,
            per_minute: 6000,
        }
    }
}

/// Why an event got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    /// Not a kind 27401 event.
    #[error("not a mint request (kind {0})")]
    Kind(u16),
    /// No `p` tag naming this mint.
    #[error("not addressed to this mint")]
    NotForUs,
    /// Outside the accepted time window.
    #[error("created_at outside the accepted window")]
    Stale,
    /// Content larger than the limit.
    #[error("content of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The same event id was seen before.
    #[error("already answered (replay)")]
    Duplicate,
    /// The id or signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The content does not decrypt or is not a request.
    #[error("content is not an encrypted request: {0}")]
    Garbage(String),
    /// Over the author's or the mint's request rate.
    #[error("over the request rate")]
    RateLimited,
}

/// The per-pubkey limiter forgets pubkeys whose allowance is full again once in this many
/// checks (a sweep is a pass over all of them, so not on every request).
const SWEEP_EVERY: u64 = 4096;

/// Turns request events into signed result events.
#[derive(Debug)]
pub struct Responder {
    keys: Keys,
    service: Router,
    limits: ResponderLimits,
    seen: Mutex<Seen>,
    per_pubkey: Option<DefaultKeyedRateLimiter<PublicKey>>,
    total: Option<DefaultDirectRateLimiter>,
    checks: AtomicU64,
}

fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

impl Responder {
    /// A responder signing with `keys` (the mint's identity) that answers through `service`
    /// (the mint's HTTP API, e.g. `coinslot_http::router`).
    pub fn new(keys: Keys, service: Router, limits: ResponderLimits) -> Self {
        Self {
            keys,
            service,
            per_pubkey: per_minute(limits.per_pubkey_per_minute).map(RateLimiter::keyed),
            total: per_minute(limits.per_minute).map(RateLimiter::direct),
            limits,
            seen: Mutex::new(Seen::default()),
            checks: AtomicU64::new(0),
        }
    }

    /// The mint's nostr public key.
    pub fn public_key(&self) -> PublicKey {
        self.keys.public_key()
    }

    /// The result event for `event`, or why it gets none.
    pub async fn answer(&self, event: &Event) -> Result<Event, Ignored> {
        let request = self.admit(event)?;
        let response = match request.route() {
            Err(bad) => Response::error(&request.request_id, "bad_request", bad.0),
            Ok(route) => self.call(&request, route).await,
        };
        tracing::debug!(
            target: "coinslot::nostr",
            method = ?request.method,
            ok = response.error.is_none(),
            "answered a request over nostr"
        );
        self.seal(event, &response)
            .map_err(|e| Ignored::Garbage(format!("cannot seal the result: {e}")))
    }

    /// Every check before the request is run; the event id is remembered only once the
    /// event is known to be for us and genuine, so forged ids cannot evict real ones.
    fn admit(&self, event: &Event) -> Result<Request, Ignored> {
        if event.kind != nip74::REQUEST {
            return Err(Ignored::Kind(event.kind.as_u16()));
        }
        let ours = self.keys.public_key();
        if !event.tags.public_keys().any(|pk| *pk == ours) {
            return Err(Ignored::NotForUs);
        }
        let now = Timestamp::now().as_secs();
        let at = event.created_at.as_secs();
        if at + self.limits.max_age_secs < now || at > now + self.limits.max_future_secs {
            return Err(Ignored::Stale);
        }
        if event.content.len() > self.limits.max_content_bytes {
            return Err(Ignored::TooLarge(event.content.len()));
        }
        event.verify().map_err(|_| Ignored::BadSignature)?;
        if !self.seen.lock().insert(event.id, at, now, &self.limits) {
            return Err(Ignored::Duplicate);
        }
        // After the signature and replay checks, so nobody spends another's allowance.
        self.within_rate(&event.pubkey)?;
        let plain = nip44::decrypt(self.keys.secret_key(), &event.pubkey, &event.content)
            .map_err(|e| Ignored::Garbage(e.to_string()))?;
        serde_json::from_str(&plain).map_err(|e| Ignored::Garbage(e.to_string()))
    }

    fn within_rate(&self, author: &PublicKey) -> Result<(), Ignored> {
        if let Some(limiter) = &self.per_pubkey {
            let allowed = limiter.check_key(author).is_ok();
            if self
                .checks
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(SWEEP_EVERY)
            {
                limiter.retain_recent();
            }
            if !allowed {
                return Err(Ignored::RateLimited);
            }
        }
        match &self.total {
            Some(limiter) if limiter.check().is_err() => Err(Ignored::RateLimited),
            _ => Ok(()),
        }
    }

    async fn call(&self, request: &Request, route: nip74::Route) -> Response {
        let id = &request.request_id;
        let mut builder = http::Request::builder()
            .method(route.method)
            .uri(route.path.as_str())
            .header(http::header::HOST, "nostr");
        if route.body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let http_request = match builder.body(Body::from(route.body.unwrap_or_default())) {
            Ok(request) => request,
            Err(e) => return Response::error(id, "bad_request", e.to_string()),
        };
        let Ok(answer) = self.service.clone().oneshot(http_request).await;
        let status = answer.status();
        match Limited::new(answer.into_body(), MAX_PLAINTEXT)
            .collect()
            .await
        {
            Ok(body) => Response::from_http(id, status, &body.to_bytes()),
            Err(_) => too_large(id),
        }
    }

    fn seal(&self, request: &Event, response: &Response) -> Result<Event, String> {
        let mut plain = serde_json::to_string(response).map_err(|e| e.to_string())?;
        if plain.len() > MAX_PLAINTEXT {
            plain = serde_json::to_string(&too_large(&response.request_id))
                .map_err(|e| e.to_string())?;
        }
        let content = nip44::encrypt(
            self.keys.secret_key(),
            &request.pubkey,
            plain,
            nip44::Version::V2,
        )
        .map_err(|e| e.to_string())?;
        EventBuilder::new(nip74::RESULT, content)
            .tags([Tag::public_key(request.pubkey), Tag::event(request.id)])
            .sign_with_keys(&self.keys)
            .map_err(|e| e.to_string())
    }
}

fn too_large(request_id: &str) -> Response {
    Response::error(
        request_id,
        "too_large",
        "the answer is larger than a nostr event can carry (64 KiB); use the mint's HTTP API",
    )
}

/// Recently answered request ids, forgotten once their events are too old to be admitted.
#[derive(Debug, Default)]
struct Seen {
    ids: HashMap<EventId, u64>,
    order: VecDeque<(EventId, u64)>,
}

impl Seen {
    /// Whether `id` is new (and now remembered).
    fn insert(&mut self, id: EventId, at: u64, now: u64, limits: &ResponderLimits) -> bool {
        let horizon = now.saturating_sub(limits.max_age_secs);
        while let Some((old, at)) = self.order.front().copied() {
            if at >= horizon && self.order.len() < limits.max_remembered {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&old);
        }
        if self.ids.insert(id, at).is_some() {
            return false;
        }
        self.order.push_back((id, at));
        true
    }
}
