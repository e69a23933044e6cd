//! Time passes: pay once, then use a set of routes (a *scope*) for as many minutes as the
//! token paid for. For services that sell time, not requests: a VPN, a proxy, an arcade.
//!
//! ```
//! use coinslot_layer::pass::PassScope;
//! use coinslot_layer::Price;
//!
//! // 1 sat per minute for everything under /vpn.
//! let scope = PassScope::new("vpn", Price::sat(1)).route("*", "/vpn/*");
//! # let _ = scope;
//! ```
//!
//! How a client uses it:
//!
//! - `POST /pass` (the [`PassEndpoint`], mounted where the server likes) with
//!   `X-Cashu: <token>` and an optional JSON body `{"scope": "vpn", "client_key": "…"}`
//!   (the scope can be left out when only one is sold in the token's unit) →
//!   `200 {"pass", "expires_at", "minutes", "scope"}`. The token buys
//!   `floor(value / price)` minutes; the rest comes back as change in `X-Cashu`. Too little
//!   for one minute → `400` with a Cashu error, the token untouched. Sending the pass too
//!   (`X-Cashu-Pass`) extends it from its expiry (or from now, once it ran out).
//! - A request on a scope's routes with `X-Cashu-Pass: <pass>` goes through without payment
//!   and carries `X-Cashu-Pass-Remaining` (seconds) and `X-Cashu-Pass-Expires` (Unix
//!   seconds). A request with a token instead buys a pass on the spot (the pass comes back
//!   in `X-Cashu-Pass`). Neither → `402` with a request for one minute's price.
//! - An expired, revoked, tampered or out-of-scope pass → `401` with a JSON error; the next
//!   try without it gets a fresh `402`.
//!
//! The pass is a JWT (HS256, key derived from the mint's seed) naming the pass id and its
//! scope. Its expiry lives in the mint's store, written by the same commit that spends the
//! payment: extensions add up under concurrency, a pass survives a restart, and a
//! revocation ([`Passes::revoke`], the admin API) is durable. The JWT's own `exp` is the
//! expiry when it was issued, for the client's information; the store decides.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use coinslot_mint::activity::{Event, PaidWith};
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::{receipt_key, Error, PassPurchase, PassRecord, Payment};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_service::Service;

use crate::layer::{Settings, Shared};
use crate::pricing::Pattern;
use crate::receipt::{InFlight, ReceiptData, ReceiptKind};
use crate::reply::{self, Rejection};
use crate::{nut24, paywall, Price, ResponseBody};

/// `X-Cashu-Pass`: the pass, on requests that use it and on responses that sell it.
pub const X_CASHU_PASS: HeaderName = HeaderName::from_static("x-cashu-pass");
/// `X-Cashu-Pass-Expires`: when the pass runs out, Unix seconds.
pub const X_CASHU_PASS_EXPIRES: HeaderName = HeaderName::from_static("x-cashu-pass-expires");
/// `X-Cashu-Pass-Remaining`: seconds the pass has left.
pub const X_CASHU_PASS_REMAINING: HeaderName = HeaderName::from_static("x-cashu-pass-remaining");

/// The audience every pass carries.
const AUDIENCE: &str = "coinslot-pass";
/// Largest purchase body read.
const MAX_BODY: usize = 16 * 1024;

/// A set of routes one pass opens, and its price per minute.
#[derive(Debug, Clone)]
pub struct PassScope {
    name: String,
    price: Price,
    routes: Vec<(Option<Method>, Pattern)>,
}

impl PassScope {
    /// A scope called `name` (it is written into its passes) costing `price_per_minute`.
    pub fn new(name: &str, price_per_minute: Price) -> Self {
        Self {
            name: name.to_string(),
            price: price_per_minute,
            routes: Vec::new(),
        }
    }

