//! Paying with the HTTP `Payment` scheme: `Authorization: Payment <credential>` answering a
//! `WWW-Authenticate: Payment` challenge (draft-httpauth-payment, `cashu` charge method;
//! the wire format is [`crate::paymentauth`]).
//!
//! The credential is checked in the draft's order (a challenge of this server, for this
//! route, price and body, not expired; a `cashuB` token of an accepted mint worth exactly
//! the amount plus the input fee), then spent like a token and settled by the same core. A
//! credential pays once: a repeat is refused unless it carries the paid request's
//! `Idempotency-Key`, in which case it is a retry, answered by the payment's receipt (the
//! stored answer, its `Payment-Receipt` included). Refusals are problem JSON with a fresh
//! challenge. On a pass scope's routes the credential (one minute's price) buys a
//! one-minute pass.

use std::str::FromStr;

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{nut10, Proof, Token};
use coinslot_mint::Error;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::body::{BoxError, RequestBody};
use crate::challenge;
use crate::passes::{Passes, Sale};
use crate::receipt::{content_length, hash_body, request_head, running, PayerKind};
use crate::settings::Ctx;
use crate::settle::{self, Inner, Retried};
use crate::wire::errors::{attach_token, Reply};
use crate::wire::nut24::IDEMPOTENCY_KEY;
use crate::wire::payment::{
    attach_receipt, cashu_payload, content_digest, decode_b64url, is_payment_scheme, parse_rfc3339,
    read_body, verify_id, ChargeRequest, MethodDetails, PaymentCredential as Credential, Problem,
    ProblemKind, ReadBody, Route, INTENT, METHOD, PAYMENT_AUTHORIZATION,
};
use crate::{PassScope, Price, Retry};

/// The `Payment` credential a request carries, if any (`Err` if it cannot be read).
pub(crate) fn find(headers: &HeaderMap) -> Option<Result<Credential, Problem>> {
    crate::wire::payment::find(headers)
}

/// A credential that was checked, and the request it came with (its body put back).
struct Checked<ReqBody> {
    request: Request<RequestBody<ReqBody>>,
    seen: std::sync::Arc<crate::body::BodySeen>,
    verified: Verified,
    route: Route,
}

/// Checks a credential for `price`: the body is read first when the challenge is bound to
/// one; the refusal to send, otherwise.
async fn check<ReqBody, ResBody>(
    ctx: &Ctx,
    request: Request<ReqBody>,
    price: &Price,
    credential: &Credential,
) -> Result<Checked<ReqBody>, Reply<ResBody>>
where
    ReqBody: http_body::Body,
{
    // A challenge bound to a body pays only for that body: read it (and hand it on).
    let (request, seen, digest) = if credential.challenge.digest.is_some() {
        let (parts, body) = request.into_parts();
        match read_body(body, ctx.settings.payment_body_limit).await {
            ReadBody::Read(bytes) => {
                let digest = (!bytes.is_empty()).then(|| content_digest(&bytes));
                let (body, seen) = RequestBody::read(bytes);
                (Request::from_parts(parts, body), seen, digest)
            }
            _ => {
                let problem = Problem::new(
                    ProblemKind::InvalidChallenge,
                    "the request body could not be read whole (too long or cut off), so it cannot match the challenge's digest",
                );
                let route = Route::new(&parts.method, &parts.uri, None);
                return Err(challenge::refuse(
                    ctx,
                    price,
                    &parts.headers,
                    &route,
                    &problem,
                ));
            }
        }
    } else {
        let (request, seen) = hash_body(request);
        (request, seen, None)
    };
    let route = Route::new(request.method(), request.uri(), digest);
    match verify(ctx, credential, price, &route) {
        Ok(verified) => Ok(Checked {
            request,
            seen,
            verified,
            route,
        }),
        Err(problem) => Err(challenge::refuse(
            ctx,
            price,
            request.headers(),
            &route,
            &problem,
        )),
    }
}

/// A credential that could not be read: refused with a fresh challenge for this body.
pub(crate) async fn unreadable<ReqBody: http_body::Body, ResBody>(
    ctx: &Ctx,
    request: Request<ReqBody>,
    price: &Price,
    problem: Problem,
) -> Reply<ResBody> {
    let (parts, body) = request.into_parts();
    let digest = challenge::challenge_digest(&ctx.settings, body).await;
    let route = Route::new(&parts.method, &parts.uri, digest);
    challenge::refuse(ctx, price, &parts.headers, &route, &problem)
}

/// The `Payment-Receipt` a successful answer carries.
fn receipt_headers(verified: &Verified) -> HeaderMap {
    let mut response = Response::new(());
    attach_receipt(
        &mut response,
        &verified.challenge_id,
        &verified.reference,
        verified.external_id.as_deref(),
    );
    let mut headers = std::mem::take(response.headers_mut());
    // A page on another origin reads the receipt.
    crate::wire::errors::expose(&mut headers);
    headers
}

