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

/// The pause between attempts to reconnect a backend's payment stream: 1 s, doubling up to
/// 30 s, back to 1 s once a connection holds.
#[derive(Debug)]
pub struct Reconnect {
    delay: std::time::Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self { delay: Self::FIRST }
    }
}

impl Reconnect {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

    /// A connection came up: the next pause is the shortest again.
    pub fn connected(&mut self) {
        self.delay = Self::FIRST;
    }

    /// Waits the current pause, then doubles it; `false` when the mint dropped the stream
    /// `tx` feeds first (stop then).
    pub async fn pause<T>(&mut self, tx: &tokio::sync::mpsc::Sender<T>) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = tx.closed() => false,
        }
    }

    fn next_delay(&mut self) -> std::time::Duration {
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Self::LONGEST);
        delay
    }
}

/// `msat` rounded up to whole satoshis, for nodes that only take whole satoshis.
pub fn round_up_to_sats(msat: u64) -> Result<u64, BackendError> {
    msat.div_ceil(1000)
        .checked_mul(1000)
        .ok_or_else(|| BackendError("invoice amount overflows".into()))
}

/// A lookup id (the payment hash, hex) back to the hash.
pub fn parse_payment_hash(lookup_id: &str) -> Result<[u8; 32], BackendError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(lookup_id, &mut hash)
        .map_err(|_| BackendError(format!("not a payment hash: {lookup_id:?}")))?;
    Ok(hash)
}

