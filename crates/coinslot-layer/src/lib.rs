//! # coinslot-layer
//!
//! A tower [`Layer`](tower_layer::Layer) that charges for HTTP requests in Cashu ecash
//! (NUT-24), redeeming tokens locally against Coinslot's embedded mint: no network hop, one
//! durable write per payment.
//!
//! ```no_run
//! # async fn demo(mint: coinslot_mint::Mint) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//! use coinslot_layer::{PaywallLayer, Price, PriceTable};
//!
//! let pricing = PriceTable::new()
//!     .free("GET", "/")
//!     .route("GET", "/search", Price::sat(2));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "free" }))
//!     .route("/search", get(|| async { "results" }))
//!     .layer(PaywallLayer::new(mint, "https://api.example.com", pricing)?);
//! # let _ = app; Ok(()) }
//! ```
//!
//! What a client sees:
//! - no payment → `402` with `X-Cashu: creqA…` (NUT-18; `creqB…` per NUT-26 when it sends
//!   `X-Cashu-Accept: creqB`), a JSON body with `amount`, `unit`, `mint`, and a
//!   `WWW-Authenticate: Payment` challenge;
//! - `X-Cashu: cashuB…` (or `Authorization: Cashu <token>`) → the token is
//!   verified and spent, then the handler runs; overpayment comes back as a token in the
//!   response's `X-Cashu`; a wrong mint, unit, amount or a spent token → `400` with a Cashu
//!   error body, the token untouched unless it was spent already;
//! - a handler failure (5xx, error, panic, timeout) → the payment comes back in `X-Cashu`;
//! - **one payment buys one run**: the same payment sent again with the same request (the
//!   client lost the answer) gets the stored answer, byte for byte, without running the
//!   handler; with another request it is refused as spent; while the first run goes on it
//!   gets `11002`. This holds across instances on one store ([`Retry`] says how a route
//!   treats retries, the `receipt` module how it works);
//! - prepaid sessions: deposit once, then pay with `X-Cashu-Session` ([`session`]);
//! - the token as an API key: `Authorization: Bearer cashu…` opens a balance of its own on
//!   first use and pays every request from it (OpenAI-style SDKs send their key so);
//!   `GET`/`DELETE` on `/cashu/balance` show it / pay the rest out
//!   ([`PaywallLayer::key_path`]);
//! - a metered price whose cost is known only when the answer ends (a streamed completion):
//!   the handler charges a [`Meter`], and the layer settles at the end;
//! - time passes: pay once for N minutes of a set of routes, then send `X-Cashu-Pass`
//!   ([`pass`]);
//! - the standard `Payment` HTTP authentication scheme (`cashu` charge method) beside
//!   NUT-24: `Authorization: Payment <credential>` pays ([`paymentauth`]).
//!
//! The inner service gets the request with a [`RequestBody`]: the client's body, hashed on
//! its way through on paid requests (axum handlers and routers take it like any body).
//!
//! Map, top down (every import runs down this list):
//! - [`PaywallLayer`] (`layer.rs`, the builder and its handles) → [`Paywall`]
//!   (`service.rs`: prices the request, finds how it pays, dispatches) → `modes/`, one
//!   file per way to pay: `token` (NUT-24), `credential` (`Payment` scheme), `session`,
//!   `key` (a token as an API key), `pass`;
//! - `accounts.rs`: the balances sessions and keys share (debit, deposit, pay out);
//! - `settle.rs`: the one core every mode ends in (run the handler, settle change, metered
//!   remainder (at the head, or when a metered body ends) or refund, record the answer;
//!   answer retries) and `passes.rs` (pass
//!   records);
//! - `receipt.rs` (receipts, request binding, stored answers, the run's lease),
//!   `challenge.rs` (the `402`s), `proofs.rs` (tokens in), `settings.rs`;
//! - `wire/`: the formats: [`nut24`], [`paymentauth`], credentials (JWT), errors (the
//!   mint's one mapping to `{"detail", "code"}`);
//! - [`pricing`], [`Paid`]/[`Charge`]/[`ValidPass`] (what handlers see), [`PassHook`],
//!   and `body.rs` ([`RequestBody`], [`ResponseBody`]).

mod accounts;
mod body;
mod challenge;
mod future;
mod hooks;
mod layer;
mod modes;
mod paid;
mod passes;
pub mod pricing;
mod proofs;
mod receipt;
mod service;
mod settings;
mod settle;
mod wire;

pub use body::{BoxError, RequestBody, ResponseBody};
pub use coinslot_mint::cashu;
pub use future::ResponseFuture;
pub use hooks::{PassEvent, PassEventKind, PassHook};
pub use layer::{ConfigError, PaywallLayer};
pub use paid::{Balance, Charge, Meter, Paid, ValidPass};
pub use pricing::{Lookup, PassScope, Price, PriceMode, PriceTable, Pricing, Retry};
pub use service::Paywall;
pub use wire::discovery;
pub use wire::nut24::{self, RequestEncoding};
pub use wire::payment as paymentauth;

/// Time passes: sold by the minute for a set of routes (see the pass mode for the wire).
pub mod pass {
    pub use crate::hooks::{PassEvent, PassEventKind, PassHook};
    pub use crate::modes::pass::PassEndpoint;
    pub use crate::passes::{Bought, PassError, PassRefusal, Passes};
    pub use crate::pricing::PassScope;
    pub use crate::wire::jwt::PassClaims;
    pub use crate::wire::nut24::{X_CASHU_PASS, X_CASHU_PASS_EXPIRES, X_CASHU_PASS_REMAINING};
    pub use crate::ValidPass;
}

/// Prepaid sessions: deposit once, pay each request from the balance.
pub mod session {
    pub use crate::modes::session::Sessions;
    pub use crate::wire::jwt::{
        new_id as new_session_id, CredentialError, SessionClaims, SessionKeys,
    };
}

pub use pass::{PassEndpoint, Passes};
