//! Who may open a tunnel: a time pass of the proxy's scope, or (with per-megabyte pricing)
//! a prepaid session whose balance pays for the bytes.

use std::sync::Arc;

use base64::Engine;
use coinslot_layer::pass::PassError;
use coinslot_layer::session::{SessionClaims, Sessions};
use coinslot_layer::ValidPass;

/// What opened a tunnel.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// A time pass: the tunnel lives until the pass runs out or is revoked.
    Pass {
        /// The pass as checked.
        pass: ValidPass,
        /// The credential, to check the pass again when it runs out (extensions).
        credential: String,
    },
    /// A prepaid session paying per megabyte.
    Session(SessionClaims),
}

impl Access {
    /// The registry key: passes and sessions never collide.
    pub fn key(&self) -> String {
        match self {
            Access::Pass { pass, .. } => format!("pass:{}", pass.id),
            Access::Session(claims) => format!("session:{}", claims.sid),
        }
    }

    /// When the pass runs out, Unix seconds (a session has no clock).
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            Access::Pass { pass, .. } => Some(pass.expires_at),
            Access::Session(_) => None,
        }
    }

    /// For logs: `pass <id>` / `session <id>` (ids are not credentials).
    pub fn describe(&self) -> String {
        match self {
            Access::Pass { pass, .. } => format!("pass {}", pass.id),
            Access::Session(claims) => format!("session {}", claims.sid),
        }
    }
}

/// Why a client is not let in (answered with 407, or a SOCKS5 authentication failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No credential at all.
    Missing,
    /// The credential does not open this proxy (the words say why).
    Refused(String),
    /// A session whose balance does not cover the next megabyte.
    BalanceEmpty,
    /// Too many tunnels already open on this credential.
    TooMany(usize),
    /// The store could not be read.
    Unavailable(String),
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::Missing => f.write_str("a pass is required"),
            Denied::Refused(why) => f.write_str(why),
            Denied::BalanceEmpty => {
                f.write_str("the session's balance does not cover the next megabyte: top it up")
            }
            Denied::TooMany(limit) => {
                write!(
                    f,
                    "this credential already has {limit} tunnels open (the limit)"
                )
            }
            Denied::Unavailable(why) => write!(f, "the pass could not be checked: {why}"),
        }
    }
}

impl Denied {
    pub fn from_pass(err: PassError) -> Self {
        match err {
            PassError::Storage(why) => Denied::Unavailable(why),
            err => Denied::Refused(err.to_string()),
        }
    }
}

/// The credential in a `Proxy-Authorization` value: `Bearer <credential>`, or `Basic`
/// with the credential as the password (or as the user name when the password is empty,
/// as `curl -x http://<credential>@proxy` sends it).
pub fn from_authorization(value: &str) -> Result<String, String> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "Proxy-Authorization: Basic credentials are not base64".to_string())?;
        let text = String::from_utf8(decoded)
            .map_err(|_| "Proxy-Authorization: Basic credentials are not UTF-8".to_string())?;
        let (user, password) = text.split_once(':').unwrap_or((&text, ""));
        return credential_of(user, password)
            .ok_or_else(|| "Proxy-Authorization: Basic credentials are empty".to_string());
    }
    Err("Proxy-Authorization: use `Bearer <pass>` or Basic with the pass as the password".into())
}

/// The credential in a user name and password (SOCKS5, HTTP Basic): the password, or the
/// user name when the password is empty.
pub(crate) fn credential_of(user: &str, password: &str) -> Option<String> {
    let chosen = if password.trim().is_empty() {
        user
    } else {
        password
    };
    let chosen = chosen.trim();
    (!chosen.is_empty()).then(|| chosen.to_string())
}

/// Pays for a session's bytes: one megabyte's price is taken from its balance before the
/// megabyte flows, so a client never gets bytes it has not paid for. What a tunnel leaves
/// of a paid megabyte is kept for the session's next tunnel (in memory: a restart forgets
/// it, at most one megabyte).
#[derive(Debug)]
pub(crate) struct Meter {
    sessions: Sessions,
    claims: SessionClaims,
    price: u64,
    chunk: u64,
    /// Bytes paid for and not used yet.
    allowance: tokio::sync::Mutex<u64>,
}

impl Meter {
    pub fn new(sessions: Sessions, claims: SessionClaims, price: u64, chunk: u64) -> Arc<Self> {
        Arc::new(Self {
            sessions,
            claims,
            price,
            chunk: chunk.max(1),
            allowance: tokio::sync::Mutex::new(0),
        })
    }

    /// Accounts for `bytes` about to flow, buying megabytes as needed; how many may flow.
    /// Fewer than asked, with why, once the balance cannot pay for more: the bytes already
    /// paid for still go through, so nothing paid is lost.
    pub async fn take(&self, bytes: u64) -> (u64, Option<Denied>) {
        let mut allowance = self.allowance.lock().await;
        while *allowance < bytes {
            if let Err(denied) = self.buy().await {
                let granted = *allowance;
                *allowance = 0;
                return (granted, Some(denied));
            }
            *allowance += self.chunk;
        }
        *allowance -= bytes;
        (bytes, None)
    }

    /// Makes sure at least one byte is paid for (a new tunnel's admission).
    pub async fn ready(&self) -> Result<(), Denied> {
        let mut allowance = self.allowance.lock().await;
        if *allowance == 0 {
            self.buy().await?;
            *allowance += self.chunk;
        }
        Ok(())
    }

    async fn buy(&self) -> Result<(), Denied> {
        match self.sessions.debit(&self.claims, self.price).await {
            Ok(balance) => {
                tracing::debug!(session = %self.claims.sid, balance, "a megabyte bought");
                Ok(())
            }
            Err(coinslot_mint::Error::InsufficientBalance { .. }) => Err(Denied::BalanceEmpty),
            Err(coinslot_mint::Error::AccountNotFound) => {
                Err(Denied::Refused("the session is closed".into()))
            }
            Err(err) if err.is_internal() => Err(Denied::Unavailable(err.to_string())),
            Err(err) => Err(Denied::Refused(err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn basic(text: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    #[test]
    fn credentials_come_from_bearer_or_basic() {
        assert_eq!(from_authorization("Bearer abc.def").unwrap(), "abc.def");
        assert_eq!(from_authorization("bearer  abc ").unwrap(), "abc");
        assert_eq!(
            from_authorization(&basic("pass:abc.def")).unwrap(),
            "abc.def"
        );
        assert_eq!(from_authorization(&basic("abc.def:")).unwrap(), "abc.def");
        assert_eq!(from_authorization(&basic("abc.def")).unwrap(), "abc.def");
        for bad in ["Bearer", "Digest x", "Basic !!!", "", &basic(":")] {
            assert!(from_authorization(bad).is_err(), "{bad}");
        }
    }
}
