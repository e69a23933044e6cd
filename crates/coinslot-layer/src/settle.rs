//! The one core every payment mode ends in: once a payment is taken, [`run`] runs the
//! handler and settles (change, the unused part of a metered reservation, or a refund after
//! a failure), and the answer is recorded for retries; [`retry`] answers a payment that is
//! spent already, by its receipt ([`crate::receipt`] says how).
//!
//! A recorded run is spawned: a client that goes away does not cancel it, so the answer it
//! paid for is there when it retries. A run without a record (a session debit without an
//! `Idempotency-Key`, a request a pass opened) runs in the client's request, and a session
//! debit goes back if that request is dropped first.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Id, Proof};
use coinslot_mint::store::AccountWrite;
use coinslot_mint::{
    Error, ErrorCode, Event, Inputs, PaidWith, Payment, Purchase, ReceiptGuard, ReceiptWrite,
};
use futures::future::BoxFuture;
use futures::FutureExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower_service::Service;
use tracing::Instrument;

use crate::body::{BodyDigest, BodySeen, End, RequestBody, Tap};
use crate::proofs::receipt_fn;
use crate::receipt::{
    request_head, running, same_body, surely_other_body, verdict, Answer, AnswerRecorder, Here,
    PayerKind, ReceiptData, ReceiptKind, RunHandle, RunRecord, RunState, Verdict,
};
use crate::settings::{Ctx, Settings};
use crate::wire::errors::{attach_balance, attach_token, Rejection, Reply};
use crate::wire::nut24;
use crate::wire::payment::{read_body, ReadBody};
use crate::{Charge, Meter, Paid, Price, ResponseBody, Retry, ValidPass};

/// Who paid for a run, so where value goes back.
#[derive(Debug, Clone)]
pub(crate) enum Payer {
    /// Proofs: change and refunds come back as proofs in `X-Cashu`.
    Token,
    /// A prepaid session: refunds and unused reservations go back to its balance.
    Session {
        /// The session.
        sid: String,
        /// Its balance after the debit.
        balance: u64,
    },
    /// A time pass: nothing comes back when the handler fails, the pass stays.
    Pass,
}

/// Everything a run needs besides the handler and the request.
pub(crate) struct Ticket {
    /// What the handler is told (none for a request a pass opened).
    pub paid: Option<Paid>,
    /// The pass that opens the request, for the handler.
    pub pass: Option<ValidPass>,
    pub unit: CurrencyUnit,
    /// Charged (the reservation, if metered).
    pub kept: u64,
    pub metered: bool,
    pub payer: Payer,
    /// For a one-shot token: the key balance of that token, where the unused part of a
    /// reservation settled at the end of a streamed answer goes.
    pub key_account: Option<String>,
    /// The payment's receipt, when retries can find it.
    pub record: Option<Arc<RunHandle>>,
    pub retry: Retry,
    /// Headers the answer carries whatever happens (a pass), and only on success (a
    /// `Payment-Receipt`).
    pub headers: HeaderMap,
    pub success_headers: HeaderMap,
    /// What the layer learns of the request body as the handler reads it.
    pub seen: Arc<BodySeen>,
    pub content_length: Option<u64>,
    /// The route's name, for the earnings ledger ([`Price::label`]).
    pub route: Option<Arc<str>>,
}

/// The service behind the layer, as a paid run calls it: it and its future can move to
/// another task (a run outlives its client), and its errors can be told.
pub(crate) trait Inner<ReqBody, ResBody>:
    Service<
        Request<RequestBody<ReqBody>>,
        Response = Response<ResBody>,
        Future: Send + 'static,
        Error: std::fmt::Display + Send + 'static,
    > + Send
    + 'static
{
}

impl<S, ReqBody, ResBody> Inner<ReqBody, ResBody> for S
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
{
}

/// Spends `proofs` at `price` for one run of the request `parts` describes: one durable
/// write of the spend and of a receipt that says the run is *running*. The modes that take
/// proofs for a price (a token, a `Payment` credential) start here. `Err` is the mint's
/// refusal; [`Error::TokenAlreadySpent`] means a retry, for the receipt under `key`.
pub(crate) async fn take_price(
    ctx: &Ctx,
    parts: &http::request::Parts,
    proofs: Inputs,
    price: &Price,
    key: [u8; 32],
) -> Result<TokenRun, Error> {
    let run = running(
        request_head(parts),
        price.retry,
        PayerKind::Token,
        &ctx.settings,
        ctx.shared.instance,
    );
    let template = ReceiptData {
        kept: price.amount,
        metered: price.is_metered(),
        run: Some(run),
        ..ReceiptData::new(ReceiptKind::Request, price.unit.to_string())
    };
    let payment = Payment {
        unit: price.unit.clone(),
        buys: Purchase::Price(price.amount),
        require_lock: ctx.settings.require_lock,
        receipt: Some((key, receipt_fn(template.clone()))),
    };
    let created_at = coinslot_mint::unix_now();
    let redeemed = ctx.mint().redeem(proofs, payment).await?;
    ctx.mint().record(Event::Paid {
        unit: price.unit.clone(),
        amount: price.amount,
        fee: redeemed.fee,
        with: PaidWith::Token,
        route: price.label.clone(),
    });
    let data = ReceiptData {
        change: redeemed.change,
        fee: redeemed.fee,
        ..template
    };
    let lease = ctx.settings.run_lease;
    let record = RunHandle::new(ctx.mint().clone(), key, created_at, 1, data, lease);
    Ok(TokenRun {
        record,
        keyset_id: redeemed.keyset_id,
        price: price.clone(),
    })
}

