//! A search-style API behind the Coinslot paywall, with the mint's Cashu API on the same
//! origin: `GET /search?q=…` costs 2 sat, `GET /` is free and explains how to pay, and
//! `/openapi.json` (with `/llms.txt`) lists the prices for agents.
//!
//! [`app`] builds the router; [`open`] opens the mint and [`serve`] serves it (the binary
//! prints its URL in between, once the store is open).

use std::future::Future;
use std::path::Path;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use coinslot::{discovery, EmbeddedMint, Mint, Paid, PaywallLayer, Price, PriceTable};
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

/// Price of one search, in sat.
pub const SEARCH_PRICE: u64 = 2;

/// What we search: the Cashu NUTs this example's mint speaks.
const DOCUMENTS: &[(&str, &str)] = &[
    (
        "NUT-00",
        "Notation, tokens (cashuA, cashuB) and the error model",
    ),
    ("NUT-01", "Mint public keys"),
    ("NUT-02", "Keysets, keyset ids and input fees"),
    ("NUT-03", "Swapping proofs for new ones"),
    ("NUT-04", "Minting ecash after paying a Lightning invoice"),
    ("NUT-07", "Checking whether proofs are spent"),
    ("NUT-09", "Restoring signatures from a seed"),
    ("NUT-11", "Pay to public key (P2PK) spending conditions"),
    ("NUT-12", "DLEQ proofs that a signature came from the mint"),
    ("NUT-17", "Websocket subscriptions"),
    ("NUT-18", "Payment requests (creqA)"),
    ("NUT-24", "HTTP 402 Payment Required with X-Cashu"),
    ("NUT-26", "Bech32m payment requests (creqB)"),
];

/// The router: free `/`, paid `/search`, the mint's API under `/v1`, sessions under
/// `/cashu/session`. `public_url` is where clients reach this server (and its mint).
pub fn app(mint: Mint, public_url: &str) -> Result<Router, coinslot::ConfigError> {
    let pricing =
        PriceTable::new()
            .free("GET", "/")
            .route("GET", "/search", Price::sat(SEARCH_PRICE));
    // What agents read before paying: the prices as OpenAPI (`mppx validate` finds them
    // there), and as text.
    let mut operations = pricing.operations();
    if let Some(search) = operations.iter_mut().find(|o| o.path == "/search") {
        search.summary = Some("Search the Cashu NUTs: `?q=<words>`".into());
    }
    let openapi = discovery::openapi("paid-search", "1.0.0", &operations, Some("/llms.txt"));
    let llms = discovery::llms_txt("paid-search", public_url, &operations);
    let paywall = PaywallLayer::new(mint.clone(), public_url, pricing)?;
    // Pages on other origins pay with X-Cashu, X-Cashu-Session or `Authorization: Payment`
    // (which `*` does not allow: it is named), and read X-Cashu, WWW-Authenticate and
    // Payment-Receipt back (the layer exposes them).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(coinslot::nut24::REQUEST_HEADERS);
    Ok(Router::new()
        .route("/", get(index))
        .route("/search", get(search))
        .route("/openapi.json", get(move || async move { Json(openapi) }))
        .route("/llms.txt", get(move || async move { llms }))
        .merge(coinslot::mint_api(mint, Default::default()))
        // A fallback before the layer, so the layer also sees /cashu/session.
        .fallback(not_found)
        .layer(paywall)
        .layer(cors))
}

/// Opens the mint in `data_dir` (fake Lightning backend).
pub async fn open(data_dir: &Path) -> anyhow::Result<EmbeddedMint> {
    Ok(EmbeddedMint::open_dev(data_dir).await?)
}

/// Serves [`app`] over `embedded` on `listener` until `shutdown` completes, then flushes
/// the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    embedded: EmbeddedMint,
    public_url: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app(embedded.mint.clone(), public_url)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    embedded.store.flush().await?;
    Ok(())
}

/// Opens the mint in `data_dir` and serves [`app`] on a fresh `127.0.0.1` port in a
/// background task (for tests and demos); returns its URL.
pub async fn spawn_on_loopback(data_dir: &Path) -> anyhow::Result<String> {
    let embedded = open(data_dir).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = app(embedded.mint.clone(), &url)?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "paid-search stopped");
        }
    });
    Ok(url)
}

async fn index() -> &'static str {
    "paid-search: GET /search?q=<words> costs 2 sat.\n\
     \n\
     1. Ask without paying: the 402 answer carries a payment request in the X-Cashu header\n\
        (NUT-18 creqA) and names this server as the mint.\n\
     2. Top up a Cashu wallet at this server's mint (POST /v1/mint/quote/bolt11; the demo\n\
        backend marks invoices paid at once).\n\
     3. Repeat the request with `X-Cashu: cashuB…` worth at least 2 sat: overpayment comes\n\
        back as a token in the response's X-Cashu header.\n\
     Or deposit once: POST /cashu/session with X-Cashu, then send X-Cashu-Session on each\n\
     search; DELETE /cashu/session returns the rest.\n"
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn search(
    Query(query): Query<SearchQuery>,
    Extension(paid): Extension<Paid>,
) -> impl IntoResponse {
    let q = query.q.unwrap_or_default().to_lowercase();
    let words: Vec<&str> = q.split_whitespace().collect();
    let results: Vec<_> = DOCUMENTS
        .iter()
        .filter(|(id, text)| {
            let haystack = format!("{id} {text}").to_lowercase();
            !words.is_empty() && words.iter().all(|w| haystack.contains(w))
        })
        .map(|(id, text)| json!({ "id": id, "title": text }))
        .collect();
    Json(json!({
        "query": q,
        "results": results,
        "paid": {
            "amount": paid.amount,
            "unit": paid.unit.to_string(),
            "session": paid.session.is_some(),
            "replay": paid.replay,
        },
    }))
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}
