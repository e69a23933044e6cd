//! The spend journal: an append-only file that makes a batch of spends durable with one
//! `write` and one `fdatasync`, before sled is told of it.
//!
//! sled 0.34 can only make several keys atomic with a transaction or a batch, and each one
//! rolls its log buffer twice; every roll hands a write to sled's I/O pool, whose queue wakes
//! all of its idle threads. Profiled under paid load, that pool and the transaction cost
//! more CPU than the crypto, even with one transaction per batch. So the [`batch`] thread
//! writes each batch here as one checksummed record, waits for the disk, and only then
//! applies it to sled with plain writes, which sled persists later on its own. At start, the
//! records still in the journal are applied again: each write is idempotent (inserts of the
//! same bytes, receipts only where absent, supply counters only if their stored sequence
//! number is older than the record's), so it does not matter how much of a record sled had
//! already kept. Once sled has flushed everything applied (a checkpoint), the journal is
//! emptied.
//!
//! A record is `length (u32 LE) | CRC-32 of the payload (u32 LE) | payload`, and its
//! payload starts with the record's sequence number, larger in each record than in the last.
//! The file is written ahead with zeros (in steps, as it fills) and records overwrite them:
//! an `fdatasync` of an append that grows the file must also commit the new size to the
//! file system's own journal, which cost twice the CPU and twice the wait of an overwrite
//! here. So the file is longer than its records, and reading stops at the first header that
//! is zero (never written, or cleared), incomplete, failing its checksum (a write a crash cut
//! short, which was never acknowledged), or whose sequence number does not follow the one
//! before (a record older than the last checkpoint, left over in space written again since).
//!
//! [`batch`]: crate::batch

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The journal's file, in the store's directory.
pub(crate) const FILE: &str = "coinslot-spends.journal";

/// Journal size after which the batch thread checkpoints.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;

/// Length and checksum before each payload.
const HEADER: usize = 8;

/// The file grows by at least this much at a time (and its own size, up to [`MAX_STEP`]),
/// so a store that writes little takes little room.
const MIN_STEP: u64 = 64 << 10;

/// The file grows by at most this much at a time.
const MAX_STEP: u64 = 1 << 20;

/// What a record entry writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `spent`: `Y` → keyset id + amount.
    Spent = 0,
    /// `sigs`: `B_` → signature.
    Sig = 1,
    /// `receipts.v2`: a new receipt, written only where none is.
    Receipt = 2,
    /// `supply`: keyset id → what the batch adds (issued, redeemed; u64 BE each).
    Supply = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Spent,
            1 => Self::Sig,
            2 => Self::Receipt,
            3 => Self::Supply,
            _ => return None,
        })
    }
}

/// One write of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub kind: Kind,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// A record being built: `seq (u64 LE)`, then per entry `kind (u8) | key length (u8) | key |
/// value length (u32 LE) | value`.
#[derive(Debug)]
pub(crate) struct Record {
    bytes: Vec<u8>,
}

impl Record {
    /// An empty record with sequence number `seq`.
    pub(crate) fn new(seq: u64) -> Self {
        let mut bytes = Vec::with_capacity(512);
        bytes.extend_from_slice(&seq.to_le_bytes());
        Self { bytes }
    }

    /// Adds one write. Keys are at most 255 bytes (ours are 8 to 33).
    pub(crate) fn push(&mut self, kind: Kind, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let key_len = u8::try_from(key.len()).map_err(|_| invalid("journal key too long"))?;
        let value_len =
            u32::try_from(value.len()).map_err(|_| invalid("journal value too long"))?;
        self.bytes.push(kind as u8);
        self.bytes.push(key_len);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(&value_len.to_le_bytes());
        self.bytes.extend_from_slice(value);
        Ok(())
    }

