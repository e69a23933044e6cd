//! The "Payment" HTTP authentication scheme (draft-httpauth-payment, intent `charge`) with
//! the `cashu` charge method (draft-cashu-charge): the same paywall, reached the way
//! agent frameworks pay (e.g. the `mppx` SDK), beside NUT-24's `X-Cashu`.
//!
//! - Every `402` carries `WWW-Authenticate: Payment id=…, realm=…, method="cashu",
//!   intent="charge", request=…, expires=…, opaque=…`. `request` is base64url (no padding)
//!   of the JCS JSON `{"amount": "<n>", "currency": "<unit>", "methodDetails": {"mints":
//!   […], "request": "creqA…"}}`; `opaque` binds the challenge to its route
//!   (`{"route": "GET /search"}`), so a credential for one route does not pay another;
//!   `opaque` also carries a nonce, so every challenge is unique and pays once; `id` is the
//!   draft's stateless HMAC-SHA256 over `realm|method|intent|request|expires|digest|opaque`,
//!   keyed by a secret derived from the mint's seed (in the data directory).
//! - With [`PaywallLayer::payment_authorization`](crate::PaywallLayer::payment_authorization)
//!   the challenge says `header="Payment-Authorization"` (bound into the id before
//!   `opaque`): clients put the credential there and `Authorization` stays the
//!   application's. A credential is taken from either header.
//! - A client answers with `Authorization: Payment <base64url JSON>`: the challenge echoed
//!   and `payload.cashu_token` (a `cashuB` token worth exactly the amount plus the mint's
//!   input fee: this binding makes no change). It is checked in the draft's order, then
//!   spent in the same durable write as an `X-Cashu` payment.
//! - Refusals are RFC 9457 `application/problem+json` bodies of the scheme's core problem
//!   types (`https://paymentauth.org/problems/invalid-challenge`, `payment-expired`,
//!   `verification-failed`, …, as mppx and mpp-rs raise them) with a fresh challenge and its
//!   `challengeId`; a success carries `Payment-Receipt` (base64url JSON: method,
//!   challengeId, reference = SHA-256 of the token as presented, status, timestamp) and
//!   `Cache-Control: private`.
//! - `Accept-Payment` is read as mppx reads it: it orders the offers a client can pay and
//!   never empties them; with one method (`cashu/charge`) every client gets the same
//!   challenge, whatever the header says (so `Vary` is not needed).
//!
//! - A request with a body gets a challenge with `digest` (RFC 9530 `sha-256=:…:` of the
//!   body, for bodies up to [`PaywallLayer::payment_body_limit`](crate::PaywallLayer::payment_body_limit)),
//!   and a credential answering it pays only for a request with that same body.
//! - On a pass scope's routes the challenge charges one minute's price, and the credential
//!   buys a one-minute pass (sent back in `X-Cashu-Pass`).
//!
//! A credential spends its token once: repeating it is refused as already spent, unless
//! the repeat carries the same `Idempotency-Key` as the paid request (and is the same
//! request, body included): then the stored answer is sent again, as for any retry of a
//! paid request (the route's [`Retry`](crate::Retry) rule), with no second charge and no
//! second run. A handler failure refunds the payment as a `cashuB` token in `X-Cashu`, as
//! for NUT-24. Input proofs that carry a DLEQ proof must verify.
//!
//! This module is the scheme's wire format. The envelope (challenges, credentials,
//! receipts, the id's HMAC, header syntax) is the `mpp` crate's, so our challenges are
//! byte-compatible with every mpp SDK; the `cashu` method's types come from
//! `coinslot-mpp`. Ours are the problem kinds (mpp has no type for a mint that is down
//! and a retry may cure), the route binding in `opaque`, and the body digest, which is
//! hashed as the body streams in rather than from a buffer. The checks of a credential
//! against a request live in the credential mode.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{AUTHORIZATION, CACHE_CONTROL};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use coinslot_mpp::method::{CashuPayload, MethodDetails};
pub use mpp::{ChallengeEcho, ChargeRequest, PaymentChallenge, PaymentCredential};

