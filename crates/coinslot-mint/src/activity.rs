//! What happened with the money: a feed of [`Activity`] for the operator's dashboards
//! (metrics, the admin API's recent activity).
//!
//! The mint records its own operations; the paywall layer records paid, refunded and refused
//! requests through [`Mint::record`], so one feed covers both. Recording is a channel send:
//! with nobody subscribed it costs next to nothing.

use std::sync::Arc;

use cashu::nuts::CurrencyUnit;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::Mint;

/// Capacity of the feed; a subscriber that falls further behind loses the oldest entries.
pub const ACTIVITY_CAPACITY: usize = 4096;

/// One thing that happened, with when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// How a request was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaidWith {
    /// A token in the request.
    Token,
    /// A prepaid session's balance.
    Session,
}

/// The events of the feed. Amounts are in `unit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A Lightning mint quote was created.
    QuoteCreated {
        /// Unit of the quote.
        unit: CurrencyUnit,
        /// Amount to issue.
        amount: u64,
    },
    /// A mint quote was paid (by Lightning or by the operator).
    QuotePaid {
        /// Unit of the quote.
        unit: CurrencyUnit,
        /// Amount to issue.
        amount: u64,
    },
    /// Ecash was minted for a paid quote.
    Minted {
        /// Unit.
        unit: CurrencyUnit,
        /// Amount issued.
        amount: u64,
    },
    /// A swap.
    Swapped {
        /// Unit.
        unit: CurrencyUnit,
        /// Value of the inputs.
        amount: u64,
        /// Input fee kept.
        fee: u64,
    },
    /// A request was paid.
    Paid {
        /// Unit.
        unit: CurrencyUnit,
        /// The price kept (the reservation, for a metered price).
        amount: u64,
        /// Input fee kept beside the price.
        fee: u64,
        /// Token or session.
        with: PaidWith,
        /// The route's name (the label of the price paid), for the earnings ledger; `None`
        /// when the price had none.
        route: Option<Arc<str>>,
    },
    /// Value given back after a request: a failure's refund or a metered price's unused part.
    Refunded {
        /// Unit.
        unit: CurrencyUnit,
        /// Amount given back.
        amount: u64,
        /// Whether the request failed (`false`: a metered request cost less than reserved).
        failed: bool,
        /// The route of the request paid for, as in [`Event::Paid`].
        route: Option<Arc<str>>,
    },
    /// A request was refused before it reached the service.
    Refused {
        /// Why: `no_payment`, `bad_token`, `spent`, `wrong_mint`, `wrong_unit`,
        /// `insufficient`, `bad_session`, `insufficient_balance`, `rate_limited`, …
        reason: &'static str,
    },
    /// A prepaid session was opened or topped up.
    Deposited {
        /// Unit.
        unit: CurrencyUnit,
        /// Amount credited.
        amount: u64,
    },
    /// A prepaid session was closed and its balance paid out.
    SessionClosed {
        /// Unit.
        unit: CurrencyUnit,
        /// Amount paid out.
        amount: u64,
    },
    /// The operator issued credit without Lightning.
    CreditIssued {
        /// Unit.
        unit: CurrencyUnit,
        /// Amount.
        amount: u64,
        /// `quote`, `token` or `voucher`.
        form: String,
        /// Who issued it (the admin token's subject).
        by: String,
    },
    /// A unit's keyset was rotated.
    KeysetRotated {
        /// Unit.
        unit: CurrencyUnit,
        /// The new active keyset id.
        keyset: String,
        /// Who rotated it, if an operator did.
        by: String,
    },
    /// A time pass was revoked (open tunnels and connections using it should close).
    PassRevoked {
        /// The pass id.
        id: String,
        /// Its scope.
        scope: String,
    },
    /// Prices were changed at runtime.
    PricesChanged {
        /// Who changed them.
        by: String,
    },
}

impl Mint {
    /// Records `event` in the activity feed, and in the earnings ledger when it earns or
    /// gives back value ([`crate::earnings`]).
    pub fn record(&self, event: Event) {
        self.inner.earnings.count(&event);
        if self.inner.activity.receiver_count() == 0 {
            return;
        }
        // No subscriber left between the check and the send is not an error.
        let _ = self.inner.activity.send(Activity {
            at_ms: unix_ms(),
            event,
        });
    }

    /// Receives every activity from now on.
    pub fn activity(&self) -> broadcast::Receiver<Activity> {
        self.inner.activity.subscribe()
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
