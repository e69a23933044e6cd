//! NUT-24 on the wire: the payment request a `402` carries, and where a client puts its
//! token, session credential and pass.

use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::cashu::nuts::nut10::Kind;
use coinslot_mint::cashu::nuts::nut18::{Nut10SecretRequest, PaymentRequest};
use coinslot_mint::cashu::nuts::PublicKey;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

use crate::Price;

/// `X-Cashu`: the payment request on a `402`, the token on a paid request, change or a
/// refund on a response.
pub const X_CASHU: HeaderName = HeaderName::from_static("x-cashu");
/// `X-Cashu-Session`: the prepaid session credential, on requests and on the responses that
/// open or renew a session.
pub const X_CASHU_SESSION: HeaderName = HeaderName::from_static("x-cashu-session");
/// `X-Cashu-Balance`: what the session holds after this request, as `<amount> <unit>`.
pub const X_CASHU_BALANCE: HeaderName = HeaderName::from_static("x-cashu-balance");
/// `X-Cashu-Accept`: a client that prefers NUT-26 requests sends `creqB` here.
pub const X_CASHU_ACCEPT: HeaderName = HeaderName::from_static("x-cashu-accept");
/// `X-Cashu-Pass`: the pass, on requests that use it and on responses that sell it.
pub const X_CASHU_PASS: HeaderName = HeaderName::from_static("x-cashu-pass");
/// `X-Cashu-Pass-Expires`: when the pass runs out, Unix seconds.
pub const X_CASHU_PASS_EXPIRES: HeaderName = HeaderName::from_static("x-cashu-pass-expires");
/// `X-Cashu-Pass-Remaining`: seconds the pass has left.
pub const X_CASHU_PASS_REMAINING: HeaderName = HeaderName::from_static("x-cashu-pass-remaining");
/// `Idempotency-Key`: a client's name for one operation, so a retry is recognised.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Headers a browser script may read on the layer's responses (CORS): the layer sends
/// them in `Access-Control-Expose-Headers` itself. `WWW-Authenticate` (the `Payment`
/// challenge) and `Payment-Receipt` are not safelisted, so they are named too.
pub const EXPOSED_HEADERS: &str = "x-cashu, x-cashu-session, x-cashu-balance, x-cashu-pass, \
     x-cashu-pass-expires, x-cashu-pass-remaining, www-authenticate, payment-receipt";

/// The request headers a browser page on another origin pays with: list them in the CORS
/// layer's `Access-Control-Allow-Headers` (a `*` there does not cover `Authorization`,
/// under the Fetch rules), e.g. tower-http's
/// `CorsLayer::new().allow_headers(nut24::REQUEST_HEADERS)` (as `examples/paid-search` does).
pub const REQUEST_HEADERS: [HeaderName; 10] = [
    AUTHORIZATION,
    http::header::CONTENT_TYPE,
    X_CASHU,
    X_CASHU_SESSION,
    X_CASHU_PASS,
    X_CASHU_ACCEPT,
    IDEMPOTENCY_KEY,
    HeaderName::from_static("content-digest"),
    HeaderName::from_static("payment-authorization"),
    HeaderName::from_static("accept-payment"),
];

/// How a `402` encodes its payment request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestEncoding {
    /// NUT-18 `creqA…` (base64 CBOR), what NUT-24 clients read today.
    #[default]
    CreqA,
    /// NUT-26 `CREQB1…` (bech32m), compact and QR-friendly.
    CreqB,
}

/// Builds the payment request for `price`: amount, unit, this mint, single use, in-band
/// (no transports), and a P2PK lock to `lock` when the service requires one.
pub fn payment_request(
    price: &Price,
    mints: &[MintUrl],
    lock: Option<&PublicKey>,
) -> PaymentRequest {
    let mut builder = PaymentRequest::builder()
        .amount(price.amount)
        .unit(price.unit.clone())
        .single_use(true)
        .mints(mints.to_vec());
    if let Some(key) = lock {
        builder = builder.nut10(Nut10SecretRequest::new(
            Kind::P2PK,
            key.to_hex(),
            None::<Vec<Vec<String>>>,
        ));
    }
    builder.build()
}

/// Encodes a payment request; `None` if it cannot be encoded (never for requests we build).
pub fn encode_request(request: &PaymentRequest, encoding: RequestEncoding) -> Option<String> {
    match encoding {
        RequestEncoding::CreqA => Some(request.to_string()),
        RequestEncoding::CreqB => request.to_bech32_string().ok(),
    }
}

/// The encoding a client asked for with `X-Cashu-Accept`, else `default`.
pub fn requested_encoding(headers: &HeaderMap, default: RequestEncoding) -> RequestEncoding {
    match headers.get(X_CASHU_ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(v) if v.trim().eq_ignore_ascii_case("creqb") => RequestEncoding::CreqB,
        Some(v) if v.trim().eq_ignore_ascii_case("creqa") => RequestEncoding::CreqA,
        _ => default,
    }
}

/// Where a token was found, so it can be removed before the request goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `X-Cashu: cashuB…`
    XCashu,
    /// `Authorization: Cashu <token>`
    Authorization,
    /// `Authorization: Bearer cashu…`: an API key where the paywall keeps key balances.
    Bearer,
}