/// `Payment-Receipt`: what a successful payment bought, on the `200`.
pub const PAYMENT_RECEIPT: HeaderName = HeaderName::from_static("payment-receipt");
/// `Payment-Authorization`: where a credential goes when a challenge asks for it
/// (`header="Payment-Authorization"`), leaving `Authorization` to the application.
pub const PAYMENT_AUTHORIZATION: HeaderName = HeaderName::from_static("payment-authorization");
/// `Accept-Payment`: the methods and intents a client can pay (`cashu/charge;q=1, */*`).
pub const ACCEPT_PAYMENT: HeaderName = HeaderName::from_static("accept-payment");
/// The payment method.
pub const METHOD: &str = coinslot_mpp::METHOD;
/// The payment intent.
pub const INTENT: &str = coinslot_mpp::INTENT;
/// Where the problem types live.
pub const PROBLEM_BASE: &str = "https://paymentauth.org/problems/";
/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// The draft's refusals, by the core problem types every client of the scheme knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The credential cannot be decoded, or its token is not a `cashuB` token.
    MalformedCredential,
    /// Not a challenge of this server for this request (tampered, another route or price,
    /// paid already).
    InvalidChallenge,
    /// The challenge ran out.
    PaymentExpired,
    /// The token is not worth exactly the amount plus the input fee.
    PaymentInsufficient,
    /// The token does not pay: wrong unit or mint, locked, unknown keyset, already spent.
    VerificationFailed,
    /// A method other than `cashu`.
    MethodUnsupported,
    /// The payment could not be recorded (nothing was spent); send the same credential again.
    MintUnavailable,
}

