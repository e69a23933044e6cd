//! [`Settings`] (what the builder configured) and [`Shared`] (what every route of one
//! paywall shares): read by every mode and by the settlement core.

use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::Mint;
use http::Method;

use crate::hooks::PassHook;
use crate::pricing::PassScope;
use crate::wire::jwt::{PassKeys, SessionKeys};
use crate::wire::nut24::RequestEncoding;
use crate::Pricing;

/// Settings of a [`PaywallLayer`](crate::PaywallLayer); see the builder methods for each.
#[derive(Clone)]
pub(crate) struct Settings {
    pub pricing: Arc<dyn Pricing>,
    pub mint_url: MintUrl,
    pub accepted_mints: Vec<MintUrl>,
    pub require_lock: bool,
    pub encoding: RequestEncoding,
    pub session_path: String,
    /// Where key balances are read and paid out; `None`: `Bearer cashu…` is a one-shot
    /// token, and keys are not kept.
    pub key_path: Option<String>,
    pub session_ttl: Duration,
    pub min_deposit: u64,
    pub timeout: Option<Duration>,
    /// How long a paid request can be retried (stored answers kept, reruns allowed).
    pub retry_window: Duration,
    /// How many times a retry may run the handler again (routes that allow it).
    pub max_reruns: u32,
    /// The largest answer body kept for retries.
    pub max_stored_answer: usize,
    /// How long a run holds its payment without a sign of life before a retry may take
    /// it over (the instance that ran it is presumed gone).
    pub run_lease: Duration,
    pub receipt_retention: Duration,
    pub max_token_len: usize,
    /// A page where people buy ecash, named in 402 bodies.
    pub topup_page: Option<String>,
    /// Scopes sold as time passes.
    pub passes: Vec<PassScope>,
    /// Where passes are sold (named in answers; the server mounts the endpoint).
    pub pass_path: String,
    /// How long a pass minute lasts (shorter in tests).
    pub pass_minute: Duration,
    /// Told about pass purchases, extensions, expiries and revocations.
    pub pass_hook: Option<Arc<dyn PassHook>>,
    /// How long a `WWW-Authenticate: Payment` challenge may be answered.
    pub payment_challenge_ttl: Duration,
    /// The longest request body a `Payment` challenge is bound to (its `digest`), and the
    /// longest body of a retry that runs again (read to compare it).
    pub payment_body_limit: usize,
    /// Whether challenges ask for the credential in `Payment-Authorization`.
    pub payment_authorization: bool,
}

impl Settings {
    /// The pass scope a request with `method` on `path` belongs to.
    pub fn pass_scope(&self, method: &Method, path: &str) -> Option<&PassScope> {
        self.passes.iter().find(|s| s.matches(method, path))
    }

    /// Whether `path` is the key balance endpoint.
    pub fn is_key_path(&self, path: &str) -> bool {
        self.key_path
            .as_deref()
            .is_some_and(|key| path.trim_end_matches('/') == key)
    }

    /// Whether `path` is the session endpoint or below it.
    pub fn is_session_path(&self, path: &str) -> bool {
        path.strip_prefix(self.session_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// State shared by every route the layer wraps: the mint and the keys derived from its
/// seed. Everything about payments in flight lives in the mint's store, so instances on
/// one store agree.
pub(crate) struct Shared {
    pub mint: Mint,
    pub keys: SessionKeys,
    pub pass_keys: PassKeys,
    /// Binds `Payment` challenges (HMAC-SHA256 keyed by this text, as mpp keys it: 64
    /// hex digits of a secret derived from the seed).
    pub payment_secret: String,
    /// Set once the task that prunes receipts and answers has started.
    pub pruning: std::sync::Once,
    /// This process's name in the runs it records (random per start).
    pub instance: u64,
    /// Whether other processes share the mint's store: if not, a run recorded by another
    /// instance belonged to an earlier process, which is gone.
    pub shared_store: bool,
}

impl Shared {
    pub fn new(mint: Mint) -> Self {
        Self {
            keys: SessionKeys::new(&mint.derive_secret("session-jwt/v1")),
            pass_keys: PassKeys::new(&mint.derive_secret("pass-jwt/v1")),
            payment_secret: hex::encode(mint.derive_secret("paymentauth-hmac/v1")),
            pruning: std::sync::Once::new(),
            instance: rand::random(),
            shared_store: mint.store_is_shared(),
            mint,
        }
    }
}

/// What every paid path is given: the settings and the shared state.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub settings: Arc<Settings>,
    pub shared: Arc<Shared>,
}

impl Ctx {
    pub fn mint(&self) -> &Mint {
        &self.shared.mint
    }
}
