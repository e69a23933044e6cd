//! Responses kept for `Idempotency-Key` retries of `Authorization: Payment` requests: the
//! draft wants a retry answered with the original response, without running the handler
//! again. Kept in memory, bounded in size and age (the retry window); a retry that finds
//! nothing here (after a restart, on another instance, a response too large or not fully
//! sent) falls back to NUT-24's rule: the handler runs again, without a second charge.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use parking_lot::Mutex;

/// The largest response body kept.
pub(crate) const MAX_RESPONSE: usize = 1 << 20;
/// The most bytes kept in all.
const MAX_TOTAL: usize = 64 << 20;

/// A response as first sent.
#[derive(Clone)]
struct Stored {
    fingerprint: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<[u8; 32], Stored>,
    /// Insertion order, for eviction.
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

/// The kept responses, by the receipt key of the token that paid for them.
#[derive(Default)]
pub(crate) struct StoredResponses {
    entries: Mutex<Entries>,
}

impl StoredResponses {
    /// The response a token paid for, if kept, not older than `max_age`, and for the same
    /// request (`fingerprint`).
    pub fn get(
        &self,
        key: &[u8; 32],
        fingerprint: &str,
        max_age: Duration,
    ) -> Option<Response<Bytes>> {
        let entries = self.entries.lock();
        let stored = entries.by_key.get(key)?;
        if stored.fingerprint != fingerprint || stored.at.elapsed() > max_age {
            return None;
        }
        let mut response = Response::new(stored.body.clone());
        *response.status_mut() = stored.status;
        *response.headers_mut() = stored.headers.clone();
        Some(response)
    }

    fn put(&self, key: [u8; 32], stored: Stored, max_age: Duration) {
        let mut entries = self.entries.lock();
        let size = stored.body.len();
        if let Some(old) = entries.by_key.insert(key, stored) {
            entries.bytes -= old.body.len();
        } else {
            entries.order.push_back(key);
        }
        entries.bytes += size;
        // Oldest first: out of the window, or over the budget.
        while let Some(oldest) = entries.order.front().copied() {
            let expired = entries
                .by_key
                .get(&oldest)
                .is_none_or(|s| s.at.elapsed() > max_age);
            if !expired && entries.bytes <= MAX_TOTAL {
                break;
            }
            entries.order.pop_front();
            if let Some(old) = entries.by_key.remove(&oldest) {
                entries.bytes -= old.body.len();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().by_key.len()
    }
}

/// Copies a response body as it is sent, and keeps the response once it has all gone out.
pub(crate) struct Recorder {
    responses: Arc<StoredResponses>,
    key: [u8; 32],
    fingerprint: String,
    status: StatusCode,
    headers: HeaderMap,
    body: BytesMut,
    max_age: Duration,
}

impl Recorder {
    pub fn new<B>(
        responses: Arc<StoredResponses>,
        key: [u8; 32],
        fingerprint: String,
        response: &Response<B>,
        max_age: Duration,
    ) -> Self {
        Self {
            responses,
            key,
            fingerprint,
            status: response.status(),
            headers: response.headers().clone(),
            body: BytesMut::new(),
            max_age,
        }
    }

    /// Adds a chunk; `false` once the body is too large to keep.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.body.len() + chunk.len() > MAX_RESPONSE {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    /// The body is complete: keep the response.
    pub fn finish(self) {
        let stored = Stored {
            fingerprint: self.fingerprint,
            status: self.status,
            headers: self.headers,
            body: self.body.freeze(),
            at: Instant::now(),
        };
        self.responses.put(self.key, stored, self.max_age);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(responses: &Arc<StoredResponses>, key: u8, body: &[u8]) {
        let response = Response::builder().status(201).body(()).unwrap();
        let mut recorder = Recorder::new(
            Arc::clone(responses),
            [key; 32],
            "GET /x".into(),
            &response,
            Duration::from_secs(60),
        );
        assert!(recorder.push(body));
        recorder.finish();
    }

    #[test]
    fn a_kept_response_comes_back_only_for_the_same_request_and_within_the_window() {
        let responses = Arc::new(StoredResponses::default());
        record(&responses, 1, b"hello");
        let again = responses
            .get(&[1; 32], "GET /x", Duration::from_secs(60))
            .unwrap();
        assert_eq!(again.status(), 201);
        assert_eq!(again.body().as_ref(), b"hello");
        assert!(responses
            .get(&[1; 32], "GET /y", Duration::from_secs(60))
            .is_none());
        assert!(responses.get(&[2; 32], "GET /x", Duration::ZERO).is_none());
        std::thread::sleep(Duration::from_millis(5));
        assert!(responses
            .get(&[1; 32], "GET /x", Duration::from_millis(1))
            .is_none());
    }

    #[test]
    fn bodies_over_the_limit_are_not_kept_and_the_total_is_bounded() {
        let responses = Arc::new(StoredResponses::default());
        let response = Response::new(());
        let mut recorder = Recorder::new(
            Arc::clone(&responses),
            [9; 32],
            String::new(),
            &response,
            Duration::from_secs(60),
        );
        assert!(!recorder.push(&vec![0; MAX_RESPONSE + 1]));
        let big = vec![7u8; MAX_RESPONSE];
        for key in 0..=(MAX_TOTAL / MAX_RESPONSE) as u8 {
            record(&responses, key, &big);
        }
        assert_eq!(responses.len(), MAX_TOTAL / MAX_RESPONSE);
        assert!(
            responses
                .get(&[0; 32], "GET /x", Duration::from_secs(60))
                .is_none(),
            "the oldest went first"
        );
        assert!(responses.entries.lock().bytes <= MAX_TOTAL);
    }
}
