//! # coinslotd
//!
//! The Coinslot server: the embedded closed-loop mint ([`coinslot_mint`], on sled or, for
//! several instances, PostgreSQL: [`Store`]) behind
//! the Cashu HTTP API ([`coinslot_http`]), and in front of your HTTP API as a paid reverse
//! proxy ([`coinslot_proxy`] behind the [`coinslot::PaywallLayer`] paywall), with the operator's admin
//! API ([`coinslot_admin`]), Prometheus metrics, health checks and abuse limits.
//!
//! What one server answers, in order:
//! - `/v1/…`: the mint (NUT-01…09, 17, 19; melt disabled);
//! - `/admin/…`: the admin API (JWT scopes), unless `[admin] listen` gives it its own address;
//!   `/admin/nostr` reports the mint's presence on nostr;
//! - `/health`, `/ready`, `/metrics`;
//! - the top-up page (`/` by default, [`coinslot_topup`]), its assets under `/_coinslot/`;
//! - everything else: the paywall, then the upstream its path and host select (the
//!   paywall's session endpoint `/cashu/session` included).
//!
//! With `[forward] listen`, a paid forward proxy ([`coinslot_forward`]: HTTP CONNECT,
//! absolute-form and SOCKS5 on one port) listens there, opened by passes of
//! `[forward] scope`.
//!
//! With `[nostr] relays` (or `COINSLOT_NOSTR_RELAYS`), the mint is also on nostr
//! ([`coinslot_nostr`]): it announces itself (NIP-87 kind 38172), follows recommendations
//! of itself, and answers mint requests sent over nostr with the same API.
//!
//! [`run`] is the one way to start a server (the mini-redis pattern), used alike by the
//! binary, the tests, the load tools and the examples: give it the [`Listeners`] (the public
//! one, bound by the caller, and any others the caller bound already; the rest are bound from
//! the config), a [`Config`] and a shutdown future. It opens the mint ([`open`]: seed, store,
//! backend), calls [`Listeners::on_ready`] (the binary prints its URL there, so only once the
//! store is open; tests take the [`Mint`] from it), serves until the shutdown future
//! completes, then drains connections and flushes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use coinslot::crates::store_sled::SledStore;
use coinslot::{EmbeddedMint, Mint, PaywallLayer};
use coinslot_admin::{ActivityLog, Admin, AdminKey, NostrStatus, ADMIN_KEY_FILE};
use coinslot_mint::{FakeBackend, PaymentBackend};
use coinslot_nostr::{MintIdentity, NostrService};
use coinslot_proxy::{Proxy, ProxyRoutes, UsageLayer};
use coinslot_store_postgres::{PostgresOptions, PostgresStore};
use coinslot_topup::{PriceLine, TopupPage};
use http::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub mod config;
pub mod hooks;
pub mod limits;
pub mod metrics;
pub mod price_feed;
pub mod prices;
pub mod server;

pub use config::{
    BackendConfig, ClnBackendConfig, Config, ConfigError, LnbitsBackendConfig, LndBackendConfig,
    NwcBackendConfig,
};

pub use coinslot::embedded::{load_or_create_seed, SEED_FILE, STORE_DIR};
/// The `[proxy]` section's types, for programs that build a configuration in code.
pub use coinslot_proxy as proxy;

/// The configured Lightning backend.
pub async fn backend(config: &BackendConfig) -> anyhow::Result<Arc<dyn PaymentBackend>> {
    Ok(match config {
        BackendConfig::Fake(fake) => Arc::new(FakeBackend::new(fake.clone())),
        BackendConfig::Nwc(nwc) => {
            let options = coinslot_backend_nwc::NwcOptions {
                timeout: Duration::from_secs(nwc.timeout_secs),
            };
            Arc::new(coinslot_backend_nwc::NwcBackend::connect(&nwc.connection()?, options).await?)
        }
        BackendConfig::Lnd(lnd) => {
            coinslot_backend_cdk::lnd(coinslot_backend_cdk::LndOptions {
                address: lnd.address.clone(),
                cert_file: lnd.cert_file.clone(),
                macaroon_file: lnd.macaroon_file.clone(),
            })
            .await?
        }
        BackendConfig::Cln(cln) => {
            coinslot_backend_cdk::cln(coinslot_backend_cdk::ClnOptions {
                rpc_socket: cln.rpc_socket.clone(),
            })
            .await?
        }
        BackendConfig::Lnbits(lnbits) => Arc::new(
            coinslot_backend_lnbits::LnbitsBackend::connect(
                coinslot_backend_lnbits::LnbitsOptions {
                    api_url: lnbits.api_url.clone(),
                    invoice_key: lnbits.invoice_key()?,
                },
            )
            .await?,
        ),
    })
}