/// Checks a node's invoice before it backs a quote: a BOLT11 invoice for the payment hash
/// the node reported and for exactly `asked_msat`, which must cover `wanted_msat`. A quote
/// is never backed by a cheaper invoice, whatever the node answers.
pub fn check_invoice(
    backend: &str,
    bolt11: &str,
    hash: &[u8; 32],
    wanted_msat: u64,
    asked_msat: u64,
) -> Result<(), BackendError> {
    let fail = |what: String| BackendError(format!("{backend}: the node's invoice {what}"));
    // Signed and well formed, but not held to every rule of the spec: LNbits' own invoices
    // (its FakeWallet, internal payments) carry no feature bits, which lightning-invoice's
    // full parse refuses. What a quote needs is the hash and the amount, signed.
    let signed: lightning_invoice::SignedRawBolt11Invoice = bolt11
        .parse()
        .map_err(|e| fail(format!("is not BOLT11: {e}")))?;
    if !signed.check_signature() {
        return Err(fail("has a bad signature".into()));
    }
    let invoice = signed.raw_invoice();
    let invoice_hash: Option<&[u8]> = invoice.payment_hash().map(|h| h.0.as_ref());
    if invoice_hash != Some(hash.as_slice()) {
        return Err(fail("has another payment hash".into()));
    }
    match invoice
        .amount_pico_btc()
        .and_then(|pico| pico.checked_div(10))
    {
        Some(amount) if amount == asked_msat && amount >= wanted_msat => Ok(()),
        Some(amount) => Err(fail(format!(
            "asks {amount} msat instead of {asked_msat} msat"
        ))),
        None => Err(fail("has no amount".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn reconnecting_backs_off_to_half_a_minute() {
        let mut reconnect = Reconnect::default();
        let pauses: Vec<u64> = (0..7).map(|_| reconnect.next_delay().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30]);
        reconnect.connected();
        assert_eq!(reconnect.next_delay().as_secs(), 1);
        // Nobody reads the stream any more: no pause, stop.
        let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
        drop(rx);
        assert!(!reconnect.pause(&tx).await);
    }

    #[test]
    fn amounts_round_up_to_whole_sats() {
        assert_eq!(round_up_to_sats(1).unwrap(), 1000);
        assert_eq!(round_up_to_sats(1000).unwrap(), 1000);
        assert_eq!(round_up_to_sats(1001).unwrap(), 2000);
        assert!(round_up_to_sats(u64::MAX).is_err());
    }

    /// A signed regtest invoice for `msat` with payment hash `hash`.
    fn invoice(msat: Option<u64>, hash: [u8; 32]) -> String {
        use bitcoin::hashes::{sha256, Hash};
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
        let key = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let builder = InvoiceBuilder::new(Currency::Regtest)
            .description("test".into())
            .payment_hash(sha256::Hash::from_byte_array(hash))
            .payment_secret(PaymentSecret([5u8; 32]))
            .current_timestamp()
            .min_final_cltv_expiry_delta(144);
        let secp = Secp256k1::signing_only();
        let sign = |h: &bitcoin::secp256k1::Message| secp.sign_ecdsa_recoverable(h, &key);
        match msat {
            Some(msat) => builder
                .amount_milli_satoshis(msat)
                .build_signed(sign)
                .unwrap()
                .to_string(),
            None => builder.build_signed(sign).unwrap().to_string(),
        }
    }

    #[test]
    fn a_node_invoice_must_match_the_quote() {
        let hash = [9u8; 32];
        assert!(check_invoice("lnd", &invoice(Some(21_000), hash), &hash, 21_000, 21_000).is_ok());
        // Rounded up to whole sats (LNbits): covers what was wanted.
        assert!(check_invoice("lnbits", &invoice(Some(2_000), hash), &hash, 1_500, 2_000).is_ok());
        let cheaper = check_invoice("lnd", &invoice(Some(20_000), hash), &hash, 21_000, 21_000);
        assert!(cheaper
            .unwrap_err()
            .0
            .contains("asks 20000 msat instead of 21000"));
        let other = check_invoice(
            "cln",
            &invoice(Some(21_000), [1u8; 32]),
            &hash,
            21_000,
            21_000,
        );
        assert!(other.unwrap_err().0.contains("another payment hash"));
        let open = check_invoice("cln", &invoice(None, hash), &hash, 21_000, 21_000);
        assert!(open.unwrap_err().0.contains("no amount"));
        let junk = check_invoice("cln", "lnbc1junk", &hash, 21_000, 21_000);
        assert!(junk.unwrap_err().0.contains("not BOLT11"));
    }

    /// An invoice of LNbits' FakeWallet (1.6.2): no feature bits, which a full parse refuses.
    #[test]
    fn an_invoice_without_feature_bits_is_checked_too() {
        let bolt11 = "lnbc210n1p43vfwqdq8w3jhxaqxqzjcsp5r5z3h23vjy596tau5c4lm7seqpuc7cj0uh39u7xpxaswx0fwjaaqpp58lycal83amwq8qneltfyjtz30uu4nt3enq9mvsrq900mqpw03h7qpmztvace36t6sdr27y99feukws854psdm0z9vmp9crfrv4wc8f4kx9rqf9nadnvs7rxp5h2u2lq8ggmr6hutj4rznewqxe7xrpczk7sqm5h55u";
        let hash =
            parse_payment_hash("3fc98efcf1eedc038279fad2492c517f3959ae39980bb640602bdfb005cf8dfc")
                .unwrap();
        assert!(bolt11.parse::<lightning_invoice::Bolt11Invoice>().is_err());
        check_invoice("lnbits", bolt11, &hash, 21_000, 21_000).unwrap();
        let err = check_invoice("lnbits", bolt11, &hash, 22_000, 22_000).unwrap_err();
        assert!(err.0.contains("asks 21000 msat"), "{}", err.0);
        assert!(check_invoice("lnbits", bolt11, &[0u8; 32], 21_000, 21_000).is_err());
    }

    #[test]
    fn lookup_ids_must_be_hashes() {
        let hash = [7u8; 32];
        assert_eq!(parse_payment_hash(&hex::encode(hash)).unwrap(), hash);
        assert!(parse_payment_hash("abcd").is_err());
        assert!(parse_payment_hash(&"zz".repeat(32)).is_err());
    }
}
