//! # coinslot-admin
//!
//! The operator's API of a Coinslot mint, under `/admin`, for `coinslotd` or any axum app
//! that embeds the mint.
//!
//! Every route needs `Authorization: Bearer <jwt>`, an HS256 token signed with the key in
//! the data directory ([`auth`]; `coinslotd admin token --expires 1h --scope read,issue`
//! prints one). No token, a bad signature or an expired token → `401`; a token without the
//! route's scope → `403`; both with `{"error", "detail"}`. Every action is logged (target
//! `coinslot::admin`) with the token's subject and id, never the token.
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET /admin/whoami` | read | the token's subject, scopes, expiry |
//! | `GET /admin/liabilities` | read | per unit and keyset: issued, redeemed, outstanding, prepaid balances |
//! | `GET /admin/audit` | read | the books checked: value in through quotes vs ecash and balances owed, per keyset issued ≥ redeemed; `ok` and the violations |
//! | `GET /admin/activity?limit=N` | read | recent payments, refunds, top-ups, swaps, admin actions |
//! | `GET /admin/keysets` | read | keysets (NUT-02 form) |
//! | `POST /admin/keysets/rotate` `{"unit"}` | keys | a new active keyset for the unit |
//! | `POST /admin/credit` `{"amount","unit","form","memo"?}` | issue | credit without Lightning: `form` = `quote` (a paid mint quote), `token`, or `voucher` (printable HTML with a QR code) |
//! | `GET`/`PUT`/`DELETE /admin/prices` | read / prices | the price table, changed without a restart (every instance on the store), or back to the config file's |
//! | `GET /admin/passes` | read | live time passes: id, scope, expiry, revoked, client key |
//! | `POST /admin/passes/{id}/revoke` | issue | revokes a pass, durably: it opens nothing from then on |
//! | `GET /admin/nostr` | read | relays and their publishing state, the NIP-87 announcement, recommendations of this mint (404 when the mint is not on nostr) |
//! | `GET /admin/dashboard` | none (the page holds no data) | the operator's page: earnings, the books, sessions and passes, prices with a form to change them, recent activity; its script calls the routes above with the token typed into it |

pub mod activity;
pub mod api;
pub mod auth;
mod dashboard;
pub mod voucher;

pub use activity::ActivityLog;
pub use api::{router, Admin, NostrStatus, PriceBook, PriceChange};
pub use auth::{parse_ttl, AdminKey, AuthError, Claims, Scope, ADMIN_KEY_FILE};