/// Proves the backend works for what the mint needs: creates a small invoice (1 sat,
/// expiring in a minute, never paid) and looks it up. Used by `coinslotd config check
/// --connect`.
pub async fn probe_backend(backend: &dyn PaymentBackend) -> anyhow::Result<String> {
    let invoice = backend
        .create_invoice(1000, "coinslotd connection check", 60)
        .await
        .context("cannot create an invoice")?;
    let status = backend
        .invoice_status(&invoice.lookup_id)
        .await
        .context("created an invoice but cannot look it up")?;
    anyhow::ensure!(
        status == coinslot_mint::backend::InvoiceStatus::Unpaid,
        "a fresh invoice is reported {status:?}, not unpaid"
    );
    Ok(invoice.bolt11)
}

/// Opens the data directory (seed + store), the backend and the mint.
pub async fn open(config: &Config) -> anyhow::Result<Opened> {
    let backend = backend(&config.backend).await?;
    let identity = identity_key(config)?;
    let Some(url) = &config.store.url else {
        let embedded = EmbeddedMint::open_with_identity(
            &config.data_dir,
            config.mint.clone(),
            backend,
            identity.as_ref(),
        )
        .await?;
        return Ok(Opened {
            mint: embedded.mint,
            store: Store::Sled(embedded.store),
        });
    };
    // The seed still lives in the data directory: every instance on one database needs
    // the same one (the mint refuses to start on keysets another seed made).
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let mut seed = load_or_create_seed(&config.data_dir.join(SEED_FILE))?;
    if let Some(identity) = &identity {
        seed = seed.with_identity(identity)?;
    }
    let options = PostgresOptions {
        schema: config.store.schema.clone(),
        max_connections: config.store.max_connections,
        acquire_timeout: Duration::from_secs(config.store.acquire_timeout_secs),
        ca_file: config.store.ca_file.clone(),
    };
    let store = PostgresStore::connect(url, options)
        .await
        .with_context(|| format!("store.url {}", config::hide_password(url)))?;
    let tls = store.encrypted().await.unwrap_or(false);
    tracing::info!(url = %config::hide_password(url), schema = ?config.store.schema, tls, "PostgreSQL store");
    let mint = Mint::new(config.mint.clone(), seed, Arc::new(store.clone()), backend).await?;
    Ok(Opened {
        mint,
        store: Store::Postgres(store),
    })
}

/// An opened mint and the store under it.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The mint.
    pub mint: Mint,
    /// Its store.
    pub store: Store,
}

/// The store a server runs on.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded, in the data directory (the default).
    Sled(SledStore),
    /// A PostgreSQL database, shared by every instance on it.
    Postgres(PostgresStore),
}

impl Store {
    /// Makes everything written so far durable, before the process stops (sled; a
    /// PostgreSQL commit is durable when it returns).
    pub async fn flush(&self) -> anyhow::Result<()> {
        match self {
            Store::Sled(store) => store.flush().await?,
            Store::Postgres(store) => store.close(),
        }
        Ok(())
    }
}

/// The identity key the operator gave: `COINSLOT_NOSTR_NSEC`, else `[nostr] nsec_file`;
/// `None` to derive it from the seed.
fn identity_key(config: &Config) -> anyhow::Result<Option<[u8; 32]>> {
    if let Ok(nsec) = std::env::var(NSEC_ENV) {
        let key = coinslot_nostr::parse_secret_key(&nsec)
            .map_err(|e| anyhow::anyhow!("{NSEC_ENV}: {e}"))?;
        return Ok(Some(key));
    }
    let Some(path) = &config.nostr.nsec_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("nostr.nsec_file {}: {e}", path.display()))?;
    let key = coinslot_nostr::parse_secret_key(&text)
        .map_err(|e| anyhow::anyhow!("nostr.nsec_file {}: {e}", path.display()))?;
    Ok(Some(key))
}