    /// Adds `method` (or `"*"`) on paths matching `pattern` (as in
    /// [`PriceTable`](crate::PriceTable)).
    ///
    /// # Panics
    /// If `method` is not an HTTP method; [`PassScope::try_route`] returns the error.
    #[allow(clippy::panic)] // documented: scopes are built at start-up
    pub fn route(self, method: &str, pattern: &str) -> Self {
        match self.try_route(method, pattern) {
            Ok(scope) => scope,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`PassScope::route`], returning an error for an invalid method.
    pub fn try_route(mut self, method: &str, pattern: &str) -> Result<Self, String> {
        let method =
            match method {
                "*" | "" => None,
                m => Some(Method::from_str(&m.to_ascii_uppercase()).map_err(|_| {
                    format!("invalid HTTP method `{m}` in pass scope {}", self.name)
                })?),
            };
        self.routes.push((method, Pattern::parse(pattern)));
        Ok(self)
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The price of one minute.
    pub fn price(&self) -> &Price {
        &self.price
    }

    /// Whether a request with `method` on `path` is one of this scope's.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.routes
            .iter()
            .any(|(m, pattern)| m.as_ref().is_none_or(|m| m == method) && pattern.matches(path))
    }
}

/// What a pass credential says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    /// The pass id.
    pub pid: String,
    /// The scope it opens.
    pub scope: String,
    /// Its expiry when this credential was issued (the store has the current one).
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Always `coinslot-pass`.
    pub aud: String,
}

/// Signs and checks pass credentials.
#[derive(Clone)]
pub(crate) struct PassKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl PassKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["aud"]);
        // The store holds the expiry (extensions move it); the signature is what counts here.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    fn issue(&self, pid: &str, scope: &str, now: u64, exp: u64) -> Result<String, String> {
        let claims = PassClaims {
            pid: pid.to_string(),
            scope: scope.to_string(),
            exp,
            iat: now,
            aud: AUDIENCE.to_string(),
        };
        // No `typ`: shorter, so a pass fits a SOCKS5 password (at most 255 bytes).
        let header = Header {
            typ: None,
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())
    }

    fn verify(&self, credential: &str) -> Result<PassClaims, PassError> {
        jsonwebtoken::decode::<PassClaims>(credential.trim(), &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| PassError::Invalid(e.to_string()))
    }
}

/// A pass that opens a request now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPass {
    /// The pass id.
    pub id: String,
    /// Its scope.
    pub scope: String,
    /// When it runs out, Unix seconds.
    pub expires_at: u64,
    /// The key its buyer sent, if any.
    pub client_key: Option<String>,
}

impl ValidPass {
    /// Seconds left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// Why a pass does not open a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassError {
    /// Not a pass of this server (bad signature, not a JWT, wrong audience).
    Invalid(String),
    /// It ran out at this Unix time.
    Expired(u64),
    /// The operator revoked it.
    Revoked,
    /// It opens another scope.
    OutOfScope {
        /// The pass's scope.
        has: String,
        /// The scope asked for.
        wanted: String,
    },
    /// Signed by this server, but the store does not know it.
    Unknown,
    /// The store could not be read.
    Storage(String),
}

impl std::error::Error for PassError {}

impl std::fmt::Display for PassError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassError::Invalid(why) => write!(f, "invalid pass: {why}"),
            PassError::Expired(at) => write!(f, "the pass expired at {at} (Unix time)"),
            PassError::Revoked => f.write_str("the pass was revoked"),
            PassError::OutOfScope { has, wanted } => {
                write!(f, "the pass is for scope {has}, not {wanted}")
            }
            PassError::Unknown => f.write_str("unknown pass"),
            PassError::Storage(why) => write!(f, "the pass could not be checked: {why}"),
        }
    }
}

/// What happened to a pass, for a [`PassHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassEventKind {
    /// A new pass was bought.
    Purchase,
    /// An existing pass got more time.
    Extension,
    /// A pass ran out.
    Expiry,
    /// The operator revoked a pass.
    Revocation,
}

impl PassEventKind {
    /// The event's name: `purchase`, `extension`, `expiry`, `revocation`.
    pub fn as_str(self) -> &'static str {
        match self {
            PassEventKind::Purchase => "purchase",
            PassEventKind::Extension => "extension",
            PassEventKind::Expiry => "expiry",
            PassEventKind::Revocation => "revocation",
        }
    }
}

