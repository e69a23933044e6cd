//! What the layer records about each payment (stored by the mint as a receipt, in the same
//! write as the spend), the request fingerprint it is bound to, and the in-flight set.
//!
//! A token pays for one request. If the client loses the response and repeats the *same*
//! request with the *same* token, the receipt says it was paid: the request runs again
//! without a second charge and gets the same change back (a few times, within the retry
//! window). A different request with that token is refused as spent. While the first request
//! is still running, a duplicate gets `11002` (pending), so concurrent duplicates never run.

use std::sync::Arc;

use coinslot_mint::cashu::nuts::Proof;
use http::header::CONTENT_LENGTH;
use http::Request;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layer::Shared;

/// What a receipt is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReceiptKind {
    /// A token paid for a request.
    Request,
    /// A token was deposited into a session.
    Deposit,
    /// A session was closed and paid out.
    Close,
    /// A token bought time on a pass (`session` holds the pass id).
    Pass,
}

/// The receipt's data (JSON in the store).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReceiptData {
    pub kind: ReceiptKind,
    /// Fingerprint of the request paid for (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub unit: String,
    /// Charged (or reserved, if metered), after fees.
    pub kept: u64,
    pub fee: u64,
    pub metered: bool,
    /// Proofs given back with the spend (change) or the payout of a close.
    #[serde(default)]
    pub change: Vec<Proof>,
    /// The unused part of a metered reservation, once settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<Vec<Proof>>,
    /// The refund after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Vec<Proof>>,
    #[serde(default)]
    pub replays: u32,
}

impl ReceiptData {
    /// An empty receipt of `kind` in `unit`.
    pub fn new(kind: ReceiptKind, unit: String) -> Self {
        Self {
            kind,
            request: None,
            session: None,
            unit,
            kept: 0,
            fee: 0,
            metered: false,
            change: Vec::new(),
            settled: None,
            refund: None,
            replays: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// What makes two requests "the same": method, path and query, and the body's length and
/// digest headers when present (the layer does not buffer bodies to hash them).
pub(crate) fn fingerprint<B>(request: &Request<B>) -> String {
    let mut hash = Sha256::new();
    hash.update(request.method().as_str());
    hash.update([0]);
    hash.update(
        request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/"),
    );
    for name in [
        CONTENT_LENGTH.as_str(),
        "content-digest",
        "digest",
        "idempotency-key",
    ] {
        hash.update([0]);
        if let Some(value) = request.headers().get(name) {
            hash.update(value.as_bytes());
        }
    }
    hex::encode(hash.finalize())
}

/// Holds a token's key in the in-flight set until dropped.
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    key: [u8; 32],
}

impl InFlight {
    /// Claims `key`; `None` if a request with it is already running.
    pub fn enter(shared: &Arc<Shared>, key: [u8; 32]) -> Option<Self> {
        shared.in_flight.lock().insert(key).then(|| Self {
            shared: Arc::clone(shared),
            key,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.lock().remove(&self.key);
    }
}
