//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert`, on rustls.
//!
//! tokio-postgres parses only `disable`, `prefer` and `require`, and no `sslrootcert`, so
//! both are taken out of the URL here and turned into a rustls verifier:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (default) | if the server offers it | only against `sslrootcert`, if given |
//! | `require` | always | only against `sslrootcert`, if given |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert` and the host name |
//!
//! As libpq: `prefer` and `require` without a CA encrypt but accept any certificate (they
//! stop a passive listener, not an active one), and a CA given to them makes them check the
//! chain. `sslrootcert=system` trusts the operating system's CAs (what managed databases'
//! certificates chain to); a file holds PEM certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coinslot_mint::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// TLS if the server offers it (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS, the server's certificate chaining to the CA.
    VerifyCa,
    /// TLS, the certificate chaining to the CA and naming the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, StoreError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` tries plain text first: a downgrade we do not offer.
            other => {
                return Err(error(format!(
                    "sslmode={other}: use disable, prefer, require, verify-ca or verify-full"
                )))
            }
        })
    }

    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// What tokio-postgres does before the handshake.
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// The CAs a server's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// PEM certificates in a file (a managed database's CA bundle, your own CA).
    File(PathBuf),
    /// The operating system's trusted CAs (`sslrootcert=system`).
    System,
}

/// The TLS settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// How much TLS.
    pub mode: SslMode,
    /// What to trust; required by `verify-ca` and `verify-full`.
    pub roots: Option<RootCerts>,
}

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of a connection string (URL or libpq's
    /// `key=value` form); returns the rest for tokio-postgres, and the settings.
    pub fn split(url: &str) -> Result<(String, TlsSettings), StoreError> {
        let mut settings = TlsSettings::default();
        let mut take = |key: &str, value: String| -> Result<bool, StoreError> {
            match key {
                "sslmode" => settings.mode = SslMode::parse(&value)?,
                "sslrootcert" if value == "system" => settings.roots = Some(RootCerts::System),
                "sslrootcert" => settings.roots = Some(RootCerts::File(PathBuf::from(value))),
                _ => return Ok(false),
            }
            Ok(true)
        };
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (base, query) = match url.split_once('?') {
                Some((base, query)) => (base, query),
                None => (url, ""),
            };
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(key, percent_decode(value)?)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else {
            // Not a connection string we can read (another scheme, a typo): tokio-postgres
            // names what is wrong with it.
            let Ok(pairs) = key_values(url) else {
                return Ok((url.to_string(), settings));
            };
            let mut kept = Vec::new();
            for (key, value, text) in pairs {
                if !take(&key, value)? {
                    kept.push(text);
                }
            }
            kept.join(" ")
        };
        Ok((rest, settings))
    }

    /// Adds a CA file named outside the URL (`[store] ca_file`); it must not contradict one
    /// in the URL.
    pub fn with_ca_file(mut self, file: Option<&Path>) -> Result<TlsSettings, StoreError> {
        let Some(file) = file else { return Ok(self) };
        let given = RootCerts::File(file.to_path_buf());
        match &self.roots {
            Some(roots) if *roots != given => {
                return Err(error(format!(
                    "the CA file {} and the URL's sslrootcert disagree: give one",
                    file.display()
                )))
            }
            _ => self.roots = Some(given),
        }
        Ok(self)
    }

    /// Checks the settings fit together and the CA file holds certificates.
    pub fn check(&self) -> Result<(), StoreError> {
        self.connector().map(drop)
    }

    /// The connector these settings ask for (with `disable` it is never used).
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        if self.mode == SslMode::Disable && self.roots.is_some() {
            return Err(error(
                "sslmode=disable with a CA: nothing would be checked; drop one of them".into(),
            ));
        }
        Ok(MakeRustlsConnect::new(self.client_config()?))
    }

    fn client_config(&self) -> Result<rustls::ClientConfig, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.roots {
            None if self.mode.verifies() => {
                return Err(error(format!(
                    "sslmode={}: name the CA with sslrootcert=<PEM file> (or sslrootcert=system, or [store] ca_file)",
                    if self.mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
                )))
            }
            None => Arc::new(EncryptOnly(Arc::clone(&provider))),
            Some(roots) => {
                let chain = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(root_store(roots)?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| error(format!("CA certificates: {e}")))?;
                if self.mode == SslMode::VerifyFull {
                    chain
                } else {
                    Arc::new(AnyName(chain))
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| error(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(config)
    }
}

fn error(message: String) -> StoreError {
    StoreError::Backend(format!("database TLS: {message}"))
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| error(format!("sslrootcert {}: {e}", path.display())))?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| error(format!("sslrootcert {}: {e}", path.display())))?;
                store
                    .add(cert)
                    .map_err(|e| error(format!("sslrootcert {}: {e}", path.display())))?;
                found += 1;
            }
            if found == 0 {
                return Err(error(format!(
                    "sslrootcert {}: no PEM certificate in it",
                    path.display()
                )));
            }
        }
        RootCerts::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(error(
                    "sslrootcert=system: the system has no CA certificates (install ca-certificates)".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// `%XX` escapes of a URL's query value.
fn percent_decode(value: &str) -> Result<String, StoreError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = value
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| error(format!("bad %-escape in {value:?}")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| error(format!("{value:?} is not UTF-8")))
}

/// libpq's `key=value` pairs (values may be single-quoted, with `\` escapes): each key,
/// its value, and the pair's text as written.
fn key_values(text: &str) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut pairs = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(error(format!(
                "`{key}` has no value in the connection string"
            )));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => return Err(error("unterminated quote".into())),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(error("unterminated quote".into())),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        let end = chars.peek().map_or(text.len(), |&(i, _)| i);
        pairs.push((key, value, text[start..end].to_string()));
    }
    Ok(pairs)
}

