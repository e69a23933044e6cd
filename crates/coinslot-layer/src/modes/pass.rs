//! Time passes: pay once, then use a set of routes (a *scope*) for as many minutes as the
//! token paid for. For services that sell time, not requests: a VPN, a proxy, an arcade.
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
//!   seconds). A request with a token (or a `Payment` credential, for one minute) instead
//!   buys a pass on the spot (the pass comes back in `X-Cashu-Pass`). Neither → `402` with
//!   a request for one minute's price.
//! - An expired, revoked, tampered or out-of-scope pass → `401` with a JSON error; the next
//!   try without it gets a fresh `402`.
//!
//! This module is the `X-Cashu-Pass` mode and the purchase endpoint; the records behind
//! passes are [`Passes`].

use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use coinslot_mint::ErrorCode;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use tower_service::Service;

use crate::body::{BodySeen, RequestBody};
use crate::challenge;
use crate::passes::{PassError, Passes};
use crate::settings::Ctx;
use crate::settle::{self, Inner, Payer, Ticket};
use crate::wire::errors::{self, Rejection, Reply};
use crate::wire::nut24::{self, HeaderError, X_CASHU_PASS};
use crate::{PassScope, ResponseBody, Retry};

/// Largest purchase body read.
const MAX_BODY: usize = 16 * 1024;

/// The pass a request carries, if any.
pub(crate) fn find(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    nut24::find_pass(headers)
}

/// A request on `scope`'s routes opened by the pass `credential`; `401` when it does not
/// open it. Nothing comes back if the handler fails: the pass stays valid, for the retry.
pub(crate) async fn open<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    mut request: Request<ReqBody>,
    scope: PassScope,
    credential: String,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let passes = Passes { ctx: ctx.clone() };
    let pass = match passes.verify(&credential, Some(scope.name())).await {
        Ok(pass) => pass,
        Err(err) => return refused(&ctx, &err),
    };
    request.headers_mut().remove(X_CASHU_PASS);
    let mut headers = HeaderMap::new();
    nut24::attach_pass(&mut headers, &pass, None);
    let ticket = Ticket {
        paid: None,
        pass: Some(pass),
        unit: scope.price().unit.clone(),
        kept: 0,
        metered: false,
        payer: Payer::Pass,
        key_account: None,
        record: None,
        retry: Retry::Stored,
        headers,
        success_headers: HeaderMap::new(),
        seen: Arc::new(BodySeen::default()),
        content_length: None,
        route: None,
    };
    settle::run(ctx, inner, request.map(RequestBody::plain), ticket).await
}

/// `402` for a scope's route: one minute's price, and where passes are sold.
pub(crate) async fn payment_required<ReqBody: http_body::Body, ResBody>(
    ctx: &Ctx,
    request: Request<ReqBody>,
    scope: &PassScope,
) -> Reply<ResBody> {
    let (parts, body) = request.into_parts();
    let detail = Some(pass_required(ctx, scope));
    challenge::payment_required(ctx, scope.price(), &parts, body, detail).await
}

fn pass_required(ctx: &Ctx, scope: &PassScope) -> String {
    let price = scope.price();
    format!(
        "a pass is required: {} {} per minute (scope {}); buy one at {} with X-Cashu, or pay here with X-Cashu (or Authorization: Payment, for one minute)",
        price.amount,
        price.unit,
        scope.name(),
        ctx.settings.pass_path
    )
}

/// `401` (or `503`) for a pass that does not open this request.
fn refused<B>(ctx: &Ctx, err: &PassError) -> Reply<B> {
    let status = match err {
        PassError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let detail = format!(
        "{err}; send a token (X-Cashu) to buy a pass, at {} or on this route",
        ctx.settings.pass_path
    );
    let mut response = Rejection::new(status, ErrorCode::Generic, detail).into_response();
    response.extensions_mut().insert(errors::Reason("pass"));
    response
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

async fn purchase<B, R>(passes: Passes, request: Request<B>) -> Reply<R>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.method() != Method::POST {
        return Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Generic,
            "POST a token (X-Cashu) here to buy a pass",
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Rejection::bad_request(format!("body: {e} (at most {MAX_BODY} bytes)"))
                .into_response()
        }
    };
    let wanted: PurchaseBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        PurchaseBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            Err(e) => {
                return Rejection::bad_request(format!(
                    "body: {e}; send {{\"scope\": \"…\", \"client_key\": \"…\"}} or nothing"
                ))
                .into_response()
            }
        }
    };
    let token = match nut24::find_token(&parts.headers) {
        Err(err) => return Rejection::bad_request(err.0).into_response(),
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
            let mut in_unit = all
                .iter()
                .filter(|s| Some(&s.price().unit) == unit.as_ref());
            match (in_unit.next(), in_unit.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        }
    };
    let Some(scope) = scope.cloned() else {
        let names: Vec<&str> = passes.scopes().iter().map(|s| s.name()).collect();
        return Rejection::bad_request(format!(
            "scope: name one of {} in the body, e.g. {{\"scope\": \"{}\"}}",
            names.join(", "),
            names.first().copied().unwrap_or("…")
        ))
        .into_response();
    };
    let ctx = &passes.ctx;
    let Some(token) = token else {
        let detail = Some(pass_required(ctx, &scope));
        return challenge::nut24(ctx, scope.price(), &parts.headers, detail);
    };
    let extend = match find(&parts.headers) {
        Ok(extend) => extend,
        Err(err) => return Rejection::bad_request(err.0).into_response(),
    };
    match passes.buy(&token, &scope, extend, wanted.client_key).await {
        Ok(bought) => {
            let mut response = errors::json(
                StatusCode::OK,
                &json!({
                    "pass": bought.credential,
                    "expires_at": bought.pass.expires_at,
                    "minutes": bought.minutes,
                    "scope": scope.name(),
                    "extended": bought.extended,
                }),
            );
            nut24::attach_pass(
                response.headers_mut(),
                &bought.pass,
                Some(&bought.credential),
            );
            errors::attach_token(
                &mut response,
                &ctx.settings.mint_url,
                &bought.unit,
                bought.change,
            );
            response
        }
        Err(refusal) => refusal.into_response(ctx),
    }
}