impl TokenSource {
    /// The header the token came in.
    pub fn header(self) -> http::HeaderName {
        match self {
            TokenSource::XCashu => X_CASHU,
            TokenSource::Authorization | TokenSource::Bearer => http::header::AUTHORIZATION,
        }
    }
}

/// A malformed payment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError(pub String);

/// Finds a token: `X-Cashu: cashuA…/cashuB…`, `Authorization: Cashu <token>` or
/// `Authorization: Bearer cashu…`. `Ok(None)` when the request carries none.
pub fn find_token(headers: &HeaderMap) -> Result<Option<(String, TokenSource)>, HeaderError> {
    if let Some(value) = headers.get(X_CASHU) {
        let value = value
            .to_str()
            .map_err(|_| HeaderError("X-Cashu header is not ASCII".into()))?
            .trim();
        if !value.starts_with("cashu") {
            return Err(HeaderError(
                "X-Cashu header must hold a cashuA or cashuB token".into(),
            ));
        }
        return Ok(Some((value.to_string(), TokenSource::XCashu)));
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return Ok(None);
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("cashu") {
        if !rest.starts_with("cashu") {
            return Err(HeaderError(
                "Authorization: Cashu must be followed by a cashuA or cashuB token".into(),
            ));
        }
        return Ok(Some((rest.to_string(), TokenSource::Authorization)));
    }
    if scheme.eq_ignore_ascii_case("bearer") && rest.starts_with("cashu") {
        return Ok(Some((rest.to_string(), TokenSource::Bearer)));
    }
    // Other Authorization schemes belong to the application.
    Ok(None)
}

/// The session credential from `X-Cashu-Session`, if any.
pub fn find_session(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    headers
        .get(X_CASHU_SESSION)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| HeaderError("X-Cashu-Session header is not ASCII".into()))
        })
        .transpose()
}

/// Sets the pass headers: the credential (when just bought), expiry and seconds left.
pub fn attach_pass(headers: &mut HeaderMap, pass: &crate::ValidPass, credential: Option<&str>) {
    if let Some(value) = credential.and_then(|c| http::HeaderValue::from_str(c).ok()) {
        headers.insert(X_CASHU_PASS, value);
    }
    headers.insert(X_CASHU_PASS_EXPIRES, pass.expires_at.into());
    let remaining = pass.remaining(coinslot_mint::unix_now());
    headers.insert(X_CASHU_PASS_REMAINING, remaining.into());
    headers.insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        http::HeaderValue::from_static(EXPOSED_HEADERS),
    );
}

/// The pass credential from `X-Cashu-Pass`, if any.
pub fn find_pass(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    headers
        .get(X_CASHU_PASS)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| HeaderError("X-Cashu-Pass is not valid text".into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn tokens_are_found_in_every_accepted_place() {
        let found = |pairs| find_token(&headers(pairs)).unwrap();
        assert_eq!(
            found(&[("x-cashu", " cashuBabc ")]),
            Some(("cashuBabc".into(), TokenSource::XCashu))
        );
        assert_eq!(
            found(&[("authorization", "Cashu cashuAxyz")]),
            Some(("cashuAxyz".into(), TokenSource::Authorization))
        );
        assert_eq!(
            found(&[("authorization", "bearer cashuBq")]),
            Some(("cashuBq".into(), TokenSource::Bearer))
        );
        assert_eq!(found(&[("authorization", "Bearer eyJhbGciOi")]), None);
        assert_eq!(found(&[]), None);
    }

    #[test]
    fn malformed_payment_headers_are_named() {
        let err = find_token(&headers(&[("x-cashu", "creqAabc")])).unwrap_err();
        assert!(err.0.contains("X-Cashu"), "{}", err.0);
        let err = find_token(&headers(&[("authorization", "Cashu nope")])).unwrap_err();
        assert!(err.0.contains("Authorization"), "{}", err.0);
    }

    #[test]
    fn payment_requests_round_trip_in_both_encodings() {
        let mint = MintUrl::from_str("http://127.0.0.1:3338").unwrap();
        let key = coinslot_mint::cashu::nuts::SecretKey::generate().public_key();
        let request = payment_request(&Price::sat(21), std::slice::from_ref(&mint), Some(&key));
        let a = encode_request(&request, RequestEncoding::CreqA).unwrap();
        assert!(a.starts_with("creqA"), "{a}");
        let parsed = PaymentRequest::from_str(&a).unwrap();
        assert_eq!(parsed.amount.map(u64::from), Some(21));
        assert_eq!(parsed.mints, vec![mint.clone()]);
        assert_eq!(parsed.nut10.map(|n| n.data), Some(key.to_hex()));
        let b = encode_request(&request, RequestEncoding::CreqB).unwrap();
        let parsed = PaymentRequest::from_bech32_string(&b).unwrap();
        assert_eq!(parsed.amount.map(u64::from), Some(21));
        assert_eq!(parsed.single_use, Some(true));
    }

    #[test]
    fn clients_choose_the_encoding() {
        let h = headers(&[("x-cashu-accept", "creqB")]);
        assert_eq!(
            requested_encoding(&h, RequestEncoding::CreqA),
            RequestEncoding::CreqB
        );
        assert_eq!(
            requested_encoding(&HeaderMap::new(), RequestEncoding::CreqB),
            RequestEncoding::CreqB
        );
    }
}
