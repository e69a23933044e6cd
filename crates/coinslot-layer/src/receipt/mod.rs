//! What the layer records about each payment in the mint's store, in the same write as the
//! spend: the receipt (what was paid, for which request, and where its run stands), and the
//! answer that run gave, kept for retries.
//!
//! One payment buys one run. The receipt is written with the spend, saying the run is
//! **running** until a lease runs out; the run renews the lease while it works and, when
//! the answer has gone out, writes it down as **answered**, with the answer itself when it
//! fits ([`Settings::max_stored_answer`]). Every write is guarded by the receipt's version,
//! so of two writers that read the same receipt (two retries, two instances) one wins and
//! the other reads again. A retry of the same payment is matched against the request it
//! paid for (method, path, query, `Idempotency-Key`, and the body's digest, taken as it
//! streamed through) and then, by [`verdict`]:
//! - running → `11002`, whichever instance runs it;
//! - answered and kept → the stored answer, byte for byte, nothing runs;
//! - answered, not kept (too big, or a route that keeps none) → runs again only where the
//!   route's [`Retry`] rule allows it (`GET`/`HEAD` by default), else `11001`;
//! - the run failed → `11001` with the refund it recorded;
//! - the lease ran out with no answer (the instance died) → runs again where allowed, else
//!   the payment is refunded, once.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::store::AccountWrite;
use coinslot_mint::{AnswerWrite, Error, Mint, ReceiptGuard, ReceiptWrite};
use futures::future::BoxFuture;
use http::header::{HeaderName, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::body::{BodyDigest, BodySeen, End, RequestBody, Tap};
use crate::settings::Settings;
use crate::wire::nut24::IDEMPOTENCY_KEY;
use crate::wire::payment::parse_content_digest;
use crate::{ResponseBody, Retry};

mod codec;

/// What a receipt is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiptKind {
    /// A payment for a request (a token, a credential, or a session debit).
    Request,
    /// A token was deposited into a session.
    Deposit,
    /// A session was closed and paid out.
    Close,
    /// A token bought time on a pass (`session` holds the pass id).
    Pass,
}

/// The receipt's data (stored in the compact layout of `codec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReceiptData {
    pub kind: ReceiptKind,
    /// The session that paid or was paid into, or the pass bought.
    pub session: Option<String>,
    pub unit: String,
    /// Charged (or reserved, if metered), after fees.
    pub kept: u64,
    pub fee: u64,
    pub metered: bool,
    /// Proofs given back with the spend (change) or the payout of a close.
    pub change: Vec<Proof>,
    /// The unused part of a metered reservation, once settled.
    pub settled: Option<Vec<Proof>>,
    /// The refund after a failure.
    pub refund: Option<Vec<Proof>>,
    /// The run this payment bought, when it bought one.
    pub run: Option<RunRecord>,
}

impl ReceiptData {
    /// An empty receipt of `kind` in `unit`.
    pub fn new(kind: ReceiptKind, unit: String) -> Self {
        Self {
            kind,
            session: None,
            unit,
            kept: 0,
            fee: 0,
            metered: false,
            change: Vec::new(),
            settled: None,
            refund: None,
            run: None,
        }
    }

    /// The stored bytes (see `codec`).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        codec::decode(bytes)
    }

    /// The unit, parsed.
    pub fn unit(&self) -> Option<CurrencyUnit> {
        CurrencyUnit::from_str(&self.unit).ok()
    }

    /// Everything this payment gave back so far: change, settlement and refund.
    pub fn given_back(&self) -> Vec<Proof> {
        let mut back = self.change.clone();
        back.extend(self.settled.iter().flatten().cloned());
        back.extend(self.refund.iter().flatten().cloned());
        back
    }

    /// What a refund still owes: the price and the fee, less what a settlement returned.
    pub fn owed(&self) -> u64 {
        let settled: u64 = self
            .settled
            .iter()
            .flatten()
            .map(|p| u64::from(p.amount))
            .sum();
        self.kept.saturating_add(self.fee).saturating_sub(settled)
    }
}

/// Who paid for a run, so where value goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayerKind {
    /// Proofs: change and refunds come back as proofs.
    Token,
    /// A prepaid session (`session` in the receipt): value goes back to its balance.
    Session,
    /// A pass the payment bought (`session` in the receipt): nothing comes back, the pass
    /// stays; a retry is opened by the pass.
    Pass,
}