/// A run paid for with proofs, its spend recorded ([`take_price`]).
pub(crate) struct TokenRun {
    record: Arc<RunHandle>,
    keyset_id: Id,
    price: Price,
}

impl TokenRun {
    /// The run's ticket: `seen` follows the request's body, `success_headers` go on a
    /// successful answer.
    pub(crate) fn ticket(
        self,
        success_headers: HeaderMap,
        seen: Arc<BodySeen>,
        content_length: Option<u64>,
        key_account: Option<String>,
    ) -> Ticket {
        let price = self.price;
        Ticket {
            paid: Some(Paid {
                amount: price.amount,
                unit: price.unit.clone(),
                keyset_id: Some(self.keyset_id),
                session: None,
                metered: price.is_metered(),
                replay: false,
                balance: None,
            }),
            pass: None,
            metered: price.is_metered(),
            kept: price.amount,
            unit: price.unit,
            payer: Payer::Token,
            key_account,
            record: Some(self.record),
            retry: price.retry,
            headers: HeaderMap::new(),
            success_headers,
            seen,
            content_length,
            route: price.label,
        }
    }
}

/// Runs the handler for a payment taken, settles, and records the answer.
pub(crate) async fn run<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<RequestBody<ReqBody>>,
    ticket: Ticket,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    if ticket.record.is_none() {
        return serve(ctx, inner, request, ticket).await;
    }
    // The run belongs to the payment, not to the connection: it finishes (and its answer
    // is kept) when the client goes away.
    let run = serve(ctx, inner, request, ticket).in_current_span();
    Detached(Some(Box::pin(run))).await
}

/// A future that, dropped before it is done, is finished in a task of its own. Cheaper
/// than spawning every run: a spawn wakes another worker thread, and most clients wait.
struct Detached<T: Send + 'static>(Option<futures::future::BoxFuture<'static, T>>);

impl<T: Send + 'static> std::future::Future for Detached<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let Some(future) = self.0.as_mut() else {
            return std::task::Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        std::task::Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        let Some(future) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // Its answer goes nowhere; the answer's body records itself.
                    drop(future.await);
                });
            }
            Err(_) => tracing::error!("a paid run was dropped outside a runtime"),
        }
    }
}

async fn serve<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    mut request: Request<RequestBody<ReqBody>>,
    ticket: Ticket,
) -> Reply<ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    if let Some(paid) = &ticket.paid {
        request.extensions_mut().insert(paid.clone());
    }
    if let Some(pass) = &ticket.pass {
        request.extensions_mut().insert(pass.clone());
    }
    let guard = DebitGuard::arm(&ctx, &ticket);
    let record = ticket.record.as_deref();
    let outcome = leased(run_inner(&ctx.settings, inner, request), record).await;
    // A recorded answer, and a metered one whose cost comes at its end, are read whole when
    // they are small: recorded at once, or settled before the head says the balance.
    let late =
        matches!(&outcome, Outcome::Served(response) if late_meter(response, &ticket).is_some());
    let outcome = match record {
        Some(_) => leased(whole(&ctx.settings, outcome), record).await,
        None if late => whole(&ctx.settings, outcome).await,
        None => outcome,
    };
    guard.disarm();
    settle(&ctx, outcome, ticket).await
}

/// A recorded answer whose length is known and fits the store is read whole before its
/// head goes out: it is recorded, then sent in one piece. (Sent as it streams, its last
/// byte would wait for the record after the head went alone: Nagle's algorithm and a
/// delayed ACK make that 40 ms on a server without `TCP_NODELAY`.) A body that fails
/// while it is read is a failure of the handler.
async fn whole<B>(settings: &Settings, outcome: Outcome<B>) -> Outcome<B>
where
    B: http_body::Body<Data = Bytes>,
{
    let Outcome::Served(response) = outcome else {
        return outcome;
    };
    let length = crate::receipt::content_length(response.headers())
        .or_else(|| http_body::Body::size_hint(response.body()).exact());
    let fits = length.is_some_and(|n| n <= settings.max_stored_answer as u64);
    if !fits || response.status().is_server_error() {
        return Outcome::Served(response);
    }
    let (parts, body) = response.into_parts();
    // No deadline of its own: a body that stalls would stall its client just the same
    // without the layer (the handler's `timeout` bounds the handler, a proxy its upstream).
    let read = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .ok();
    match read {
        Some(bytes) => Outcome::Whole(Response::from_parts(parts, bytes)),
        None => Outcome::Failed {
            status: StatusCode::BAD_GATEWAY,
            detail: "the handler's answer failed before it was complete",
        },
    }
}

