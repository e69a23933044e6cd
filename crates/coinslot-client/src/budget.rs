//! What the client may spend: per request, per host per hour, per hour, per unit.
//!
//! A payment reserves its amount before any ecash leaves the wallet (so concurrent requests
//! cannot overspend together), and what comes back (change, refunds) is given back to the
//! budget afterwards.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdk::nuts::CurrencyUnit;
use serde::{Deserialize, Serialize};

const HOUR: Duration = Duration::from_secs(3600);

/// Spending limits in one unit; `None` is no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Most one request may cost (fees included).
    pub per_request: Option<u64>,
    /// Most one host may take in the last hour.
    pub per_host_per_hour: Option<u64>,
    /// Most all hosts together may take in the last hour.
    pub per_hour: Option<u64>,
}

/// Limits per unit. A unit without limits cannot be spent at all.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    limits: HashMap<CurrencyUnit, Limits>,
    spent: VecDeque<Spend>,
    next_id: u64,
}

#[derive(Debug, Clone)]
struct Spend {
    id: u64,
    at: Instant,
    host: String,
    unit: CurrencyUnit,
    amount: u64,
}

/// One spend of the last hour, in a form that outlives the process (a command-line wallet
/// runs once per request, so its hourly limits need the spends of earlier runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendRecord {
    /// When, in Unix seconds.
    pub at: u64,
    /// Who was paid.
    pub host: String,
    /// Unit of `amount`.
    pub unit: String,
    /// How much (what came back already deducted).
    pub amount: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a payment was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// No budget for this unit.
    #[error("no budget for unit {0}")]
    NoBudget(CurrencyUnit),
    /// The request alone costs more than allowed.
    #[error("{host} asks {amount} {unit} for one request; the limit is {limit}")]
    PerRequest {
        /// Who asked.
        host: String,
        /// What it costs.
        amount: u64,
        /// In this unit.
        unit: CurrencyUnit,
        /// The limit.
        limit: u64,
    },
    /// This host had its share for the hour.
    #[error("{host} would get {total} {unit} within an hour; the limit is {limit}")]
    PerHost {
        /// Who asked.
        host: String,
        /// Spent there in the last hour, this request included.
        total: u64,
        /// In this unit.
        unit: CurrencyUnit,
        /// The limit.
        limit: u64,
    },
    /// The hourly budget is used up.
    #[error("{total} {unit} would be spent within an hour; the limit is {limit}")]
    PerHour {
        /// Spent in the last hour, this request included.
        total: u64,
        /// In this unit.
        unit: CurrencyUnit,
        /// The limit.
        limit: u64,
    },
}

/// A reservation: what was set aside for one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    id: u64,
}

impl Budget {
    /// An empty budget: nothing may be spent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows spending `unit` within `limits`.
    pub fn allow(mut self, unit: CurrencyUnit, limits: Limits) -> Self {
        self.limits.insert(unit, limits);
        self
    }

    /// The limits of `unit`, if it may be spent.
    pub fn limits(&self, unit: &CurrencyUnit) -> Option<&Limits> {
        self.limits.get(unit)
    }

    fn prune(&mut self, now: Instant) {
        while self
            .spent
            .front()
            .is_some_and(|s| now.duration_since(s.at) >= HOUR)
        {
            self.spent.pop_front();
        }
    }