/// The run a payment bought: the request, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRecord {
    /// [`request_head`] of the request paid for.
    pub request: [u8; 32],
    /// Its body, as far as it is known.
    pub body: BodyBinding,
    /// How a retry is served.
    pub retry: Retry,
    pub payer: PayerKind,
    pub state: RunState,
    /// Times a retry ran it again.
    pub reruns: u32,
    /// Whether a run of it answered (a rerun that fails then refunds nothing).
    pub served: bool,
}

/// The body a run was paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyBinding {
    /// Not known yet (the run is still reading it).
    Pending,
    /// Read to its end: its SHA-256 (hex) and length.
    Digest { sha256: [u8; 32], len: u64 },
    /// The handler answered without reading it to the end: only its declared length.
    Unread { length: Option<u64> },
}

impl BodyBinding {
    /// What is known of a body once its run answered.
    fn settle(seen: &BodySeen, content_length: Option<u64>) -> Self {
        match seen.digest() {
            Some(digest) => BodyBinding::Digest {
                sha256: digest.sha256,
                len: digest.len,
            },
            None => BodyBinding::Unread {
                length: content_length,
            },
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    /// Running in the instance `owner`; its lease runs out at `until` (Unix seconds) unless
    /// renewed.
    Running { until: u64, owner: u64 },
    /// The answer went out at `at`; `stored` when it is kept for retries.
    Answered { at: u64, stored: bool },
    /// The run failed and the payment went back (`refund`, or the session).
    Failed,
    /// The answer's body failed part way.
    Broken { at: u64 },
}

/// What makes two requests the same request, besides their bodies: method, path and
/// query, and `Idempotency-Key` (SHA-256).
pub(crate) fn request_head(parts: &http::request::Parts) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update([0]);
    hash.update(
        parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/"),
    );
    hash.update([0]);
    if let Some(key) = parts.headers.get(IDEMPOTENCY_KEY) {
        hash.update(key.as_bytes());
    }
    hash.finalize().into()
}

/// The declared `Content-Length` of a request.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A paid request's body, hashed on its way to the handler (checked against its
/// `Content-Digest`, if it has one).
pub(crate) fn hash_body<B: http_body::Body>(
    request: Request<B>,
) -> (Request<RequestBody<B>>, Arc<BodySeen>) {
    let (parts, body) = request.into_parts();
    let claimed = parts
        .headers
        .get("content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_digest);
    let length = content_length(&parts.headers);
    let (body, seen) = RequestBody::hashed(body, claimed, length);
    (Request::from_parts(parts, body), seen)
}

/// Whether a retry's body is the body its payment's run saw: a retry of another body is
/// another request.
pub(crate) fn same_body(
    binding: &BodyBinding,
    headers: &HeaderMap,
    digest: Option<BodyDigest>,
) -> bool {
    match binding {
        BodyBinding::Pending => true,
        BodyBinding::Digest { sha256, len } => {
            digest.is_some_and(|d| d.sha256 == *sha256 && d.len == *len)
        }
        BodyBinding::Unread { length } => content_length(headers) == *length,
    }
}

/// Whether a retry's body cannot be the one bound (its declared length differs), so it
/// need not be read.
pub(crate) fn surely_other_body(binding: &BodyBinding, headers: &HeaderMap) -> bool {
    match (binding, content_length(headers)) {
        (BodyBinding::Digest { len, .. }, Some(declared)) => *len != declared,
        _ => false,
    }
}

/// What to do with a retry of a paid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The run has not finished: `11002`.
    Pending,
    /// Send the stored answer (once the body matches).
    Stored,
    /// Run the handler again (once the body matches), without a charge.
    Rerun,
    /// Refund now: the run never answered and may not run again.
    Refund,
    /// The run failed and was refunded: say so again, with the refund.
    Refunded,
    /// Refused as spent, for this reason.
    Spent(&'static str),
}

/// Who is asking: this instance, and whether others share its store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here {
    pub instance: u64,
    pub shared_store: bool,
    pub now: u64,
}

impl Here {
    /// Whether a run recorded as running is over without an answer: its lease ran out, or
    /// (on a store no other process writes) an earlier process of this one recorded it.
    fn abandoned(&self, until: u64, owner: u64) -> bool {
        until <= self.now || (!self.shared_store && owner != self.instance)
    }
}

/// The [`Verdict`] on a retry with `head` and `method` of the run recorded in `data`.
pub(crate) fn verdict(
    data: &ReceiptData,
    head: &[u8; 32],
    method: &Method,
    here: Here,
    settings: &Settings,
) -> Verdict {
    let now = here.now;
    let Some(run) = &data.run else {
        return Verdict::Spent("token already spent");
    };
    if run.request != *head {
        return Verdict::Spent("token already spent (it paid for a different request)");
    }
    // A pass bought time, not a run: the pass opens its retries.
    let may_rerun = run.payer == PayerKind::Pass || run.retry.may_rerun(method);
    let reruns_left = run.payer == PayerKind::Pass || run.reruns < settings.max_reruns;
    match run.state {
        RunState::Running { until, owner } if !here.abandoned(until, owner) => Verdict::Pending,
        RunState::Running { .. } | RunState::Broken { .. } => match (may_rerun, reruns_left) {
            (true, true) => Verdict::Rerun,
            (true, false) => {
                Verdict::Spent("token already spent (the reruns this payment allowed are used up)")
            }
            (false, _) => Verdict::Refund,
        },
        RunState::Failed => Verdict::Refunded,
        RunState::Answered { at, .. }
            if now > at.saturating_add(settings.retry_window.as_secs()) =>
        {
            Verdict::Spent("token already spent (its retry window is over)")
        }
        RunState::Answered { stored: true, .. } => Verdict::Stored,
        RunState::Answered { stored: false, .. } => match (may_rerun, reruns_left) {
            (true, true) => Verdict::Rerun,
            (true, false) => {
                Verdict::Spent("token already spent (the reruns this payment allowed are used up)")
            }
            (false, _) => Verdict::Spent(
                "token already spent (its answer was not kept, and this request is not run twice)",
            ),
        },
    }
}

/// A paid answer as kept: status, the headers a client needs again, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Headers that belong to one connection or one sending, not to the answer.
fn kept_header(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "date"
    )
}

