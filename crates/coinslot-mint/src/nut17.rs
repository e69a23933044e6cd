//! NUT-17: events for websocket subscriptions (quote state and proof state changes).

use cashu::nuts::{MintQuoteBolt11Response, ProofState, State};
use tokio::sync::broadcast;

use crate::store::SpentProof;
use crate::Mint;

/// A state change a wallet can subscribe to.
#[derive(Debug, Clone)]
pub enum MintEvent {
    /// A bolt11 mint quote changed state (`PAID`, `ISSUED`).
    MintQuote(MintQuoteBolt11Response<String>),
    /// A proof changed state (`SPENT`).
    ProofState(ProofState),
}

impl Mint {
    /// Receives every event from now on. A receiver that falls more than 4096 events behind
    /// loses the oldest ones (and learns so from the channel).
    pub fn subscribe(&self) -> broadcast::Receiver<MintEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn publish(&self, event: MintEvent) {
        // No subscriber is not an error.
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn publish_spent(&self, proofs: &[SpentProof]) {
        if self.inner.events.receiver_count() == 0 {
            return;
        }
        for proof in proofs {
            self.publish(MintEvent::ProofState(ProofState {
                y: proof.y,
                state: State::Spent,
                witness: None,
            }));
        }
    }
}
