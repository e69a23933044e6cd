//! # coinslot-topup
//!
//! The top-up page of a Coinslot server: a web page where a user buys ecash from the
//! embedded mint with Lightning, on a phone or a desktop, with no wallet app installed yet.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary (no build step, no
//! third-party scripts). It talks only to the same-origin Cashu mint API (the routes of
//! `coinslot-http`, which the server must also serve at `/v1/...`):
//!
//! 1. the user picks an amount (preset buttons or a free field) and, if the mint issues
//!    several units, a unit; the page also lists what the service charges (the
//!    [`PriceLine`]s, fetched from `/_coinslot/topup/prices.json`);
//! 2. the page creates a bolt11 mint quote (`POST /v1/mint/quote/bolt11`) and shows the
//!    invoice as a QR code and as copyable text;
//! 3. it watches the quote turn paid over the NUT-17 websocket (`/v1/ws`), polling
//!    `GET /v1/mint/quote/bolt11/{id}` every 2 s if the socket fails;
//! 4. it makes the ecash in the browser: random secrets, blinded messages (NUT-00 BDHKE),
//!    `POST /v1/mint/bolt11`, DLEQ checks (NUT-12), unblinding, and a `cashuB` token
//!    (NUT-00 V4);
//! 5. it shows the token as text and as a QR code, and keeps it in the browser's
//!    `localStorage` until the user dismisses it, so a reload never loses money.
//!
//! SHA-256, secp256k1, CBOR and the QR encoder are written in plain JavaScript in this crate
//! (`assets/`): `crypto.subtle` is missing on plain-http origins such as a phone on a LAN.
//!
//! ```
//! use coinslot_topup::{PriceLine, TopupPage};
//!
//! let page: axum::Router = TopupPage::new()
//!     .title("Arcade credit")
//!     .path("/topup")
//!     .amounts(vec![50, 200, 1000])
//!     .prices(|| vec![PriceLine::new("POST", "/play", 10, "sat").description("One game")])
//!     .router();
//! // Merge it with the mint API, e.g.
//! // `Router::new().merge(coinslot::mint_api(mint, Default::default())).merge(page)`.
//! # let _ = page;
//! ```
//!
//! Routes of [`TopupPage::router`]:
//!
//! | route | what |
//! |---|---|
//! | the page's path (default `/`) | the HTML page (`Content-Security-Policy`: same origin only) |
//! | `/_coinslot/topup/{app,cashu,qr}.js`, `/_coinslot/topup/style.css` | the assets |
//! | `/_coinslot/topup/prices.json` | `{"prices": [PriceLine, ...]}`, computed per request |

use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::extract::RawQuery;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Where the page's assets (scripts, stylesheet, prices) are served.
pub const ASSET_PREFIX: &str = "/_coinslot/topup";

/// Where the price list is served as JSON.
pub const PRICES_PATH: &str = "/_coinslot/topup/prices.json";

/// Preset amounts when [`TopupPage::amounts`] is not called.
pub const DEFAULT_AMOUNTS: [u64; 4] = [100, 500, 1000, 5000];

/// The `Content-Security-Policy` of the HTML page: scripts, styles and requests to this
/// origin only (plus its websocket), `data:` images for the QR canvases, no framing.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const CASHU_JS: &str = include_str!("../assets/cashu.js");
const QR_JS: &str = include_str!("../assets/qr.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One line of the price table the page shows: what a request costs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PriceLine {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Route, e.g. `/search` or `/v1/chat/{model}`.
    pub path: String,
    /// Price in `unit`; for a metered route, the most one request can cost.
    pub amount: u64,
    /// Unit of `amount`, e.g. `sat`.
    pub unit: String,
    /// Whether the price is metered (the request is charged what it uses, up to `amount`).
    pub metered: bool,
    /// Words for humans, shown under the route.
    pub description: Option<String>,
}

impl PriceLine {
    /// A fixed price: `method path` costs `amount unit`.
    pub fn new(
        method: impl Into<String>,
        path: impl Into<String>,
        amount: u64,
        unit: impl Into<String>,
    ) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            amount,
            unit: unit.into(),
            metered: false,
            description: None,
        }
    }

    /// Marks the price as metered: `amount` is the most one request can cost.
    pub fn metered(mut self) -> Self {
        self.metered = true;
        self
    }

    /// Adds words for humans, shown under the route.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

type PriceFn = Arc<dyn Fn() -> Vec<PriceLine> + Send + Sync + 'static>;

/// Builder of the top-up page; [`TopupPage::router`] turns it into an axum [`Router`].
#[derive(Clone)]
pub struct TopupPage {
    title: String,
    path: String,
    amounts: Vec<u64>,
    prices: PriceFn,
    mint_url: String,
}

