//! Batched payments and swaps: one journal record and one `fdatasync` for every spend
//! waiting.
//!
//! Spends (a payment with its receipt, a swap with its signatures) queue here; one thread
//! takes everything queued, checks each spend (no input spent, in the store or earlier in
//! the batch; no output signed; its receipt new, which a receipt keyed by the inputs is
//! whenever they are unspent), writes the ones that pass as one
//! [`journal`](crate::journal) record, waits for the disk, applies them to sled with plain
//! writes and answers each. Under load the queue fills while the thread waits for the disk,
//! so the cost is shared; an idle store's spend waits for one `fdatasync`. One refused spend
//! never fails the others, and the batch is atomic on disk as a whole (one record).
//!
//! The check and the writes are made under the store's write lock, which every other writer
//! of these trees takes too (the transactions of the other commits, a receipt created
//! alone), so nothing can slip in between a check and its write. A sled transaction per batch
//! did the same job before and cost three writes from sled's I/O pool per batch, each waking
//! all of its idle threads: 38% of the process's CPU under paid load.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use coinslot_mint::store::Supply;
use coinslot_mint::StoreError;
use tokio::sync::oneshot;

use crate::fresh::{self, Fresh};
use crate::journal::{self, Journal, Kind, Record};
use crate::receipts::Receipts;
use crate::spent::{self, Spent};
use crate::supply::{self, HeldSupply};
use crate::thread::Stopper;

/// Most spends in one batch: bounds the time one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// One spend, encoded: the keys and values it writes.
#[derive(Debug)]
pub(crate) struct Spend {
    /// `Y` → keyset id + amount, for each input.
    pub spent: Vec<([u8; 33], Vec<u8>)>,
    /// `B_` → signature, for each output signed.
    pub sigs: Vec<([u8; 33], Vec<u8>)>,
    /// A new receipt: key, value.
    pub receipt: Option<([u8; 32], Vec<u8>)>,
    /// Whether the receipt's key is the inputs' own ([`ReceiptGuard::OfInputs`]): new
    /// whenever they are unspent, so not looked up.
    ///
    /// [`ReceiptGuard::OfInputs`]: coinslot_mint::ReceiptGuard::OfInputs
    pub receipt_of_inputs: bool,
    /// Keyset id → what the spend adds to its supply.
    pub supply: Vec<(Vec<u8>, Supply)>,
}

struct Job {
    spend: Spend,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The trees a spend writes, the database to flush, and the lock every writer of them takes.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub db: sled::Db,
    /// Spent proofs: the index and its log.
    pub spent: Arc<Spent>,
    /// Where the log's synced length is kept.
    pub meta: sled::Tree,
    pub sigs: sled::Tree,
    pub receipts: Arc<Receipts>,
    pub supply: sled::Tree,
    pub lock: Arc<Mutex<()>>,
    /// New receipts written live: in the journal, not yet in sled.
    pub fresh: Arc<Fresh>,
    /// What live batches added to the supply counters: in the journal, not yet in sled.
    pub held_supply: Arc<HeldSupply>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    stop: bool,
    /// The thread waits on the condition variable: a new job must wake it. Otherwise it is
    /// busy and takes the job with its next batch; a notify would be a system call per
    /// payment for nothing.
    idle: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    cond: Condvar,
    /// Why the thread refuses every spend until a restart, once it does (see `State`).
    broken: Mutex<Option<String>>,
}

