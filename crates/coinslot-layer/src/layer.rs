//! [`PaywallLayer`]: the builder users configure. It hands out the paywall's handles
//! ([`Passes`](crate::pass::Passes), [`Sessions`](crate::session::Sessions), the pass
//! purchase endpoint) and, as a tower [`Layer`], the [`Paywall`] service.

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::Mint;
use tower_layer::Layer;

use crate::hooks::PassHook;
use crate::modes::pass::PassEndpoint;
use crate::modes::session::Sessions;
use crate::passes::Passes;
use crate::pricing::PassScope;
use crate::settings::{Ctx, Settings, Shared};
use crate::wire::nut24::RequestEncoding;
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

/// The tower [`Layer`] that puts routes behind a paywall. See the [crate docs](crate).
#[derive(Clone)]
pub struct PaywallLayer {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PaywallLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaywallLayer")
            .field("mint_url", &self.settings.mint_url.to_string())
            .field("session_path", &self.settings.session_path)
            .field("key_path", &self.settings.key_path)
            .finish_non_exhaustive()
    }
}

impl PaywallLayer {
    /// A paywall charging what `pricing` says, redeeming against `mint`, which clients
    /// reach at `mint_url` (named in every payment request and in change tokens).
    ///
    /// Defaults: tokens of `mint_url` only, no P2PK lock required, `creqA` requests,
    /// sessions at `/cashu/session` valid for 24 hours, no handler timeout; a retry of a
    /// paid request gets its stored answer (up to 1 MiB) within 10 minutes, and may run
    /// again twice where the route's [`Retry`](crate::Retry) rule allows it; receipts are
    /// kept for 24 hours.
    ///
    /// Applying the layer (inside a tokio runtime) starts a task that prunes old receipts
    /// and expired answers, with the settings the layer has then.
    pub fn new(mint: Mint, mint_url: &str, pricing: impl Pricing) -> Result<Self, ConfigError> {
        let settings = Settings::new(Arc::new(pricing), parse_mint_url(mint_url)?);
        Ok(Self {
            settings: Arc::new(settings),
            shared: Arc::new(Shared::new(mint)),
        })
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
        }
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

