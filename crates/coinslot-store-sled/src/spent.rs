//! Spent proofs: an index in memory over a log of our own, instead of sled's `spent` tree.
//!
//! A spent proof is written once, never changed, and read on every payment to refuse a
//! double spend, nearly always to find it absent. In sled that was a tree read and a tree
//! insert per proof, two of the five or six tree operations of a paid request. Here the
//! check is a hash lookup, and the write a few bytes appended to `coinslot-spent.log`
//! (one `write` per 64 KiB of entries, and at each checkpoint).
//!
//! Durability does not change: a spend is acknowledged once its batch is in the spend
//! journal (`journal.rs`), before anything reaches this log. The log is synced at each
//! checkpoint before the journal is emptied, and the length synced is kept in sled, so at
//! start everything below that length must read back whole (or the store refuses to open:
//! a spent proof must never be forgotten), and a torn tail beyond it is cut off: the journal
//! still holds those spends and its replay appends them again.
//!
//! The index keeps 128 bits of each `Y` (16 bytes, where the 33-byte point would take 33):
//! about 285 MB for 10 M spent proofs, with the hash set's slack. A point whose 128 bits matched a spent one would only
//! be refused as spent; finding one for a given proof is a 2^128 search.
//!
//! Entry: `Y (33) | value length (u8) | value | CRC-32 of what precedes (u32 LE)`, where the
//! value is the keyset id and the amount (as sled's tree had it), kept for audits.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

/// The log's file, in the store's directory.
pub(crate) const FILE: &str = "coinslot-spent.log";

/// The sled key (in the `meta` tree) of the log's length as of the last sync.
pub(crate) const SYNCED_KEY: &[u8] = b"spent.log synced";

/// `Y`, the value's length and the checksum around a value.
const OVERHEAD: usize = 33 + 1 + 4;

/// Buffered entries are written to the log once they fill this much (see
/// [`Spent::write_if_full`]): about 1,200 proofs of 54 bytes.
const WRITE_EVERY: usize = 64 << 10;

/// Spent proofs: which `Y`s are spent, and the log that keeps them.
#[derive(Debug)]
pub(crate) struct Spent {
    index: RwLock<HashSet<u128>>,
    log: Mutex<Log>,
}

/// The 128 bits of `y` the index keeps: bytes 1 to 16 of the compressed point (the
/// x-coordinate's first half), with the parity byte folded in.
fn short(y: &[u8; 33]) -> u128 {
    let mut half = [0u8; 16];
    half.copy_from_slice(&y[1..17]);
    u128::from_be_bytes(half) ^ u128::from(y[0])
}

