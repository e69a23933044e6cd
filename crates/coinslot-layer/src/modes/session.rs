//! Paying from a prepaid session: a client deposits a token once, gets a credential (a JWT,
//! HS256), and pays each request from a balance the mint keeps, with `X-Cashu-Session`.
//!
//! The credential only names the account (`sid`), its unit and an expiry; the balance lives
//! in the store, so a credential cannot be replayed into more value than was deposited. Per
//! request the layer does one HMAC check and one atomic debit. A request that carries an
//! `Idempotency-Key` is recorded like a token payment (the debit and the receipt in one
//! durable write), so its retry gets the stored answer instead of a second debit; without
//! one, every request is a new purchase.
//!
//! Endpoints, under the session path (default `/cashu/session`):
//!
//! | request                                   | answer                                      |
//! |-------------------------------------------|---------------------------------------------|
//! | `POST {path}` + `X-Cashu: <token>`        | opens a session with the token's value      |
//! | `POST {path}/topup` + credential + token  | adds the token's value, renews the credential|
//! | `GET {path}` + credential                 | the balance                                 |
//! | `DELETE {path}` + credential              | closes it: the balance back as a token      |
//!
//! An expired credential still reads, tops up and closes its session, so a balance can
//! never be stranded by a clock.

use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::store::AccountWrite;
use coinslot_mint::{
    receipt_key, Error, ErrorCode, Event, PaidWith, Payment, Purchase, ReceiptGuard, ReceiptWrite,
};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::body::{BoxError, RequestBody};
use crate::challenge;
use crate::proofs::{parse_token, receipt_fn, wrong_unit};
use crate::receipt::{
    content_length, hash_body, request_head, running, PayerKind, ReceiptData, ReceiptKind,
    RunHandle,
};
use crate::settings::Ctx;
use crate::settle::{self, Inner, Payer, Ticket};
use crate::wire::errors::{self, attach_balance, attach_token, Rejection, Reply};
use crate::wire::jwt::{CredentialError, SessionClaims};
use crate::wire::nut24::{self, HeaderError, IDEMPOTENCY_KEY, X_CASHU_SESSION};
use crate::{Paid, Price};

/// The session credential a request carries, if any.
pub(crate) fn find(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    nut24::find_session(headers)
}

/// The receipt key of a session payment: the session and the client's name for the
/// operation.
fn run_key(sid: &str, idempotency_key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"coinslot/session-run/v1\0");
    hash.update(sid.as_bytes());
    hash.update([0]);
    hash.update(idempotency_key);
    hash.finalize().into()
}

/// A request at `price` paid from the session `credential` names.
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    credential: String,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let claims = match ctx.shared.keys.verify(&credential, false) {
        Ok(claims) => claims,
        Err(err) => return Rejection::unauthorized(err.to_string()).into_response(),
    };
    let unit_name = price.unit.to_string();
    if claims.unit != unit_name {
        return wrong_unit(&unit_name, &claims.unit).into_response();
    }
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(X_CASHU_SESSION);
    let idempotency = parts.headers.get(IDEMPOTENCY_KEY).cloned();
    let head = request_head(&parts);
    let request = Request::from_parts(parts, body);
    let sid = claims.sid.clone();
    let debit = match &idempotency {
        // Recorded: the debit and the receipt in one durable write.
        Some(name) => {
            let key = run_key(&sid, name.as_bytes());
            let run = running(
                head,
                price.retry,
                PayerKind::Session,
                &ctx.settings,
                ctx.shared.instance,
            );
            let data = ReceiptData {
                session: Some(sid.clone()),
                kept: price.amount,
                metered: price.is_metered(),
                run: Some(run),
                ..ReceiptData::new(ReceiptKind::Request, unit_name.clone())
            };
            match record_debit(&ctx, key, data, &sid, &price).await {
                Ok((balance, record)) => Ok((balance, Some(record))),
                Err(Error::ReceiptChanged) => {
                    let request = request.map(RequestBody::plain);
                    return settle::retry(&ctx, inner, request, key, HeaderMap::new())
                        .await
                        .into_response(&ctx);
                }
                Err(err) => Err(err),
            }
        }
        // A debit that need not be durable on return (see the store's contract).
        None => ctx
            .mint()
            .debit_account(&sid, &price.unit, price.amount)
            .await
            .map(|balance| (balance, None)),
    };
    let (balance, record) = match debit {
        Ok(debited) => debited,
        Err(Error::InsufficientBalance { balance }) => {
            let detail = format!(
                "session balance is {balance} {unit_name}, the price is {} {unit_name}: top up at {}/topup or pay with a token",
                price.amount, ctx.settings.session_path
            );
            let mut response = challenge::nut24(&ctx, &price, request.headers(), Some(detail));
            attach_balance(&mut response, balance, &unit_name);
            return response;
        }
        Err(Error::AccountNotFound) => {
            return Rejection::unauthorized("session is closed or unknown").into_response()
        }
        Err(err) => return Rejection::mint(&err).into_response(),
    };
    ctx.mint().record(Event::Paid {
        unit: price.unit.clone(),
        amount: price.amount,
        fee: 0,
        with: PaidWith::Session,
    });
    let length = content_length(request.headers());
    // Only a recorded run binds its body (for its retries).
    let (request, seen) = match record {
        Some(_) => hash_body(request),
        None => (request.map(RequestBody::plain), Arc::default()),
    };
    let ticket = Ticket {
        paid: Some(Paid {
            amount: price.amount,
            unit: price.unit.clone(),
            keyset_id: None,
            session: Some(sid.clone()),
            metered: price.is_metered(),
            replay: false,
        }),
        pass: None,
        unit: price.unit.clone(),
        kept: price.amount,
        metered: price.is_metered(),
        payer: Payer::Session { sid, balance },
        record,
        retry: price.retry,
        headers: HeaderMap::new(),
        success_headers: HeaderMap::new(),
        seen,
        content_length: length,
    };
    settle::run(ctx, inner, request, ticket).await
}

