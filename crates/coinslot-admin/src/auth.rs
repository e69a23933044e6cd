//! Admin credentials: HS256 JWTs signed with a key kept in the data directory.
//!
//! The key is its own file (`admin.key`, 32 random bytes in hex, mode 0600), not derived from
//! the mint seed, so an operator can revoke every admin token at once without touching the
//! mint: `coinslotd admin rotate-key` replaces it, and the running server, which
//! [watches](AdminKey::watch) the file, refuses the old tokens from its next admin call.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// File name of the admin key inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Audience of admin tokens, so no other token signed with the key passes.
const AUDIENCE: &str = "coinslot-admin";

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Reports: liabilities, activity, keysets, prices.
    Read,
    /// Issue credit: paid quotes, tokens, vouchers.
    Issue,
    /// Change prices.
    Prices,
    /// Rotate keysets.
    Keys,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Issue, Scope::Prices, Scope::Keys];

    /// The scope's name in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Issue => "issue",
            Scope::Prices => "prices",
            Scope::Keys => "keys",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| format!("unknown scope `{s}` (scopes: read, issue, prices, keys)"))
    }
}

/// The claims of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who holds the token (logged with every action).
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Token id (logged, so an action can be traced to a token without logging the token).
    pub jti: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Always `coinslot-admin`.
    pub aud: String,
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scope.split_whitespace().any(|s| s == scope.as_str())
    }
}

/// Why a key or token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key file could not be read or written.
    #[error("admin key {path}: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The token is not valid: malformed, bad signature, expired, wrong audience.
    #[error("{0}")]
    Invalid(String),
}

/// The admin signing key: fixed, or the key file of a running server ([`AdminKey::watch`]).
#[derive(Clone)]
pub struct AdminKey {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Fixed(Arc<Signing>),
    File(Arc<Watched>),
}

struct Signing {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Signing {
    fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// A key file and what was last read from it.
struct Watched {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    stamp: Option<Stamp>,
    /// `None` while the file is missing or unusable (the reason is logged when read).
    signing: Option<Arc<Signing>>,
}

/// What tells a replaced key file from the one read before: `rotate` renames a new file
/// over the old one, so the inode changes even within one clock tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

impl Watched {
    /// The key now in the file: read again only when the file changed (one `stat` per
    /// call, and admin calls are few).
    fn current(&self) -> Result<Arc<Signing>, AuthError> {
        let stamp = Stamp::of(&self.path);
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.stamp != stamp {
            loaded.signing = match read_key(&self.path) {
                Ok(signing) => {
                    tracing::info!(path = %self.path.display(), "admin key file changed: loaded the new key");
                    Some(Arc::new(signing))
                }
                Err(error) => {
                    tracing::warn!(%error, "admin key unusable: every admin token is refused until it is fixed");
                    None
                }
            };
            loaded.stamp = stamp;
        }
        loaded.signing.clone().ok_or_else(|| {
            AuthError::Invalid("the server's admin key is unusable (its log says why)".into())
        })
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(..)")
    }
}

/// Reads an existing key file (private, hex, at least 32 bytes).
fn read_key(path: &Path) -> Result<Signing, AuthError> {
    let fail = |message: String| AuthError::KeyFile {
        path: path.to_path_buf(),
        message,
    };
    let text = coinslot_mint::secret_file::read_private(path).map_err(|e| fail(e.to_string()))?;
    let secret = hex::decode(text.trim()).map_err(|e| fail(format!("not hex: {e}")))?;
    if secret.len() < 32 {
        return Err(fail("must hold at least 32 bytes".into()));
    }
    Ok(Signing::new(&secret))
}

/// Reads the key file at `path`, or creates one readable by the owner only.
fn open_or_create(path: &Path) -> Result<Signing, AuthError> {
    if path.exists() {
        return read_key(path);
    }
    let secret: [u8; 32] = rand::random();
    let created = coinslot_mint::secret_file::create_once(path, hex::encode(secret).as_bytes())
        .map_err(|e| AuthError::KeyFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if !created {
        // Another process starting on this data directory made it first.
        return open_or_create(path);
    }
    tracing::info!(path = %path.display(), "created the admin key");
    Ok(Signing::new(&secret))
}

impl AdminKey {
    /// A key from raw secret bytes.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self::fixed(Signing::new(secret))
    }

    fn fixed(signing: Signing) -> Self {
        Self {
            source: Source::Fixed(Arc::new(signing)),
        }
    }

    /// Reads the key at `path`, or creates one readable by the owner only.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        open_or_create(path).map(Self::fixed)
    }

    /// The key in `path` (made if missing, as [`load_or_create`](Self::load_or_create)),
    /// read again whenever the file is replaced: a rotation (`coinslotd admin rotate-key`)
    /// retires old tokens on the running server, no restart needed. While the file is
    /// missing or unusable (say, deleted to revoke every token) no token is accepted.
    pub fn watch(path: &Path) -> Result<Self, AuthError> {
        // Stamp before reading: a rotation in between is then seen at the first check.
        let stamp = Stamp::of(path);
        let signing = Arc::new(open_or_create(path)?);
        Ok(Self {
            source: Source::File(Arc::new(Watched {
                path: path.to_path_buf(),
                loaded: Mutex::new(Loaded {
                    stamp,
                    signing: Some(signing),
                }),
            })),
        })
    }