/// The environment variable that gives the mint's identity as an `nsec`.
pub const NSEC_ENV: &str = "COINSLOT_NOSTR_NSEC";

/// The HTTP applications of one server.
#[derive(Debug)]
pub struct Apps {
    /// Everything on the public listener (see the crate docs for its routes).
    pub public: Router,
    /// The admin API, when `[admin] listen` puts it on a listener of its own.
    pub admin: Option<Router>,
    /// The forward proxy, when `[forward] listen` is set.
    pub forward: Option<coinslot_forward::ForwardProxy>,
}

/// The HTTP applications of a server for `mint`; `nostr` feeds the admin API's
/// `/admin/nostr` when the mint is on nostr; `stored_prices` is the price list in the store
/// ([`prices::load`]), which the proxy starts with instead of the config file's.
pub fn apps(
    mint: &Mint,
    config: &Config,
    nostr: Option<Arc<dyn NostrStatus>>,
    stored_prices: Option<prices::StoredPrices>,
) -> anyhow::Result<Apps> {
    let public_url = config.public_url()?;
    let metrics = metrics::Metrics::follow(mint)?;

    let mut proxy_config = config.proxy.clone();
    if let Some(upstreams) = stored_prices.as_ref().and_then(|s| s.upstreams.clone()) {
        tracing::warn!(
            version = stored_prices.as_ref().map_or(0, |s| s.version),
            "using the prices set through the admin API (kept in the store) instead of the config file's; DELETE /admin/prices goes back"
        );
        proxy_config.upstreams = upstreams;
    }
    let routes = ProxyRoutes::new(&proxy_config, config.units()).map_err(|e| ConfigError(e.0))?;
    let mut paywall = PaywallLayer::new(mint.clone(), &public_url, routes.clone())?
        .require_lock(config.paywall.require_lock)
        .session_ttl(Duration::from_secs(config.paywall.session_ttl_secs))
        .min_deposit(config.paywall.min_deposit)
        .timeout(Duration::from_secs(config.paywall.timeout_secs))
        .retries(
            Duration::from_secs(config.paywall.retry_window_secs),
            config.paywall.max_reruns,
        )
        .max_stored_answer(
            usize::try_from(config.paywall.max_stored_answer_bytes).unwrap_or(usize::MAX),
        )
        .run_lease(Duration::from_secs(config.paywall.run_lease_secs))
        .key_path(config.paywall.key_path())
        .payment_authorization(config.paywall.payment_authorization);
    if config.topup.enabled {
        paywall = paywall.topup_page(&format!("{public_url}{}", config.topup.path));
    }
    let scopes = config.passes.scopes(&config.units())?;
    let sells_passes = !scopes.is_empty();
    paywall = paywall
        .pass_path(&config.passes.path)
        .pass_minute(Duration::from_secs(config.passes.minute_secs));
    for scope in scopes {
        paywall = paywall.pass_scope(scope);
    }
    if let Some(hooks) = hooks::ConfiguredHooks::new(&config.passes.hooks) {
        paywall = paywall.pass_hook(Arc::new(hooks));
        if sells_passes {
            paywall
                .passes()
                .spawn_watcher(Duration::from_secs(config.passes.hooks.watch_secs));
        }
    }
    let pass_endpoint = paywall.pass_endpoint();
    let forward = match config.forward.listen {
        Some(_) => Some(
            coinslot_forward::ForwardProxy::new(
                &paywall,
                &config.forward,
                &format!("{public_url}{}", config.passes.path),
            )
            .map_err(ConfigError)?,
        ),
        None => None,
    };
    let max_body = usize::try_from(config.limits.max_body_bytes).unwrap_or(usize::MAX);
    let service = ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(max_body))
        .map_request(|request: http::Request<_>| request.map(axum::body::Body::new))
        .layer(UsageLayer::new(routes.clone()))
        .layer(paywall)
        .service(Proxy::new(routes.clone()).map_err(|e| ConfigError(e.0))?);

    let discovery = Discovery::new(config, &public_url, routes.clone());
    let mut app = coinslot_http::router(mint.clone(), config.http.clone())
        .route("/health", get(health))
        .route("/ready", get(ready).with_state(mint.clone()))
        .route("/metrics", get(metrics::scrape).with_state(metrics.clone()))
        .route("/openapi.json", get(openapi).with_state(discovery.clone()))
        .route("/llms.txt", get(llms).with_state(discovery));
    if sells_passes {
        app = app.route_service(&config.passes.path, pass_endpoint);
    }
    if config.relay.enabled() {
        let mint_url = public_url
            .parse()
            .with_context(|| format!("public_url `{public_url}`"))?;
        let front = coinslot_relay::RelayFront::new(
            mint.clone(),
            mint_url,
            config.relay.rules()?,
            &config.relay.upstream,
        )
        .map_err(|e| ConfigError(format!("relay.upstream: {e}")))?;
        tracing::info!(path = %config.relay.path, upstream = %config.relay.upstream, "paid relay front");
        app = app.merge(front.router(&config.relay.path));
    }
    if config.topup.enabled {
        let title = config
            .topup
            .title
            .clone()
            .unwrap_or_else(|| config.mint.info.name.clone());
        let shown = routes.clone();
        let page = TopupPage::new()
            .title(title)
            .path(&config.topup.path)
            .amounts(config.topup.amounts.clone())
            .mint_url(&public_url)
            .prices(move || price_lines(&shown));
        app = app.merge(page.router());
    }
    let mut admin = None;
    let price_book = prices::ProxyPriceBook::new(
        routes.clone(),
        mint.clone(),
        config.proxy.upstreams.clone(),
        stored_prices.as_ref(),
    );
    price_book.follow();
    if config.admin.enabled {
        let key = AdminKey::watch(&config.data_dir.join(ADMIN_KEY_FILE))?;
        let mint_url = public_url
            .parse()
            .with_context(|| format!("public_url `{public_url}`"))?;
        let router = coinslot_admin::router(Admin {
            mint: mint.clone(),
            mint_url,
            key,
            activity: ActivityLog::follow(mint, config.admin.activity_entries),
            prices: Some(Arc::new(price_book)),
            max_credit: config.admin.max_credit,
            nostr,
        });
        if config.admin.listen.is_some() {
            admin = Some(router.layer(TraceLayer::new_for_http()));
        } else {
            app = app.merge(router);
        }
    }
    let limits = limits::Limits::new(&config.limits, metrics.clone());
    let public = app
        .fallback_service(service)
        .layer(middleware::from_fn_with_state(limits, limits::enforce))
        .layer(middleware::from_fn_with_state(
            metrics,
            metrics::time_requests,
        ))
        .layer(TraceLayer::new_for_http());
    Ok(Apps {
        public,
        admin,
        forward,
    })
}