const ANSWER_FORMAT: u8 = 1;

impl Answer {
    /// `1`, status, header count, then each name and value length-prefixed, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.body.len());
        out.put_u8(ANSWER_FORMAT);
        out.put_u16(self.status.as_u16());
        let headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(name, _)| kept_header(name))
            .collect();
        out.put_u32(headers.len() as u32);
        for (name, value) in headers {
            out.put_u16(name.as_str().len() as u16);
            out.put_slice(name.as_str().as_bytes());
            out.put_u32(value.len() as u32);
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut buf = bytes;
        let take = |buf: &mut &[u8], n: usize| -> Option<Vec<u8>> {
            (buf.remaining() >= n).then(|| buf.copy_to_bytes(n).to_vec())
        };
        if buf.remaining() < 7 || buf.get_u8() != ANSWER_FORMAT {
            return None;
        }
        let status = StatusCode::from_u16(buf.get_u16()).ok()?;
        let count = buf.get_u32();
        let mut headers = HeaderMap::new();
        for _ in 0..count {
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::from(buf.get_u16());
            let name = HeaderName::from_bytes(&take(&mut buf, len)?).ok()?;
            if buf.remaining() < 4 {
                return None;
            }
            let len = buf.get_u32() as usize;
            let value = HeaderValue::from_bytes(&take(&mut buf, len)?).ok()?;
            headers.append(name, value);
        }
        Some(Self {
            status,
            headers,
            body: Bytes::copy_from_slice(buf),
        })
    }

    /// The answer as a response again.
    pub fn into_response<B>(self) -> Response<ResponseBody<B>> {
        let mut response = Response::new(ResponseBody::own(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// A payment's receipt while its run goes on: every write is guarded by the version the
/// last one left, so a writer that lost a race (a retry took the run over) writes nothing.
pub(crate) struct RunHandle {
    mint: Mint,
    key: [u8; 32],
    created_at: u64,
    lease: Duration,
    current: tokio::sync::Mutex<Current>,
    /// Unix seconds at which the lease is renewed next.
    renew_at: AtomicU64,
    renewing: AtomicBool,
}

struct Current {
    version: u64,
    data: ReceiptData,
}

impl RunHandle {
    /// The handle of the receipt at `key`, as `version` left it.
    pub fn new(
        mint: Mint,
        key: [u8; 32],
        created_at: u64,
        version: u64,
        data: ReceiptData,
        lease: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            mint,
            key,
            created_at,
            lease,
            current: tokio::sync::Mutex::new(Current { version, data }),
            renew_at: AtomicU64::new(coinslot_mint::unix_now() + renew_after(lease)),
            renewing: AtomicBool::new(false),
        })
    }

    /// The receipt as last written.
    pub async fn data(&self) -> ReceiptData {
        self.current.lock().await.data.clone()
    }

    /// Changes the receipt and writes it, durably, with `made` (proofs handed out, counted
    /// as issued), an answer, and an account credit or debit, all or nothing. Fails with
    /// [`Error::ReceiptChanged`] when someone else wrote the receipt since.
    pub async fn update(
        &self,
        change: impl FnOnce(&mut ReceiptData),
        made: &[Proof],
        answer: Option<(&[u8], u64)>,
        account: Option<AccountWrite<'_>>,
    ) -> Result<ReceiptData, Error> {
        self.write(change, made, answer, account, false).await
    }

    /// Like [`RunHandle::update`] for what moves no value (the lease, the answer given),
    /// without waiting for the disk: lost only in a crash within about a second of it, or
    /// before the next durable write of this receipt (then the run looks abandoned, and its
    /// retry reruns or refunds: never a second run of a payment that was answered and kept).
    pub async fn note(
        &self,
        change: impl FnOnce(&mut ReceiptData),
        answer: Option<(&[u8], u64)>,
    ) -> Result<ReceiptData, Error> {
        self.write(change, &[], answer, None, true).await
    }

    async fn write(
        &self,
        change: impl FnOnce(&mut ReceiptData),
        made: &[Proof],
        answer: Option<(&[u8], u64)>,
        account: Option<AccountWrite<'_>>,
        lazy: bool,
    ) -> Result<ReceiptData, Error> {
        let mut current = self.current.lock().await;
        let mut data = current.data.clone();
        change(&mut data);
        let encoded = data.encode();
        let write = ReceiptWrite {
            key: &self.key,
            created_at: self.created_at,
            data: &encoded,
            guard: ReceiptGuard::Version(current.version),
        };
        let answer = answer.map(|(bytes, expires_at)| AnswerWrite {
            key: &self.key,
            expires_at,
            data: bytes,
        });
        if lazy {
            self.mint.note_receipt(write, answer).await?;
        } else {
            self.mint
                .write_receipt(write, made, answer, account)
                .await?;
        }
        current.version += 1;
        current.data = data.clone();
        Ok(data)
    }

    /// Seconds until the lease should be renewed.
    pub fn until_renewal(&self) -> Duration {
        let at = self.renew_at.load(Ordering::Relaxed);
        Duration::from_secs(at.saturating_sub(coinslot_mint::unix_now()).max(1))
    }

    fn renew_due(&self) -> bool {
        coinslot_mint::unix_now() >= self.renew_at.load(Ordering::Relaxed)
    }

    /// Pushes the lease out: the run is alive.
    pub async fn renew(&self) {
        let until = coinslot_mint::unix_now() + self.lease.as_secs().max(1);
        let renewed = self
            .note(
                |data| {
                    if let Some(run) = data.run.as_mut() {
                        if let RunState::Running { owner, .. } = run.state {
                            run.state = RunState::Running { until, owner };
                        }
                    }
                },
                None,
            )
            .await;
        match renewed {
            Ok(_) => self.renew_at.store(
                coinslot_mint::unix_now() + renew_after(self.lease),
                Ordering::Relaxed,
            ),
            Err(err) => tracing::warn!(error = %err, "could not renew a paid run's lease"),
        }
    }
}

/// Renewed at half the lease.
fn renew_after(lease: Duration) -> u64 {
    (lease.as_secs() / 2).max(1)
}

/// The receipt of a run that starts now in `instance`: running, with its lease.
pub(crate) fn running(
    head: [u8; 32],
    retry: Retry,
    payer: PayerKind,
    settings: &Settings,
    instance: u64,
) -> RunRecord {
    RunRecord {
        request: head,
        body: BodyBinding::Pending,
        retry,
        payer,
        state: RunState::Running {
            until: coinslot_mint::unix_now() + settings.run_lease.as_secs().max(1),
            owner: instance,
        },
        reruns: 0,
        served: false,
    }
}

/// Watches a paid answer go out, keeps it (when its route keeps answers and it fits), and
/// writes down that the run answered, before the client gets the last of it.
pub(crate) struct AnswerRecorder {
    handle: Arc<RunHandle>,
    status: StatusCode,
    headers: HeaderMap,
    body: BytesMut,
    limit: usize,
    keep: bool,
    seen: Arc<BodySeen>,
    content_length: Option<u64>,
    window: Duration,
}

impl AnswerRecorder {
    /// A recorder for `response` (whose head is final), the answer to a request whose body
    /// `seen` watches.
    pub fn new<B>(
        handle: Arc<RunHandle>,
        response: &Response<B>,
        seen: Arc<BodySeen>,
        content_length: Option<u64>,
        retry: Retry,
        settings: &Settings,
    ) -> Box<Self> {
        Box::new(Self {
            handle,
            status: response.status(),
            headers: response.headers().clone(),
            body: BytesMut::new(),
            limit: settings.max_stored_answer,
            keep: retry.stores(),
            seen,
            content_length,
            window: settings.retry_window,
        })
    }
}

impl Tap for AnswerRecorder {
    fn chunk(&mut self, data: &[u8]) -> bool {
        if !self.keep {
            return true;
        }
        if self.body.len() + data.len() > self.limit {
            self.keep = false;
            self.body = BytesMut::new();
            return false;
        }
        self.body.extend_from_slice(data);
        true
    }

    fn trailers(&mut self) {
        self.keep = false;
    }

    fn tick(&mut self) {
        if self.handle.renew_due() && !self.handle.renewing.swap(true, Ordering::AcqRel) {
            let handle = Arc::clone(&self.handle);
            tokio::spawn(async move {
                handle.renew().await;
                handle.renewing.store(false, Ordering::Release);
            });
        }
    }

    fn finish(self: Box<Self>, end: End) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let now = coinslot_mint::unix_now();
            let binding = BodyBinding::settle(&self.seen, self.content_length);
            let stored = end == End::Ended && self.keep;
            let state = match end {
                End::Ended | End::Cut => RunState::Answered { at: now, stored },
                End::Failed => RunState::Broken { at: now },
            };
            let answer = stored.then(|| {
                Answer {
                    status: self.status,
                    headers: self.headers.clone(),
                    body: self.body.clone().freeze(),
                }
                .encode()
            });
            let expires_at = now.saturating_add(self.window.as_secs());
            let written = self
                .handle
                .note(
                    |data| {
                        if let Some(run) = data.run.as_mut() {
                            run.body = binding;
                            run.state = state;
                            run.served |= end != End::Failed;
                        }
                    },
                    answer.as_deref().map(|bytes| (bytes, expires_at)),
                )
                .await;
            match written {
                Ok(_) => tracing::debug!(stored, ?end, "paid answer recorded"),
                Err(err) => tracing::warn!(error = %err, "could not record a paid answer"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings() -> Settings {
        crate::layer::test_settings()
    }

    const HEAD: [u8; 32] = [1; 32];

    fn request_data(state: RunState, retry: Retry, payer: PayerKind) -> ReceiptData {
        let mut data = ReceiptData::new(ReceiptKind::Request, "sat".into());
        data.run = Some(RunRecord {
            request: HEAD,
            body: BodyBinding::Pending,
            retry,
            payer,
            state,
            reruns: 0,
            served: false,
        });
        data
    }

    #[test]
    fn verdicts_follow_the_state_of_the_run() {
        let s = settings();
        let now = 1_000_000;
        let here = Here {
            instance: 7,
            shared_store: true,
            now,
        };
        let get = Method::GET;
        let post = Method::POST;
        let check = |state, retry, method: &Method| {
            verdict(
                &request_data(state, retry, PayerKind::Token),
                &HEAD,
                method,
                here,
                &s,
            )
        };
        let running = RunState::Running {
            until: now + 5,
            owner: 8,
        };
        let abandoned = RunState::Running {
            until: now - 1,
            owner: 7,
        };
        let stored = RunState::Answered {
            at: now - 5,
            stored: true,
        };
        let unstored = RunState::Answered {
            at: now - 5,
            stored: false,
        };
        let old = RunState::Answered {
            at: now - 100_000,
            stored: true,
        };
        assert_eq!(check(running, Retry::Stored, &post), Verdict::Pending);
        assert_eq!(check(stored, Retry::Stored, &post), Verdict::Stored);
        assert_eq!(check(unstored, Retry::Stored, &get), Verdict::Rerun);
        assert!(matches!(
            check(unstored, Retry::Stored, &post),
            Verdict::Spent(_)
        ));
        assert_eq!(check(unstored, Retry::Rerun, &post), Verdict::Rerun);
        assert!(matches!(
            check(unstored, Retry::Never, &get),
            Verdict::Spent(_)
        ));
        assert!(matches!(check(old, Retry::Stored, &get), Verdict::Spent(_)));
        assert_eq!(check(abandoned, Retry::Stored, &post), Verdict::Refund);
        assert_eq!(check(abandoned, Retry::Stored, &get), Verdict::Rerun);
        // On a store of its own, a run another (earlier) process recorded is over at once;
        // on a shared one only when its lease runs out.
        let alone = Here {
            shared_store: false,
            ..here
        };
        let data = request_data(running, Retry::Stored, PayerKind::Token);
        assert_eq!(verdict(&data, &HEAD, &post, alone, &s), Verdict::Refund);
        let mine = RunState::Running {
            until: now + 5,
            owner: 7,
        };
        let data = request_data(mine, Retry::Stored, PayerKind::Token);
        assert_eq!(verdict(&data, &HEAD, &post, alone, &s), Verdict::Pending);
        assert_eq!(
            check(RunState::Failed, Retry::Stored, &get),
            Verdict::Refunded
        );
        assert!(matches!(
            verdict(
                &request_data(stored, Retry::Stored, PayerKind::Token),
                &[2; 32],
                &get,
                here,
                &s
            ),
            Verdict::Spent(_)
        ));
        // A pass bought time: an unkept answer is opened again, whatever the method.
        assert_eq!(
            verdict(
                &request_data(unstored, Retry::Stored, PayerKind::Pass),
                &HEAD,
                &post,
                here,
                &s
            ),
            Verdict::Rerun
        );
        // Reruns are limited.
        let mut data = request_data(unstored, Retry::Rerun, PayerKind::Token);
        data.run.as_mut().unwrap().reruns = s.max_reruns;
        assert!(matches!(
            verdict(&data, &HEAD, &post, here, &s),
            Verdict::Spent(_)
        ));
    }

    #[test]
    fn answers_round_trip_without_connection_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-cashu", HeaderValue::from_static("cashuBxyz"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        headers.insert("connection", HeaderValue::from_static("close"));
        let answer = Answer {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"hello"),
        };
        let again = Answer::decode(&answer.encode()).unwrap();
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body, answer.body);
        assert_eq!(again.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(again.headers["x-cashu"], "cashuBxyz");
        assert!(again.headers.get("content-length").is_none());
        assert!(again.headers.get("connection").is_none());
        assert!(Answer::decode(&answer.encode()[..5]).is_none());
        assert!(Answer::decode(b"").is_none());
    }

    #[test]
    fn requests_are_the_same_by_method_path_query_and_key() {
        let head = |method: &str, uri: &str, key: Option<&str>| {
            let mut builder = Request::builder().method(method).uri(uri);
            if let Some(key) = key {
                builder = builder.header("idempotency-key", key);
            }
            request_head(&builder.body(()).unwrap().into_parts().0)
        };
        let base = head("POST", "/v1/chat?x=1", None);
        assert_eq!(base, head("POST", "/v1/chat?x=1", None));
        assert_ne!(base, head("GET", "/v1/chat?x=1", None));
        assert_ne!(base, head("POST", "/v1/chat?x=2", None));
        assert_ne!(base, head("POST", "/v1/chat?x=1", Some("op-1")));
    }

    #[test]
    fn bodies_bind_by_digest_or_declared_length() {
        let digest = BodyDigest::of(b"abc");
        let bound = BodyBinding::Digest {
            sha256: digest.sha256,
            len: 3,
        };
        let mut headers = HeaderMap::new();
        assert!(same_body(&bound, &headers, Some(digest)));
        assert!(!same_body(&bound, &headers, Some(BodyDigest::of(b"abd"))));
        assert!(!same_body(&bound, &headers, None));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("4"));
        assert!(surely_other_body(&bound, &headers));
        let unread = BodyBinding::Unread { length: Some(4) };
        assert!(same_body(&unread, &headers, None));
        assert!(!same_body(
            &BodyBinding::Unread { length: None },
            &headers,
            None
        ));
    }
}
