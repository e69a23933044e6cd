//! The ways to pay, one module each. A mode recognises its header (`find`), checks what it
//! carries, and hands a taken payment to the settlement core ([`crate::settle`]); nothing
//! but the dispatch ([`crate::service`]) and the builder's handles reach into a mode, and no
//! mode reaches into another (what balances share is in [`crate::accounts`]).
//!
//! - [`token`]: a Cashu token (NUT-24 `X-Cashu`, `Authorization: Cashu <token>`, or
//!   `Bearer cashu…` where the paywall keeps no key balances);
//! - [`key`]: a token used as an API key (`Authorization: Bearer cashu…`) and its endpoint;
//! - [`credential`]: the HTTP `Payment` scheme (`Authorization: Payment`);
//! - [`session`]: a prepaid session (`X-Cashu-Session`) and its endpoints;
//! - [`pass`]: a time pass (`X-Cashu-Pass`) and the purchase endpoint.

pub(crate) mod credential;
pub(crate) mod key;
pub(crate) mod pass;
pub(crate) mod session;
pub(crate) mod token;