/// Debits the session and inserts the run's receipt, durably, all or nothing.
async fn record_debit(
    ctx: &Ctx,
    key: [u8; 32],
    data: ReceiptData,
    sid: &str,
    price: &Price,
) -> Result<(u64, Arc<RunHandle>), Error> {
    let created_at = coinslot_mint::unix_now();
    let encoded = data.encode();
    let write = ReceiptWrite {
        key: &key,
        created_at,
        data: &encoded,
        guard: ReceiptGuard::Absent,
    };
    let debit = AccountWrite::Debit {
        id: sid,
        unit: &price.unit,
        amount: price.amount,
    };
    ctx.mint()
        .write_receipt(write, &[], None, Some(debit))
        .await?;
    let balance = ctx.mint().account(sid).await?.map_or(0, |a| a.balance);
    let record = RunHandle::new(
        ctx.mint().clone(),
        key,
        created_at,
        1,
        data,
        ctx.settings.run_lease,
    );
    Ok((balance, record))
}

/// The session endpoints (see the module docs).
pub(crate) async fn endpoint<ReqBody, ResBody>(
    ctx: Ctx,
    request: Request<ReqBody>,
) -> Reply<ResBody> {
    let rest = request
        .uri()
        .path()
        .get(ctx.settings.session_path.len()..)
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    // Only the head is needed (and a body need not be `Sync` to be held across awaits).
    let (parts, _body) = request.into_parts();
    let headers = &parts.headers;
    let answer = match (parts.method.clone(), rest.as_str()) {
        (Method::POST, "") => open(&ctx, headers).await,
        (Method::POST, "/topup") => top_up(&ctx, headers).await,
        (Method::GET, "") => status(&ctx, headers).await,
        (Method::DELETE, "") => close(&ctx, headers).await,
        (_, "" | "/topup") => Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Generic,
            "use POST to open, POST /topup to top up, GET for the balance, DELETE to close",
        )),
        _ => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Generic,
            "no such session endpoint",
        )),
    };
    answer.unwrap_or_else(Rejection::into_response)
}

fn claims(ctx: &Ctx, headers: &HeaderMap) -> Result<SessionClaims, Rejection> {
    let credential = find(headers)
        .map_err(|err| Rejection::bad_request(err.0))?
        .ok_or_else(|| {
            Rejection::unauthorized("this needs the session credential in X-Cashu-Session")
        })?;
    // An expired credential still reads, tops up and closes its own session: value is never
    // stranded by a clock.
    ctx.shared
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

async fn open<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let token = token_from(headers, "opening a session")?;
    let (proofs, unit) = parse_token(ctx, &token)?;
    deposit(ctx, proofs, unit, None).await
}

async fn top_up<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    let token = token_from(headers, "a top-up")?;
    let (proofs, unit) = parse_token(ctx, &token)?;
    if unit.to_string() != claims.unit {
        return Err(wrong_unit(&claims.unit, &unit.to_string()));
    }
    deposit(ctx, proofs, unit, Some(claims.sid)).await
}

/// Spends `proofs` into a session (a new one when `sid` is `None`) and answers with a fresh
/// credential and the balance. A retried deposit finds its receipt and answers the same.
async fn deposit<B>(
    ctx: &Ctx,
    proofs: Vec<Proof>,
    unit: CurrencyUnit,
    sid: Option<String>,
) -> Result<Reply<B>, Rejection> {
    let key = receipt_key(&proofs);
    let topping_up = sid.is_some();
    let sid = sid.unwrap_or_else(crate::wire::jwt::new_id);
    let template = ReceiptData {
        session: Some(sid.clone()),
        ..ReceiptData::new(ReceiptKind::Deposit, unit.to_string())
    };
    let payment = Payment {
        unit: unit.clone(),
        buys: Purchase::Deposit {
            account: sid.clone(),
            min: ctx.settings.min_deposit,
        },
        require_lock: ctx.settings.require_lock,
        receipt: Some((key, receipt_fn(template))),
    };
    let sid = match ctx.mint().redeem(proofs, payment).await {
        Ok(redeemed) => {
            tracing::info!(amount = redeemed.kept, unit = %unit, topping_up, "session deposit");
            ctx.mint().record(Event::Deposited {
                unit: unit.clone(),
                amount: redeemed.kept,
            });
            sid
        }
        Err(Error::TokenAlreadySpent) => {
            let earlier = ctx
                .mint()
                .receipt(&key)
                .await
                .map_err(|e| Rejection::mint(&e))?
                .and_then(|r| ReceiptData::decode(&r.data));
            match earlier {
                Some(ReceiptData {
                    kind: ReceiptKind::Deposit,
                    session: Some(earlier),
                    ..
                }) if !topping_up || earlier == sid => earlier,
                _ => return Err(Rejection::spent("token already spent")),
            }
        }
        Err(err) => return Err(Rejection::mint(&err)),
    };
    answer(ctx, &sid, &unit).await
}

