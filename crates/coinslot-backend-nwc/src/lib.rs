//! Nostr Wallet Connect (NIP-47) as a Coinslot payment backend.
//!
//! The operator pastes a `nostr+walletconnect://…` connection string from any NWC wallet
//! (Alby Hub, a phoenixd bridge, a custodial wallet…) and the mint receives top-ups into
//! it. Only three parts of NIP-47 are used, all for *incoming* payments:
//!
//! - `make_invoice` for each mint quote;
//! - `lookup_invoice` when the mint checks a quote (and when it reconciles at start): an
//!   invoice is paid only when the wallet reports it settled;
//! - `payment_received` notifications (kind 23196), so a quote turns paid without polling.
//!
//! Nothing ever pays out: this backend has no way to send `pay_invoice`, by construction
//! (the [`PaymentBackend`] trait has no such method). Give the connection the narrowest
//! permissions the wallet offers (`make_invoice`, `lookup_invoice`, notifications).
//!
//! Requests and answers are NIP-04 encrypted between the connection's secret and the wallet
//! service's key (what NIP-47 wallets speak today); answers are matched to requests by the
//! request event's id and must be signed by the wallet service.

use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::backend::{BackendError, Invoice, InvoiceStatus, PaymentBackend};
use futures::stream::{BoxStream, StreamExt};
use nostr_sdk::nips::nip47::{
    self, ErrorCode, LookupInvoiceRequest, MakeInvoiceRequest, NostrWalletConnectURI, Notification,
    NotificationResult, Request, Response,
};
use nostr_sdk::prelude::*;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// How long a request waits for the wallet's answer unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the NWC backend beside the connection string.
#[derive(Debug, Clone)]
pub struct NwcOptions {
    /// How long to wait for the wallet service's answer to each request.
    pub timeout: Duration,
}

impl Default for NwcOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A [`PaymentBackend`] backed by a wallet reached over Nostr Wallet Connect.
#[derive(Debug, Clone)]
pub struct NwcBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    uri: NostrWalletConnectURI,
    timeout: Duration,
    paid: broadcast::Sender<String>,
}

impl NwcBackend {
    /// Parses `connection` (`nostr+walletconnect://<wallet pubkey>?relay=…&secret=…`),
    /// connects to its relays and starts listening for payment notifications. Fails on a
    /// malformed string (without echoing the secret) or when no relay can be added; a relay
    /// that is down is retried in the background.
    pub async fn connect(connection: &str, options: NwcOptions) -> Result<Self, BackendError> {
        let uri = NostrWalletConnectURI::parse(connection.trim()).map_err(|e| {
            BackendError(format!(
                "NWC connection string: {e} (expected nostr+walletconnect://<wallet pubkey>?relay=wss://…&secret=<hex>)"
            ))
        })?;
        if uri.relays.is_empty() {
            return Err(BackendError(
                "NWC connection string: no relay=… in it".into(),
            ));
        }
        let client = Client::default();
        for relay in &uri.relays {
            client
                .add_relay(relay.as_str())
                .await
                .map_err(|e| BackendError(format!("NWC relay {relay}: {e}")))?;
        }
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        let (paid, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            client,
            uri,
            timeout: options.timeout,
            paid,
        });
        listen(Arc::clone(&inner)).await?;
        tracing::info!(
            wallet = %inner.uri.public_key,
            relays = inner.uri.relays.len(),
            "NWC backend connected"
        );
        Ok(Self { inner })
    }

    /// The wallet service's public key.
    pub fn wallet(&self) -> PublicKey {
        self.inner.uri.public_key
    }

    /// Closes the relay connections.
    pub async fn shutdown(&self) {
        self.inner.client.shutdown().await;
    }

    /// Sends `request` and waits for the wallet service's answer to it.
    async fn request(&self, request: Request) -> Result<Response, BackendError> {
        let inner = &self.inner;
        let method = request.method;
        let event = request
            .to_event(&inner.uri)
            .map_err(|e| BackendError(format!("NWC {method}: cannot build the request: {e}")))?;
        let filter = Filter::new()
            .kind(Kind::WalletConnectResponse)
            .author(inner.uri.public_key)
            .event(event.id);
        let mut notifications = inner.client.notifications();
        let subscription = inner
            .client
            .subscribe(filter, None)
            .await
            .map_err(|e| BackendError(format!("NWC {method}: relay: {e}")))?
            .val;
        let answer = async {
            let sent = inner
                .client
                .send_event(&event)
                .await
                .map_err(|e| BackendError(format!("NWC {method}: relay: {e}")))?;
            if sent.success.is_empty() {
                return Err(BackendError(format!(
                    "NWC {method}: no relay took the request"
                )));
            }
            loop {
                let notification = match notifications.recv().await {
                    Ok(notification) => notification,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => return Err(BackendError(format!("NWC {method}: {e}"))),
                };
                let RelayPoolNotification::Event {
                    subscription_id,
                    event: answer,
                    ..
                } = notification
                else {
                    continue;
                };
                if subscription_id != subscription {
                    continue;
                }
                // Checks the author, kind, id and signature before decrypting.
                match Response::from_event(&inner.uri, &answer) {
                    Ok(response) => return Ok(response),
                    Err(err) => {
                        tracing::warn!(error = %err, "NWC: an answer that does not decode");
                        continue;
                    }
                }
            }
        };
        let outcome = tokio::time::timeout(inner.timeout, answer).await;
        inner.client.unsubscribe(&subscription).await;
        outcome.unwrap_or_else(|_| {
            Err(BackendError(format!(
                "NWC {method}: the wallet did not answer within {} s (is it online? is the connection string current?)",
                inner.timeout.as_secs()
            )))
        })
    }
}

