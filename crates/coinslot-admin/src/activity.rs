//! [`ActivityLog`]: the most recent entries of the mint's activity feed, kept in memory for
//! the admin API. (Totals that must survive a restart are the store's supply counters; this
//! is the operator's "what just happened" view.)

use std::collections::VecDeque;
use std::sync::Arc;

use coinslot_mint::{Activity, Mint};
use parking_lot::Mutex;
use tokio::sync::broadcast::error::RecvError;

/// A bounded, newest-last log of recent activity. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActivityLog {
    entries: Arc<Mutex<VecDeque<Activity>>>,
    capacity: usize,
}

impl ActivityLog {
    /// Starts following `mint`'s feed, keeping the last `capacity` entries. The task ends
    /// with the mint.
    pub fn follow(mint: &Mint, capacity: usize) -> Self {
        let log = Self {
            entries: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
        };
        let mut feed = mint.activity();
        let writer = log.clone();
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(activity) => writer.push(activity),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "activity log fell behind the feed")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        log
    }

    fn push(&self, activity: Activity) {
        let mut entries = self.entries.lock();
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(activity);
    }

    /// Up to `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Activity> {
        self.entries
            .lock()
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}