/// Handle to the batching thread; cheap to clone. The thread ends with the last handle,
/// after the spends queued before.
#[derive(Clone)]
pub(crate) struct Batcher {
    shared: Arc<Shared>,
    _stop: Arc<Stopper>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching thread over `trees`, writing to `journal` (already replayed);
    /// `seq` is the highest sequence number used so far.
    pub(crate) fn start(trees: Trees, journal: Journal, seq: u64) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            broken: Mutex::new(None),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("coinslot-sled-batch".into())
            .spawn(move || run(&thread_shared, &trees, journal, seq))
            .map_err(|err| {
                // Without the thread nothing would answer: refuse spends instead of hanging.
                tracing::error!(error = %err, "cannot start the sled batch thread");
                if let Ok(mut queue) = shared.queue.lock() {
                    queue.stop = true;
                }
            })
            .ok();
        let stopping = Arc::clone(&shared);
        let stop = move || {
            if let Ok(mut queue) = stopping.queue.lock() {
                queue.stop = true;
            }
            stopping.cond.notify_one();
        };
        Self {
            _stop: Stopper::new(thread, stop),
            shared,
        }
    }

    /// Whether spends can be taken: the thread runs and has not stopped taking them.
    pub(crate) fn health(&self) -> Result<(), StoreError> {
        let stopped = self.shared.queue.lock().map_or(true, |queue| queue.stop);
        if stopped {
            return Err(StoreError::Backend(
                "the sled batch thread is not running".into(),
            ));
        }
        match self.shared.broken.lock().as_deref() {
            Ok(None) => Ok(()),
            Ok(Some(why)) => Err(StoreError::Backend(why.to_string())),
            Err(_) => Err(StoreError::Backend("sled batch state lock poisoned".into())),
        }
    }

    /// Applies `spend` with whatever else is queued, durably; its own outcome.
    pub(crate) async fn commit(&self, spend: Spend) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
        let idle;
        {
            let mut queue = self
                .shared
                .queue
                .lock()
                .map_err(|_| StoreError::Backend("batch queue lock poisoned".into()))?;
            if queue.stop {
                return Err(StoreError::Backend("the store is closing".into()));
            }
            queue.jobs.push(Job { spend, done });
            idle = queue.idle;
        }
        if idle {
            self.shared.cond.notify_one();
        }
        outcome
            .await
            .map_err(|_| StoreError::Backend("the sled batch thread stopped".into()))?
    }
}

/// What the batch thread carries from one batch to the next.
struct State {
    journal: Journal,
    /// Sequence number of the last record written.
    seq: u64,
    /// Set when a record reached the journal but not sled: sled no longer shows every spend,
    /// so nothing more may be checked against it until a restart replays the journal.
    broken: Option<String>,
}

fn run(shared: &Shared, trees: &Trees, journal: Journal, seq: u64) {
    let mut state = State {
        journal,
        seq,
        broken: None,
    };
    // When what is held was last moved to sled, or the first of it since was held.
    let mut settled_at = Instant::now();
    loop {
        let jobs = {
            let Ok(mut queue) = shared.queue.lock() else {
                break;
            };
            // Idle, it still wakes to move held receipts and sums to sled when they are due.
            while queue.jobs.is_empty() && !queue.stop {
                let due =
                    holds(trees).then(|| fresh::SETTLE_EVERY.saturating_sub(settled_at.elapsed()));
                if due == Some(Duration::ZERO) {
                    break;
                }
                queue.idle = true;
                let woken = match due {
                    Some(wait) => shared.cond.wait_timeout(queue, wait).ok().map(|(q, _)| q),
                    None => shared.cond.wait(queue).ok(),
                };
                let Some(woken) = woken else {
                    return;
                };
                queue = woken;
                queue.idle = false;
            }
            if queue.jobs.is_empty() && queue.stop {
                break; // stopping, nothing left
            }
            let take = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..take).collect::<Vec<_>>()
        };
        if !jobs.is_empty() {
            // The clock starts with the first receipt or sum held since the last move.
            let held_before = holds(trees);
            commit_batch(shared, trees, &mut state, jobs);
            if !held_before {
                settled_at = Instant::now();
            }
        }
        // Between two batches, after the answers: the next batch waits for it (at 11,000
        // payments a second, ~30 ms twice a second; in slices it cost every payment more).
        if settled_at.elapsed() >= fresh::SETTLE_EVERY {
            settle(trees);
            settled_at = Instant::now();
        }
        if state.journal.len() >= journal::CHECKPOINT_BYTES {
            checkpoint(trees, &mut state);
        }
    }
    checkpoint(trees, &mut state);
    // A clean stop leaves an empty journal file: its space is written ahead again on start.
    if state.journal.len() == 0 && state.broken.is_none() {
        if let Err(err) = state.journal.release() {
            tracing::warn!(error = %err, "spend journal: cannot give its space back");
        }
    }
}

/// Whether receipts or supply sums are held in memory, for the batch thread to move.
fn holds(trees: &Trees) -> bool {
    !trees.fresh.is_empty() || !trees.held_supply.is_empty()
}

