//! Incoming payments: the trait a Lightning backend implements, and a fake one.
//!
//! The mint only ever *receives* payments (top-ups). There is no method to pay out: a backend
//! cannot be asked to melt, by construction.

use futures::stream::BoxStream;

pub mod fake;

pub use fake::{FakeBackend, FakeBackendConfig};

/// An invoice created for a mint quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The BOLT11 string the payer pays.
    pub bolt11: String,
    /// The backend's handle to look the invoice up (the payment hash, hex).
    pub lookup_id: String,
    /// Unix time after which the invoice cannot be paid.
    pub expiry: u64,
}

/// State of an invoice at the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Not paid (yet).
    Unpaid,
    /// Paid in full.
    Paid,
    /// Expired unpaid, or unknown to the backend.
    Expired,
}

/// A backend failure, with a message for the operator's log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// A source of incoming Lightning payments.
#[async_trait::async_trait]
pub trait PaymentBackend: Send + Sync + 'static {
    /// Short name for logs and metrics (`fake`, `lnd`, …).
    fn name(&self) -> &'static str;

    /// Creates an invoice for `amount_msat`, payable for `expiry_secs`.
    async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, BackendError>;

    /// Asks the backend for an invoice's current state.
    async fn invoice_status(&self, lookup_id: &str) -> Result<InvoiceStatus, BackendError>;

    /// Lookup ids of invoices as they get paid. Called once, when the mint starts; the mint
    /// also polls [`PaymentBackend::invoice_status`], so a missed item only delays a quote.
    async fn paid_invoices(&self) -> Result<BoxStream<'static, String>, BackendError>;
}
