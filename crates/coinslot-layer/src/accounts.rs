//! Balances the mint keeps for a payer: what prepaid sessions and key balances (a token used
//! as an API key) share. A request is paid by one atomic debit of its price (with its
//! receipt, when it carries an `Idempotency-Key`), the run settles back into the balance
//! (the unused part of a metered price, or everything after a failure), and closing pays
//! the balance out as a token.

use std::sync::Arc;

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::store::AccountWrite;
use coinslot_mint::{
    receipt_key, Error, Event, PaidWith, Payment, Purchase, ReceiptGuard, ReceiptWrite,
};
use http::{HeaderMap, Request, StatusCode};
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
use crate::wire::nut24::IDEMPOTENCY_KEY;
use crate::{Balance, Paid, Price};

/// What kind of balance pays: the words of its answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    /// A prepaid session (`X-Cashu-Session`).
    Session,
    /// A token used as an API key (`Authorization: Bearer cashu…`).
    Key,
}

impl AccountKind {
    fn name(self) -> &'static str {
        match self {
            AccountKind::Session => "session",
            AccountKind::Key => "key",
        }
    }

    pub(crate) fn gone(self) -> &'static str {
        match self {
            AccountKind::Session => "session is closed or unknown",
            AccountKind::Key => "this key's balance was paid out (or it never held one)",
        }
    }
}

/// The balance a request is paid from.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The account id in the mint's store.
    pub id: String,
    pub kind: AccountKind,
    /// For a key: its token, deposited whole when the account does not exist yet (found
    /// by the debit itself, so a key that is open costs no extra read).
    pub opens: Option<String>,
}

/// The account of the API key `token` (a token used as a key): a hash of the token as the
/// client sends it.
pub(crate) fn key_account(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"coinslot/key/v1\0");
    hash.update(token.trim().as_bytes());
    format!("key-{}", hex::encode(hash.finalize()))
}

/// The receipt key of a run paid from an account: the account and the client's name for
/// the operation.
fn run_key(id: &str, idempotency_key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"coinslot/session-run/v1\0");
    hash.update(id.as_bytes());
    hash.update([0]);
    hash.update(idempotency_key);
    hash.finalize().into()
}

/// A request at `price` paid from `account`: one atomic debit, then the run.
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    mut request: Request<ReqBody>,
    price: Price,
    mut account: Account,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let unit_name = price.unit.to_string();
    let idempotency = request.headers().get(IDEMPOTENCY_KEY).cloned();
    let id = account.id.clone();
    let mut opens = account.opens.take();
    let debited = loop {
        let (debited, back) = match &idempotency {
            // Recorded: the debit and the receipt in one durable write.
            Some(name) => {
                let key = run_key(&id, name.as_bytes());
                let (parts, body) = request.into_parts();
                let run = running(
                    request_head(&parts),
                    price.retry,
                    PayerKind::Session,
                    &ctx.settings,
                    ctx.shared.instance,
                );
                let request = Request::from_parts(parts, body);
                let data = ReceiptData {
                    session: Some(id.clone()),
                    kept: price.amount,
                    metered: price.is_metered(),
                    run: Some(run),
                    ..ReceiptData::new(ReceiptKind::Request, unit_name.clone())
                };
                match record_debit(&ctx, key, data, &id, &price).await {
                    Ok((balance, record)) => (Ok((balance, Some(record))), request),
                    // The same operation again: answered by its receipt.
                    Err(Error::ReceiptChanged) => {
                        let request = request.map(RequestBody::plain);
                        return settle::retry(&ctx, inner, request, key, HeaderMap::new())
                            .await
                            .into_response(&ctx);
                    }
                    Err(err) => (Err(err), request),
                }
            }
            // A debit that need not be durable on return (see the store's contract).
            None => {
                let debit = ctx.mint().debit_account(&id, &price.unit, price.amount);
                (debit.await.map(|balance| (balance, None)), request)
            }
        };
        request = back;
        match (debited, opens.take()) {
            // A key's first use: its token opens the account, and the debit is tried again.
            (Err(Error::AccountNotFound), Some(token)) => {
                if let Err(rejection) = open_key(&ctx, &token, &id, Some(&price)).await {
                    return rejection.into_response();
                }
            }
            (debited, _) => break debited,
        }
    };
    let (balance, record) = match debited {
        Ok(debited) => debited,
        Err(Error::InsufficientBalance { balance }) => {
            let detail = match account.kind {
                AccountKind::Session => format!(
                    "session balance is {balance} {unit_name}, the price is {} {unit_name}: top up at {}/topup or pay with a token",
                    price.amount, ctx.settings.session_path
                ),
                AccountKind::Key => format!(
                    "key balance is {balance} {unit_name}, the price is {} {unit_name}: use a token worth more as the key (the rest of this one comes back with DELETE on the balance endpoint)",
                    price.amount
                ),
            };
            let mut response = challenge::nut24(&ctx, &price, request.headers(), Some(detail));
            attach_balance(&mut response, balance, &unit_name);
            return response;
        }
        Err(Error::AccountNotFound) => {
            return Rejection::unauthorized(account.kind.gone()).into_response()
        }
        Err(err) => return Rejection::mint(&err).into_response(),
    };
    go(ctx, inner, request, price, account, balance, record).await
}

