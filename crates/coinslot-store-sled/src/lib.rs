//! # coinslot-store-sled
//!
//! [`SledStore`]: the embedded default [`MintStore`] of Coinslot, on [sled].
//!
//! Layout: one tree per record kind, keyed by canonical bytes (points by their compressed
//! 33-byte encoding, so a point has one key however its hex was written):
//!
//! | tree      | key           | value                         |
//! |-----------|---------------|-------------------------------|
//! | `keysets` | keyset id     | `KeysetRecord` (JSON)          |
//! | `quotes`  | quote id      | `MintQuoteRecord` (JSON)       |
//! | `lookups` | lookup id     | quote id                      |
//! | `spent`   | `Y`           | keyset id bytes + amount (BE): only until the next start moves it to the log |
//! | `sigs`    | `B_`          | `BlindSignature` (JSON)        |
//! | `receipts.v2` | receipt key | created_at, version (BE), data length (u32 BE), data, and the answer kept with it: expires_at (BE), answer |
//! | `receipts.pages` | created_at (BE) + page number (BE) | up to 64 receipts moved together: key, value length (u32 BE), value (as in `receipts.v2`) |
//! | `receipts.page-keys` | as `receipts.pages` | the page's receipt keys |
//! | `answers` | receipt key   | expires_at (BE) + data: an answer written without its receipt |
//! | `accounts`| account id    | balance (BE) + created_at (BE) + unit |
//! | `supply`  | keyset id     | issued (BE) + redeemed (BE) + last journal record counted (BE) |
//! | `passes`  | pass id       | `PassRecord` (JSON)            |
//! | `settings`| setting name  | version (BE) + updated_at (BE) + value |
//! | `earnings`| hour (BE) + unit + `0` + route | requests, failed, earned, refunded (BE) |
//! | `meta`    | `spent.log synced` | the spent-proof log's length at its last sync (BE) |
//!
//! Spent proofs live outside sled (`spent.rs`): an index in memory (16 bytes per proof)
//! over an append-only log, `coinslot-spent.log`, which every check reads instead of a
//! tree. Proofs spent by a sled transaction are written to the `spent` tree with it and
//! join the index at once; each start moves the tree's entries into the log.
//!
//! A [`Commit`] is one sled transaction over `spent`, `sigs`, `quotes`, `receipts`,
//! `answers`, `accounts`, `supply` and `passes` (serializable: a
//! conflicting transaction is retried and then sees the other's writes). The call returns only
//! once the write is on disk, through **group commit** ([`flusher`]): each writer takes a
//! ticket after its transaction, one flusher thread fsyncs everything written so far and
//! releases every ticket that flush covered, so concurrent commits share one fsync.
//!
//! Payments and swaps (a commit that spends and writes only a new receipt and signatures)
//! take another road to the same promise: they queue for one batching thread (`batch.rs`),
//! which checks every spend waiting, writes the ones that pass as one record of its own
//! append-only journal (`journal.rs`) with one `fdatasync`, and only then applies them to
//! sled with plain writes, each spend keeping its own outcome. The journal is replayed at
//! start (idempotently) and emptied whenever sled has flushed. A sled transaction rolls the
//! log buffer twice and wakes sled's whole I/O pool each time, which cost more than the
//! crypto when every payment made one, and still a third of the CPU with one per batch.
//! The journal is `coinslot-spends.journal` in the store's directory: a backup of the
//! directory must include it, and the spent-proof log.
//!
//! A payment's new receipt, and its run's answer written lazily after it, are held in
//! memory (`fresh.rs`) and moved to sled by the batching thread within half a second, many
//! to a sled value, found by key through an index in memory (`receipts.rs`, about 50 bytes
//! per receipt kept in a page): one receipt insert per paid request was the store's largest
//! cost left, and grew with the tree (a third more of the store's CPU per paid request with
//! a million receipts kept). A lazy write is therefore lost by a crash within about a
//! second (before, within sled's own flush interval), never a spend or its first receipt.
//! What each batch adds to the supply counters is held the same way (`supply.rs`) and moved
//! with them: it is in the journal meanwhile, and every read adds it.
//!
//! (sled 0.34's own `flush_async` deadlocks when polled concurrently, sled issue #1308, fixed
//! only in an unreleased branch; the flusher thread calls the blocking `flush` instead.)
//!
//! An account debit is a compare-and-swap on `accounts` and does not wait for a flush: sled
//! writes it to its log in order with everything else and flushes it with the next commit or
//! its own timer, so a crash can only forget the newest debits (see the store contract).
//!
//! sled locks its directory, so one process owns a store; several instances on one database
//! need the PostgreSQL store.

use std::path::Path;

use coinslot_mint::cashu::nuts::{BlindSignature, CurrencyUnit, Id, MintQuoteState, PublicKey};
use coinslot_mint::store::{
    point_key, supply_delta, AccountRecord, AccountTotal, AccountWrite, AnswerRecord, Commit,
    EarningsRecord, KeysetRecord, MintQuoteRecord, PassRecord, QuoteTotal, ReceiptRecord,
    SettingRecord, Supply,
};
use coinslot_mint::{MintStore, ReceiptGuard, StoreError};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

