//! # coinslot-proxy
//!
//! A paid reverse proxy: `coinslotd` puts an existing HTTP API behind the Coinslot paywall
//! with nothing but a config file.
//!
//! - [`config`]: the `[proxy]` section: upstreams (by host and path prefix), each with a
//!   price table (fixed, free and metered routes) and a rule for unlisted paths;
//! - [`ProxyRoutes`]: the compiled routes, shared by the paywall (it implements
//!   [`Pricing`](coinslot_layer::Pricing)) and the forwarder, replaceable at runtime;
//! - [`Proxy`]: the tower service that forwards, streaming request and response bodies;
//! - [`usage`]: routes priced per model by the usage their answers report (OpenAI-style
//!   APIs, streamed or not): [`UsageLayer`] prices the request before payment, the proxy
//!   reads the usage as the answer streams and settles at its end.
//! - `websocket`: upgrades forwarded and joined, paid at the upgrade, kept open as long as
//!   they are paid for (a pass, `per_minute` from a session or key balance).
//!
//! ```no_run
//! use coinslot_proxy::{Proxy, ProxyConfig, ProxyRoutes};
//! # fn build(mint: coinslot_mint::Mint, config: ProxyConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let routes = ProxyRoutes::new(&config, vec!["sat".parse()?])?;
//! let paywall = coinslot_layer::PaywallLayer::new(mint, "https://api.example.com", routes.clone())?;
//! let service = tower::ServiceBuilder::new()
//!     .layer(coinslot_proxy::UsageLayer::new(routes.clone()))
//!     .layer(paywall)
//!     .service(Proxy::new(routes)?);
//! # let _ = service; Ok(()) }
//! ```
//!
//! What the upstream sees on a paid request: the client's headers without payment
//! credentials or hop-by-hop headers, `X-Forwarded-For`/`-Host`/`-Proto`, and
//! `x-coinslot-paid-amount`, `-unit`, `-mode` (`fixed` or `metered`, where the amount is
//! the most it may charge) and `-via` (`token` or `session`); on a request opened by a time
//! pass, `-via: pass` and `-pass-id`, `-pass-scope`, `-pass-expires`. Clients cannot forge those:
//! every incoming `x-coinslot-*` header is dropped. A metered upstream answers with
//! `x-coinslot-cost: N` (a header, or a trailer announced with `Trailer: x-coinslot-cost`
//! when the cost is known only at the end); the
//! rest of the reservation goes back to the client. An upstream
//! that fails (5xx, unreachable: `502`, too slow: `504`) has the payment refunded by the
//! paywall. A websocket upgrade is paid like a request and forwarded; see `per_minute` on a
//! route for connections paid by the minute.

pub mod config;
mod forward;
pub mod routes;
pub mod usage;
mod websocket;

pub use config::{
    ModelPrice, ProxyConfig, ProxyConfigError, RouteConfig, Unlisted, UpstreamConfig, UsageFormat,
};
pub use forward::Proxy;
pub use routes::ProxyRoutes;
pub use usage::{UsageCharge, UsageLayer};