/// Runs `work`; a recorded run renews its lease meanwhile.
async fn leased<F: std::future::Future>(work: F, record: Option<&RunHandle>) -> F::Output {
    let Some(record) = record else {
        return work.await;
    };
    tokio::pin!(work);
    // Most work is done at its first poll: no timer for that (timers share a lock).
    if let Some(output) = (&mut work).now_or_never() {
        return output;
    }
    loop {
        tokio::select! {
            output = &mut work => return output,
            () = tokio::time::sleep(record.until_renewal()) => record.renew().await,
        }
    }
}

/// The handler's answer settled: change or what a metered price did not use goes back
/// with a success; the payment goes back after a failure.
async fn settle<ResBody>(ctx: &Ctx, outcome: Outcome<ResBody>, ticket: Ticket) -> Reply<ResBody>
where
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (status, detail, handler) = match outcome {
        Outcome::Served(response) if !response.status().is_server_error() => {
            if let Some(meter) = late_meter(&response, &ticket) {
                let response = response.map(ResponseBody::inner);
                return succeed_at_end(ctx, response, meter, ticket).await;
            }
            let charge = charge_of(&response, ticket.kept);
            let response = response.map(ResponseBody::inner);
            return succeed(ctx, response, charge, None, ticket).await;
        }
        Outcome::Whole(response) => {
            let charge = charge_of(&response, ticket.kept);
            let whole = response.body().clone();
            let response = response.map(ResponseBody::own);
            return succeed(ctx, response, charge, Some(whole), ticket).await;
        }
        Outcome::Served(response) => (response.status(), None, Some(response)),
        Outcome::Failed { status, detail } => (status, Some(detail), None),
    };
    fail(ctx, status, detail, handler, ticket).await
}

/// The meter of a metered answer whose cost comes with the end of its body: a [`Meter`]
/// not charged yet, and no [`Charge`] on its head.
fn late_meter<B>(response: &Response<B>, ticket: &Ticket) -> Option<Meter> {
    let extensions = response.extensions();
    if !ticket.metered
        || matches!(ticket.payer, Payer::Pass)
        || extensions.get::<Charge>().is_some()
    {
        return None;
    }
    extensions
        .get::<Meter>()
        .filter(|meter| meter.cost().is_none())
        .cloned()
}

/// A success whose cost is known when its body ends: the head goes out with the
/// reservation held (a balance as it is after the reservation; a token's change), and
/// [`EndSettle`] writes the settlement when the body ends, before its end reaches the client.
async fn succeed_at_end<ResBody>(
    ctx: &Ctx,
    mut response: Reply<ResBody>,
    meter: Meter,
    ticket: Ticket,
) -> Reply<ResBody>
where
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let unit = ticket.unit.clone();
    let account = match &ticket.payer {
        Payer::Session { sid, balance } => {
            attach_balance(&mut response, *balance, &unit.to_string());
            Some(sid.clone())
        }
        Payer::Token | Payer::Pass => {
            let change = match &ticket.record {
                Some(record) => record.data().await.change,
                None => Vec::new(),
            };
            attach_token(&mut response, &ctx.settings.mint_url, &unit, change);
            ticket.key_account.clone()
        }
    };
    extend(response.headers_mut(), &ticket.headers);
    extend(response.headers_mut(), &ticket.success_headers);
    let recorder = ticket.record.as_ref().map(|record| {
        let recorder: Box<dyn Tap> = AnswerRecorder::new(
            Arc::clone(record),
            &response,
            ticket.seen,
            ticket.content_length,
            ticket.retry,
            &ctx.settings,
        );
        recorder
    });
    let tap = Box::new(EndSettle {
        settlement: Settlement {
            ctx: ctx.clone(),
            meter,
            account,
            unit,
            kept: ticket.kept,
            record: ticket.record,
            route: ticket.route,
        },
        recorder,
        recorder_full: false,
        sent: 0,
    });
    let length = crate::receipt::content_length(response.headers());
    response.map(|body| body.recorded(tap, length))
}

/// Settles a metered answer when its body ends (see [`Meter`]): what the meter says was
/// used is charged (the fallback when it says nothing; nothing when the body failed before
/// its first byte), the rest goes to the balance that paid (a session, a key, or the key of
/// the token that paid) or, with no balance to go to, to the receipt, once. The answer's
/// own recorder sees the body through it.
struct EndSettle {
    settlement: Settlement,
    recorder: Option<Box<dyn Tap>>,
    /// The recorder wants no more (the answer is too big to keep): it ends `Cut`.
    recorder_full: bool,
    /// Bytes that went out.
    sent: u64,
}

/// What an [`EndSettle`] settles.
struct Settlement {
    ctx: Ctx,
    meter: Meter,
    account: Option<String>,
    unit: CurrencyUnit,
    kept: u64,
    record: Option<Arc<RunHandle>>,
    route: Option<Arc<str>>,
}

impl Settlement {
    /// What the answer costs, ended so after `sent` bytes.
    fn cost(&self, end: End, sent: u64) -> u64 {
        if let Some(cost) = self.meter.cost() {
            if cost > self.kept {
                tracing::warn!(
                    cost,
                    reserved = self.kept,
                    "metered answer reported more than was reserved"
                );
            }
            return cost.min(self.kept);
        }
        if end == End::Failed && sent == 0 {
            tracing::info!(
                reserved = self.kept,
                "metered answer failed before its first byte: not billed"
            );
            return 0;
        }
        let fallback = self
            .meter
            .fallback_amount()
            .unwrap_or(self.kept)
            .min(self.kept);
        tracing::warn!(
            ?end,
            billed = fallback,
            reserved = self.kept,
            "metered answer ended without reporting its cost: billed the fallback"
        );
        fallback
    }

