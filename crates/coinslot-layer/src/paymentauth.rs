//! The "Payment" HTTP authentication scheme (draft-httpauth-payment, intent `charge`) with
//! the `cashu` charge method (draft-cashu-charge): the same paywall, reached the way
//! agent frameworks pay (e.g. the `mppx` SDK), beside NUT-24's `X-Cashu`.
//!
//! - Every `402` carries `WWW-Authenticate: Payment id=…, realm=…, method="cashu",
//!   intent="charge", request=…, expires=…, opaque=…`. `request` is base64url (no padding)
//!   of the JCS JSON `{"amount": "<n>", "currency": "<unit>", "methodDetails": {"mints":
//!   […], "request": "creqA…"}}`; `opaque` binds the challenge to its route
//!   (`{"route": "GET /search"}`), so a credential for one route does not pay another;
//!   `id` is the draft's stateless HMAC-SHA256 over
//!   `realm|method|intent|request|expires|digest|opaque`, keyed by a secret derived from
//!   the mint's seed (in the data directory).
//! - A client answers with `Authorization: Payment <base64url JSON>`: the challenge echoed
//!   and `payload.cashu_token` (a `cashuB` token worth exactly the amount plus the mint's
//!   input fee: this binding makes no change). It is checked in the draft's order, then
//!   spent in the same durable write as an `X-Cashu` payment.
//! - Refusals are RFC 9457 `application/problem+json` bodies of the draft's problem types
//!   with a fresh challenge; a success carries `Payment-Receipt` (base64url JSON: method,
//!   challengeId, reference = SHA-256 of the token as presented, status, timestamp).
//!
//! - A request with a body gets a challenge with `digest` (RFC 9530 `sha-256=:…:` of the
//!   body, for bodies up to [`PaywallLayer::payment_body_limit`](crate::PaywallLayer::payment_body_limit)),
//!   and a credential answering it pays only for a request with that same body.
//! - On a pass scope's routes the challenge charges one minute's price, and the credential
//!   buys a one-minute pass (sent back in `X-Cashu-Pass`).
//!
//! A credential spends its token once: repeating it is refused as already spent, unless
//! the repeat carries the same `Idempotency-Key` as the paid request (and is the same
//! request): then the original response is sent again without a second charge or a
//! second run of the handler (kept in memory for NUT-24's retry window; after a restart,
//! on another instance, or for a response too large to keep, the handler runs again,
//! within NUT-24's retry count). A handler failure refunds the payment as a `cashuB` token
//! in `X-Cashu`, as for NUT-24. Input proofs that carry a DLEQ proof must verify.

use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use coinslot_mint::cashu::nuts::nut10;
use coinslot_mint::cashu::nuts::{Proof, Token};
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::layer::{Settings, Shared};
use crate::{nut24, Price, ResponseBody};

/// `Payment-Receipt`: what a successful payment bought, on the `200`.
pub const PAYMENT_RECEIPT: HeaderName = HeaderName::from_static("payment-receipt");
/// The payment method.
pub const METHOD: &str = "cashu";
/// The payment intent.
pub const INTENT: &str = "charge";
/// Where the problem types live.
pub const PROBLEM_BASE: &str = "https://paymentauth.org/problems/";
/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// The draft's refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The credential cannot be decoded, or its token is not a `cashuB` token.
    MalformedCredential,
    /// Not a challenge of this server for this request (tampered, another route or price).
    InvalidChallenge,
    /// The challenge ran out.
    PaymentExpired,
    /// The token is not worth exactly the amount plus the input fee.
    PaymentInsufficient,
    /// The token does not pay: wrong unit or mint, locked, unknown keyset, already spent.
    VerificationFailed,
    /// A method other than `cashu`.
    MethodUnsupported,
    /// The payment could not be recorded (nothing was spent); try again.
    MintUnavailable,
}