/// A pass lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassEvent {
    /// What happened.
    pub event: PassEventKind,
    /// The pass id.
    pub id: String,
    /// Its scope.
    pub scope: String,
    /// Its expiry (Unix seconds) after the event.
    pub expires_at: u64,
    /// The key its buyer sent, if any (e.g. a WireGuard public key).
    pub client_key: Option<String>,
}

/// Told about passes being bought, extended, running out and revoked, e.g. to add and
/// remove a VPN peer. A purchase waits for the hook, and a failed purchase hook refunds the
/// payment and revokes the pass (which the watcher then reports as a revocation, so any
/// half-done setup is undone). Expiries and revocations are found by
/// [`Passes::spawn_watcher`]; events come at least once (a retried purchase runs the hook
/// again; after a restart, passes that ran out in the hour before are reported again), so
/// a hook must tolerate repeats.
pub trait PassHook: Send + Sync + 'static {
    /// Handles one event; an error on a purchase refunds it.
    fn call(&self, event: PassEvent) -> futures::future::BoxFuture<'static, Result<(), String>>;
}

/// What a purchase gives back.
#[derive(Debug, Clone)]
pub struct Bought {
    /// The pass credential (for `X-Cashu-Pass`, or a proxy's password).
    pub credential: String,
    /// The pass now.
    pub pass: ValidPass,
    /// Minutes this purchase added.
    pub minutes: u64,
    /// Whether it extended an existing pass.
    pub extended: bool,
    /// Change: what the token held beyond whole minutes.
    pub change: Vec<Proof>,
    /// Unit of the change.
    pub unit: CurrencyUnit,
    /// A retry of a purchase made before with the same token (nothing spent this time).
    pub repeat: bool,
}

/// A purchase refused: the HTTP status, Cashu error code and words to answer with. The
/// token was not spent unless the code says so (`11001`), or a refund is attached (a failed
/// purchase hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRefusal {
    /// HTTP status (400, 401, 402, 502, 503).
    pub status: StatusCode,
    /// Cashu error code.
    pub code: u16,
    /// What went wrong.
    pub detail: String,
    /// The payment given back, when it was taken before the refusal.
    pub refund: Option<(CurrencyUnit, Vec<Proof>)>,
}

impl From<Rejection> for PassRefusal {
    fn from(r: Rejection) -> Self {
        Self {
            status: r.status,
            code: r.code,
            detail: r.detail,
            refund: None,
        }
    }
}

impl PassRefusal {
    /// The refusal as a response (with the refund in `X-Cashu`, if any).
    pub(crate) fn into_response<B>(self, settings: &Settings) -> Response<ResponseBody<B>> {
        let mut response = reply::error(self.status, self.code, &self.detail);
        if let Some((unit, proofs)) = self.refund {
            reply::attach_token(&mut response, settings, &unit, proofs);
        }
        response
    }
}

impl std::fmt::Display for PassRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

fn refusal_of(err: &Error) -> PassRefusal {
    match err {
        Error::PassRevoked => PassRefusal {
            status: StatusCode::UNAUTHORIZED,
            code: err.code(),
            detail: "the pass was revoked: buy a new one (the token was not spent)".into(),
            refund: None,
        },
        err if err.is_internal() => PassRefusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: err.code(),
            detail: "the payment could not be recorded; the token was not spent, try again".into(),
            refund: None,
        },
        err => PassRefusal {
            status: StatusCode::BAD_REQUEST,
            code: err.code(),
            detail: err.to_string(),
            refund: None,
        },
    }
}

/// The passes of a paywall: check them, sell them, revoke them. From
/// [`PaywallLayer::passes`](crate::PaywallLayer::passes); cheap to clone.
#[derive(Clone)]
pub struct Passes {
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Passes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passes")
            .field("scopes", &self.settings.passes)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    coinslot_mint::unix_now()
}

impl Passes {
    /// The scopes passes are sold for.
    pub fn scopes(&self) -> &[PassScope] {
        &self.settings.passes
    }

    /// The scope called `name`.
    pub fn scope(&self, name: &str) -> Option<&PassScope> {
        self.settings.passes.iter().find(|s| s.name == name)
    }

