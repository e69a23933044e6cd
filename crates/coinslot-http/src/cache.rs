//! NUT-19 cached responses: a retried `POST /v1/swap` or `/v1/mint/bolt11` with the same body
//! gets the same answer instead of "already spent", so a wallet that lost a response can
//! still collect its signatures.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// Successful responses by hash of (path, body), kept for a fixed time. Entries leave in
/// insertion order (they all live equally long), so eviction is O(1).
#[derive(Debug)]
pub(crate) struct ResponseCache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<[u8; 32], (Instant, Bytes)>,
    order: VecDeque<(Instant, [u8; 32])>,
}

impl ResponseCache {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn key(path: &str, body: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        hasher.finalize().into()
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Bytes> {
        let inner = self.inner.lock();
        inner
            .entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, body)| body.clone())
    }

    pub fn put(&self, key: [u8; 32], body: Bytes) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        while let Some(&(at, old)) = inner.order.front() {
            let expired = now.duration_since(at) >= self.ttl;
            if !expired && inner.entries.len() < self.max_entries {
                break;
            }
            inner.order.pop_front();
            // Only remove the entry if it was not re-inserted later.
            if inner.entries.get(&old).is_some_and(|(t, _)| *t == at) {
                inner.entries.remove(&old);
            }
        }
        inner.entries.insert(key, (now, body));
        inner.order.push_back((now, key));
    }
}
