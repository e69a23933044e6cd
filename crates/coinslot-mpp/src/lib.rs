//! The `cashu` payment method for [`mpp`], the Rust SDK of the Machine Payments Protocol
//! (the HTTP `Payment` authentication scheme, intent `charge`, draft-cashu-charge).
//!
//! - [`CashuCharge`] is an [`mpp::ChargeMethod`]: an mpp-rs server takes Cashu ecash by
//!   redeeming (swapping) the credential's token at its mint into a cdk wallet of its own.
//!   Any Cashu mint works, a Coinslot mint among them.
//! - [`CashuProvider`] is an [`mpp::client::PaymentProvider`]: an mpp-rs client (e.g.
//!   `reqwest` with [`mpp::client::Fetch::send_with_payment`]) pays `cashu` challenges
//!   from cdk wallets, with a cap per payment; a payment the server refused is taken back.
//!   It pays coinslotd, a Coinslot paywall or a server using [`CashuCharge`] alike.
//! - [`method`] holds the method's wire types (the `cashu_token` payload, `methodDetails`)
//!   and the helpers both sides use to build a challenge.
//!
//! A token pays exactly the amount plus the mint's input fee for its proofs: this binding
//! makes no change, so neither side needs more than the token. A crate that awaits mpp's
//! `send_with_payment` may need `#![recursion_limit = "256"]` (the flow is one deep future).
//!
//! Without default features only [`method`] is built (no cdk wallet): the wire types, for
//! servers that redeem tokens themselves, such as the Coinslot paywall.
//!
//! ```no_run
//! # #![recursion_limit = "256"]
//! # extern crate reqwest013;
//! # async fn example(server_wallet: cdk::wallet::Wallet, client_wallet: cdk::wallet::Wallet) -> Result<(), Box<dyn std::error::Error>> {
//! use coinslot_mpp::{CashuCharge, CashuProvider};
//! use mpp::client::Fetch; // reqwest 0.13's RequestBuilder, as mpp uses it
//!
//! // Server: issue a challenge for 2 sat, then verify the credential that answers it.
//! let method = CashuCharge::new([server_wallet]);
//! let secret = "a server secret of at least 32 bytes, kept private";
//! let server = mpp::server::Mpp::new(method.clone(), "api.example.com", secret);
//! let request = method.charge_request(2, &cdk::nuts::CurrencyUnit::Sat)?;
//! let challenge = coinslot_mpp::method::challenge(secret, "api.example.com", &request, std::time::Duration::from_secs(300))?;
//! # let credential: mpp::PaymentCredential = unimplemented!();
//! let receipt = server.verify_credential_with_expected_request(&credential, &request).await?;
//!
//! // Client: any reqwest request pays the 402 it gets, up to 10 sat a payment.
//! let provider = CashuProvider::new([client_wallet]).max_amount(10);
//! let response = reqwest013::Client::new()
//!     .get("http://127.0.0.1:8080/search")
//!     .header("Accept-Payment", "cashu/charge")
//!     .send_with_payment(&provider)
//!     .await?;
//! # let _ = (challenge, receipt, response);
//! # Ok(()) }
//! ```

pub mod method;

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
mod server;

#[cfg(feature = "client")]
pub use client::CashuProvider;
pub use method::{CashuPayload, MethodDetails, INTENT, METHOD};
#[cfg(feature = "server")]
pub use server::CashuCharge;