mod batch;
pub mod flusher;
mod fresh;
mod journal;
mod receipts;
mod spent;
mod supply;
mod thread;

use flusher::Flusher;

/// The sled-backed store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SledStore {
    keysets: sled::Tree,
    quotes: sled::Tree,
    lookups: sled::Tree,
    /// Spent proofs (see `spent.rs`): every check reads this.
    spent: std::sync::Arc<spent::Spent>,
    /// sled's `spent` tree: proofs spent by the commits that are one sled transaction
    /// (deposits, passes, issues), durable with it; moved into the log at the next start.
    spent_tree: sled::Tree,
    sigs: sled::Tree,
    /// Receipts in sled: alone by key, or in pages an index finds (see `receipts.rs`).
    receipts: std::sync::Arc<receipts::Receipts>,
    answers: sled::Tree,
    accounts: sled::Tree,
    supply: sled::Tree,
    passes: sled::Tree,
    settings: sled::Tree,
    earnings: sled::Tree,
    flusher: Flusher,
    batcher: batch::Batcher,
    /// Taken by every writer of `spent`, `sigs`, `supply` and of a new receipt, so the
    /// [`batch`] thread's checks and writes see nothing change in between.
    write_lock: std::sync::Arc<std::sync::Mutex<()>>,
    /// New receipts in the spend journal, not yet in sled (see `fresh.rs`).
    fresh: std::sync::Arc<fresh::Fresh>,
    /// What batches added to the supply counters, not yet in sled (see `supply.rs`).
    held_supply: std::sync::Arc<supply::HeldSupply>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn corrupt(err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

/// How long [`SledStore::open`] waits for a directory another handle still locks.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether opening failed only because the directory lock is held. sled 0.34 rewraps the
/// `WouldBlock` of `try_lock` as an `Other` error whose text names it, so both are checked.
fn is_lock_contention(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::WouldBlock
        || err.to_string().starts_with("could not acquire lock")
}

impl SledStore {
    /// How many batches of spends the journal of the store in `dir` holds that sled may not
    /// have yet: 0 after a clean stop or once a start has replayed them. Read it with the
    /// store closed (after a crash, before the restart that replays them).
    pub fn journaled_batches(dir: &Path) -> std::io::Result<usize> {
        journal::records_in(&dir.join(journal::FILE))
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput);
        // sled locks the directory. A store this process just closed can still be held for
        // a moment by a task that has not finished dropping its handle (a restart in the
        // same process), so contention is retried briefly; another process holding it
        // still fails, after LOCK_WAIT.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if is_lock_contention(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(backend(format!(
                        "cannot open sled store at {}: {e}",
                        dir.display()
                    )))
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        // Receipts before versions (tree `receipts`) are dropped: at worst, a retry of a
        // payment made just before the upgrade is refused as spent.
        db.drop_tree("receipts").map_err(backend)?;
        let (spent_tree, sigs, supply, meta) = (
            tree("spent")?,
            tree("sigs")?,
            tree("supply")?,
            tree("meta")?,
        );
        let receipts = std::sync::Arc::new(receipts::Receipts::open(&db)?);
        let spent_path = dir.join(spent::FILE);
        let synced = match meta.get(spent::SYNCED_KEY).map_err(backend)? {
            Some(bytes) => split_u64(&bytes)?.0,
            None => 0,
        };
        let spent = spent::Spent::open(&spent_path, synced).map_err(|e| {
            backend(format!(
                "cannot open the spent-proof log {}: {e}",
                spent_path.display()
            ))
        })?;
        let spent = std::sync::Arc::new(spent);
        // Proofs a sled transaction spent (or every one, in a store from before the log).
        let mut moved = 0usize;
        for entry in spent_tree.iter() {
            let (key, value) = entry.map_err(backend)?;
            let y: [u8; 33] = key.as_ref().try_into().map_err(corrupt)?;
            spent.insert(&y, &value).map_err(backend)?;
            moved += 1;
        }
        let write_lock = std::sync::Arc::new(std::sync::Mutex::new(()));
        let fresh = std::sync::Arc::new(fresh::Fresh::default());
        let held_supply = std::sync::Arc::new(supply::HeldSupply::default());
        let trees = batch::Trees {
            db: db.clone(),
            spent: spent.clone(),
            meta,
            sigs: sigs.clone(),
            receipts: receipts.clone(),
            supply: supply.clone(),
            lock: write_lock.clone(),
            fresh: fresh.clone(),
            held_supply: held_supply.clone(),
        };
        let journal_path = dir.join(journal::FILE);
        let (mut journal, records) = journal::Journal::open(&journal_path).map_err(|e| {
            backend(format!(
                "cannot open the spend journal {}: {e}",
                journal_path.display()
            ))
        })?;
        let seq = batch::replay(&trees, &records).map_err(|e| {
            backend(format!(
                "cannot replay the spend journal {}: {e}",
                journal_path.display()
            ))
        })?;
        if !records.is_empty() || moved > 0 {
            // What the last run acknowledged but sled or the log had not kept is in both now.
            batch::make_durable(&trees)?;
            journal.clear().map_err(backend)?;
            // Nothing else writes the tree while the store opens: all it holds is in the log.
            spent_tree.clear().map_err(backend)?;
            tracing::info!(
                batches = records.len(),
                moved,
                spent = spent.len(),
                "spend journal replayed, spent proofs moved to their log"
            );
        }
        let batcher = batch::Batcher::start(trees, journal, seq);
        Ok(Self {
            keysets: tree("keysets")?,
            quotes: tree("quotes")?,
            lookups: tree("lookups")?,
            spent,
            spent_tree,
            sigs,
            receipts,
            answers: tree("answers")?,
            accounts: tree("accounts")?,
            passes: tree("passes")?,
            settings: tree("settings")?,
            earnings: tree("earnings")?,
            supply,
            flusher: Flusher::start(db),
            batcher,
            write_lock,
            fresh,
            held_supply,
        })
    }

    /// Returns once everything written so far is on disk (sharing the fsync with every
    /// other writer waiting at the same time), lazy writes included.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.fresh.settle_all(&self.receipts)?;
        self.durable().await
    }

    /// Returns once every write but the lazy ones held in `fresh` is on disk: what each
    /// durable write waits for (its own write is in sled, not there).
    async fn durable(&self) -> Result<(), StoreError> {
        self.flusher.durable().await
    }

    /// Every quote, decoded (a full scan: for audits and reconciliation).
    fn all_quotes(&self) -> Result<Vec<MintQuoteRecord>, StoreError> {
        self.quotes
            .iter()
            .map(|entry| {
                let (_, bytes) = entry.map_err(backend)?;
                serde_json::from_slice(&bytes).map_err(corrupt)
            })
            .collect()
    }

    fn get_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.quotes
            .get(id.as_bytes())
            .map_err(backend)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(corrupt))
            .transpose()
    }
}

