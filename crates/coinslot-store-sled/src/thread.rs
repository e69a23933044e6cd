//! A background thread that is told to stop, and joined, when its last handle goes: the
//! batch thread and the flusher finish what is queued and let go of the database, so the
//! store's directory can be opened again as soon as the store is dropped.

use std::sync::Arc;
use std::thread::JoinHandle;

/// Shared by every clone of a handle; dropping the last one stops and joins the thread.
pub(crate) struct Stopper {
    stop: Box<dyn Fn() + Send + Sync>,
    thread: Option<JoinHandle<()>>,
}

impl Stopper {
    /// `stop` tells the `thread` (if it started) to finish.
    pub(crate) fn new(
        thread: Option<JoinHandle<()>>,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            stop: Box::new(stop),
            thread,
        })
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Drop for Stopper {
    fn drop(&mut self) {
        (self.stop)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