/// A retry's refusal worded as the scheme's problem, with any refund in `X-Cashu`.
fn refused<B>(
    ctx: &Ctx,
    retried: Retried<B>,
    price: &Price,
    headers: &HeaderMap,
    route: &Route,
) -> Reply<B> {
    match retried {
        Retried::Answer(reply) => reply,
        Retried::Refused { rejection, back } => {
            let kind = if rejection.status == StatusCode::SERVICE_UNAVAILABLE {
                ProblemKind::MintUnavailable
            } else {
                ProblemKind::VerificationFailed
            };
            let problem = Problem::new(kind, rejection.detail);
            let mut response = challenge::refuse(ctx, price, headers, route, &problem);
            if let Some((unit, proofs)) = back {
                attach_token(&mut response, &ctx.settings.mint_url, &unit, proofs);
            }
            response
        }
    }
}

/// The refusal of a credential whose token the mint would not take.
fn mint_problem(err: &Error) -> Problem {
    if err.is_internal() {
        tracing::error!(error = %err, "payment could not be recorded");
        return Problem::new(
            ProblemKind::MintUnavailable,
            "the payment could not be recorded; the token was not spent, try again",
        );
    }
    Problem::new(ProblemKind::VerificationFailed, err.to_string())
}

const PAYS_ONCE: &str = "the token is spent already: a Payment credential pays once (send an Idempotency-Key to retry a lost answer)";

/// A request at `price` paid with a `Payment` credential.
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    credential: Credential,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let Checked {
        request,
        seen,
        verified,
        route,
    } = match check(&ctx, request, &price, &credential).await {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    // The run's receipt is keyed by the challenge: inserted with the spend, in one durable
    // write that fails if the challenge was answered already, so each challenge is used
    // once, on every instance of a shared store.
    let key = challenge_key(&verified.challenge_id);
    let (mut parts, body) = request.into_parts();
    strip_credential(&mut parts.headers);
    let idempotent = parts.headers.contains_key(IDEMPOTENCY_KEY);
    let taken = settle::take_price(&ctx, &parts, verified.proofs.clone().into(), &price, key).await;
    let request = Request::from_parts(parts, body);
    match taken {
        Ok(run) => {
            let length = content_length(request.headers());
            let key_account = ctx
                .settings
                .key_path
                .as_ref()
                .map(|_| crate::accounts::key_account(&verified.token));
            let ticket = run.ticket(receipt_headers(&verified), seen, length, key_account);
            settle::run(ctx, inner, request, ticket).await
        }
        // The same credential with the same Idempotency-Key (and request): a retry of a
        // paid request, answered by its receipt.
        Err(Error::TokenAlreadySpent) if idempotent => {
            let headers = request.headers().clone();
            let retried =
                settle::retry(&ctx, inner, request, key, receipt_headers(&verified)).await;
            refused(&ctx, retried, &price, &headers, &route)
        }
        Err(Error::TokenAlreadySpent) => {
            let problem = Problem::new(ProblemKind::VerificationFailed, PAYS_ONCE);
            challenge::refuse(&ctx, &price, request.headers(), &route, &problem)
        }
        // Another token for a challenge that was paid already: nothing was spent.
        Err(Error::ReceiptChanged) => {
            let problem = Problem::new(
                ProblemKind::InvalidChallenge,
                "this challenge was paid already (a challenge pays once); answer the fresh one",
            );
            challenge::refuse(&ctx, &price, request.headers(), &route, &problem)
        }
        Err(err) => {
            let problem = mint_problem(&err);
            challenge::refuse(&ctx, &price, request.headers(), &route, &problem)
        }
    }
}

/// Takes the `Payment` credential off a request before the handler sees it (the
/// application's own `Authorization`, of another scheme, stays).
fn strip_credential(headers: &mut HeaderMap) {
    headers.remove(PAYMENT_AUTHORIZATION);
    let kept: Vec<_> = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter(|v| v.to_str().map_or(true, |text| !is_payment_scheme(text)))
        .cloned()
        .collect();
    headers.remove(AUTHORIZATION);
    for value in kept {
        headers.append(AUTHORIZATION, value);
    }
}

/// The receipt key of a run paid through the challenge `id`.
fn challenge_key(id: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"coinslot/payment-challenge/v1\0");
    hash.update(id.as_bytes());
    hash.finalize().into()
}