    /// The scope a request with `method` on `path` belongs to.
    pub fn scope_of(&self, method: &Method, path: &str) -> Option<&PassScope> {
        self.settings.pass_scope(method, path)
    }

    /// Checks a pass credential: signed here, known, not revoked, not expired, and for
    /// `scope` when one is given.
    pub async fn verify(
        &self,
        credential: &str,
        scope: Option<&str>,
    ) -> Result<ValidPass, PassError> {
        let claims = self.shared.pass_keys.verify(credential)?;
        if let Some(wanted) = scope.filter(|wanted| *wanted != claims.scope) {
            return Err(PassError::OutOfScope {
                has: claims.scope,
                wanted: wanted.to_string(),
            });
        }
        let record = self
            .shared
            .mint
            .pass(&claims.pid)
            .await
            .map_err(|e| PassError::Storage(e.to_string()))?
            .ok_or(PassError::Unknown)?;
        if record.revoked {
            return Err(PassError::Revoked);
        }
        if record.expires_at <= now() {
            return Err(PassError::Expired(record.expires_at));
        }
        Ok(valid(record))
    }

    /// Revokes a pass by id, durably; the record after (`None`: no such pass).
    pub async fn revoke(&self, id: &str) -> Result<Option<PassRecord>, Error> {
        let revoked = self.shared.mint.revoke_pass(id).await?;
        if revoked.is_some() {
            tracing::info!(pass = %id, "pass revoked");
        }
        Ok(revoked)
    }

