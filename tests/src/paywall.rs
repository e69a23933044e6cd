//! [`PaidApp`]: an axum app behind the paywall, with the mint's API on the same origin, on
//! `127.0.0.1:0`, over a sled-backed [`coinslot::EmbeddedMint`] in a data directory.
//!
//! Routes (prices in sat unless said):
//! - `GET /free`: free;
//! - `GET /search?q=…`: 2, answers with the [`Paid`] it saw;
//! - `GET /fail`: 2, answers 500; `GET /panic`: 2, panics; `/slow` (any method): 2, sleeps 300 ms;
//! - `GET /gate`: 2, waits until [`PaidApp::open_gate`];
//! - `GET /metered?cost=N`: reserves 10, charges `N`;
//! - `GET /credit`: 3 `credit` (a second unit of the mint);
//! - `POST /echo?wait_ms=N&fail_after=M`: 2, answers `{"body": <the body>, "runs": <how
//!   many times any echo ran>}` after N ms (see [`PaidApp::runs`]), with a 500 once more
//!   than M runs happened; `POST /echo-rerun` and
//!   `/echo-never`: the same with [`Retry::Rerun`] and [`Retry::Never`]; `GET /big?bytes=N`:
//!   2, N bytes of `x` (an echo run too);
//! - `/vpn/…` (any method): pass scope `vpn`, 2 sat a minute; `/game/…`: pass scope `game`,
//!   3 `credit` a minute; both answer with the pass they saw; passes are sold at `/pass`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use coinslot::cashu::nuts::CurrencyUnit;
use coinslot::crates::store_sled::SledStore;
use coinslot::{
    Charge, EmbeddedMint, FakeBackend, Meter, Mint, MintConfig, Paid, PassScope, Passes,
    PaywallLayer, Price, PriceTable, Retry, UnitConfig, ValidPass,
};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio::task::JoinHandle;

/// How the paywall of a [`PaidApp`] is configured.
#[derive(Debug, Clone, Default)]
pub struct PaidAppOptions {
    /// Require P2PK locks to the mint's key.
    pub require_lock: bool,
    /// Handler timeout.
    pub timeout: Option<Duration>,
    /// Session credential lifetime.
    pub session_ttl: Option<Duration>,
    /// Address to listen on (default `127.0.0.1:0`).
    pub listen: Option<std::net::SocketAddr>,
    /// Length of a pass minute (default 60 s).
    pub pass_minute: Option<Duration>,
    /// How long a `Payment` challenge may be answered (default 5 min).
    pub payment_challenge_ttl: Option<Duration>,
    /// The largest answer kept for retries (default 1 MiB).
    pub max_stored_answer: Option<usize>,
    /// How long retries are answered (default 10 min).
    pub retry_window: Option<Duration>,
    /// How long a run holds its payment without a sign of life (default 30 s).
    pub run_lease: Option<Duration>,
    /// Challenges ask for the credential in `Payment-Authorization`.
    pub payment_authorization: bool,
}

/// A running paid app.
pub struct PaidApp {
    /// Base URL (also the mint's URL).
    pub url: String,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// Seed and store directory.
    pub data_dir: PathBuf,
    /// The embedded mint.
    pub mint: Mint,
    /// The paywall's passes.
    pub passes: Passes,
    /// The key of the admin API mounted under `/admin`.
    pub admin_key: coinslot_admin::AdminKey,
    /// The mint's store (sled), whose commits can be made to fail.
    pub store: Arc<crate::flaky::FlakyStore>,
    gate: Arc<Semaphore>,
    runs: Arc<std::sync::atomic::AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The mint configuration of every [`PaidApp`]: `sat` and `credit` (1 sat per credit).
pub fn mint_config() -> MintConfig {
    MintConfig {
        units: vec![
            UnitConfig::new("sat"),
            UnitConfig {
                msat_per_unit: Some(1000),
                ..UnitConfig::new("credit")
            },
        ],
        ..MintConfig::default()
    }
}

fn pricing() -> PriceTable {
    PriceTable::new()
        .free("GET", "/free")
        .route("GET", "/search", Price::sat(2))
        .route("GET", "/whoami", Price::sat(2))
        .route("GET", "/fail", Price::sat(2))
        .route("GET", "/panic", Price::sat(2))
        .route("POST", "/echo", Price::sat(2))
        .route("POST", "/echo-rerun", Price::sat(2).retry(Retry::Rerun))
        .route("POST", "/echo-never", Price::sat(2).retry(Retry::Never))
        .route("GET", "/big", Price::sat(2))
        .route("*", "/slow", Price::sat(2))
        .route("GET", "/gate", Price::sat(2))
        .route("GET", "/metered", Price::metered(10, CurrencyUnit::Sat))
        .route(
            "GET",
            "/metered-stream",
            Price::metered(10, CurrencyUnit::Sat),
        )
        .route(
            "GET",
            "/credit",
            Price::new(3, CurrencyUnit::custom("credit")),
        )
}

fn paid_json(paid: &Paid) -> Value {
    json!({
        "amount": paid.amount,
        "unit": paid.unit.to_string(),
        "keyset": paid.keyset_id.map(|k| k.to_string()),
        "session": paid.session,
        "metered": paid.metered,
        "replay": paid.replay,
    })
}

impl PaidApp {
    /// A token for the admin API with every scope.
    pub fn admin_token(&self) -> String {
        self.admin_key
            .issue(
                "test",
                &coinslot_admin::Scope::ALL,
                Duration::from_secs(600),
                coinslot::crates::mint::unix_now(),
            )
            .unwrap_or_default()
    }

