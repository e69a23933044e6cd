//! The paid path: a token or a session pays, the handler runs, the layer settles (change,
//! the unused part of a metered reservation, or a refund after a failure).
//!
//! Order of a token payment: parse → check mint, unit, keysets → claim the token in the
//! in-flight set → [`Mint::redeem`](coinslot_mint::Mint::redeem) (verify every proof, one
//! durable write: spent + receipt) → run the handler → settle. The handler never runs before
//! the spend is durable, and nothing is written before every check has passed.

use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof, Token};
use coinslot_mint::{
    receipt_key, Error, Event, PaidWith, Payment, ReceiptWrite, GENERIC_ERROR_CODE,
};
use futures::FutureExt;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower_service::Service;

use crate::layer::{Settings, Shared};
use crate::nut24::{self, TokenSource, X_CASHU_SESSION};
use crate::paymentauth::{self, Route};
use crate::receipt::{self, InFlight, ReceiptData, ReceiptKind};
use crate::reply::{self, Rejection};
use crate::session::{new_session_id, SessionClaims};
use crate::stored::Recorder;
use crate::{Charge, Paid, Price, ResponseBody};

type Reply<B> = Response<ResponseBody<B>>;

const CODE_SPENT: u16 = 11001;
const CODE_PENDING: u16 = 11002;
const CODE_UNIT: u16 = 11010;
const CODE_KEYSET: u16 = 12001;
/// `Idempotency-Key`: a client's name for one operation, so a retry is recognised.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether `path` is the session endpoint or below it.
pub(crate) fn is_session_path(settings: &Settings, path: &str) -> bool {
    path.strip_prefix(settings.session_path.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A request with a price: pay with a token, from a session, or get a `402`. Refusals are
/// recorded in the mint's activity feed.
pub(crate) async fn paid<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
) -> Result<Reply<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let response = if let Some(found) = paymentauth::find(request.headers()) {
        match found {
            Ok(credential) => {
                pay_with_credential(&settings, &shared, inner, request, price, &credential).await
            }
            Err(problem) => {
                let (parts, body) = request.into_parts();
                let digest = paymentauth::challenge_digest(&settings, body).await;
                let route = Route::new(&parts.method, &parts.uri, digest);
                paymentauth::refuse(&settings, &shared, &price, &parts.headers, &route, &problem)
            }
        }
    } else {
        match nut24::find_token(request.headers()) {
            Err(err) => reply::bad_request(&err.0),
            Ok(Some((token, source))) => {
                pay_with_token(&settings, &shared, inner, request, price, &token, source).await
            }
            Ok(None) => match nut24::find_session(request.headers()) {
                Err(err) => reply::bad_request(&err.0),
                Ok(Some(credential)) => {
                    let credential = credential.to_string();
                    pay_from_session(&settings, &shared, inner, request, price, &credential).await
                }
                Ok(None) => {
                    let (parts, body) = request.into_parts();
                    let headers = &parts.headers;
                    let mut response = reply::challenge(&settings, &shared, &price, headers, None);
                    let digest = paymentauth::challenge_digest(&settings, body).await;
                    let route = Route::new(&parts.method, &parts.uri, digest);
                    paymentauth::offer(&mut response, &settings, &shared, &price, &route);
                    response
                }
            },
        }
    };
    if let Some(reason) = reply::refusal(&response) {
        shared.mint.record(Event::Refused { reason });
    }
    Ok(response)
}

/// A request on a pass scope's routes: opened by a valid pass, or paid with a token that
/// buys one; otherwise `402` (no pass) or `401` (a pass that does not open it).
pub(crate) async fn passed<S, ReqBody, ResBody>(
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    inner: S,
    mut request: Request<ReqBody>,
    scope: crate::pass::PassScope,
) -> Result<Reply<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let passes = crate::pass::Passes {
        settings: Arc::clone(&settings),
        shared: Arc::clone(&shared),
    };
    let credential = match crate::pass::find_pass(request.headers()) {
        Ok(credential) => credential.map(str::to_owned),
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let mut receipt = None;
    let payment = paymentauth::find(request.headers());
    let (pass, bought) = match credential {
        Some(credential) => match passes.verify(&credential, Some(scope.name())).await {
            Ok(pass) => (pass, None),
            Err(err) => {
                shared.mint.record(Event::Refused { reason: "pass" });
                return Ok(crate::pass::refused(&settings, &err));
            }
        },
        None if payment.is_some() => {
            let bought =
                pass_with_credential(&settings, &shared, &passes, &scope, request, payment);
            match bought.await {
                Ok((paid, bought, verified)) => {
                    request = paid;
                    receipt = Some(verified);
                    (bought.pass.clone(), Some(bought))
                }
                Err(refused) => {
                    if let Some(reason) = reply::refusal(&refused) {
                        shared.mint.record(Event::Refused { reason });
                    }
                    return Ok(refused);
                }
            }
        }
        None => match nut24::find_token(request.headers()) {
            Err(err) => return Ok(reply::bad_request(&err.0)),
            Ok(None) => {
                let (parts, body) = request.into_parts();
                let headers = &parts.headers;
                let mut response = crate::pass::challenge(&settings, &shared, &scope, headers);
                let digest = paymentauth::challenge_digest(&settings, body).await;
                let route = Route::new(&parts.method, &parts.uri, digest);
                paymentauth::offer(&mut response, &settings, &shared, scope.price(), &route);
                if let Some(reason) = reply::refusal(&response) {
                    shared.mint.record(Event::Refused { reason });
                }
                return Ok(response);
            }
            Ok(Some((token, source))) => match passes.buy(&token, &scope, None, None).await {
                Ok(bought) => {
                    request.headers_mut().remove(source.header());
                    (bought.pass.clone(), Some(bought))
                }
                Err(refusal) => return Ok(refusal.into_response(&settings)),
            },
        },
    };
    request.headers_mut().remove(crate::pass::X_CASHU_PASS);
    request.extensions_mut().insert(pass.clone());
    // Nothing to refund if the handler fails: the pass stays, for the retry.
    let mut response = match run_inner(&settings, inner, request).await {
        Outcome::Served(response) => response.map(ResponseBody::inner),
        Outcome::Failed { status, detail } => reply::error(
            status,
            GENERIC_ERROR_CODE,
            &format!("{detail}; the pass stays valid"),
        ),
    };
    crate::pass::attach_pass(
        &mut response,
        &pass,
        bought.as_ref().map(|b| b.credential.as_str()),
    );
    if let Some(bought) = bought {
        reply::attach_token(&mut response, &settings, &bought.unit, bought.change);
    }
    if let Some(verified) = receipt.filter(|_| response.status().is_success()) {
        paymentauth::attach_receipt(&mut response, &verified);
    }
    Ok(response)
}