/// Subscribes to the wallet's notifications and forwards the payment hash of every
/// `payment_received` one.
async fn listen(inner: Arc<Inner>) -> Result<(), BackendError> {
    let me = inner.uri.secret.clone();
    let me = Keys::new(me).public_key();
    let filter = Filter::new()
        .kind(Kind::WalletConnectNotification)
        .author(inner.uri.public_key)
        .pubkey(me)
        .since(Timestamp::now());
    let mut notifications = inner.client.notifications();
    let subscription = inner
        .client
        .subscribe(filter, None)
        .await
        .map_err(|e| BackendError(format!("NWC notifications: relay: {e}")))?
        .val;
    let weak = Arc::downgrade(&inner);
    tokio::spawn(async move {
        loop {
            let notification = match notifications.recv().await {
                Ok(notification) => notification,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "NWC: notifications missed; polling catches up");
                    continue;
                }
                Err(_) => return,
            };
            let RelayPoolNotification::Event {
                subscription_id,
                event,
                ..
            } = notification
            else {
                continue;
            };
            if subscription_id != subscription {
                continue;
            }
            let Some(inner) = weak.upgrade() else { return };
            match Notification::from_event(&inner.uri, &event) {
                Ok(Notification {
                    notification: NotificationResult::PaymentReceived(payment),
                    ..
                }) => {
                    tracing::debug!(payment_hash = %payment.payment_hash, "NWC: payment received");
                    let _ = inner.paid.send(payment.payment_hash.to_lowercase());
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "NWC: a notification that does not decode")
                }
            }
        }
    });
    Ok(())
}

fn wallet_error(method: &str, err: nip47::Error) -> BackendError {
    match err {
        nip47::Error::ErrorCode(e) => BackendError(format!(
            "NWC {method}: the wallet refused: {:?}: {}",
            e.code, e.message
        )),
        other => BackendError(format!("NWC {method}: {other}")),
    }
}

fn now() -> u64 {
    Timestamp::now().as_secs()
}

#[async_trait::async_trait]
impl PaymentBackend for NwcBackend {
    fn name(&self) -> &'static str {
        "nwc"
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, BackendError> {
        let response = self
            .request(Request::make_invoice(MakeInvoiceRequest {
                amount: amount_msat,
                description: Some(description.to_string()),
                description_hash: None,
                expiry: Some(expiry_secs),
            }))
            .await?
            .to_make_invoice()
            .map_err(|e| wallet_error("make_invoice", e))?;
        if let Some(amount) = response.amount.filter(|a| *a != amount_msat) {
            return Err(BackendError(format!(
                "NWC make_invoice: asked for {amount_msat} msat, the wallet made an invoice for {amount}"
            )));
        }
        let payment_hash = response.payment_hash.ok_or_else(|| {
            BackendError("NWC make_invoice: the wallet gave no payment hash".into())
        })?;
        let expiry = response
            .expires_at
            .map(|t| t.as_secs())
            .unwrap_or_else(|| now().saturating_add(expiry_secs));
        Ok(Invoice {
            bolt11: response.invoice,
            lookup_id: payment_hash.to_lowercase(),
            expiry,
        })
    }

    async fn invoice_status(&self, lookup_id: &str) -> Result<InvoiceStatus, BackendError> {
        let answer = self
            .request(Request::lookup_invoice(LookupInvoiceRequest {
                payment_hash: Some(lookup_id.to_string()),
                invoice: None,
            }))
            .await?
            .to_lookup_invoice();
        let invoice = match answer {
            Ok(invoice) => invoice,
            // The wallet has never heard of it: nothing will pay it.
            Err(nip47::Error::ErrorCode(e)) if e.code == ErrorCode::NotFound => {
                return Ok(InvoiceStatus::Expired)
            }
            Err(err) => return Err(wallet_error("lookup_invoice", err)),
        };
        if !invoice.payment_hash.eq_ignore_ascii_case(lookup_id) {
            return Err(BackendError(
                "NWC lookup_invoice: the wallet answered about another invoice".into(),
            ));
        }
        Ok(if invoice.settled_at.is_some() {
            InvoiceStatus::Paid
        } else if invoice.expires_at.is_some_and(|t| t.as_secs() <= now()) {
            InvoiceStatus::Expired
        } else {
            InvoiceStatus::Unpaid
        })
    }

    async fn paid_invoices(&self) -> Result<BoxStream<'static, String>, BackendError> {
        let stream = BroadcastStream::new(self.inner.paid.subscribe())
            .filter_map(|item| async move { item.ok() });
        Ok(stream.boxed())
    }
}
