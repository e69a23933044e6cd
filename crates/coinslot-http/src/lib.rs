//! # coinslot-http
//!
//! The Coinslot mint's Cashu HTTP API as an axum [`Router`]: every route a wallet needs
//! (NUT-01 keys, 02 keysets, 03 swap, 04/23 bolt11 mint with NUT-20, 06 info, 07 checkstate,
//! 09 restore, 17 websockets at `/v1/ws`), NUT-19 cached responses for swap and mint, and a
//! Cashu error for every melt route (this mint never melts).
//!
//! Every refused request gets `400 {"detail": "...", "code": N}`, including malformed JSON
//! and bodies over the size limit.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
//!
//! let mint = Mint::new(
//!     MintConfig::default(),
//!     MintSeed::generate(),
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(FakeBackend::new(Default::default())),
//! )
//! .await?;
//! let app: axum::Router = coinslot_http::router(mint, coinslot_http::HttpOptions::default());
//! # let _ = app; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use coinslot_mint::cashu::nuts::nut19::{CachedEndpoint, Method, Path as CachedPath};
use coinslot_mint::cashu::nuts::{
    CheckStateRequest, Id, MintInfo, MintQuoteBolt11Request, MintRequest, RestoreRequest,
    SwapRequest,
};
use coinslot_mint::{Error, Mint};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower_http::cors::{Any, CorsLayer};

mod cache;
mod error;
mod ws;

use cache::ResponseCache;
pub use coinslot_mint::ErrorBody;
pub use error::ApiError;

/// Options of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long NUT-19 keeps a swap or mint response for retries, in seconds (0: off).
    pub cache_ttl_secs: u64,
    /// Most responses the NUT-19 cache holds.
    pub cache_max_entries: usize,
    /// Most subscriptions one websocket may hold.
    pub max_ws_subscriptions: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            cache_ttl_secs: 300,
            cache_max_entries: 100_000,
            max_ws_subscriptions: 100,
        }
    }
}

#[derive(Clone)]
struct AppState {
    mint: Mint,
    cache: Option<Arc<ResponseCache>>,
    options: Arc<HttpOptions>,
}

/// The mint API. Serve it with `axum::serve`, or nest it into a larger app.
pub fn router(mint: Mint, options: HttpOptions) -> Router {
    let cache = (options.cache_ttl_secs > 0).then(|| {
        Arc::new(ResponseCache::new(
            Duration::from_secs(options.cache_ttl_secs),
            options.cache_max_entries,
        ))
    });
    let max_body = options.max_body_bytes;
    let state = AppState {
        mint,
        cache,
        options: Arc::new(options),
    };
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/keys", get(keys))
        .route("/v1/keys/{keyset_id}", get(keyset_keys))
        .route("/v1/keysets", get(keysets))
        .route("/v1/mint/quote/bolt11", post(create_mint_quote))
        .route("/v1/mint/quote/bolt11/{quote_id}", get(mint_quote))
        .route("/v1/mint/bolt11", post(mint_bolt11))
        .route("/v1/swap", post(swap))
        .route("/v1/checkstate", post(check_state))
        .route("/v1/restore", post(restore))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/melt", any(melt_disabled))
        .route("/v1/melt/{*rest}", any(melt_disabled))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
        .with_state(state)
}

/// JSON body extractor whose rejections are Cashu errors (400 with a code), never a panic.
struct CashuJson<T>(T);

impl<S, T> FromRequest<S> for CashuJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let CashuBytes(bytes) = CashuBytes::from_request(req, state).await?;
        parse_json(&bytes).map(CashuJson)
    }
}

/// Raw body extractor whose rejections (e.g. over the size limit) are Cashu errors.
struct CashuBytes(Bytes);

impl<S> FromRequest<S> for CashuBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(CashuBytes)
            .map_err(|e| {
                ApiError(Error::InvalidRequest(format!(
                    "request body: {}",
                    e.body_text()
                )))
            })
    }
}

/// One path parameter whose rejections (e.g. percent-encoding that is not UTF-8) are Cashu
/// errors.
struct CashuPath(String);

impl<S> FromRequestParts<S> for CashuPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| CashuPath(value))
            .map_err(|e| ApiError(Error::InvalidRequest(format!("path: {}", e.body_text()))))
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(Error::InvalidRequest(format!("malformed JSON: {e}"))))
}

async fn info(State(state): State<AppState>) -> Json<MintInfo> {
    let mut info = state.mint.info();
    if let Some(cache) = &state.cache {
        info.nuts = info.nuts.nut19(
            Some(cache.ttl().as_secs()),
            vec![
                CachedEndpoint::new(Method::Post, CachedPath::custom_mint("bolt11")),
                CachedEndpoint::new(Method::Post, CachedPath::Swap),
            ],
        );
    }
    Json(info)
}

async fn keys(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.mint.keys())
}

async fn keyset_keys(
    State(state): State<AppState>,
    CashuPath(id): CashuPath,
) -> Result<impl IntoResponse, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|e| Error::InvalidRequest(format!("keyset id `{id}`: {e}")))?;
    Ok(Json(state.mint.keyset_keys(&id)?))
}

async fn keysets(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.mint.keysets())
}

async fn create_mint_quote(
    State(state): State<AppState>,
    CashuJson(request): CashuJson<MintQuoteBolt11Request>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.mint.create_mint_quote(request).await?))
}

async fn mint_quote(
    State(state): State<AppState>,
    CashuPath(quote_id): CashuPath,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.mint.mint_quote(&quote_id).await?))
}

async fn mint_bolt11(
    State(state): State<AppState>,
    CashuBytes(body): CashuBytes,
) -> Result<Response, ApiError> {
    cached(
        &state,
        "/v1/mint/bolt11",
        body,
        |mint, request: MintRequest<String>| async move { mint.mint(request).await },
    )
    .await
}

async fn swap(
    State(state): State<AppState>,
    CashuBytes(body): CashuBytes,
) -> Result<Response, ApiError> {
    cached(
        &state,
        "/v1/swap",
        body,
        |mint, request: SwapRequest| async move { mint.swap(request).await },
    )
    .await
}

/// Runs `op` unless the same request succeeded within the cache TTL (NUT-19).
async fn cached<Req, Resp, F, Fut>(
    state: &AppState,
    path: &str,
    body: Bytes,
    op: F,
) -> Result<Response, ApiError>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Mint, Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, Error>>,
{
    let key = ResponseCache::key(path, &body);
    if let Some(hit) = state.cache.as_ref().and_then(|c| c.get(&key)) {
        return Ok(json_bytes(hit));
    }
    let request: Req = parse_json(&body)?;
    let response = op(state.mint.clone(), request).await?;
    let bytes = Bytes::from(
        serde_json::to_vec(&response)
            .map_err(|e| ApiError(Error::Storage(format!("encoding response: {e}"))))?,
    );
    if let Some(cache) = &state.cache {
        cache.put(key, bytes.clone());
    }
    Ok(json_bytes(bytes))
}

fn json_bytes(body: Bytes) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn check_state(
    State(state): State<AppState>,
    CashuJson(request): CashuJson<CheckStateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.mint.check_state(request).await?))
}

async fn restore(
    State(state): State<AppState>,
    CashuJson(request): CashuJson<RestoreRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.mint.restore(request).await?))
}

async fn melt_disabled() -> ApiError {
    ApiError(Error::MeltDisabled)
}
