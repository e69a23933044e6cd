//! The layer's `402`s: what a price asks for, in both schemes at once. NUT-24's payment
//! request in `X-Cashu` (with a JSON body a person, and the Nutpay extension, can read), and
//! a `WWW-Authenticate: Payment` challenge bound to the route and the request body; plus
//! the `Payment` scheme's refusals (problem JSON with a fresh challenge).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::settings::{Ctx, Settings};
use crate::wire::errors::{self, Reply};
use crate::wire::nut24::{self, X_CASHU};
use crate::wire::payment::{
    challenge_id, encode_jcs, header_value, read_body, rfc3339, ChargeRequest, MethodDetails,
    PaymentChallenge, Problem, Route, INTENT, METHOD,
};
use crate::{Price, ResponseBody};
use mpp::protocol::core::Base64UrlJson;

/// `402 Payment Required` for `price`: the NUT-24 payment request in `X-Cashu` and a JSON
/// body with `mint`, `amount`, `unit` and how to pay (`detail` replaces the default words).
pub(crate) fn nut24<B>(
    ctx: &Ctx,
    price: &Price,
    request_headers: &HeaderMap,
    detail: Option<String>,
) -> Reply<B> {
    let settings = &ctx.settings;
    let lock = settings.require_lock.then(|| ctx.mint().pubkey());
    let request = nut24::payment_request(price, &settings.accepted_mints, lock.as_ref());
    let encoding = nut24::requested_encoding(request_headers, settings.encoding);
    let encoded = nut24::encode_request(&request, encoding);
    let mint = settings.mint_url.to_string();
    let detail = detail.unwrap_or_else(|| {
        format!(
            "payment required: {} {}{}",
            price.amount,
            price.unit,
            if price.is_metered() {
                " (reserved; the unused part comes back)"
            } else {
                ""
            }
        )
    });
    let body = json!({
        "detail": detail,
        "amount": price.amount,
        "unit": price.unit.to_string(),
        "mint": mint,
        "metered": price.is_metered(),
        "payment_request": encoded,
        "topup": settings.topup_page.clone().unwrap_or_else(|| {
            format!("{}/v1/mint/quote/bolt11", mint.trim_end_matches('/'))
        }),
        "session": settings.session_path,
        "how": "retry with the header `X-Cashu: cashuB…` holding a token of this mint worth at least `amount` `unit` plus the mint's input fees; or open a prepaid session at `session`",
        "error": errors::openai_error(StatusCode::PAYMENT_REQUIRED, &detail),
    });
    let mut response = errors::json(StatusCode::PAYMENT_REQUIRED, &body);
    if let Some(value) = encoded.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(X_CASHU, value);
    }
    response
}

/// The full `402` for an unpaid request: NUT-24's and a `Payment` challenge bound to the
/// request's body (read here to hash it; the request goes no further).
pub(crate) async fn payment_required<B, ReqBody: http_body::Body>(
    ctx: &Ctx,
    price: &Price,
    parts: &http::request::Parts,
    body: ReqBody,
    detail: Option<String>,
) -> Reply<B> {
    let mut response = nut24(ctx, price, &parts.headers, detail);
    let digest = challenge_digest(&ctx.settings, body).await;
    let route = Route::new(&parts.method, &parts.uri, digest);
    let _ = offer(&mut response, ctx, price, &route);
    response
}

/// The realm: the host (and port) clients reach the service at.
fn realm(settings: &Settings) -> String {
    let url = settings.mint_url.to_string();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A fresh `Payment` challenge for `price` on a route. `None` when the paywall requires
/// locked proofs (this binding takes bearer proofs only).
fn challenge(ctx: &Ctx, price: &Price, route: &Route) -> Option<PaymentChallenge> {
    let settings = &ctx.settings;
    if settings.require_lock {
        return None;
    }
    let creq = nut24::payment_request(price, &settings.accepted_mints, None).to_string();
    let details = MethodDetails {
        mints: settings
            .accepted_mints
            .iter()
            .map(|m| m.to_string())
            .collect(),
        request: Some(creq),
    };
    let request = ChargeRequest {
        amount: price.amount.to_string(),
        currency: price.unit.to_string(),
        method_details: serde_json::to_value(details).ok(),
        ..ChargeRequest::default()
    };
    let opaque = json!({
        "route": route.name(),
        // A nonce makes every challenge's id unique: each is paid once (see the credential mode).
        "nonce": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
    });
    let mut challenge = PaymentChallenge {
        id: String::new(),
        realm: realm(settings),
        method: METHOD.into(),
        intent: INTENT.into(),
        request: Base64UrlJson::from_raw(encode_jcs(&request).ok()?),
        expires: Some(rfc3339(
            coinslot_mint::unix_now() + settings.payment_challenge_ttl.as_secs(),
        )),
        description: None,
        digest: route.digest.clone(),
        opaque: Some(Base64UrlJson::from_raw(encode_jcs(&opaque).ok()?)),
        header: settings
            .payment_authorization
            .then(|| mpp::PAYMENT_AUTHORIZATION_HEADER.to_string()),
    };
    challenge.id = challenge_id(&ctx.shared.payment_secret, &challenge.to_echo());
    Some(challenge)
}

/// Adds a fresh `Payment` challenge (bound to the request body's `digest`, if given) to a
/// `402`, with `Cache-Control: no-store`; returns its id.
pub(crate) fn offer<B>(
    response: &mut Response<B>,
    ctx: &Ctx,
    price: &Price,
    route: &Route,
) -> Option<String> {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let challenge = challenge(ctx, price, route)?;
    let value = header_value(&challenge).and_then(|v| HeaderValue::from_str(&v).ok())?;
    headers.append(WWW_AUTHENTICATE, value);
    Some(challenge.id)
}

/// A `Payment` refusal as the draft words it: problem JSON, a fresh challenge (and the
/// NUT-24 one).
pub(crate) fn refuse<B>(
    ctx: &Ctx,
    price: &Price,
    headers: &HeaderMap,
    route: &Route,
    problem: &Problem,
) -> Reply<B> {
    let (_, title, status) = problem.kind.describe();
    // The NUT-24 challenge gives the X-Cashu payment request; the body is replaced.
    let mut response = nut24::<B>(ctx, price, headers, None);
    let fresh = offer(&mut response, ctx, price, route);
    let mut body = json!({
        "type": problem.kind.type_uri(),
        "title": title,
        "status": status.as_u16(),
        "detail": problem.detail,
    });
    // As mppx does: the id of the fresh challenge that comes with the refusal.
    if let Some(id) = fresh {
        body["challengeId"] = json!(id);
    }
    *response.body_mut() = ResponseBody::own(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The `digest` of a fresh challenge for a request with `body`: `None` for no body, a
/// body over the limit, or a paywall that offers no `Payment` challenge.
pub(crate) async fn challenge_digest<B: http_body::Body>(
    settings: &Settings,
    body: B,
) -> Option<String> {
    if settings.require_lock {
        return None;
    }
    read_body(body, settings.payment_body_limit).await.digest()
}
