//! LND and Core Lightning as Coinslot payment backends.
//!
//! Each is cdk's maintained backend crate ([`cdk-lnd`], [`cdk-cln`]) behind Coinslot's
//! [`PaymentBackend`]: invoices are created and looked up by the operator's node, payments
//! are streamed from it (resubscribing with backoff when the stream breaks), and the mint
//! reconciles unpaid quotes on its own, so a payment that arrives while nothing listens is
//! still credited. **Receive only:** the outgoing half of cdk's `MintPayment` is never
//! called, and each backend needs only invoice rights (LND's `invoice.macaroon`).
//!
//! Every invoice a node returns is checked before it becomes a quote: it must be a BOLT11
//! invoice for the payment hash the node reported and for the amount asked.
//!
//! (LNbits is `coinslot-backend-lnbits`, a client of LNbits' own API: cdk's LNbits crate
//! stopped at cdk 0.17.)
//!
//! [`cdk-lnd`]: https://docs.rs/cdk-lnd
//! [`cdk-cln`]: https://docs.rs/cdk-cln

use std::path::PathBuf;
#[cfg(any(feature = "lnd", feature = "cln"))]
use std::sync::Arc;

#[cfg(any(feature = "lnd", feature = "cln"))]
use coinslot_mint::backend::BackendError;
#[cfg(any(feature = "lnd", feature = "cln"))]
use coinslot_mint::PaymentBackend;

#[cfg(any(feature = "lnd", feature = "cln"))]
mod adapter;
#[cfg(any(feature = "lnd", feature = "cln"))]
mod kv;

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

/// An LND node as a payment backend. The gRPC connection is made on first use, so an
/// unreachable node shows up as failing quotes (and in `coinslotd config check --connect`).
#[cfg(feature = "lnd")]
pub async fn lnd(options: LndOptions) -> Result<Arc<dyn PaymentBackend>, BackendError> {
    let node = cdk_lnd::Lnd::new(
        options.address,
        options.cert_file,
        options.macaroon_file,
        no_fee_reserve(),
        kv::MemoryKv::dyn_store(),
    )
    .await
    .map_err(|e| BackendError(format!("lnd: {e}")))?;
    Ok(Arc::new(adapter::Adapter::start("lnd", node).await?))
}

/// A Core Lightning node as a payment backend. The socket is opened per call, so a node
/// that is down shows up as failing quotes.
#[cfg(feature = "cln")]
pub async fn cln(options: ClnOptions) -> Result<Arc<dyn PaymentBackend>, BackendError> {
    let node = cdk_cln::Cln::new(
        options.rpc_socket,
        no_fee_reserve(),
        false,
        kv::MemoryKv::dyn_store(),
    )
    .await
    .map_err(|e| BackendError(format!("cln: {e}")))?
    .with_bolt12(false);
    Ok(Arc::new(adapter::Adapter::start("cln", node).await?))
}

#[cfg(any(feature = "lnd", feature = "cln"))]
fn no_fee_reserve() -> cdk_common::common::FeeReserve {
    // Only used for paying out, which Coinslot never does.
    cdk_common::common::FeeReserve {
        min_fee_reserve: 0.into(),
        percent_fee_reserve: 0.0,
    }
}
