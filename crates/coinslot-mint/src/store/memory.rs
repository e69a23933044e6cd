//! [`MemoryStore`]: everything in process memory. For tests and throw-away mints; nothing
//! survives a restart.

use std::collections::{BTreeMap, HashMap, HashSet};

use cashu::nuts::{BlindSignature, CurrencyUnit, Id, MintQuoteState, PublicKey};
use parking_lot::Mutex;

use super::{
    point_key, supply_delta, AccountRecord, AccountTotal, AccountWrite, AnswerRecord, Commit,
    EarningsRecord, KeysetRecord, MintQuoteRecord, MintStore, PassRecord, QuoteTotal,
    ReceiptRecord, SettingRecord, StoreError, Supply,
};

/// An in-memory [`MintStore`]. One mutex makes every commit atomic.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keysets: HashMap<Id, KeysetRecord>,
    quotes: HashMap<String, MintQuoteRecord>,
    quote_by_lookup: HashMap<String, String>,
    spent: HashSet<[u8; 33]>,
    signatures: HashMap<[u8; 33], BlindSignature>,
    receipts: HashMap<[u8; 32], ReceiptRecord>,
    answers: HashMap<[u8; 32], AnswerRecord>,
    accounts: HashMap<String, AccountRecord>,
    supply: BTreeMap<Id, Supply>,
    passes: HashMap<String, PassRecord>,
    settings: HashMap<String, SettingRecord>,
    earnings: BTreeMap<(u64, String, String), EarningsRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl MintStore for MemoryStore {
    async fn keysets(&self) -> Result<Vec<KeysetRecord>, StoreError> {
        Ok(self.inner.lock().keysets.values().cloned().collect())
    }

    async fn put_keysets(&self, keysets: &[KeysetRecord]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for keyset in keysets {
            inner.keysets.insert(keyset.id, keyset.clone());
        }
        Ok(())
    }

    async fn add_mint_quote(&self, quote: &MintQuoteRecord) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.quotes.contains_key(&quote.id) {
            return Err(StoreError::Duplicate(format!("quote {}", quote.id)));
        }
        if inner.quote_by_lookup.contains_key(&quote.lookup_id) {
            return Err(StoreError::Duplicate(format!(
                "quote lookup id {}",
                quote.lookup_id
            )));
        }
        inner
            .quote_by_lookup
            .insert(quote.lookup_id.clone(), quote.id.clone());
        inner.quotes.insert(quote.id.clone(), quote.clone());
        Ok(())
    }

    async fn mint_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError> {
        Ok(self.inner.lock().quotes.get(id).cloned())
    }

    async fn mint_quote_by_lookup_id(
        &self,
        lookup_id: &str,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .quote_by_lookup
            .get(lookup_id)
            .and_then(|id| inner.quotes.get(id))
            .cloned())
    }

    async fn mark_mint_quote_paid(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        let mut inner = self.inner.lock();
        Ok(inner.quotes.get_mut(id).map(|quote| {
            if quote.state == MintQuoteState::Unpaid {
                quote.state = MintQuoteState::Paid;
                quote.updated_at = now;
            }
            quote.clone()
        }))
    }

    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError> {
        let inner = self.inner.lock();
        Ok(ys
            .iter()
            .map(|y| inner.spent.contains(&point_key(y)))
            .collect())
    }

    async fn blind_signatures(
        &self,
        blinded: &[PublicKey],
    ) -> Result<Vec<Option<BlindSignature>>, StoreError> {
        let inner = self.inner.lock();
        Ok(blinded
            .iter()
            .map(|b| inner.signatures.get(&point_key(b)).cloned())
            .collect())
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        // Check everything first, then write: nothing is written unless all of it can be.
        let mut spend_keys = HashSet::with_capacity(commit.spend.len());
        for proof in commit.spend {
            let key = point_key(&proof.y);
            if inner.spent.contains(&key) || !spend_keys.insert(key) {
                return Err(StoreError::AlreadySpent(proof.y.to_hex()));
            }
        }
        let mut sig_keys = HashSet::with_capacity(commit.issue.len());
        for issued in commit.issue {
            let key = point_key(&issued.blinded);
            if inner.signatures.contains_key(&key) || !sig_keys.insert(key) {
                return Err(StoreError::AlreadySigned(issued.blinded.to_hex()));
            }
        }
        if let Some(id) = commit.issue_quote {
            match inner.quotes.get(id).map(|q| q.state) {
                None => return Err(StoreError::QuoteNotFound),
                Some(MintQuoteState::Unpaid) => return Err(StoreError::QuoteNotPaid),
                Some(MintQuoteState::Issued) => return Err(StoreError::QuoteAlreadyIssued),
                Some(MintQuoteState::Paid) => {}
            }
        }
        let mut debited = None;
        match commit.account {
            Some(AccountWrite::Credit { id, unit, amount }) => {
                if let Some(account) = inner.accounts.get(id) {
                    account.credited(unit, amount)?;
                }
            }
            Some(AccountWrite::Close { id, balance }) => match inner.accounts.get(id) {
                None => return Err(StoreError::AccountNotFound),
                Some(account) if account.balance != balance => {
                    return Err(StoreError::BalanceChanged)
                }
                Some(_) => {}
            },
            Some(AccountWrite::Debit { id, unit, amount }) => {
                let account = inner.accounts.get(id).ok_or(StoreError::AccountNotFound)?;
                debited = Some(account.debited(unit, amount)?);
            }
            None => {}
        }
        let receipt_version = match commit.receipt {
            Some(write) => {
                let stored = inner.receipts.get(write.key).map(|r| r.version);
                Some(write.next_version(stored)?)
            }
            None => None,
        };
        let pass = match commit.pass {
            Some(write) => Some(write.apply(inner.passes.get(write.id).cloned())?),
            None => None,
        };

        // Every check passed: write.
        if let Some(pass) = pass {
            inner.passes.insert(pass.id.clone(), pass);
        }
        if let Some(id) = commit.issue_quote {
            if let Some(quote) = inner.quotes.get_mut(id) {
                quote.state = MintQuoteState::Issued;
            }
        }
        match commit.account {
            Some(AccountWrite::Credit { id, unit, amount }) => {
                let account = inner
                    .accounts
                    .entry(id.to_string())
                    .or_insert_with(|| AccountRecord::new(unit));
                account.balance = account.balance.saturating_add(amount);
            }
            Some(AccountWrite::Close { id, .. }) => {
                inner.accounts.remove(id);
            }
            Some(AccountWrite::Debit { id, .. }) => {
                if let (Some(account), Some(balance)) = (inner.accounts.get_mut(id), debited) {
                    account.balance = balance;
                }
            }
            None => {}
        }
        if let (Some(receipt), Some(version)) = (commit.receipt, receipt_version) {
            let created_at = inner
                .receipts
                .get(receipt.key)
                .map_or(receipt.created_at, |r| r.created_at);
            inner.receipts.insert(
                *receipt.key,
                ReceiptRecord {
                    created_at,
                    version,
                    data: receipt.data.to_vec(),
                },
            );
        }
        if let Some(answer) = commit.answer {
            inner.answers.insert(
                *answer.key,
                AnswerRecord {
                    expires_at: answer.expires_at,
                    data: answer.data.to_vec(),
                },
            );
        }
        inner.spent.extend(spend_keys);
        for issued in commit.issue {
            inner
                .signatures
                .insert(point_key(&issued.blinded), issued.signature.clone());
        }
        for (keyset_id, delta) in supply_delta(&commit) {
            let entry = inner.supply.entry(keyset_id).or_default();
            *entry = entry.plus(delta);
        }
        Ok(())
    }

    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError> {
        Ok(self.inner.lock().receipts.get(key).cloned())
    }

    async fn prune_receipts(&self, created_before: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let before = inner.receipts.len();
        inner.receipts.retain(|_, r| r.created_at >= created_before);
        Ok((before - inner.receipts.len()) as u64)
    }

    async fn answer(&self, key: &[u8; 32]) -> Result<Option<AnswerRecord>, StoreError> {
        Ok(self.inner.lock().answers.get(key).cloned())
    }

    async fn prune_answers(&self, expired_before: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let before = inner.answers.len();
        inner.answers.retain(|_, a| a.expires_at >= expired_before);
        Ok((before - inner.answers.len()) as u64)
    }

    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.inner.lock().accounts.get(id).cloned())
    }

    async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let account = inner
            .accounts
            .get_mut(id)
            .ok_or(StoreError::AccountNotFound)?;
        account.balance = account.debited(unit, amount)?;
        Ok(account.balance)
    }

    async fn supply(&self) -> Result<Vec<(Id, Supply)>, StoreError> {
        Ok(self
            .inner
            .lock()
            .supply
            .iter()
            .map(|(id, s)| (*id, *s))
            .collect())
    }

    async fn account_totals(&self) -> Result<Vec<AccountTotal>, StoreError> {
        let inner = self.inner.lock();
        Ok(AccountTotal::sum(inner.accounts.values()))
    }

    async fn unpaid_quotes(&self, created_since: u64) -> Result<Vec<MintQuoteRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .quotes
            .values()
            .filter(|q| q.state == MintQuoteState::Unpaid && q.created_at >= created_since)
            .cloned()
            .collect())
    }

    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError> {
        Ok(QuoteTotal::sum(self.inner.lock().quotes.values()))
    }

    async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, StoreError> {
        Ok(self.inner.lock().settings.get(name).cloned())
    }

    async fn put_setting(&self, name: &str, value: &[u8], now: u64) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        let version = inner.settings.get(name).map_or(0, |s| s.version) + 1;
        let record = SettingRecord {
            version,
            updated_at: now,
            value: value.to_vec(),
        };
        inner.settings.insert(name.to_string(), record);
        Ok(version)
    }

    async fn add_earnings(&self, rows: &[EarningsRecord]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        for row in rows {
            let key = (row.hour, row.unit.clone(), row.route.clone());
            inner
                .earnings
                .entry(key)
                .or_insert_with(|| EarningsRecord {
                    hour: row.hour,
                    unit: row.unit.clone(),
                    route: row.route.clone(),
                    ..EarningsRecord::default()
                })
                .add(row);
        }
        Ok(())
    }

    async fn earnings(&self, since: u64) -> Result<Vec<EarningsRecord>, StoreError> {
        let inner = self.inner.lock();
        Ok(inner
            .earnings
            .range((since, String::new(), String::new())..)
            .map(|(_, row)| row.clone())
            .collect())
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        Ok(self.inner.lock().passes.get(id).cloned())
    }

    async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        Ok(self.inner.lock().passes.get_mut(id).map(|pass| {
            pass.revoked = true;
            pass.clone()
        }))
    }

    async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .passes
            .values()
            .filter(|p| p.expires_at > expires_after)
            .cloned()
            .collect())
    }
}
