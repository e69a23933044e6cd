//! Prepaid sessions: a client deposits a token once, gets a credential (a JWT, HS256), and
//! pays each request from a balance the mint keeps (a prepaid account).
//!
//! The credential only names the account (`sid`), its unit and an expiry; the balance lives
//! in the store, so a credential cannot be replayed into more value than was deposited. Per
//! request the layer does one HMAC check and one atomic decrement.
//!
//! Endpoints, under the session path (default `/cashu/session`):
//!
//! | request                                   | answer                                      |
//! |-------------------------------------------|---------------------------------------------|
//! | `POST {path}` + `X-Cashu: <token>`        | opens a session with the token's value      |
//! | `POST {path}/topup` + credential + token  | adds the token's value, renews the credential|
//! | `GET {path}` + credential                 | the balance                                 |
//! | `DELETE {path}` + credential              | closes it: the balance back as a token      |
//!
//! The credential travels in `X-Cashu-Session`. An expired credential still closes its
//! session, so a balance can never be stranded by a clock.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The audience every session credential carries.
const AUDIENCE: &str = "coinslot-session";

/// What a session credential says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The prepaid account id.
    pub sid: String,
    /// Unit of the balance.
    pub unit: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Always `coinslot-session`.
    pub aud: String,
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// Past its expiry.
    Expired,
    /// Bad signature, wrong audience, or not a JWT.
    Invalid(String),
}

impl std::error::Error for CredentialError {}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::Expired => f.write_str("session credential expired"),
            CredentialError::Invalid(why) => write!(f, "invalid session credential: {why}"),
        }
    }
}

/// Signs and checks session credentials.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    strict: Validation,
    lenient: Validation,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

impl SessionKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        let mut strict = Validation::new(Algorithm::HS256);
        strict.set_audience(&[AUDIENCE]);
        strict.set_required_spec_claims(&["exp", "aud"]);
        strict.leeway = 0;
        let mut lenient = strict.clone();
        lenient.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            strict,
            lenient,
        }
    }

    /// A credential for `sid` in `unit`, valid until `exp`.
    pub fn issue(&self, sid: &str, unit: &str, now: u64, exp: u64) -> Result<String, String> {
        let claims = SessionClaims {
            sid: sid.to_string(),
            unit: unit.to_string(),
            exp,
            iat: now,
            aud: AUDIENCE.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// Checks signature, audience and (unless `allow_expired`) expiry.
    pub fn verify(
        &self,
        credential: &str,
        allow_expired: bool,
    ) -> Result<SessionClaims, CredentialError> {
        let validation = if allow_expired {
            &self.lenient
        } else {
            &self.strict
        };
        jsonwebtoken::decode::<SessionClaims>(credential, &self.decoding, validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => CredentialError::Expired,
                _ => CredentialError::Invalid(e.to_string()),
            })
    }
}

/// The prepaid sessions of a paywall, for services outside its HTTP routes (a forward
/// proxy charging per megabyte): check a credential, take from its balance. From
/// [`PaywallLayer::sessions`](crate::PaywallLayer::sessions); cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) shared: std::sync::Arc<crate::layer::Shared>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// Checks a credential's signature, audience and expiry (not the balance).
    pub fn verify(&self, credential: &str) -> Result<SessionClaims, CredentialError> {
        self.shared.keys.verify(credential.trim(), false)
    }

    /// Takes `amount` from the session's balance, atomically; the balance left. Fails with
    /// [`Error::InsufficientBalance`](coinslot_mint::Error::InsufficientBalance) (nothing
    /// taken) or [`Error::AccountNotFound`](coinslot_mint::Error::AccountNotFound) (closed).
    pub async fn debit(
        &self,
        claims: &SessionClaims,
        amount: u64,
    ) -> Result<u64, coinslot_mint::Error> {
        let unit = claims
            .unit
            .parse()
            .map_err(|_| coinslot_mint::Error::UnsupportedUnit(claims.unit.clone()))?;
        self.shared
            .mint
            .debit_account(&claims.sid, &unit, amount)
            .await
    }
}

/// A fresh session id: 16 random bytes, hex.
pub fn new_session_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        coinslot_mint::unix_now()
    }

    #[test]
    fn credentials_verify_and_tampering_is_caught() {
        let keys = SessionKeys::new(&[7u8; 32]);
        let jwt = keys.issue("abc", "sat", now(), now() + 60).unwrap();
        let claims = keys.verify(&jwt, false).unwrap();
        assert_eq!((claims.sid.as_str(), claims.unit.as_str()), ("abc", "sat"));

        let other = SessionKeys::new(&[8u8; 32]);
        assert!(matches!(
            other.verify(&jwt, false),
            Err(CredentialError::Invalid(_))
        ));
        let mut tampered = jwt.clone();
        tampered.insert(jwt.len() / 2, 'x');
        assert!(keys.verify(&tampered, false).is_err());
    }

    #[test]
    fn expired_credentials_are_refused_except_for_closing() {
        let keys = SessionKeys::new(&[7u8; 32]);
        let jwt = keys.issue("abc", "sat", now() - 100, now() - 10).unwrap();
        assert_eq!(keys.verify(&jwt, false), Err(CredentialError::Expired));
        assert_eq!(keys.verify(&jwt, true).unwrap().sid, "abc");
    }
}
