//! # coinslot-client
//!
//! The paying side of Coinslot: an HTTP client that answers `402 Payment Required`
//! (NUT-24) by itself. On a `402` it reads the payment request (NUT-18 `creqA…` or NUT-26
//! `creqb1…`) from `X-Cashu`, checks it against what the user allows (trusted mints, a
//! [`Budget`] per unit: per request, per host per hour, per hour), takes exactly the amount
//! plus the mint's input fees from a cdk wallet, and sends the request again with the
//! token. Change and refunds the server returns in `X-Cashu` are received into the wallet.
//!
//! ```no_run
//! use coinslot_client::{Budget, Limits, PayingClient, Wallets};
//! use cdk::nuts::CurrencyUnit;
//!
//! # async fn demo() -> Result<(), coinslot_client::Error> {
//! let wallets = Wallets::open(std::path::Path::new("./wallet")).await?;
//! let budget = Budget::new().allow(
//!     CurrencyUnit::Sat,
//!     Limits { per_request: Some(10), per_host_per_hour: Some(200), per_hour: Some(500) },
//! );
//! let mint = "https://search.example".parse().expect("url");
//! let client = PayingClient::new(reqwest::Client::new(), wallets, budget, [mint]);
//! let paid = client.get("https://search.example/search?q=nut").await?;
//! println!("{} (cost {:?})", paid.response.status(), paid.payment.map(|p| p.cost()));
//! # Ok(()) }
//! ```
//!
//! The standard "Payment" HTTP authentication scheme (`WWW-Authenticate: Payment`, method
//! `cashu`) is paid too ([`paymentauth`]): when a `402` offers both, the client uses
//! [`PayingClient::prefer`] (NUT-24 by default, which allows change); a `402` offering only
//! one is paid with that one.
//!
//! Money rules: the budget is reserved before any ecash leaves the wallet; a payment the
//! server answers with `402` again, or that never reached it, is reclaimed if unspent; a
//! lost connection is retried once with the same token (a Coinslot server answers a
//! repeated token from its receipt instead of charging twice).

pub mod budget;
pub mod client;
pub mod nip60;
pub mod pass;
pub mod paymentauth;
pub mod wallets;

pub use budget::{Budget, Limits, OverBudget, SpendRecord};
pub use client::{decode_request, Paid, PayingClient, Payment, X_CASHU, X_CASHU_SESSION};
pub use nip60::Nip60;
pub use pass::{BoughtPass, PassOrder};
pub use paymentauth::Binding;
pub use wallets::Wallets;

/// Why a request could not be paid (or sent).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The payment would break the budget; nothing was spent.
    #[error("over budget: {0}")]
    OverBudget(#[from] OverBudget),
    /// The payment request names only mints the user has not trusted.
    #[error("the server wants ecash from mints you have not trusted: {}", .0.join(", "))]
    UntrustedMint(Vec<String>),
    /// The wallet holds too little.
    #[error("not enough ecash: {needed} {unit} needed")]
    InsufficientFunds {
        /// The amount asked.
        needed: u64,
        /// Its unit.
        unit: String,
    },
    /// The `402` or its payment request is unusable.
    #[error("bad payment request: {0}")]
    BadRequest(String),
    /// The server refused the payment.
    #[error("payment refused: {0}")]
    Refused(String),
    /// A token could not be read.
    #[error("bad token: {0}")]
    BadToken(String),
    /// The request body cannot be sent twice (a stream), so it cannot be paid for.
    #[error("the request body cannot be replayed, so the request cannot be paid for")]
    BodyNotReplayable,
    /// The wallet failed.
    #[error("wallet: {0}")]
    Wallet(String),
    /// HTTP failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
}

impl From<cdk::Error> for Error {
    fn from(err: cdk::Error) -> Self {
        Error::Wallet(err.to_string())
    }
}

impl Error {
    fn from_wallet(err: cdk::Error, needed: u64, unit: &cdk::nuts::CurrencyUnit) -> Self {
        match err {
            cdk::Error::InsufficientFunds => Error::InsufficientFunds {
                needed,
                unit: unit.to_string(),
            },
            other => other.into(),
        }
    }
}