/// Commits `jobs` as one batch under the write lock and answers each.
fn commit_batch(shared: &Shared, trees: &Trees, state: &mut State, jobs: Vec<Job>) {
    let outcomes = {
        let _write = crate::lock_writes(&trees.lock);
        batch(trees, state, &jobs)
    };
    if let Some(why) = &state.broken {
        if let Ok(mut broken) = shared.broken.lock() {
            broken.get_or_insert_with(|| why.clone());
        }
    }
    match outcomes {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.done.send(outcome);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, spends = jobs.len(), "sled batch failed");
            for job in jobs {
                let _ = job.done.send(Err(StoreError::Backend(err.to_string())));
            }
        }
    }
}

/// Checks every job, makes the ones that pass durable as one record, applies it to sled.
fn batch(
    trees: &Trees,
    state: &mut State,
    jobs: &[Job],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    if let Some(why) = &state.broken {
        return Err(StoreError::Backend(why.clone()));
    }
    let mut taken = HashSet::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut accepted = Vec::with_capacity(jobs.len());
    for job in jobs {
        let outcome = check(&job.spend, &mut taken, trees)?;
        if outcome.is_ok() {
            accepted.push(&job.spend);
        }
        outcomes.push(outcome);
    }
    if accepted.is_empty() {
        return Ok(outcomes); // nothing to write: replays refused
    }
    let record = encode(state.seq + 1, &accepted).map_err(crate::backend)?;
    state
        .journal
        .append(record.as_bytes())
        .map_err(|e| StoreError::Backend(format!("spend journal write failed: {e}")))?;
    state.seq += 1;
    if let Err(err) = apply(trees, record.as_bytes(), Applying::Live) {
        state.broken = Some(format!(
            "a batch reached the spend journal but not sled ({err}): restart to replay it"
        ));
        return Err(err);
    }
    Ok(outcomes)
}

/// Moves the receipts and supply sums held in memory to sled (they stay in the journal until
/// a checkpoint).
fn settle(trees: &Trees) {
    if let Err(err) = trees.fresh.settle_all(&trees.receipts) {
        // They stay held, and every reader still finds them there: tried again next time.
        tracing::warn!(error = %err, "cannot move held receipts to sled");
    }
    if let Err(err) = move_supply(trees) {
        tracing::warn!(error = %err, "cannot move held supply sums to sled");
    }
}

/// Moves the supply sums held in memory to sled, under the write lock.
fn move_supply(trees: &Trees) -> Result<(), StoreError> {
    if trees.held_supply.is_empty() {
        return Ok(());
    }
    let _write = crate::lock_writes(&trees.lock);
    trees.held_supply.move_to(&trees.supply)
}

/// Makes everything applied so far durable outside the journal: the spent-proof log synced
/// (its length noted in sled), then sled flushed.
pub(crate) fn make_durable(trees: &Trees) -> Result<(), StoreError> {
    trees.fresh.settle_all(&trees.receipts)?;
    move_supply(trees)?;
    let synced = trees.spent.sync().map_err(crate::backend)?;
    trees
        .meta
        .insert(spent::SYNCED_KEY, &synced.to_be_bytes())
        .map_err(crate::backend)?;
    trees.db.flush().map_err(crate::backend)?;
    Ok(())
}

/// Makes everything the journal holds durable elsewhere, then empties it.
fn checkpoint(trees: &Trees, state: &mut State) {
    if state.journal.len() == 0 || state.broken.is_some() {
        return;
    }
    let done = make_durable(trees)
        .map_err(|e| e.to_string())
        .and_then(|()| state.journal.clear().map_err(|e| e.to_string()));
    if let Err(err) = done {
        // The journal keeps growing and is replayed at the next start: nothing is lost.
        tracing::warn!(error = %err, "spend journal checkpoint failed");
    }
}

/// The record of `spends`, with sequence number `seq`: their writes, then what they add to
/// each keyset's supply.
pub(crate) fn encode(seq: u64, spends: &[&Spend]) -> std::io::Result<Record> {
    let mut record = Record::new(seq);
    let mut added: BTreeMap<&[u8], Supply> = BTreeMap::new();
    for spend in spends {
        for (key, value) in &spend.spent {
            record.push(Kind::Spent, key, value)?;
        }
        for (key, value) in &spend.sigs {
            record.push(Kind::Sig, key, value)?;
        }
        if let Some((key, value)) = &spend.receipt {
            record.push(Kind::Receipt, key, value)?;
        }
        for (keyset, delta) in &spend.supply {
            let sum = added.entry(keyset.as_slice()).or_default();
            *sum = sum.plus(*delta);
        }
    }
    for (keyset, delta) in added {
        record.push(Kind::Supply, keyset, &crate::encode_supply(delta, seq))?;
    }
    Ok(record)
}