/// Runs a request whose price was debited.
async fn go<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    account: Account,
    balance: u64,
    record: Option<Arc<RunHandle>>,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    ctx.mint().record(Event::Paid {
        unit: price.unit.clone(),
        amount: price.amount,
        fee: 0,
        with: PaidWith::Session,
        route: price.label.clone(),
    });
    let length = content_length(request.headers());
    // Only a recorded run binds its body (for its retries).
    let (request, seen) = match record {
        Some(_) => hash_body(request),
        None => (request.map(RequestBody::plain), Arc::default()),
    };
    let sid = account.id;
    let ticket = Ticket {
        paid: Some(Paid {
            amount: price.amount,
            unit: price.unit.clone(),
            keyset_id: None,
            session: Some(sid.clone()),
            metered: price.is_metered(),
            replay: false,
            balance: Some(Balance::new(ctx.mint().clone(), sid.clone())),
        }),
        pass: None,
        unit: price.unit.clone(),
        kept: price.amount,
        metered: price.is_metered(),
        payer: Payer::Session { sid, balance },
        key_account: None,
        record,
        retry: price.retry,
        headers: HeaderMap::new(),
        success_headers: HeaderMap::new(),
        seen,
        content_length: length,
        route: price.label.clone(),
    };
    settle::run(ctx, inner, request, ticket).await
}

/// Debits the account and inserts the run's receipt, durably, all or nothing.
async fn record_debit(
    ctx: &Ctx,
    key: [u8; 32],
    data: ReceiptData,
    id: &str,
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
        id,
        unit: &price.unit,
        amount: price.amount,
    };
    ctx.mint()
        .write_receipt(write, &[], None, Some(debit))
        .await?;
    let balance = ctx.mint().account(id).await?.map_or(0, |a| a.balance);
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

/// Opens the balance `id` of the key `token`: the token deposited whole (in its own unit,
/// which must be the price's when there is one). A concurrent first use that deposited it
/// already is the same account.
pub(crate) async fn open_key(
    ctx: &Ctx,
    token: &str,
    id: &str,
    price: Option<&Price>,
) -> Result<(), Rejection> {
    let (proofs, unit) = parse_token(ctx, token)?;
    if let Some(price) = price {
        if unit != price.unit {
            return Err(wrong_unit(&price.unit.to_string(), &unit.to_string()));
        }
    }
    let same = id.to_string();
    let earlier = move |earlier: &str| earlier == same;
    deposit(ctx, proofs, &unit, id.to_string(), 1, earlier).await?;
    tracing::info!(unit = %unit, "key balance opened");
    Ok(())
}

