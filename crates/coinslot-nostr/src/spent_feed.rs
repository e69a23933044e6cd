//! The spent-secret feed (optional, off by default): the mint publishes the `Y` of every
//! proof it marks spent, so anyone can audit its record.
//!
//! Every `spent_feed_secs`, the `Y`s spent since the last batch go out in one kind
//! [`SPENT_FEED`] event signed by the mint's key, with `a` pointing at its NIP-87
//! announcement:
//!
//! ```json
//! {"kind": 7380, "tags": [["a", "38172:<mint>:<d>"], ["k", "38172"]],
//!  "content": "{\"ys\": [\"02ab…\", …], \"missed\": 0}"}
//! ```
//!
//! What it lets people check: a holder can see that a proof was not spent before they spent
//! it, and that no `Y` appears twice (a double spend would be public). `missed` counts
//! spends the feed lost (the process fell behind), so an incomplete batch says so.
//!
//! The privacy trade-off: a `Y` is `hash_to_curve(secret)` and tells a stranger nothing, but
//! whoever knows a proof's secret (its sender and its receiver) learns *when* it was spent,
//! and everyone learns how many proofs the mint takes per interval (its volume). No NIP
//! defines such a feed; the kind is ours.

use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::cashu::nuts::State;
use coinslot_mint::MintEvent;
use nostr_sdk::prelude::*;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::nip87;
use crate::service::Shared;

/// The kind of a spent-secret batch (a regular event, so relays keep every batch).
pub const SPENT_FEED: Kind = Kind::Custom(7380);

/// `Y`s per event: 64 hex characters each plus quotes, so a batch stays under 64 KB.
pub const MAX_YS_PER_EVENT: usize = 800;

/// `Y`s kept while no relay takes a batch; beyond that they are counted as missed.
const MAX_PENDING: usize = 100_000;

/// Publishes batches until the mint's event channel closes.
pub(crate) async fn run(shared: Arc<Shared>, mut spends: broadcast::Receiver<MintEvent>) {
    let every = Duration::from_secs(shared.config.spent_feed_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: Vec<String> = Vec::new();
    let mut missed: u64 = 0;
    loop {
        tokio::select! {
            event = spends.recv() => match event {
                Ok(MintEvent::ProofState(state)) if state.state == State::Spent => {
                    if pending.len() < MAX_PENDING {
                        pending.push(state.y.to_hex());
                    } else {
                        missed += 1;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(lost)) => {
                    tracing::warn!(target: "coinslot::nostr", lost, "the spent-secret feed fell behind");
                    missed += lost;
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if pending.is_empty() && missed == 0 {
                    continue;
                }
                let (published, failure) = publish(&shared, &pending, missed).await;
                if published > 0 || (pending.is_empty() && failure.is_none()) {
                    missed = 0;
                }
                // What went out is never sent again: a `Y` twice would look like a double spend.
                pending.drain(..published);
                if let Some(err) = failure {
                    tracing::warn!(target: "coinslot::nostr", error = %err, waiting = pending.len(), "spent-secret feed not published; retrying with the next batch");
                }
            }
        }
    }
}

/// Sends `ys` in as many events as needed, in order; returns how many `Y`s went out and
/// why the rest did not.
async fn publish(shared: &Shared, ys: &[String], missed: u64) -> (usize, Option<String>) {
    let identity = &shared.identity;
    let announcement = format!(
        "{}:{}:{}",
        nip87::CASHU_MINT_ANNOUNCEMENT.as_u16(),
        identity.keys.public_key().to_hex(),
        identity.mint_pubkey
    );
    let kind = nip87::CASHU_MINT_ANNOUNCEMENT.as_u16().to_string();
    let chunks: Vec<&[String]> = if ys.is_empty() {
        vec![&[]]
    } else {
        ys.chunks(MAX_YS_PER_EVENT).collect()
    };
    let mut published = 0;
    for (i, chunk) in chunks.into_iter().enumerate() {
        // A loss is reported once, with the first event of the batch.
        let missed = if i == 0 { missed } else { 0 };
        let content = json!({ "ys": chunk, "missed": missed }).to_string();
        let sent = async {
            let tags = [
                Tag::parse(["a", announcement.as_str()]).map_err(|e| e.to_string())?,
                Tag::parse(["k", kind.as_str()]).map_err(|e| e.to_string())?,
            ];
            let event = EventBuilder::new(SPENT_FEED, content)
                .tags(tags)
                .sign_with_keys(&identity.keys)
                .map_err(|e| e.to_string())?;
            let output = shared
                .client
                .send_event(&event)
                .await
                .map_err(|e| e.to_string())?;
            if output.success.is_empty() {
                return Err("no relay took the batch".to_string());
            }
            Ok(())
        };
        if let Err(err) = sent.await {
            return (published, Some(err));
        }
        published += chunk.len();
    }
    (published, None)
}

/// The `Y`s in a feed event, or `None` when it is not one.
pub fn spent_ys(event: &Event) -> Option<Vec<String>> {
    if event.kind != SPENT_FEED {
        return None;
    }
    let content: serde_json::Value = serde_json::from_str(&event.content).ok()?;
    content
        .get("ys")?
        .as_array()?
        .iter()
        .map(|y| y.as_str().map(str::to_string))
        .collect()
}