/// `Authorization: Payment` on a pass scope's route: the credential (exactly one minute's
/// price) buys a one-minute pass, which opens this request and comes back in
/// `X-Cashu-Pass` for the rest of the minute. A credential pays once; a repeat gets the
/// same pass again only with the paid request's `Idempotency-Key`.
async fn pass_with_credential<ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    passes: &crate::pass::Passes,
    scope: &crate::pass::PassScope,
    request: Request<ReqBody>,
    found: Option<Result<paymentauth::Credential, paymentauth::Problem>>,
) -> Result<(Request<ReqBody>, crate::pass::Bought, paymentauth::Verified), Reply<ResBody>>
where
    ReqBody: http_body::Body + From<Bytes>,
{
    use paymentauth::{Problem, ProblemKind};
    let price = scope.price();
    let credential = match found {
        Some(Ok(credential)) => credential,
        found => {
            let problem = found.and_then(Result::err).unwrap_or_else(|| {
                Problem::new(ProblemKind::MalformedCredential, "no Payment credential")
            });
            let (parts, body) = request.into_parts();
            let digest = paymentauth::challenge_digest(settings, body).await;
            let route = Route::new(&parts.method, &parts.uri, digest);
            let refused =
                paymentauth::refuse(settings, shared, price, &parts.headers, &route, &problem);
            return Err(refused);
        }
    };
    let (mut request, verified, route) =
        checked_credential(settings, shared, request, price, &credential).await?;
    let refuse = |problem: Problem, headers: &HeaderMap| {
        paymentauth::refuse(settings, shared, price, headers, &route, &problem)
    };
    let token = credential.payload.cashu_token.trim();
    match passes.buy(token, scope, None, None).await {
        Ok(bought) if bought.repeat && !request.headers().contains_key(IDEMPOTENCY_KEY) => {
            let problem = Problem::new(
                ProblemKind::VerificationFailed,
                "the token is spent already: a Payment credential pays once (send an Idempotency-Key to retry a lost answer)",
            );
            Err(refuse(problem, request.headers()))
        }
        Ok(bought) => {
            request.headers_mut().remove(http::header::AUTHORIZATION);
            Ok((request, bought, verified))
        }
        Err(refusal) => {
            let kind = if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                ProblemKind::MintUnavailable
            } else {
                ProblemKind::VerificationFailed
            };
            let problem = Problem::new(kind, refusal.detail.clone());
            let mut refused = refuse(problem, request.headers());
            // A purchase hook that failed refunds the payment.
            if let Some((unit, proofs)) = refusal.refund {
                reply::attach_token(&mut refused, settings, &unit, proofs);
            }
            Err(refused)
        }
    }
}

/// Decodes a token and checks that it is this mint's: returns its proofs and unit.
pub(crate) fn parse_token(
    settings: &Settings,
    shared: &Shared,
    token: &str,
) -> Result<(Vec<Proof>, CurrencyUnit), Rejection> {
    if token.len() > settings.max_token_len {
        return Err(Rejection::bad_request(format!(
            "token is {} bytes long; the limit is {}",
            token.len(),
            settings.max_token_len
        )));
    }
    let token = Token::from_str(token)
        .map_err(|e| Rejection::bad_request(format!("malformed token: {e}")))?;
    let url = token
        .mint_url()
        .map_err(|e| Rejection::bad_request(format!("malformed token: {e}")))?;
    if !settings.accepted_mints.contains(&url) {
        return Err(Rejection::bad_request(format!(
            "token is from mint {url}; this service only accepts tokens of {}",
            settings.mint_url
        )));
    }
    let keysets = shared.mint.keysets().keysets;
    let proofs = token.proofs(&keysets).map_err(|e| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            CODE_KEYSET,
            format!("token names a keyset this mint does not know: {e}"),
        )
    })?;
    let unit = token.unit().or_else(|| {
        let first = proofs.first()?;
        keysets
            .iter()
            .find(|k| k.id == first.keyset_id)
            .map(|k| k.unit.clone())
    });
    match unit {
        Some(unit) if !proofs.is_empty() => Ok((proofs, unit)),
        _ => Err(Rejection::bad_request("token holds no proofs")),
    }
}