impl ProblemKind {
    /// The slug, title and HTTP status.
    fn describe(self) -> (&'static str, &'static str, StatusCode) {
        match self {
            ProblemKind::MalformedCredential => (
                "cashu/malformed-credential",
                "Malformed Credential",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::InvalidChallenge => (
                "cashu/invalid-challenge",
                "Invalid Challenge",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::PaymentExpired => (
                "cashu/payment-expired",
                "Payment Expired",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::PaymentInsufficient => (
                "cashu/payment-insufficient",
                "Payment Insufficient",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::VerificationFailed => (
                "cashu/verification-failed",
                "Verification Failed",
                StatusCode::PAYMENT_REQUIRED,
            ),
            ProblemKind::MethodUnsupported => (
                "method-unsupported",
                "Method Unsupported",
                StatusCode::BAD_REQUEST,
            ),
            ProblemKind::MintUnavailable => (
                "cashu/mint-unavailable",
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

/// The challenge a client echoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoedChallenge {
    /// The HMAC binding.
    pub id: String,
    /// Protection space.
    pub realm: String,
    /// `cashu`.
    pub method: String,
    /// `charge`.
    pub intent: String,
    /// base64url JCS JSON of the request.
    pub request: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// RFC 9530 body digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// base64url JCS JSON of server data (here the route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
    /// Display text (not bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A `Payment` credential (`Authorization: Payment <base64url JSON>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The challenge answered.
    pub challenge: EchoedChallenge,
    /// Who pays (optional, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The method's proof of payment.
    pub payload: CashuPayload,
}

/// The `cashu` method's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashuPayload {
    /// A `cashuB` token.
    pub cashu_token: String,
}

/// The decoded `request` of a `cashu` charge challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The amount, a decimal string.
    pub amount: String,
    /// The Cashu unit.
    pub currency: String,
    /// An optional memo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A merchant reference echoed in the receipt.
    #[serde(
        rename = "externalId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<String>,
    /// The method's details.
    #[serde(rename = "methodDetails")]
    pub method_details: MethodDetails,
}

/// `methodDetails` of a `cashu` charge request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDetails {
    /// The NUT-18 payment request (`creqA…`).
    pub request: String,
    /// Mints whose ecash is accepted.
    pub mints: Vec<String>,
}

/// base64url without padding of the JCS serialization of `value`.
pub fn encode_jcs<T: Serialize>(value: &T) -> Result<String, String> {
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

/// The draft's stateless challenge id: base64url(HMAC-SHA256(key,
/// `realm|method|intent|request|expires|digest|opaque`)), absent fields empty.
pub fn challenge_id(key: &[u8], challenge: &EchoedChallenge) -> String {
    URL_SAFE_NO_PAD.encode(binding(key, challenge).finalize().into_bytes())
}

fn binding(key: &[u8], c: &EchoedChallenge) -> HmacSha256 {
    let input = [
        c.realm.as_str(),
        &c.method,
        &c.intent,
        &c.request,
        c.expires.as_deref().unwrap_or(""),
        c.digest.as_deref().unwrap_or(""),
        c.opaque.as_deref().unwrap_or(""),
    ]
    .join("|");
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(input.as_bytes());
    mac
}

/// Whether `challenge.id` is this server's binding of the other fields (constant time).
pub fn verify_id(key: &[u8], challenge: &EchoedChallenge) -> bool {
    decode_b64url(&challenge.id).is_ok_and(|id| binding(key, challenge).verify_slice(&id).is_ok())
}

/// RFC 3339 UTC, whole seconds.
fn rfc3339(unix: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse_rfc3339(text: &str) -> Option<i64> {
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
    digest: Option<String>,
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
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The realm: the host (and port) clients reach the service at.
fn realm(settings: &Settings) -> String {
    let url = settings.mint_url.to_string();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// A fresh challenge for `price` on a route. `None` when the paywall requires locked
/// proofs (this binding takes bearer proofs only).
pub(crate) fn challenge(
    settings: &Settings,
    shared: &Shared,
    price: &Price,
    route: &Route,
) -> Option<EchoedChallenge> {
    if settings.require_lock {
        return None;
    }
    let creq = nut24::payment_request(price, &settings.accepted_mints, None).to_string();
    let request = ChargeRequest {
        amount: price.amount.to_string(),
        currency: price.unit.to_string(),
        description: None,
        external_id: None,
        method_details: MethodDetails {
            request: creq,
            mints: settings
                .accepted_mints
                .iter()
                .map(|m| m.to_string())
                .collect(),
        },
    };
    let mut challenge = EchoedChallenge {
        id: String::new(),
        realm: realm(settings),
        method: METHOD.into(),
        intent: INTENT.into(),
        request: encode_jcs(&request).ok()?,
        expires: Some(rfc3339(
            coinslot_mint::unix_now() + settings.payment_challenge_ttl.as_secs(),
        )),
        digest: route.digest.clone(),
        opaque: Some(encode_jcs(&json!({ "route": route.name() })).ok()?),
        description: None,
    };
    challenge.id = challenge_id(&shared.payment_key, &challenge);
    Some(challenge)
}

/// The `WWW-Authenticate` value of a challenge.
pub fn header_value(challenge: &EchoedChallenge) -> String {
    let mut out = format!(
        "Payment id=\"{}\", realm=\"{}\", method=\"{}\", intent=\"{}\", request=\"{}\"",
        challenge.id,
        quote(&challenge.realm),
        challenge.method,
        challenge.intent,
        challenge.request
    );
    for (name, value) in [
        ("expires", &challenge.expires),
        ("digest", &challenge.digest),
        ("opaque", &challenge.opaque),
        ("description", &challenge.description),
    ] {
        if let Some(value) = value {
            out.push_str(&format!(", {name}=\"{}\"", quote(value)));
        }
    }
    out
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Adds a fresh challenge (bound to the request body's `digest`, if given) to a `402`,
/// with `Cache-Control: no-store`.
pub(crate) fn offer<B>(
    response: &mut Response<B>,
    settings: &Settings,
    shared: &Shared,
    price: &Price,
    route: &Route,
) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let Some(challenge) = challenge(settings, shared, price, route) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&header_value(&challenge)) {
        headers.append(WWW_AUTHENTICATE, value);
    }
}

/// The `Payment` credential a request carries, if any (`Err` if it cannot be read).
pub(crate) fn find(headers: &HeaderMap) -> Option<Result<Credential, Problem>> {
    let mut found = headers.get_all(AUTHORIZATION).iter().filter_map(|value| {
        let text = value.to_str().ok()?.trim();
        let (scheme, rest) = text.split_once(' ')?;
        scheme.eq_ignore_ascii_case("payment").then(|| rest.trim())
    });
    let first = found.next()?;
    if found.next().is_some() {
        return Some(Err(Problem::new(
            ProblemKind::MalformedCredential,
            "more than one Authorization: Payment credential",
        )));
    }
    Some(decode_credential(first))
}

/// Decodes `Authorization: Payment <this>`.
pub fn decode_credential(text: &str) -> Result<Credential, Problem> {
    let malformed = |why: String| Problem::new(ProblemKind::MalformedCredential, why);
    let bytes = decode_b64url(text).map_err(|e| malformed(format!("credential: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        malformed(format!(
            "credential: {e}; expected {{\"challenge\": {{…}}, \"payload\": {{\"cashu_token\": \"cashuB…\"}}}}"
        ))
    })
}

/// A credential that passed every check before the spend.
#[derive(Debug)]
pub(crate) struct Verified {
    pub proofs: Vec<Proof>,
    pub challenge_id: String,
    pub external_id: Option<String>,
    /// SHA-256 of the token string as presented, lowercase hex.
    pub reference: String,
}

/// Checks a credential for a request on `route` (its digest `None`: no body, or not read)
/// priced `price`, in the draft's order; nothing is spent.
pub(crate) fn verify(
    settings: &Settings,
    shared: &Shared,
    credential: &Credential,
    price: &Price,
    route: &Route,
) -> Result<Verified, Problem> {
    use ProblemKind::*;
    let raw = credential.payload.cashu_token.trim();
    let echoed = &credential.challenge;
    if echoed.method != METHOD {
        return Err(Problem::new(
            MethodUnsupported,
            format!(
                "method `{}` is not accepted here; use `cashu`",
                echoed.method
            ),
        ));
    }
    // 2. A cashuB token with proofs.
    if !raw.starts_with("cashuB") {
        return Err(Problem::new(
            MalformedCredential,
            "payload.cashu_token must be a cashuB token (cashuA is not accepted)",
        ));
    }
    if raw.len() > settings.max_token_len {
        return Err(Problem::new(
            MalformedCredential,
            format!("the token is over {} bytes", settings.max_token_len),
        ));
    }
    let token = Token::from_str(raw).map_err(|e| {
        Problem::new(
            MalformedCredential,
            format!("the token does not decode: {e}"),
        )
    })?;
    // 4–5. The challenge is ours, untouched, for this route and price.
    if !verify_id(&shared.payment_key, echoed) {
        return Err(Problem::new(
            InvalidChallenge,
            "the challenge was not issued by this server, or a field of it was changed",
        ));
    }
    if echoed.intent != INTENT {
        return Err(Problem::new(
            InvalidChallenge,
            "the intent must be `charge`",
        ));
    }
    let request: ChargeRequest = decode_b64url(&echoed.request)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Problem::new(InvalidChallenge, "the challenge's request does not decode"))?;
    let issued_for = echoed
        .opaque
        .as_deref()
        .and_then(|o| decode_b64url(o).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v["route"].as_str().map(str::to_string));
    let here = route.name();
    if issued_for.as_deref() != Some(here.as_str()) {
        return Err(Problem::new(
            InvalidChallenge,
            format!(
                "the challenge was issued for {}, not {here}",
                issued_for.as_deref().unwrap_or("another request")
            ),
        ));
    }
    if request.amount != price.amount.to_string() || request.currency != price.unit.to_string() {
        return Err(Problem::new(
            InvalidChallenge,
            format!(
                "the challenge asked {} {}; the price is now {} {}",
                request.amount, request.currency, price.amount, price.unit
            ),
        ));
    }
    // 6. The body it was issued for.
    if let Some(digest) = &echoed.digest {
        if route.digest.as_ref() != Some(digest) {
            return Err(Problem::new(
                InvalidChallenge,
                "the challenge was issued for a request with another body (its digest does not match this body)",
            ));
        }
    }
    // 7. Not expired.
    let expires = echoed.expires.as_deref().and_then(parse_rfc3339);
    let now = i64::try_from(coinslot_mint::unix_now()).unwrap_or(i64::MAX);
    if expires.is_none_or(|at| at <= now) {
        return Err(Problem::new(
            PaymentExpired,
            "the challenge has expired; answer the fresh one",
        ));
    }
    // 8. Unit.
    let unit = token
        .unit()
        .ok_or_else(|| Problem::new(VerificationFailed, "the token names no unit"))?;
    if unit.to_string() != request.currency {
        return Err(Problem::new(
            VerificationFailed,
            format!("the token is in {unit}, the charge in {}", request.currency),
        ));
    }
    // 9. Mint.
    let mint = token
        .mint_url()
        .map_err(|e| Problem::new(MalformedCredential, format!("the token's mint: {e}")))?;
    let listed = request
        .method_details
        .mints
        .iter()
        .any(|m| *m == mint.to_string());
    if !listed || !settings.accepted_mints.contains(&mint) {
        return Err(Problem::new(
            VerificationFailed,
            format!("the token is from {mint}, not a mint this charge accepts"),
        ));
    }
    // 11 (before 10: locks are read from resolved proofs). Keysets, short ids included.
    let keysets = shared.mint.keysets().keysets;
    let proofs = token.proofs(&keysets).map_err(|e| {
        Problem::new(
            VerificationFailed,
            format!("the token names a keyset this mint does not know: {e}"),
        )
    })?;
    if proofs.is_empty() {
        return Err(Problem::new(
            MalformedCredential,
            "the token holds no proofs",
        ));
    }
    // 10. Bearer proofs only.
    if proofs
        .iter()
        .any(|p| nut10::Secret::try_from(&p.secret).is_ok())
    {
        return Err(Problem::new(
            VerificationFailed,
            "locked (NUT-10) proofs are not accepted by this binding: send plain bearer proofs",
        ));
    }
    // 12. Exactly the amount plus the input fee: this binding makes no change.
    let fee = shared
        .mint
        .input_fee(&proofs)
        .map_err(|e| Problem::new(VerificationFailed, format!("the token's keysets: {e}")))?;
    let total: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
    if total != price.amount + fee {
        return Err(Problem::new(
            PaymentInsufficient,
            format!(
                "the token is worth {total} {unit}; this charge takes exactly {} (amount {} + input fee {fee}), with no change",
                price.amount + fee,
                price.amount
            ),
        ));
    }
    // 13. A DLEQ proof where one is present must hold (its absence is no reason to refuse).
    for proof in proofs.iter().filter(|p| p.dleq.is_some()) {
        let key = shared
            .mint
            .keyset_keys(&proof.keyset_id)
            .ok()
            .and_then(|keys| keys.keysets.into_iter().next())
            .and_then(|keyset| keyset.keys.amount_key(proof.amount));
        let holds = key.is_some_and(|key| proof.verify_dleq(key).is_ok());
        if !holds {
            return Err(Problem::new(
                VerificationFailed,
                "a proof's DLEQ proof does not verify against this mint's key",
            ));
        }
    }
    Ok(Verified {
        proofs,
        challenge_id: echoed.id.clone(),
        external_id: request.external_id,
        reference: hex::encode(Sha256::digest(raw.as_bytes())),
    })
}

/// A refusal as the draft words it: problem JSON, a fresh challenge (and the NUT-24 one).
pub(crate) fn refuse<B>(
    settings: &Settings,
    shared: &Shared,
    price: &Price,
    headers: &HeaderMap,
    route: &Route,
    problem: &Problem,
) -> Response<ResponseBody<B>> {
    let (_, title, status) = problem.kind.describe();
    let body = json!({
        "type": problem.kind.type_uri(),
        "title": title,
        "status": status.as_u16(),
        "detail": problem.detail,
    });
    // The NUT-24 challenge gives the X-Cashu payment request; the body is replaced.
    let mut response = crate::reply::challenge::<B>(settings, shared, price, headers, None);
    *response.body_mut() = ResponseBody::own(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    offer(&mut response, settings, shared, price, route);
    response
}

/// The RFC 9530 `Content-Digest` value of a body: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
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

/// Reads `request`'s body (for its digest) and puts the same bytes back, so the handler
/// gets the body the client sent. `Err` when it was too long or could not be read.
pub(crate) async fn buffer_request<B>(
    request: Request<B>,
    limit: usize,
) -> Result<(Request<B>, Bytes), ReadBody>
where
    B: http_body::Body + From<Bytes>,
{
    let (parts, body) = request.into_parts();
    match read_body(body, limit).await {
        ReadBody::Read(bytes) => Ok((Request::from_parts(parts, B::from(bytes.clone())), bytes)),
        other => Err(other),
    }
}

/// The receipt's fields.
fn receipt_json(challenge_id: &str, reference: &str, external_id: Option<&str>, at: u64) -> Value {
    let mut receipt = json!({
        "method": METHOD,
        "challengeId": challenge_id,
        "reference": reference,
        "status": "success",
        "timestamp": rfc3339(at),
    });
    if let Some(external) = external_id {
        receipt["externalId"] = json!(external);
    }
    receipt
}

/// Adds `Payment-Receipt` (and `Cache-Control: private`) to a successful response.
pub(crate) fn attach_receipt<B>(response: &mut Response<B>, verified: &Verified) {
    let receipt = receipt_json(
        &verified.challenge_id,
        &verified.reference,
        verified.external_id.as_deref(),
        coinslot_mint::unix_now(),
    );
    let Ok(encoded) = encode_jcs(&receipt) else {
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
        assert_eq!(
            decoded.method_details.mints,
            vec!["https://mint.example.com"]
        );
        assert_eq!(decoded.method_details.request, "creqA...");
        assert_eq!(encode_jcs(&decoded).unwrap(), DRAFT_REQUEST);
    }

    fn vector(
        request: &str,
        expires: Option<&str>,
        digest: Option<&str>,
        opaque: Option<&str>,
    ) -> EchoedChallenge {
        EchoedChallenge {
            id: String::new(),
            realm: "api.example.com".into(),
            method: "tempo".into(),
            intent: "charge".into(),
            request: request.into(),
            expires: expires.map(str::to_string),
            digest: digest.map(str::to_string),
            opaque: opaque.map(str::to_string),
            description: None,
        }
    }

    /// Vectors of the cross-SDK conformance suite (tempoxyz/mpp-tools, challenge-id.json).
    #[test]
    fn challenge_ids_match_the_conformance_vectors() {
        let key = b"test-vector-secret-minimum-32-byte-secret";
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
        let key = b"test-secret";
        assert_eq!(
            challenge_id(key, &challenge),
            "3WWvrlEZmRvtAwVhGID5cSVHFRtuggm0gpi1csXG8n0"
        );
        challenge.id = challenge_id(key, &challenge);
        assert!(verify_id(key, &challenge));
        challenge.realm = "other.example.com".into();
        assert!(!verify_id(key, &challenge));
    }

    #[test]
    fn credentials_decode_with_or_without_padding_and_bad_ones_are_named() {
        let credential = Credential {
            challenge: vector(DRAFT_REQUEST, None, None, None),
            source: None,
            payload: CashuPayload {
                cashu_token: "cashuBxyz".into(),
            },
        };
        let text = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&credential).unwrap());
        assert_eq!(decode_credential(&text).unwrap(), credential);
        let padded = base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(&credential).unwrap());
        assert_eq!(decode_credential(&padded).unwrap(), credential);
        let err = decode_credential("not base64!").unwrap_err();
        assert_eq!(err.kind, ProblemKind::MalformedCredential);
        let err = decode_credential(&URL_SAFE_NO_PAD.encode(b"{\"challenge\": 1}")).unwrap_err();
        assert!(err.detail.contains("expected"), "{}", err.detail);
    }

    /// RFC 9530's example: `{"hello": "world"}` (with the space).
    #[test]
    fn content_digests_follow_rfc_9530() {
        assert_eq!(
            content_digest(b"{\"hello\": \"world\"}"),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
    }

    /// The cashu draft's example credential (appendix "Retry with Credential"), decoded and
    /// re-encoded byte for byte.
    #[test]
    fn the_draft_credential_example_round_trips() {
        let text = "eyJjaGFsbGVuZ2UiOnsiaWQiOiJrTTl4UHFXdlQybkpySHNZNGFEZkViIiwicmVhbG0iOiJhcGkuZXhhbXBsZS5jb20iLCJtZXRob2QiOiJjYXNodSIsImludGVudCI6ImNoYXJnZSIsInJlcXVlc3QiOiJleUouLi4iLCJleHBpcmVzIjoiMjAyNi0wMy0xNVQxMjowNTowMFoifSwic291cmNlIjoiZGlkOmtleTp6Nk1raGFYZ0JaRHZvdERrTDUyNTdmYWl6dGlHaUMyUXRLTEdwYm5uRUd0YTJkb0siLCJwYXlsb2FkIjp7ImNhc2h1X3Rva2VuIjoiY2FzaHVCcEdGMGdhSmhhVWdBLi4uIn19";
        let credential = decode_credential(text).unwrap();
        assert_eq!(credential.challenge.id, "kM9xPqWvT2nJrHsY4aDfEb");
        assert_eq!(credential.challenge.method, "cashu");
        assert_eq!(
            credential.challenge.expires.as_deref(),
            Some("2026-03-15T12:05:00Z")
        );
        assert_eq!(credential.payload.cashu_token, "cashuBpGF0gaJhaUgA...");
        assert!(credential
            .source
            .as_deref()
            .unwrap()
            .starts_with("did:key:"));
        let again = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&credential).unwrap());
        assert_eq!(again, text);
    }

    /// The draft's example receipt: our receipt of the same fields is the same bytes (JCS).
    #[test]
    fn receipts_encode_like_the_draft_example() {
        let expected = "eyJjaGFsbGVuZ2VJZCI6ImtNOXhQcVd2VDJuSnJIc1k0YURmRWIiLCJleHRlcm5hbElkIjoib3JkZXJfMTIzNDUiLCJtZXRob2QiOiJjYXNodSIsInJlZmVyZW5jZSI6IjliNzFkMjI0YmQ2MmYzNzg1ZDk2ZDQ2YWQzZWEzZDczMzE5YmZiYzI4OTBjYWFkYWUyZGZmNzI1MTk2NzNjYTciLCJzdGF0dXMiOiJzdWNjZXNzIiwidGltZXN0YW1wIjoiMjAyNi0wMy0xMFQyMTowMDowMFoifQ";
        let receipt = receipt_json(
            "kM9xPqWvT2nJrHsY4aDfEb",
            "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7",
            Some("order_12345"),
            1_773_176_400,
        );
        assert_eq!(encode_jcs(&receipt).unwrap(), expected);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_773_576_300), "2026-03-15T12:05:00Z");
        assert_eq!(parse_rfc3339("2026-03-15T12:05:00Z"), Some(1_773_576_300));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
