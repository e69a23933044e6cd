//! The bodies the layer hands on: [`RequestBody`], what the inner service reads, and
//! [`ResponseBody`], what the client reads.
//!
//! A paid request's body is hashed as it streams to the handler (never buffered), so a
//! retry can be matched by content; a paid answer is copied as it streams to the client
//! (up to a limit), so a retry can be answered without running the handler again. What
//! each copy is for is the business of a [`Tap`]: this module only moves bytes.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;
use sha2::{Digest, Sha256};

/// The error of a [`RequestBody`]: the client's body failed, or did not match the
/// `Content-Digest` it came with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The digest of a request body read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyDigest {
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
    /// How many bytes.
    pub len: u64,
}

impl BodyDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            sha256: Sha256::digest(bytes).into(),
            len: bytes.len() as u64,
        }
    }
}

/// What the layer learned of a request body: its digest, once it was read to the end.
#[derive(Debug, Default)]
pub(crate) struct BodySeen(OnceLock<BodyDigest>);

impl BodySeen {
    /// The digest, if the body was read to its end.
    pub fn digest(&self) -> Option<BodyDigest> {
        self.0.get().copied()
    }

    fn set(&self, digest: BodyDigest) {
        let _ = self.0.set(digest);
    }
}

pin_project! {
    /// The request body the inner service gets: the client's body as it came (free
    /// requests), hashed on its way through (paid requests), or bytes the layer read
    /// already (a `Payment` credential bound to a body, a retry that runs again). Data
    /// comes as [`Bytes`]; axum handlers take it like any body.
    pub struct RequestBody<B> {
        #[pin]
        kind: ReqKind<B>,
    }
}