    /// Buys time on a pass of `scope` with `token`: a new pass, or more time on the one
    /// `extend` names. A retry with the same token gives the same pass back, once paid.
    pub async fn buy(
        &self,
        token: &str,
        scope: &PassScope,
        extend: Option<&str>,
        client_key: Option<String>,
    ) -> Result<Bought, PassRefusal> {
        let (settings, shared) = (&self.settings, &self.shared);
        let (proofs, unit) = paywall::parse_token(settings, shared, token)?;
        if unit != scope.price.unit {
            return Err(Rejection::bad_request(format!(
                "wrong unit: passes for {} are sold in {}, the token is in {unit}",
                scope.name, scope.price.unit
            ))
            .into());
        }
        let pid = match extend {
            Some(credential) => {
                let claims = shared
                    .pass_keys
                    .verify(credential)
                    .map_err(|e| PassRefusal {
                        status: StatusCode::UNAUTHORIZED,
                        code: coinslot_mint::GENERIC_ERROR_CODE,
                        detail: format!("{e}; the token was not spent"),
                        refund: None,
                    })?;
                if claims.scope != scope.name {
                    return Err(Rejection::bad_request(format!(
                        "the pass is for scope {}, not {}",
                        claims.scope, scope.name
                    ))
                    .into());
                }
                claims.pid
            }
            None => crate::session::new_session_id(),
        };
        let key = receipt_key(&proofs);
        let total: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        let Some(_claim) = InFlight::enter(shared, key) else {
            return Err(paywall::pending_rejection().into());
        };
        let template = ReceiptData {
            session: Some(pid.clone()),
            ..ReceiptData::new(ReceiptKind::Pass, unit.to_string())
        };
        let price = scope.price.amount.max(1);
        let payment = Payment {
            unit: unit.clone(),
            amount: price,
            deposit: None,
            require_lock: settings.require_lock,
            receipt: Some((key, paywall::receipt_fn(template))),
            pass: Some(PassPurchase {
                id: pid.clone(),
                scope: scope.name.clone(),
                price_per_minute: price,
                minute_secs: settings.pass_minute.as_secs().max(1),
                client_key,
            }),
        };
        let (pid, minutes, change, fee, first) = match shared.mint.redeem(proofs, payment).await {
            Ok(redeemed) => {
                shared.mint.record(Event::Paid {
                    unit: unit.clone(),
                    amount: redeemed.kept,
                    fee: redeemed.fee,
                    with: PaidWith::Token,
                });
                (pid, redeemed.minutes, redeemed.change, redeemed.fee, true)
            }
            Err(Error::TokenAlreadySpent) => {
                // A retry of a purchase that went through: the same pass and change again.
                let earlier = shared
                    .mint
                    .receipt(&key)
                    .await
                    .map_err(|e| refusal_of(&e))?
                    .and_then(|record| ReceiptData::decode(&record.data));
                match earlier {
                    Some(data) if data.kind == ReceiptKind::Pass && data.refund.is_some() => {
                        let mut back = data.change.clone();
                        back.extend(data.refund.unwrap_or_default());
                        return Err(PassRefusal {
                            status: StatusCode::BAD_GATEWAY,
                            code: coinslot_mint::GENERIC_ERROR_CODE,
                            detail: "this purchase failed and was refunded; the refund is in the X-Cashu header".into(),
                            refund: Some((unit, back)),
                        });
                    }
                    Some(data) if data.kind == ReceiptKind::Pass => {
                        let back: u64 = data.change.iter().map(|p| u64::from(p.amount)).sum();
                        let kept = total.saturating_sub(data.fee).saturating_sub(back);
                        let pid = data.session.unwrap_or_default();
                        (pid, kept / price, data.change, data.fee, false)
                    }
                    _ => {
                        return Err(Rejection::new(
                            StatusCode::BAD_REQUEST,
                            Error::TokenAlreadySpent.code(),
                            "token already spent",
                        )
                        .into())
                    }
                }
            }
            Err(err) => return Err(refusal_of(&err)),
        };
        let record = shared
            .mint
            .pass(&pid)
            .await
            .map_err(|e| refusal_of(&e))?
            .ok_or_else(|| refusal_of(&Error::Storage("the pass just bought is missing".into())))?;
        // Also on a retry (the first answer may have been cut off before the hook ran; hooks
        // tolerate repeats), but only the first attempt is refunded when it fails: a pass
        // that was answered once may have been used since.
        if let Some(hook) = &settings.pass_hook {
            let event = PassEvent {
                event: if extend.is_some() {
                    PassEventKind::Extension
                } else {
                    PassEventKind::Purchase
                },
                id: record.id.clone(),
                scope: record.scope.clone(),
                expires_at: record.expires_at,
                client_key: record.client_key.clone(),
            };
            if let Err(why) = hook.call(event).await {
                if extend.is_none() && first {
                    return Err(self
                        .refund(&key, &record, &unit, minutes * price + fee, change, &why)
                        .await);
                }
                // An extension (the pass was set up before) or a retry: the time stands.
                tracing::warn!(pass = %record.id, error = %why, "pass hook failed; the pass stands");
            }
        }
        let credential = shared
            .pass_keys
            .issue(&pid, &scope.name, now(), record.expires_at)
            .map_err(|e| refusal_of(&Error::Storage(format!("cannot sign the pass: {e}"))))?;
        tracing::info!(scope = %scope.name, minutes, extended = extend.is_some(), "pass bought");
        Ok(Bought {
            credential,
            pass: valid(record),
            minutes,
            extended: extend.is_some(),
            change,
            unit,
            repeat: !first,
        })
    }
}

impl Passes {
    /// Undoes a purchase whose hook failed: the pass is revoked, its price and fee go back
    /// (with the change), recorded in the receipt so a retry gets the refund again.
    async fn refund(
        &self,
        key: &[u8; 32],
        record: &PassRecord,
        unit: &CurrencyUnit,
        owed: u64,
        change: Vec<Proof>,
        why: &str,
    ) -> PassRefusal {
        let shared = &self.shared;
        tracing::warn!(pass = %record.id, error = %why, "pass purchase hook failed; refunding");
        if let Err(err) = shared.mint.revoke_pass(&record.id).await {
            tracing::error!(error = %err, pass = %record.id, "could not revoke a refunded pass");
        }
        let refund = match shared.mint.make_proofs(unit, owed).await {
            Ok(proofs) => proofs,
            Err(err) => {
                tracing::error!(error = %err, amount = owed, "could not make a pass refund");
                Vec::new()
            }
        };
        if let Ok(Some(receipt)) = shared.mint.receipt(key).await {
            if let Some(mut data) = ReceiptData::decode(&receipt.data) {
                data.refund = Some(refund.clone());
                paywall::save_receipt(shared, key, receipt.created_at, &data, &refund).await;
            }
        }
        shared.mint.record(Event::Refunded {
            unit: unit.clone(),
            amount: owed,
            failed: true,
        });
        let mut back = change;
        back.extend(refund);
        PassRefusal {
            status: StatusCode::BAD_GATEWAY,
            code: coinslot_mint::GENERIC_ERROR_CODE,
            detail: format!("the service could not set up the pass ({why}); the payment is refunded in the X-Cashu header"),
            refund: Some((unit.clone(), back)),
        }
    }

