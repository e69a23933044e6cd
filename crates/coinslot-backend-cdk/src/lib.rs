//! LND, Core Lightning and LNbits as Coinslot payment backends.
//!
//! Each is cdk's maintained backend crate ([`cdk-lnd`], [`cdk-cln`], [`cdk-lnbits`]) behind
//! Coinslot's [`PaymentBackend`]: invoices are created and looked up by the operator's node,
//! payments are streamed from it (resubscribing with backoff when the stream breaks), and
//! the mint reconciles unpaid quotes on its own, so a payment that arrives while nothing
//! listens is still credited. **Receive only:** the outgoing half of cdk's `MintPayment`
//! is never called, and each backend needs only invoice rights (LND's `invoice.macaroon`,
//! LNbits' invoice key).
//!
//! Every invoice a node returns is checked before it becomes a quote: it must be a BOLT11
//! invoice for the payment hash the node reported and for the amount asked.
//!
//! [`cdk-lnd`]: https://docs.rs/cdk-lnd
//! [`cdk-cln`]: https://docs.rs/cdk-cln
//! [`cdk-lnbits`]: https://docs.rs/cdk-lnbits

use std::path::PathBuf;
#[cfg(any(feature = "lnd", feature = "cln", feature = "lnbits"))]
use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::backend::BackendError;
#[cfg(any(feature = "lnd", feature = "cln", feature = "lnbits"))]
use coinslot_mint::PaymentBackend;

#[cfg(any(feature = "lnd", feature = "cln"))]
mod kv;

/// The adapter over cdk-common 0.18 (cdk-lnd, cdk-cln).
#[cfg(any(feature = "lnd", feature = "cln"))]
mod v18 {
    use cdk_common as common;
    include!("adapter.rs");
}

/// The same adapter over cdk-common 0.17 (cdk-lnbits has no 0.18 release yet).
#[cfg(feature = "lnbits")]
mod v17 {
    use cdk_common_017 as common;
    include!("adapter.rs");
}

const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Where to reach an LND node.
#[derive(Debug, Clone)]
pub struct LndOptions {
    /// gRPC address, `host:port` or `https://host:port`.
    pub address: String,
    /// The node's TLS certificate (`tls.cert`): the connection trusts exactly this one.
    pub cert_file: PathBuf,
    /// A macaroon allowed to create and read invoices (`invoice.macaroon` is enough).
    pub macaroon_file: PathBuf,
}

/// Where to reach a Core Lightning node.
#[derive(Debug, Clone)]
pub struct ClnOptions {
    /// The node's JSON-RPC socket (`lightning-rpc` in its network directory).
    pub rpc_socket: PathBuf,
}

/// Where to reach an LNbits wallet.
#[derive(Clone)]
pub struct LnbitsOptions {
    /// Base URL of the LNbits instance.
    pub api_url: String,
    /// The wallet's invoice/read key (never the admin key: Coinslot does not pay).
    pub invoice_key: String,
}

impl std::fmt::Debug for LnbitsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LnbitsOptions")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// An LND node as a payment backend. The gRPC connection is made on first use, so an
/// unreachable node shows up as failing quotes (and in `coinslotd config check --connect`).
#[cfg(feature = "lnd")]
pub async fn lnd(options: LndOptions) -> Result<Arc<dyn PaymentBackend>, BackendError> {
    let node = cdk_lnd::Lnd::new(
        options.address,
        options.cert_file,
        options.macaroon_file,
        no_fee_reserve_18(),
        kv::MemoryKv::dyn_store(),
    )
    .await
    .map_err(|e| BackendError(format!("lnd: {e}")))?;
    Ok(Arc::new(v18::Adapter::start("lnd", node, false).await?))
}

/// A Core Lightning node as a payment backend. The socket is opened per call, so a node
/// that is down shows up as failing quotes.
#[cfg(feature = "cln")]
pub async fn cln(options: ClnOptions) -> Result<Arc<dyn PaymentBackend>, BackendError> {
    let node = cdk_cln::Cln::new(
        options.rpc_socket,
        no_fee_reserve_18(),
        false,
        kv::MemoryKv::dyn_store(),
    )
    .await
    .map_err(|e| BackendError(format!("cln: {e}")))?
    .with_bolt12(false);
    Ok(Arc::new(v18::Adapter::start("cln", node, false).await?))
}

/// An LNbits wallet as a payment backend. LNbits takes whole satoshis, so invoice amounts
/// are rounded up to the next satoshi.
#[cfg(feature = "lnbits")]
pub async fn lnbits(options: LnbitsOptions) -> Result<Arc<dyn PaymentBackend>, BackendError> {
    // cdk-lnbits wants an admin key for paying; it gets the invoice key there too, so
    // even a bug could not make it pay.
    let wallet = cdk_lnbits::LNbits::new(
        options.invoice_key.clone(),
        options.invoice_key,
        options.api_url,
        cdk_common_017::common::FeeReserve {
            min_fee_reserve: 0.into(),
            percent_fee_reserve: 0.0,
        },
    )
    .await
    .map_err(|e| BackendError(format!("lnbits: {e}")))?;
    // Payment notifications come over LNbits' websocket; if it is not up yet, the payment
    // listener keeps trying.
    if let Err(err) = wallet.subscribe_ws().await {
        tracing::warn!(error = %err, "lnbits: websocket not connected yet");
    }
    Ok(Arc::new(v17::Adapter::start("lnbits", wallet, true).await?))
}

#[cfg(any(feature = "lnd", feature = "cln"))]
fn no_fee_reserve_18() -> cdk_common::common::FeeReserve {
    // Only used for paying out, which Coinslot never does.
    cdk_common::common::FeeReserve {
        min_fee_reserve: 0.into(),
        percent_fee_reserve: 0.0,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `msat` rounded up to whole satoshis.
fn round_up_to_sats(msat: u64) -> Result<u64, BackendError> {
    msat.div_ceil(1000)
        .checked_mul(1000)
        .ok_or_else(|| BackendError("invoice amount overflows".into()))
}

/// A lookup id back to the payment hash it encodes.
fn parse_hash(lookup_id: &str) -> Result<[u8; 32], BackendError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(lookup_id, &mut hash)
        .map_err(|_| BackendError(format!("not a payment hash: {lookup_id:?}")))?;
    Ok(hash)
}

/// The node's invoice must be what was asked for: the reported payment hash, and exactly
/// `asked_msat` (which covers `wanted_msat`). A quote is never backed by a cheaper invoice.
fn check_invoice(
    backend: &str,
    bolt11: &str,
    hash: &[u8; 32],
    wanted_msat: u64,
    asked_msat: u64,
) -> Result<(), BackendError> {
    let fail = |what: String| BackendError(format!("{backend}: the node's invoice {what}"));
    let invoice: lightning_invoice::Bolt11Invoice = bolt11
        .parse()
        .map_err(|e| fail(format!("is not BOLT11: {e}")))?;
    let invoice_hash: &[u8] = invoice.payment_hash().as_ref();
    if invoice_hash != hash.as_slice() {
        return Err(fail("has another payment hash".into()));
    }
    match invoice.amount_milli_satoshis() {
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

    #[test]
    fn lookup_ids_must_be_hashes() {
        let hash = [7u8; 32];
        assert_eq!(parse_hash(&hex::encode(hash)).unwrap(), hash);
        assert!(parse_hash("abcd").is_err());
        assert!(parse_hash(&"zz".repeat(32)).is_err());
    }
}