    async fn settle(&self, end: End, sent: u64) {
        let cost = self.cost(end, sent);
        let unused = self.kept.saturating_sub(cost);
        let record = self.record.as_deref();
        if let Some(record) = record {
            if record.data().await.settled.is_some() {
                return; // a rerun of a run settled already
            }
        }
        tracing::debug!(cost, unused, ?end, "metered answer settled at its end");
        let failed = end == End::Failed && cost == 0;
        match (&self.account, record) {
            (_, _) if unused == 0 => {}
            (Some(account), _) => {
                credit(&self.ctx, account, self.back(), unused, record, failed).await;
            }
            (None, Some(record)) => {
                given_back_in(&self.ctx, record, self.back(), true, cost).await;
            }
            (None, None) => tracing::error!(unused, "a metered rest with nowhere to go"),
        }
    }
}

impl Tap for EndSettle {
    fn chunk(&mut self, data: &[u8]) -> bool {
        self.sent += data.len() as u64;
        if let Some(recorder) = self.recorder.as_mut().filter(|_| !self.recorder_full) {
            self.recorder_full = !recorder.chunk(data);
        }
        true
    }

    fn trailers(&mut self) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.trailers();
        }
    }

    fn tick(&mut self) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.tick();
        }
    }

    fn finish(self: Box<Self>, end: End) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let EndSettle {
                settlement,
                recorder,
                recorder_full,
                sent,
            } = *self;
            settlement.settle(end, sent).await;
            if let Some(recorder) = recorder {
                let end = if recorder_full { End::Cut } else { end };
                recorder.finish(end).await;
            }
        })
    }
}

/// A success: change (and what a metered price did not use) goes back, and the answer is
/// recorded: at once when it is `whole`, else as it streams out.
async fn succeed<ResBody>(
    ctx: &Ctx,
    mut response: Reply<ResBody>,
    charge: u64,
    whole: Option<Bytes>,
    ticket: Ticket,
) -> Reply<ResBody>
where
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (mint_url, unit) = (&ctx.settings.mint_url, &ticket.unit);
    match &ticket.payer {
        Payer::Token | Payer::Pass => {
            let back = match &ticket.record {
                Some(record) => given_back(ctx, record, &ticket, charge).await,
                None => Vec::new(),
            };
            attach_token(&mut response, mint_url, unit, back);
        }
        Payer::Session { sid, balance } => {
            let unused = ticket.kept.saturating_sub(charge);
            let mut balance = *balance;
            // Settled once: a rerun does not give the unused part back again.
            let settled = match &ticket.record {
                Some(record) => record.data().await.settled.is_some(),
                None => false,
            };
            if ticket.metered && unused > 0 && !settled {
                let record = ticket.record.as_deref();
                if credit(ctx, sid, ticket.back(), unused, record, false).await {
                    balance = balance.saturating_add(unused);
                }
            }
            attach_balance(&mut response, balance, &unit.to_string());
        }
    }
    extend(response.headers_mut(), &ticket.headers);
    extend(response.headers_mut(), &ticket.success_headers);
    let Some(record) = ticket.record else {
        return response;
    };
    let mut tap = AnswerRecorder::new(
        record,
        &response,
        ticket.seen,
        ticket.content_length,
        ticket.retry,
        &ctx.settings,
    );
    match whole {
        Some(bytes) => {
            tap.chunk(&bytes);
            tap.finish(End::Ended).await;
            response
        }
        None => {
            let length = crate::receipt::content_length(response.headers());
            response.map(|body| body.recorded(tap, length))
        }
    }
}

/// A failure of ours: the payment goes back. The handler's own error answer (a 5xx) is
/// passed on; otherwise the layer says what happened.
async fn fail<ResBody>(
    ctx: &Ctx,
    status: StatusCode,
    detail: Option<&'static str>,
    handler: Option<Response<ResBody>>,
    ticket: Ticket,
) -> Reply<ResBody>
where
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (mint_url, unit) = (&ctx.settings.mint_url, &ticket.unit);
    let handler = handler.map(|response| response.map(ResponseBody::inner));
    let answer = |handler: Option<Reply<ResBody>>, consequence: &str| {
        handler.unwrap_or_else(|| failure(status, detail, consequence))
    };
    // A rerun that failed after an earlier run answered: the payment stands for that answer
    // (no refund for a retry), and the run may be retried again.
    let served_before = match &ticket.record {
        Some(record) => record.data().await.run.is_some_and(|run| run.served),
        None => false,
    };
    let payer = if served_before {
        &Payer::Pass
    } else {
        &ticket.payer
    };
    let mut response = match payer {
        Payer::Token => match refund(ctx, &ticket).await {
            Some(back) => {
                let mut response =
                    answer(handler, "the payment is refunded in the X-Cashu header");
                attach_token(&mut response, mint_url, unit, back);
                response
            }
            None => failure(
                StatusCode::SERVICE_UNAVAILABLE,
                detail.or(Some("the request failed")),
                "the refund could not be recorded just now: repeat the request in a minute to get it",
            ),
        },
        Payer::Session { sid, balance } => {
            let record = ticket.record.as_deref();
            let balance = match credit(ctx, sid, ticket.back(), ticket.kept, record, true).await {
                true => balance.saturating_add(ticket.kept),
                false => *balance,
            };
            let mut response = answer(handler, "the price went back to the session");
            attach_balance(&mut response, balance, &unit.to_string());
            response
        }
        Payer::Pass => {
            // Nothing to give back: the pass (or the earlier answer) stands, and the retry
            // may run again.
            if let Some(record) = &ticket.record {
                let at = coinslot_mint::unix_now();
                let answered = |d: &mut ReceiptData| {
                    if let Some(run) = d.run.as_mut() {
                        run.state = RunState::Answered { at, stored: false };
                    }
                };
                if let Err(err) = record.update(answered, &[], None, None).await {
                    tracing::warn!(error = %err, "could not record a failed run");
                }
            }
            let consequence = if served_before {
                "the payment stands for the answer an earlier run gave; repeat the request to run it again"
            } else {
                "the pass stays valid"
            };
            answer(handler, consequence)
        }
    };
    extend(response.headers_mut(), &ticket.headers);
    response
}

