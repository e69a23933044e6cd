//! Harness for the reverse-proxy tests: a sample upstream API on `127.0.0.1:0` and a
//! `coinslotd` in front of it with a price table. `/v1/run?wait_ms=N` (`POST` 2 sat) counts
//! its runs ([`Signals::runs`]) and echoes the body.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use coinslot_admin::{AdminKey, Scope, ADMIN_KEY_FILE};
use coinslot_proxy::{ProxyConfig, RouteConfig, UpstreamConfig};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Notify;

use crate::TestServer;

/// Signals between a test and the sample upstream's streaming routes.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Lets `/stream` send the rest of its body.
    pub release: Arc<Notify>,
    /// Fired by `/upload` once the first chunk of the request body arrived.
    pub first_chunk: Arc<Notify>,
    /// How many times `/v1/run` ran.
    pub runs: Arc<std::sync::atomic::AtomicU64>,
}

impl Signals {
    /// How many times the upstream's `/v1/run` ran.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The sample upstream: an API that knows nothing about Cashu.
pub fn upstream_app(signals: Signals) -> Router {
    let release = signals.release.clone();
    let first_chunk = signals.first_chunk.clone();
    let runs = signals.runs.clone();
    Router::new()
        .route("/ws/echo", get(echo_socket))
        .route("/ws/live", get(echo_socket))
        .route(
            "/v1/run",
            axum::routing::any(
                move |axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, String>,
                >,
                      body: String| {
                    let runs = runs.clone();
                    async move {
                        // Counted as it starts: a run cut off while it waits still counts.
                        let run = 1 + runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if let Some(ms) = q.get("wait_ms").and_then(|w| w.parse().ok()) {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        }
                        axum::Json(json!({ "body": body, "run": run }))
                    }
                },
            ),
        )
        .route(
            "/search",
            get(|headers: HeaderMap| async move {
                axum::Json(json!({
                    "results": ["a", "b"],
                    "paid_amount": header(&headers, "x-coinslot-paid-amount"),
                    "paid_unit": header(&headers, "x-coinslot-paid-unit"),
                    "paid_mode": header(&headers, "x-coinslot-paid-mode"),
                    "paid_via": header(&headers, "x-coinslot-paid-via"),
                    "pass_scope": header(&headers, "x-coinslot-paid-pass-scope"),
                    "saw_x_cashu": headers.contains_key("x-cashu"),
                    "saw_spoof": header(&headers, "x-coinslot-spoof"),
                    "forwarded_for": header(&headers, "x-forwarded-for"),
                }))
            }),
        )
        .route("/status", get(|| async { "upstream ok" }))
        .route("/unlisted", get(|| async { "should not be reachable" }))
        .route(
            "/v1/chat/{model}",
            post(|Path(model): Path<String>| async move {
                ([("x-coinslot-cost", "3")], format!("{model} says hi"))
            }),
        )
        .route(
            "/v1/late/{model}",
            post(|| async {
                // Streams its answer, and its cost comes last, as a trailer.
                let mut trailers = HeaderMap::new();
                trailers.insert("x-coinslot-cost", http::HeaderValue::from_static("4"));
                let frames = [
                    http_body::Frame::data(bytes::Bytes::from_static(b"part 1\n")),
                    http_body::Frame::data(bytes::Bytes::from_static(b"part 2\n")),
                    http_body::Frame::trailers(trailers),
                ]
                .map(Ok::<_, std::io::Error>);
                let body = Body::new(http_body_util::StreamBody::new(futures::stream::iter(
                    frames,
                )));
                // HTTP/1.1 sends only the trailers the head announces.
                ([("trailer", "x-coinslot-cost")], body)
            }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "upstream broke") }),
        )
        .route(
            "/stream",
            get(move || {
                let release = release.clone();
                async move {
                    let first = futures::stream::once(async {
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first\n"))
                    });
                    let rest = futures::stream::once(async move {
                        release.notified().await;
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"rest\n"))
                    });
                    Body::from_stream(first.chain(rest))
                }
            }),
        )
        .route(
            "/upload",
            post(move |body: Body| {
                let first_chunk = first_chunk.clone();
                async move {
                    let mut stream = body.into_data_stream();
                    let mut total = 0usize;
                    let mut first = true;
                    while let Some(chunk) = stream.next().await {
                        let Ok(chunk) = chunk else {
                            return (StatusCode::BAD_REQUEST, "broken body".to_string())
                                .into_response();
                        };
                        total += chunk.len();
                        if first {
                            first = false;
                            first_chunk.notify_one();
                        }
                    }
                    format!("received {total} bytes").into_response()
                }
            }),
        )
}

