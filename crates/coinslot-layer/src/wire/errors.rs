//! Answers the layer writes itself: JSON, Cashu errors (`{"detail", "code"}`, through the
//! mint's one mapping [`ErrorBody`]), and the headers it adds to every answer of its own
//! (CORS exposure, no caching).

use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof, Token};
use coinslot_mint::{Error, ErrorBody, ErrorCode};
use http::header::{ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::Value;

use crate::wire::nut24::{self, X_CASHU, X_CASHU_BALANCE};
use crate::ResponseBody;

/// An answer of the layer's, over the inner service's body type.
pub(crate) type Reply<B> = Response<ResponseBody<B>>;

/// A JSON response with the layer's CORS and caching headers.
pub(crate) fn json<B>(status: StatusCode, body: &Value) -> Reply<B> {
    json_text(status, body.to_string())
}

fn json_text<B>(status: StatusCode, text: String) -> Reply<B> {
    let mut response = Response::new(ResponseBody::own(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    expose(headers);
    response
}

/// A refusal decided before any response type is known: status, Cashu code, detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
}

impl Rejection {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// `400` with a code of the NUT table.
    pub fn cashu(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// `400` for a malformed request: the generic code, the detail names what is wrong.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::cashu(ErrorCode::Generic, detail)
    }

    /// `401` (a session or pass credential that does not open this).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Generic, detail)
    }

    /// `400` `11001`: the payment is spent.
    pub fn spent(detail: impl Into<String>) -> Self {
        Self::cashu(ErrorCode::TokenAlreadySpent, detail)
    }

    /// `400` `11002`: the payment's run has not finished.
    pub fn pending() -> Self {
        Self::cashu(
            ErrorCode::TokenPending,
            "this payment is paying for a request that is still running; repeat the request once it has finished",
        )
    }

    /// A mint error as the client should see it: ours → 503 (nothing was spent, try
    /// again), the request's → 400 with its code.
    pub fn mint(err: &Error) -> Self {
        let body = ErrorBody::from(err);
        if err.is_internal() {
            tracing::error!(error = %err, "payment could not be recorded");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                body.code,
                "the payment could not be recorded; the token was not spent, try again",
            );
        }
        Self::cashu(body.code, body.detail)
    }

    pub fn into_response<B>(self) -> Reply<B> {
        let body = ErrorBody::new(self.code, self.detail);
        let mut json = serde_json::to_value(&body).unwrap_or_default();
        json["error"] = openai_error(self.status, &body.detail);
        let mut response = json_text(self.status, json.to_string());
        response.extensions_mut().insert(body.code);
        response
    }
}

/// The same refusal as OpenAI-style clients read it (`error.message`), beside the Cashu
/// shape (`detail`, `code`): an SDK that pays with a token as its API key shows why.
pub(crate) fn openai_error(status: StatusCode, detail: &str) -> Value {
    let kind = match status.as_u16() {
        400 | 404 | 405 | 413 => "invalid_request_error",
        401 => "authentication_error",
        402 => "payment_required",
        503 => "service_unavailable",
        _ => "api_error",
    };
    serde_json::json!({ "message": detail, "type": kind, "code": null })
}

/// A refusal's reason, when its status and code do not say it (a pass that does not open
/// a route).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reason(pub &'static str);

/// Why the layer refused a request, if it did: a `402`, or a `4xx` it wrote itself (for
/// the mint's activity feed and metrics).
pub(crate) fn refusal<B>(response: &Response<B>) -> Option<&'static str> {
    if let Some(Reason(reason)) = response.extensions().get::<Reason>() {
        return Some(reason);
    }
    let status = response.status();
    if status == StatusCode::PAYMENT_REQUIRED {
        return Some("payment_required");
    }
    if !status.is_client_error() {
        return None;
    }
    let code = response.extensions().get::<ErrorCode>()?;
    Some(match code {
        ErrorCode::TokenAlreadySpent => "spent",
        ErrorCode::TokenPending => "pending",
        ErrorCode::TransactionUnbalanced => "insufficient",
        ErrorCode::UnitMismatch | ErrorCode::MultipleUnits | ErrorCode::UnitUnsupported => {
            "wrong_unit"
        }
        ErrorCode::KeysetNotFound => "unknown_keyset",
        ErrorCode::TokenNotVerified => "not_verified",
        ErrorCode::WitnessMissingOrInvalid => "witness",
        _ if status == StatusCode::UNAUTHORIZED => "bad_session",
        _ => "bad_request",
    })
}

/// Encodes proofs as a `cashuB` token of `mint`.
pub(crate) fn token(mint: &MintUrl, unit: &CurrencyUnit, proofs: Vec<Proof>) -> String {
    Token::new(mint.clone(), proofs, None, unit.clone()).to_string()
}

/// Puts proofs given back (change, refund) in the response's `X-Cashu` header.
pub(crate) fn attach_token<B>(
    response: &mut Response<B>,
    mint: &MintUrl,
    unit: &CurrencyUnit,
    proofs: Vec<Proof>,
) {
    if proofs.is_empty() {
        return;
    }
    match HeaderValue::from_str(&token(mint, unit, proofs)) {
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

/// Lets browser scripts read the layer's headers (CORS).
pub(crate) fn expose(headers: &mut HeaderMap) {
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(nut24::EXPOSED_HEADERS),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn refusals_carry_the_nut_code_by_name_and_are_labelled() {
        let response: Reply<http_body_util::Empty<bytes::Bytes>> =
            Rejection::spent("token already spent").into_response();
        assert_eq!(response.status(), 400);
        assert_eq!(refusal(&response), Some("spent"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], 11001);
        assert_eq!(body["detail"], "token already spent");

        let storage = Rejection::mint(&Error::Storage("disk full".into()));
        assert_eq!(storage.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!storage.detail.contains("disk"), "{}", storage.detail);
        let unit = Rejection::mint(&Error::WrongUnit {
            expected: "sat".into(),
            found: "usd".into(),
        });
        assert_eq!((unit.status.as_u16(), unit.code.as_u16()), (400, 11010));
    }
}