/// The answer to a failure: the layer's own error when the handler gave none (it failed,
/// panicked or timed out), else a Cashu error with the handler's status.
fn failure<B>(status: StatusCode, detail: Option<&str>, consequence: &str) -> Reply<B> {
    let detail = detail.unwrap_or("the handler failed");
    Rejection::new(
        status,
        ErrorCode::Generic,
        format!("{detail}; {consequence}"),
    )
    .into_response()
}

fn extend(headers: &mut HeaderMap, extra: &HeaderMap) {
    for (name, value) in extra {
        headers.insert(name, value.clone());
    }
}

/// A token payment's proofs to give back with a success: its change, and for a metered
/// price the unused part of the reservation, made and recorded once.
async fn given_back(ctx: &Ctx, record: &RunHandle, ticket: &Ticket, charge: u64) -> Vec<Proof> {
    given_back_in(ctx, record, ticket.back(), ticket.metered, charge).await
}

/// Where value given back is counted: its unit, and the route that had kept it.
#[derive(Clone, Copy)]
struct Back<'a> {
    unit: &'a CurrencyUnit,
    route: &'a Option<Arc<str>>,
}

impl Ticket {
    fn back(&self) -> Back<'_> {
        Back {
            unit: &self.unit,
            route: &self.route,
        }
    }
}

impl Settlement {
    fn back(&self) -> Back<'_> {
        Back {
            unit: &self.unit,
            route: &self.route,
        }
    }
}

async fn given_back_in(
    ctx: &Ctx,
    record: &RunHandle,
    back_to: Back<'_>,
    metered: bool,
    charge: u64,
) -> Vec<Proof> {
    let unit = back_to.unit;
    let data = record.data().await;
    let mut back = data.change.clone();
    if !metered {
        return back;
    }
    if let Some(settled) = &data.settled {
        back.extend(settled.iter().cloned());
        return back;
    }
    let unused = data.kept.saturating_sub(charge);
    let proofs = make_proofs(ctx, unit, unused).await;
    let made = proofs.clone();
    match record
        .update(|d| d.settled = Some(made), &proofs, None, None)
        .await
    {
        Ok(_) => {
            record_refund(ctx, back_to, &proofs, false);
            back.extend(proofs);
        }
        // Not recorded, so not handed out: the receipt still owes it.
        Err(err) => tracing::error!(error = %err, "could not record a metered settlement"),
    }
    back
}

/// Refunds a failed token run, recorded once: everything it gave back, refund included.
/// `None` when the refund could not be recorded (a retry finds the run and refunds it).
async fn refund(ctx: &Ctx, ticket: &Ticket) -> Option<Vec<Proof>> {
    let record = ticket.record.as_deref()?;
    let data = record.data().await;
    let owed = data.owed();
    let proofs = make_proofs(ctx, &ticket.unit, owed).await;
    let made = proofs.clone();
    let written = record
        .update(
            |d| {
                d.refund = Some(made);
                if let Some(run) = d.run.as_mut() {
                    run.state = RunState::Failed;
                }
            },
            &proofs,
            None,
            None,
        )
        .await;
    match written {
        Ok(data) => {
            record_refund(ctx, ticket.back(), &proofs, true);
            tracing::info!(amount = owed, unit = %ticket.unit, "refunded a failed paid request");
            Some(data.given_back())
        }
        Err(err) => {
            tracing::error!(error = %err, "could not record a refund");
            None
        }
    }
}

