//! `[paywall]`: how paid requests behave.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[paywall]`: how paid requests behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaywallConfig {
    /// Accept only tokens P2PK-locked to the mint's key.
    pub require_lock: bool,
    /// How long a prepaid session credential is valid, in seconds.
    pub session_ttl_secs: u64,
    /// Smallest session deposit.
    pub min_deposit: u64,
    /// A paid request that takes longer is cut off and refunded, in seconds.
    pub timeout_secs: u64,
}

impl Default for PaywallConfig {
    fn default() -> Self {
        Self {
            require_lock: false,
            session_ttl_secs: 86_400,
            min_deposit: 1,
            timeout_secs: 120,
        }
    }
}

impl PaywallConfig {
    /// Checks what serde cannot; the message names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.into()));
        if self.session_ttl_secs == 0 {
            return fail("paywall.session_ttl_secs: must be at least 1");
        }
        if self.timeout_secs == 0 {
            return fail("paywall.timeout_secs: must be at least 1");
        }
        Ok(())
    }
}
