//! `[store]`: where the mint's state lives.

use coinslot_store_postgres::TlsSettings;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[store]`: sled in `data_dir` unless `url` names a PostgreSQL database, which several
/// instances can share (each still needs the same `seed` file in its data directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database` (or `COINSLOT_DATABASE_URL`,
    /// `--database-url`). Unset: the embedded sled store. TLS as libpq: `?sslmode=`
    /// `disable`, `prefer` (the default), `require`, `verify-ca` or `verify-full`, and
    /// `&sslrootcert=` a CA file or `system`.
    pub url: Option<String>,
    /// CA certificates (PEM) the database's certificate must chain to, instead of the URL's
    /// `sslrootcert` (e.g. a managed database's CA bundle).
    pub ca_file: Option<std::path::PathBuf>,
    /// Schema holding the tables (created if missing; default: the server's, `public`).
    pub schema: Option<String>,
    /// Database connections per instance.
    pub max_connections: usize,
    /// How long a request waits for a database connection before it fails with 503, in
    /// seconds.
    pub acquire_timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            schema: None,
            max_connections: 16,
            acquire_timeout_secs: 5,
        }
    }
}

impl StoreConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError(
                    "store.url: only PostgreSQL is supported (postgres://user:password@host/db)"
                        .into(),
                ));
            }
            // sslmode, sslrootcert and the CA file, read now rather than at the first
            // connection.
            TlsSettings::split(url)
                .and_then(|(_, tls)| tls.with_ca_file(self.ca_file.as_deref()))
                .and_then(|tls| tls.check())
                .map_err(|e| ConfigError(format!("store.url: {e}")))?;
        } else if self.ca_file.is_some() {
            return Err(ConfigError(
                "store.ca_file: only for a PostgreSQL store.url".into(),
            ));
        }
        if let Some(schema) = &self.schema {
            let valid = !schema.is_empty()
                && schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError(format!(
                    "store.schema: `{schema}`: use letters, digits and underscores only"
                )));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError(
                "store.max_connections: must be at least 1".into(),
            ));
        }
        if self.acquire_timeout_secs == 0 {
            return Err(ConfigError(
                "store.acquire_timeout_secs: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `url` with its password replaced by `<hidden>`.
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<hidden>@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_hidden_and_urls_checked() {
        assert_eq!(
            hide_password("postgres://coinslot:s3cret@db:5432/mint"),
            "postgres://coinslot:<hidden>@db:5432/mint"
        );
        assert_eq!(
            hide_password("postgres://coinslot@db/mint"),
            "postgres://coinslot@db/mint"
        );
        let store = StoreConfig {
            url: Some("mysql://u@h/db".into()),
            ..StoreConfig::default()
        };
        let err = store.validate().unwrap_err().to_string();
        assert!(err.contains("store.url"), "{err}");
    }
}