fn wrong_unit<B>(expected: &str, found: &str) -> Reply<B> {
    reply::error(
        StatusCode::BAD_REQUEST,
        CODE_UNIT,
        &format!("wrong unit: the price is in {expected}, the token is in {found}"),
    )
}

fn spent<B>(detail: &str) -> Reply<B> {
    reply::error(StatusCode::BAD_REQUEST, CODE_SPENT, detail)
}

fn pending<B>() -> Reply<B> {
    pending_rejection().into_response()
}

pub(crate) fn pending_rejection() -> Rejection {
    Rejection::new(
        StatusCode::BAD_REQUEST,
        CODE_PENDING,
        "this token is paying for a request that is still running; repeat the request once it has finished",
    )
}

/// A receipt builder for `redeem`: `template` with the change and fee filled in.
pub(crate) fn receipt_fn(template: ReceiptData) -> coinslot_mint::ReceiptFn {
    Box::new(move |proofs: &[Proof], fee: u64| {
        let mut data = template.clone();
        data.change = proofs.to_vec();
        data.fee = fee;
        data.encode()
    })
}

/// Records what a payment's receipt now holds, counting `made` (proofs just made to hand
/// out) as issued in the same write.
pub(crate) async fn save_receipt(
    shared: &Shared,
    key: &[u8; 32],
    created_at: u64,
    data: &ReceiptData,
    made: &[Proof],
) {
    let encoded = data.encode();
    let write = ReceiptWrite {
        key,
        created_at,
        data: &encoded,
    };
    if let Err(err) = shared.mint.update_receipt(write, made).await {
        // The proofs handed out are valid by their signature; only the record is missing.
        tracing::error!(error = %err, "could not update a payment receipt");
    }
}

async fn pay_with_token<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    mut request: Request<ReqBody>,
    price: Price,
    token: &str,
    source: TokenSource,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    let (proofs, unit) = match parse_token(settings, shared, token) {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    if unit != price.unit {
        return wrong_unit(&price.unit.to_string(), &unit.to_string());
    }
    let key = receipt_key(&proofs);
    let fingerprint = receipt::fingerprint(&request);
    let Some(_claim) = InFlight::enter(shared, key) else {
        return pending();
    };
    request.headers_mut().remove(source.header());

    let (template, payment) = token_payment(settings, &price, key, fingerprint.clone());
    match shared.mint.redeem(proofs, payment).await {
        Ok(redeemed) => {
            serve_redeemed(
                settings, shared, inner, request, price, &key, template, redeemed,
            )
            .await
        }
        Err(Error::TokenAlreadySpent) => {
            replay(settings, shared, inner, request, &key, &fingerprint).await
        }
        Err(err) => reply::mint_error(&err),
    }
}

/// The template of a token payment's receipt, and the payment to redeem.
fn token_payment(
    settings: &Settings,
    price: &Price,
    key: [u8; 32],
    fingerprint: String,
) -> (ReceiptData, Payment) {
    let template = ReceiptData {
        request: Some(fingerprint),
        kept: price.amount,
        metered: price.is_metered(),
        ..ReceiptData::new(ReceiptKind::Request, price.unit.to_string())
    };
    let payment = Payment {
        unit: price.unit.clone(),
        amount: price.amount,
        deposit: None,
        require_lock: settings.require_lock,
        receipt: Some((key, receipt_fn(template.clone()))),
        pass: None,
    };
    (template, payment)
}

/// A token just redeemed: record it, run the handler, settle.
#[allow(clippy::too_many_arguments)]
async fn serve_redeemed<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    key: &[u8; 32],
    template: ReceiptData,
    redeemed: coinslot_mint::Redeemed,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    shared.mint.record(Event::Paid {
        unit: price.unit.clone(),
        amount: price.amount,
        fee: redeemed.fee,
        with: PaidWith::Token,
    });
    let data = ReceiptData {
        fee: redeemed.fee,
        change: redeemed.change,
        ..template
    };
    let paid = Paid {
        amount: price.amount,
        unit: price.unit,
        keyset_id: Some(redeemed.keyset_id),
        session: None,
        metered: data.metered,
        replay: false,
    };
    let created_at = coinslot_mint::unix_now();
    serve(
        settings, shared, inner, request, key, created_at, data, paid,
    )
    .await
}