    /// Starts a task that reports expiries and revocations to the hook every `every`
    /// (nothing without a hook). Passes that ran out in the hour before it starts are
    /// reported once more, in case a restart hid their expiry.
    /// The task ends when the mint is dropped.
    pub fn spawn_watcher(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let hook = self.settings.pass_hook.clone()?;
        // Weak: the watcher ends with the mint instead of keeping it (and its store) open.
        let weak = self.shared.mint.downgrade();
        Some(tokio::spawn(async move {
            // What each pass looked like at the last look: (expires_at, revoked).
            let mut known: HashMap<String, (u64, bool)> = HashMap::new();
            let mut last = now().saturating_sub(3600);
            let mut first_look = true;
            loop {
                let Some(mint) = weak.upgrade() else {
                    return;
                };
                let at = now();
                match mint.passes(last.min(at.saturating_sub(86_400))).await {
                    Ok(passes) => {
                        for pass in passes {
                            let before = known.get(&pass.id).copied();
                            let kind = if pass.revoked {
                                // Unknown at the first look (revoked before a restart): skip.
                                let newly = before.map_or(!first_look, |(_, revoked)| !revoked);
                                newly.then_some(PassEventKind::Revocation)
                            } else {
                                let ran_out = pass.expires_at <= at && pass.expires_at > last;
                                ran_out.then_some(PassEventKind::Expiry)
                            };
                            known.insert(pass.id.clone(), (pass.expires_at, pass.revoked));
                            if let Some(kind) = kind {
                                let event = PassEvent {
                                    event: kind,
                                    id: pass.id,
                                    scope: pass.scope,
                                    expires_at: pass.expires_at,
                                    client_key: pass.client_key,
                                };
                                if let Err(why) = hook.call(event).await {
                                    tracing::warn!(error = %why, event = kind.as_str(), "pass hook failed");
                                }
                            }
                        }
                        known.retain(|_, (expires_at, _)| *expires_at + 86_400 > at);
                        last = at;
                        first_look = false;
                    }
                    Err(err) => tracing::warn!(error = %err, "could not list passes for the hook"),
                }
                drop(mint);
                tokio::time::sleep(every).await;
            }
        }))
    }
}

fn valid(record: PassRecord) -> ValidPass {
    ValidPass {
        id: record.id,
        scope: record.scope,
        expires_at: record.expires_at,
        client_key: record.client_key,
    }
}

/// Sets the pass headers on a response: the credential (when just bought), expiry and
/// seconds left.
pub(crate) fn attach_pass<B>(
    response: &mut Response<B>,
    pass: &ValidPass,
    credential: Option<&str>,
) {
    let headers = response.headers_mut();
    if let Some(value) = credential.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(X_CASHU_PASS, value);
    }
    headers.insert(X_CASHU_PASS_EXPIRES, HeaderValue::from(pass.expires_at));
    headers.insert(
        X_CASHU_PASS_REMAINING,
        HeaderValue::from(pass.remaining(now())),
    );
    reply::expose(headers);
}

/// The pass credential a request carries in `X-Cashu-Pass`.
pub(crate) fn find_pass(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    match headers.get(X_CASHU_PASS) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| Rejection::bad_request("X-Cashu-Pass is not valid text")),
    }
}

/// `402` for a scope: one minute's price, and where passes are sold.
pub(crate) fn challenge<B>(
    settings: &Settings,
    shared: &Shared,
    scope: &PassScope,
    headers: &HeaderMap,
) -> Response<ResponseBody<B>> {
    let detail = format!(
        "a pass is required: {} {} per minute (scope {}); buy one at {} with X-Cashu, or pay here with X-Cashu (or Authorization: Payment, for one minute)",
        scope.price.amount, scope.price.unit, scope.name, settings.pass_path
    );
    reply::challenge(settings, shared, &scope.price, headers, Some(detail))
}