    /// Starts the app with its data in `data_dir`.
    pub async fn start(data_dir: &Path, options: PaidAppOptions) -> anyhow::Result<PaidApp> {
        crate::init_tracing();
        let backend = Arc::new(FakeBackend::new(Default::default()));
        std::fs::create_dir_all(data_dir)?;
        let seed =
            coinslot::embedded::load_or_create_seed(&data_dir.join(coinslot::embedded::SEED_FILE))?;
        let sled = SledStore::open(&data_dir.join(coinslot::embedded::STORE_DIR))?;
        let store = Arc::new(crate::flaky::FlakyStore::new(Arc::new(sled.clone())));
        let mint = Mint::new(mint_config(), seed, store.clone(), backend).await?;
        let embedded = EmbeddedMint { mint, store: sled };
        let listen = options
            .listen
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let mut paywall = PaywallLayer::new(embedded.mint.clone(), &url, pricing())?
            .require_lock(options.require_lock);
        if let Some(timeout) = options.timeout {
            paywall = paywall.timeout(timeout);
        }
        if let Some(ttl) = options.session_ttl {
            paywall = paywall.session_ttl(ttl);
        }
        if let Some(minute) = options.pass_minute {
            paywall = paywall.pass_minute(minute);
        }
        if let Some(ttl) = options.payment_challenge_ttl {
            paywall = paywall.payment_challenge_ttl(ttl);
        }
        if let Some(bytes) = options.max_stored_answer {
            paywall = paywall.max_stored_answer(bytes);
        }
        if let Some(window) = options.retry_window {
            paywall = paywall.retries(window, 2);
        }
        if let Some(lease) = options.run_lease {
            paywall = paywall.run_lease(lease);
        }
        let paywall = paywall
            .payment_authorization(options.payment_authorization)
            .pass_scope(PassScope::new("vpn", Price::sat(2)).route("*", "/vpn/*"))
            .pass_scope(
                PassScope::new("game", Price::new(3, CurrencyUnit::custom("credit")))
                    .route("*", "/game/*"),
            );
        let passes = paywall.passes();
        let admin_key = coinslot_admin::AdminKey::from_secret(&[42u8; 32]);
        let admin = coinslot_admin::router(coinslot_admin::Admin {
            mint: embedded.mint.clone(),
            mint_url: url.parse()?,
            key: admin_key.clone(),
            activity: coinslot_admin::ActivityLog::follow(&embedded.mint, 64),
            prices: None,
            max_credit: None,
            nostr: None,
        });
        let pass_endpoint = paywall.pass_endpoint();
        let show_pass = |Extension(pass): Extension<ValidPass>| async move {
            Json(json!({ "pass": pass.id, "scope": pass.scope, "expires_at": pass.expires_at }))
        };
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let echo_runs = Arc::clone(&runs);
        let big_runs = Arc::clone(&runs);
        let echo = move |Query(q): Query<std::collections::HashMap<String, String>>,
                         body: String| {
            let runs = Arc::clone(&echo_runs);
            async move {
                if let Some(ms) = q.get("wait_ms").and_then(|w| w.parse().ok()) {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let runs = 1 + runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let failing = q
                    .get("fail_after")
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| runs > n);
                let status = if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                (status, Json(json!({ "body": body, "runs": runs })))
            }
        };
        let gate = Arc::new(Semaphore::new(0));
        let gate_for_route = Arc::clone(&gate);
        let app = Router::new()
            .route("/free", get(|| async { "free" }))
            .route(
                "/search",
                get(
                    |Query(q): Query<std::collections::HashMap<String, String>>,
                     Extension(paid): Extension<Paid>| async move {
                        Json(json!({ "q": q.get("q"), "paid": paid_json(&paid) }))
                    },
                ),
            )
            .route(
                "/whoami",
                // What the handler sees of the request's credentials.
                get(|headers: axum::http::HeaderMap| async move {
                    let seen = |name: &str| {
                        let values: Vec<&str> = headers
                            .get_all(name)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect();
                        json!(values)
                    };
                    Json(json!({
                        "authorization": seen("authorization"),
                        "payment-authorization": seen("payment-authorization"),
                    }))
                }),
            )
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
            )
            .route("/panic", get(panics))
            .route("/echo", axum::routing::post(echo.clone()))
            .route("/echo-rerun", axum::routing::post(echo.clone()))
            .route("/echo-never", axum::routing::post(echo))
            .route(
                "/big",
                get(
                    move |Query(q): Query<std::collections::HashMap<String, String>>| {
                        let runs = Arc::clone(&big_runs);
                        async move {
                            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let bytes = q.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
                            "x".repeat(bytes)
                        }
                    },
                ),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            )
            .route(
                "/gate",
                get(move || {
                    let gate = Arc::clone(&gate_for_route);
                    async move {
                        let _permit = gate.acquire().await;
                        "through the gate"
                    }
                }),
            )
            .route(
                "/metered",
                get(
                    |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        let cost = q.get("cost").and_then(|c| c.parse().ok()).unwrap_or(10);
                        (Extension(Charge(cost)), format!("cost {cost}"))
                    },
                ),
            )
            .route(
                "/metered-stream",
                get(
                    |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        // Three chunks, and the cost known with the last one.
                        let cost: Option<u64> = q.get("cost").and_then(|c| c.parse().ok());
                        let meter = Meter::new();
                        let at_end = meter.clone();
                        let chunks = futures::stream::iter(0..3u8).then(move |i| {
                            let at_end = at_end.clone();
                            async move {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                if i == 2 {
                                    if let Some(cost) = cost {
                                        at_end.charge(cost);
                                    }
                                }
                                Ok::<_, std::convert::Infallible>(format!("chunk {i}\n"))
                            }
                        });
                        let mut response =
                            axum::response::Response::new(axum::body::Body::from_stream(chunks));
                        response.extensions_mut().insert(meter);
                        response
                    },
                ),
            )
            .route(
                "/credit",
                get(|Extension(paid): Extension<Paid>| async move { Json(paid_json(&paid)) }),
            )
            .route("/vpn/{*rest}", axum::routing::any(show_pass))
            .route("/game/{*rest}", axum::routing::any(show_pass))
            .route_service("/pass", pass_endpoint)
            .merge(admin)
            .merge(coinslot::mint_api(
                embedded.mint.clone(),
                Default::default(),
            ))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
            .layer(paywall);
        let (tx, rx) = oneshot::channel::<()>();
        let sled = embedded.store.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await?;
            sled.flush().await?;
            Ok(())
        });
        Ok(PaidApp {
            url,
            addr,
            data_dir: data_dir.to_path_buf(),
            mint: embedded.mint,
            passes,
            admin_key,
            store,
            gate,
            runs,
            shutdown: Some(tx),
            task,
        })
    }

    /// How many times the echo and big handlers ran in this process.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets `n` requests waiting on `/gate` through.
    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// `GET {url}{path}` with extra headers; returns status, headers and body text.
    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, String)> {
        self.send(reqwest::Method::GET, path, headers).await
    }

    /// Any request with extra headers; returns status, headers and body text.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, String)> {
        self.send_body(method, path, headers, Vec::new()).await
    }

    /// `POST {url}{path}` with extra headers and `body`.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, String)> {
        self.send_body(reqwest::Method::POST, path, headers, body.into())
            .await
    }

    async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, reqwest::header::HeaderMap, String)> {
        let client = reqwest::Client::new();
        let mut request = client.request(method, format!("{}{path}", self.url));
        if !body.is_empty() {
            request = request.body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok((status, headers, body))
    }

    /// Stops the server gracefully (the store is flushed and closed).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await??;
        // The mint (and with it the sled store) must be dropped before the directory is
        // reopened: sled locks it.
        drop(self.mint);
        drop(self.passes);
        drop(self.store);
        Ok(())
    }
}

#[allow(clippy::panic)]
async fn panics() -> &'static str {
    panic!("handler panicked on purpose")
}

/// [`PaidApp::start`] in a temporary directory, returned with it (dropped, it is removed).
pub async fn paid_app(options: PaidAppOptions) -> anyhow::Result<(PaidApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), options).await?;
    Ok((app, dir))
}

/// A response body as JSON; panics (failing the test) with the body when it is not JSON.
pub fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The `code` of a Cashu error body; panics (failing the test) when there is none.
pub fn code(body: &str) -> u64 {
    json(body)["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no code: {body}"))
}

/// A header value as text (empty if missing).
pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