/// Credits `amount` back to a session (recorded with its receipt, when it has one, so it
/// happens once; `failed` marks the run failed). Whether it was credited.
async fn credit(
    ctx: &Ctx,
    sid: &str,
    back: Back<'_>,
    amount: u64,
    record: Option<&RunHandle>,
    failed: bool,
) -> bool {
    let unit = back.unit;
    let account = AccountWrite::Credit {
        id: sid,
        unit,
        amount,
    };
    let credited = match record {
        Some(record) => record
            .update(
                |d| {
                    d.settled = Some(Vec::new());
                    if failed {
                        if let Some(run) = d.run.as_mut() {
                            run.state = RunState::Failed;
                        }
                    }
                },
                &[],
                None,
                Some(account),
            )
            .await
            .map(|_| ()),
        None => ctx.mint().credit_account(sid, unit, amount, None).await,
    };
    match credited {
        Ok(()) => {
            ctx.mint().record(Event::Refunded {
                unit: unit.clone(),
                amount,
                failed,
                route: back.route.clone(),
            });
            true
        }
        Err(err) => {
            tracing::error!(error = %err, amount, "could not credit a session back");
            false
        }
    }
}

fn record_refund(ctx: &Ctx, back: Back<'_>, proofs: &[Proof], failed: bool) {
    let amount: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
    if amount > 0 {
        ctx.mint().record(Event::Refunded {
            unit: back.unit.clone(),
            amount,
            failed,
            route: back.route.clone(),
        });
    }
}

async fn make_proofs(ctx: &Ctx, unit: &CurrencyUnit, amount: u64) -> Vec<Proof> {
    match ctx.mint().make_proofs(unit, amount).await {
        Ok(proofs) => proofs,
        Err(err) => {
            tracing::error!(error = %err, amount, unit = %unit, "could not make proofs to give back");
            Vec::new()
        }
    }
}

