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
//!   `X-Cashu-Accept: creqB`) and a JSON body with `amount`, `unit`, `mint`;
//! - `X-Cashu: cashuB…` (or `Authorization: Cashu <token>` / `Bearer cashu…`) → the token is
//!   verified and spent, then the handler runs; overpayment comes back as a token in the
//!   response's `X-Cashu`; a wrong mint, unit, amount or a spent token → `400` with a Cashu
//!   error body, the token untouched unless it was spent already;
//! - a handler failure (5xx, error, panic, timeout) → the payment comes back in `X-Cashu`;
//! - the same request repeated with the same token after a lost response is served again
//!   without a second charge ([`receipt`] module docs);
//! - prepaid sessions: deposit once, then pay with `X-Cashu-Session` ([`session`]);
//! - time passes: pay once for N minutes of a set of routes, then send `X-Cashu-Pass`
//!   ([`pass`]);
//! - the standard `Payment` HTTP authentication scheme (`cashu` charge method) beside
//!   NUT-24: every `402` also carries `WWW-Authenticate: Payment`, and
//!   `Authorization: Payment <credential>` pays ([`paymentauth`]).
//!
//! Request bodies pass through untouched, except that a `402` (and a `Payment` credential
//! answering a challenge bound to a body) reads the body to hash it, so the request body
//! type must be one the layer can rebuild from `Bytes` (axum's `Body`, `Full<Bytes>`).
//!
//! Map: [`PaywallLayer`] (`layer.rs`, the builder) → [`Paywall`] (`service.rs`) →
//! [`ResponseFuture`] (`future.rs`); [`pricing`]; [`nut24`] (wire format); [`session`];
//! [`paymentauth`] and `stored.rs` (responses kept for `Idempotency-Key` retries);
//! what the handler sees: [`Paid`], what a metered handler reports: [`Charge`].

mod body;
mod future;
mod layer;
pub mod nut24;
mod paid;
pub mod pass;
pub mod paymentauth;
mod paywall;
pub mod pricing;
pub mod receipt;
mod reply;
mod service;
pub mod session;
mod stored;

pub use body::ResponseBody;
pub use coinslot_mint::cashu;
pub use future::ResponseFuture;
pub use layer::{ConfigError, PaywallLayer};
pub use nut24::RequestEncoding;
pub use paid::{Charge, Paid};
pub use pass::{PassEndpoint, PassEvent, PassEventKind, PassHook, PassScope, Passes, ValidPass};
pub use pricing::{Lookup, Price, PriceMode, PriceTable, Pricing};
pub use service::Paywall;