    /// The payload.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A record's sequence number and entries.
pub(crate) fn parse(payload: &[u8]) -> Result<(u64, Vec<Entry<'_>>), String> {
    let (seq, mut rest) = payload
        .split_first_chunk::<8>()
        .ok_or("journal record shorter than its sequence number")?;
    let mut entries = Vec::new();
    while let Some((&kind, tail)) = rest.split_first() {
        let kind = Kind::from_byte(kind).ok_or_else(|| format!("unknown journal entry {kind}"))?;
        let (&key_len, tail) = tail.split_first().ok_or("journal entry cut short")?;
        let (key, tail) = tail
            .split_at_checked(usize::from(key_len))
            .ok_or("journal key cut short")?;
        let (value_len, tail) = tail
            .split_first_chunk::<4>()
            .ok_or("journal entry cut short")?;
        let value_len = usize::try_from(u32::from_le_bytes(*value_len))
            .map_err(|_| "journal value too long")?;
        let (value, tail) = tail
            .split_at_checked(value_len)
            .ok_or("journal value cut short")?;
        entries.push(Entry { kind, key, value });
        rest = tail;
    }
    Ok((u64::from_le_bytes(*seq), entries))
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// The open journal file.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    /// Bytes of whole records: where the next one goes.
    len: u64,
    /// The file's length: zeros written ahead of `len`.
    allocated: u64,
    /// Set when a failed append could not be cut back: the file's end is unknown, so
    /// nothing more may be acknowledged.
    broken: Option<String>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, with the payloads of its records.
    pub(crate) fn open(path: &Path) -> std::io::Result<(Self, Vec<Vec<u8>>)> {
        let mut file = open_file(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (payloads, at) = chain(&bytes);
        let records: Vec<Vec<u8>> = payloads.into_iter().map(<[u8]>::to_vec).collect();
        let rest = bytes.get(at..at + HEADER).unwrap_or_default();
        if rest.iter().any(|&b| b != 0) {
            tracing::info!(
                records = records.len(),
                "spend journal: what follows its records is a write a crash cut short or \
                 records already checkpointed; it is written over"
            );
        }
        Ok((
            Self {
                file,
                len: at as u64,
                allocated: bytes.len() as u64,
                broken: None,
            },
            records,
        ))
    }

    /// Appends one record and waits until it is on disk.
    pub(crate) fn append(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(std::io::Error::other(why.clone()));
        }
        let len = u32::try_from(payload.len()).map_err(|_| invalid("journal record too long"))?;
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        self.reserve(buf.len() as u64)?;
        match self.write_at(self.len, &buf) {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                // The record is refused, so it must never be replayed: zero its header.
                if let Err(cut) = self.write_at(self.len, &[0; HEADER]) {
                    self.broken = Some(format!(
                        "the spend journal could not be cut back after a failed write \
                         ({err}; then {cut}): restart to recover"
                    ));
                }
                Err(err)
            }
        }
    }

    /// Bytes of records in the journal.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Empties the journal, once everything in it is durable elsewhere: its first header is
    /// zeroed, the space is kept for the next records. A crash before this reaches the disk
    /// only means the records are applied again, which changes nothing.
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        if self.len > 0 {
            self.write_at(0, &[0; HEADER])?;
            self.len = 0;
        }
        Ok(())
    }

    /// Empties the journal and gives its space back (a clean stop).
    pub(crate) fn release(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        self.allocated = 0;
        Ok(())
    }

    /// Writes `bytes` at `at` and waits until they are on disk (a positioned write: one
    /// system call fewer per batch than a seek and a write).
    fn write_at(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, at)?;
        self.file.sync_data()
    }

    /// Makes room for `more` bytes after the records: zeros written ahead, and the file's
    /// new length committed, so the appends after only overwrite.
    fn reserve(&mut self, more: u64) -> std::io::Result<()> {
        let needed = self.len.saturating_add(more);
        if needed <= self.allocated {
            return Ok(());
        }
        let step = self.allocated.clamp(MIN_STEP, MAX_STEP);
        let target = needed.div_ceil(step).saturating_mul(step);
        let zeros = vec![0u8; MIN_STEP as usize];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(MIN_STEP);
            self.file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        self.file.sync_all()?;
        self.allocated = target;
        Ok(())
    }
}

/// Opens the file at `path` to read and write, creating it empty if there is none.
pub(crate) fn open_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// How many records the journal at `path` holds (0 for none, or no file).
pub(crate) fn records_in(path: &Path) -> std::io::Result<usize> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(chain(&bytes).0.len()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(err) => Err(err),
    }
}

/// The payloads of the records from the file's start, each with a sequence number after the
/// one before, and where they end.
fn chain(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut payloads = Vec::new();
    let mut at = 0;
    let mut last: Option<u64> = None;
    while let Some((payload, next)) = record_at(bytes, at) {
        let Some(seq) = payload.first_chunk::<8>().map(|s| u64::from_le_bytes(*s)) else {
            break;
        };
        if last.is_some_and(|last| seq <= last) {
            break;
        }
        last = Some(seq);
        payloads.push(payload);
        at = next;
    }
    (payloads, at)
}

