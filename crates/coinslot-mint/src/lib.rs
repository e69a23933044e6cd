//! # coinslot-mint
//!
//! Coinslot's embedded, closed-loop Cashu mint. It **mints** (after a Lightning top-up) and
//! **swaps**; it never melts, so ecash never leaves as Lightning.
//!
//! The protocol types, token encodings and BDHKE/DLEQ crypto come from the `cashu` crate
//! (cdk's types); this crate adds the mint logic on top, with a small storage trait so the
//! per-request spend is one atomic write.
//!
//! Map of the crate:
//! - [`Mint`] ([`mint`]): construction, keysets and info (NUT-01, 02, 06);
//!   operations in modules named after their NUT: `nut03` swap, `nut04` mint quotes and
//!   minting (with NUT-20), `nut07` checkstate, `nut09` restore, `nut17` events;
//!   [`redeem`]: payments into a service (proofs spent without outputs), change, refunds,
//!   prepaid accounts and receipts, used by the paywall layer.
//! - [`store`]: the [`MintStore`] trait, [`MemoryStore`], and the conformance suite every
//!   store must pass.
//! - [`backend`]: the [`PaymentBackend`] trait for incoming Lightning payments and the
//!   [`FakeBackend`] for development.
//! - [`config`]: units, fees, limits, info.
//! - [`keys`]: the seed and key derivation; [`dhke`]: NUT-00's `hash_to_curve`, leaner than
//!   cashu's.
//! - [`Error`]: every failure, with its NUT-00 code.
//!
//! ```
//! # async fn demo() -> Result<(), coinslot_mint::Error> {
//! use std::sync::Arc;
//! use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
//!
//! let mint = Mint::new(
//!     MintConfig::default(),
//!     MintSeed::generate(),
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(FakeBackend::new(Default::default())),
//! )
//! .await?;
//! assert!(mint.info().nuts.nut05.disabled);
//! # Ok(()) }
//! ```

pub mod accounting;
pub mod activity;
pub mod backend;
pub mod config;
pub mod dhke;
pub mod earnings;
pub mod error;
pub mod keys;
pub mod mint;
mod nut03;
mod nut04;
mod nut07;
mod nut09;
pub mod nut17;
pub mod redeem;
pub mod secret_file;
pub mod store;
mod verify;

pub use accounting::{Audit, KeysetLiabilities, Liabilities, UnitAudit, UnitLiabilities};
pub use activity::{Activity, Event, PaidWith};
pub use backend::{FakeBackend, FakeBackendConfig, PaymentBackend};
pub use cashu;
pub use config::{Contact, InfoConfig, Limits, MintConfig, PriceSource, UnitConfig};
pub use earnings::{Earnings, RouteEarnings};
pub use error::{Error, ErrorBody, ErrorCode, GENERIC_ERROR_CODE};
pub use keys::MintSeed;
pub use mint::{Mint, WeakMint};
pub use nut17::MintEvent;
pub use redeem::{
    receipt_key, EncodedProof, Inputs, PassPurchase, Payment, Purchase, ReceiptFn, Redeemed,
};
pub use store::memory::MemoryStore;
pub use store::{
    AccountRecord, AnswerRecord, AnswerWrite, EarningsRecord, KeysetIdVersion, MintStore,
    PassRecord, ReceiptGuard, ReceiptRecord, ReceiptWrite, SettingRecord, StoreError,
};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
