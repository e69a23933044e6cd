//! Receipts held in memory before sled: a paid run's receipt, from its payment until
//! shortly after its answer.
//!
//! A payment's receipt is written with its spend, and again moments later by the run (its
//! answer). In sled that was an insert by the batch thread and a compare-and-swap by the
//! run, and after cut 6 still one insert at a random place in the tree per paid request:
//! 8 to 11% of the server's CPU (a leaf found cold, copied and split). The batch thread
//! leaves a new receipt here instead (it is durable in the journal already), the run's
//! answer (a lazy write, which promises no durability) replaces it here, and the batch
//! thread moves everything held to sled between two batches, [`SETTLE_EVERY`] after the
//! first one held, and at each checkpoint: up to 64 receipts of the same second in one sled
//! value (see `receipts.rs`). A write that must be durable when it returns writes sled
//! itself. (Moved a slice after every batch, or by a thread of
//! their own, the receipts cost the same CPU but every payment meanwhile waited a little:
//! p99 4.5 to 6.4 ms against 3.1 to 3.7 in one piece.)
//!
//! A key present here belongs to this map: every path that writes or reads a receipt looks
//! here first, under the map's lock, and a receipt moves to sled (written, then forgotten
//! here) under that lock, so no one can see neither or both.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use coinslot_mint::StoreError;

use crate::receipts::{self, Receipts};

/// Longest a receipt stays here: what an answer written lazily can lose in a crash, on top
/// of sled's own flush interval (it could lose that much before), and what bounds the
/// memory held (half a second of paid answers).
pub(crate) const SETTLE_EVERY: Duration = Duration::from_millis(500);

/// Receipt key → its value, as sled would hold it.
#[derive(Debug, Default)]
pub(crate) struct Fresh {
    receipts: Mutex<HashMap<[u8; 32], sled::IVec>>,
}

impl Fresh {
    /// The map, for a read or a write that must not race another (see the module).
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], sled::IVec>> {
        // Each change is one map operation: a panic elsewhere leaves nothing half-done.
        self.receipts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key` is here.
    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().contains_key(key)
    }

    /// The value under `key`, if it is here (a shared handle, not a copy).
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<sled::IVec> {
        self.lock().get(key).cloned()
    }

    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Moves every receipt held here to `receipts`, as pages of those made in the same
    /// second, and forgets them. The lock is held per page, so a run writing its answer
    /// waits for one sled insert at most; a receipt changed meanwhile is moved as it is now.
    pub(crate) fn settle_all(&self, receipts: &Receipts) -> Result<(), StoreError> {
        let mut held: Vec<(u64, [u8; 32])> = self
            .lock()
            .iter()
            .map(|(key, value)| (receipts::created_at(value).unwrap_or(0), *key))
            .collect();
        held.sort_unstable();
        for second in held.chunk_by(|a, b| a.0 == b.0) {
            for chunk in second.chunks(receipts::PAGE) {
                let mut held = self.lock();
                let page: Vec<([u8; 32], sled::IVec)> = chunk
                    .iter()
                    .filter_map(|(_, key)| Some((*key, held.get(key)?.clone())))
                    .collect();
                receipts.insert_page(chunk[0].0, &page)?;
                for (key, _) in &page {
                    held.remove(key);
                }
            }
        }
        Ok(())
    }

    /// Writes the receipt under `key`, if held here, to `receipts` and forgets it; kept
    /// here if sled refuses it.
    pub(crate) fn settle(&self, key: &[u8; 32], receipts: &Receipts) -> Result<(), StoreError> {
        let mut held = self.lock();
        if let Some(value) = held.get(key) {
            receipts.insert(key, value.clone())?;
            held.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts::test_value as value;

    #[test]
    fn settling_moves_receipts_to_sled_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let receipts = Receipts::open(&db).unwrap();
        let fresh = Fresh::default();
        fresh.lock().insert([1; 32], value(5, b"one"));
        fresh.lock().insert([2; 32], value(5, b"two"));
        assert!(fresh.contains(&[1; 32]) && !fresh.contains(&[3; 32]));

        fresh.settle(&[1; 32], &receipts).unwrap();
        assert_eq!(receipts.get(&[1; 32]).unwrap(), Some(value(5, b"one")));
        assert_eq!(fresh.get(&[1; 32]), None);
        assert_eq!(fresh.get(&[2; 32]), Some(value(5, b"two")));
        receipts.insert(&[1; 32], value(5, b"newer")).unwrap();
        fresh.settle(&[1; 32], &receipts).unwrap();
        assert_eq!(
            receipts.get(&[1; 32]).unwrap(),
            Some(value(5, b"newer")),
            "a key no longer held is left to sled"
        );

        fresh.lock().insert([3; 32], value(4, b"three"));
        fresh.settle_all(&receipts).unwrap();
        assert_eq!(receipts.get(&[2; 32]).unwrap(), Some(value(5, b"two")));
        assert_eq!(receipts.get(&[3; 32]).unwrap(), Some(value(4, b"three")));
        assert_eq!(receipts.tree().len(), 1, "only the one settled alone");
        assert_eq!(receipts.paged(), 2);
        assert!(fresh.lock().is_empty());
    }
}