pin_project! {
    #[project = ReqProj]
    enum ReqKind<B> {
        Plain { #[pin] body: B },
        Hashed { #[pin] body: B, hashing: Option<Hashing> },
        Read { bytes: Option<Bytes> },
    }
}

struct Hashing {
    sha: Sha256,
    len: u64,
    /// The declared length: a reader that knows it stops at the last byte, without
    /// asking for the end.
    expected: Option<u64>,
    /// The `Content-Digest` the client sent: checked against the bytes, never trusted.
    claimed: Option<[u8; 32]>,
    seen: Arc<BodySeen>,
}

impl Hashing {
    /// The digest of everything hashed; an error if it is not what the client claimed.
    fn finish(self) -> Result<(), BoxError> {
        let digest = BodyDigest {
            sha256: self.sha.finalize().into(),
            len: self.len,
        };
        if self.claimed.is_some_and(|claimed| claimed != digest.sha256) {
            return Err("the request body does not match its Content-Digest".into());
        }
        self.seen.set(digest);
        Ok(())
    }
}

impl<B> RequestBody<B> {
    /// The client's body, untouched.
    pub(crate) fn plain(body: B) -> Self {
        Self {
            kind: ReqKind::Plain { body },
        }
    }

    /// The client's body, hashed on its way through; `claimed` is the SHA-256 of a
    /// `Content-Digest` the request carries, which the bytes must match, and `length` its
    /// `Content-Length`.
    pub(crate) fn hashed(
        body: B,
        claimed: Option<[u8; 32]>,
        length: Option<u64>,
    ) -> (Self, Arc<BodySeen>)
    where
        B: Body,
    {
        let seen = Arc::new(BodySeen::default());
        let hashing = Hashing {
            sha: Sha256::new(),
            len: 0,
            expected: length.or_else(|| body.size_hint().exact()),
            claimed,
            seen: Arc::clone(&seen),
        };
        // A body that is over before it starts may never be polled: settle it now (unless
        // its claimed digest is wrong, which a poll then reports).
        let empty = BodyDigest::of(&[]);
        let hashing = if body.is_end_stream() && claimed.is_none_or(|c| c == empty.sha256) {
            seen.set(empty);
            None
        } else {
            Some(hashing)
        };
        let kind = ReqKind::Hashed { body, hashing };
        (Self { kind }, seen)
    }

    /// Bytes the layer read already (their digest known at once).
    pub(crate) fn read(bytes: Bytes) -> (Self, Arc<BodySeen>) {
        let seen = Arc::new(BodySeen::default());
        seen.set(BodyDigest::of(&bytes));
        let kind = ReqKind::Read { bytes: Some(bytes) };
        (Self { kind }, seen)
    }
}

impl<B> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            ReqKind::Plain { .. } => "plain",
            ReqKind::Hashed { .. } => "hashed",
            ReqKind::Read { .. } => "read",
        };
        f.debug_tuple("RequestBody").field(&kind).finish()
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            ReqProj::Plain { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map(to_bytes).map_err(Into::into))),
            ReqProj::Hashed { mut body, hashing } => {
                let polled = ready!(body.as_mut().poll_frame(cx));
                match polled {
                    Some(Ok(frame)) => {
                        let frame = to_bytes(frame);
                        if let (Some(data), Some(h)) = (frame.data_ref(), hashing.as_mut()) {
                            h.sha.update(data);
                            h.len += data.len() as u64;
                        }
                        // Settle the digest now: a reader may stop at `is_end_stream`, at
                        // the declared length, or at trailers (always last).
                        let whole = hashing.as_ref().is_some_and(|h| h.expected == Some(h.len));
                        if frame.is_trailers() || body.is_end_stream() || whole {
                            if let Some(h) = hashing.take() {
                                h.finish()?;
                            }
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(err)) => {
                        *hashing = None;
                        Poll::Ready(Some(Err(err.into())))
                    }
                    None => match hashing.take().map(Hashing::finish) {
                        Some(Err(err)) => Poll::Ready(Some(Err(err))),
                        _ => Poll::Ready(None),
                    },
                }
            }
            ReqProj::Read { bytes } => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ReqKind::Plain { body } => body.is_end_stream(),
            ReqKind::Hashed { body, hashing } => body.is_end_stream() && hashing.is_none(),
            ReqKind::Read { bytes } => bytes.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ReqKind::Plain { body } | ReqKind::Hashed { body, .. } => body.size_hint(),
            ReqKind::Read { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

fn to_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
}

/// How a recorded answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The whole body went out (or was read after the client left).
    Ended,
    /// The answer was given but not all of it was seen: the client left and the rest could
    /// not be read in time.
    Cut,
    /// The handler's body failed part way.
    Failed,
}

/// Sees a paid answer's body go out, and writes down what it saw when it ends.
pub(crate) trait Tap: Send + 'static {
    /// A data chunk goes out; `false` once the tap needs no more (too big to keep).
    fn chunk(&mut self, data: &[u8]) -> bool;
    /// Trailers go out: the answer cannot be kept as it is.
    fn trailers(&mut self);
    /// A sign of life while the body streams.
    fn tick(&mut self);
    /// The body is over: the write to finish before the end is given to the client.
    fn finish(self: Box<Self>, end: End) -> BoxFuture<'static, ()>;
}

/// How long an answer whose client went away is still read (to keep it for a retry, to
/// learn its cost at its end), and how much of it at most.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
const DRAIN_BYTES: u64 = 16 << 20;

pin_project! {
    /// The response body of [`Paywall`](crate::Paywall): the inner body unchanged, a body
    /// the layer wrote (a `402` challenge, a Cashu error, a session answer, a stored answer
    /// sent again), or a paid answer copied as it goes out.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
        Recorded { recording: Recording<B> },
    }
}

/// A paid answer on its way out, and the tap that keeps it.
struct Recording<B> {
    body: Option<Pin<Box<B>>>,
    tap: Option<Box<dyn Tap>>,
    /// The tap's final write, and the last frame held back until it is done.
    finishing: Option<(BoxFuture<'static, ()>, Option<Frame<Bytes>>)>,
    /// The body's declared length, and how much of it went out: with a length, a client
    /// has the whole answer with its last byte, before the body says it is over.
    length: Option<u64>,
    sent: u64,
    /// Reads the rest of the body when the client goes away first.
    drain: fn(Pin<Box<B>>, Box<dyn Tap>),
}

impl<B> Drop for Recording<B> {
    fn drop(&mut self) {
        if let Some((write, _)) = self.finishing.take() {
            spawn(write);
        }
        if let (Some(body), Some(tap)) = (self.body.take(), self.tap.take()) {
            (self.drain)(body, tap);
        }
    }
}

fn spawn(future: BoxFuture<'static, ()>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(future);
        }
        Err(_) => tracing::warn!("no runtime to finish a paid answer's record"),
    }
}