/// `prefer`/`require` without a CA: encryption against passive listeners, any certificate
/// accepted (as libpq). The handshake's signatures are still checked.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must reach the CA; the name in the certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ssl_settings_leave_the_url() {
        let (rest, tls) = TlsSettings::split(
            "postgres://u:p@db:5432/mint?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/mint?application_name=x");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.roots, Some(RootCerts::File("/etc/ca.pem".into())));

        let (rest, tls) = TlsSettings::split("postgres://db/mint?sslrootcert=system").unwrap();
        assert_eq!(rest, "postgres://db/mint");
        assert_eq!(
            (tls.mode, tls.roots),
            (SslMode::Prefer, Some(RootCerts::System))
        );

        let (rest, tls) = TlsSettings::split("postgres://db/mint").unwrap();
        assert_eq!(rest, "postgres://db/mint");
        assert_eq!(tls, TlsSettings::default());
    }

    #[test]
    fn key_value_strings_too() {
        let (rest, tls) = TlsSettings::split(
            "host=db user=coinslot sslmode = require sslrootcert='/my ca/it\\'s.pem' dbname=mint",
        )
        .unwrap();
        assert_eq!(rest, "host=db user=coinslot dbname=mint");
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.roots, Some(RootCerts::File("/my ca/it's.pem".into())));
        // What cannot be read goes to tokio-postgres as it is, for its own error.
        for unreadable in ["host=db sslmode", "host='db", "mysql://nope"] {
            let (rest, tls) = TlsSettings::split(unreadable).unwrap();
            assert_eq!((rest.as_str(), tls), (unreadable, TlsSettings::default()));
        }
    }

    #[test]
    fn mistakes_are_named() {
        let err = TlsSettings::split("postgres://db/x?sslmode=allow").unwrap_err();
        assert!(err.to_string().contains("sslmode=allow"), "{err}");
        let (_, tls) = TlsSettings::split("postgres://db/x?sslmode=verify-full").unwrap();
        let err = tls.connector().err().unwrap();
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        let (_, tls) =
            TlsSettings::split("postgres://db/x?sslmode=disable&sslrootcert=/ca.pem").unwrap();
        assert!(tls.connector().is_err());
        let (_, tls) = TlsSettings::split("postgres://db/x?sslrootcert=/ca.pem").unwrap();
        assert!(tls
            .clone()
            .with_ca_file(Some(Path::new("/other.pem")))
            .is_err());
        assert!(tls.with_ca_file(Some(Path::new("/ca.pem"))).is_ok());
        let missing = TlsSettings {
            mode: SslMode::Require,
            roots: Some(RootCerts::File("/nonexistent/ca.pem".into())),
        };
        let err = missing.connector().err().unwrap();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn modes_without_a_ca_need_nothing_more() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            assert!(TlsSettings { mode, roots: None }.connector().is_ok());
        }
    }
}
