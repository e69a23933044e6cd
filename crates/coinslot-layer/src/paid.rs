//! What the layer tells the handler ([`Paid`], [`ValidPass`]) and what a metered handler
//! tells the layer ([`Charge`]).

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
    /// Whether this run is a rerun: a retry of a request the same payment already paid
    /// for, on a route whose [`Retry`](crate::Retry) rule runs it again. It was not charged
    /// again.
    pub replay: bool,
}

/// Request extension on requests a time pass opened (or bought): the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPass {
    /// The pass id.
    pub id: String,
    /// Its scope.
    pub scope: String,
    /// When it runs out, Unix seconds.
    pub expires_at: u64,
    /// The key its buyer sent, if any.
    pub client_key: Option<String>,
}

impl From<coinslot_mint::PassRecord> for ValidPass {
    fn from(record: coinslot_mint::PassRecord) -> Self {
        Self {
            id: record.id,
            scope: record.scope,
            expires_at: record.expires_at,
            client_key: record.client_key,
        }
    }
}

impl ValidPass {
    /// Seconds left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
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
