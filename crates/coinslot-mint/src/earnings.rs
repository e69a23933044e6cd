//! The earnings ledger: what each route kept, per unit and hour, for the operator's
//! dashboard ([`Mint::earnings`]).
//!
//! The paywall reports every paid request and every refund to [`Mint::record`]
//! ([`Event::Paid`], [`Event::Refunded`], with the route's name), and swaps report their
//! fees ([`Event::Swapped`]); the mint adds them up in memory and adds the sums to the
//! store's ledger once a second ([`MintStore::add_earnings`](crate::MintStore::add_earnings))
//! and when the server stops ([`Mint::flush_earnings`]). A payment costs one short lock
//! here, never a store write. Instances on one database add to the same rows, so the
//! ledger is the service's, not one instance's.
//!
//! The ledger is a report, not the books: a crash loses at most the last second of sums,
//! while the audit ([`Mint::audit`]) stays exact. Without a crash, what the rows kept adds
//! up to the audit's `retained`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cashu::nuts::CurrencyUnit;
use parking_lot::Mutex;
use serde::Serialize;

use crate::activity::Event;
use crate::error::Error;
use crate::mint::MintInner;
use crate::store::EarningsRecord;
use crate::{unix_now, Mint};

/// How often the sums in memory are added to the store.
pub const EARNINGS_FLUSH: Duration = Duration::from_secs(1);

/// The route under which swaps' input fees are counted.
pub const SWAP_FEES_ROUTE: &str = "swap fees";

/// Seconds in one row of the ledger.
pub const HOUR: u64 = 3600;

type Key = (u64, CurrencyUnit, Option<Arc<str>>);

/// Sums not yet in the store.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    rows: Mutex<HashMap<Key, EarningsRecord>>,
}

impl Tally {
    /// Counts `event` if it earns or gives back value; others are ignored.
    pub(crate) fn count(&self, event: &Event) {
        let (unit, route, counts) = match event {
            Event::Paid {
                unit,
                amount,
                fee,
                route,
                ..
            } => (
                unit,
                route.clone(),
                EarningsRecord {
                    requests: 1,
                    earned: amount.saturating_add(*fee),
                    ..EarningsRecord::default()
                },
            ),
            Event::Refunded {
                unit,
                amount,
                failed,
                route,
            } => (
                unit,
                route.clone(),
                EarningsRecord {
                    failed: u64::from(*failed),
                    refunded: *amount,
                    ..EarningsRecord::default()
                },
            ),
            Event::Swapped { unit, fee, .. } if *fee > 0 => (
                unit,
                Some(Arc::from(SWAP_FEES_ROUTE)),
                EarningsRecord {
                    requests: 1,
                    earned: *fee,
                    ..EarningsRecord::default()
                },
            ),
            _ => return,
        };
        let hour = unix_now() / HOUR * HOUR;
        self.rows
            .lock()
            .entry((hour, unit.clone(), route))
            .or_default()
            .add(&counts);
    }

    /// Takes the sums out, as ledger rows.
    fn take(&self) -> Vec<EarningsRecord> {
        let rows = std::mem::take(&mut *self.rows.lock());
        let mut rows: Vec<EarningsRecord> = rows
            .into_iter()
            .map(|((hour, unit, route), counts)| EarningsRecord {
                hour,
                unit: unit.to_string(),
                route: route.as_deref().unwrap_or_default().to_string(),
                ..counts
            })
            .collect();
        // One order for every writer, so two instances' upserts lock rows in the same order.
        rows.sort_by(|a, b| (a.hour, &a.unit, &a.route).cmp(&(b.hour, &b.unit, &b.route)));
        rows
    }

    /// Puts back rows the store did not take, to be written with the next ones.
    fn put_back(&self, rows: Vec<EarningsRecord>) {
        let mut tally = self.rows.lock();
        for row in rows {
            let unit = unit_of(&row.unit);
            let route = (!row.route.is_empty()).then(|| Arc::from(row.route.as_str()));
            tally.entry((row.hour, unit, route)).or_default().add(&row);
        }
    }
}

/// The unit a row names (written by [`Tally::take`], so it parses back).
fn unit_of(text: &str) -> CurrencyUnit {
    text.parse()
        .unwrap_or_else(|_| CurrencyUnit::Custom(Arc::from(text)))
}

/// The ledger over a period: its rows, and each route's sums over the whole period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Earnings {
    /// Unix time of the first hour included.
    pub since: u64,
    /// One row per hour, unit and route with anything in it, oldest first.
    pub hours: Vec<EarningsRecord>,
    /// Per unit and route over the period, the one that kept most first.
    pub routes: Vec<RouteEarnings>,
}

/// A route's sums over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteEarnings {
    /// The sums, as one row whose `hour` is the period's first.
    #[serde(flatten)]
    pub sums: EarningsRecord,
    /// What the route kept: `earned - refunded`.
    pub net: u64,
}

impl Earnings {
    fn of(since: u64, hours: Vec<EarningsRecord>) -> Self {
        let mut sums: HashMap<(&str, &str), EarningsRecord> = HashMap::new();
        for row in &hours {
            sums.entry((&row.unit, &row.route))
                .or_insert_with(|| EarningsRecord {
                    hour: since,
                    unit: row.unit.clone(),
                    route: row.route.clone(),
                    ..EarningsRecord::default()
                })
                .add(row);
        }
        let mut routes: Vec<RouteEarnings> = sums
            .into_values()
            .map(|sums| RouteEarnings {
                net: sums.net(),
                sums,
            })
            .collect();
        routes.sort_by(|a, b| {
            (b.net, &a.sums.unit, &a.sums.route).cmp(&(a.net, &b.sums.unit, &b.sums.route))
        });
        Self {
            since,
            hours,
            routes,
        }
    }