/// A request on a pass scope's routes paid with a `Payment` credential: exactly one
/// minute's price buys a one-minute pass, which opens this request and comes back in
/// `X-Cashu-Pass` for the rest of the minute.
pub(crate) async fn buy_pass<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    scope: PassScope,
    credential: Credential,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let price = scope.price().clone();
    let Checked {
        request,
        seen,
        verified,
        route,
    } = match check(&ctx, request, &price, &credential).await {
        Ok(checked) => checked,
        Err(refused) => return refused,
    };
    let (mut parts, body) = request.into_parts();
    strip_credential(&mut parts.headers);
    let idempotent = parts.headers.contains_key(IDEMPOTENCY_KEY);
    let run = running(
        request_head(&parts),
        Retry::Stored,
        PayerKind::Pass,
        &ctx.settings,
        ctx.shared.instance,
    );
    let request = Request::from_parts(parts, body);
    let passes = Passes { ctx: ctx.clone() };
    match passes
        .sell(&verified.token, &scope, None, None, Some(run))
        .await
    {
        Ok(Sale::Bought(bought, _)) if bought.repeat && !idempotent => {
            let problem = Problem::new(ProblemKind::VerificationFailed, PAYS_ONCE);
            challenge::refuse(&ctx, &price, request.headers(), &route, &problem)
        }
        Ok(Sale::Bought(bought, record)) => {
            let length = content_length(request.headers());
            let ticket = bought.ticket(&ctx, record, receipt_headers(&verified), seen, length);
            settle::run(ctx, inner, request, ticket).await
        }
        Ok(Sale::Retry(_)) if !idempotent => {
            let problem = Problem::new(ProblemKind::VerificationFailed, PAYS_ONCE);
            challenge::refuse(&ctx, &price, request.headers(), &route, &problem)
        }
        Ok(Sale::Retry(key)) => {
            let headers = request.headers().clone();
            let retried =
                settle::retry(&ctx, inner, request, key, receipt_headers(&verified)).await;
            refused(&ctx, retried, &price, &headers, &route)
        }
        Err(refusal) => {
            let kind = if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                ProblemKind::MintUnavailable
            } else {
                ProblemKind::VerificationFailed
            };
            let problem = Problem::new(kind, refusal.detail.clone());
            let mut response = challenge::refuse(&ctx, &price, request.headers(), &route, &problem);
            // A purchase hook that failed refunds the payment.
            if let Some((unit, proofs)) = refusal.refund {
                attach_token(&mut response, &ctx.settings.mint_url, &unit, proofs);
            }
            response
        }
    }
}

/// A credential that passed every check before the spend.
#[derive(Debug)]
struct Verified {
    pub proofs: Vec<Proof>,
    pub challenge_id: String,
    pub external_id: Option<String>,
    /// SHA-256 of the token string as presented, lowercase hex.
    pub reference: String,
    /// The token as presented (trimmed).
    pub token: String,
}

/// Checks a credential for a request on `route` (its digest `None`: no body, or not read)
/// priced `price`, in the draft's order; nothing is spent.
fn verify(
    ctx: &Ctx,
    credential: &Credential,
    price: &Price,
    route: &Route,
) -> Result<Verified, Problem> {
    use ProblemKind::*;
    let settings = &ctx.settings;
    let echoed = &credential.challenge;
    if echoed.method.as_str() != METHOD {
        return Err(Problem::new(
            MethodUnsupported,
            format!(
                "method `{}` is not accepted here; use `cashu`",
                echoed.method
            ),
        ));
    }
    let payload = cashu_payload(credential)?;
    let raw = payload.cashu_token.trim();
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
    if !verify_id(&ctx.shared.payment_secret, echoed) {
        return Err(Problem::new(
            InvalidChallenge,
            "the challenge was not issued by this server, or a field of it was changed",
        ));
    }
    if echoed.intent.as_str() != INTENT {
        return Err(Problem::new(
            InvalidChallenge,
            "the intent must be `charge`",
        ));
    }
    let request: ChargeRequest = echoed
        .request
        .decode()
        .map_err(|_| Problem::new(InvalidChallenge, "the challenge's request does not decode"))?;
    let mints = MethodDetails::of(&request).map_err(|e| Problem::new(InvalidChallenge, e))?;
    let issued_for = echoed
        .opaque
        .as_ref()
        .and_then(|o| decode_b64url(o.raw()).ok())
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
    let listed = mints.mints.iter().any(|m| *m == mint.to_string());
    if !listed || !settings.accepted_mints.contains(&mint) {
        return Err(Problem::new(
            VerificationFailed,
            format!("the token is from {mint}, not a mint this charge accepts"),
        ));
    }
    // 11 (before 10: locks are read from resolved proofs). Keysets, short ids included.
    let keysets = ctx.mint().keysets().keysets;
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
    let fee = ctx
        .mint()
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
        let key = ctx
            .mint()
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
        token: raw.to_string(),
    })
}
