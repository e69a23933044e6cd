//! [`PaywallLayer`]: the builder users configure, and the state every route shares.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::Mint;
use parking_lot::Mutex;
use tower_layer::Layer;

use crate::nut24::RequestEncoding;
use crate::session::SessionKeys;
use crate::{Paywall, Pricing};

/// A configuration value the layer cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Settings of a [`PaywallLayer`]; see the builder methods for each.
#[derive(Clone)]
pub(crate) struct Settings {
    pub pricing: Arc<dyn Pricing>,
    pub mint_url: MintUrl,
    pub accepted_mints: Vec<MintUrl>,
    pub require_lock: bool,
    pub encoding: RequestEncoding,
    pub session_path: String,
    pub session_ttl: Duration,
    pub min_deposit: u64,
    pub timeout: Option<Duration>,
    pub retry_window: Duration,
    pub max_replays: u32,
    pub receipt_retention: Duration,
    pub max_token_len: usize,
    /// A page where people buy ecash, named in 402 bodies.
    pub topup_page: Option<String>,
    /// Scopes sold as time passes.
    pub passes: Vec<crate::pass::PassScope>,
    /// Where passes are sold (named in answers; the server mounts the endpoint).
    pub pass_path: String,
    /// How long a pass minute lasts (shorter in tests).
    pub pass_minute: Duration,
    /// Told about pass purchases, extensions, expiries and revocations.
    pub pass_hook: Option<Arc<dyn crate::pass::PassHook>>,
    /// How long a `WWW-Authenticate: Payment` challenge may be answered.
    pub payment_challenge_ttl: Duration,
    /// The longest request body a `Payment` challenge is bound to (its `digest`).
    pub payment_body_limit: usize,
}

impl Settings {
    /// The pass scope a request with `method` on `path` belongs to.
    pub fn pass_scope(&self, method: &http::Method, path: &str) -> Option<&crate::pass::PassScope> {
        self.passes.iter().find(|s| s.matches(method, path))
    }
}

/// State shared by every route the layer wraps: the mint, the session keys and the set of
/// tokens whose request is running right now.
pub(crate) struct Shared {
    pub mint: Mint,
    pub keys: SessionKeys,
    pub pass_keys: crate::pass::PassKeys,
    /// Binds `Payment` challenges (HMAC-SHA256), derived from the mint's seed.
    pub payment_key: [u8; 32],
    pub in_flight: Mutex<HashSet<[u8; 32]>>,
    /// Responses to send again on an `Idempotency-Key` retry of a `Payment` credential.
    pub stored: Arc<crate::stored::StoredResponses>,
}

/// The tower [`Layer`] that puts routes behind a paywall. See the [crate docs](crate).
#[derive(Clone)]
pub struct PaywallLayer {
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PaywallLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaywallLayer")
            .field("mint_url", &self.settings.mint_url.to_string())
            .field("session_path", &self.settings.session_path)
            .finish_non_exhaustive()
    }
}

impl PaywallLayer {
    /// A paywall charging what `pricing` says, redeeming against `mint`, which clients
    /// reach at `mint_url` (named in every payment request and in change tokens).
    ///
    /// Defaults: tokens of `mint_url` only, no P2PK lock required, `creqA` requests,
    /// sessions at `/cashu/session` valid for 24 hours, no handler timeout, retries of a
    /// paid request honoured twice within 10 minutes, receipts kept for 24 hours.
    ///
    /// Must be called inside a tokio runtime: it starts a task that prunes old receipts.
    pub fn new(mint: Mint, mint_url: &str, pricing: impl Pricing) -> Result<Self, ConfigError> {
        let mint_url = parse_mint_url(mint_url)?;
        let keys = SessionKeys::new(&mint.derive_secret("session-jwt/v1"));
        let pass_keys = crate::pass::PassKeys::new(&mint.derive_secret("pass-jwt/v1"));
        let settings = Settings {
            pricing: Arc::new(pricing),
            accepted_mints: vec![mint_url.clone()],
            mint_url,
            require_lock: false,
            encoding: RequestEncoding::CreqA,
            session_path: "/cashu/session".into(),
            session_ttl: Duration::from_secs(24 * 3600),
            min_deposit: 1,
            timeout: None,
            retry_window: Duration::from_secs(600),
            max_replays: 2,
            receipt_retention: Duration::from_secs(24 * 3600),
            max_token_len: 64 * 1024,
            topup_page: None,
            passes: Vec::new(),
            pass_path: "/pass".into(),
            pass_minute: Duration::from_secs(60),
            pass_hook: None,
            payment_challenge_ttl: crate::paymentauth::CHALLENGE_TTL,
            payment_body_limit: 1 << 20,
        };
        let payment_key = mint.derive_secret("paymentauth-hmac/v1");
        let shared = Arc::new(Shared {
            mint,
            keys,
            pass_keys,
            payment_key,
            in_flight: Mutex::new(HashSet::new()),
            stored: Arc::default(),
        });
        let layer = Self {
            settings: Arc::new(settings),
            shared,
        };
        layer.spawn_pruner();
        Ok(layer)
    }