/// Whether a record is applied as its batch is written, or replayed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applying {
    /// Just checked under the write lock: its receipts are new, so written without a read.
    Live,
    /// Left by the last run: sled may hold any part of it, or newer versions of its receipts.
    Replay,
}

/// Applies one journal record to sled, live or at start; returns its sequence number.
/// Applying a record twice, or one sled already kept in part, changes nothing: spends and
/// signatures are the same bytes again, a receipt is written only where none is (one found
/// is this one, or newer), and a supply counter moves only if the sequence number stored
/// with it is older than the record's.
pub(crate) fn apply(trees: &Trees, payload: &[u8], applying: Applying) -> Result<u64, StoreError> {
    let (seq, entries) = journal::parse(payload).map_err(crate::corrupt)?;
    for entry in entries {
        match entry.kind {
            Kind::Spent => {
                let y = <&[u8; 33]>::try_from(entry.key).map_err(crate::corrupt)?;
                trees.spent.insert(y, entry.value).map_err(crate::backend)?;
            }
            Kind::Sig => {
                trees
                    .sigs
                    .insert(entry.key, entry.value)
                    .map_err(crate::backend)?;
            }
            Kind::Receipt if applying == Applying::Live => {
                // The batch's check found no receipt under the write lock, which every
                // creator of a receipt takes. It stays out of sled until the run writes it
                // again or a checkpoint comes (see `fresh.rs`).
                let key = <[u8; 32]>::try_from(entry.key).map_err(crate::corrupt)?;
                trees
                    .fresh
                    .lock()
                    .insert(key, sled::IVec::from(entry.value));
            }
            Kind::Receipt => {
                // Only where none is: one found is this one, or newer. Nothing else writes
                // receipts while the store opens.
                let key = <&[u8; 32]>::try_from(entry.key).map_err(crate::corrupt)?;
                if !trees.receipts.contains(key)? {
                    trees.receipts.insert(key, sled::IVec::from(entry.value))?;
                }
            }
            Kind::Supply if applying == Applying::Live => {
                // Held with the record's number until the thread moves it (see `supply.rs`).
                let (delta, _) = crate::decode_supply(entry.value)?;
                trees.held_supply.add(entry.key, delta, seq);
            }
            Kind::Supply => {
                let (delta, _) = crate::decode_supply(entry.value)?;
                let (current, applied) = supply::read(&trees.supply, entry.key)?;
                if applied < seq {
                    trees
                        .supply
                        .insert(
                            entry.key,
                            &crate::encode_supply(current.plus(delta), seq)[..],
                        )
                        .map_err(crate::backend)?;
                }
            }
        }
    }
    trees.spent.write_if_full().map_err(crate::backend)?;
    Ok(seq)
}

/// Applies the records left in the journal by the last run; returns the highest sequence
/// number in use (from them or from the supply counters), where the batch thread goes on.
pub(crate) fn replay(trees: &Trees, records: &[Vec<u8>]) -> Result<u64, StoreError> {
    let mut seq = 0;
    for payload in records {
        seq = seq.max(apply(trees, payload, Applying::Replay)?);
    }
    for entry in trees.supply.iter() {
        let (_, value) = entry.map_err(crate::backend)?;
        seq = seq.max(crate::decode_supply(&value)?.1);
    }
    Ok(seq)
}

/// The trees a key is checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tree {
    Spent,
    Sigs,
    Receipts,
}