/// A `Payment` credential checked for `price` (the body read when its challenge is bound
/// to one): the request (its body put back), what passed, and the body's digest; or the
/// refusal to send.
async fn checked_credential<ReqBody, ResBody>(
    settings: &Settings,
    shared: &Shared,
    request: Request<ReqBody>,
    price: &Price,
    credential: &paymentauth::Credential,
) -> Result<(Request<ReqBody>, paymentauth::Verified, Route), Reply<ResBody>>
where
    ReqBody: http_body::Body + From<Bytes>,
{
    use paymentauth::{Problem, ProblemKind};
    // A challenge bound to a body pays only for that body: read it (and hand it on).
    let (request, digest) = if credential.challenge.digest.is_some() {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let headers = request.headers().clone();
        match paymentauth::buffer_request(request, settings.payment_body_limit).await {
            Ok((request, body)) => {
                let digest = (!body.is_empty()).then(|| paymentauth::content_digest(&body));
                (request, digest)
            }
            Err(_) => {
                let problem = Problem::new(
                    ProblemKind::InvalidChallenge,
                    "the request body could not be read whole (too long or cut off), so it cannot match the challenge's digest",
                );
                let route = Route::new(&method, &uri, None);
                let refused =
                    paymentauth::refuse(settings, shared, price, &headers, &route, &problem);
                return Err(refused);
            }
        }
    } else {
        (request, None)
    };
    let route = Route::new(request.method(), request.uri(), digest);
    match paymentauth::verify(settings, shared, credential, price, &route) {
        Ok(verified) => Ok((request, verified, route)),
        Err(problem) => {
            let headers = request.headers();
            let refused = paymentauth::refuse(settings, shared, price, headers, &route, &problem);
            Err(refused)
        }
    }
}

/// `Authorization: Payment`: the credential is checked in the draft's order, its token
/// spent exactly (no change) in the same durable write as any payment, the handler run,
/// and the answer given a `Payment-Receipt`. A credential pays once; only a repeat with the
/// paid request's `Idempotency-Key` is served again (no second charge).
async fn pay_with_credential<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    credential: &paymentauth::Credential,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ReqBody: http_body::Body + From<Bytes>,
    ResBody: http_body::Body<Data = Bytes>,
{
    use paymentauth::{Problem, ProblemKind};
    let (mut request, verified, route) =
        match checked_credential(settings, shared, request, &price, credential).await {
            Ok(checked) => checked,
            Err(refused) => return refused,
        };
    let refuse = |problem: Problem, headers: &HeaderMap| {
        paymentauth::refuse(settings, shared, &price, headers, &route, &problem)
    };
    let key = receipt_key(&verified.proofs);
    let Some(_claim) = InFlight::enter(shared, key) else {
        let problem = Problem::new(
            ProblemKind::VerificationFailed,
            "this token is paying for a request that is still running",
        );
        return refuse(problem, request.headers());
    };
    request.headers_mut().remove(http::header::AUTHORIZATION);
    let fingerprint = receipt::fingerprint(&request);
    let idempotent = request.headers().contains_key(IDEMPOTENCY_KEY);
    let (template, payment) = token_payment(settings, &price, key, fingerprint.clone());
    let proofs = verified.proofs.clone();
    match shared.mint.redeem(proofs, payment).await {
        Ok(redeemed) => {
            let price = price.clone();
            let mut response = serve_redeemed(
                settings, shared, inner, request, price, &key, template, redeemed,
            )
            .await;
            if response.status().is_success() {
                paymentauth::attach_receipt(&mut response, &verified);
                if idempotent {
                    let stored = Arc::clone(&shared.stored);
                    let window = settings.retry_window;
                    let recorder = Recorder::new(stored, key, fingerprint, &response, window);
                    response = response.map(|body| body.recorded(recorder));
                }
            }
            response
        }
        // The same credential with the same Idempotency-Key (and request): a retry of a
        // paid request, answered with the response it got (or, if that is not kept, served
        // again like NUT-24's retries), without a second charge.
        Err(Error::TokenAlreadySpent) if idempotent => {
            if let Some(kept) = shared.stored.get(&key, &fingerprint, settings.retry_window) {
                tracing::info!("Idempotency-Key retry answered with the kept response");
                return kept.map(ResponseBody::own);
            }
            let headers = request.headers().clone();
            let mut response = replay(settings, shared, inner, request, &key, &fingerprint).await;
            if response.status().is_success() {
                paymentauth::attach_receipt(&mut response, &verified);
                return response;
            }
            let problem = Problem::new(
                ProblemKind::VerificationFailed,
                "the token is spent already (by another request or Idempotency-Key, or its retries are used up)",
            );
            let mut refused = refuse(problem, &headers);
            // A refund recorded for the first attempt goes back again.
            if let Some(refund) = response.headers_mut().remove(nut24::X_CASHU) {
                if refund.as_bytes().starts_with(b"cashu") {
                    refused.headers_mut().insert(nut24::X_CASHU, refund);
                }
            }
            refused
        }
        Err(Error::TokenAlreadySpent) => refuse(
            Problem::new(
                ProblemKind::VerificationFailed,
                "the token is spent already: a Payment credential pays once (send an Idempotency-Key to retry a lost answer)",
            ),
            request.headers(),
        ),
        Err(err) if err.is_internal() => {
            tracing::error!(error = %err, "payment could not be recorded");
            let problem = Problem::new(
                ProblemKind::MintUnavailable,
                "the payment could not be recorded; the token was not spent, try again",
            );
            refuse(problem, request.headers())
        }
        Err(err) => refuse(
            Problem::new(ProblemKind::VerificationFailed, err.to_string()),
            request.headers(),
        ),
    }
}

