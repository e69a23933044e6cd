//! Batched payments and swaps: one sled transaction and one flush for every spend waiting.
//!
//! A sled 0.34 transaction is far dearer than its writes: to mark the batch it rolls the log
//! buffer before and after taking its reservation, and each roll hands a write (`pwrite` plus
//! `sync_file_range`) to sled's I/O pool, whose queue wakes every idle pool thread (seven or
//! more) for it. Profiled under paid load, that was 42% of the process's CPU, more than the
//! crypto, with one transaction per payment. So spends (a payment with its receipt, a swap
//! with its signatures) queue here; one thread applies everything queued in **one**
//! transaction, flushes once, and answers each. Under load the queue fills while the thread
//! flushes, so the cost is shared; an idle store's spend waits for one transaction and one
//! flush, as before.
//!
//! Every spend keeps its own outcome: inside the transaction each one is checked first (no
//! input spent, in the store or earlier in the batch; no output signed; its receipt new) and
//! written only if it passes, so one refused spend never fails the others, and the batch is
//! atomic on disk as a whole.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

use coinslot_mint::store::Supply;
use coinslot_mint::StoreError;
use sled::transaction::{TransactionError, Transactional, TransactionalTree};
use tokio::sync::oneshot;

/// Most spends in one transaction: bounds the time one batch holds sled's write lock.
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
    /// Keyset id → what the spend adds to its supply.
    pub supply: Vec<(Vec<u8>, Supply)>,
}

struct Job {
    spend: Spend,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The trees a spend writes, and the database to flush.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub db: sled::Db,
    pub spent: sled::Tree,
    pub sigs: sled::Tree,
    pub receipts: sled::Tree,
    pub supply: sled::Tree,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    cond: Condvar,
}

/// Handle to the batching thread; cheap to clone. The thread ends with the last handle,
/// after the spends queued before.
#[derive(Clone)]
pub(crate) struct Batcher {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

struct StopOnDrop {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.stop = true;
        }
        self.shared.cond.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Batcher {
    /// Starts the batching thread over `trees`.
    pub(crate) fn start(trees: Trees) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("coinslot-sled-batch".into())
            .spawn(move || run(&thread_shared, &trees))
            .map_err(|err| {
                // Without the thread nothing would answer: refuse spends instead of hanging.
                tracing::error!(error = %err, "cannot start the sled batch thread");
                if let Ok(mut queue) = shared.queue.lock() {
                    queue.stop = true;
                }
            })
            .ok();
        Self {
            _stop: Arc::new(StopOnDrop {
                shared: Arc::clone(&shared),
                thread,
            }),
            shared,
        }
    }

    /// Applies `spend` with whatever else is queued, durably; its own outcome.
    pub(crate) async fn commit(&self, spend: Spend) -> Result<(), StoreError> {
        let (done, outcome) = oneshot::channel();
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
        }
        self.shared.cond.notify_one();
        outcome
            .await
            .map_err(|_| StoreError::Backend("the sled batch thread stopped".into()))?
    }
}

fn run(shared: &Shared, trees: &Trees) {
    loop {
        let jobs = {
            let Ok(mut queue) = shared.queue.lock() else {
                return;
            };
            while queue.jobs.is_empty() && !queue.stop {
                queue = match shared.cond.wait(queue) {
                    Ok(queue) => queue,
                    Err(_) => return,
                };
            }
            if queue.jobs.is_empty() {
                return; // stopping, nothing left
            }
            let take = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..take).collect::<Vec<_>>()
        };
        let outcomes = apply(trees, &jobs).and_then(|outcomes| {
            // One flush makes the whole batch durable before anyone hears of it.
            trees
                .db
                .flush()
                .map_err(|e| StoreError::Backend(format!("sled flush failed: {e}")))?;
            Ok(outcomes)
        });
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
}

/// One transaction over every job: each checked, then written if it passes.
fn apply(trees: &Trees, jobs: &[Job]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let all = (&trees.spent, &trees.sigs, &trees.receipts, &trees.supply);
    let result = all.transaction(|(spent, sigs, receipts, supply)| {
        // Keys written earlier in this batch, by tree (the transaction's reads would see
        // them too; this also catches a key twice within one spend).
        let mut taken: HashSet<(Tree, &[u8])> = HashSet::new();
        let mut added: BTreeMap<&[u8], Supply> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            let spend = &job.spend;
            let outcome = check(spend, &mut taken, spent, sigs, receipts)?;
            if outcome.is_ok() {
                for (key, value) in &spend.spent {
                    spent.insert(&key[..], value.as_slice())?;
                }
                for (key, value) in &spend.sigs {
                    sigs.insert(&key[..], value.as_slice())?;
                }
                if let Some((key, value)) = &spend.receipt {
                    receipts.insert(&key[..], value.as_slice())?;
                }
                for (keyset, delta) in &spend.supply {
                    let sum = added.entry(keyset.as_slice()).or_default();
                    *sum = sum.plus(*delta);
                }
            }
            outcomes.push(outcome);
        }
        for (keyset, delta) in added {
            let current = match supply.get(keyset)? {
                Some(bytes) => match crate::decode_supply(&bytes) {
                    Ok(current) => current,
                    Err(e) => {
                        return Err(sled::transaction::ConflictableTransactionError::Abort(e))
                    }
                },
                None => Supply::default(),
            };
            supply.insert(keyset, &crate::encode_supply(current.plus(delta))[..])?;
        }
        Ok(outcomes)
    });
    match result {
        Ok(outcomes) => Ok(outcomes),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(StoreError::Backend(e.to_string())),
    }
}

/// The trees a key is checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tree {
    Spent,
    Sigs,
    Receipts,
}

/// Whether `spend` may be written: its inputs unspent, its outputs unsigned, its receipt new
/// (in the store and earlier in the batch). Marks its keys taken when it may.
fn check<'a>(
    spend: &'a Spend,
    taken: &mut HashSet<(Tree, &'a [u8])>,
    spent: &TransactionalTree,
    sigs: &TransactionalTree,
    receipts: &TransactionalTree,
) -> Result<Result<(), StoreError>, sled::transaction::UnabortableTransactionError> {
    let mut mine: HashSet<(Tree, &[u8])> = HashSet::new();
    let mut fresh = |tree: Tree, key: &'a [u8], stored: &TransactionalTree| {
        let new = !taken.contains(&(tree, key)) && mine.insert((tree, key));
        Ok::<_, sled::transaction::UnabortableTransactionError>(new && stored.get(key)?.is_none())
    };
    for (key, _) in &spend.spent {
        if !fresh(Tree::Spent, &key[..], spent)? {
            return Ok(Err(StoreError::AlreadySpent(crate::hex(key))));
        }
    }
    for (key, _) in &spend.sigs {
        if !fresh(Tree::Sigs, &key[..], sigs)? {
            return Ok(Err(StoreError::AlreadySigned(crate::hex(key))));
        }
    }
    if let Some((key, _)) = &spend.receipt {
        if !fresh(Tree::Receipts, &key[..], receipts)? {
            return Ok(Err(StoreError::ReceiptChanged));
        }
    }
    taken.extend(mine);
    Ok(Ok(()))
}