/// The payload of the whole record at `at`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let (len, crc) = header.split_at(4);
    let len = usize::try_from(u32::from_le_bytes(len.try_into().ok()?)).ok()?;
    if len == 0 {
        return None; // never written, or cleared
    }
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    let start = at + HEADER;
    let end = start.checked_add(len)?;
    let payload = bytes.get(start..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, key: &[u8]) -> Record {
        let mut record = Record::new(seq);
        record.push(Kind::Spent, key, b"value").unwrap();
        record.push(Kind::Supply, b"keyset", &[7; 16]).unwrap();
        record
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn records_come_back_in_order_with_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        {
            let (mut journal, old) = Journal::open(&path).unwrap();
            assert!(old.is_empty());
            journal.append(record(1, b"a").as_bytes()).unwrap();
            journal.append(record(2, b"b").as_bytes()).unwrap();
            assert!(
                file_len(&path) >= journal.len() + MIN_STEP - journal.len() % MIN_STEP,
                "the file is written ahead of its records"
            );
        }
        let (journal, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            journal.len(),
            records
                .iter()
                .map(|r| (HEADER + r.len()) as u64)
                .sum::<u64>()
        );
        assert_eq!(records_in(&path).unwrap(), 2);
        let (seq, entries) = parse(&records[1]).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(
            entries,
            vec![
                Entry {
                    kind: Kind::Spent,
                    key: b"b",
                    value: b"value"
                },
                Entry {
                    kind: Kind::Supply,
                    key: b"keyset",
                    value: &[7; 16]
                },
            ]
        );
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_dropped_and_appending_goes_on_after_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(record(1, b"a").as_bytes()).unwrap();
        let whole = journal.len();
        journal.append(record(2, b"b").as_bytes()).unwrap();
        drop(journal);
        // A crash cut the second record short: its end never reached the disk.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[whole as usize + 11..].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(journal.len(), whole);
        journal.append(record(3, b"c").as_bytes()).unwrap();
        let end = journal.len();
        drop(journal);
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 2, "the new record took the torn one's place");
        assert_eq!(parse(&records[1]).unwrap().0, 3);
        // A flipped bit in the last record's payload fails its checksum.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[end as usize - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(parse(&records[0]).unwrap().0, 1);
    }

    #[test]
    fn clearing_empties_the_journal_and_its_old_records_never_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (mut journal, _) = Journal::open(&path).unwrap();
        // Records of one size, so the old ones sit exactly where the new ones end.
        for seq in 1..=4 {
            journal.append(record(seq, b"a").as_bytes()).unwrap();
        }
        journal.clear().unwrap();
        assert_eq!(journal.len(), 0);
        assert_eq!(records_in(&path).unwrap(), 0);
        journal.append(record(5, b"b").as_bytes()).unwrap();
        drop(journal);
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), 1, "records 2 to 4 are older than 5");
        assert_eq!(parse(&records[0]).unwrap().0, 5);
        journal.release().unwrap();
        assert_eq!(file_len(&path), 0, "a released journal takes no room");
        drop(journal);
        assert!(Journal::open(&path).unwrap().1.is_empty());
    }

    #[test]
    fn the_file_grows_as_records_fill_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (mut journal, _) = Journal::open(&path).unwrap();
        let value = vec![5u8; 1000];
        let mut written = 0;
        for seq in 1..=300 {
            let mut rec = Record::new(seq);
            rec.push(Kind::Sig, &seq.to_be_bytes(), &value).unwrap();
            journal.append(rec.as_bytes()).unwrap();
            written += 1;
        }
        assert!(journal.len() > 2 * MIN_STEP);
        assert!(file_len(&path) >= journal.len());
        drop(journal);
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(records.len(), written);
        assert_eq!(parse(&records[299]).unwrap().0, 300);
    }

    #[test]
    fn a_malformed_payload_is_an_error_not_a_panic() {
        assert!(parse(b"short").is_err());
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[9, 1, 0]);
        assert!(parse(&bytes)
            .unwrap_err()
            .contains("unknown journal entry 9"));
        let mut bytes = 1u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0, 40, 1, 2]);
        assert!(parse(&bytes).unwrap_err().contains("key cut short"));
    }
}