/// `401` for a pass that does not open this request.
pub(crate) fn refused<B>(settings: &Settings, err: &PassError) -> Response<ResponseBody<B>> {
    let status = match err {
        PassError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let detail = format!(
        "{err}; send a token (X-Cashu) to buy a pass, at {} or on this route",
        settings.pass_path
    );
    reply::error(status, coinslot_mint::GENERIC_ERROR_CODE, &detail)
}

/// What `POST /pass` reads from its body (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseBody {
    /// The scope, when there are several.
    scope: Option<String>,
    /// A key for lifecycle hooks (e.g. a WireGuard public key).
    #[serde(alias = "pubkey")]
    client_key: Option<String>,
}

/// The purchase endpoint as a tower service: mount it at the pass path, e.g.
/// `Router::new().route_service("/pass", layer.pass_endpoint())`.
#[derive(Clone, Debug)]
pub struct PassEndpoint {
    pub(crate) passes: Passes,
}

impl<B> Service<Request<B>> for PassEndpoint
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<http_body_util::Empty<Bytes>>>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let passes = self.passes.clone();
        Box::pin(async move { Ok(purchase(passes, request).await) })
    }
}

async fn purchase<B, R>(passes: Passes, request: Request<B>) -> Response<ResponseBody<R>>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.method() != Method::POST {
        return reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            coinslot_mint::GENERIC_ERROR_CODE,
            "POST a token (X-Cashu) here to buy a pass",
        );
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return reply::bad_request(&format!("body: {e} (at most {MAX_BODY} bytes)")),
    };
    let wanted: PurchaseBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        PurchaseBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(e) => {
                return reply::bad_request(&format!(
                    "body: {e}; send {{\"scope\": \"…\", \"client_key\": \"…\"}} or nothing"
                ))
            }
        }
    };
    let token = match nut24::find_token(&parts.headers) {
        Err(err) => return reply::bad_request(&err.0),
        Ok(token) => token.map(|(token, _)| token),
    };
    // The scope: named in the body, the only one, or the only one sold in the token's unit.
    let unit = token
        .as_deref()
        .and_then(|t| coinslot_mint::cashu::nuts::Token::from_str(t).ok())
        .and_then(|t| t.unit());
    let scope = match (&wanted.scope, passes.scopes()) {
        (Some(name), _) => passes.scope(name),
        (None, [only]) => Some(only),
        (None, all) => {
            let mut in_unit = all.iter().filter(|s| Some(&s.price.unit) == unit.as_ref());
            match (in_unit.next(), in_unit.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        }
    };
    let Some(scope) = scope.cloned() else {
        let names: Vec<&str> = passes.scopes().iter().map(|s| s.name()).collect();
        return reply::bad_request(&format!(
            "scope: name one of {} in the body, e.g. {{\"scope\": \"{}\"}}",
            names.join(", "),
            names.first().copied().unwrap_or("…")
        ));
    };
    let (settings, shared) = (&passes.settings, &passes.shared);
    let Some(token) = token else {
        return challenge(settings, shared, &scope, &parts.headers);
    };
    let extend = match find_pass(&parts.headers) {
        Ok(extend) => extend,
        Err(rejection) => return rejection.into_response(),
    };
    match passes.buy(&token, &scope, extend, wanted.client_key).await {
        Ok(bought) => {
            let mut response = reply::json(
                StatusCode::OK,
                &json!({
                    "pass": bought.credential,
                    "expires_at": bought.pass.expires_at,
                    "minutes": bought.minutes,
                    "scope": scope.name(),
                    "extended": bought.extended,
                }),
            );
            attach_pass(&mut response, &bought.pass, Some(&bought.credential));
            reply::attach_token(&mut response, settings, &bought.unit, bought.change);
            response
        }
        Err(refusal) => refusal.into_response(settings),
    }
}