fn encode_account(account: &AccountRecord) -> Vec<u8> {
    let unit = account.unit.to_string();
    let mut value = Vec::with_capacity(16 + unit.len());
    value.extend_from_slice(&account.balance.to_be_bytes());
    value.extend_from_slice(&account.created_at.to_be_bytes());
    value.extend_from_slice(unit.as_bytes());
    value
}

fn decode_account(bytes: &[u8]) -> Result<AccountRecord, StoreError> {
    let (balance, rest) = split_u64(bytes)?;
    let (created_at, unit) = split_u64(rest)?;
    let unit = std::str::from_utf8(unit).map_err(corrupt)?;
    Ok(AccountRecord {
        unit: unit.parse().map_err(corrupt)?,
        balance,
        created_at,
    })
}

fn split_u64(bytes: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (head, rest) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("record too short"))?;
    Ok((u64::from_be_bytes(*head), rest))
}

/// `hour | unit | 0 | route`: rows sort by hour, so a period is one range scan.
fn earnings_key(row: &EarningsRecord) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + row.unit.len() + row.route.len());
    key.extend_from_slice(&row.hour.to_be_bytes());
    key.extend_from_slice(row.unit.as_bytes());
    key.push(0);
    key.extend_from_slice(row.route.as_bytes());
    key
}

fn encode_earnings(row: &EarningsRecord) -> [u8; 32] {
    let mut value = [0u8; 32];
    for (slot, n) in
        value
            .chunks_exact_mut(8)
            .zip([row.requests, row.failed, row.earned, row.refunded])
    {
        slot.copy_from_slice(&n.to_be_bytes());
    }
    value
}

fn decode_earnings(key: &[u8], value: &[u8]) -> Result<EarningsRecord, StoreError> {
    let (hour, rest) = split_u64(key)?;
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("earnings key is not UTF-8"))
    };
    let split = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| corrupt("earnings key without its separator"))?;
    let (requests, value) = split_u64(value)?;
    let (failed, value) = split_u64(value)?;
    let (earned, value) = split_u64(value)?;
    let (refunded, _) = split_u64(value)?;
    Ok(EarningsRecord {
        hour,
        unit: text(&rest[..split])?,
        route: text(&rest[split + 1..])?,
        requests,
        failed,
        earned,
        refunded,
    })
}

/// `issued | redeemed | seq`, big-endian: `seq` is the last spend-journal record counted in
/// (see `journal.rs`), so replaying a record never counts it twice.
fn decode_setting(bytes: &[u8]) -> Result<SettingRecord, StoreError> {
    let (version, rest) = split_u64(bytes)?;
    let (updated_at, value) = split_u64(rest)?;
    Ok(SettingRecord {
        version,
        updated_at,
        value: value.to_vec(),
    })
}

fn encode_supply(supply: Supply, seq: u64) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&supply.issued.to_be_bytes());
    bytes[8..16].copy_from_slice(&supply.redeemed.to_be_bytes());
    bytes[16..].copy_from_slice(&seq.to_be_bytes());
    bytes
}

/// The counters and their journal sequence number (0 in values written before the journal).
fn decode_supply(bytes: &[u8]) -> Result<(Supply, u64), StoreError> {
    let (issued, rest) = split_u64(bytes)?;
    let (redeemed, rest) = split_u64(rest)?;
    let seq = if rest.is_empty() {
        0
    } else {
        split_u64(rest)?.0
    };
    Ok((Supply { issued, redeemed }, seq))
}