    fn update(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Also accepts tokens naming this URL (the same mint reached another way, e.g. an
    /// onion address).
    pub fn accept_mint_url(self, url: &str) -> Result<Self, ConfigError> {
        let url = parse_mint_url(url)?;
        Ok(self.update(|s| s.accepted_mints.push(url)))
    }

    /// Requires every proof to be P2PK-locked to the mint's key (the payment request says
    /// so), so a token read in transit is worthless to anyone else.
    pub fn require_lock(self, require: bool) -> Self {
        self.update(|s| s.require_lock = require)
    }

    /// The payment-request encoding of `402`s for clients that do not ask with
    /// `X-Cashu-Accept`.
    pub fn request_encoding(self, encoding: RequestEncoding) -> Self {
        self.update(|s| s.encoding = encoding)
    }

    /// Where the session endpoints live (default `/cashu/session`).
    pub fn session_path(self, path: &str) -> Self {
        let path = format!("/{}", path.trim_matches('/'));
        self.update(|s| s.session_path = path)
    }

    /// How long a session credential is valid; every top-up renews it.
    pub fn session_ttl(self, ttl: Duration) -> Self {
        self.update(|s| s.session_ttl = ttl)
    }

    /// The smallest deposit that opens a session (default 1).
    pub fn min_deposit(self, amount: u64) -> Self {
        self.update(|s| s.min_deposit = amount.max(1))
    }

    /// Fails paid requests whose handler takes longer (504) and refunds them.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.update(|s| s.timeout = Some(timeout))
    }

    /// How long, and how often, a client may repeat a paid request with the same token
    /// after losing the response, without paying again.
    pub fn retries(self, window: Duration, max_replays: u32) -> Self {
        self.update(|s| {
            s.retry_window = window;
            s.max_replays = max_replays;
        })
    }

    /// How long receipts (what each token paid for) are kept.
    pub fn receipt_retention(self, retention: Duration) -> Self {
        self.update(|s| s.receipt_retention = retention)
    }

    /// The longest token accepted in a header, in bytes (default 64 KiB).
    pub fn max_token_len(self, len: usize) -> Self {
        self.update(|s| s.max_token_len = len)
    }

    /// A page where people buy ecash (absolute URL or path), named as `topup` in 402 bodies
    /// instead of the mint's quote endpoint.
    pub fn topup_page(self, url: &str) -> Self {
        let url = url.to_string();
        self.update(|s| s.topup_page = Some(url))
    }

    /// Sells time passes for `scope`'s routes (see [`crate::pass`]); call once per scope.
    /// Its routes are then opened by a pass, whatever the pricing says about them.
    pub fn pass_scope(self, scope: crate::pass::PassScope) -> Self {
        self.update(|s| s.passes.push(scope))
    }

    /// Where the server mounts [`PaywallLayer::pass_endpoint`] (default `/pass`); answers
    /// name it.
    pub fn pass_path(self, path: &str) -> Self {
        let path = path.to_string();
        self.update(|s| s.pass_path = path)
    }

    /// How long a `WWW-Authenticate: Payment` challenge may be answered (default 5 min).
    pub fn payment_challenge_ttl(self, ttl: Duration) -> Self {
        self.update(|s| s.payment_challenge_ttl = ttl.max(Duration::from_secs(1)))
    }

    /// The longest request body (default 1 MiB) a `WWW-Authenticate: Payment` challenge
    /// is bound to with `digest` (RFC 9530): the body of an unpaid request up to this size
    /// is read to hash it, and a credential answering such a challenge pays only for a
    /// request with the same body. Longer bodies get a challenge without `digest`.
    pub fn payment_body_limit(self, bytes: usize) -> Self {
        self.update(|s| s.payment_body_limit = bytes)
    }

    /// How long a pass minute lasts (default 60 s; shorter for tests and demos).
    pub fn pass_minute(self, minute: Duration) -> Self {
        self.update(|s| s.pass_minute = minute.max(Duration::from_secs(1)))
    }

    /// Runs `hook` on pass purchases and extensions (a failed purchase hook refunds), and,
    /// with [`Passes::spawn_watcher`](crate::pass::Passes::spawn_watcher), on expiries and
    /// revocations.
    pub fn pass_hook(self, hook: Arc<dyn crate::pass::PassHook>) -> Self {
        self.update(|s| s.pass_hook = Some(hook))
    }

    /// The passes: check, sell, revoke (for a proxy or an admin API).
    pub fn passes(&self) -> crate::pass::Passes {
        crate::pass::Passes {
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
        }
    }

    /// The mint this paywall redeems against.
    pub fn mint(&self) -> &Mint {
        &self.shared.mint
    }

    /// The prepaid sessions: check a credential, debit it (for a proxy charging per byte).
    pub fn sessions(&self) -> crate::session::Sessions {
        crate::session::Sessions {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The purchase endpoint (`POST` with `X-Cashu`), a tower service to mount at the pass
    /// path: `router.route_service("/pass", layer.pass_endpoint())`.
    pub fn pass_endpoint(&self) -> crate::pass::PassEndpoint {
        crate::pass::PassEndpoint {
            passes: self.passes(),
        }
    }

    fn spawn_pruner(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: old receipts will not be pruned");
            return;
        };
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        let retention = self.settings.receipt_retention;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                let cutoff = coinslot_mint::unix_now().saturating_sub(retention.as_secs());
                match shared.mint.prune_receipts(cutoff).await {
                    Ok(pruned) => tracing::debug!(pruned, "pruned receipts"),
                    Err(err) => tracing::warn!(error = %err, "could not prune receipts"),
                }
            }
        });
    }
}

fn parse_mint_url(url: &str) -> Result<MintUrl, ConfigError> {
    MintUrl::from_str(url).map_err(|e| ConfigError(format!("invalid mint URL `{url}`: {e}")))
}

impl<S> Layer<S> for PaywallLayer {
    type Service = Paywall<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Paywall {
            inner,
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
        }
    }
}