/// What the top-up page shows: every paid route of every upstream, as configured now.
fn price_lines(routes: &ProxyRoutes) -> Vec<PriceLine> {
    let current = routes.load();
    current
        .config()
        .upstreams
        .iter()
        .flat_map(|upstream| &upstream.routes)
        .filter_map(|route| {
            let amount = route.price.filter(|_| !route.free)?;
            let mut line = PriceLine::new(&route.method, &route.path, amount, &route.unit);
            if route.metered {
                line = line.metered();
            }
            if let Some(description) = &route.description {
                line = line.description(description.clone());
            }
            Some(line)
        })
        .collect()
}

/// `GET /health`: the process is up.
/// What `/openapi.json` and `/llms.txt` are made of: the proxy's prices as they are now
/// (prices changed through the admin API show at once).
#[derive(Clone)]
struct Discovery {
    title: Arc<str>,
    public_url: Arc<str>,
    routes: ProxyRoutes,
}

impl Discovery {
    fn new(config: &Config, public_url: &str, routes: ProxyRoutes) -> Self {
        Self {
            title: Arc::from(config.mint.info.name.as_str()),
            public_url: Arc::from(public_url),
            routes,
        }
    }
}

/// The discovery document agents (and `mppx validate`) read before paying.
async fn openapi(State(discovery): State<Discovery>) -> Json<serde_json::Value> {
    let operations = discovery.routes.operations();
    let version = env!("CARGO_PKG_VERSION");
    Json(coinslot::discovery::openapi(
        &discovery.title,
        version,
        &operations,
        Some("/llms.txt"),
    ))
}