/// Reads what is left of an answer nobody receives any more, for the tap.
fn drain<B>(mut body: Pin<Box<B>>, mut tap: Box<dyn Tap>)
where
    B: Body<Data = Bytes> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime to read the rest of a paid answer");
        return;
    };
    runtime.spawn(async move {
        let read = async {
            let mut read: u64 = 0;
            loop {
                let ok = match body.frame().await {
                    None => return End::Ended,
                    Some(Ok(frame)) => match frame.data_ref() {
                        Some(data) => {
                            read += data.len() as u64;
                            // An answer nobody receives is not read without end.
                            read <= DRAIN_BYTES && tap.chunk(data)
                        }
                        None => {
                            tap.trailers();
                            true
                        }
                    },
                    Some(Err(_)) => return End::Failed,
                };
                if !ok {
                    return End::Cut;
                }
            }
        };
        let end = tokio::time::timeout(DRAIN_LIMIT, read)
            .await
            .unwrap_or(End::Cut);
        tap.finish(end).await;
    });
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn own(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Own {
                body: Full::new(bytes.into()),
            },
        }
    }

    /// The inner body, seen by `tap` as it goes out (`length`: its declared length, if
    /// any); other bodies as they are.
    pub(crate) fn recorded(self, tap: Box<dyn Tap>, length: Option<u64>) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
    {
        match self.kind {
            Kind::Inner { body } => {
                let length = length.or_else(|| body.size_hint().exact());
                Self {
                    kind: Kind::Recorded {
                        recording: Recording {
                            body: Some(Box::pin(body)),
                            tap: Some(tap),
                            finishing: None,
                            length,
                            sent: 0,
                            drain: drain::<B>,
                        },
                    },
                }
            }
            kind => {
                spawn(tap.finish(End::Ended));
                Self { kind }
            }
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("ResponseBody::Inner").field(body).finish(),
            Kind::Own { .. } => f.write_str("ResponseBody::Own"),
            Kind::Recorded { .. } => f.write_str("ResponseBody::Recorded"),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Own { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            KindProj::Recorded { recording } => recording.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Own { body } => body.is_end_stream(),
            // Not over until the tap has written what it saw.
            Kind::Recorded { recording } => {
                recording.tap.is_none()
                    && recording.finishing.is_none()
                    && recording.body.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Own { body } => body.size_hint(),
            Kind::Recorded { recording } => recording
                .body
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()),
        }
    }
}

