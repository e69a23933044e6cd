//! What the layer tells the handler ([`Paid`]) and what a metered handler tells the layer
//! ([`Charge`]).

use coinslot_mint::cashu::nuts::{CurrencyUnit, Id};

/// Request extension on every paid request: what was paid and how.
///
/// ```
/// use axum::Extension;
/// use coinslot_layer::Paid;
///
/// async fn search(Extension(paid): Extension<Paid>) -> String {
///     format!("thanks for {} {}", paid.amount, paid.unit)
/// }
/// # let _ = search;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    /// Amount charged (the reservation, for a metered price).
    pub amount: u64,
    /// Unit of the amount.
    pub unit: CurrencyUnit,
    /// Keyset of the token that paid; `None` when a session paid.
    pub keyset_id: Option<Id>,
    /// The session that paid, if one did.
    pub session: Option<String>,
    /// Whether the price is metered: report the actual cost with [`Charge`].
    pub metered: bool,
    /// Whether this is a retry of a request the same token already paid for (the client
    /// lost the first response). It was not charged again.
    pub replay: bool,
}

/// Response extension a metered handler sets to the actual cost (at most the reservation;
/// more is capped). A metered response without it is charged the full reservation.
///
/// ```
/// use axum::Extension;
/// use coinslot_layer::Charge;
///
/// async fn complete() -> (Extension<Charge>, &'static str) {
///     (Extension(Charge(37)), "…37 tokens of output…")
/// }
/// # let _ = complete;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge(pub u64);