impl Spent {
    /// Opens (or creates) the log at `path` and indexes it. `synced` is the length the last
    /// checkpoint synced: a bad entry below it is corruption, beyond it a torn tail.
    pub(crate) fn open(path: &Path, synced: u64) -> std::io::Result<Self> {
        let mut file = crate::journal::open_file(path)?;
        let size = file.metadata()?.len();
        let mut index =
            HashSet::with_capacity(usize::try_from(size).unwrap_or(0) / (OVERHEAD + 16));
        // Read in pieces: the log of 10 M proofs is about half a gigabyte.
        let mut reader = BufReader::with_capacity(1 << 20, &mut file);
        let mut entry = Vec::with_capacity(OVERHEAD + 255);
        let mut at = 0u64;
        while let Some(y) = read_entry(&mut reader, &mut entry)? {
            index.insert(short(&y));
            at += entry.len() as u64;
        }
        drop(reader);
        if at < synced.min(size) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the spent-proof log {} is damaged at byte {at}, below the {synced} bytes \
                     it had synced: restore it from a backup",
                    path.display()
                ),
            ));
        }
        if at < size {
            tracing::info!(
                kept = at,
                dropped = size - at,
                "spent-proof log: a write a crash cut short is dropped (the spend journal \
                 replays it)"
            );
            file.set_len(at)?;
        }
        file.seek(SeekFrom::Start(at))?;
        Ok(Self {
            index: RwLock::new(index),
            log: Mutex::new(Log {
                file,
                len: at,
                pending: Vec::new(),
            }),
        })
    }

    /// Whether `y` is spent.
    pub(crate) fn contains(&self, y: &[u8; 33]) -> bool {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&short(y))
    }

    /// How many proofs are spent.
    pub(crate) fn len(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Marks `y` spent (with `value` for the log) unless it is already; whether it was new.
    /// The entry is buffered until [`Spent::write`]; the index shows it at once, so call
    /// this only for spends already durable elsewhere (the journal, a sled transaction).
    pub(crate) fn insert(&self, y: &[u8; 33], value: &[u8]) -> std::io::Result<bool> {
        let value_len = u8::try_from(value.len())
            .map_err(|_| std::io::Error::other("spent-proof value too long"))?;
        if !self
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(short(y))
        {
            return Ok(false);
        }
        let mut log = self.lock_log();
        let start = log.pending.len();
        log.pending.extend_from_slice(y);
        log.pending.push(value_len);
        log.pending.extend_from_slice(value);
        let crc = crc32fast::hash(&log.pending[start..]);
        log.pending.extend_from_slice(&crc.to_le_bytes());
        Ok(true)
    }

    /// Writes the entries buffered once they fill [`WRITE_EVERY`] bytes (not synced). Every
    /// entry is durable elsewhere before it is buffered, so it may wait for the checkpoint's
    /// [`Spent::sync`]: one `write` per batch of payments was a system call per 3 or 4.
    pub(crate) fn write_if_full(&self) -> std::io::Result<()> {
        if self.lock_log().pending.len() < WRITE_EVERY {
            return Ok(());
        }
        self.write()
    }

    /// Writes the entries buffered since the last call to the log (not synced).
    pub(crate) fn write(&self) -> std::io::Result<()> {
        let mut log = self.lock_log();
        if log.pending.is_empty() {
            return Ok(());
        }
        let Log { file, len, pending } = &mut *log;
        if let Err(err) = file.write_all(pending) {
            // The file's end is unknown now: put it back where the last whole entry ends.
            // The entries stay buffered and the index keeps them (their spends are in the
            // journal), so the next write tries them again.
            file.set_len(*len)?;
            file.seek(SeekFrom::Start(*len))?;
            return Err(err);
        }
        *len += pending.len() as u64;
        pending.clear();
        Ok(())
    }

    /// Writes what is buffered and waits until the whole log is on disk; its length.
    pub(crate) fn sync(&self) -> std::io::Result<u64> {
        self.write()?;
        let log = self.lock_log();
        log.file.sync_data()?;
        Ok(log.len)
    }

    fn lock_log(&self) -> std::sync::MutexGuard<'_, Log> {
        // Every change to the log either completes or is undone before the lock is let go.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The open log: its whole entries end at `len`; `pending` are the entries not yet written.
#[derive(Debug)]
struct Log {
    file: File,
    len: u64,
    pending: Vec<u8>,
}

/// Reads the next entry into `entry`: its `Y`, or `None` at the end of the log or at an
/// entry that is cut short or fails its checksum (where the whole entries end).
fn read_entry(reader: &mut impl Read, entry: &mut Vec<u8>) -> std::io::Result<Option<[u8; 33]>> {
    entry.clear();
    entry.resize(34, 0);
    if !read_all(reader, entry)? {
        return Ok(None);
    }
    let value_len = usize::from(entry[33]);
    entry.resize(OVERHEAD + value_len, 0);
    if !read_all(reader, &mut entry[34..])? {
        return Ok(None);
    }
    let (body, crc) = entry.split_at(34 + value_len);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Ok(None);
    }
    let mut y = [0u8; 33];
    y.copy_from_slice(&entry[..33]);
    Ok(Some(y))
}

