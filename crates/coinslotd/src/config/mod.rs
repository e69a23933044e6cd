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
//! kind = "fake"            # or "lnd", "cln", "lnbits", "nwc" (see the example file)
//! pay_after_ms = 0
//!
//! [[proxy.upstreams]]
//! name = "search"
//! url = "http://127.0.0.1:8080"
//! routes = [
//!   { method = "GET", path = "/search", price = 2, unit = "sat" },
//!   { path = "/health", free = true },
//! ]
//! ```
//!
//! Every section and key is described in `deploy/coinslotd.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coinslot_http::HttpOptions;
use coinslot_mint::MintConfig;
use coinslot_nostr::NostrConfig;
use coinslot_proxy::ProxyConfig;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod admin;
mod backend;
mod limits;
mod log;
mod passes;
mod paywall;
mod relay;
mod store;
mod topup;

pub use admin::AdminConfig;
pub use backend::{
    BackendConfig, ClnBackendConfig, LnbitsBackendConfig, LndBackendConfig, NwcBackendConfig,
    LNBITS_KEY_ENV, NWC_URI_ENV,
};
pub use limits::LimitsConfig;
pub use log::{LogConfig, LogFormat};
pub use passes::{PassHooksConfig, PassScopeConfig, PassesConfig, MAX_SCOPE_NAME};
pub use paywall::PaywallConfig;
pub use relay::RelayFrontConfig;
pub use store::{hide_password, StoreConfig};
pub use topup::TopupConfig;

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
    /// The URL clients reach this server at, written into payment requests and tokens
    /// (default: `http://<listen>`).
    pub public_url: Option<String>,
    /// The paid reverse proxy: upstreams and prices.
    pub proxy: ProxyConfig,
    /// The paywall in front of the proxy: sessions, locks, timeouts.
    pub paywall: PaywallConfig,
    /// The operator's admin API.
    pub admin: AdminConfig,
    /// The top-up page.
    pub topup: TopupConfig,
    /// Time passes: minutes of a set of routes bought with one token.
    pub passes: PassesConfig,
    /// The paid forward proxy (HTTP CONNECT, absolute-form, SOCKS5) opened by passes.
    pub forward: coinslot_forward::ForwardConfig,
    /// Abuse limits: request rates, header and body sizes.
    pub limits: LimitsConfig,
    /// The mint on nostr: NIP-87 announcement, recommendations, the mint over nostr.
    pub nostr: NostrConfig,
    /// Where the mint's state lives: sled in `data_dir`, or a PostgreSQL database.
    pub store: StoreConfig,
    /// A paid front for a nostr relay someone already runs.
    pub relay: RelayFrontConfig,
    /// Logs.
    pub log: LogConfig,
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
            public_url: None,
            proxy: ProxyConfig::default(),
            paywall: PaywallConfig::default(),
            admin: AdminConfig::default(),
            topup: TopupConfig::default(),
            passes: PassesConfig::default(),
            forward: coinslot_forward::ForwardConfig::default(),
            limits: LimitsConfig::default(),
            nostr: NostrConfig::default(),
            store: StoreConfig::default(),
            relay: RelayFrontConfig::default(),
            log: LogConfig::default(),
        }
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
        let where_ = file
            .map(|f| format!(" in {}", f.display()))
            .unwrap_or_default();
        Self::extract(figment, &where_)
    }

    /// Defaults, overlaid with the TOML document `text` (what [`Config::load`] does with a
    /// file's contents).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let figment = Figment::from(Serialized::defaults(Config::default()));
        Self::extract(figment.merge(Toml::string(text)), "")
    }

    fn extract(figment: Figment, where_: &str) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError(format!("{}{where_}", describe(&e))))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values serde cannot (ranges, uniqueness, prices against the mint's units).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.into()));
        self.mint.validate().map_err(ConfigError)?;
        if self.http.max_body_bytes < 1024 {
            return fail("http.max_body_bytes: must be at least 1024");
        }
        self.public_url()?;
        self.proxy
            .validate(&self.units())
            .map_err(|e| ConfigError(e.0))?;
        // Each section checks its own keys, in the order these checks have always run (the
        // first failure is the one reported).
        self.paywall.validate()?;
        self.topup.validate_path()?;
        self.passes.validate(&self.units())?;
        self.validate_forward()?;
        self.passes.hooks.validate()?;
        self.topup.validate_amounts()?;
        self.limits.validate()?;
        self.admin.validate()?;
        self.nostr.validate().map_err(ConfigError)?;
        self.store.validate()?;
        self.backend.validate()?;
        self.relay.validate(&self.units())?;
        Ok(())
    }

    /// `[forward]` against the pass scopes; a scope without routes must be the proxy's.
    fn validate_forward(&self) -> Result<(), ConfigError> {
        let forward = &self.forward;
        let proxy_scope = forward.listen.map(|_| forward.scope.as_str());
        for (i, scope) in self.passes.scopes.iter().enumerate() {
            if scope.routes.is_empty() && proxy_scope != Some(scope.name.as_str()) {
                return Err(ConfigError(format!(
                    "passes.scopes[{i}].routes: name at least one route (only the forward proxy's scope, [forward] scope, may have none)"
                )));
            }
        }
        let Some(listen) = forward.listen else {
            return Ok(());
        };
        let fail = |msg: String| Err(ConfigError(format!("forward.{msg}")));
        if listen == self.listen && listen.port() != 0 {
            return fail(format!("listen: {listen} is the HTTP listener's address"));
        }
        let Some(scope) = self.passes.scopes.iter().find(|s| s.name == forward.scope) else {
            return fail(format!(
                "scope: no [[passes.scopes]] is named `{}` (the proxy is opened by passes of that scope)",
                forward.scope
            ));
        };
        coinslot_forward::destination::Destinations::new(&forward.allow)
            .map_err(|e| ConfigError(format!("forward.allow: {e}")))?;
        if forward.price_per_mb == Some(0) {
            return fail("price_per_mb: must be at least 1 (leave it out for passes only)".into());
        }
        if let Some(unit) = forward.unit.as_ref().or(scope.unit.as_ref()) {
            if !self.units().iter().any(|u| u.to_string() == *unit) {
                return fail(format!("unit: the mint does not issue `{unit}`"));
            }
        }
        let times = [
            forward.idle_timeout_secs,
            forward.connect_timeout_secs,
            forward.handshake_timeout_secs,
            forward.recheck_secs,
        ];
        if times.contains(&0) || forward.max_connections == 0 {
            return fail(
                "idle_timeout_secs, connect_timeout_secs, handshake_timeout_secs, recheck_secs and max_connections must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The network the mint announces on nostr: `nostr.network`, or `regtest` for the fake
    /// backend (no real money moves).
    pub fn network(&self) -> String {
        match (&self.nostr.network, &self.backend) {
            (Some(network), _) => network.clone(),
            (None, BackendConfig::Fake(_)) => "regtest".into(),
            (None, _) => "mainnet".into(),
        }
    }

    /// The mint's units, in configuration order.
    pub fn units(&self) -> Vec<coinslot_mint::cashu::nuts::CurrencyUnit> {
        self.mint.units.iter().map(|u| u.currency_unit()).collect()
    }

    /// The URL clients reach this server at: `public_url`, or `http://<listen>`.
    pub fn public_url(&self) -> Result<String, ConfigError> {
        match &self.public_url {
            Some(url) => {
                let trimmed = url.trim_end_matches('/');
                let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                    && trimmed.len() > "https://".len()
                    && !trimmed.contains(['?', '#', ' ']);
                if ok {
                    Ok(trimmed.to_string())
                } else {
                    Err(ConfigError(format!(
                        "public_url: `{url}` is not an http(s) URL without query"
                    )))
                }
            }
            None => Ok(format!("http://{}", self.listen)),
        }
    }
}

/// Key names whose values are secrets: hidden when a config is printed. Judged by the
/// name's end: `max_secret_len` is a limit, `nwc_secret` a secret.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "password",
        "macaroon",
        "nsec",
        "token",
        "key",
        "credentials",
    ]
    .iter()
    .any(|word| key.ends_with(word))
}

fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                if is_secret(key) {
                    *value = toml::Value::String("<hidden>".into());
                } else {
                    redact(value);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

impl Config {
    /// The configuration as TOML with every secret replaced by `<hidden>`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut value = toml::Value::try_from(self)?;
        redact(&mut value);
        if let Some(url) = value
            .get_mut("store")
            .and_then(|store| store.get_mut("url"))
        {
            if let Some(text) = url.as_str() {
                *url = toml::Value::String(hide_password(text));
            }
        }
        toml::to_string_pretty(&value)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_hidden_when_printed_and_urls_checked() {
        let mut config = Config::default();
        config.store.url = Some("postgres://u:p4ss@127.0.0.1/test".into());
        let shown = config.to_redacted_toml().unwrap();
        assert!(!shown.contains("p4ss"), "{shown}");
        assert!(
            shown.contains("postgres://u:<hidden>@127.0.0.1/test"),
            "{shown}"
        );
        config.store.url = Some("mysql://u@h/db".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("store.url"), "{err}");
    }

    #[test]
    fn secrets_are_recognised_by_the_end_of_their_name() {
        for secret in [
            "macaroon",
            "api_key",
            "nwc_secret",
            "password",
            "nsec",
            "key",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in [
            "max_secret_len",
            "keyset_id_version",
            "max_header_bytes",
            "name",
        ] {
            assert!(!is_secret(plain), "{plain}");
        }
        let mut value: toml::Value =
            toml::from_str("[lightning]\nmacaroon = \"abc\"\nurl = \"x\"\n")
                .unwrap_or_else(|e| panic!("{e}"));
        redact(&mut value);
        assert_eq!(value["lightning"]["macaroon"].as_str(), Some("<hidden>"));
        assert_eq!(value["lightning"]["url"].as_str(), Some("x"));
    }
}
