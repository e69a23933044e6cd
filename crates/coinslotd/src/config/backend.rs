//! `[backend]`: the Lightning backend for top-ups.

use std::path::{Path, PathBuf};

use coinslot_mint::FakeBackendConfig;
use serde::{Deserialize, Serialize};

use super::ConfigError;

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
    /// An LNbits wallet over its HTTP API and websocket (coinslot-backend-lnbits).
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