/// A receipt as stored: its answer, when it has one, rides in the same value, so the write
/// that records a run's answer is one compare-and-swap on one key.
struct StoredReceipt<'a> {
    created_at: u64,
    version: u64,
    data: &'a [u8],
    /// Expiry and bytes of the answer kept with it.
    answer: Option<(u64, &'a [u8])>,
}

/// `created_at | version | data length (u32) | data | [expires_at | answer]`, big-endian.
fn encode_receipt(
    created_at: u64,
    version: u64,
    data: &[u8],
    answer: Option<(u64, &[u8])>,
) -> Vec<u8> {
    let answer_len = answer.map_or(0, |(_, bytes)| 8 + bytes.len());
    let mut value = Vec::with_capacity(20 + data.len() + answer_len);
    value.extend_from_slice(&created_at.to_be_bytes());
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&(data.len() as u32).to_be_bytes());
    value.extend_from_slice(data);
    if let Some((expires_at, bytes)) = answer {
        value.extend_from_slice(&expires_at.to_be_bytes());
        value.extend_from_slice(bytes);
    }
    value
}

fn parse_receipt(bytes: &[u8]) -> Result<StoredReceipt<'_>, StoreError> {
    let (created_at, rest) = split_u64(bytes)?;
    let (version, rest) = split_u64(rest)?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("receipt too short"))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("receipt cut short"));
    }
    let (data, rest) = rest.split_at(len);
    let answer = if rest.is_empty() {
        None
    } else {
        let (expires_at, bytes) = split_u64(rest)?;
        Some((expires_at, bytes))
    };
    Ok(StoredReceipt {
        created_at,
        version,
        data,
        answer,
    })
}

fn decode_receipt(bytes: &[u8]) -> Result<ReceiptRecord, StoreError> {
    let stored = parse_receipt(bytes)?;
    Ok(ReceiptRecord {
        created_at: stored.created_at,
        version: stored.version,
        data: stored.data.to_vec(),
    })
}

fn encode_answer(expires_at: u64, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + data.len());
    value.extend_from_slice(&expires_at.to_be_bytes());
    value.extend_from_slice(data);
    value
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(corrupt)
}

fn abort<T>(err: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(err))
}

fn unwrap_tx<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|e| match e {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => backend(err),
    })
}

#[async_trait::async_trait]
impl MintStore for SledStore {
    async fn keysets(&self) -> Result<Vec<KeysetRecord>, StoreError> {
        self.keysets
            .iter()
            .values()
            .map(|v| {
                let bytes = v.map_err(backend)?;
                serde_json::from_slice(&bytes).map_err(corrupt)
            })
            .collect()
    }

    async fn put_keysets(&self, keysets: &[KeysetRecord]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for keyset in keysets {
            batch.insert(keyset.id.to_bytes(), encode(keyset)?);
        }
        self.keysets.apply_batch(batch).map_err(backend)?;
        self.durable().await
    }

    async fn add_mint_quote(&self, quote: &MintQuoteRecord) -> Result<(), StoreError> {
        let value = encode(quote)?;
        let result = (&self.quotes, &self.lookups).transaction(|(quotes, lookups)| {
            if quotes.get(quote.id.as_bytes())?.is_some() {
                return abort(StoreError::Duplicate(format!("quote {}", quote.id)));
            }
            if lookups.get(quote.lookup_id.as_bytes())?.is_some() {
                return abort(StoreError::Duplicate(format!(
                    "quote lookup id {}",
                    quote.lookup_id
                )));
            }
            quotes.insert(quote.id.as_bytes(), value.as_slice())?;
            lookups.insert(quote.lookup_id.as_bytes(), quote.id.as_bytes())?;
            Ok(())
        });
        unwrap_tx(result)?;
        self.durable().await
    }

