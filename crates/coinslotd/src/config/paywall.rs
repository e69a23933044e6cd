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
    /// How long a paid request's answer is kept for retries of the same payment, in
    /// seconds (a retry after that is refused as spent).
    pub retry_window_secs: u64,
    /// The largest answer body kept for retries, in bytes; a bigger one is not kept (its
    /// retry runs again for `GET`/`HEAD`, or per the route's `retry`, else is refused).
    pub max_stored_answer_bytes: u64,
    /// How many times a retry may run the upstream again, on routes that allow it.
    pub max_reruns: u32,
    /// How long a paid run holds its payment without a sign of life, in seconds; when it
    /// runs out with no answer recorded (the instance died), a retry reruns or refunds it.
    pub run_lease_secs: u64,
    /// Where the balance of a token used as an API key (`Authorization: Bearer cashu…`) is
    /// read (`GET`) and paid out (`DELETE`); empty: no key balances, and `Bearer cashu…` is a
    /// one-shot token like `X-Cashu`.
    pub key_path: String,
    /// `Payment` challenges ask clients to put the credential in `Payment-Authorization`
    /// (leaving `Authorization` to the upstream's own log-in); either header is accepted.
    pub payment_authorization: bool,
}

impl Default for PaywallConfig {
    fn default() -> Self {
        Self {
            require_lock: false,
            session_ttl_secs: 86_400,
            min_deposit: 1,
            timeout_secs: 120,
            retry_window_secs: 600,
            max_stored_answer_bytes: 1 << 20,
            max_reruns: 2,
            run_lease_secs: 30,
            key_path: "/cashu/balance".into(),
            payment_authorization: false,
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
        if self.retry_window_secs == 0 {
            return fail("paywall.retry_window_secs: must be at least 1");
        }
        if self.max_stored_answer_bytes > 64 << 20 {
            return fail("paywall.max_stored_answer_bytes: at most 67108864 (64 MiB): answers are kept in the store");
        }
        if self.run_lease_secs < 2 {
            return fail("paywall.run_lease_secs: must be at least 2");
        }
        if !self.key_path.is_empty() && !self.key_path.starts_with('/') {
            return fail("paywall.key_path: must start with `/` (or be empty to turn keys off)");
        }
        Ok(())
    }
}

impl PaywallConfig {
    /// The key balance endpoint, `None` when keys are off.
    pub fn key_path(&self) -> Option<&str> {
        (!self.key_path.is_empty()).then_some(self.key_path.as_str())
    }
}