/// Whether `spend` may be written: its inputs unspent, its outputs unsigned, its receipt new
/// (earlier in the batch, and in the store unless keyed by the inputs). Marks its keys taken
/// when it may.
fn check<'a>(
    spend: &'a Spend,
    taken: &mut HashSet<(Tree, &'a [u8])>,
    trees: &Trees,
) -> Result<Result<(), StoreError>, StoreError> {
    let mut mine: HashSet<(Tree, &[u8])> = HashSet::new();
    // New in the batch, then not in the store (asked only for a key new in the batch).
    let mut fresh = |tree: Tree, key: &'a [u8], stored: &dyn Fn() -> Result<bool, StoreError>| {
        let new = !taken.contains(&(tree, key)) && mine.insert((tree, key));
        Ok::<_, StoreError>(new && !stored()?)
    };
    for (key, _) in &spend.spent {
        if !fresh(Tree::Spent, &key[..], &|| Ok(trees.spent.contains(key)))? {
            return Ok(Err(StoreError::AlreadySpent(crate::hex(key))));
        }
    }
    for (key, _) in &spend.sigs {
        let stored = || trees.sigs.contains_key(key).map_err(crate::backend);
        if !fresh(Tree::Sigs, &key[..], &stored)? {
            return Ok(Err(StoreError::AlreadySigned(crate::hex(key))));
        }
    }
    if let Some((key, _)) = &spend.receipt {
        // A receipt under the inputs' own key cannot exist: they were found unspent above.
        // Looked up, it was a walk to a cold leaf of the tree per payment (4 to 6% of the
        // server's CPU), while the spent index is a hash lookup.
        let stored = || {
            Ok(!spend.receipt_of_inputs
                && (trees.fresh.contains(key) || trees.receipts.contains(key)?))
        };
        if !fresh(Tree::Receipts, &key[..], &stored)? {
            return Ok(Err(StoreError::ReceiptChanged));
        }
    }
    taken.extend(mine);
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use coinslot_mint::cashu::nuts::{Id, SecretKey};
    use coinslot_mint::store::{point_key, Commit, ReceiptWrite, SpentProof};
    use coinslot_mint::{MintStore, ReceiptGuard};

    use super::*;
    use crate::SledStore;

    fn keyset() -> Id {
        "009a1f293253e41e".parse().unwrap()
    }

    async fn redeemed(store: &SledStore) -> u64 {
        let supply = store.supply().await.unwrap();
        supply
            .iter()
            .find(|(id, _)| *id == keyset())
            .map_or(0, |(_, s)| s.redeemed)
    }

    /// Writes `record` into the journal of the closed store in `dir`, as a batch thread
    /// cut off by a crash after its `fdatasync` would have left it.
    fn leave_in_journal(dir: &std::path::Path, record: &Record) {
        let (mut journal, _) = Journal::open(&dir.join(journal::FILE)).unwrap();
        journal.append(record.as_bytes()).unwrap();
    }

    #[tokio::test]
    async fn a_batch_journaled_but_not_applied_is_applied_at_start_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let y = SecretKey::generate().public_key();
        let receipt_key = [7u8; 32];
        let mut value = keyset().to_bytes();
        value.extend_from_slice(&4u64.to_be_bytes());
        let spend = Spend {
            spent: vec![(point_key(&y), value)],
            sigs: vec![],
            receipt: Some((receipt_key, crate::encode_receipt(1, 1, b"paid", None))),
            receipt_of_inputs: false,
            supply: vec![(
                keyset().to_bytes(),
                Supply {
                    issued: 0,
                    redeemed: 4,
                },
            )],
        };
        let record = encode(1, &[&spend]).unwrap();
        leave_in_journal(dir.path(), &record);

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.spent(&[y]).await.unwrap(), vec![true]);
        assert_eq!(
            store.receipt(&receipt_key).await.unwrap().unwrap().version,
            1
        );
        assert_eq!(redeemed(&store).await, 4);
        assert_eq!(
            SledStore::journaled_batches(dir.path()).unwrap(),
            0,
            "the journal is emptied once sled holds the batch"
        );
        // The receipt moves on after the batch.
        store
            .commit(Commit {
                receipt: Some(ReceiptWrite {
                    key: &receipt_key,
                    created_at: 1,
                    data: b"answered",
                    guard: ReceiptGuard::Version(1),
                }),
                ..Commit::default()
            })
            .await
            .unwrap();
        drop(store);

        // A crash after sled kept the batch but before the journal was emptied: the same
        // record is there again. It must not count the supply twice nor undo the receipt.
        leave_in_journal(dir.path(), &record);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(redeemed(&store).await, 4);
        assert_eq!(
            store.receipt(&receipt_key).await.unwrap().unwrap().version,
            2
        );

        // New batches go on after the replayed record's sequence number, so they count.
        let proof = SpentProof {
            y: SecretKey::generate().public_key(),
            keyset_id: keyset(),
            amount: 2,
        };
        store
            .commit(Commit {
                spend: std::slice::from_ref(&proof),
                ..Commit::default()
            })
            .await
            .unwrap();
        assert_eq!(redeemed(&store).await, 6);
        drop(store);
        let journal_len = std::fs::metadata(dir.path().join(journal::FILE))
            .unwrap()
            .len();
        assert_eq!(
            journal_len, 0,
            "a store closed cleanly leaves its journal file empty"
        );
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(redeemed(&store).await, 6);
        assert_eq!(store.spent(&[proof.y]).await.unwrap(), vec![true]);
    }

    #[tokio::test]
    async fn a_receipt_its_run_never_wrote_again_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let key = [3u8; 32];
        pay(&store, &key).await;
        assert!(store.fresh.contains(&key), "held until written again");
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        let receipt = store.receipt(&key).await.unwrap().unwrap();
        assert_eq!((receipt.version, receipt.data), (1, b"running".to_vec()));
        assert!(!store.fresh.contains(&key));
    }

    /// A payment for `key`, as the layer makes it: a spend with a new receipt.
    async fn pay(store: &SledStore, key: &[u8; 32]) {
        store
            .commit(Commit {
                spend: &[SpentProof {
                    y: SecretKey::generate().public_key(),
                    keyset_id: keyset(),
                    amount: 1,
                }],
                receipt: Some(ReceiptWrite {
                    key,
                    created_at: 1,
                    data: b"running",
                    guard: ReceiptGuard::Absent,
                }),
                ..Commit::default()
            })
            .await
            .unwrap();
    }

    /// A run's last write, with its answer: lazy, or durable.
    fn answered<'a>(key: &'a [u8; 32], lazy: bool) -> Commit<'a> {
        Commit {
            receipt: Some(ReceiptWrite {
                key,
                created_at: 1,
                data: b"answered",
                guard: ReceiptGuard::Version(1),
            }),
            answer: Some(coinslot_mint::AnswerWrite {
                key,
                expires_at: 4_102_444_800,
                data: b"the answer",
            }),
            lazy,
            ..Commit::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lazy_answer_reaches_sled_when_due_or_flushed_and_reads_the_same_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (lazy, durable, later) = ([4u8; 32], [5u8; 32], [6u8; 32]);
        for key in [&lazy, &durable] {
            pay(&store, key).await;
        }

        // The lazy answer is read back wherever it is (held, or moved already).
        store.commit(answered(&lazy, true)).await.unwrap();
        let receipt = store.receipt(&lazy).await.unwrap().unwrap();
        assert_eq!((receipt.version, receipt.data), (2, b"answered".to_vec()));
        let answer = store.answer(&lazy).await.unwrap().unwrap();
        assert_eq!(answer.data, b"the answer");

        // A durable write goes to sled before it returns.
        store.commit(answered(&durable, false)).await.unwrap();
        assert!(!store.fresh.contains(&durable));
        assert!(store.receipts.get(&durable).unwrap().is_some());

        // The batch thread, idle, moves the held one to sled when it is due.
        let deadline = std::time::Instant::now() + fresh::SETTLE_EVERY * 10;
        while store.fresh.contains(&lazy) && std::time::Instant::now() < deadline {
            tokio::time::sleep(fresh::SETTLE_EVERY / 10).await;
        }
        assert!(!store.fresh.contains(&lazy), "never moved to sled");
        let moved = store.receipts.get(&lazy).unwrap().unwrap();
        let stored = crate::decode_receipt(&moved).unwrap();
        assert_eq!((stored.version, stored.data), (2, b"answered".to_vec()));
        let answer = store.answer(&lazy).await.unwrap().unwrap();
        assert_eq!(answer.data, b"the answer");

        // `flush` makes a lazy write durable at once.
        pay(&store, &later).await;
        store.commit(answered(&later, true)).await.unwrap();
        store.flush().await.unwrap();
        assert!(store.fresh.lock().is_empty());
        assert!(store.receipts.get(&later).unwrap().is_some());
    }

    #[tokio::test]
    async fn a_crash_that_tore_the_spent_log_loses_no_spent_proof() {
        let dir = tempfile::tempdir().unwrap();
        let spend = |y| Commit {
            spend: std::slice::from_ref(y),
            ..Commit::default()
        };
        let proof = |amount| SpentProof {
            y: SecretKey::generate().public_key(),
            keyset_id: keyset(),
            amount,
        };
        let (kept, cut) = (proof(1), proof(2));
        let store = SledStore::open(dir.path()).unwrap();
        store.commit(spend(&kept)).await.unwrap();
        drop(store); // a clean stop: the log synced, its length noted
        let log = dir.path().join(spent::FILE);
        let synced = std::fs::metadata(&log).unwrap().len();

        // The crash: `cut` reached the journal, and only half of its entry the log.
        let mut value = keyset().to_bytes();
        value.extend_from_slice(&2u64.to_be_bytes());
        let record = encode(
            7,
            &[&Spend {
                spent: vec![(point_key(&cut.y), value)],
                sigs: vec![],
                receipt: None,
                receipt_of_inputs: false,
                supply: vec![],
            }],
        )
        .unwrap();
        leave_in_journal(dir.path(), &record);
        let mut torn = point_key(&cut.y).to_vec();
        torn.push(16);
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut file, &torn).unwrap();
        drop(file);

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.spent(&[kept.y, cut.y]).await.unwrap(),
            vec![true, true]
        );
        let again = store.commit(spend(&cut)).await;
        assert!(
            matches!(again, Err(StoreError::AlreadySpent(_))),
            "{again:?}"
        );
        drop(store);
        assert_eq!(
            std::fs::metadata(&log).unwrap().len(),
            2 * synced,
            "the torn entry was cut off and the replay wrote it whole (entries of one size)"
        );
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.spent(&[kept.y, cut.y]).await.unwrap(),
            vec![true, true]
        );
        drop(store);

        // Damage where the log had been synced is not a torn write: the store refuses.
        let mut bytes = std::fs::read(&log).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&log, &bytes).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("damaged at byte 0"), "{err}");
    }

    #[tokio::test]
    async fn proofs_in_sleds_spent_tree_move_to_the_log_and_stay_spent() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        // A store from before the log: its spent proofs are in sled's tree.
        let legacy = SecretKey::generate().public_key();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("spent").unwrap();
            tree.insert(point_key(&legacy), &[0u8; 16][..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.spent(&[legacy]).await.unwrap(), vec![true]);
        let twice = store
            .commit(Commit {
                spend: &[SpentProof {
                    y: legacy,
                    keyset_id: keyset(),
                    amount: 2,
                }],
                ..Commit::default()
            })
            .await;
        assert!(
            matches!(twice, Err(StoreError::AlreadySpent(_))),
            "{twice:?}"
        );
        // A deposit is one sled transaction: its proof goes to the tree, then the index.
        let deposited = SecretKey::generate().public_key();
        store
            .commit(Commit {
                spend: &[SpentProof {
                    y: deposited,
                    keyset_id: keyset(),
                    amount: 2,
                }],
                account: Some(coinslot_mint::store::AccountWrite::Credit {
                    id: "a",
                    unit: &coinslot_mint::cashu::nuts::CurrencyUnit::Sat,
                    amount: 2,
                }),
                ..Commit::default()
            })
            .await
            .unwrap();
        drop(store);
        let log_len = || {
            std::fs::metadata(dir.path().join(spent::FILE))
                .unwrap()
                .len()
        };
        let before = log_len();

        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.spent(&[legacy, deposited]).await.unwrap(),
            vec![true, true]
        );
        assert!(
            log_len() > before,
            "the deposit's proof was moved into the log"
        );
        drop(store);
        {
            let db = sled::open(dir.path()).unwrap();
            assert!(
                db.open_tree("spent").unwrap().is_empty(),
                "the tree is emptied once the log holds its proofs"
            );
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            store.spent(&[legacy, deposited]).await.unwrap(),
            vec![true, true]
        );
    }

    #[tokio::test]
    async fn a_journal_that_does_not_parse_stops_the_store_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        let mut record = Record::new(1);
        record
            .push(Kind::Supply, b"not a keyset", b"short")
            .unwrap();
        leave_in_journal(dir.path(), &record);
        let err = SledStore::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("cannot replay the spend journal"), "{err}");
        assert!(err.contains("too short"), "{err}");
    }
}