impl<B: Body<Data = Bytes>> Recording<B> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        loop {
            if let Some((write, held)) = self.finishing.as_mut() {
                ready!(write.as_mut().poll(cx));
                let held = held.take();
                self.finishing = None;
                self.body = None;
                return Poll::Ready(held.map(Ok));
            }
            let Some(body) = self.body.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(tap) = self.tap.as_mut() {
                tap.tick();
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.sent += data.len() as u64;
                    }
                    if let Some(tap) = self.tap.as_mut() {
                        let wanted = match frame.data_ref() {
                            Some(data) => tap.chunk(data),
                            None => {
                                tap.trailers();
                                true
                            }
                        };
                        if !wanted {
                            // Too big to keep: say so now, and stream the rest untouched.
                            if let Some(tap) = self.tap.take() {
                                spawn(tap.finish(End::Cut));
                            }
                        }
                    }
                    // The last frame waits for the record: a client that has the whole
                    // answer can find it again. Trailers are always last: hyper ends the
                    // message with them and never polls the body again.
                    let last = frame.is_trailers()
                        || body.is_end_stream()
                        || self.length == Some(self.sent);
                    if last {
                        if let Some(tap) = self.tap.take() {
                            self.finishing = Some((tap.finish(End::Ended), Some(frame)));
                            continue;
                        }
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(err)) => {
                    if let Some(tap) = self.tap.take() {
                        spawn(tap.finish(End::Failed));
                    }
                    self.body = None;
                    return Poll::Ready(Some(Err(err)));
                }
                None => match self.tap.take() {
                    Some(tap) => self.finishing = Some((tap.finish(End::Ended), None)),
                    None => {
                        self.body = None;
                        return Poll::Ready(None);
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use futures::stream;
    use http_body_util::StreamBody;

    use super::*;

    /// A body of `chunks` that never says it is over before its end is polled.
    fn streamed(
        chunks: &[&'static [u8]],
    ) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>>> {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    #[tokio::test]
    async fn a_hashed_body_is_digested_at_its_end_or_at_its_declared_length() {
        let (body, seen) = RequestBody::hashed(streamed(&[b"ab", b"c"]), None, None);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        assert_eq!(seen.digest(), Some(BodyDigest::of(b"abc")));

        // A reader that stops at the declared length never polls the end.
        let (body, seen) = RequestBody::hashed(streamed(&[b"ab", b"c"]), None, Some(3));
        let mut body = std::pin::pin!(body);
        body.frame().await.unwrap().unwrap();
        assert_eq!(seen.digest(), None, "not all of it yet");
        body.frame().await.unwrap().unwrap();
        assert_eq!(seen.digest(), Some(BodyDigest::of(b"abc")));

        // No body at all: known at once.
        let (_, seen) = RequestBody::hashed(Full::new(Bytes::new()), None, None);
        assert_eq!(seen.digest(), Some(BodyDigest::of(b"")));
    }

    #[tokio::test]
    async fn a_claimed_digest_is_checked_against_the_bytes() {
        let right: [u8; 32] = Sha256::digest(b"abc").into();
        let (body, seen) = RequestBody::hashed(streamed(&[b"abc"]), Some(right), None);
        assert!(body.collect().await.is_ok());
        assert!(seen.digest().is_some());

        let wrong: [u8; 32] = Sha256::digest(b"abd").into();
        let (body, seen) = RequestBody::hashed(streamed(&[b"abc"]), Some(wrong), None);
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("Content-Digest"), "{err}");
        assert_eq!(seen.digest(), None, "a body that lied is not bound");
        let (body, _) = RequestBody::hashed(Full::new(Bytes::new()), Some(wrong), None);
        assert!(body.collect().await.is_err(), "an empty body that lied");
    }

    /// Records what it saw; its write takes a while, and says when it is done.
    struct Probe {
        seen: Arc<Mutex<Vec<u8>>>,
        ended: Arc<Mutex<Option<End>>>,
        written: Arc<AtomicBool>,
        limit: usize,
    }

    impl Tap for Probe {
        fn chunk(&mut self, data: &[u8]) -> bool {
            let mut seen = self.seen.lock().unwrap();
            seen.extend_from_slice(data);
            seen.len() <= self.limit
        }
        fn trailers(&mut self) {}
        fn tick(&mut self) {}
        fn finish(self: Box<Self>, end: End) -> BoxFuture<'static, ()> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                *self.ended.lock().unwrap() = Some(end);
                self.written.store(true, Ordering::SeqCst);
            })
        }
    }

    /// A probe, and what it saw: bytes, how the body ended, whether its write is done.
    type Probed = (
        Box<Probe>,
        Arc<Mutex<Vec<u8>>>,
        Arc<Mutex<Option<End>>>,
        Arc<AtomicBool>,
    );

    fn probe(limit: usize) -> Probed {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(Mutex::new(None));
        let written = Arc::new(AtomicBool::new(false));
        let tap = Probe {
            seen: Arc::clone(&seen),
            ended: Arc::clone(&ended),
            written: Arc::clone(&written),
            limit,
        };
        (Box::new(tap), seen, ended, written)
    }

