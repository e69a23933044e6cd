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
use coinslot_mint::{FakeBackendConfig, MintConfig};
use coinslot_nostr::NostrConfig;
use coinslot_proxy::ProxyConfig;
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
    /// Logs.
    pub log: LogConfig,
}

/// `[store]`: sled in `data_dir` unless `url` names a PostgreSQL database, which several
/// instances can share (each still needs the same `seed` file in its data directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database` (or `COINSLOT_DATABASE_URL`,
    /// `--database-url`). Unset: the embedded sled store.
    pub url: Option<String>,
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

/// `[admin]`: the operator's API under `/admin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `/admin` (tokens come from `coinslotd admin token`).
    pub enabled: bool,
    /// The largest credit one call may issue (`None`: no limit).
    pub max_credit: Option<u64>,
    /// Recent activity entries kept in memory.
    pub activity_entries: usize,
    /// Serve `/admin` on this address only (e.g. `127.0.0.1:3339`, reachable from the host
    /// alone) instead of on the public listener.
    pub listen: Option<SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_credit: None,
            activity_entries: 1000,
            listen: None,
        }
    }
}

/// `[topup]`: the page where people buy ecash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopupConfig {
    /// Serve the page.
    pub enabled: bool,
    /// Where (it hides an upstream's route of the same path).
    pub path: String,
    /// Page title [default: the mint's name].
    pub title: Option<String>,
    /// Preset amounts (in the first unit).
    pub amounts: Vec<u64>,
}

impl Default for TopupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/".into(),
            title: None,
            amounts: vec![100, 500, 1000, 5000],
        }
    }
}

/// `[passes]`: routes sold by the minute. A pass bought at `path` (or with a token on one
/// of a scope's routes) opens them until it runs out; see `coinslot_layer::pass`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassesConfig {
    /// Where passes are sold (`POST` with `X-Cashu`).
    pub path: String,
    /// Seconds in a minute (60; shorter only for demos and tests).
    pub minute_secs: u64,
    /// The scopes: `[[passes.scopes]]`.
    pub scopes: Vec<PassScopeConfig>,
    /// What to run when a pass is bought, extended, runs out or is revoked.
    pub hooks: PassHooksConfig,
}

impl Default for PassesConfig {
    fn default() -> Self {
        Self {
            path: "/pass".into(),
            minute_secs: 60,
            scopes: Vec::new(),
            hooks: PassHooksConfig::default(),
        }
    }
}

/// `[passes.hooks]`: a command and/or a webhook told about every pass event (see
/// `coinslotd::hooks`). A failing hook on a purchase refunds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassHooksConfig {
    /// Program and leading arguments; `<event> <pass id> <scope> <client key or ->` follow.
    pub command: Vec<String>,
    /// A URL that gets each event as JSON (`POST`).
    pub webhook: Option<String>,
    /// How long a hook may take, in seconds.
    pub timeout_secs: u64,
    /// How often expiries and revocations are looked for, in seconds.
    pub watch_secs: u64,
}

impl Default for PassHooksConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            webhook: None,
            timeout_secs: 10,
            watch_secs: 5,
        }
    }
}

/// The longest pass scope name.
pub const MAX_SCOPE_NAME: usize = 24;

/// `[[passes.scopes]]`: a set of routes one pass opens and its price per minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassScopeConfig {
    /// The scope's name (written into its passes, named in purchase bodies).
    pub name: String,
    /// Price of one minute.
    pub price: u64,
    /// Unit of the price [default: the mint's first unit].
    pub unit: Option<String>,
    /// Routes: `"/vpn/*"` (any method) or `"GET /status"`, patterns as in upstream prices.
    /// Empty only for the forward proxy's scope (`[forward] scope`).
    #[serde(default)]
    pub routes: Vec<String>,
}

