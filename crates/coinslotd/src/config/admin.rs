//! `[admin]`: the operator's API.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[admin]`: the operator's API under `/admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `/admin` (tokens come from `coinslotd admin token`).
    pub enabled: bool,
    /// The largest credit one call may issue (`None`: no limit).
    pub max_credit: Option<u64>,
    /// Recent activity entries kept in memory.
    pub activity_entries: usize,
    /// Serve `/admin` on this address only (e.g. `127.0.0.1:3339`, reachable from the host
    /// alone) instead of on the public listener.
    pub listen: Option<SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_credit: None,
            activity_entries: 1000,
            listen: None,
        }
    }
}

impl AdminConfig {
    /// Checks what serde cannot; the message names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.activity_entries == 0 {
            return Err(ConfigError(
                "admin.activity_entries: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
