//! [`FakeBackend`]: real, signed BOLT11 invoices that nobody pays; each is marked paid by
//! itself after a delay. For development and tests only: no money moves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use futures::stream::BoxStream;
use futures::StreamExt;
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use super::{BackendError, Invoice, InvoiceStatus, PaymentBackend};
use crate::unix_now;

/// Settings of the fake backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeBackendConfig {
    /// Milliseconds after which an invoice counts as paid. `None`: never by itself, only
    /// through [`FakeBackend::pay`].
    // Left out when it has its default, so a config layered over the defaults can switch
    // `[backend] kind` without this key staying behind.
    #[serde(skip_serializing_if = "pays_at_once")]
    pub pay_after_ms: Option<u64>,
}

fn pays_at_once(pay_after_ms: &Option<u64>) -> bool {
    *pay_after_ms == Some(0)
}

impl Default for FakeBackendConfig {
    fn default() -> Self {
        Self {
            pay_after_ms: Some(0),
        }
    }
}

/// A payment backend that pretends every invoice is paid. See the module docs.
#[derive(Debug, Clone)]
pub struct FakeBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: FakeBackendConfig,
    node_key: SecretKey,
    invoices: Mutex<HashMap<String, FakeInvoice>>,
    paid_tx: broadcast::Sender<String>,
}

#[derive(Debug, Clone, Copy)]
struct FakeInvoice {
    paid: bool,
    expiry: u64,
}

impl FakeBackend {
    /// A fake backend with a throw-away node key.
    pub fn new(config: FakeBackendConfig) -> Self {
        tracing::warn!(
            pay_after_ms = ?config.pay_after_ms,
            "FAKE Lightning backend: invoices are never really paid, NO REAL MONEY is involved; \
             every quote is marked paid by itself. Do not use in production."
        );
        let mut bytes = [0u8; 32];
        let node_key = loop {
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            if let Ok(key) = SecretKey::from_slice(&bytes) {
                break key;
            }
        };
        let (paid_tx, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                config,
                node_key,
                invoices: Mutex::new(HashMap::new()),
                paid_tx,
            }),
        }
    }

    /// Marks an invoice paid now. Returns false if the backend does not know it.
    pub fn pay(&self, lookup_id: &str) -> bool {
        mark_paid(&self.inner, lookup_id)
    }
}

fn mark_paid(inner: &Inner, lookup_id: &str) -> bool {
    let known = match inner.invoices.lock().get_mut(lookup_id) {
        Some(invoice) => {
            invoice.paid = true;
            true
        }
        None => false,
    };
    if known {
        // No receiver (yet) is fine: the mint also polls `invoice_status`.
        let _ = inner.paid_tx.send(lookup_id.to_string());
    }
    known
}

#[async_trait::async_trait]
impl PaymentBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, BackendError> {
        let mut preimage = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut preimage);
        let payment_hash = sha256::Hash::hash(&preimage);
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secp = Secp256k1::signing_only();
        let node_key = self.inner.node_key;
        let invoice = InvoiceBuilder::new(Currency::Regtest)
            .description(description.to_string())
            .payment_hash(payment_hash)
            .payment_secret(PaymentSecret(secret))
            .current_timestamp()
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(amount_msat)
            .expiry_time(Duration::from_secs(expiry_secs))
            .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &node_key))
            .map_err(|e| BackendError(format!("fake invoice: {e}")))?;
        let lookup_id = payment_hash.to_string();
        let expiry = unix_now().saturating_add(expiry_secs);
        self.inner.invoices.lock().insert(
            lookup_id.clone(),
            FakeInvoice {
                paid: false,
                expiry,
            },
        );
        match self.inner.config.pay_after_ms {
            Some(0) => {
                mark_paid(&self.inner, &lookup_id);
            }
            Some(ms) => {
                let inner = Arc::clone(&self.inner);
                let id = lookup_id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    mark_paid(&inner, &id);
                });
            }
            None => {}
        }
        Ok(Invoice {
            bolt11: invoice.to_string(),
            lookup_id,
            expiry,
        })
    }

    async fn invoice_status(&self, lookup_id: &str) -> Result<InvoiceStatus, BackendError> {
        Ok(match self.inner.invoices.lock().get(lookup_id) {
            Some(invoice) if invoice.paid => InvoiceStatus::Paid,
            Some(invoice) if invoice.expiry > unix_now() => InvoiceStatus::Unpaid,
            _ => InvoiceStatus::Expired,
        })
    }

    async fn paid_invoices(&self) -> Result<BoxStream<'static, String>, BackendError> {
        let stream = BroadcastStream::new(self.inner.paid_tx.subscribe())
            .filter_map(|item| async move { item.ok() });
        Ok(stream.boxed())
    }
}
