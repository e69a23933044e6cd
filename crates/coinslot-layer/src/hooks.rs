//! [`PassHook`]: what a service is told about the life of its time passes.

use serde::{Deserialize, Serialize};

/// What happened to a pass, for a [`PassHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassEventKind {
    /// A new pass was bought.
    Purchase,
    /// An existing pass got more time.
    Extension,
    /// A pass ran out.
    Expiry,
    /// The operator revoked a pass.
    Revocation,
}

impl PassEventKind {
    /// The event's name: `purchase`, `extension`, `expiry`, `revocation`.
    pub fn as_str(self) -> &'static str {
        match self {
            PassEventKind::Purchase => "purchase",
            PassEventKind::Extension => "extension",
            PassEventKind::Expiry => "expiry",
            PassEventKind::Revocation => "revocation",
        }
    }
}

/// A pass lifecycle event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassEvent {
    /// What happened.
    pub event: PassEventKind,
    /// The pass id.
    pub id: String,
    /// Its scope.
    pub scope: String,
    /// Its expiry (Unix seconds) after the event.
    pub expires_at: u64,
    /// The key its buyer sent, if any (e.g. a WireGuard public key).
    pub client_key: Option<String>,
}

/// Told about passes being bought, extended, running out and revoked, e.g. to add and
/// remove a VPN peer. A purchase waits for the hook, and a failed purchase hook refunds the
/// payment and revokes the pass (which the watcher then reports as a revocation, so any
/// half-done setup is undone). Expiries and revocations are found by
/// [`Passes::spawn_watcher`](crate::pass::Passes::spawn_watcher); events come at least once
/// (a retried purchase runs the hook again; after a restart, passes that ran out in the
/// hour before are reported again), so a hook must tolerate repeats.
pub trait PassHook: Send + Sync + 'static {
    /// Handles one event; an error on a purchase refunds it.
    fn call(&self, event: PassEvent) -> futures::future::BoxFuture<'static, Result<(), String>>;
}
