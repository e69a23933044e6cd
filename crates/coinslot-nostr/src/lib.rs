//! # coinslot-nostr
//!
//! A Coinslot mint on nostr. The mint's identity key (NUT-06 `pubkey`, normalized to an
//! even point) is its nostr key, so wallets and nostr clients see one identity.
//!
//! - [`nip87`]: the kind 38172 mint announcement and kind 38000 recommendations;
//! - [`nip74`]: mint operations over nostr after the draft NIP-74 (kinds 37400, 27401,
//!   27402, NIP-44 encrypted), each mapped to one route of the mint's HTTP API;
//! - [`Responder`]: turns a request event into a result event, through the same axum
//!   service that answers HTTP, so rules and errors are identical;
//! - [`NostrService`]: what `coinslotd` runs with `[nostr] relays`: announces (retrying
//!   each relay with backoff), follows recommendations, answers requests;
//! - [`spent_feed`]: optionally, the `Y` of every spent proof, published for audit;
//! - [`MintClient`] and [`discover`]: the wallet side, a fresh key per request;
//! - `NostrConnector` (feature `wallet`): a `cdk` wallet that reaches the mint over nostr
//!   only.
//!
//! ```no_run
//! # async fn demo(mint: coinslot_mint::Mint) -> Result<(), Box<dyn std::error::Error>> {
//! use coinslot_nostr::{MintIdentity, NostrConfig, NostrService};
//!
//! let config = NostrConfig {
//!     relays: vec!["wss://relay.example".into()],
//!     ..NostrConfig::default()
//! };
//! let identity = MintIdentity::of(&mint, vec!["https://mint.example".into()], "mainnet")?;
//! let http = coinslot_http::router(mint, Default::default());
//! let service = NostrService::start(identity, http, config).await?;
//! println!("{:?}", service.report().await);
//! # Ok(()) }
//! ```

pub mod client;
pub mod nip74;
pub mod nip87;
pub mod responder;
pub mod service;
pub mod spent_feed;
#[cfg(feature = "wallet")]
pub mod wallet;

pub use client::{connect, discover, ClientError, Discover, DiscoveredMint, MintClient};
pub use nostr_sdk;
pub use responder::{Ignored, Responder, ResponderLimits};
pub use service::{
    parse_secret_key, MintIdentity, NostrConfig, NostrError, NostrReport, NostrService,
    RecommendConfig,
};
#[cfg(feature = "wallet")]
pub use wallet::NostrConnector;
