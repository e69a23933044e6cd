//! A cdk `MintPayment` backend seen through Coinslot's `PaymentBackend`. Only the incoming
//! half of `MintPayment` is ever called: nothing here can pay out.

use std::sync::Arc;

use cdk_common as common;
use coinslot_mint::backend::{
    self, BackendError, Invoice, InvoiceStatus, PaymentBackend, Reconnect,
};
use common::nuts::CurrencyUnit;
use common::payment::{
    Bolt11IncomingPaymentOptions, Event, IncomingPaymentOptions, MintPayment, PaymentIdentifier,
};
use common::Amount;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc;

/// The cdk backend `P`, receive only.
pub(crate) struct Adapter<P> {
    name: &'static str,
    inner: Arc<P>,
}

impl<P> Adapter<P>
where
    P: MintPayment<Err = common::payment::Error> + Send + Sync + 'static,
{
    pub(crate) async fn start(name: &'static str, inner: P) -> Result<Self, BackendError> {
        inner
            .start()
            .await
            .map_err(|e| BackendError(format!("{name}: cannot start: {e}")))?;
        Ok(Self {
            name,
            inner: Arc::new(inner),
        })
    }

    fn error(&self, call: &str, err: impl std::fmt::Display) -> BackendError {
        BackendError(format!("{}: {call} failed: {err}", self.name))
    }
}

impl<P> std::fmt::Debug for Adapter<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapter").field("name", &self.name).finish()
    }
}

#[async_trait::async_trait]
impl<P> PaymentBackend for Adapter<P>
where
    P: MintPayment<Err = common::payment::Error> + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    async fn create_invoice(
        &self,
        amount_msat: u64,
        description: &str,
        expiry_secs: u64,
    ) -> Result<Invoice, BackendError> {
        let amount = Amount::new(amount_msat, CurrencyUnit::Msat);
        let now = coinslot_mint::unix_now();
        let options = IncomingPaymentOptions::Bolt11(Bolt11IncomingPaymentOptions {
            description: Some(description.to_string()),
            amount,
            unix_expiry: Some(now.saturating_add(expiry_secs)),
        });
        let created = self
            .inner
            .create_incoming_payment_request(options)
            .await
            .map_err(|e| self.error("create invoice", e))?;
        let PaymentIdentifier::PaymentHash(hash) = created.request_lookup_id else {
            return Err(self.error("create invoice", "the node gave no payment hash"));
        };
        backend::check_invoice(self.name, &created.request, &hash, amount_msat, amount_msat)?;
        Ok(Invoice {
            bolt11: created.request,
            lookup_id: hex::encode(hash),
            expiry: created
                .expiry
                .unwrap_or_else(|| now.saturating_add(expiry_secs)),
        })
    }

    async fn invoice_status(&self, lookup_id: &str) -> Result<InvoiceStatus, BackendError> {
        let hash = backend::parse_payment_hash(lookup_id)?;
        let payments = self
            .inner
            .check_incoming_payment_status(&PaymentIdentifier::PaymentHash(hash))
            .await
            .map_err(|e| self.error("look up invoice", e))?;
        // The cdk backends list only settled payments. A node settles an invoice with an
        // amount only once that amount has arrived, so any settlement is payment in full.
        Ok(if payments.is_empty() {
            InvoiceStatus::Unpaid
        } else {
            InvoiceStatus::Paid
        })
    }

    async fn paid_invoices(&self) -> Result<BoxStream<'static, String>, BackendError> {
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(listen(self.name, Arc::clone(&self.inner), tx));
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Forwards the backend's payment events, subscribing again (with backoff) whenever its
/// stream ends: cdk's streams end on a connection error and leave reconnecting to the
/// caller. Stops when the mint drops the receiving end.
async fn listen<P>(name: &'static str, inner: Arc<P>, tx: mpsc::Sender<String>)
where
    P: MintPayment<Err = common::payment::Error> + Send + Sync + 'static,
{
    let mut reconnect = Reconnect::default();
    loop {
        match inner.wait_payment_event().await {
            Ok(mut events) => {
                tracing::info!(backend = name, "listening for incoming payments");
                loop {
                    let event = tokio::select! {
                        event = events.next() => event,
                        () = tx.closed() => {
                            inner.cancel_payment_event_stream();
                            return;
                        }
                    };
                    let Some(event) = event else { break };
                    let Event::PaymentReceived(payment) = event else {
                        continue;
                    };
                    let PaymentIdentifier::PaymentHash(hash) = payment.payment_identifier else {
                        continue;
                    };
                    reconnect.connected();
                    if tx.send(hex::encode(hash)).await.is_err() {
                        return;
                    }
                }
                tracing::warn!(backend = name, "payment stream ended; subscribing again");
            }
            Err(err) => {
                tracing::warn!(backend = name, error = %err, "cannot subscribe to payments");
            }
        }
        if !reconnect.pause(&tx).await {
            return;
        }
    }
}