/// A session's credential (fresh) and balance.
async fn answer<B>(ctx: &Ctx, sid: &str, unit: &CurrencyUnit) -> Result<Reply<B>, Rejection> {
    let balance = ctx
        .mint()
        .account(sid)
        .await
        .map_err(|e| Rejection::mint(&e))?
        .map_or(0, |a| a.balance);
    let now = coinslot_mint::unix_now();
    let expires_at = now.saturating_add(ctx.settings.session_ttl.as_secs());
    let unit_name = unit.to_string();
    let credential = ctx
        .shared
        .keys
        .issue(sid, &unit_name, now, expires_at)
        .map_err(|err| {
            tracing::error!(error = %err, "could not sign a session credential");
            Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Generic,
                "could not sign the session credential; the deposit is kept, retry the same request",
            )
        })?;
    let mut response = errors::json(
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
    attach_balance(&mut response, balance, &unit_name);
    Ok(response)
}

async fn status<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    let account = ctx
        .mint()
        .account(&claims.sid)
        .await
        .map_err(|e| Rejection::mint(&e))?
        .ok_or_else(|| Rejection::unauthorized("session is closed or unknown"))?;
    let mut response = errors::json(
        StatusCode::OK,
        &json!({
            "balance": account.balance,
            "unit": account.unit.to_string(),
            "expires_at": claims.exp,
        }),
    );
    attach_balance(&mut response, account.balance, &claims.unit);
    Ok(response)
}

fn close_key(sid: &str) -> [u8; 32] {
    Sha256::digest(format!("coinslot/close/{sid}")).into()
}

async fn close<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    let key = close_key(&claims.sid);
    let template = ReceiptData {
        session: Some(claims.sid.clone()),
        ..ReceiptData::new(ReceiptKind::Close, claims.unit.clone())
    };
    let closed = ctx
        .mint()
        .close_account(&claims.sid, Some((key, receipt_fn(template))))
        .await;
    let payout = match closed {
        Ok((account, proofs)) => {
            tracing::info!(amount = account.balance, unit = %account.unit, "session closed");
            ctx.mint().record(Event::SessionClosed {
                unit: account.unit.clone(),
                amount: account.balance,
            });
            proofs
        }
        Err(Error::AccountNotFound) => {
            // A retried close: answer with the payout the first one recorded.
            let unknown = || Rejection::unauthorized("session is closed or unknown");
            let record = ctx
                .mint()
                .receipt(&key)
                .await
                .map_err(|e| Rejection::mint(&e))?
                .ok_or_else(unknown)?;
            match ReceiptData::decode(&record.data) {
                Some(data) if data.kind == ReceiptKind::Close => data.change,
                _ => return Err(unknown()),
            }
        }
        Err(err) => return Err(Rejection::mint(&err)),
    };
    let unit = CurrencyUnit::from_str(&claims.unit)
        .map_err(|_| Rejection::bad_request("session credential names an unknown unit"))?;
    let amount: u64 = payout.iter().map(|p| u64::from(p.amount)).sum();
    let mint_url = &ctx.settings.mint_url;
    let token = (!payout.is_empty()).then(|| errors::token(mint_url, &unit, payout.clone()));
    let mut response = errors::json(
        StatusCode::OK,
        &json!({ "token": token, "amount": amount, "unit": claims.unit }),
    );
    attach_token(&mut response, mint_url, &unit, payout);
    attach_balance(&mut response, 0, &claims.unit);
    Ok(response)
}

/// The prepaid sessions of a paywall, for services outside its HTTP routes (a forward
/// proxy charging per megabyte): check a credential, take from its balance. From
/// [`PaywallLayer::sessions`](crate::PaywallLayer::sessions); cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) ctx: Ctx,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// Checks a credential's signature, audience and expiry (not the balance).
    pub fn verify(&self, credential: &str) -> Result<SessionClaims, CredentialError> {
        self.ctx.shared.keys.verify(credential.trim(), false)
    }

    /// Takes `amount` from the session's balance, atomically; the balance left. Fails with
    /// [`Error::InsufficientBalance`] (nothing taken) or [`Error::AccountNotFound`]
    /// (closed).
    pub async fn debit(&self, claims: &SessionClaims, amount: u64) -> Result<u64, Error> {
        let unit = claims
            .unit
            .parse()
            .map_err(|_| Error::UnsupportedUnit(claims.unit.clone()))?;
        self.ctx
            .mint()
            .debit_account(&claims.sid, &unit, amount)
            .await
    }
}