/// The token was spent before: a retry of the same request within the window runs again
/// without a charge; anything else is "already spent".
async fn replay<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    request: Request<ReqBody>,
    key: &[u8; 32],
    fingerprint: &str,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    let record = match shared.mint.receipt(key).await {
        Ok(Some(record)) => record,
        Ok(None) => return spent("token already spent"),
        Err(err) => return reply::mint_error(&err),
    };
    let Some(mut data) = ReceiptData::decode(&record.data) else {
        return spent("token already spent");
    };
    if data.kind != ReceiptKind::Request || data.request.as_deref() != Some(fingerprint) {
        return spent("token already spent (it paid for a different request)");
    }
    let Ok(unit) = CurrencyUnit::from_str(&data.unit) else {
        return spent("token already spent");
    };
    if let Some(refund) = &data.refund {
        let mut response = spent(
            "token already spent: the request it paid for failed and was refunded; the refund is in the X-Cashu header",
        );
        let mut back = data.change.clone();
        back.extend(data.settled.clone().unwrap_or_default());
        back.extend(refund.iter().cloned());
        reply::attach_token(&mut response, settings, &unit, back);
        return response;
    }
    let age = coinslot_mint::unix_now().saturating_sub(record.created_at);
    if age > settings.retry_window.as_secs() || data.replays >= settings.max_replays {
        return spent("token already spent (the retries this payment allowed are used up)");
    }
    data.replays += 1;
    let encoded = data.encode();
    if let Err(err) = shared
        .mint
        .update_receipt(
            ReceiptWrite {
                key,
                created_at: record.created_at,
                data: &encoded,
            },
            &[],
        )
        .await
    {
        return reply::mint_error(&err);
    }
    tracing::info!(
        replays = data.replays,
        "paid request repeated with the same token"
    );
    let paid = Paid {
        amount: data.kept,
        unit,
        keyset_id: None,
        session: None,
        metered: data.metered,
        replay: true,
    };
    serve(
        settings,
        shared,
        inner,
        request,
        key,
        record.created_at,
        data,
        paid,
    )
    .await
}

/// Runs the handler for a token payment and settles: change (plus the unused part of a
/// metered reservation) on success, everything back on failure.
#[allow(clippy::too_many_arguments)]
async fn serve<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    mut request: Request<ReqBody>,
    key: &[u8; 32],
    created_at: u64,
    mut data: ReceiptData,
    paid: Paid,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    let unit = paid.unit.clone();
    request.extensions_mut().insert(paid);
    let outcome = run_inner(settings, inner, request).await;
    let mut back = data.change.clone();
    let failure = match outcome {
        Outcome::Served(response) if !response.status().is_server_error() => {
            if data.metered {
                let settled = match data.settled.clone() {
                    Some(settled) => settled,
                    None => {
                        let unused = data.kept - charge_of(&response, data.kept);
                        let proofs = make_proofs(shared, &unit, unused).await;
                        record_refund(shared, &unit, &proofs, false);
                        data.settled = Some(proofs.clone());
                        save_receipt(shared, key, created_at, &data, &proofs).await;
                        proofs
                    }
                };
                back.extend(settled);
            }
            let mut response = response.map(ResponseBody::inner);
            reply::attach_token(&mut response, settings, &unit, back);
            return response;
        }
        Outcome::Served(response) => response.map(ResponseBody::inner),
        Outcome::Failed { status, detail } => reply::error(
            status,
            GENERIC_ERROR_CODE,
            &format!("{detail}; the payment is refunded in the X-Cashu header"),
        ),
    };

    // A failure of ours: the price and the fee go back, less what a settlement returned.
    let settled = data.settled.clone().unwrap_or_default();
    let already: u64 = settled.iter().map(|p| u64::from(p.amount)).sum();
    let owed = data.kept.saturating_add(data.fee).saturating_sub(already);
    let refund = make_proofs(shared, &unit, owed).await;
    record_refund(shared, &unit, &refund, true);
    data.refund = Some(refund.clone());
    save_receipt(shared, key, created_at, &data, &refund).await;
    tracing::info!(amount = owed, unit = %unit, "refunded a failed paid request");
    back.extend(settled);
    back.extend(refund);
    let mut response = failure;
    reply::attach_token(&mut response, settings, &unit, back);
    response
}

fn record_refund(shared: &Shared, unit: &CurrencyUnit, proofs: &[Proof], failed: bool) {
    let amount: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
    if amount > 0 {
        shared.mint.record(Event::Refunded {
            unit: unit.clone(),
            amount,
            failed,
        });
    }
}

