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
//! | `spent`   | `Y`           | keyset id bytes + amount (BE) |
//! | `sigs`    | `B_`          | `BlindSignature` (JSON)        |
//! | `receipts.v2` | receipt key | created_at (BE) + version (BE) + data |
//! | `answers` | receipt key   | expires_at (BE) + data        |
//! | `accounts`| account id    | balance (BE) + created_at (BE) + unit |
//! | `supply`  | keyset id     | issued (BE) + redeemed (BE)   |
//! | `passes`  | pass id       | `PassRecord` (JSON)            |
//!
//! A [`Commit`] is one sled transaction over `spent`, `sigs`, `quotes`, `receipts`,
//! `answers`, `accounts`, `supply` and `passes` (serializable: a
//! conflicting transaction is retried and then sees the other's writes). The call returns only
//! once the write is on disk, through **group commit** ([`flusher`]): each writer takes a
//! ticket after its transaction, one flusher thread fsyncs everything written so far and
//! releases every ticket that flush covered, so concurrent commits share one fsync.
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
    KeysetRecord, MintQuoteRecord, PassRecord, QuoteTotal, ReceiptRecord, Supply,
};
use coinslot_mint::{MintStore, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub mod flusher;

use flusher::Flusher;

/// The sled-backed store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SledStore {
    keysets: sled::Tree,
    quotes: sled::Tree,
    lookups: sled::Tree,
    spent: sled::Tree,
    sigs: sled::Tree,
    receipts: sled::Tree,
    answers: sled::Tree,
    accounts: sled::Tree,
    supply: sled::Tree,
    passes: sled::Tree,
    flusher: Flusher,
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
        Ok(Self {
            keysets: tree("keysets")?,
            quotes: tree("quotes")?,
            lookups: tree("lookups")?,
            spent: tree("spent")?,
            sigs: tree("sigs")?,
            receipts: tree("receipts.v2")?,
            answers: tree("answers")?,
            accounts: tree("accounts")?,
            passes: tree("passes")?,
            supply: tree("supply")?,
            flusher: Flusher::start(db),
        })
    }

    /// Returns once everything written so far is on disk (sharing the fsync with every
    /// other writer waiting at the same time).
    pub async fn flush(&self) -> Result<(), StoreError> {
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

fn encode_supply(supply: Supply) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&supply.issued.to_be_bytes());
    bytes[8..].copy_from_slice(&supply.redeemed.to_be_bytes());
    bytes
}

fn decode_supply(bytes: &[u8]) -> Result<Supply, StoreError> {
    let (issued, rest) = split_u64(bytes)?;
    let (redeemed, _) = split_u64(rest)?;
    Ok(Supply { issued, redeemed })
}

fn encode_receipt(created_at: u64, version: u64, data: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(16 + data.len());
    value.extend_from_slice(&created_at.to_be_bytes());
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(data);
    value
}

fn decode_receipt(bytes: &[u8]) -> Result<ReceiptRecord, StoreError> {
    let (created_at, rest) = split_u64(bytes)?;
    let (version, data) = split_u64(rest)?;
    Ok(ReceiptRecord {
        created_at,
        version,
        data: data.to_vec(),
    })
}

