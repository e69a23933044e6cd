//! `coinslotd`'s configuration: defaults, then a TOML file, then flags and environment.
//!
//! ```toml
//! listen = "127.0.0.1:3338"
//! data_dir = "./coinslot-data"
//!
//! [mint.info]
//! name = "Arcade credits"
//! motd = "Insert coin"
//!
//! [[mint.units]]
//! name = "sat"
//! input_fee_ppk = 0
//!
//! [[mint.units]]
//! name = "credit"
//! msat_per_unit = 10000
//!
//! [backend]
//! kind = "fake"
//! pay_after_ms = 0
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coinslot_http::HttpOptions;
use coinslot_mint::{FakeBackendConfig, MintConfig};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Where `coinslotd` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3338";
/// Where `coinslotd` keeps its seed and store when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./coinslot-data";

/// Everything `coinslotd` needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the seed file and the sled store.
    pub data_dir: PathBuf,
    /// The mint: units, fees, limits, info.
    pub mint: MintConfig,
    /// The HTTP API: body limit, NUT-19 cache, websockets.
    pub http: HttpOptions,
    /// Where top-up payments come from.
    pub backend: BackendConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 3338))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            mint: MintConfig::default(),
            http: HttpOptions::default(),
            backend: BackendConfig::default(),
        }
    }
}

/// The Lightning backend for top-ups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// Fake invoices that pay themselves. Development only: no money moves.
    Fake(FakeBackendConfig),
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Fake(FakeBackendConfig::default())
    }
}

/// A configuration that could not be used; the message names the key and the problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The default configuration with its data in `dir`.
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: dir.into(),
            ..Self::default()
        }
    }

    /// Defaults, overlaid with the TOML file at `file` if given (it must exist).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Config = figment.extract().map_err(|e| {
            let where_ = file
                .map(|f| format!(" in {}", f.display()))
                .unwrap_or_default();
            ConfigError(format!("{}{where_}", describe(&e)))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values serde cannot (ranges, uniqueness).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mint.validate().map_err(ConfigError)?;
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError(
                "http.max_body_bytes: must be at least 1024".into(),
            ));
        }
        Ok(())
    }
}

/// One line per figment error, each with the key path it concerns.
fn describe(err: &figment::Error) -> String {
    err.clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            if key.is_empty() {
                e.kind.to_string()
            } else {
                format!("{key}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