async fn make_proofs(shared: &Shared, unit: &CurrencyUnit, amount: u64) -> Vec<Proof> {
    match shared.mint.make_proofs(unit, amount).await {
        Ok(proofs) => proofs,
        Err(err) => {
            tracing::error!(error = %err, amount, unit = %unit, "could not make proofs to give back");
            Vec::new()
        }
    }
}

/// The actual cost a metered handler reported, capped at the reservation.
fn charge_of<B>(response: &Response<B>, reserved: u64) -> u64 {
    match response.extensions().get::<Charge>() {
        Some(Charge(cost)) if *cost > reserved => {
            tracing::warn!(
                cost,
                reserved,
                "metered handler reported more than was reserved"
            );
            reserved
        }
        Some(Charge(cost)) => *cost,
        None => reserved,
    }
}

pub(crate) enum Outcome<B> {
    Served(Response<B>),
    Failed {
        status: StatusCode,
        detail: &'static str,
    },
}

/// Calls the handler, turning an error, a panic or a timeout into a failure to refund.
pub(crate) async fn run_inner<S, ReqBody, ResBody>(
    settings: &Settings,
    mut inner: S,
    request: Request<ReqBody>,
) -> Outcome<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    let panicked = Outcome::Failed {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        detail: "the handler panicked",
    };
    let Ok(future) = std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) else {
        return panicked;
    };
    let guarded = AssertUnwindSafe(future).catch_unwind();
    let result = match settings.timeout {
        Some(limit) => match tokio::time::timeout(limit, guarded).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(?limit, "paid request timed out");
                return Outcome::Failed {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    detail: "the handler timed out",
                };
            }
        },
        None => guarded.await,
    };
    match result {
        Ok(Ok(response)) => Outcome::Served(response),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "handler failed on a paid request");
            Outcome::Failed {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                detail: "the handler failed",
            }
        }
        Err(_) => {
            tracing::error!("handler panicked on a paid request");
            panicked
        }
    }
}

fn unauthorized<B>(detail: &str) -> Reply<B> {
    Rejection::unauthorized(detail).into_response()
}

/// Pays from a session: one credential check, one atomic debit, then the handler; unused
/// or refunded value goes back to the balance.
async fn pay_from_session<S, ReqBody, ResBody>(
    settings: &Settings,
    shared: &Arc<Shared>,
    inner: S,
    mut request: Request<ReqBody>,
    price: Price,
    credential: &str,
) -> Reply<ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes>,
{
    let claims = match shared.keys.verify(credential, false) {
        Ok(claims) => claims,
        Err(err) => return unauthorized(&err.to_string()),
    };
    let unit_name = price.unit.to_string();
    if claims.unit != unit_name {
        return wrong_unit(&unit_name, &claims.unit);
    }
    let mut balance = match shared
        .mint
        .debit_account(&claims.sid, &price.unit, price.amount)
        .await
    {
        Ok(balance) => balance,
        Err(Error::InsufficientBalance { balance }) => {
            let detail = format!(
                "session balance is {balance} {unit_name}, the price is {} {unit_name}: top up at {}/topup or pay with a token",
                price.amount, settings.session_path
            );
            let mut response =
                reply::challenge(settings, shared, &price, request.headers(), Some(detail));
            reply::attach_balance(&mut response, balance, &unit_name);
            return response;
        }
        Err(Error::AccountNotFound) => return unauthorized("session is closed or unknown"),
        Err(err) => return reply::mint_error(&err),
    };
    shared.mint.record(Event::Paid {
        unit: price.unit.clone(),
        amount: price.amount,
        fee: 0,
        with: PaidWith::Session,
    });
    let debit = PendingDebit {
        shared: Arc::clone(shared),
        sid: claims.sid.clone(),
        unit: price.unit.clone(),
        amount: price.amount,
        armed: true,
    };
    request.headers_mut().remove(X_CASHU_SESSION);
    request.extensions_mut().insert(Paid {
        amount: price.amount,
        unit: price.unit.clone(),
        keyset_id: None,
        session: Some(claims.sid.clone()),
        metered: price.is_metered(),
        replay: false,
    });
    let outcome = run_inner(settings, inner, request).await;
    debit.disarm();
    let failed = !matches!(&outcome, Outcome::Served(r) if !r.status().is_server_error());
    let (mut response, back) = match outcome {
        Outcome::Served(response) if !response.status().is_server_error() => {
            let back = if price.is_metered() {
                price.amount - charge_of(&response, price.amount)
            } else {
                0
            };
            (response.map(ResponseBody::inner), back)
        }
        Outcome::Served(response) => (response.map(ResponseBody::inner), price.amount),
        Outcome::Failed { status, detail } => (
            reply::error(
                status,
                GENERIC_ERROR_CODE,
                &format!("{detail}; the price went back to the session"),
            ),
            price.amount,
        ),
    };
    if back > 0 {
        match shared
            .mint
            .credit_account(&claims.sid, &price.unit, back, None)
            .await
        {
            Ok(()) => {
                balance = balance.saturating_add(back);
                shared.mint.record(Event::Refunded {
                    unit: price.unit.clone(),
                    amount: back,
                    failed,
                });
            }
            Err(err) => {
                tracing::error!(error = %err, amount = back, "could not credit a session back")
            }
        }
    }
    reply::attach_balance(&mut response, balance, &unit_name);
    response
}