/// The version of a stored receipt, read without copying its data.
fn receipt_version(bytes: &[u8]) -> Result<u64, StoreError> {
    let (_, rest) = split_u64(bytes)?;
    Ok(split_u64(rest)?.0)
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
        self.flush().await
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
        self.flush().await
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
        self.flush().await?;
        Ok(quote)
    }

    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError> {
        ys.iter()
            .map(|y| self.spent.contains_key(point_key(y)).map_err(backend))
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
        let trees = (
            &self.spent,
            &self.sigs,
            &self.quotes,
            &self.receipts,
            &self.answers,
            &self.accounts,
            &self.supply,
            &self.passes,
        );
        let result = trees.transaction(
            |(spent, sigs, quotes, receipts, answers, accounts, supply, passes)| {
                for (key, value) in &spent_values {
                    // `insert` returns the previous value: also catches a Y twice in one commit.
                    if spent.insert(&key[..], value.as_slice())?.is_some() {
                        return abort(StoreError::AlreadySpent(hex(key)));
                    }
                }
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
                if let Some(write) = &commit.receipt {
                    let stored = match receipts.get(&write.key[..])? {
                        Some(bytes) => match receipt_version(&bytes) {
                            Ok(version) => Some(version),
                            Err(e) => return abort(e),
                        },
                        None => None,
                    };
                    let version = match write.next_version(stored) {
                        Ok(version) => version,
                        Err(e) => return abort(e),
                    };
                    let value = encode_receipt(write.created_at, version, write.data);
                    receipts.insert(&write.key[..], value)?;
                }
                if let Some((key, value)) = &answer {
                    answers.insert(key.as_slice(), value.as_slice())?;
                }
                for (key, delta) in &supply_changes {
                    let current = match supply.get(key.as_slice())? {
                        Some(bytes) => match decode_supply(&bytes) {
                            Ok(current) => current,
                            Err(e) => return abort(e),
                        },
                        None => Supply::default(),
                    };
                    supply.insert(key.as_slice(), &encode_supply(current.plus(*delta))[..])?;
                }
                Ok(())
            },
        );
        unwrap_tx(result)?;
        if commit.lazy {
            // In sled's log after every earlier write; on disk with the next flush.
            return Ok(());
        }
        self.flush().await
    }

    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError> {
        self.receipts
            .get(key)
            .map_err(backend)?
            .map(|bytes| decode_receipt(&bytes))
            .transpose()
    }

    async fn answer(&self, key: &[u8; 32]) -> Result<Option<AnswerRecord>, StoreError> {
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
        let mut pruned = 0;
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
        let mut pruned = 0;
        for entry in self.receipts.iter() {
            let (key, value) = entry.map_err(backend)?;
            let (created_at, _) = split_u64(&value)?;
            if created_at < created_before {
                // Only remove what was read: a receipt replaced meanwhile stays.
                let swapped = self
                    .receipts
                    .compare_and_swap(&key, Some(value), None as Option<&[u8]>)
                    .map_err(backend)?;
                if swapped.is_ok() {
                    pruned += 1;
                }
            }
        }
        Ok(pruned)
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
                self.flush().await?;
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
        self.supply
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                let id = Id::from_bytes(&key).map_err(corrupt)?;
                Ok((id, decode_supply(&value)?))
            })
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

    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError> {
        Ok(QuoteTotal::sum(&self.all_quotes()?))
    }
}

/// Whether a commit writes a receipt (and maybe its answer) and nothing else.
fn receipt_only(commit: &Commit<'_>) -> bool {
    commit.spend.is_empty()
        && commit.issue.is_empty()
        && commit.made.is_empty()
        && commit.issue_quote.is_none()
        && commit.account.is_none()
        && commit.pass.is_none()
}

impl SledStore {
    /// A receipt write that moves no value (a run's lease, the answer it gave): a
    /// compare-and-swap on its key, not a transaction. sled runs every transaction under
    /// one global write lock, and a paid request makes one of these per run. The answer
    /// goes first (a reader takes it only once the receipt says it is there) and is taken
    /// back if the receipt's guard fails, so the pair is all or nothing.
    async fn write_receipt(
        &self,
        write: coinslot_mint::ReceiptWrite<'_>,
        answer: Option<coinslot_mint::AnswerWrite<'_>>,
        lazy: bool,
    ) -> Result<(), StoreError> {
        let mut undo = None;
        if let Some(answer) = answer {
            let value = encode_answer(answer.expires_at, answer.data);
            let before = self
                .answers
                .insert(&answer.key[..], value.as_slice())
                .map_err(backend)?;
            undo = Some((answer.key, value, before));
        }
        let swapped = loop {
            let current = self.receipts.get(&write.key[..]).map_err(backend)?;
            let stored = current.as_deref().map(receipt_version).transpose()?;
            let version = match write.next_version(stored) {
                Ok(version) => version,
                Err(err) => break Err(err),
            };
            let value = encode_receipt(write.created_at, version, write.data);
            let swapped = self
                .receipts
                .compare_and_swap(&write.key[..], current, Some(value))
                .map_err(backend)?;
            if swapped.is_ok() {
                break Ok(());
            }
        };
        if let (Err(_), Some((key, value, before))) = (&swapped, undo) {
            let _ = self
                .answers
                .compare_and_swap(&key[..], Some(value), before)
                .map_err(backend)?;
        }
        swapped?;
        if lazy {
            return Ok(());
        }
        self.flush().await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