    async fn mint_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.get_quote(id)
    }

    async fn mint_quote_by_lookup_id(
        &self,
        lookup_id: &str,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        match self.lookups.get(lookup_id.as_bytes()).map_err(backend)? {
            Some(id) => self.get_quote(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    async fn mark_mint_quote_paid(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        let result = self.quotes.transaction(|quotes| {
            let Some(bytes) = quotes.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut quote: MintQuoteRecord = match serde_json::from_slice(&bytes) {
                Ok(quote) => quote,
                Err(e) => return abort(corrupt(e)),
            };
            if quote.state == MintQuoteState::Unpaid {
                quote.state = MintQuoteState::Paid;
                quote.updated_at = now;
                let value = match encode(&quote) {
                    Ok(value) => value,
                    Err(e) => return abort(e),
                };
                quotes.insert(id.as_bytes(), value)?;
            }
            Ok(Some(quote))
        });
        let quote = unwrap_tx(result)?;
        self.durable().await?;
        Ok(quote)
    }

    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError> {
        ys.iter()
            .map(|y| Ok(self.spent.contains(&point_key(y))))
            .collect()
    }

    async fn blind_signatures(
        &self,
        blinded: &[PublicKey],
    ) -> Result<Vec<Option<BlindSignature>>, StoreError> {
        blinded
            .iter()
            .map(|b| {
                self.sigs
                    .get(point_key(b))
                    .map_err(backend)?
                    .map(|bytes| serde_json::from_slice(&bytes).map_err(corrupt))
                    .transpose()
            })
            .collect()
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        if let Some(receipt) = commit.receipt.filter(|_| receipt_only(&commit)) {
            return self
                .write_receipt(receipt, commit.answer, commit.lazy)
                .await;
        }
        // Encode outside the transaction: its closure may run more than once.
        let spent_values: Vec<([u8; 33], Vec<u8>)> = commit
            .spend
            .iter()
            .map(|p| {
                let mut value = p.keyset_id.to_bytes();
                value.extend_from_slice(&p.amount.to_be_bytes());
                (point_key(&p.y), value)
            })
            .collect();
        let sig_values = commit
            .issue
            .iter()
            .map(|s| Ok((point_key(&s.blinded), encode(&s.signature)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;

        let answer = commit
            .answer
            .map(|a| (a.key.to_vec(), encode_answer(a.expires_at, a.data)));
        let supply_changes: Vec<(Vec<u8>, Supply)> = supply_delta(&commit)
            .into_iter()
            .map(|(id, delta)| (id.to_bytes(), delta))
            .collect();
        if batchable(&commit) {
            let receipt = commit.receipt.map(|write| {
                let value = encode_receipt(write.created_at, 1, write.data, None);
                (*write.key, value)
            });
            let receipt_of_inputs = commit
                .receipt
                .is_some_and(|r| r.guard == ReceiptGuard::OfInputs);
            return self
                .batcher
                .commit(batch::Spend {
                    spent: spent_values,
                    sigs: sig_values,
                    receipt,
                    receipt_of_inputs,
                    supply: supply_changes,
                })
                .await;
        }
        let trees = (
            &self.spent_tree,
            &self.sigs,
            &self.quotes,
            self.receipts.tree(),
            &self.answers,
            &self.accounts,
            &self.supply,
            &self.passes,
        );
        let write_guard = self.lock_writes();
        if let Some((key, _)) = spent_values
            .iter()
            .find(|(key, _)| self.spent.contains(key))
        {
            return Err(StoreError::AlreadySpent(hex(key)));
        }
        if let Some(write) = &commit.receipt {
            // The transaction reads the receipt from sled: it must be there.
            self.fresh.settle(write.key, &self.receipts)?;
        }
        // Receipts move into pages only from `fresh`, settled above: this stays what it is.
        let paged = match &commit.receipt {
            Some(write) => self.receipts.paged_copy(write.key)?,
            None => None,
        };
        let result = trees.transaction(
            |(spent, sigs, quotes, receipts, answers, accounts, supply, passes)| {
                tx_spend(spent, &spent_values)?;
                for (key, value) in &sig_values {
                    if sigs.insert(&key[..], value.as_slice())?.is_some() {
                        return abort(StoreError::AlreadySigned(hex(key)));
                    }
                }
                if let Some(id) = commit.issue_quote {
                    let Some(bytes) = quotes.get(id.as_bytes())? else {
                        return abort(StoreError::QuoteNotFound);
                    };
                    let mut quote: MintQuoteRecord = match serde_json::from_slice(&bytes) {
                        Ok(quote) => quote,
                        Err(e) => return abort(corrupt(e)),
                    };
                    match quote.state {
                        MintQuoteState::Unpaid => return abort(StoreError::QuoteNotPaid),
                        MintQuoteState::Issued => return abort(StoreError::QuoteAlreadyIssued),
                        MintQuoteState::Paid => {}
                    }
                    quote.state = MintQuoteState::Issued;
                    let value = match encode(&quote) {
                        Ok(value) => value,
                        Err(e) => return abort(e),
                    };
                    quotes.insert(id.as_bytes(), value)?;
                }
                match commit.account {
                    Some(AccountWrite::Credit { id, unit, amount }) => {
                        let account = match accounts.get(id.as_bytes())? {
                            Some(bytes) => match decode_account(&bytes) {
                                Ok(account) => account,
                                Err(e) => return abort(e),
                            },
                            None => AccountRecord::new(unit),
                        };
                        let balance = match account.credited(unit, amount) {
                            Ok(balance) => balance,
                            Err(e) => return abort(e),
                        };
                        let updated = AccountRecord { balance, ..account };
                        accounts.insert(id.as_bytes(), encode_account(&updated))?;
                    }
                    Some(AccountWrite::Close { id, balance }) => {
                        let Some(bytes) = accounts.get(id.as_bytes())? else {
                            return abort(StoreError::AccountNotFound);
                        };
                        match decode_account(&bytes) {
                            Ok(account) if account.balance == balance => {}
                            Ok(_) => return abort(StoreError::BalanceChanged),
                            Err(e) => return abort(e),
                        }
                        accounts.remove(id.as_bytes())?;
                    }
                    Some(AccountWrite::Debit { id, unit, amount }) => {
                        let Some(bytes) = accounts.get(id.as_bytes())? else {
                            return abort(StoreError::AccountNotFound);
                        };
                        let account = match decode_account(&bytes) {
                            Ok(account) => account,
                            Err(e) => return abort(e),
                        };
                        let balance = match account.debited(unit, amount) {
                            Ok(balance) => balance,
                            Err(e) => return abort(e),
                        };
                        let updated = AccountRecord { balance, ..account };
                        accounts.insert(id.as_bytes(), encode_account(&updated))?;
                    }
                    None => {}
                }
                if let Some(write) = commit.pass {
                    let stored = match passes.get(write.id.as_bytes())? {
                        Some(bytes) => match serde_json::from_slice(&bytes) {
                            Ok(pass) => Some(pass),
                            Err(e) => return abort(corrupt(e)),
                        },
                        None => None,
                    };
                    let value = match write.apply(stored).and_then(|pass| encode(&pass)) {
                        Ok(value) => value,
                        Err(e) => return abort(e),
                    };
                    passes.insert(write.id.as_bytes(), value)?;
                }
                // An answer for the receipt written rides in it; any other goes alone.
                let inline = commit
                    .answer
                    .zip(commit.receipt)
                    .filter(|(a, r)| a.key == r.key)
                    .map(|(a, _)| (a.expires_at, a.data));
                if let Some(write) = &commit.receipt {
                    tx_receipt(receipts, write, paged.as_ref(), inline)?;
                }
                if let Some((key, value)) = answer.as_ref().filter(|_| inline.is_none()) {
                    answers.insert(key.as_slice(), value.as_slice())?;
                }
                tx_supply(supply, &supply_changes)
            },
        );
        unwrap_tx(result)?;
        // In the index before the lock goes, so the next check sees them; durable already
        // in sled's tree (once flushed below), they reach the log at its next write.
        for (key, value) in &spent_values {
            self.spent.insert(key, value).map_err(backend)?;
        }
        drop(write_guard);
        if commit.lazy {
            // In sled's log after every earlier write; on disk with the next flush.
            return Ok(());
        }
        self.durable().await
    }

    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError> {
        self.stored_receipt(key)?
            .map(|bytes| decode_receipt(&bytes))
            .transpose()
    }

    async fn answer(&self, key: &[u8; 32]) -> Result<Option<AnswerRecord>, StoreError> {
        if let Some(bytes) = self.stored_receipt(key)? {
            if let Some((expires_at, data)) = parse_receipt(&bytes)?.answer {
                return Ok(Some(AnswerRecord {
                    expires_at,
                    data: data.to_vec(),
                }));
            }
        }
        let Some(bytes) = self.answers.get(key).map_err(backend)? else {
            return Ok(None);
        };
        let (expires_at, data) = split_u64(&bytes)?;
        Ok(Some(AnswerRecord {
            expires_at,
            data: data.to_vec(),
        }))
    }

    async fn prune_answers(&self, expired_before: u64) -> Result<u64, StoreError> {
        self.fresh.settle_all(&self.receipts)?;
        let strip = |value: &[u8]| {
            let stored = parse_receipt(value)?;
            let expired = stored
                .answer
                .is_some_and(|(expires_at, _)| expires_at < expired_before);
            Ok(expired
                .then(|| encode_receipt(stored.created_at, stored.version, stored.data, None)))
        };
        let mut pruned = self.receipts.rewrite(strip, &self.write_lock)?;
        for entry in self.answers.iter() {
            let (key, value) = entry.map_err(backend)?;
            let (expires_at, _) = split_u64(&value)?;
            if expires_at < expired_before {
                // Only remove what was read: an answer written again meanwhile stays.
                let swapped = self
                    .answers
                    .compare_and_swap(&key, Some(value), None as Option<&[u8]>)
                    .map_err(backend)?;
                if swapped.is_ok() {
                    pruned += 1;
                }
            }
        }
        Ok(pruned)
    }

    async fn prune_receipts(&self, created_before: u64) -> Result<u64, StoreError> {
        self.fresh.settle_all(&self.receipts)?;
        self.receipts.prune(created_before, &self.write_lock)
    }

    async fn pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        self.passes
            .get(id.as_bytes())
            .map_err(backend)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(corrupt))
            .transpose()
    }

    async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        loop {
            let Some(current) = self.passes.get(id.as_bytes()).map_err(backend)? else {
                return Ok(None);
            };
            let mut pass: PassRecord = serde_json::from_slice(&current).map_err(corrupt)?;
            pass.revoked = true;
            let swapped = self
                .passes
                .compare_and_swap(id.as_bytes(), Some(current), Some(encode(&pass)?))
                .map_err(backend)?;
            if swapped.is_ok() {
                // A revocation must outlive a crash right after the operator was told.
                self.durable().await?;
                return Ok(Some(pass));
            }
        }
    }

    async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, StoreError> {
        let mut live = Vec::new();
        for entry in self.passes.iter() {
            let (_, value) = entry.map_err(backend)?;
            let pass: PassRecord = serde_json::from_slice(&value).map_err(corrupt)?;
            if pass.expires_at > expires_after {
                live.push(pass);
            }
        }
        Ok(live)
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.accounts
            .get(id.as_bytes())
            .map_err(backend)?
            .map(|bytes| decode_account(&bytes))
            .transpose()
    }

    async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, StoreError> {
        // A compare-and-swap, not a transaction: sled runs every transaction under one global
        // write lock, while single-key operations share it. A transaction that read this key
        // meanwhile fails validation and retries, so debits stay ordered with commits.
        loop {
            let Some(current) = self.accounts.get(id.as_bytes()).map_err(backend)? else {
                return Err(StoreError::AccountNotFound);
            };
            let account = decode_account(&current)?;
            let balance = account.debited(unit, amount)?;
            let updated = encode_account(&AccountRecord { balance, ..account });
            let swapped = self
                .accounts
                .compare_and_swap(id.as_bytes(), Some(current), Some(updated))
                .map_err(backend)?;
            if swapped.is_ok() {
                return Ok(balance);
            }
        }
    }

    async fn supply(&self) -> Result<Vec<(Id, Supply)>, StoreError> {
        self.held_supply
            .read_with(&self.supply)?
            .into_iter()
            .map(|(key, supply)| Ok((Id::from_bytes(&key).map_err(corrupt)?, supply)))
            .collect()
    }

    async fn account_totals(&self) -> Result<Vec<AccountTotal>, StoreError> {
        let accounts = self
            .accounts
            .iter()
            .map(|entry| decode_account(&entry.map_err(backend)?.1))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(AccountTotal::sum(&accounts))
    }

    async fn unpaid_quotes(&self, created_since: u64) -> Result<Vec<MintQuoteRecord>, StoreError> {
        let mut unpaid = self.all_quotes()?;
        unpaid.retain(|q| q.state == MintQuoteState::Unpaid && q.created_at >= created_since);
        Ok(unpaid)
    }

    async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, StoreError> {
        self.settings
            .get(name.as_bytes())
            .map_err(backend)?
            .map(|bytes| decode_setting(&bytes))
            .transpose()
    }

    async fn put_setting(&self, name: &str, value: &[u8], now: u64) -> Result<u64, StoreError> {
        let version = loop {
            let current = self.settings.get(name.as_bytes()).map_err(backend)?;
            let version = match &current {
                Some(bytes) => decode_setting(bytes)?.version + 1,
                None => 1,
            };
            let mut next = Vec::with_capacity(16 + value.len());
            next.extend_from_slice(&version.to_be_bytes());
            next.extend_from_slice(&now.to_be_bytes());
            next.extend_from_slice(value);
            let swapped = self
                .settings
                .compare_and_swap(name.as_bytes(), current, Some(next))
                .map_err(backend)?;
            if swapped.is_ok() {
                break version;
            }
        };
        self.durable().await?;
        Ok(version)
    }

    async fn add_earnings(&self, rows: &[EarningsRecord]) -> Result<(), StoreError> {
        let result = self.earnings.transaction(|tree| {
            for row in rows {
                let key = earnings_key(row);
                let sum = match tree.get(&key)? {
                    Some(bytes) => match decode_earnings(&key, &bytes) {
                        Ok(mut stored) => {
                            stored.add(row);
                            stored
                        }
                        Err(e) => return abort(e),
                    },
                    None => row.clone(),
                };
                tree.insert(key, &encode_earnings(&sum)[..])?;
            }
            Ok(())
        });
        unwrap_tx(result)?;
        self.durable().await
    }

    async fn earnings(&self, since: u64) -> Result<Vec<EarningsRecord>, StoreError> {
        self.earnings
            .range(since.to_be_bytes()..)
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                decode_earnings(&key, &value)
            })
            .collect()
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.batcher.health()?;
        // A read through sled's page cache: the tree is there and answers.
        self.keysets.first().map_err(backend)?;
        Ok(())
    }

    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError> {
        Ok(QuoteTotal::sum(&self.all_quotes()?))
    }
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;

/// Marks proofs spent; `insert` returns the previous value, which also catches a `Y` twice
/// in one commit.
fn tx_spend(spent: &TransactionalTree, values: &[([u8; 33], Vec<u8>)]) -> TxResult {
    for (key, value) in values {
        if spent.insert(&key[..], value.as_slice())?.is_some() {
            return abort(StoreError::AlreadySpent(hex(key)));
        }
    }
    Ok(())
}

/// Writes a receipt as its guard allows (the version found is checked first), with
/// `answer` or else the answer it kept, alone in `tree`; `paged` is its copy in a page, if
/// it was moved in one (what it is unless it has been written alone since).
fn tx_receipt(
    tree: &TransactionalTree,
    write: &coinslot_mint::ReceiptWrite<'_>,
    paged: Option<&sled::IVec>,
    answer: Option<(u64, &[u8])>,
) -> TxResult {
    if write.guard.inserts_only() {
        // A new receipt (a payment's): one insert, which says what it replaced.
        let value = encode_receipt(write.created_at, 1, write.data, answer);
        if paged.is_some() || tree.insert(&write.key[..], value)?.is_some() {
            return abort(StoreError::ReceiptChanged);
        }
        return Ok(());
    }
    let current = match tree.get(&write.key[..])? {
        Some(value) => Some(value),
        None => paged.cloned(),
    };
    let value = match next_receipt(current.as_deref(), write, answer) {
        Ok(value) => value,
        Err(e) => return abort(e),
    };
    tree.insert(&write.key[..], value)?;
    Ok(())
}

/// The value a receipt write leaves, given what is stored: its guard checked, its first
/// write's `created_at` and the answer kept (unless one is given).
fn next_receipt(
    current: Option<&[u8]>,
    write: &coinslot_mint::ReceiptWrite<'_>,
    answer: Option<(u64, &[u8])>,
) -> Result<Vec<u8>, StoreError> {
    let stored = current.map(parse_receipt).transpose()?;
    let version = write.next_version(stored.as_ref().map(|s| s.version))?;
    let created_at = stored.as_ref().map_or(write.created_at, |s| s.created_at);
    let answer = answer.or_else(|| stored.and_then(|s| s.answer));
    Ok(encode_receipt(created_at, version, write.data, answer))
}

/// Adds each keyset's delta to its counters.
fn tx_supply(supply: &TransactionalTree, changes: &[(Vec<u8>, Supply)]) -> TxResult {
    for (key, delta) in changes {
        let (current, seq) = match supply.get(key.as_slice())? {
            Some(bytes) => match decode_supply(&bytes) {
                Ok(current) => current,
                Err(e) => return abort(e),
            },
            None => (Supply::default(), 0),
        };
        supply.insert(
            key.as_slice(),
            &encode_supply(current.plus(*delta), seq)[..],
        )?;
    }
    Ok(())
}

/// Whether a commit spends and writes nothing but its receipt (a new one), the signatures
/// of its outputs and the proofs it makes: a payment or a swap, which go through the
/// [`batch`] thread, many in one transaction.
fn batchable(commit: &Commit<'_>) -> bool {
    !commit.spend.is_empty()
        && !commit.lazy
        && commit.issue_quote.is_none()
        && commit.account.is_none()
        && commit.pass.is_none()
        && commit.answer.is_none()
        && commit.receipt.is_none_or(|r| r.guard.inserts_only())
}

/// Whether a commit writes a receipt (and maybe its own answer, which rides in the same
/// value) and nothing else: one key, so no transaction.
fn receipt_only(commit: &Commit<'_>) -> bool {
    let own_answer = match (&commit.answer, &commit.receipt) {
        (None, _) => true,
        (Some(answer), Some(receipt)) => answer.key == receipt.key,
        (Some(_), None) => false,
    };
    own_answer
        && commit.spend.is_empty()
        && commit.issue.is_empty()
        && commit.made.is_empty()
        && commit.issue_quote.is_none()
        && commit.account.is_none()
        && commit.pass.is_none()
}

impl SledStore {
    /// A receipt write that moves no value (a run's lease, the answer it gave): one
    /// compare-and-swap on its key, the answer in the same value, not a transaction. sled
    /// runs every transaction under one global write lock, and a paid request makes one of
    /// these per run.
    async fn write_receipt(
        &self,
        write: coinslot_mint::ReceiptWrite<'_>,
        answer: Option<coinslot_mint::AnswerWrite<'_>>,
        lazy: bool,
    ) -> Result<(), StoreError> {
        // `receipt_only` lets through only an answer under the receipt's own key.
        let inline = answer.map(|a| (a.expires_at, a.data));
        // One that may create the receipt must not slip between a batch's check and write;
        // one that replaces a version can only find a receipt that exists already.
        let write_guard = match write.guard {
            ReceiptGuard::Version(_) => None,
            _ => Some(self.lock_writes()),
        };
        // A receipt held in `fresh` is written there: no one else can write it while the
        // map holds it. A lazy write (a run's answer) stays there until the batch thread
        // moves it to sled with its neighbours; a durable one goes to sled at once.
        let settled = {
            let mut held = self.fresh.lock();
            match held.get(write.key) {
                Some(current) => {
                    let value = next_receipt(Some(current.as_ref()), &write, inline)?;
                    if lazy {
                        held.insert(*write.key, sled::IVec::from(value));
                    } else {
                        self.receipts.insert(write.key, value.into())?;
                        held.remove(write.key);
                    }
                    true
                }
                None => false,
            }
        };
        if !settled {
            self.receipts
                .update(write.key, |current| next_receipt(current, &write, inline))?;
        }
        drop(write_guard);
        if lazy {
            return Ok(());
        }
        self.durable().await
    }

    /// The stored value of the receipt under `key`, wherever it is (see `fresh.rs`).
    fn stored_receipt(&self, key: &[u8; 32]) -> Result<Option<sled::IVec>, StoreError> {
        match self.fresh.get(key) {
            Some(value) => Ok(Some(value)),
            None => self.receipts.get(key),
        }
    }

    /// The write lock (see `write_lock`).
    fn lock_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        lock_writes(&self.write_lock)
    }
}

/// Takes the write lock shared by the store and its [`batch`] thread. It guards no data of
/// its own, so a panic while it was held leaves nothing half-done behind it.
fn lock_writes(lock: &std::sync::Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