/// A websocket that echoes every text message, prefixed with what the proxy said was paid.
async fn echo_socket(
    upgrade: axum::extract::WebSocketUpgrade,
    headers: HeaderMap,
) -> axum::response::Response {
    let via = header(&headers, "x-coinslot-paid-via");
    upgrade.on_upgrade(move |mut socket| async move {
        use axum::extract::ws::Message;
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(text) = message {
                let echo = format!("{}: {}", via.as_deref().unwrap_or("-"), text.as_str());
                if socket.send(Message::Text(echo.into())).await.is_err() {
                    break;
                }
            }
        }
    })
}

/// The price table of the sample upstream.
pub fn upstream_config(url: &str) -> UpstreamConfig {
    UpstreamConfig {
        name: "api".into(),
        url: url.into(),
        hosts: Vec::new(),
        prefix: "/".into(),
        strip_prefix: false,
        unlisted: coinslot_proxy::Unlisted::Deny,
        retry: None,
        models: Default::default(),
        max_tokens: 4096,
        routes: vec![
            RouteConfig::paid("GET", "/search", 2),
            RouteConfig::free("GET", "/status"),
            RouteConfig {
                metered: true,
                ..RouteConfig::paid("POST", "/v1/chat/{model}", 10)
            },
            RouteConfig {
                metered: true,
                ..RouteConfig::paid("POST", "/v1/late/{model}", 10)
            },
            RouteConfig::paid("GET", "/boom", 5),
            RouteConfig::paid("GET", "/stream", 1),
            RouteConfig::paid("POST", "/upload", 1),
            RouteConfig::paid("POST", "/v1/run", 2),
            RouteConfig::paid("GET", "/ws/echo", 2),
            RouteConfig {
                per_minute: Some(1),
                ..RouteConfig::paid("GET", "/ws/live", 2)
            },
        ],
    }
}

/// A sample upstream and a `coinslotd` in front of it.
pub struct ProxiedApp {
    /// The coinslotd in front.
    pub server: TestServer,
    /// The upstream's own URL.
    pub upstream_url: String,
    /// Streaming signals.
    pub signals: Signals,
    upstream: tokio::task::JoinHandle<()>,
}

/// The sample upstream ([`upstream_app`]) on a loopback port: its URL, and the task serving it.
pub async fn spawn_upstream(
    signals: Signals,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = upstream_app(signals);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

impl ProxiedApp {
    /// Starts both; `adjust` may change the config before the server starts.
    pub async fn start(
        data_dir: &std::path::Path,
        adjust: impl FnOnce(&mut coinslotd::Config),
    ) -> anyhow::Result<Self> {
        let signals = Signals::default();
        let (upstream_url, upstream) = spawn_upstream(signals.clone()).await?;
        let mut config = coinslotd::Config::with_data_dir(data_dir);
        config.proxy = ProxyConfig {
            upstreams: vec![upstream_config(&upstream_url)],
            ..ProxyConfig::default()
        };
        adjust(&mut config);
        let server = TestServer::start_with(config).await?;
        Ok(Self {
            server,
            upstream_url,
            signals,
            upstream,
        })
    }

    /// [`ProxiedApp::start`] with its data in a new temporary directory, returned with it
    /// (dropping the directory deletes the data).
    pub async fn start_in_temp(
        adjust: impl FnOnce(&mut coinslotd::Config),
    ) -> anyhow::Result<(Self, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        let app = Self::start(dir.path(), adjust).await?;
        Ok((app, dir))
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Stops both.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.upstream.abort();
        self.server.stop().await
    }
}

/// An admin token for `scopes`, signed with the key in `data_dir`, valid for `ttl_secs`
/// from `now` (pass a past `now` for an expired one).
pub fn admin_token(
    data_dir: &std::path::Path,
    scopes: &[Scope],
    now: u64,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let key = AdminKey::load_or_create(&data_dir.join(ADMIN_KEY_FILE))?;
    Ok(key.issue(
        "test-operator",
        scopes,
        std::time::Duration::from_secs(ttl_secs),
        now,
    )?)
}
