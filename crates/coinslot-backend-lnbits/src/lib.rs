//! An LNbits wallet as a Coinslot payment backend.
//!
//! A small client of the three parts of LNbits' API (1.x) a receive-only mint needs:
//!
//! - `POST /api/v1/payments` with `out: false` creates the invoice of each mint quote;
//! - `GET /api/v1/payments/{hash}` tells whether it was paid;
//! - the websocket `/api/v1/ws/{invoice key}` announces payments, so a quote turns paid
//!   without polling (the mint still reconciles unpaid quotes, so a payment made while the
//!   socket was down is found).
//!
//! It needs the wallet's **invoice key** and refuses the admin key: LNbits itself refuses to
//! pay with an invoice key, so even a bug here could not spend the operator's balance.
//!
//! Why not cdk's `cdk-lnbits`: it stopped at cdk 0.17 (two versions of cdk's types in one
//! build), asks for the admin key, and trusts the websocket. Two things in LNbits' API need
//! care that a generic client does not take:
//!
//! - `GET /api/v1/payments/{hash}` answers `paid` for a payment of **any** wallet on the
//!   instance when the key is missing or not valid (with a valid key it looks in that
//!   wallet only); only an answer carrying `details` is about our wallet. A payment counts
//!   only with `details` for the hash asked and a positive (incoming) amount.
//! - Anyone may `POST` a message to a websocket topic. A notification is only a hint: the
//!   payment is looked up with the key before its quote is marked paid.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::backend::{
    check_invoice, parse_payment_hash, round_up_to_sats, BackendError, Invoice, InvoiceStatus,
    PaymentBackend, Reconnect,
};
use coinslot_mint::unix_now;
use futures::stream::{BoxStream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

/// The backend's name in logs, metrics and errors.
const NAME: &str = "lnbits";

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to reach an LNbits wallet.
#[derive(Clone)]
pub struct LnbitsOptions {
    /// Base URL of the LNbits instance (`https://lnbits.example`).
    pub api_url: String,
    /// The wallet's "Invoice/read key" (never the admin key: Coinslot does not pay).
    pub invoice_key: String,
}

impl std::fmt::Debug for LnbitsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsOptions")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// An LNbits wallet as a [`PaymentBackend`]. Cheap to clone.
#[derive(Clone)]
pub struct LnbitsBackend {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The base URL without a trailing `/`.
    api: String,
    key: String,
    /// The websocket is open.
    listening: AtomicBool,
}

impl std::fmt::Debug for LnbitsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsBackend")
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

/// What `GET /api/v1/wallet` says about a key.
#[derive(Debug, Deserialize)]
struct WalletInfo {
    name: String,
    /// Shown to the admin key only.
    #[serde(default)]
    id: Option<String>,
}

/// A created invoice (`POST /api/v1/payments`).
#[derive(Debug, Deserialize)]
struct Created {
    payment_hash: String,
    /// LNbits 1.x sends both; older versions only `payment_request`.
    #[serde(default)]
    bolt11: Option<String>,
    #[serde(default)]
    payment_request: Option<String>,
}

/// `GET /api/v1/payments/{hash}`.
#[derive(Debug, Deserialize)]
struct Lookup {
    paid: bool,
    #[serde(default)]
    status: Option<String>,
    /// Only there when the payment is the key's wallet's.
    #[serde(default)]
    details: Option<Payment>,
}

/// A payment as LNbits shows it (lookups and websocket messages).
#[derive(Debug, Deserialize)]
struct Payment {
    payment_hash: String,
    /// Millisatoshis; negative for an outgoing payment.
    amount: i64,
}

/// A websocket message of the wallet's topic.
#[derive(Debug, Deserialize)]
struct Notification {
    payment: Payment,
}

impl LnbitsBackend {
    /// Checks the key with LNbits and returns the backend. Fails when LNbits refuses the
    /// key or when it is the admin key; an LNbits that cannot be reached yet is only
    /// logged (the mint starts, and its quotes fail until LNbits is back).
    pub async fn connect(options: LnbitsOptions) -> Result<Self, BackendError> {
        let api = options.api_url.trim_end_matches('/').to_string();
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(BackendError(format!(
                "{NAME}: api_url {api:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| BackendError(format!("{NAME}: HTTP client: {e}")))?;
        let backend = LnbitsBackend {
            inner: Arc::new(Inner {
                http,
                api,
                key: options.invoice_key,
                listening: AtomicBool::new(false),
            }),
        };
        match backend.wallet().await {
            Ok(WalletInfo { id: Some(_), .. }) => Err(BackendError(format!(
                "{NAME}: this is the wallet's admin key, which can spend its balance; give \
                 Coinslot the wallet's Invoice/read key instead (it only receives)"
            ))),
            Ok(wallet) => {
                tracing::info!(backend = NAME, wallet = %wallet.name, "invoice key accepted");
                Ok(backend)
            }
            Err(Failure::Refused(detail)) => Err(BackendError(format!(
                "{NAME}: {} refused the invoice key ({detail}): set the wallet's Invoice/read key",
                backend.inner.api
            ))),
            Err(err) => {
                tracing::warn!(backend = NAME, error = %err, "cannot check the key yet; quotes fail until LNbits answers");
                Ok(backend)
            }
        }
    }

    /// Whether LNbits' payment notifications arrive now (the websocket is open). While they
    /// do not, quotes turn paid only when the mint looks them up.
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    async fn wallet(&self) -> Result<WalletInfo, Failure> {
        let request = self.inner.http.get(self.url("/api/v1/wallet"));
        self.call(request).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.api)
    }

    /// Sends `request` with the key and decodes a successful answer.
    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failure> {
        let response = request
            .header("X-Api-Key", &self.inner.key)
            .send()
            .await
            .map_err(|e| Failure::Other(format!("cannot reach LNbits: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Other(format!("LNbits' answer broke off: {e}")))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            let detail = format!("{} {detail}", status.as_u16());
            return Err(
                if [401, 403].contains(&status.as_u16()) || detail.contains("Wallet not found") {
                    Failure::Refused(detail)
                } else {
                    Failure::Status(status.as_u16(), detail)
                },
            );
        }
        serde_json::from_slice(&body)
            .map_err(|e| Failure::Other(format!("LNbits answered something unexpected: {e}")))
    }

    /// The payment `hash` as this wallet's incoming payment.
    async fn lookup(&self, hash: &[u8; 32]) -> Result<InvoiceStatus, Failure> {
        let hex_hash = hex::encode(hash);
        let request = self
            .inner
            .http
            .get(self.url(&format!("/api/v1/payments/{hex_hash}")));
        let lookup: Lookup = match self.call(request).await {
            Err(Failure::Status(404, _)) => return Ok(InvoiceStatus::Expired),
            other => other?,
        };
        let ours = lookup
            .details
            .as_ref()
            .is_some_and(|p| p.payment_hash.eq_ignore_ascii_case(&hex_hash) && p.amount > 0);
        if !ours {
            // LNbits answers for any wallet's payment, and for no key at all: an answer
            // without our details never counts.
            return Err(Failure::Other(
                "LNbits knows this payment but not as the wallet's incoming one (another \
                 wallet's, or the key is no longer valid)"
                    .into(),
            ));
        }
        Ok(if lookup.paid {
            InvoiceStatus::Paid
        } else if lookup.status.as_deref() == Some("failed") {
            InvoiceStatus::Expired
        } else {
            InvoiceStatus::Unpaid
        })
    }

    /// The websocket URL of the wallet's topic (it carries the key: never log it).
    fn websocket_url(&self) -> String {
        let base = match self.inner.api.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", self.inner.api.trim_start_matches("http://")),
        };
        format!("{base}/api/v1/ws/{}", self.inner.key)
    }
}

/// Why a call failed.
#[derive(Debug)]
enum Failure {
    /// LNbits refused the key.
    Refused(String),
    /// LNbits answered with another error status.
    Status(u16, String),
    /// No answer, or one that does not parse.
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(detail) => write!(f, "LNbits refused the key ({detail})"),
            Failure::Status(_, detail) => write!(f, "LNbits answered {detail}"),
            Failure::Other(err) => f.write_str(err),
        }
    }
}

impl Failure {
    fn during(self, call: &str) -> BackendError {
        BackendError(format!("{NAME}: {call} failed: {self}"))
    }
}

#[async_trait::async_trait]
impl PaymentBackend for LnbitsBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, BackendError> {
        // LNbits takes whole satoshis.
        let asked = round_up_to_sats(amount_msat)?;
        let body = json!({
            "out": false,
            "amount": asked / 1000,
            "unit": "sat",
            "memo": description,
            "expiry": expiry_secs,
        });
        let request = self
            .inner
            .http
            .post(self.url("/api/v1/payments"))
            .json(&body);
        let created: Created = self
            .call(request)
            .await
            .map_err(|e| e.during("create invoice"))?;
        let hash = parse_payment_hash(&created.payment_hash)
            .map_err(|e| Failure::Other(e.0).during("create invoice"))?;
        let bolt11 = created.bolt11.or(created.payment_request).ok_or_else(|| {
            Failure::Other("no invoice in LNbits' answer".into()).during("create invoice")
        })?;
        check_invoice(NAME, &bolt11, &hash, amount_msat, asked)?;
        Ok(Invoice {
            bolt11,
            lookup_id: hex::encode(hash),
            expiry: unix_now().saturating_add(expiry_secs),
        })
    }

    async fn invoice_status(&self, lookup_id: &str) -> Result<InvoiceStatus, BackendError> {
        let hash = parse_payment_hash(lookup_id)?;
        self.lookup(&hash)
            .await
            .map_err(|e| e.during("look up invoice"))
    }

    async fn paid_invoices(&self) -> Result<BoxStream<'static, String>, BackendError> {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(listen(self.clone(), tx));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Follows the wallet's websocket, connecting again with backoff whenever it drops, and
/// forwards each incoming payment the API confirms. Stops when the mint drops the stream.
async fn listen(backend: LnbitsBackend, tx: mpsc::Sender<String>) {
    let mut reconnect = Reconnect::default();
    loop {
        let connected = tokio::select! {
            connected = connect_websocket(&backend) => connected,
            () = tx.closed() => return,
        };
        match connected {
            Ok(mut socket) => {
                tracing::info!(backend = NAME, "listening for incoming payments");
                reconnect.connected();
                backend.inner.listening.store(true, Ordering::Relaxed);
                loop {
                    let message = tokio::select! {
                        message = socket.next() => message,
                        () = tx.closed() => break,
                    };
                    let text = match message {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => text,
                        Some(Ok(_)) => continue,
                        Some(Err(err)) => {
                            tracing::warn!(backend = NAME, error = %err, "websocket failed");
                            break;
                        }
                        None => break,
                    };
                    if let Some(hash) = confirmed_payment(&backend, text.as_str()).await {
                        if tx.send(hash).await.is_err() {
                            break;
                        }
                    }
                }
                backend.inner.listening.store(false, Ordering::Relaxed);
                if tx.is_closed() {
                    return;
                }
                tracing::warn!(backend = NAME, "websocket closed; connecting again");
            }
            Err(err) => {
                tracing::warn!(backend = NAME, error = %err, "cannot open the websocket");
            }
        }
        if !reconnect.pause(&tx).await {
            return;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_websocket(backend: &LnbitsBackend) -> Result<Socket, String> {
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls_config()?));
    let (socket, _) = tokio::time::timeout(
        CALL_TIMEOUT,
        tokio_tungstenite::connect_async_tls_with_config(
            backend.websocket_url(),
            None,
            false,
            Some(connector),
        ),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    // The error names the URL at most by host: the key in its path stays out of the log.
    .map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            format!("LNbits answered {}", response.status())
        }
        other => other.to_string(),
    })?;
    Ok(socket)
}

/// TLS for `wss://` with the Mozilla roots, on the ring provider the rest of the build uses.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// The payment hash of an incoming payment the message announces, once the API confirms
/// it is this wallet's and paid.
async fn confirmed_payment(backend: &LnbitsBackend, text: &str) -> Option<String> {
    let notification: Notification = serde_json::from_str(text).ok()?;
    if notification.payment.amount <= 0 {
        return None; // outgoing
    }
    let hash = parse_payment_hash(&notification.payment.payment_hash).ok()?;
    match backend.lookup(&hash).await {
        Ok(InvoiceStatus::Paid) => Some(hex::encode(hash)),
        Ok(_) => None,
        Err(err) => {
            // Reconciliation finds it later.
            tracing::warn!(backend = NAME, error = %err, "cannot confirm a notified payment");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn backend(api: &str) -> LnbitsBackend {
        LnbitsBackend {
            inner: Arc::new(Inner {
                http: reqwest::Client::new(),
                api: api.into(),
                key: "k".repeat(32),
                listening: AtomicBool::new(false),
            }),
        }
    }

    #[test]
    fn the_websocket_follows_the_api_scheme() {
        let key = "k".repeat(32);
        assert_eq!(
            backend("https://lnbits.example/sub").websocket_url(),
            format!("wss://lnbits.example/sub/api/v1/ws/{key}")
        );
        assert_eq!(
            backend("http://127.0.0.1:5000").websocket_url(),
            format!("ws://127.0.0.1:5000/api/v1/ws/{key}")
        );
    }

    #[test]
    fn notifications_parse_as_lnbits_sends_them() {
        let text = r#"{"wallet_balance": 21, "payment": {"checking_id": "ab", "payment_hash": "ab", "wallet_id": "w", "amount": 21000, "fee": 0, "status": "success"}}"#;
        let notification: Notification = serde_json::from_str(text).unwrap();
        assert_eq!(notification.payment.amount, 21000);
        let lookup: Lookup = serde_json::from_str(r#"{"paid": true, "preimage": "00"}"#).unwrap();
        assert!(lookup.paid && lookup.details.is_none());
    }

    #[test]
    fn options_never_show_the_key() {
        let options = LnbitsOptions {
            api_url: "https://lnbits.example".into(),
            invoice_key: "secretsecretsecretsecretsecret12".into(),
        };
        assert!(!format!("{options:?}").contains("secret"));
        assert!(!format!("{:?}", backend("https://x")).contains(&"k".repeat(32)));
    }

    #[tokio::test]
    async fn a_url_without_scheme_is_refused() {
        let err = LnbitsBackend::connect(LnbitsOptions {
            api_url: "lnbits.example".into(),
            invoice_key: "0".repeat(32),
        })
        .await
        .unwrap_err();
        assert!(err.0.contains("must start with http"), "{}", err.0);
    }
}