/// The actual cost a metered handler reported (a [`Charge`], or a [`Meter`] charged by an
/// answer read whole), capped at the reservation.
fn charge_of<B>(response: &Response<B>, reserved: u64) -> u64 {
    let metered = || {
        let meter = response.extensions().get::<Meter>()?;
        meter.cost().or(meter.fallback_amount()).map(Charge)
    };
    match response
        .extensions()
        .get::<Charge>()
        .copied()
        .or_else(metered)
        .as_ref()
    {
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

/// A session debit whose request has not settled. If the request is dropped first (the
/// client went away, the server is shutting down), the debit goes back to the session.
/// Recorded runs need none: they are not dropped with the request.
struct DebitGuard {
    ctx: Ctx,
    sid: String,
    unit: CurrencyUnit,
    amount: u64,
    armed: bool,
}

impl DebitGuard {
    fn arm(ctx: &Ctx, ticket: &Ticket) -> Option<Self> {
        match (&ticket.payer, &ticket.record) {
            (Payer::Session { sid, .. }, None) => Some(Self {
                ctx: ctx.clone(),
                sid: sid.clone(),
                unit: ticket.unit.clone(),
                amount: ticket.kept,
                armed: true,
            }),
            _ => None,
        }
    }
}

trait Disarm {
    fn disarm(self);
}

impl Disarm for Option<DebitGuard> {
    fn disarm(self) {
        if let Some(mut guard) = self {
            guard.armed = false;
        }
    }
}

impl Drop for DebitGuard {
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
        let mint = self.ctx.mint().clone();
        let (sid, unit, amount) = (self.sid.clone(), self.unit.clone(), self.amount);
        runtime.spawn(async move {
            match mint.credit_account(&sid, &unit, amount, None).await {
                Ok(()) => tracing::info!(amount, "request dropped before it finished: debit returned"),
                Err(err) => tracing::error!(error = %err, amount, "could not return a dropped request's debit"),
            }
        });
    }
}

pub(crate) enum Outcome<B> {
    /// The handler's answer, its body as the handler gives it.
    Served(Response<B>),
    /// The handler's answer read whole (see `whole`).
    Whole(Response<Bytes>),
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

/// How a retry of a spent payment was answered.
pub(crate) enum Retried<B> {
    /// With its stored answer, or the answer of a run again.
    Answer(Reply<B>),
    /// Refused, with proofs to give back (a refund) when there are any.
    Refused {
        rejection: Rejection,
        back: Option<(CurrencyUnit, Vec<Proof>)>,
    },
}

impl<B> Retried<B> {
    fn refused(rejection: Rejection) -> Self {
        Self::Refused {
            rejection,
            back: None,
        }
    }

    /// The answer in the NUT-24 way: a refusal is a Cashu error, a refund in `X-Cashu`.
    pub fn into_response(self, ctx: &Ctx) -> Reply<B> {
        match self {
            Retried::Answer(reply) => reply,
            Retried::Refused { rejection, back } => {
                let mut response = rejection.into_response();
                if let Some((unit, proofs)) = back {
                    attach_token(&mut response, &ctx.settings.mint_url, &unit, proofs);
                }
                response
            }
        }
    }
}

/// A payment whose receipt is at `key` came again: answered by its receipt's [`Verdict`].
/// `success_headers` go on the answer of a run again (a `Payment-Receipt`).
pub(crate) async fn retry<S, ReqBody, ResBody>(
    ctx: &Ctx,
    inner: S,
    request: Request<RequestBody<ReqBody>>,
    key: [u8; 32],
    success_headers: HeaderMap,
) -> Retried<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<crate::body::BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let settings = &ctx.settings;
    let (parts, body) = request.into_parts();
    let head = request_head(&parts);
    // The route the first run was counted under (retries are priced as it was).
    let route = settings.pricing.price(&parts).and_then(|price| price.label);
    let mut body = Some(body);
    let mut read: Option<Bytes> = None;
    // A lost race (another retry, another instance) is read again.
    for _ in 0..4 {
        let record = match ctx.mint().receipt(&key).await {
            Ok(Some(record)) => record,
            Ok(None) => return Retried::refused(Rejection::spent("token already spent")),
            Err(err) => return Retried::refused(Rejection::mint(&err)),
        };
        let Some(data) = ReceiptData::decode(&record.data) else {
            return Retried::refused(Rejection::spent("token already spent"));
        };
        let Some(bound) = data.run.clone() else {
            return Retried::refused(Rejection::spent("token already spent"));
        };
        let now = coinslot_mint::unix_now();
        let here = Here {
            instance: ctx.shared.instance,
            shared_store: ctx.shared.shared_store,
            now,
        };
        let other_body =
            || Rejection::spent("token already spent (it paid for a request with another body)");
        match verdict(&data, &head, &parts.method, here, settings) {
            Verdict::Pending => return Retried::refused(Rejection::pending()),
            Verdict::Spent(why) => return Retried::refused(Rejection::spent(why)),
            Verdict::Refunded => return refunded(&data, &bound),
            Verdict::Refund => {
                match refund_abandoned(ctx, &key, &record, data, &bound, &route).await {
                    Err(Error::ReceiptChanged) => continue,
                    Err(err) => return Retried::refused(Rejection::mint(&err)),
                    Ok(refused) => return refused,
                }
            }
            Verdict::Stored => {
                if surely_other_body(&bound.body, &parts.headers) {
                    return Retried::refused(other_body());
                }
                let digest = match body.take() {
                    Some(body) => digest_of(body).await,
                    None => read.as_deref().map(BodyDigest::of),
                };
                if !same_body(&bound.body, &parts.headers, digest) {
                    return Retried::refused(other_body());
                }
                let answer = match ctx.mint().answer(&key, now).await {
                    Ok(answer) => answer.and_then(|bytes| Answer::decode(&bytes)),
                    Err(err) => return Retried::refused(Rejection::mint(&err)),
                };
                return match answer {
                    Some(answer) => {
                        tracing::info!("paid request repeated: answered with the stored answer");
                        Retried::Answer(answer.into_response())
                    }
                    None => Retried::refused(Rejection::spent(
                        "token already spent (its retry window is over)",
                    )),
                };
            }
            Verdict::Rerun => {
                if surely_other_body(&bound.body, &parts.headers) {
                    return Retried::refused(other_body());
                }
                if let Some(body) = body.take() {
                    match read_body(body, settings.payment_body_limit).await {
                        ReadBody::Read(bytes) => read = Some(bytes),
                        ReadBody::TooLong => {
                            return Retried::refused(Rejection::spent(
                                "token already spent (the request body is too long to check a rerun against)",
                            ))
                        }
                        ReadBody::Failed => {
                            return Retried::refused(Rejection::bad_request(
                                "the request body could not be read",
                            ))
                        }
                    }
                }
                let bytes = read.clone().unwrap_or_default();
                if !same_body(&bound.body, &parts.headers, Some(BodyDigest::of(&bytes))) {
                    return Retried::refused(other_body());
                }
                let taken = match take_over(ctx, &key, &record, data, &bound).await {
                    Ok(taken) => taken,
                    Err(Error::ReceiptChanged) => continue,
                    Err(err) => return Retried::refused(Rejection::mint(&err)),
                };
                let (body, seen) = RequestBody::read(bytes);
                let length = crate::receipt::content_length(&parts.headers);
                let request = Request::from_parts(parts, body);
                let rerun = rerun_ticket(ctx, taken, seen, length, success_headers, route);
                let ticket = match rerun.await {
                    Ok(ticket) => ticket,
                    Err(rejection) => return Retried::refused(rejection),
                };
                tracing::info!("paid request repeated: run again, not charged again");
                return Retried::Answer(run(ctx.clone(), inner, request, ticket).await);
            }
        }
    }
    Retried::refused(Rejection::pending())
}

/// Reads a retry's body to its end, for its digest; `None` if it failed.
async fn digest_of<B>(body: B) -> Option<BodyDigest>
where
    B: http_body::Body,
{
    let mut body = std::pin::pin!(body);
    let mut hash = sha2::Sha256::default();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf;
            use sha2::Digest;
            while data.has_remaining() {
                let chunk = data.chunk();
                hash.update(chunk);
                len += chunk.len() as u64;
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    use sha2::Digest;
    Some(BodyDigest {
        sha256: hash.finalize().into(),
        len,
    })
}

/// The refusal of a retry of a run that failed and was refunded, with the refund again.
fn refunded<B>(data: &ReceiptData, run: &RunRecord) -> Retried<B> {
    match (run.payer, data.unit()) {
        (PayerKind::Session, _) | (_, None) => Retried::refused(Rejection::spent(
            "token already spent: the request it paid for failed, and the price went back to the session",
        )),
        (_, Some(unit)) => Retried::Refused {
            rejection: Rejection::spent(
                "token already spent: the request it paid for failed and was refunded; the refund is in the X-Cashu header",
            ),
            back: Some((unit, data.given_back())),
        },
    }
}

/// Refunds a run whose lease ran out with no answer (its instance is gone) and that may not
/// run again, once: the write is guarded by the version read.
async fn refund_abandoned<B>(
    ctx: &Ctx,
    key: &[u8; 32],
    record: &coinslot_mint::ReceiptRecord,
    mut data: ReceiptData,
    run: &RunRecord,
    route: &Option<Arc<str>>,
) -> Result<Retried<B>, Error> {
    let unit = data
        .unit()
        .ok_or_else(|| Error::Storage("a receipt names an unknown unit".into()))?;
    let owed = data.owed();
    if let Some(state) = data.run.as_mut() {
        state.state = RunState::Failed;
    }
    let (proofs, account) = match (run.payer, data.session.clone()) {
        (PayerKind::Session, Some(sid)) => (Vec::new(), Some(sid)),
        _ => (ctx.mint().make_proofs(&unit, owed).await?, None),
    };
    if account.is_none() {
        data.refund = Some(proofs.clone());
    }
    let encoded = data.encode();
    let write = ReceiptWrite {
        key,
        created_at: record.created_at,
        data: &encoded,
        guard: ReceiptGuard::Version(record.version),
    };
    let credit = account.as_deref().map(|id| AccountWrite::Credit {
        id,
        unit: &unit,
        amount: data.kept,
    });
    ctx.mint()
        .write_receipt(write, &proofs, None, credit)
        .await?;
    tracing::warn!(amount = owed, unit = %unit, "a paid run never answered: refunded on its retry");
    ctx.mint().record(Event::Refunded {
        unit: unit.clone(),
        amount: if account.is_some() { data.kept } else { owed },
        failed: true,
        route: route.clone(),
    });
    Ok(refunded(&data, run))
}

/// Claims a run again for a rerun: running, with a fresh lease, one more rerun counted.
async fn take_over(
    ctx: &Ctx,
    key: &[u8; 32],
    record: &coinslot_mint::ReceiptRecord,
    mut data: ReceiptData,
    run: &RunRecord,
) -> Result<Arc<RunHandle>, Error> {
    let lease = ctx.settings.run_lease;
    if let Some(state) = data.run.as_mut() {
        state.state = RunState::Running {
            until: coinslot_mint::unix_now() + lease.as_secs().max(1),
            owner: ctx.shared.instance,
        };
        state.reruns = run.reruns.saturating_add(1);
    }
    let encoded = data.encode();
    let write = ReceiptWrite {
        key,
        created_at: record.created_at,
        data: &encoded,
        guard: ReceiptGuard::Version(record.version),
    };
    ctx.mint().write_receipt(write, &[], None, None).await?;
    Ok(RunHandle::new(
        ctx.mint().clone(),
        *key,
        record.created_at,
        record.version + 1,
        data,
        lease,
    ))
}

/// The ticket of a run again: the same payer, told it is a rerun (`replay`).
async fn rerun_ticket(
    ctx: &Ctx,
    handle: Arc<RunHandle>,
    seen: Arc<BodySeen>,
    content_length: Option<u64>,
    success_headers: HeaderMap,
    route: Option<Arc<str>>,
) -> Result<Ticket, Rejection> {
    let data = handle.data().await;
    let unit = data
        .unit()
        .ok_or_else(|| Rejection::spent("token already spent"))?;
    let run = data
        .run
        .clone()
        .ok_or_else(|| Rejection::spent("token already spent"))?;
    let mut headers = HeaderMap::new();
    let mut pass = None;
    let payer = match run.payer {
        PayerKind::Token => Payer::Token,
        PayerKind::Session => {
            let sid = data.session.clone().unwrap_or_default();
            let balance = match ctx.mint().account(&sid).await {
                Ok(account) => account.map_or(0, |a| a.balance),
                Err(err) => return Err(Rejection::mint(&err)),
            };
            Payer::Session { sid, balance }
        }
        PayerKind::Pass => {
            let pid = data.session.clone().unwrap_or_default();
            let record = match ctx.mint().pass(&pid).await {
                Ok(Some(record)) if !record.revoked => record,
                Ok(_) => {
                    return Err(Rejection::unauthorized(
                        "the pass this payment bought was revoked",
                    ))
                }
                Err(err) => return Err(Rejection::mint(&err)),
            };
            let valid = ValidPass::from(record);
            let credential = ctx
                .shared
                .pass_keys
                .issue(
                    &valid.id,
                    &valid.scope,
                    coinslot_mint::unix_now(),
                    valid.expires_at,
                )
                .ok();
            nut24::attach_pass(&mut headers, &valid, credential.as_deref());
            pass = Some(valid);
            Payer::Pass
        }
    };
    let paid = (run.payer != PayerKind::Pass).then(|| Paid {
        amount: data.kept,
        unit: unit.clone(),
        keyset_id: None,
        session: (run.payer == PayerKind::Session)
            .then(|| data.session.clone())
            .flatten(),
        metered: data.metered,
        replay: true,
        balance: None,
    });
    Ok(Ticket {
        paid,
        pass,
        unit,
        kept: data.kept,
        metered: data.metered,
        payer,
        key_account: None,
        record: Some(handle),
        retry: run.retry,
        headers,
        success_headers,
        seen,
        content_length,
        route,
    })
}