/// A session debit whose request has not finished. If the request is dropped first (the
/// client went away, the server is shutting down), the debit goes back to the session.
struct PendingDebit {
    shared: Arc<Shared>,
    sid: String,
    unit: CurrencyUnit,
    amount: u64,
    armed: bool,
}

impl PendingDebit {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for PendingDebit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                amount = self.amount,
                "request dropped outside a runtime: debit kept"
            );
            return;
        };
        let shared = Arc::clone(&self.shared);
        let (sid, unit, amount) = (self.sid.clone(), self.unit.clone(), self.amount);
        runtime.spawn(async move {
            match shared.mint.credit_account(&sid, &unit, amount, None).await {
                Ok(()) => tracing::info!(amount, "request dropped before it finished: debit returned"),
                Err(err) => tracing::error!(error = %err, amount, "could not return a dropped request's debit"),
            }
        });
    }
}

/// The session endpoints (see [`crate::session`]).
pub(crate) async fn session_endpoint<ReqBody, ResBody, E>(
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    request: Request<ReqBody>,
) -> Result<Reply<ResBody>, E> {
    let rest = request
        .uri()
        .path()
        .get(settings.session_path.len()..)
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    // Only the head is needed (and a body need not be `Sync` to be held across awaits).
    let (parts, _body) = request.into_parts();
    let headers = &parts.headers;
    let response = match (parts.method.clone(), rest.as_str()) {
        (Method::POST, "") => open_session(&settings, &shared, headers).await,
        (Method::POST, "/topup") => top_up(&settings, &shared, headers).await,
        (Method::GET, "") => session_status(&shared, headers).await,
        (Method::DELETE, "") => close_session(&settings, &shared, headers).await,
        (_, "" | "/topup") => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            GENERIC_ERROR_CODE,
            "use POST to open, POST /topup to top up, GET for the balance, DELETE to close",
        ),
        _ => reply::error(
            StatusCode::NOT_FOUND,
            GENERIC_ERROR_CODE,
            "no such session endpoint",
        ),
    };
    Ok(response)
}

fn credential(headers: &HeaderMap, shared: &Shared) -> Result<SessionClaims, Rejection> {
    let credential = match nut24::find_session(headers) {
        Err(err) => return Err(Rejection::bad_request(err.0)),
        Ok(None) => {
            return Err(Rejection::unauthorized(
                "this needs the session credential in X-Cashu-Session",
            ))
        }
        Ok(Some(credential)) => credential,
    };
    // An expired credential still reads, tops up and closes its own session: value is never
    // stranded by a clock.
    shared
        .keys
        .verify(credential, true)
        .map_err(|err| Rejection::unauthorized(err.to_string()))
}

fn token_from(headers: &HeaderMap, what: &str) -> Result<String, Rejection> {
    match nut24::find_token(headers) {
        Err(err) => Err(Rejection::bad_request(err.0)),
        Ok(None) => Err(Rejection::bad_request(format!(
            "{what} needs a token in the X-Cashu header"
        ))),
        Ok(Some((token, _))) => Ok(token),
    }
}