/// The same prices as text.
async fn llms(State(discovery): State<Discovery>) -> String {
    let operations = discovery.routes.operations();
    coinslot::discovery::llms_txt(&discovery.title, &discovery.public_url, &operations)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: the store's health check passes, so payments can be recorded.
async fn ready(State(mint): State<Mint>) -> Response {
    match mint.health().await {
        Ok(_) => Json(json!({ "status": "ready" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "detail": "the store does not answer" })),
            )
                .into_response()
        }
    }
}

/// The listeners [`run`] serves on, and what it tells its caller once the mint is open.
///
/// The public listener is required; the others are optional: a listener not given here is
/// bound from the config (`[forward] listen`, `[admin] listen`). Tests and embedders bind
/// them on port 0 to learn their addresses before the server starts.
///
/// ```no_run
/// # async fn example(config: coinslotd::Config) -> anyhow::Result<()> {
/// let public = tokio::net::TcpListener::bind(config.listen).await?;
/// let listeners = coinslotd::Listeners::new(public)
///     .on_ready(|ready| println!("coinslotd: mint listening on http://{}", ready.addr));
/// coinslotd::run(listeners, config, std::future::pending()).await
/// # }
/// ```
pub struct Listeners {
    /// Everything public: the mint, the paywall and the proxy, the top-up page, health and
    /// metrics, and the admin API unless it has a listener of its own.
    public: TcpListener,
    /// The forward proxy's (`[forward] listen`).
    forward: Option<TcpListener>,
    /// The admin API's (`[admin] listen`).
    admin: Option<TcpListener>,
    /// Told once the mint is open.
    on_ready: Option<Box<dyn FnOnce(Ready) + Send>>,
}

impl Listeners {
    /// The public listener: the mint, the paywall and the proxy, the top-up page, health
    /// and metrics, and the admin API unless `[admin] listen` gives it its own. The others
    /// are bound from the config unless given.
    pub fn new(public: TcpListener) -> Self {
        Self {
            public,
            forward: None,
            admin: None,
            on_ready: None,
        }
    }

    /// The forward proxy on `listener` instead of binding `[forward] listen` (which must be
    /// set: [`run`] fails otherwise).
    pub fn forward(mut self, listener: TcpListener) -> Self {
        self.forward = Some(listener);
        self
    }

    /// The admin API on `listener` instead of binding `[admin] listen` (which must be set,
    /// with the admin API enabled: [`run`] fails otherwise).
    pub fn admin(mut self, listener: TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// Calls `hook` once the mint and its store are open, before the first request is
    /// served. The public listener is bound by then, so requests made from the hook on wait
    /// in its backlog until the server takes them. The binary prints its URL here.
    pub fn on_ready(mut self, hook: impl FnOnce(Ready) + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(hook));
        self
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("public", &self.public)
            .field("forward", &self.forward)
            .field("admin", &self.admin)
            .field("on_ready", &self.on_ready.as_ref().map(|_| "FnOnce(Ready)"))
            .finish()
    }
}

/// What [`run`] hands the hook given to [`Listeners::on_ready`]: the server's mint is open.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The public listener's address.
    pub addr: SocketAddr,
    /// The URL clients reach the server at: `public_url`, or `http://<addr>`.
    pub url: String,
    /// The open mint (tests and load tools make tokens with it).
    pub mint: Mint,
}