impl PassesConfig {
    /// The scopes as the layer takes them; the error names the key.
    pub fn scopes(
        &self,
        units: &[coinslot_mint::cashu::nuts::CurrencyUnit],
    ) -> Result<Vec<coinslot::PassScope>, ConfigError> {
        let mut names = std::collections::HashSet::new();
        self.scopes
            .iter()
            .enumerate()
            .map(|(i, scope)| {
                let key = format!("passes.scopes[{i}]");
                let fail = |msg: String| ConfigError(format!("{key}.{msg}"));
                if scope.name.is_empty() || !names.insert(scope.name.as_str()) {
                    return Err(fail("name: must be set and unique".into()));
                }
                // Short and plain: the name is inside every pass, which must fit a SOCKS5
                // password (255 bytes).
                let plain = scope.name.len() <= MAX_SCOPE_NAME
                    && scope
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !plain {
                    return Err(fail(format!(
                        "name: at most {MAX_SCOPE_NAME} letters, digits, - or _"
                    )));
                }
                if scope.price == 0 {
                    return Err(fail("price: must be at least 1".into()));
                }
                let unit = match &scope.unit {
                    None => units
                        .first()
                        .cloned()
                        .ok_or_else(|| fail("unit: the mint has no unit".into()))?,
                    Some(name) => units
                        .iter()
                        .find(|u| u.to_string() == *name)
                        .cloned()
                        .ok_or_else(|| fail(format!("unit: the mint does not issue `{name}`")))?,
                };
                let mut out =
                    coinslot::PassScope::new(&scope.name, coinslot::Price::new(scope.price, unit));
                for route in &scope.routes {
                    let (method, pattern) = match route.trim().split_once(' ') {
                        Some((method, pattern)) => (method, pattern.trim()),
                        None => ("*", route.trim()),
                    };
                    if !pattern.starts_with('/') {
                        return Err(fail(format!(
                            "routes: `{route}` must be a path starting with /"
                        )));
                    }
                    out = out
                        .try_route(method, pattern)
                        .map_err(|e| fail(format!("routes: {e}")))?;
                }
                Ok(out)
            })
            .collect()
    }
}

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

/// `[log]`: how logs look (the level comes from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
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
            log: LogConfig::default(),
        }
    }
}

/// The Lightning backend for top-ups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// Fake invoices that pay themselves. Development only: no money moves.
    Fake(FakeBackendConfig),
    /// A Nostr Wallet Connect (NIP-47) wallet: invoices from it, payments into it.
    Nwc(NwcBackendConfig),
    /// An LND node over gRPC (through cdk-lnd).
    Lnd(LndBackendConfig),
    /// A Core Lightning node over its JSON-RPC socket (through cdk-cln).
    Cln(ClnBackendConfig),
    /// An LNbits wallet over its HTTP API (through cdk-lnbits).
    Lnbits(LnbitsBackendConfig),
}

/// `[backend] kind = "lnd"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndBackendConfig {
    /// gRPC address: `host:port` or `https://host:port` (LND's default port is 10009).
    pub address: String,
    /// The node's `tls.cert`; the connection trusts exactly this certificate.
    pub cert_file: PathBuf,
    /// A macaroon that may create and read invoices: LND's `invoice.macaroon` is enough
    /// (Coinslot never pays, so never give it `admin.macaroon`).
    pub macaroon_file: PathBuf,
}

/// `[backend] kind = "cln"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClnBackendConfig {
    /// The node's JSON-RPC socket, e.g. `~/.lightning/bitcoin/lightning-rpc`.
    pub rpc_socket: PathBuf,
}

/// `[backend] kind = "lnbits"`: the invoice key is a secret, so it is never in this file:
/// it comes from `COINSLOT_LNBITS_INVOICE_KEY`, else from `invoice_key_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnbitsBackendConfig {
    /// Base URL of the LNbits instance.
    pub api_url: String,
    /// File holding the wallet's invoice/read key (never the admin key).
    #[serde(default)]
    pub invoice_key_file: Option<PathBuf>,
}

/// The environment variable holding the LNbits invoice key.
pub const LNBITS_KEY_ENV: &str = "COINSLOT_LNBITS_INVOICE_KEY";

