//! Responses the layer writes itself: the `402` challenge, Cashu errors, JSON answers, and
//! the headers it adds to the handler's responses.

use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof, Token};
use coinslot_mint::GENERIC_ERROR_CODE;
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::layer::{Settings, Shared};
use crate::nut24::{self, X_CASHU, X_CASHU_BALANCE};
use crate::{Price, ResponseBody};

/// A JSON response with the layer's CORS and caching headers.
pub(crate) fn json<B>(status: StatusCode, body: &Value) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::own(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    expose(headers);
    response
}

/// A Cashu error: `{"detail": …, "code": N}`.
pub(crate) fn error<B>(status: StatusCode, code: u16, detail: &str) -> Response<ResponseBody<B>> {
    let mut response = json(status, &json!({ "detail": detail, "code": code }));
    response.extensions_mut().insert(CashuCode(code));
    response
}

/// The Cashu error code of a response the layer wrote itself.
#[derive(Debug, Clone, Copy)]
struct CashuCode(u16);

/// Why the layer refused a request, if it did: a `402`, or a `4xx` it wrote itself.
pub(crate) fn refusal<B>(response: &Response<B>) -> Option<&'static str> {
    let status = response.status();
    if status == StatusCode::PAYMENT_REQUIRED {
        return Some("payment_required");
    }
    if !status.is_client_error() {
        return None;
    }
    let CashuCode(code) = response.extensions().get::<CashuCode>()?;
    Some(match code {
        11001 => "spent",
        11002 => "pending",
        11005 => "insufficient",
        11010 | 11009 | 11013 => "wrong_unit",
        12001 => "unknown_keyset",
        10001 => "not_verified",
        20008 => "witness",
        _ if status == StatusCode::UNAUTHORIZED => "bad_session",
        _ => "bad_request",
    })
}

/// A refusal decided before any response type is known: status, Cashu code, detail.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub code: u16,
    pub detail: String,
}

impl Rejection {
    pub fn new(status: StatusCode, code: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, GENERIC_ERROR_CODE, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, GENERIC_ERROR_CODE, detail)
    }

    pub fn into_response<B>(self) -> Response<ResponseBody<B>> {
        error(self.status, self.code, &self.detail)
    }
}

/// `400` for a malformed request: generic code, the detail names what is wrong.
pub(crate) fn bad_request<B>(detail: &str) -> Response<ResponseBody<B>> {
    error(StatusCode::BAD_REQUEST, GENERIC_ERROR_CODE, detail)
}

/// A mint error as the client should see it: ours → 503 (nothing was spent), theirs → 400.
pub(crate) fn mint_error<B>(err: &coinslot_mint::Error) -> Response<ResponseBody<B>> {
    if err.is_internal() {
        tracing::error!(error = %err, "payment could not be recorded");
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            err.code(),
            "the payment could not be recorded; the token was not spent, try again",
        )
    } else {
        error(StatusCode::BAD_REQUEST, err.code(), &err.to_string())
    }
}

/// `402 Payment Required` with the payment request in `X-Cashu` and a JSON body a person
/// (and the Nutpay extension: `mint`, `amount`, `unit`) can read.
pub(crate) fn challenge<B>(
    settings: &Settings,
    shared: &Shared,
    price: &Price,
    request_headers: &HeaderMap,
    detail: Option<String>,
) -> Response<ResponseBody<B>> {
    let lock = settings.require_lock.then(|| shared.mint.pubkey());
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
    });
    let mut response = json(StatusCode::PAYMENT_REQUIRED, &body);
    if let Some(value) = encoded.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(X_CASHU, value);
    }
    response
}

/// Encodes proofs as a `cashuB` token of this mint.
pub(crate) fn token(settings: &Settings, unit: &CurrencyUnit, proofs: Vec<Proof>) -> String {
    Token::new(settings.mint_url.clone(), proofs, None, unit.clone()).to_string()
}

/// Puts proofs given back (change, refund) in the response's `X-Cashu` header.
pub(crate) fn attach_token<B>(
    response: &mut Response<B>,
    settings: &Settings,
    unit: &CurrencyUnit,
    proofs: Vec<Proof>,
) {
    if proofs.is_empty() {
        return;
    }
    let token = token(settings, unit, proofs);
    match HeaderValue::from_str(&token) {
        Ok(value) => {
            response.headers_mut().insert(X_CASHU, value);
        }
        Err(_) => tracing::error!("change token is not a valid header value"),
    }
    expose(response.headers_mut());
}

/// Sets `X-Cashu-Balance: <amount> <unit>`.
pub(crate) fn attach_balance<B>(response: &mut Response<B>, balance: u64, unit: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("{balance} {unit}")) {
        response.headers_mut().insert(X_CASHU_BALANCE, value);
    }
    expose(response.headers_mut());
}

pub(crate) fn expose(headers: &mut HeaderMap) {
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(nut24::EXPOSED_HEADERS),
    );
}