/// Fills `buf`; false if the reader ends first.
fn read_all(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(n: u8) -> [u8; 33] {
        let mut y = [n; 33];
        y[0] = 2;
        y
    }

    #[test]
    fn what_is_written_is_found_again_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let spent = Spent::open(&path, 0).unwrap();
        assert!(!spent.contains(&y(1)));
        assert!(spent.insert(&y(1), b"keyset-and-amount").unwrap());
        assert!(
            !spent.insert(&y(1), b"again").unwrap(),
            "a second insert is refused"
        );
        assert!(spent.contains(&y(1)), "the index shows it before the write");
        assert!(spent.insert(&y(2), b"").unwrap());
        let synced = spent.sync().unwrap();
        assert_eq!(synced, 2 * OVERHEAD as u64 + 17);
        drop(spent);

        let spent = Spent::open(&path, synced).unwrap();
        assert!(spent.contains(&y(1)) && spent.contains(&y(2)));
        assert!(!spent.contains(&y(3)));
        assert_eq!(spent.len(), 2);
    }

    #[test]
    fn entries_reach_the_file_a_piece_at_a_time_and_all_at_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let spent = Spent::open(&path, 0).unwrap();
        let on_disk = || std::fs::metadata(&path).unwrap().len() as usize;
        let per_entry = OVERHEAD + 8;
        let mut written = 0;
        for n in 0u32.. {
            let mut y = [2u8; 33];
            y[1..5].copy_from_slice(&n.to_be_bytes());
            spent.insert(&y, b"8 bytes!").unwrap();
            written += per_entry;
            spent.write_if_full().unwrap();
            if written < WRITE_EVERY {
                assert_eq!(on_disk(), 0, "written before a piece was full");
            } else {
                assert_eq!(on_disk(), written, "a full piece stayed buffered");
                break;
            }
        }
        spent.insert(&y(9), b"8 bytes!").unwrap();
        spent.write_if_full().unwrap();
        assert_eq!(on_disk(), written);
        assert_eq!(spent.sync().unwrap() as usize, written + per_entry);
        assert_eq!(on_disk(), written + per_entry);
    }

    #[test]
    fn the_parity_byte_counts() {
        let dir = tempfile::tempdir().unwrap();
        let spent = Spent::open(&dir.path().join(FILE), 0).unwrap();
        let even = y(5);
        let mut odd = even;
        odd[0] = 3;
        spent.insert(&even, b"").unwrap();
        assert!(!spent.contains(&odd));
    }

    #[test]
    fn a_torn_tail_beyond_the_synced_length_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let spent = Spent::open(&path, 0).unwrap();
        spent.insert(&y(1), b"v").unwrap();
        let synced = spent.sync().unwrap();
        spent.insert(&y(2), b"v").unwrap();
        spent.write().unwrap();
        drop(spent);
        // A crash cut the second entry short.
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();

        let spent = Spent::open(&path, synced).unwrap();
        assert!(spent.contains(&y(1)));
        assert!(!spent.contains(&y(2)), "the torn entry is not indexed");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), synced);
        // What follows is written after the last whole entry.
        spent.insert(&y(3), b"v").unwrap();
        let synced = spent.sync().unwrap();
        drop(spent);
        let spent = Spent::open(&path, synced).unwrap();
        assert!(spent.contains(&y(1)) && spent.contains(&y(3)));
    }

    #[test]
    fn damage_below_the_synced_length_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let spent = Spent::open(&path, 0).unwrap();
        for n in 1..=3 {
            spent.insert(&y(n), b"v").unwrap();
        }
        let synced = spent.sync().unwrap();
        drop(spent);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[OVERHEAD + 5] ^= 0xff; // inside the second entry
        std::fs::write(&path, &bytes).unwrap();

        let err = Spent::open(&path, synced).unwrap_err().to_string();
        assert!(err.contains("damaged at byte 39"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "a damaged log is left as it is"
        );
    }
}