impl LnbitsBackendConfig {
    /// The invoice key: `COINSLOT_LNBITS_INVOICE_KEY`, else the file's content.
    pub fn invoice_key(&self) -> Result<String, ConfigError> {
        let key = match std::env::var(LNBITS_KEY_ENV) {
            Ok(key) => key.trim().to_string(),
            Err(_) => {
                let Some(path) = &self.invoice_key_file else {
                    return Err(ConfigError(format!(
                        "backend: kind \"lnbits\" needs the wallet's invoice key in {LNBITS_KEY_ENV} or in a file named by backend.invoice_key_file"
                    )));
                };
                std::fs::read_to_string(path)
                    .map(|text| text.trim().to_string())
                    .map_err(|e| {
                        ConfigError(format!("backend.invoice_key_file {}: {e}", path.display()))
                    })?
            }
        };
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ConfigError(
                "backend: the LNbits invoice key must be 32 hex characters (the wallet's \"Invoice/read key\")".into(),
            ));
        }
        Ok(key)
    }
}

impl BackendConfig {
    /// The backend's name as in the config (`fake`, `lnd`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Fake(_) => "fake",
            BackendConfig::Nwc(_) => "nwc",
            BackendConfig::Lnd(_) => "lnd",
            BackendConfig::Cln(_) => "cln",
            BackendConfig::Lnbits(_) => "lnbits",
        }
    }

    /// Checks what can be checked without talking to the node: settings, files, secrets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: String| Err(ConfigError(msg));
        match self {
            BackendConfig::Fake(_) => Ok(()),
            BackendConfig::Nwc(nwc) => {
                if nwc.timeout_secs == 0 {
                    return fail("backend.timeout_secs: must be at least 1".into());
                }
                Ok(())
            }
            BackendConfig::Lnd(lnd) => {
                let address = lnd
                    .address
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                let port_ok = address
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !port_ok || address.contains(['/', ' ']) {
                    return fail(format!(
                        "backend.address: {:?} is not host:port (e.g. \"127.0.0.1:10009\")",
                        lnd.address
                    ));
                }
                let cert = read_file("backend.cert_file", &lnd.cert_file)?;
                if !String::from_utf8_lossy(&cert).contains("-----BEGIN CERTIFICATE-----") {
                    return fail(format!(
                        "backend.cert_file {}: not a PEM certificate (LND's tls.cert)",
                        lnd.cert_file.display()
                    ));
                }
                read_file("backend.macaroon_file", &lnd.macaroon_file)?;
                Ok(())
            }
            BackendConfig::Cln(cln) => {
                if !is_socket(&cln.rpc_socket) {
                    return fail(format!(
                        "backend.rpc_socket {}: not a socket (is lightningd running, and is this its lightning-rpc?)",
                        cln.rpc_socket.display()
                    ));
                }
                Ok(())
            }
            BackendConfig::Lnbits(lnbits) => {
                let url = lnbits.api_url.trim_end_matches('/');
                let ok = (url.starts_with("http://") || url.starts_with("https://"))
                    && url.len() > "https://".len()
                    && !url.contains(['?', '#', ' ']);
                if !ok {
                    return fail(format!(
                        "backend.api_url: {:?} is not an http(s) URL",
                        lnbits.api_url
                    ));
                }
                lnbits.invoice_key().map(|_| ())
            }
        }
    }
}

/// A file the backend needs: it must exist and not be empty.
fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(ConfigError(format!(
            "{key} {}: the file is empty",
            path.display()
        ))),
        Ok(bytes) => Ok(bytes),
        Err(e) => Err(ConfigError(format!("{key} {}: {e}", path.display()))),
    }
}

#[cfg(unix)]
fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(not(unix))]
fn is_socket(path: &Path) -> bool {
    path.exists()
}

/// `[backend] kind = "nwc"`: the connection string is a secret, so it is never in this file:
/// it comes from `COINSLOT_NWC_URI`, else from `connection_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NwcBackendConfig {
    /// File holding the `nostr+walletconnect://…` string (mode 0600).
    pub connection_file: Option<PathBuf>,
    /// How long to wait for the wallet's answer to each request, in seconds.
    pub timeout_secs: u64,
}