    /// What every route kept in `unit` over the period.
    pub fn net(&self, unit: &str) -> u64 {
        self.routes
            .iter()
            .filter(|r| r.sums.unit == unit)
            .fold(0, |sum, r| sum.saturating_add(r.net))
    }
}

impl Mint {
    /// Adds the sums counted since the last flush to the store's ledger. On failure they
    /// stay in memory for the next one. A background task does this every
    /// [`EARNINGS_FLUSH`]; call it once more before the process stops (coinslotd does).
    pub async fn flush_earnings(&self) -> Result<(), Error> {
        let rows = self.inner.earnings.take();
        if rows.is_empty() {
            return Ok(());
        }
        if let Err(err) = self.inner.store.add_earnings(&rows).await {
            self.inner.earnings.put_back(rows);
            return Err(err.into());
        }
        Ok(())
    }

    /// The ledger from the hour that holds `since` (Unix seconds) on, this instance's latest
    /// sums included (other instances' reach the store within [`EARNINGS_FLUSH`]).
    pub async fn earnings(&self, since: u64) -> Result<Earnings, Error> {
        self.flush_earnings().await?;
        let since = since / HOUR * HOUR;
        let hours = self.inner.store.earnings(since).await?;
        Ok(Earnings::of(since, hours))
    }

    /// Flushes the ledger's sums every [`EARNINGS_FLUSH`] while the mint lives.
    pub(crate) fn spawn_earnings_flusher(&self) {
        let weak: Weak<MintInner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EARNINGS_FLUSH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                match (Mint { inner }.flush_earnings().await, failing) {
                    (Ok(()), true) => {
                        tracing::info!("earnings ledger written again");
                        failing = false;
                    }
                    (Err(err), false) => {
                        tracing::warn!(error = %err, "cannot write the earnings ledger; the sums wait in memory");
                        failing = true;
                    }
                    _ => {}
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::PaidWith;

    fn paid(route: &str, amount: u64, fee: u64) -> Event {
        Event::Paid {
            unit: CurrencyUnit::Sat,
            amount,
            fee,
            with: PaidWith::Token,
            route: Some(Arc::from(route)),
        }
    }

    #[test]
    fn a_tally_sums_per_route_and_ignores_other_events() {
        let tally = Tally::default();
        tally.count(&paid("GET /a", 2, 1));
        tally.count(&paid("GET /a", 2, 0));
        tally.count(&paid("GET /b", 5, 0));
        tally.count(&Event::Refunded {
            unit: CurrencyUnit::Sat,
            amount: 3,
            failed: true,
            route: Some(Arc::from("GET /a")),
        });
        tally.count(&Event::Swapped {
            unit: CurrencyUnit::Sat,
            amount: 10,
            fee: 0,
        });
        tally.count(&Event::Minted {
            unit: CurrencyUnit::Sat,
            amount: 10,
        });
        let rows = tally.take();
        let counts: Vec<_> = rows
            .iter()
            .map(|r| (r.route.as_str(), r.requests, r.failed, r.earned, r.refunded))
            .collect();
        assert_eq!(counts, vec![("GET /a", 2, 1, 5, 3), ("GET /b", 1, 0, 5, 0)]);
        assert!(rows.iter().all(|r| r.hour % HOUR == 0 && r.unit == "sat"));
        assert!(tally.take().is_empty(), "taken rows are gone");
        tally.put_back(rows.clone());
        assert_eq!(tally.take(), rows, "rows put back come out again");
    }

    #[tokio::test]
    async fn a_running_mint_writes_its_sums_without_being_asked() {
        let store = Arc::new(crate::MemoryStore::new());
        let mint = Mint::new(
            crate::MintConfig::default(),
            crate::MintSeed::generate(),
            store.clone(),
            Arc::new(crate::FakeBackend::new(Default::default())),
        )
        .await
        .expect("mint");
        mint.record(paid("GET /a", 2, 0));
        let mut written = Vec::new();
        for _ in 0..50 {
            written = crate::MintStore::earnings(store.as_ref(), 0)
                .await
                .expect("read");
            if !written.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let counts: Vec<_> = written
            .iter()
            .map(|r| (r.route.as_str(), r.earned))
            .collect();
        assert_eq!(
            counts,
            vec![("GET /a", 2)],
            "within {EARNINGS_FLUSH:?} or so"
        );
    }

    #[test]
    fn routes_are_summed_over_hours_and_ranked_by_what_they_kept() {
        let row = |hour, route: &str, earned, refunded| EarningsRecord {
            hour,
            unit: "sat".into(),
            route: route.into(),
            requests: 1,
            failed: 0,
            earned,
            refunded,
        };
        let earnings = Earnings::of(
            0,
            vec![
                row(0, "GET /a", 4, 1),
                row(0, "GET /b", 5, 0),
                row(HOUR, "GET /a", 4, 0),
            ],
        );
        let routes: Vec<_> = earnings
            .routes
            .iter()
            .map(|r| (r.sums.route.as_str(), r.sums.requests, r.net))
            .collect();
        assert_eq!(routes, vec![("GET /a", 2, 7), ("GET /b", 1, 5)]);
        assert_eq!(earnings.net("sat"), 12);
        assert_eq!(earnings.net("usd"), 0);
    }
}