    /// Sets `amount` aside for a payment to `host`, or says which limit it would break.
    pub fn reserve(
        &mut self,
        host: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<Reservation, OverBudget> {
        let limits = *self
            .limits
            .get(unit)
            .ok_or_else(|| OverBudget::NoBudget(unit.clone()))?;
        let now = Instant::now();
        self.prune(now);
        if let Some(limit) = limits.per_request.filter(|l| amount > *l) {
            return Err(OverBudget::PerRequest {
                host: host.to_string(),
                amount,
                unit: unit.clone(),
                limit,
            });
        }
        let in_unit = || self.spent.iter().filter(|s| &s.unit == unit);
        let host_total = in_unit()
            .filter(|s| s.host == host)
            .map(|s| s.amount)
            .sum::<u64>()
            .saturating_add(amount);
        if let Some(limit) = limits.per_host_per_hour.filter(|l| host_total > *l) {
            return Err(OverBudget::PerHost {
                host: host.to_string(),
                total: host_total,
                unit: unit.clone(),
                limit,
            });
        }
        let total = in_unit()
            .map(|s| s.amount)
            .sum::<u64>()
            .saturating_add(amount);
        if let Some(limit) = limits.per_hour.filter(|l| total > *l) {
            return Err(OverBudget::PerHour {
                total,
                unit: unit.clone(),
                limit,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.spent.push_back(Spend {
            id,
            at: now,
            host: host.to_string(),
            unit: unit.clone(),
            amount,
        });
        Ok(Reservation { id })
    }

    /// Gives `amount` of a reservation back (change, a refund, a payment not made). A
    /// reservation older than an hour has left the window already: nothing to give back.
    pub fn release(&mut self, reservation: &Reservation, amount: u64) {
        if let Some(spend) = self.spent.iter_mut().find(|s| s.id == reservation.id) {
            spend.amount = spend.amount.saturating_sub(amount);
        }
    }

    /// Counts earlier spends (from [`Budget::history`] of another process) against the
    /// limits; those older than an hour are dropped.
    pub fn with_history(mut self, records: impl IntoIterator<Item = SpendRecord>) -> Self {
        let (now, unix) = (Instant::now(), unix_now());
        let mut earlier: Vec<Spend> = Vec::new();
        for record in records {
            let age = Duration::from_secs(unix.saturating_sub(record.at));
            let (Some(at), Ok(unit)) = (now.checked_sub(age), CurrencyUnit::from_str(&record.unit))
            else {
                continue;
            };
            if age >= HOUR || record.amount == 0 {
                continue;
            }
            earlier.push(Spend {
                id: self.next_id,
                at,
                host: record.host,
                unit,
                amount: record.amount,
            });
            self.next_id += 1;
        }
        earlier.sort_by_key(|s| s.at);
        earlier.extend(self.spent.drain(..));
        self.spent = earlier.into();
        self
    }

    /// The spends of the last hour, to be handed to [`Budget::with_history`] later.
    pub fn history(&mut self) -> Vec<SpendRecord> {
        let (now, unix) = (Instant::now(), unix_now());
        self.prune(now);
        self.spent
            .iter()
            .filter(|s| s.amount > 0)
            .map(|s| SpendRecord {
                at: unix.saturating_sub(now.duration_since(s.at).as_secs()),
                host: s.host.clone(),
                unit: s.unit.to_string(),
                amount: s.amount,
            })
            .collect()
    }

    /// What was spent in `unit` in the last hour.
    pub fn spent_last_hour(&mut self, unit: &CurrencyUnit) -> u64 {
        self.prune(Instant::now());
        self.spent
            .iter()
            .filter(|s| &s.unit == unit)
            .map(|s| s.amount)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sat() -> CurrencyUnit {
        CurrencyUnit::Sat
    }

    #[test]
    fn limits_hold_per_request_host_and_hour() {
        let mut budget = Budget::new().allow(
            sat(),
            Limits {
                per_request: Some(10),
                per_host_per_hour: Some(15),
                per_hour: Some(20),
            },
        );
        assert!(matches!(
            budget.reserve("a", &sat(), 11),
            Err(OverBudget::PerRequest { limit: 10, .. })
        ));
        budget.reserve("a", &sat(), 10).unwrap();
        assert!(matches!(
            budget.reserve("a", &sat(), 6),
            Err(OverBudget::PerHost { total: 16, .. })
        ));
        budget.reserve("b", &sat(), 10).unwrap();
        assert!(matches!(
            budget.reserve("c", &sat(), 1),
            Err(OverBudget::PerHour { total: 21, .. })
        ));
        assert_eq!(budget.spent_last_hour(&sat()), 20);
        assert_eq!(
            budget.reserve("a", &CurrencyUnit::Usd, 1),
            Err(OverBudget::NoBudget(CurrencyUnit::Usd))
        );
    }

    #[test]
    fn history_carries_the_hour_into_another_budget() {
        let limits = Limits {
            per_host_per_hour: Some(10),
            per_hour: Some(12),
            ..Limits::default()
        };
        let mut first = Budget::new().allow(sat(), limits);
        let r = first.reserve("a", &sat(), 9).unwrap();
        first.release(&r, 1);
        let mut history = first.history();
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].amount, history[0].host.as_str()), (8, "a"));
        // A spend from more than an hour ago no longer counts.
        history.push(SpendRecord {
            at: unix_now() - 3700,
            host: "a".into(),
            unit: "sat".into(),
            amount: 100,
        });
        let mut second = Budget::new().allow(sat(), limits).with_history(history);
        assert_eq!(second.spent_last_hour(&sat()), 8);
        assert!(matches!(
            second.reserve("a", &sat(), 3),
            Err(OverBudget::PerHost { total: 11, .. })
        ));
        second.reserve("b", &sat(), 4).unwrap();
        assert!(matches!(
            second.reserve("c", &sat(), 1),
            Err(OverBudget::PerHour { total: 13, .. })
        ));
    }

    #[test]
    fn released_amounts_can_be_spent_again() {
        let mut budget = Budget::new().allow(
            sat(),
            Limits {
                per_hour: Some(10),
                ..Limits::default()
            },
        );
        let r = budget.reserve("a", &sat(), 10).unwrap();
        assert!(budget.reserve("a", &sat(), 4).is_err());
        budget.release(&r, 4);
        budget.reserve("a", &sat(), 4).unwrap();
        assert_eq!(budget.spent_last_hour(&sat()), 10);
    }
}