    #[tokio::test]
    async fn the_last_byte_waits_for_the_record() {
        // Known to end after its one frame, by its length, or only when polled: in every
        // case the client gets the last byte only once the tap has written.
        for length in [None, Some(5)] {
            let (tap, seen, ended, written) = probe(1 << 20);
            let body = ResponseBody::inner(streamed(&[b"hel", b"lo"])).recorded(tap, length);
            let mut body = std::pin::pin!(body);
            let first = body.frame().await.unwrap().unwrap();
            assert_eq!(first.into_data().unwrap(), "hel");
            assert!(!written.load(Ordering::SeqCst));
            let last = body.frame().await.unwrap().unwrap();
            assert_eq!(last.into_data().unwrap(), "lo");
            if length.is_some() {
                assert!(
                    written.load(Ordering::SeqCst),
                    "the last byte went out before the record"
                );
            }
            assert!(body.frame().await.is_none());
            assert!(written.load(Ordering::SeqCst));
            assert_eq!(*ended.lock().unwrap(), Some(End::Ended));
            assert_eq!(seen.lock().unwrap().as_slice(), b"hello");
        }
        let (tap, _, ended, written) = probe(1 << 20);
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"whole"))).recorded(tap, None);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, "whole");
        assert!(written.load(Ordering::SeqCst));
        assert_eq!(*ended.lock().unwrap(), Some(End::Ended));
    }

    #[tokio::test]
    async fn an_answer_too_big_is_let_go_and_a_dropped_one_is_read_to_its_end() {
        let (tap, _, ended, written) = probe(3);
        let body = ResponseBody::inner(streamed(&[b"hel", b"lo"])).recorded(tap, None);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !written.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(*ended.lock().unwrap(), Some(End::Cut));

        // The client goes away after the first frame: the rest is still read for the tap.
        let (tap, seen, ended, written) = probe(1 << 20);
        let body = ResponseBody::inner(streamed(&[b"hel", b"lo"])).recorded(tap, None);
        let mut body = Box::pin(body);
        body.frame().await.unwrap().unwrap();
        drop(body);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !written.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(*ended.lock().unwrap(), Some(End::Ended));
        assert_eq!(seen.lock().unwrap().as_slice(), b"hello");
    }

    #[tokio::test]
    async fn trailers_wait_for_the_record() {
        // A body that does not know it is over before its trailers (as hyper's own): the
        // trailers end the message, so they are held until the tap has written.
        let (tap, _, ended, written) = probe(1 << 20);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-cost", http::HeaderValue::from_static("4"));
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"part"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = ResponseBody::inner(StreamBody::new(stream::iter(frames))).recorded(tap, None);
        let mut body = std::pin::pin!(body);
        body.frame().await.unwrap().unwrap();
        let last = body.frame().await.unwrap().unwrap();
        assert!(last.is_trailers());
        assert!(
            written.load(Ordering::SeqCst),
            "the trailers went out before the record"
        );
        assert_eq!(*ended.lock().unwrap(), Some(End::Ended));
    }

    /// An answer that never ends, dropped by its client: read to the byte bound, then cut.
    #[tokio::test]
    async fn a_dropped_answer_is_read_only_so_far() {
        let (tap, seen, ended, written) = probe(usize::MAX);
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        let endless = StreamBody::new(stream::repeat_with(move || {
            Ok::<_, BoxError>(Frame::data(chunk.clone()))
        }));
        let mut body = Box::pin(ResponseBody::inner(endless).recorded(tap, None));
        body.frame().await.unwrap().unwrap();
        drop(body);
        tokio::time::timeout(Duration::from_secs(20), async {
            while !written.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(*ended.lock().unwrap(), Some(End::Cut));
        // The first megabyte went to the client; the rest was read up to the bound.
        let read = seen.lock().unwrap().len() as u64 - (1 << 20);
        assert!(
            (DRAIN_BYTES - (1 << 20)..=DRAIN_BYTES).contains(&read),
            "{read}"
        );
    }
}
