//! `[limits]`: what one client may send.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[limits]`: what one client may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute from one IP address (0: no limit).
    pub per_ip_per_minute: u32,
    /// Requests per minute paid from one session (0: no limit).
    pub per_session_per_minute: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Largest request body forwarded upstream, in bytes.
    pub max_body_bytes: u64,
    /// Largest total size of a request's headers, in bytes.
    pub max_header_bytes: usize,
    /// Connections open at once on each listener (websockets included); more wait to be
    /// accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64); more are closed at
    /// once (0: no cap). Off when `trust_forwarded_for` is set, as every connection then
    /// comes from the proxy.
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request's head, that a keep-alive connection may stay
    /// idle, and that a request body may pause (slowloris).
    pub header_read_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 3000,
            per_session_per_minute: 1200,
            burst: 300,
            trust_forwarded_for: false,
            max_body_bytes: 16 * 1024 * 1024,
            max_header_bytes: 32 * 1024,
            max_connections: 4096,
            max_connections_per_ip: 256,
            header_read_timeout_secs: 10,
        }
    }
}

impl LimitsConfig {
    /// Checks what serde cannot; the message names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.into()));
        if self.max_header_bytes < 1024 {
            return fail("limits.max_header_bytes: must be at least 1024");
        }
        if self.max_body_bytes < 1024 {
            return fail("limits.max_body_bytes: must be at least 1024");
        }
        if self.max_connections == 0 || self.header_read_timeout_secs == 0 {
            return fail(
                "limits.max_connections and limits.header_read_timeout_secs: must be at least 1",
            );
        }
        Ok(())
    }
}