impl Default for NwcBackendConfig {
    fn default() -> Self {
        Self {
            connection_file: None,
            timeout_secs: 30,
        }
    }
}

/// The environment variable holding the NWC connection string.
pub const NWC_URI_ENV: &str = "COINSLOT_NWC_URI";

impl NwcBackendConfig {
    /// The connection string: `COINSLOT_NWC_URI`, else the file's content.
    pub fn connection(&self) -> Result<String, ConfigError> {
        if let Ok(uri) = std::env::var(NWC_URI_ENV) {
            return Ok(uri);
        }
        let Some(path) = &self.connection_file else {
            return Err(ConfigError(format!(
                "backend: kind \"nwc\" needs the wallet's connection string in {NWC_URI_ENV} or in a file named by backend.connection_file"
            )));
        };
        std::fs::read_to_string(path)
            .map(|text| text.trim().to_string())
            .map_err(|e| ConfigError(format!("backend.connection_file {}: {e}", path.display())))
    }
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
        if self.paywall.session_ttl_secs == 0 {
            return fail("paywall.session_ttl_secs: must be at least 1");
        }
        if self.paywall.timeout_secs == 0 {
            return fail("paywall.timeout_secs: must be at least 1");
        }
        check_topup_path(&self.topup.path)?;
        if self.passes.minute_secs == 0 {
            return fail("passes.minute_secs: must be at least 1");
        }
        if !self.passes.path.starts_with('/') {
            return fail("passes.path: must start with /");
        }
        self.passes.scopes(&self.units())?;
        self.validate_forward()?;
        if self.passes.hooks.watch_secs == 0 || self.passes.hooks.timeout_secs == 0 {
            return fail("passes.hooks: watch_secs and timeout_secs must be at least 1");
        }
        if let Some(url) = &self.passes.hooks.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return fail("passes.hooks.webhook: must be an http:// or https:// URL");
            }
        }
        if self.topup.amounts.contains(&0) {
            return fail("topup.amounts: amounts must be at least 1");
        }
        if self.limits.max_header_bytes < 1024 {
            return fail("limits.max_header_bytes: must be at least 1024");
        }
        if self.limits.max_body_bytes < 1024 {
            return fail("limits.max_body_bytes: must be at least 1024");
        }
        if self.limits.max_connections == 0 || self.limits.header_read_timeout_secs == 0 {
            return fail(
                "limits.max_connections and limits.header_read_timeout_secs: must be at least 1",
            );
        }
        if self.admin.activity_entries == 0 {
            return fail("admin.activity_entries: must be at least 1");
        }
        self.nostr.validate().map_err(ConfigError)?;
        self.store.validate()?;
        self.backend.validate()?;
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

/// The top-up page's path: a plain path that hides none of coinslotd's own routes.
fn check_topup_path(path: &str) -> Result<(), ConfigError> {
    let fail = |why: &str| Err(ConfigError(format!("topup.path: `{path}` {why}")));
    if !path.starts_with('/') {
        return fail("must start with `/`");
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
    {
        return fail("may only hold letters, digits, `/`, `-`, `_` and `.`");
    }
    let reserved = ["/v1", "/admin", "/_coinslot", "/cashu"];
    let exact = ["/health", "/ready", "/metrics"];
    if exact.contains(&path)
        || reserved
            .iter()
            .any(|r| path == *r || path.starts_with(&format!("{r}/")))
    {
        return fail("is one of coinslotd's own routes");
    }
    Ok(())
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
    fn database_passwords_are_hidden_and_urls_checked() {
        assert_eq!(
            hide_password("postgres://coinslot:s3cret@db:5432/mint"),
            "postgres://coinslot:<hidden>@db:5432/mint"
        );
        assert_eq!(
            hide_password("postgres://coinslot@db/mint"),
            "postgres://coinslot@db/mint"
        );
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