impl fmt::Debug for TopupPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopupPage")
            .field("title", &self.title)
            .field("path", &self.path)
            .field("amounts", &self.amounts)
            .finish_non_exhaustive()
    }
}

impl Default for TopupPage {
    fn default() -> Self {
        Self::new()
    }
}

impl TopupPage {
    /// A page titled "Top up" at `/`, with presets of 100, 500, 1000 and 5000 and no prices.
    pub fn new() -> Self {
        Self {
            title: "Top up".to_owned(),
            path: "/".to_owned(),
            amounts: DEFAULT_AMOUNTS.to_vec(),
            prices: Arc::new(Vec::new),
            mint_url: String::new(),
        }
    }

    /// The mint URL written into the tokens the page makes: the server's public URL, which
    /// the paywall checks tokens against. Unset, the page uses the address it was opened at.
    pub fn mint_url(mut self, url: &str) -> Self {
        self.mint_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// The page's title (HTML `<title>` and heading); it is HTML-escaped.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Where the HTML page is served (default `/`). A missing leading `/` is added. The
    /// path must not be one of the asset routes under [`ASSET_PREFIX`].
    pub fn path(mut self, path: &str) -> Self {
        self.path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self
    }

    /// The preset amount buttons, in the mint's unit (zeros are dropped, duplicates
    /// removed, sorted). An empty list leaves only the free amount field.
    pub fn amounts(mut self, presets: Vec<u64>) -> Self {
        let mut presets: Vec<u64> = presets.into_iter().filter(|a| *a > 0).collect();
        presets.sort_unstable();
        presets.dedup();
        self.amounts = presets;
        self
    }

    /// The price list the page shows. `f` is called on every request of
    /// [`PRICES_PATH`], so prices may change while the server runs.
    pub fn prices(mut self, f: impl Fn() -> Vec<PriceLine> + Send + Sync + 'static) -> Self {
        self.prices = Arc::new(f);
        self
    }

    /// The routes: the page at its path, assets under [`ASSET_PREFIX`], prices at
    /// [`PRICES_PATH`]. The mint API (`/v1/...`) must be served on the same origin.
    ///
    /// # Panics
    ///
    /// Like any axum route, if the page's path is not a valid route path or collides with an
    /// asset route.
    pub fn router(self) -> Router {
        let html: Arc<str> = Arc::from(render_page(&self.title, &self.amounts, &self.mint_url));
        let prices = self.prices;
        Router::new()
            .route(&self.path, get(move || page(html.clone())))
            .route(
                &asset_path("app.js"),
                get(|q: RawQuery| asset(q, APP_JS, JS)),
            )
            .route(
                &asset_path("cashu.js"),
                get(|q: RawQuery| asset(q, CASHU_JS, JS)),
            )
            .route(&asset_path("qr.js"), get(|q: RawQuery| asset(q, QR_JS, JS)))
            .route(
                &asset_path("style.css"),
                get(|q: RawQuery| asset(q, STYLE_CSS, CSS)),
            )
            .route(
                PRICES_PATH,
                get(move || {
                    let lines = prices();
                    async move { prices_response(lines) }
                }),
            )
    }
}

fn asset_path(name: &str) -> String {
    format!("{ASSET_PREFIX}/{name}")
}

/// A short hash of every asset, put in their URLs (`?v=`) so they can be cached for good.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a, 64 bits: only needs to change when an asset changes.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for asset in [APP_JS, CASHU_JS, QR_JS, STYLE_CSS, INDEX_HTML] {
            for byte in asset.bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    })
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render_page(title: &str, amounts: &[u64], mint_url: &str) -> String {
    let presets: String = amounts
        .iter()
        .map(|a| format!(r#"<button type="button" data-amount="{a}" disabled>{a}</button>"#))
        .collect();
    INDEX_HTML
        .replace("{{title}}", &escape_html(title))
        .replace("{{assets}}", ASSET_PREFIX)
        .replace("{{version}}", asset_version())
        .replace("{{presets}}", &presets)
        .replace("{{mint}}", &escape_html(mint_url))
}

async fn page(html: Arc<str>) -> Response {
    let mut response = html.to_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn asset(
    RawQuery(query): RawQuery,
    body: &'static str,
    content_type: &'static str,
) -> Response {
    // A URL naming the current version can be cached for good; anything else revalidates.
    let current = query.is_some_and(|q| q.strip_prefix("v=") == Some(asset_version()));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[derive(Serialize)]
struct PricesBody {
    prices: Vec<PriceLine>,
}

fn prices_response(prices: Vec<PriceLine>) -> Response {
    let mut response = Json(PricesBody { prices }).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
        headers.get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn serves_the_page_with_a_strict_csp() {
        let app = TopupPage::new().router();
        let (status, headers, body) = get(&app, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        let csp = header(&headers, "content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("connect-src 'self' ws: wss:"), "{csp}");
        assert!(csp.contains("img-src 'self' data:"), "{csp}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert!(body.contains("<title>Top up</title>"));
        for amount in DEFAULT_AMOUNTS {
            assert!(
                body.contains(&format!(r#"data-amount="{amount}""#)),
                "{amount}"
            );
        }
        // No inline script or style: the CSP would block it.
        assert!(!body.contains("<script>"));
        assert!(!body.contains("style="));
        assert!(body.contains(&format!("/_coinslot/topup/app.js?v={}", asset_version())));
    }

    #[tokio::test]
    async fn serves_assets_with_their_content_types() {
        let app = TopupPage::new().router();
        let v = asset_version();
        for (name, content_type, needle) in [
            ("app.js", JS, "coinslotTopup"),
            ("cashu.js", JS, "hashToCurve"),
            ("qr.js", JS, "CoinslotQR"),
            ("style.css", CSS, ".card"),
        ] {
            let (status, headers, body) = get(&app, &format!("{ASSET_PREFIX}/{name}?v={v}")).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(header(&headers, "content-type"), content_type, "{name}");
            assert_eq!(
                header(&headers, "cache-control"),
                "public, max-age=31536000, immutable",
                "{name}"
            );
            assert!(body.contains(needle), "{name}");
            // Without the current version, it must be revalidated.
            let (_, headers, _) = get(&app, &format!("{ASSET_PREFIX}/{name}")).await;
            assert_eq!(header(&headers, "cache-control"), "no-cache", "{name}");
        }
        let (status, _, _) = get(&app, &format!("{ASSET_PREFIX}/nope.js")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn prices_are_computed_per_request() {
        let price = Arc::new(AtomicU64::new(2));
        let p = price.clone();
        let app = TopupPage::new()
            .prices(move || {
                vec![
                    PriceLine::new("GET", "/search", p.load(Ordering::SeqCst), "sat"),
                    PriceLine::new("POST", "/v1/chat/{model}", 500, "sat")
                        .metered()
                        .description("LLM chat"),
                ]
            })
            .router();
        let (status, headers, body) = get(&app, PRICES_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), "application/json");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"prices": [
                {"method": "GET", "path": "/search", "amount": 2, "unit": "sat",
                 "metered": false, "description": null},
                {"method": "POST", "path": "/v1/chat/{model}", "amount": 500, "unit": "sat",
                 "metered": true, "description": "LLM chat"},
            ]})
        );
        price.store(3, Ordering::SeqCst);
        let (_, _, body) = get(&app, PRICES_PATH).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["prices"][0]["amount"], 3);
    }

    #[tokio::test]
    async fn no_prices_is_an_empty_list() {
        let app = TopupPage::new().router();
        let (status, _, body) = get(&app, PRICES_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"prices":[]}"#);
    }

    #[tokio::test]
    async fn custom_path_title_and_amounts() {
        let app = TopupPage::new()
            .title("Arcade <credit> & \"more\"")
            .path("topup")
            .amounts(vec![0, 300, 20, 300])
            .mint_url("https://mint.example.com/")
            .router();
        let (status, headers, body) = get(&app, "/topup").await;
        assert!(body.contains(r#"data-mint="https://mint.example.com""#));
        assert_eq!(status, StatusCode::OK);
        assert!(header(&headers, "content-type").starts_with("text/html"));
        assert!(body.contains("<title>Arcade &lt;credit&gt; &amp; &quot;more&quot;</title>"));
        let first = body.find(r#"data-amount="20""#).unwrap();
        let second = body.find(r#"data-amount="300""#).unwrap();
        assert!(first < second);
        assert_eq!(body.matches(r#"data-amount="300""#).count(), 1);
        assert!(!body.contains(r#"data-amount="0""#));
        let (status, _, _) = get(&app, "/").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Assets stay where the page expects them.
        let (status, _, _) = get(&app, "/_coinslot/topup/app.js").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn head_requests_work() {
        let app = TopupPage::new().router();
        let response = app
            .oneshot(Request::head("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn builder_is_debuggable_and_defaults() {
        let page = TopupPage::default();
        let text = format!("{page:?}");
        assert!(text.contains("Top up") && text.contains("5000"), "{text}");
    }
}
