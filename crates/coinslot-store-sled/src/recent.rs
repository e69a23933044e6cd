//! The bytes of receipts the batch thread has just written, for the write that follows.
//!
//! A paid run's receipt is written by the batch thread with its spend, and written once more
//! by the run (its lease, its answer) as a compare-and-swap on the whole value. Without these
//! bytes that write would first read the receipt back from sled: 4% of a paid request's
//! server CPU. A value taken from here is only a guess of what sled holds; the
//! compare-and-swap checks it, and a guess that is wrong (someone wrote the receipt since)
//! falls back to reading it, so a stale entry costs a read and never a wrong write.

use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many receipts are remembered; a run that never writes its receipt again
/// would otherwise keep its entry for ever. When full it starts over (each entry is only a
/// saved read).
const MAX_ENTRIES: usize = 4096;

/// Receipt key → the value last written under it by the batch thread.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    written: Mutex<HashMap<[u8; 32], sled::IVec>>,
}

impl Recent {
    /// Remembers that `value` was just written under `key`.
    pub(crate) fn wrote(&self, key: &[u8], value: sled::IVec) {
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            return;
        };
        let mut written = self.lock();
        if written.len() >= MAX_ENTRIES {
            written.clear();
        }
        written.insert(key, value);
    }

    /// What was last written under `key`, forgotten as it is taken: the write that uses it
    /// replaces it.
    pub(crate) fn take(&self, key: &[u8; 32]) -> Option<sled::IVec> {
        self.lock().remove(key)
    }

    /// The map, even after a panic elsewhere: every entry is only a guess, checked on use.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], sled::IVec>> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_taken_once() {
        let recent = Recent::default();
        recent.wrote(&[1; 32], sled::IVec::from(&b"v1"[..]));
        assert_eq!(recent.take(&[1; 32]).as_deref(), Some(&b"v1"[..]));
        assert_eq!(recent.take(&[1; 32]), None);
    }

    #[test]
    fn it_starts_over_when_full_and_ignores_keys_of_another_size() {
        let recent = Recent::default();
        for i in 0..MAX_ENTRIES as u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            recent.wrote(&key, sled::IVec::from(&b"x"[..]));
        }
        assert_eq!(recent.lock().len(), MAX_ENTRIES);
        recent.wrote(&[9; 32], sled::IVec::from(&b"y"[..]));
        assert_eq!(recent.lock().len(), 1);
        recent.wrote(&[9; 31], sled::IVec::from(&b"z"[..]));
        assert_eq!(recent.take(&[9; 32]).as_deref(), Some(&b"y"[..]));
    }
}