/// Opens the mint from `config` ([`open`]) and serves it on `listeners` until `shutdown`
/// completes, then drains connections and flushes the store. The one way to start a server:
/// the binary, the tests and the examples all call it.
pub async fn run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners {
        public: listener,
        forward: forward_listener,
        admin: admin_listener,
        on_ready,
    } = listeners;
    // A listener given for a server the config does not start would be closed unused.
    anyhow::ensure!(
        forward_listener.is_none() || config.forward.listen.is_some(),
        "a forward proxy listener was given, but [forward] listen is not set"
    );
    anyhow::ensure!(
        admin_listener.is_none() || (config.admin.enabled && config.admin.listen.is_some()),
        "an admin listener was given, but [admin] enabled and listen do not give the admin API its own"
    );
    let opened = open(&config).await?;
    let mut config = config;
    let public_addr = listener.local_addr()?;
    if config.public_url.is_none() {
        // Listening on port 0: the real address is known only now.
        config.public_url = Some(format!("http://{public_addr}"));
    }
    if let Some(on_ready) = on_ready {
        on_ready(Ready {
            addr: public_addr,
            url: config.public_url()?,
            mint: opened.mint.clone(),
        });
    }
    price_feed::spawn(&opened.mint);
    let nostr = start_nostr(&opened.mint, &config).await?;
    let stored_prices = prices::load(&opened.mint, &config.data_dir).await?;
    let apps = apps(
        &opened.mint,
        &config,
        nostr
            .clone()
            .map(|n| Arc::new(NostrReport(n)) as Arc<dyn NostrStatus>),
        stored_prices,
    )?;
    // One shutdown signal for every listener.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let limits = server::ServerLimits::from(&config.limits);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let admin = match (apps.admin, config.admin.listen) {
        (Some(router), Some(addr)) => {
            let admin_listener = match admin_listener {
                Some(bound) => bound,
                None => TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("admin.listen: cannot listen on {addr}"))?,
            };
            tracing::info!(addr = %admin_listener.local_addr()?, "admin API on its own listener");
            let server = server::serve(
                admin_listener,
                router,
                limits,
                until_stopped(stopped.clone()),
            );
            Some(tokio::spawn(server))
        }
        _ => None,
    };
    let forward = match (apps.forward, config.forward.listen) {
        (Some(proxy), Some(addr)) => {
            let forward_listener = match forward_listener {
                Some(bound) => bound,
                None => TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("forward.listen: cannot listen on {addr}"))?,
            };
            let proxy = proxy.own_address(public_addr);
            let server = proxy.serve(forward_listener, until_stopped(stopped.clone()));
            Some(tokio::spawn(server))
        }
        _ => None,
    };
    tracing::info!(
        addr = %public_addr,
        pubkey = %opened.mint.pubkey(),
        npub = %opened.mint.npub()?,
        data_dir = %config.data_dir.display(),
        upstreams = config.proxy.upstreams.len(),
        "coinslotd serving"
    );
    server::serve(listener, apps.public, limits, until_stopped(stopped))
        .await
        .context("HTTP server failed")?;
    if let Some(admin) = admin {
        admin.await?.context("admin HTTP server failed")?;
    }
    if let Some(forward) = forward {
        forward.await?.context("forward proxy failed")?;
    }
    if let Some(nostr) = nostr {
        nostr.shutdown().await;
    }
    // The last second's earnings, before the store closes.
    if let Err(err) = opened.mint.flush_earnings().await {
        tracing::warn!(error = %err, "the last earnings could not be written to the ledger");
    }
    opened.store.flush().await?;
    tracing::info!("coinslotd stopped");
    Ok(())
}

/// Puts the mint on nostr when `[nostr] relays` lists any: announcements and requests
/// over nostr go to the same mint API as HTTP.
async fn start_nostr(mint: &Mint, config: &Config) -> anyhow::Result<Option<Arc<NostrService>>> {
    if !config.nostr.enabled() {
        return Ok(None);
    }
    let mut urls = vec![config.public_url()?];
    urls.extend(config.nostr.urls.iter().cloned());
    let identity = MintIdentity::of(mint, urls, &config.network())?;
    let api = coinslot_http::router(mint.clone(), config.http.clone());
    let mut service = NostrService::start(identity, api, config.nostr.clone()).await?;
    service.follow_spends(mint);
    Ok(Some(Arc::new(service)))
}

/// The nostr service's report for the admin API.
struct NostrReport(Arc<NostrService>);

impl NostrStatus for NostrReport {
    fn report(&self) -> std::pin::Pin<Box<dyn Future<Output = serde_json::Value> + Send + '_>> {
        Box::pin(async move { json!(self.0.report().await) })
    }
}
