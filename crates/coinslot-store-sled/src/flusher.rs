//! Group commit for sled: one thread fsyncs, many writers wait on it.
//!
//! A writer applies its transaction (in memory, in sled's log buffer), then takes a ticket
//! from a counter. The flusher thread reads the counter *before* each fsync, so that fsync
//! covers every ticket issued up to then; when it returns, all of them are released at once.
//! Under load one fsync acknowledges many commits; when idle a commit waits for one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use coinslot_mint::StoreError;
use tokio::sync::watch;

use crate::thread::Stopper;

/// Handle to the flusher thread; cheap to clone. The thread ends with the last handle.
#[derive(Debug, Clone)]
pub struct Flusher {
    shared: Arc<Shared>,
    // Dropped with the last clone, which stops the thread after a final flush.
    _stop: Arc<Stopper>,
}

#[derive(Debug)]
struct Shared {
    /// Highest ticket handed out.
    issued: AtomicU64,
    /// Wakes the thread when a ticket is issued, or to stop.
    wake: Mutex<Wake>,
    cond: Condvar,
    /// What is durable: (highest ticket flushed, highest ticket whose flush failed).
    state: watch::Sender<FlushState>,
}

#[derive(Debug, Default)]
struct Wake {
    pending: bool,
    stop: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FlushState {
    flushed: u64,
    failed: u64,
}

impl Flusher {
    /// Starts the flusher thread for `db`.
    pub fn start(db: sled::Db) -> Self {
        let (state, _) = watch::channel(FlushState::default());
        let shared = Arc::new(Shared {
            issued: AtomicU64::new(0),
            wake: Mutex::new(Wake::default()),
            cond: Condvar::new(),
            state,
        });
        let thread_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("coinslot-sled-flush".into())
            .spawn(move || run(&thread_shared, &db));
        let thread = match spawned {
            Ok(thread) => Some(thread),
            Err(err) => {
                // Without a thread no ticket is ever released; fail writers instead of hanging.
                tracing::error!(error = %err, "cannot start the sled flusher thread");
                shared.state.send_modify(|s| s.failed = u64::MAX);
                None
            }
        };
        let stopping = Arc::clone(&shared);
        let stop = move || {
            if let Ok(mut wake) = stopping.wake.lock() {
                wake.stop = true;
            }
            stopping.cond.notify_one();
        };
        Self {
            _stop: Stopper::new(thread, stop),
            shared,
        }
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = self.shared.state.subscribe();
        {
            let mut wake = self
                .shared
                .wake
                .lock()
                .map_err(|_| StoreError::Backend("flusher lock poisoned".into()))?;
            wake.pending = true;
        }
        self.shared.cond.notify_one();
        let state = *rx
            .wait_for(|s| s.flushed >= ticket || s.failed >= ticket)
            .await
            .map_err(|_| StoreError::Backend("flusher stopped".into()))?;
        if state.flushed >= ticket {
            Ok(())
        } else {
            Err(StoreError::Backend(
                "fsync failed: the write may not be durable".into(),
            ))
        }
    }
}

fn run(shared: &Shared, db: &sled::Db) {
    loop {
        {
            let Ok(mut wake) = shared.wake.lock() else {
                return;
            };
            while !wake.pending && !wake.stop {
                wake = match shared.cond.wait(wake) {
                    Ok(wake) => wake,
                    Err(_) => return,
                };
            }
            if wake.stop && !wake.pending {
                break;
            }
            wake.pending = false;
        }
        // Every ticket up to `target` was taken after its write: this flush covers them.
        let target = shared.issued.load(Ordering::SeqCst);
        match db.flush() {
            Ok(_) => shared
                .state
                .send_modify(|s| s.flushed = s.flushed.max(target)),
            Err(err) => {
                tracing::error!(error = %err, "sled flush failed");
                shared
                    .state
                    .send_modify(|s| s.failed = s.failed.max(target));
            }
        }
    }
    // Final flush on shutdown.
    if let Err(err) = db.flush() {
        tracing::error!(error = %err, "final sled flush failed");
    }
}