    /// Replaces the key in `path` with a new random one (0600, atomically): every token
    /// signed with the old key stops working (on a running server at once when it
    /// [watches](Self::watch) the file).
    pub fn rotate(path: &Path) -> Result<Self, AuthError> {
        let secret: [u8; 32] = rand::random();
        coinslot_mint::secret_file::replace(path, hex::encode(secret).as_bytes()).map_err(|e| {
            AuthError::KeyFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        tracing::info!(path = %path.display(), "rotated the admin key");
        Ok(Self::from_secret(&secret))
    }

    fn signing(&self) -> Result<Arc<Signing>, AuthError> {
        match &self.source {
            Source::Fixed(signing) => Ok(signing.clone()),
            Source::File(watched) => watched.current(),
        }
    }

    /// Signs a token for `subject` with `scopes`, valid for `ttl` from `now` (Unix seconds).
    pub fn issue(
        &self,
        subject: &str,
        scopes: &[Scope],
        ttl: Duration,
        now: u64,
    ) -> Result<String, AuthError> {
        let scope: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let claims = Claims {
            sub: subject.to_string(),
            scope: scope.join(" "),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.signing()?.encoding,
        )
        .map_err(|e| AuthError::Invalid(format!("cannot sign: {e}")))
    }

    /// Checks a token's signature, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.signing()?.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                AuthError::Invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "the admin token has expired".into(),
                    ErrorKind::InvalidSignature => {
                        "the admin token's signature is not valid (signed with another key?)".into()
                    }
                    ErrorKind::InvalidAudience => "not an admin token".into(),
                    _ => format!("malformed admin token: {e}"),
                })
            })
    }
}

/// Parses a duration like `90s`, `15m`, `1h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 90s, 15m, 1h, 7d)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h or d)"
            ))
        }
    };
    if secs == 0 {
        return Err("a token must be valid for at least one second".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        coinslot_mint::unix_now()
    }

    /// A read token for `subject`, valid for a minute.
    fn reader(key: &AdminKey, subject: &str) -> String {
        key.issue(subject, &[Scope::Read], Duration::from_secs(60), now())
            .unwrap()
    }

    #[test]
    fn tokens_round_trip_with_their_scopes() {
        let key = AdminKey::from_secret(&[7; 32]);
        let token = key
            .issue(
                "alice",
                &[Scope::Read, Scope::Issue],
                Duration::from_secs(60),
                now(),
            )
            .unwrap();
        let claims = key.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert!(claims.allows(Scope::Read) && claims.allows(Scope::Issue));
        assert!(!claims.allows(Scope::Keys));
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let key = AdminKey::from_secret(&[7; 32]);
        let other = AdminKey::from_secret(&[8; 32]);
        let forged = other
            .issue("mallory", &Scope::ALL, Duration::from_secs(60), now())
            .unwrap();
        let err = key.verify(&forged).unwrap_err().to_string();
        assert!(err.contains("signature"), "{err}");
        let expired = key
            .issue("alice", &[Scope::Read], Duration::from_secs(1), now() - 10)
            .unwrap();
        let err = key.verify(&expired).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        assert!(key.verify("not.a.jwt").is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_KEY_FILE);
        let first = AdminKey::load_or_create(&path).unwrap();
        let token = reader(&first, "a");
        let again = AdminKey::load_or_create(&path).unwrap();
        assert!(again.verify(&token).is_ok(), "reloading changed the key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Rotation: a new key in the same file, still private; old tokens stop working.
        let rotated = AdminKey::rotate(&path).unwrap();
        assert!(
            rotated.verify(&token).is_err(),
            "an old token outlived rotation"
        );
        let loaded = AdminKey::load_or_create(&path).unwrap();
        let fresh = reader(&rotated, "b");
        assert!(loaded.verify(&fresh).is_ok());
        assert!(loaded.verify(&token).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(
                std::fs::read_dir(dir.path()).unwrap().count(),
                1,
                "no temp files"
            );
        }
        std::fs::write(&path, "zz").unwrap();
        let err = AdminKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("admin key") && err.contains("not hex"),
            "{err}"
        );
    }

    #[test]
    fn a_watched_key_follows_rotation_and_refuses_all_while_the_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_KEY_FILE);
        let watched = AdminKey::watch(&path).unwrap();
        let old = reader(&watched, "a");
        assert!(watched.verify(&old).is_ok());

        let rotated = AdminKey::rotate(&path).unwrap();
        let fresh = reader(&rotated, "b");
        assert!(
            watched.verify(&old).is_err(),
            "an old token outlived rotation"
        );
        assert!(watched.verify(&fresh).is_ok(), "the new key was not loaded");

        std::fs::remove_file(&path).unwrap();
        let err = watched.verify(&fresh).unwrap_err().to_string();
        assert!(err.contains("unusable"), "{err}");
        // A key made again (as `coinslotd admin token` does) is picked up.
        let remade = AdminKey::load_or_create(&path).unwrap();
        let third = reader(&remade, "c");
        assert!(watched.verify(&third).is_ok());
        assert!(watched.verify(&fresh).is_err());
    }

    #[test]
    fn durations_and_scopes_parse() {
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("1y").unwrap_err().contains("unknown unit"));
        assert!(parse_ttl("0m").is_err());
        assert!(parse_ttl("h").is_err());
        assert_eq!("issue".parse::<Scope>().unwrap(), Scope::Issue);
        assert!("root"
            .parse::<Scope>()
            .unwrap_err()
            .contains("unknown scope"));
    }
}
