//! What the layer tells the handler ([`Paid`], [`ValidPass`]) and what a metered handler
//! tells the layer ([`Charge`] with its answer's head, [`Meter`] when its body ends).

use std::sync::{Arc, OnceLock};

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
    /// The prepaid balance (a session's or an API key's) that paid, if one did: a handler
    /// may charge it again for more of the same, e.g. each further minute a connection
    /// stays open.
    pub balance: Option<Balance>,
}

/// A prepaid balance (a session's or an API key's) that paid a request, which the handler
/// may charge again. Each debit is one atomic write of the store, refused (and nothing
/// taken) when the balance is short.
#[derive(Clone)]
pub struct Balance {
    mint: coinslot_mint::Mint,
    id: String,
}

impl Balance {
    pub(crate) fn new(mint: coinslot_mint::Mint, id: String) -> Self {
        Self { mint, id }
    }

    /// Takes `amount` `unit` from the balance; returns what is left. `InsufficientBalance`
    /// when it holds less (nothing is taken), `AccountNotFound` once it was closed or paid
    /// out.
    pub async fn debit(
        &self,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, coinslot_mint::Error> {
        self.mint.debit_account(&self.id, unit, amount).await
    }
}

/// Balances are the same when they are the same account.
impl PartialEq for Balance {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Balance {}

/// Never the account id (it names a session or a key).
impl std::fmt::Debug for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Balance { .. }")
    }
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

/// Response extension for a metered cost known only when the answer's body ends (a streamed
/// completion whose token usage comes last). The handler puts a clone in its response's
/// extensions and calls [`Meter::charge`] before the body ends; the layer settles when it
/// sees the end: what was used is charged, the rest goes back.
///
/// Where the rest goes: to the session or key balance that paid (at once, durably); for a
/// one-shot token, to the balance of that token as an API key, paid out by the balance
/// endpoint (its change from the head goes back in `X-Cashu` as usual). An answer the layer
/// reads whole before its head (a known length that fits the stored-answer limit) is settled
/// at its head, so a token gets its rest in `X-Cashu`.
///
/// A body that ends without a charge is billed the fallback (the whole reservation unless
/// [`Meter::fallback`] says less); one that fails before any byte went out is not billed.
///
/// ```
/// use axum::{body::Body, response::Response};
/// use coinslot_layer::Meter;
///
/// async fn stream() -> Response {
///     let meter = Meter::new();
///     let at_end = meter.clone();
///     let chunks = futures::stream::iter(["data: a\n\n", "data: b\n\n"]).map(move |chunk| {
///         if chunk.ends_with("b\n\n") {
///             at_end.charge(2); // the usage of the whole answer
///         }
///         Ok::<_, std::convert::Infallible>(chunk)
///     });
///     let mut response = Response::new(Body::from_stream(chunks));
///     response.extensions_mut().insert(meter);
///     response
/// }
/// # use futures::StreamExt;
/// # let _ = stream;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<MeterState>);

#[derive(Debug, Default)]
struct MeterState {
    cost: OnceLock<u64>,
    fallback: Option<u64>,
}

impl Meter {
    /// A meter with no charge yet, billing the whole reservation if none comes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A meter billing `amount` (at most the reservation) if its body ends without a charge.
    pub fn fallback(amount: u64) -> Self {
        Self(Arc::new(MeterState {
            cost: OnceLock::new(),
            fallback: Some(amount),
        }))
    }

    /// Sets the actual cost (at most the reservation; more is capped). The first charge
    /// counts; `false` if one was set already.
    pub fn charge(&self, cost: u64) -> bool {
        self.0.cost.set(cost).is_ok()
    }

    /// The charge, once set.
    pub fn cost(&self) -> Option<u64> {
        self.0.cost.get().copied()
    }

    /// What is billed if the body ends without a charge (`None`: the reservation).
    pub fn fallback_amount(&self) -> Option<u64> {
        self.0.fallback
    }
}
