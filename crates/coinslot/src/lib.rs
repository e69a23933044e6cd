//! # coinslot
//!
//! Charge for any HTTP route in Cashu ecash, with no accounts. Add this one crate:
//!
//! - [`PaywallLayer`]: a tower layer (NUT-24) that answers unpaid requests with `402` and a
//!   payment request, and redeems `X-Cashu` tokens locally, with change, metered prices,
//!   refunds, retries answered from the stored answer (one payment, one run), prepaid
//!   sessions and time passes (from
//!   [`coinslot_layer`]);
//! - [`EmbeddedMint`]: the closed-loop mint those tokens come from, with its seed and sled
//!   store in one data directory (from [`coinslot_mint`] and [`coinslot_store_sled`]);
//! - [`mint_api`]: the mint's Cashu HTTP API as an axum `Router`, so wallets can top up on
//!   the same origin (from [`coinslot_http`]).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use coinslot::{EmbeddedMint, PaywallLayer, Price, PriceTable};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let embedded = EmbeddedMint::open_dev("./coinslot-data").await?;
//! let paywall = PaywallLayer::new(
//!     embedded.mint.clone(),
//!     "http://127.0.0.1:8080",
//!     PriceTable::new().route("GET", "/search", Price::sat(2)),
//! )?;
//! let app: Router = Router::new()
//!     .route("/search", get(|| async { "results" }))
//!     .layer(paywall)
//!     .merge(coinslot::mint_api(embedded.mint.clone(), Default::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

pub mod embedded;

pub use coinslot_http::{router as mint_api, HttpOptions};
pub use coinslot_layer::{
    cashu, discovery, nut24, pass, pricing, session, Balance, Charge, ConfigError, Meter, Paid,
    PassEndpoint, PassEvent, PassEventKind, PassHook, PassScope, Passes, Paywall, PaywallLayer,
    Price, PriceMode, PriceTable, Pricing, RequestBody, RequestEncoding, ResponseBody,
    ResponseFuture, Retry, ValidPass,
};
pub use coinslot_mint::{
    FakeBackend, FakeBackendConfig, Mint, MintConfig, MintSeed, PaymentBackend, UnitConfig,
};
pub use embedded::{EmbeddedMint, OpenError};

/// The crates behind the facade, for everything it does not re-export.
pub mod crates {
    pub use coinslot_http as http;
    pub use coinslot_layer as layer;
    pub use coinslot_mint as mint;
    pub use coinslot_store_sled as store_sled;
}
