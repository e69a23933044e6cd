//! The credentials the layer signs (JWT, HS256, keys derived from the mint's seed): a
//! prepaid session's ([`SessionKeys`]) and a time pass's ([`PassKeys`]).
//!
//! A credential only names a record the store keeps (an account, a pass), so it cannot be
//! replayed into more than was paid for.

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

/// A fresh id for a session or a pass: 16 random bytes, hex.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The audience every pass carries.
const PASS_AUDIENCE: &str = "coinslot-pass";

/// What a pass credential says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    /// The pass id.
    pub pid: String,
    /// The scope it opens.
    pub scope: String,
    /// Its expiry when this credential was issued (the store has the current one).
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Always `coinslot-pass`.
    pub aud: String,
}

/// Signs and checks pass credentials.
#[derive(Clone)]
pub(crate) struct PassKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl PassKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[PASS_AUDIENCE]);
        validation.set_required_spec_claims(&["aud"]);
        // The store holds the expiry (extensions move it); the signature is what counts here.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, pid: &str, scope: &str, now: u64, exp: u64) -> Result<String, String> {
        let claims = PassClaims {
            pid: pid.to_string(),
            scope: scope.to_string(),
            exp,
            iat: now,
            aud: PASS_AUDIENCE.to_string(),
        };
        // No `typ`: shorter, so a pass fits a SOCKS5 password (at most 255 bytes).
        let header = Header {
            typ: None,
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())
    }

    /// The claims of a credential signed here; the error says why not.
    pub fn verify(&self, credential: &str) -> Result<PassClaims, String> {
        jsonwebtoken::decode::<PassClaims>(credential.trim(), &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
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
