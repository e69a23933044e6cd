//! What the mint owes, for its operator: ecash in circulation per unit and keyset, prepaid
//! balances, and credit issued without Lightning.

use cashu::nuts::{CurrencyUnit, Id, MintQuoteBolt11Response, MintQuoteState};
use serde::Serialize;

use crate::activity::Event;
use crate::error::Error;
use crate::nut04::quote_response;
use crate::nut17::MintEvent;
use crate::store::{AccountTotal, MintQuoteRecord, Supply};
use crate::{unix_now, Mint};

/// How many times [`Mint::audit`] reads books that do not add up before it reports them.
const AUDIT_READS: usize = 3;

/// Prefix of the lookup id of quotes the operator paid by hand: no backend knows them.
pub const CREDIT_LOOKUP_PREFIX: &str = "credit:";

/// Everything the mint owes, per unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liabilities {
    /// One entry per configured unit, in configuration order.
    pub units: Vec<UnitLiabilities>,
}

/// What the mint owes in one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitLiabilities {
    /// The unit.
    pub unit: CurrencyUnit,
    /// Value ever signed in this unit (top-ups, swap outputs, change, refunds, credit).
    pub issued: u64,
    /// Value ever spent in this unit (swap inputs, payments, deposits).
    pub redeemed: u64,
    /// Ecash in circulation: `issued - redeemed`.
    pub outstanding: u64,
    /// Open prepaid accounts (sessions).
    pub accounts: u64,
    /// What those accounts hold.
    pub account_balance: u64,
    /// Everything owed: `outstanding + account_balance`.
    pub total: u64,
    /// The same counters per keyset, oldest first.
    pub keysets: Vec<KeysetLiabilities>,
}

/// The counters of one keyset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeysetLiabilities {
    /// Keyset id.
    pub id: Id,
    /// Whether it signs new outputs.
    pub active: bool,
    /// Fee per input, parts per thousand.
    pub input_fee_ppk: u64,
    /// Value signed.
    pub issued: u64,
    /// Value spent.
    pub redeemed: u64,
    /// `issued - redeemed`.
    pub outstanding: u64,
}

impl Mint {
    /// Reads the supply counters and prepaid balances.
    pub async fn liabilities(&self) -> Result<Liabilities, Error> {
        let supply = self.inner.store.supply().await?;
        let accounts = self.inner.store.account_totals().await?;
        Ok(self.liabilities_of(&supply, &accounts))
    }

    /// The liabilities these counters and balances add up to, per configured unit.
    fn liabilities_of(&self, supply: &[(Id, Supply)], accounts: &[AccountTotal]) -> Liabilities {
        let ring = self.keyring();
        let mut keysets: Vec<_> = ring.by_id.values().map(|k| k.record.clone()).collect();
        keysets.sort_by_key(|k| (k.created_at, k.derivation_index));
        let units = self
            .inner
            .config
            .units
            .iter()
            .map(|unit| {
                let unit = unit.currency_unit();
                let keysets: Vec<KeysetLiabilities> = keysets
                    .iter()
                    .filter(|k| k.unit == unit)
                    .map(|k| {
                        let counters = supply
                            .iter()
                            .find(|(id, _)| *id == k.id)
                            .map(|(_, s)| *s)
                            .unwrap_or_default();
                        KeysetLiabilities {
                            id: k.id,
                            active: k.active,
                            input_fee_ppk: k.input_fee_ppk,
                            issued: counters.issued,
                            redeemed: counters.redeemed,
                            outstanding: counters.outstanding(),
                        }
                    })
                    .collect();
                let sum = keysets.iter().fold(Supply::default(), |sum, k| {
                    sum.plus(Supply {
                        issued: k.issued,
                        redeemed: k.redeemed,
                    })
                });
                let (open, balance) = accounts
                    .iter()
                    .find(|a| a.unit == unit)
                    .map(|a| (a.accounts, a.balance))
                    .unwrap_or_default();
                UnitLiabilities {
                    unit,
                    issued: sum.issued,
                    redeemed: sum.redeemed,
                    outstanding: sum.outstanding(),
                    accounts: open,
                    account_balance: balance,
                    total: sum.outstanding().saturating_add(balance),
                    keysets,
                }
            })
            .collect();
        Liabilities { units }
    }

    /// Creates a mint quote that is already paid, for credit the operator hands out without
    /// Lightning (cash at the counter, promotions). Any wallet mints it with the quote id.
    /// `memo` takes the place of the invoice in the quote.
    pub async fn issue_credit_quote(
        &self,
        unit: &CurrencyUnit,
        amount: u64,
        memo: &str,
    ) -> Result<MintQuoteBolt11Response<String>, Error> {
        let quote = self.credit_quote(unit, amount, memo)?;
        self.inner.store.add_mint_quote(&quote).await?;
        tracing::info!(quote = %quote.id, unit = %unit, amount, "credit quote issued");
        self.record(Event::QuotePaid {
            unit: unit.clone(),
            amount,
        });
        let response = quote_response(&quote);
        self.publish(MintEvent::MintQuote(response.clone()));
        Ok(response)
    }