impl ProblemKind {
    /// The slug, title and HTTP status.
    pub(crate) fn describe(self) -> (&'static str, &'static str, StatusCode) {
        match self {
            ProblemKind::MalformedCredential => (
                "malformed-credential",
                "Malformed Credential",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::InvalidChallenge => (
                "invalid-challenge",
                "Invalid Challenge",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::PaymentExpired => (
                "payment-expired",
                "Payment Expired",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::PaymentInsufficient => (
                "payment-insufficient",
                "Payment Insufficient",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::VerificationFailed => (
                "verification-failed",
                "Verification Failed",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::MethodUnsupported => (
                "method-unsupported",
                "Method Unsupported",
                StatusCode::BAD_REQUEST,
            ),
            // The scheme's type for a failure the same credential may retry; 503 (with
            // Retry-After) says so more exactly than its usual 500.
            ProblemKind::MintUnavailable => (
                "internal-payment-error",
                "Mint Unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        }
    }

    /// The problem type URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.describe().0)
    }
}

/// A refusal: its kind and what exactly is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem type.
    pub kind: ProblemKind,
    /// Words for people.
    pub detail: String,
}

impl Problem {
    pub(crate) fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// base64url without padding of the JCS serialization of `value`.
pub fn encode_jcs<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json_canonicalizer::to_vec(value)
        .map(|bytes| URL_SAFE_NO_PAD.encode(bytes))
        .map_err(|e| e.to_string())
}

/// Decodes base64url, with or without padding.
pub fn decode_b64url(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|e| format!("not base64url: {e}"))
}

/// The draft's stateless challenge id: base64url(HMAC-SHA256(secret,
/// `realm|method|intent|request|expires|digest|[header|]opaque`)), absent fields empty,
/// `header` only when it names `Payment-Authorization` (as mpp computes it).
pub fn challenge_id(secret: &str, challenge: &ChallengeEcho) -> String {
    mpp::compute_challenge_id_with_header(
        secret,
        &challenge.realm,
        challenge.method.as_str(),
        challenge.intent.as_str(),
        challenge.request.raw(),
        challenge.expires.as_deref(),
        challenge.digest.as_deref(),
        challenge.opaque.as_ref().map(|o| o.raw()),
        challenge.header.as_deref(),
    )
}

/// Whether `challenge.id` is this server's binding of the other fields (constant time).
pub fn verify_id(secret: &str, challenge: &ChallengeEcho) -> bool {
    let expected = challenge_id(secret, challenge);
    expected.as_bytes().ct_eq(challenge.id.as_bytes()).into()
}

/// RFC 3339 UTC, whole seconds.
pub(crate) fn rfc3339(unix: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// What a challenge is bound to besides its price: the request's method and path, and the
/// digest of its body (when it has one and it was read).
#[derive(Debug, Clone)]
pub(crate) struct Route {
    method: Method,
    path: String,
    /// The body's RFC 9530 digest, when it has one and it was read.
    pub digest: Option<String>,
}

impl Route {
    /// The route of a request to `method uri` whose body has `digest`.
    pub(crate) fn new(method: &Method, uri: &http::Uri, digest: Option<String>) -> Self {
        Self {
            method: method.clone(),
            path: uri.path().to_string(),
            digest,
        }
    }

    /// As the challenge's `opaque` names it: `GET /path`.
    pub(crate) fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The `WWW-Authenticate` value of a challenge (`None` if a field cannot be sent).
pub fn header_value(challenge: &PaymentChallenge) -> Option<String> {
    mpp::format_www_authenticate(challenge)
        .inspect_err(|e| tracing::error!(error = %e, "a Payment challenge could not be written"))
        .ok()
}

/// The `Payment` credentials of a request: `Payment-Authorization` first, then
/// `Authorization` (other schemes there are the application's and left alone).
fn credentials(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let values = headers
        .get_all(PAYMENT_AUTHORIZATION)
        .iter()
        .chain(headers.get_all(AUTHORIZATION).iter());
    values.filter_map(|value| {
        let text = value.to_str().ok()?.trim();
        is_payment_scheme(text).then_some(text)
    })
}

/// Whether a header value is of the `Payment` scheme.
pub(crate) fn is_payment_scheme(value: &str) -> bool {
    let value = value.trim();
    let scheme = value.split_once(' ').map_or(value, |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("payment")
}

/// The `Payment` credential a request carries, if any (`Err` if it cannot be read), in
/// `Authorization` or `Payment-Authorization`: a server accepts both, whichever header its
/// challenge named (the id binds the choice; the header only carries it).
pub(crate) fn find(headers: &HeaderMap) -> Option<Result<PaymentCredential, Problem>> {
    let mut found = credentials(headers);
    let first = found.next()?;
    if found.next().is_some() {
        return Some(Err(Problem::new(
            ProblemKind::MalformedCredential,
            "more than one Payment credential (Authorization and Payment-Authorization together, or repeated)",
        )));
    }
    Some(decode_credential(first))
}

/// Decodes a credential: `Payment <base64url JSON>` (the scheme name may be left out).
pub fn decode_credential(text: &str) -> Result<PaymentCredential, Problem> {
    let text = text.trim();
    let full = if is_payment_scheme(text) {
        text.to_string()
    } else {
        format!("Payment {text}")
    };
    mpp::parse_authorization(&full).map_err(|e| {
        Problem::new(
            ProblemKind::MalformedCredential,
            format!(
                "credential: {e}; expected base64url JSON {{\"challenge\": {{…}}, \"payload\": {{\"cashu_token\": \"cashuB…\"}}}}"
            ),
        )
    })
}

/// The `cashu` payload of a credential.
pub(crate) fn cashu_payload(credential: &PaymentCredential) -> Result<CashuPayload, Problem> {
    credential.payload_as().map_err(|_| {
        Problem::new(
            ProblemKind::MalformedCredential,
            "the credential's payload must be {\"cashu_token\": \"cashuB…\"}",
        )
    })
}

/// The RFC 9530 `Content-Digest` value of a body: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    content_digest_of(&Sha256::digest(body).into())
}

/// The RFC 9530 `Content-Digest` value of a SHA-256 digest.
pub fn content_digest_of(sha256: &[u8; 32]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(sha256))
}

/// The SHA-256 named by a `Content-Digest` header (RFC 9530 `sha-256=:<base64>:`, among
/// other algorithms); `None` when it names none or cannot be read.
pub fn parse_content_digest(value: &str) -> Option<[u8; 32]> {
    value.split(',').find_map(|member| {
        let (algorithm, rest) = member.trim().split_once('=')?;
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let encoded = rest.trim().strip_prefix(':')?.strip_suffix(':')?;
        STANDARD.decode(encoded).ok()?.try_into().ok()
    })
}

/// A request body as read for its digest.
pub(crate) enum ReadBody {
    /// The whole body (empty when there is none).
    Read(Bytes),
    /// Longer than the limit (what was read is lost).
    TooLong,
    /// The client stopped sending it.
    Failed,
}

impl ReadBody {
    /// The digest a challenge for this body carries: none for an empty or unread body.
    pub fn digest(&self) -> Option<String> {
        match self {
            ReadBody::Read(bytes) if !bytes.is_empty() => Some(content_digest(bytes)),
            _ => None,
        }
    }
}

/// Reads a body of at most `limit` bytes.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> ReadBody
where
    B: http_body::Body,
{
    if body.is_end_stream() {
        return ReadBody::Read(Bytes::new());
    }
    if body.size_hint().lower() > limit as u64 {
        return ReadBody::TooLong;
    }
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return ReadBody::Failed;
        };
        if let Ok(mut data) = frame.into_data() {
            if read.len() + data.remaining() > limit {
                return ReadBody::TooLong;
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                read.extend_from_slice(chunk);
                let len = chunk.len();
                data.advance(len);
            }
        }
    }
    ReadBody::Read(read.freeze())
}

/// The receipt of a payment: the method, `reference` (SHA-256 of the token as presented),
/// the challenge answered, the merchant's `externalId`.
fn receipt(
    challenge_id: &str,
    reference: &str,
    external_id: Option<&str>,
    at: u64,
) -> mpp::Receipt {
    let mut receipt = mpp::Receipt::success(METHOD, reference);
    receipt.timestamp = rfc3339(at);
    receipt.external_id = external_id.map(str::to_string);
    receipt
        .extensions
        .insert("challengeId".into(), challenge_id.into());
    receipt
}

/// Adds `Payment-Receipt` (and `Cache-Control: private`, so no shared cache hands a paid
/// answer to someone else) to a successful response.
pub(crate) fn attach_receipt<B>(
    response: &mut Response<B>,
    challenge_id: &str,
    reference: &str,
    external_id: Option<&str>,
) {
    let receipt = receipt(
        challenge_id,
        reference,
        external_id,
        coinslot_mint::unix_now(),
    );
    let Ok(encoded) = mpp::format_receipt(&receipt) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        let headers = response.headers_mut();
        headers.insert(PAYMENT_RECEIPT, value);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mpp::protocol::core::Base64UrlJson;
    use serde_json::json;

    /// The cashu draft's example request (appendix "Examples"), decoded and re-encoded.
    const DRAFT_REQUEST: &str = "eyJhbW91bnQiOiIxMDAiLCJjdXJyZW5jeSI6InNhdCIsImRlc2NyaXB0aW9uIjoiV2VhdGhlciByZXBvcnQgZm9yIDk0MTA3IiwibWV0aG9kRGV0YWlscyI6eyJtaW50cyI6WyJodHRwczovL21pbnQuZXhhbXBsZS5jb20iXSwicmVxdWVzdCI6ImNyZXFBLi4uIn19";

    #[test]
    fn the_draft_request_example_round_trips_through_jcs() {
        let decoded: ChargeRequest =
            serde_json::from_slice(&decode_b64url(DRAFT_REQUEST).unwrap()).unwrap();
        assert_eq!(decoded.amount, "100");
        assert_eq!(decoded.currency, "sat");
        assert_eq!(
            decoded.description.as_deref(),
            Some("Weather report for 94107")
        );
        let details = MethodDetails::of(&decoded).unwrap();
        assert_eq!(details.mints, vec!["https://mint.example.com"]);
        assert_eq!(details.request.as_deref(), Some("creqA..."));
        assert_eq!(encode_jcs(&decoded).unwrap(), DRAFT_REQUEST);
    }

    fn vector(
        request: &str,
        expires: Option<&str>,
        digest: Option<&str>,
        opaque: Option<&str>,
    ) -> ChallengeEcho {
        ChallengeEcho {
            id: "an-id".into(),
            realm: "api.example.com".into(),
            method: "tempo".into(),
            intent: "charge".into(),
            request: Base64UrlJson::from_raw(request),
            expires: expires.map(str::to_string),
            description: None,
            digest: digest.map(str::to_string),
            opaque: opaque.map(Base64UrlJson::from_raw),
            header: None,
        }
    }

    /// Vectors of the cross-SDK conformance suite (tempoxyz/mpp-tools, challenge-id.json).
    #[test]
    fn challenge_ids_match_the_conformance_vectors() {
        let key = "test-vector-secret-minimum-32-byte-secret";
        let request = encode_jcs(&json!({ "amount": "1000000" })).unwrap();
        let cases = [
            (
                vector(&request, None, None, None),
                "6QDs0BmhrI_v67iWeCMvGqQJEFQ6ErWKlk7zi5xL6t0",
            ),
            (
                vector(&request, Some("2025-01-06T12:00:00Z"), None, None),
                "ZcHgfEi5_Qyda9NQwUzamsCgCcWXw6N6EH2NLyaSTlg",
            ),
            (
                vector(
                    &request,
                    None,
                    Some("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE"),
                    None,
                ),
                "vwnOtW2kwdujK9_uC_taI2e6Jwq86Jwogvq9m--i8eQ",
            ),
            (
                vector(&encode_jcs(&json!({})).unwrap(), None, None, None),
                "SMpxo_gPWGquX9vAZ-b_OIPsHO3kfdY2s73946Mnwc0",
            ),
        ];
        for (challenge, expected) in cases {
            assert_eq!(challenge_id(key, &challenge), expected, "{challenge:?}");
        }
    }

    /// A cashu challenge computed independently (mppx 0.11.0 and Python agree on it).
    #[test]
    fn a_cashu_challenge_id_matches_an_independent_computation() {
        let mut challenge = vector(DRAFT_REQUEST, Some("2026-03-15T12:05:00Z"), None, None);
        challenge.method = "cashu".into();
        let key = "test-secret";
        assert_eq!(
            challenge_id(key, &challenge),
            "3WWvrlEZmRvtAwVhGID5cSVHFRtuggm0gpi1csXG8n0"
        );
        challenge.id = challenge_id(key, &challenge);
        assert!(verify_id(key, &challenge));
        challenge.realm = "other.example.com".into();
        assert!(!verify_id(key, &challenge));
    }

    /// `header` is bound into the id (before `opaque`): dropping it from the echo, or
    /// naming it on a challenge issued without it, breaks the id.
    #[test]
    fn the_credential_header_is_bound_into_the_id() {
        let key = "test-secret-of-at-least-32-bytes!!";
        let mut challenge = vector(
            DRAFT_REQUEST,
            Some("2026-03-15T12:05:00Z"),
            None,
            Some("e30"),
        );
        let plain = challenge_id(key, &challenge);
        challenge.header = Some("Payment-Authorization".into());
        challenge.id = challenge_id(key, &challenge);
        assert_ne!(challenge.id, plain);
        assert!(verify_id(key, &challenge));
        challenge.header = None;
        assert!(!verify_id(key, &challenge));
        // `Authorization` is the default and binds like no header at all.
        challenge.header = Some("Authorization".into());
        assert_eq!(challenge_id(key, &challenge), plain);
    }

    #[test]
    fn credentials_decode_with_or_without_padding_and_bad_ones_are_named() {
        let credential = PaymentCredential::new(
            vector(DRAFT_REQUEST, None, None, None),
            CashuPayload {
                cashu_token: "cashuBxyz".into(),
            },
        );
        let json = serde_json::to_vec(&credential).unwrap();
        let text = URL_SAFE_NO_PAD.encode(&json);
        let decoded = decode_credential(&text).unwrap();
        assert_eq!(decoded.challenge.request.raw(), DRAFT_REQUEST);
        assert_eq!(cashu_payload(&decoded).unwrap().cashu_token, "cashuBxyz");
        let with_scheme = decode_credential(&format!("Payment {text}")).unwrap();
        assert_eq!(
            cashu_payload(&with_scheme).unwrap().cashu_token,
            "cashuBxyz"
        );
        let err = decode_credential("not base64!").unwrap_err();
        assert_eq!(err.kind, ProblemKind::MalformedCredential);
        let err = decode_credential(&URL_SAFE_NO_PAD.encode(b"{\"challenge\": 1}")).unwrap_err();
        assert!(err.detail.contains("expected"), "{}", err.detail);
        let other = PaymentCredential::new(
            vector(DRAFT_REQUEST, None, None, None),
            json!({"hash": "0x1"}),
        );
        let other = decode_credential(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()))
            .unwrap();
        assert_eq!(
            cashu_payload(&other).unwrap_err().kind,
            ProblemKind::MalformedCredential
        );
    }

    #[test]
    fn credentials_are_found_in_either_header_but_only_once() {
        let credential = PaymentCredential::new(
            vector(DRAFT_REQUEST, None, None, None),
            CashuPayload {
                cashu_token: "cashuBxyz".into(),
            },
        );
        let value = mpp::format_authorization(&credential).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer app-token"));
        assert!(find(&headers).is_none());
        headers.insert(
            PAYMENT_AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        assert!(find(&headers).unwrap().is_ok());
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        let twice = find(&headers).unwrap().unwrap_err();
        assert_eq!(twice.kind, ProblemKind::MalformedCredential);
        headers.remove(PAYMENT_AUTHORIZATION);
        assert!(find(&headers).unwrap().is_ok());
    }

    /// RFC 9530's example: `{"hello": "world"}` (with the space).
    #[test]
    fn content_digests_follow_rfc_9530() {
        let body = b"{\"hello\": \"world\"}";
        assert_eq!(
            content_digest(body),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        let sha: [u8; 32] = Sha256::digest(body).into();
        let header = "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        assert_eq!(parse_content_digest(header), Some(sha));
        assert_eq!(parse_content_digest("sha-256=:not base64:"), None);
        assert_eq!(parse_content_digest("md5=:abc:"), None);
        // mpp checks our digests as its own.
        assert!(mpp::body_digest::verify(&content_digest(body), body));
    }

    /// The cashu draft's example credential (appendix "Retry with Credential"): its shape is
    /// ours; its `request` is a placeholder (`eyJ...`), which mpp's reader refuses.
    #[test]
    fn the_draft_credential_example_has_our_shape() {
        let text = "eyJjaGFsbGVuZ2UiOnsiaWQiOiJrTTl4UHFXdlQybkpySHNZNGFEZkViIiwicmVhbG0iOiJhcGkuZXhhbXBsZS5jb20iLCJtZXRob2QiOiJjYXNodSIsImludGVudCI6ImNoYXJnZSIsInJlcXVlc3QiOiJleUouLi4iLCJleHBpcmVzIjoiMjAyNi0wMy0xNVQxMjowNTowMFoifSwic291cmNlIjoiZGlkOmtleTp6Nk1raGFYZ0JaRHZvdERrTDUyNTdmYWl6dGlHaUMyUXRLTEdwYm5uRUd0YTJkb0siLCJwYXlsb2FkIjp7ImNhc2h1X3Rva2VuIjoiY2FzaHVCcEdGMGdhSmhhVWdBLi4uIn19";
        let err = decode_credential(text).unwrap_err();
        assert_eq!(err.kind, ProblemKind::MalformedCredential);
        let credential: PaymentCredential =
            serde_json::from_slice(&decode_b64url(text).unwrap()).unwrap();
        assert_eq!(credential.challenge.id, "kM9xPqWvT2nJrHsY4aDfEb");
        assert_eq!(credential.challenge.method.as_str(), "cashu");
        assert_eq!(
            credential.challenge.expires.as_deref(),
            Some("2026-03-15T12:05:00Z")
        );
        assert_eq!(
            cashu_payload(&credential).unwrap().cashu_token,
            "cashuBpGF0gaJhaUgA..."
        );
        assert!(credential
            .source
            .as_deref()
            .unwrap()
            .starts_with("did:key:"));
    }

    /// The draft's example receipt: ours of the same fields decodes to the same fields
    /// (mpp writes them in its own order, as mppx does).
    #[test]
    fn receipts_carry_the_draft_example_fields() {
        let expected = "eyJjaGFsbGVuZ2VJZCI6ImtNOXhQcVd2VDJuSnJIc1k0YURmRWIiLCJleHRlcm5hbElkIjoib3JkZXJfMTIzNDUiLCJtZXRob2QiOiJjYXNodSIsInJlZmVyZW5jZSI6IjliNzFkMjI0YmQ2MmYzNzg1ZDk2ZDQ2YWQzZWEzZDczMzE5YmZiYzI4OTBjYWFkYWUyZGZmNzI1MTk2NzNjYTciLCJzdGF0dXMiOiJzdWNjZXNzIiwidGltZXN0YW1wIjoiMjAyNi0wMy0xMFQyMTowMDowMFoifQ";
        let ours = receipt(
            "kM9xPqWvT2nJrHsY4aDfEb",
            "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7",
            Some("order_12345"),
            1_773_176_400,
        );
        let ours: serde_json::Value =
            serde_json::from_slice(&decode_b64url(&mpp::format_receipt(&ours).unwrap()).unwrap())
                .unwrap();
        let draft: serde_json::Value =
            serde_json::from_slice(&decode_b64url(expected).unwrap()).unwrap();
        assert_eq!(ours, draft);
        assert!(mpp::parse_receipt(expected).unwrap().is_success());
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_773_576_300), "2026-03-15T12:05:00Z");
        assert_eq!(parse_rfc3339("2026-03-15T12:05:00Z"), Some(1_773_576_300));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