/// Spends `proofs` into the account `id` (created by the deposit when there is none). A
/// retried deposit finds its receipt: the account it went to is returned when `earlier`
/// accepts it, else the token is refused as spent.
pub(crate) async fn deposit(
    ctx: &Ctx,
    proofs: Vec<Proof>,
    unit: &CurrencyUnit,
    id: String,
    min: u64,
    earlier: impl Fn(&str) -> bool,
) -> Result<String, Rejection> {
    let key = receipt_key(&proofs);
    let template = ReceiptData {
        session: Some(id.clone()),
        ..ReceiptData::new(ReceiptKind::Deposit, unit.to_string())
    };
    let payment = Payment {
        unit: unit.clone(),
        buys: Purchase::Deposit {
            account: id.clone(),
            min,
        },
        require_lock: ctx.settings.require_lock,
        receipt: Some((key, receipt_fn(template))),
    };
    match ctx.mint().redeem(proofs, payment).await {
        Ok(redeemed) => {
            tracing::info!(amount = redeemed.kept, unit = %unit, "deposit into a balance");
            ctx.mint().record(Event::Deposited {
                unit: unit.clone(),
                amount: redeemed.kept,
            });
            Ok(id)
        }
        Err(Error::TokenAlreadySpent) => {
            let found = ctx
                .mint()
                .receipt(&key)
                .await
                .map_err(|e| Rejection::mint(&e))?
                .and_then(|r| ReceiptData::decode(&r.data));
            match found {
                Some(ReceiptData {
                    kind: ReceiptKind::Deposit,
                    session: Some(account),
                    ..
                }) if earlier(&account) => Ok(account),
                _ => Err(Rejection::spent("token already spent")),
            }
        }
        Err(err) => Err(Rejection::mint(&err)),
    }
}

fn close_key(id: &str) -> [u8; 32] {
    Sha256::digest(format!("coinslot/close/{id}")).into()
}

/// Closes the account `id` and answers with its balance as a token, recorded once: a
/// retried close answers with the same payout.
pub(crate) async fn pay_out<B>(
    ctx: &Ctx,
    id: &str,
    kind: AccountKind,
) -> Result<Reply<B>, Rejection> {
    let key = close_key(id);
    let unknown = || Rejection::unauthorized(kind.gone());
    let unit = match ctx.mint().account(id).await {
        Ok(Some(account)) => Some(account.unit),
        Ok(None) => None,
        Err(err) => return Err(Rejection::mint(&err)),
    };
    let closed = match &unit {
        Some(unit) => {
            let template = ReceiptData {
                session: Some(id.to_string()),
                ..ReceiptData::new(ReceiptKind::Close, unit.to_string())
            };
            ctx.mint()
                .close_account(id, Some((key, receipt_fn(template))))
                .await
        }
        None => Err(Error::AccountNotFound),
    };
    let (payout, unit) = match closed {
        Ok((account, proofs)) => {
            tracing::info!(amount = account.balance, unit = %account.unit, kind = kind.name(), "balance paid out");
            ctx.mint().record(Event::SessionClosed {
                unit: account.unit.clone(),
                amount: account.balance,
            });
            (proofs, account.unit)
        }
        Err(Error::AccountNotFound) => {
            // A retried close: answer with the payout the first one recorded.
            let record = ctx
                .mint()
                .receipt(&key)
                .await
                .map_err(|e| Rejection::mint(&e))?
                .ok_or_else(unknown)?;
            match ReceiptData::decode(&record.data) {
                Some(data) if data.kind == ReceiptKind::Close => {
                    let unit = data.unit().ok_or_else(unknown)?;
                    (data.change, unit)
                }
                _ => return Err(unknown()),
            }
        }
        Err(err) => return Err(Rejection::mint(&err)),
    };
    let unit_name = unit.to_string();
    let amount: u64 = payout.iter().map(|p| u64::from(p.amount)).sum();
    let mint_url = &ctx.settings.mint_url;
    let token = (!payout.is_empty()).then(|| errors::token(mint_url, &unit, payout.clone()));
    let mut response = errors::json(
        StatusCode::OK,
        &json!({ "token": token, "amount": amount, "unit": unit_name }),
    );
    attach_token(&mut response, mint_url, &unit, payout);
    attach_balance(&mut response, 0, &unit_name);
    Ok(response)
}