    /// A paid credit quote for `amount` of `unit` (not stored yet).
    pub(crate) fn credit_quote(
        &self,
        unit: &CurrencyUnit,
        amount: u64,
        memo: &str,
    ) -> Result<MintQuoteRecord, Error> {
        if !self.inner.units.contains_key(unit) {
            return Err(Error::UnsupportedUnit(unit.to_string()));
        }
        if amount == 0 {
            return Err(Error::InvalidRequest("amount must be positive".into()));
        }
        let now = unix_now();
        let id = uuid::Uuid::new_v4().to_string();
        Ok(MintQuoteRecord {
            lookup_id: format!("{CREDIT_LOOKUP_PREFIX}{id}"),
            id,
            amount,
            unit: unit.clone(),
            request: memo.to_string(),
            state: MintQuoteState::Paid,
            // Only an unpaid quote expires; this one never was.
            expiry: now.saturating_add(self.inner.config.quote_ttl_secs),
            created_at: now,
            updated_at: now,
            pubkey: None,
        })
    }

    /// Checks the books: every keyset's counters and every unit's ecash against the value
    /// that came in (see [`Audit`]). Reads every quote: an operator's tool, not a hot path.
    ///
    /// On a live mint the reads are not one snapshot (a deposit between reading the supply
    /// and the balances counts its value twice), so books that do not add up are read again,
    /// and reported only if they still do not after three reads.
    pub async fn audit(&self) -> Result<Audit, Error> {
        let mut audit = self.audit_once().await?;
        for _ in 1..AUDIT_READS {
            if audit.ok {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            audit = self.audit_once().await?;
        }
        Ok(audit)
    }

    async fn audit_once(&self) -> Result<Audit, Error> {
        // One read of each: the counters checked per keyset are the ones summed per unit.
        let supply = self.inner.store.supply().await?;
        let accounts = self.inner.store.account_totals().await?;
        let liabilities = self.liabilities_of(&supply, &accounts);
        let minted = self.inner.store.minted_quotes().await?;
        let ring = self.keyring();
        let mut violations = Vec::new();
        for (id, counters) in &supply {
            if counters.redeemed > counters.issued {
                violations.push(format!(
                    "keyset {id}: {} redeemed but only {} issued",
                    counters.redeemed, counters.issued
                ));
            }
            if !ring.by_id.contains_key(id) {
                violations.push(format!(
                    "keyset {id}: counters for a keyset the mint does not have"
                ));
            }
        }
        let units = liabilities
            .units
            .into_iter()
            .map(|unit| {
                let came_in = minted
                    .iter()
                    .find(|m| m.unit == unit.unit)
                    .cloned()
                    .unwrap_or_default();
                let owed = u128::from(unit.outstanding) + u128::from(unit.account_balance);
                if owed > u128::from(came_in.amount) {
                    violations.push(format!(
                        "{}: {owed} owed (ecash and balances) but only {} came in through quotes",
                        unit.unit, came_in.amount
                    ));
                }
                UnitAudit {
                    unit: unit.unit,
                    minted_quotes: came_in.quotes,
                    came_in: came_in.amount,
                    credit: came_in.credit,
                    issued: unit.issued,
                    redeemed: unit.redeemed,
                    outstanding: unit.outstanding,
                    account_balance: unit.account_balance,
                    retained: u64::try_from(u128::from(came_in.amount).saturating_sub(owed))
                        .unwrap_or(u64::MAX),
                }
            })
            .collect();
        Ok(Audit {
            ok: violations.is_empty(),
            units,
            violations,
        })
    }
}

/// The result of [`Mint::audit`]: the books per unit, and what does not add up.
///
/// Value enters only through minted quotes (Lightning or operator credit: `came_in`), swaps
/// and payments only move or consume it, so per unit
/// `came_in = outstanding + account_balance + retained`, where `retained` is what the
/// service kept (prices, fees, session debits), and per keyset
/// `issued = redeemed + outstanding` with nothing redeemed that was never issued. A
/// violation means value was created or a write was lost: stop and investigate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// No violations.
    pub ok: bool,
    /// The books of each configured unit.
    pub units: Vec<UnitAudit>,
    /// What does not add up, in words.
    pub violations: Vec<String>,
}

/// The books of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitAudit {
    /// The unit.
    pub unit: CurrencyUnit,
    /// Quotes minted.
    pub minted_quotes: u64,
    /// Their value: everything that came in.
    pub came_in: u64,
    /// The part of `came_in` the operator issued as credit.
    pub credit: u64,
    /// Value ever signed.
    pub issued: u64,
    /// Value ever spent.
    pub redeemed: u64,
    /// Ecash in circulation (`issued - redeemed`).
    pub outstanding: u64,
    /// Prepaid balances.
    pub account_balance: u64,
    /// What the service kept: `came_in - outstanding - account_balance`.
    pub retained: u64,
}