    /// Where key balances are read (`GET`) and paid out (`DELETE`), default
    /// `/cashu/balance`; `None` turns keys off. With keys on, `Authorization: Bearer
    /// cashu…` is an API key: its first use deposits the token into a balance of its own,
    /// and every request with it is paid from that balance (what OpenAI-style SDKs need:
    /// they send the same key every time). With keys off it is a one-shot token, like
    /// `X-Cashu`. The unused part of a [`Meter`](crate::Meter)ed stream paid with a one-shot
    /// token also goes to that token's key balance.
    pub fn key_path(self, path: Option<&str>) -> Self {
        let path = path.map(|p| format!("/{}", p.trim_matches('/')));
        self.update(|s| s.key_path = path)
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

    /// How long a client may repeat a paid request with the same payment after losing its
    /// answer (the stored answer is kept that long; default 10 minutes), and how many times
    /// such a retry may run the handler again on routes whose [`Retry`](crate::Retry) rule
    /// allows it (default 2).
    pub fn retries(self, window: Duration, max_reruns: u32) -> Self {
        self.update(|s| {
            s.retry_window = window;
            s.max_reruns = max_reruns;
        })
    }

    /// The largest answer body kept for retries (default 1 MiB). A bigger answer is not
    /// kept: its retry runs again where the route allows it (`GET`, `HEAD` by default), and
    /// is refused as spent otherwise.
    pub fn max_stored_answer(self, bytes: usize) -> Self {
        self.update(|s| s.max_stored_answer = bytes)
    }

    /// How long a paid run holds its payment without a sign of life (default 30 s; a run
    /// renews it while it works). When it runs out with no answer recorded (the instance
    /// that ran it died), a retry runs it again where the route allows it, or refunds it.
    pub fn run_lease(self, lease: Duration) -> Self {
        self.update(|s| s.run_lease = lease.max(Duration::from_secs(2)))
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
    pub fn pass_scope(self, scope: PassScope) -> Self {
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

    /// Whether `Payment` challenges ask for the credential in `Payment-Authorization`
    /// (`header="Payment-Authorization"`) instead of `Authorization` (default off): for
    /// services whose clients keep `Authorization` for the service's own log-in. Credentials
    /// are taken from either header whatever this says. Note that mpp-rs's reqwest
    /// extension declines such challenges (mppx and pympp pay them).
    pub fn payment_authorization(self, on: bool) -> Self {
        self.update(|s| s.payment_authorization = on)
    }

    /// How long a pass minute lasts (default 60 s; shorter for tests and demos).
    pub fn pass_minute(self, minute: Duration) -> Self {
        self.update(|s| s.pass_minute = minute.max(Duration::from_secs(1)))
    }

    /// Runs `hook` on pass purchases and extensions (a failed purchase hook refunds), and,
    /// with [`Passes::spawn_watcher`](crate::pass::Passes::spawn_watcher), on expiries and
    /// revocations.
    pub fn pass_hook(self, hook: Arc<dyn PassHook>) -> Self {
        self.update(|s| s.pass_hook = Some(hook))
    }

    /// The passes: check, sell, revoke (for a proxy or an admin API).
    pub fn passes(&self) -> Passes {
        Passes { ctx: self.ctx() }
    }

    /// The mint this paywall redeems against.
    pub fn mint(&self) -> &Mint {
        &self.shared.mint
    }

    /// The prepaid sessions: check a credential, debit it (for a proxy charging per byte).
    pub fn sessions(&self) -> Sessions {
        Sessions { ctx: self.ctx() }
    }

    /// The purchase endpoint (`POST` with `X-Cashu`), a tower service to mount at the pass
    /// path: `router.route_service("/pass", layer.pass_endpoint())`.
    pub fn pass_endpoint(&self) -> PassEndpoint {
        PassEndpoint {
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
        // Answers are big and short-lived: pruned often; receipts once an hour.
        let every = (self.settings.retry_window / 4).clamp(Duration::from_secs(1), PRUNE_EVERY);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut last_receipts = 0;
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                let now = coinslot_mint::unix_now();
                match shared.mint.prune_answers(now).await {
                    Ok(pruned) => tracing::debug!(pruned, "pruned stored answers"),
                    Err(err) => tracing::warn!(error = %err, "could not prune stored answers"),
                }
                if now.saturating_sub(last_receipts) >= 3600 {
                    last_receipts = now;
                    let cutoff = now.saturating_sub(retention.as_secs());
                    match shared.mint.prune_receipts(cutoff).await {
                        Ok(pruned) => tracing::debug!(pruned, "pruned receipts"),
                        Err(err) => tracing::warn!(error = %err, "could not prune receipts"),
                    }
                }
            }
        });
    }
}

fn parse_mint_url(url: &str) -> Result<MintUrl, ConfigError> {
    MintUrl::from_str(url).map_err(|e| ConfigError(format!("invalid mint URL `{url}`: {e}")))
}

/// The longest pause between two prunings of stored answers.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl<S> Layer<S> for PaywallLayer {
    type Service = Paywall<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.shared.pruning.call_once(|| self.spawn_pruner());
        Paywall {
            inner,
            ctx: self.ctx(),
        }
    }
}

impl Settings {
    /// The defaults (see [`PaywallLayer::new`]).
    fn new(pricing: Arc<dyn Pricing>, mint_url: MintUrl) -> Self {
        Settings {
            pricing,
            accepted_mints: vec![mint_url.clone()],
            mint_url,
            require_lock: false,
            encoding: RequestEncoding::CreqA,
            session_path: "/cashu/session".into(),
            key_path: Some("/cashu/balance".into()),
            session_ttl: Duration::from_secs(24 * 3600),
            min_deposit: 1,
            timeout: None,
            retry_window: Duration::from_secs(600),
            max_reruns: 2,
            max_stored_answer: 1 << 20,
            run_lease: Duration::from_secs(30),
            receipt_retention: Duration::from_secs(24 * 3600),
            max_token_len: 64 * 1024,
            topup_page: None,
            passes: Vec::new(),
            pass_path: "/pass".into(),
            pass_minute: Duration::from_secs(60),
            pass_hook: None,
            payment_challenge_ttl: crate::wire::payment::CHALLENGE_TTL,
            payment_body_limit: 1 << 20,
            payment_authorization: false,
        }
    }
}

/// Settings with the defaults, for unit tests.
#[cfg(test)]
pub(crate) fn test_settings() -> Settings {
    let url = parse_mint_url("http://127.0.0.1:3338").unwrap_or_else(|e| panic!("{e:?}"));
    Settings::new(Arc::new(crate::Price::sat(1)), url)
}