async fn open_session<B>(
    settings: &Settings,
    shared: &Arc<Shared>,
    headers: &HeaderMap,
) -> Reply<B> {
    let token = match token_from(headers, "opening a session") {
        Ok(token) => token,
        Err(rejection) => return rejection.into_response(),
    };
    let (proofs, unit) = match parse_token(settings, shared, &token) {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    deposit(settings, shared, proofs, unit, None).await
}

async fn top_up<B>(settings: &Settings, shared: &Arc<Shared>, headers: &HeaderMap) -> Reply<B> {
    let claims = match credential(headers, shared) {
        Ok(claims) => claims,
        Err(rejection) => return rejection.into_response(),
    };
    let token = match token_from(headers, "a top-up") {
        Ok(token) => token,
        Err(rejection) => return rejection.into_response(),
    };
    let (proofs, unit) = match parse_token(settings, shared, &token) {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    if unit.to_string() != claims.unit {
        return wrong_unit(&claims.unit, &unit.to_string());
    }
    deposit(settings, shared, proofs, unit, Some(claims.sid)).await
}

/// Spends `proofs` into a session (a new one when `sid` is `None`) and answers with a fresh
/// credential and the balance. A retried deposit finds its receipt and answers the same.
async fn deposit<B>(
    settings: &Settings,
    shared: &Arc<Shared>,
    proofs: Vec<Proof>,
    unit: CurrencyUnit,
    sid: Option<String>,
) -> Reply<B> {
    let key = receipt_key(&proofs);
    let Some(_claim) = InFlight::enter(shared, key) else {
        return pending();
    };
    let topping_up = sid.is_some();
    let sid = sid.unwrap_or_else(new_session_id);
    let template = ReceiptData {
        session: Some(sid.clone()),
        ..ReceiptData::new(ReceiptKind::Deposit, unit.to_string())
    };
    let payment = Payment {
        unit: unit.clone(),
        amount: settings.min_deposit,
        deposit: Some(sid.clone()),
        require_lock: settings.require_lock,
        receipt: Some((key, receipt_fn(template))),
        pass: None,
    };
    let sid = match shared.mint.redeem(proofs, payment).await {
        Ok(redeemed) => {
            tracing::info!(amount = redeemed.kept, unit = %unit, topping_up, "session deposit");
            shared.mint.record(Event::Deposited {
                unit: unit.clone(),
                amount: redeemed.kept,
            });
            sid
        }
        Err(Error::TokenAlreadySpent) => {
            let earlier = match shared.mint.receipt(&key).await {
                Ok(record) => record.and_then(|r| ReceiptData::decode(&r.data)),
                Err(err) => return reply::mint_error(&err),
            };
            match earlier {
                Some(ReceiptData {
                    kind: ReceiptKind::Deposit,
                    session: Some(earlier),
                    ..
                }) if !topping_up || earlier == sid => earlier,
                _ => return spent("token already spent"),
            }
        }
        Err(err) => return reply::mint_error(&err),
    };
    session_answer(settings, shared, &sid, &unit).await
}

async fn session_answer<B>(
    settings: &Settings,
    shared: &Shared,
    sid: &str,
    unit: &CurrencyUnit,
) -> Reply<B> {
    let balance = match shared.mint.account(sid).await {
        Ok(account) => account.map(|a| a.balance).unwrap_or(0),
        Err(err) => return reply::mint_error(&err),
    };
    let now = coinslot_mint::unix_now();
    let expires_at = now.saturating_add(settings.session_ttl.as_secs());
    let unit_name = unit.to_string();
    let credential = match shared.keys.issue(sid, &unit_name, now, expires_at) {
        Ok(credential) => credential,
        Err(err) => {
            tracing::error!(error = %err, "could not sign a session credential");
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                GENERIC_ERROR_CODE,
                "could not sign the session credential; the deposit is kept, retry the same request",
            );
        }
    };
    let mut response = reply::json(
        StatusCode::OK,
        &json!({
            "session": credential,
            "balance": balance,
            "unit": unit_name,
            "expires_at": expires_at,
        }),
    );
    if let Ok(value) = http::HeaderValue::from_str(&credential) {
        response.headers_mut().insert(X_CASHU_SESSION, value);
    }
    reply::attach_balance(&mut response, balance, &unit_name);
    response
}

async fn session_status<B>(shared: &Shared, headers: &HeaderMap) -> Reply<B> {
    let claims = match credential(headers, shared) {
        Ok(claims) => claims,
        Err(rejection) => return rejection.into_response(),
    };
    match shared.mint.account(&claims.sid).await {
        Ok(Some(account)) => {
            let mut response = reply::json(
                StatusCode::OK,
                &json!({
                    "balance": account.balance,
                    "unit": account.unit.to_string(),
                    "expires_at": claims.exp,
                }),
            );
            reply::attach_balance(&mut response, account.balance, &claims.unit);
            response
        }
        Ok(None) => unauthorized("session is closed or unknown"),
        Err(err) => reply::mint_error(&err),
    }
}

fn close_key(sid: &str) -> [u8; 32] {
    Sha256::digest(format!("coinslot/close/{sid}")).into()
}

async fn close_session<B>(settings: &Settings, shared: &Shared, headers: &HeaderMap) -> Reply<B> {
    let claims = match credential(headers, shared) {
        Ok(claims) => claims,
        Err(rejection) => return rejection.into_response(),
    };
    let key = close_key(&claims.sid);
    let template = ReceiptData {
        session: Some(claims.sid.clone()),
        ..ReceiptData::new(ReceiptKind::Close, claims.unit.clone())
    };
    let payout = match shared
        .mint
        .close_account(&claims.sid, Some((key, receipt_fn(template))))
        .await
    {
        Ok((account, proofs)) => {
            tracing::info!(amount = account.balance, unit = %account.unit, "session closed");
            shared.mint.record(Event::SessionClosed {
                unit: account.unit.clone(),
                amount: account.balance,
            });
            proofs
        }
        Err(Error::AccountNotFound) => {
            // A retried close: answer with the payout the first one recorded.
            match shared.mint.receipt(&key).await {
                Ok(Some(record)) => match ReceiptData::decode(&record.data) {
                    Some(data) if data.kind == ReceiptKind::Close => data.change,
                    _ => return unauthorized("session is closed or unknown"),
                },
                Ok(None) => return unauthorized("session is closed or unknown"),
                Err(err) => return reply::mint_error(&err),
            }
        }
        Err(err) => return reply::mint_error(&err),
    };
    let Ok(unit) = CurrencyUnit::from_str(&claims.unit) else {
        return reply::bad_request("session credential names an unknown unit");
    };
    let amount: u64 = payout.iter().map(|p| u64::from(p.amount)).sum();
    let token = (!payout.is_empty()).then(|| reply::token(settings, &unit, payout.clone()));
    let mut response = reply::json(
        StatusCode::OK,
        &json!({ "token": token, "amount": amount, "unit": claims.unit }),
    );
    reply::attach_token(&mut response, settings, &unit, payout);
    reply::attach_balance(&mut response, 0, &claims.unit);
    response
}
