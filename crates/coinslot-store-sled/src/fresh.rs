//! Receipts the spend journal holds but sled does not yet: a paid run's first receipt.
//!
//! A payment's receipt is written with its spend, and written again moments later by the
//! run (its answer, its lease). In sled that was an insert by the batch thread and then a
//! compare-and-swap by the run, which reads the value back inside sled: two tree writes and
//! a read per paid request. The batch thread now leaves a new receipt here instead (it is
//! durable in the journal already), and the run's write takes it from here and makes the
//! one sled write. Whatever is still here at a checkpoint is written to sled before the
//! journal is emptied.
//!
//! A key present here belongs to this map: every path that writes or reads a receipt looks
//! here first, under the map's lock, and a write that finds its key here writes it to sled
//! and removes it before the lock goes, so no one can see neither or both.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

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

    /// Writes every receipt held here to `receipts` and forgets them.
    pub(crate) fn settle_all(&self, receipts: &sled::Tree) -> sled::Result<()> {
        let mut held = self.lock();
        for (key, value) in held.iter() {
            receipts.insert(key, value.clone())?;
        }
        held.clear();
        Ok(())
    }

    /// Writes the receipt under `key`, if held here, to `receipts` and forgets it.
    pub(crate) fn settle(&self, key: &[u8; 32], receipts: &sled::Tree) -> sled::Result<()> {
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

    #[test]
    fn settling_moves_receipts_to_sled_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("receipts").unwrap();
        let fresh = Fresh::default();
        fresh.lock().insert([1; 32], sled::IVec::from(&b"one"[..]));
        fresh.lock().insert([2; 32], sled::IVec::from(&b"two"[..]));
        assert!(fresh.contains(&[1; 32]) && !fresh.contains(&[3; 32]));

        fresh.settle(&[1; 32], &tree).unwrap();
        assert_eq!(tree.get([1; 32]).unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(fresh.get(&[1; 32]), None);
        assert_eq!(fresh.get(&[2; 32]).as_deref(), Some(&b"two"[..]));
        tree.insert([1; 32], &b"newer"[..]).unwrap();
        fresh.settle(&[1; 32], &tree).unwrap();
        assert_eq!(
            tree.get([1; 32]).unwrap().as_deref(),
            Some(&b"newer"[..]),
            "a key no longer held is left to sled"
        );

        fresh.settle_all(&tree).unwrap();
        assert_eq!(tree.get([2; 32]).unwrap().as_deref(), Some(&b"two"[..]));
        assert!(fresh.lock().is_empty());
    }
}
