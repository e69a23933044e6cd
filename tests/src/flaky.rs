//! [`FlakyStore`]: a [`MintStore`] that fails its durable writes on demand, to test what
//! clients see when the store (a disk, a database) fails in the middle of a payment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use coinslot_mint::cashu::nuts::{BlindSignature, CurrencyUnit, Id, PublicKey};
use coinslot_mint::store::{
    AccountRecord, AccountTotal, Commit, EarningsRecord, KeysetRecord, MintQuoteRecord, MintStore,
    PassRecord, QuoteTotal, ReceiptRecord, SettingRecord, SharedEvent, StoreError, Supply,
};

/// Wraps a store; while [`FlakyStore::fail`] is set, every commit and earnings write fails (nothing written).
pub struct FlakyStore {
    inner: Arc<dyn MintStore>,
    failing: AtomicBool,
}

impl FlakyStore {
    /// `inner`, working.
    pub fn new(inner: Arc<dyn MintStore>) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
        }
    }

    /// Makes commits fail (`true`) or work again.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl MintStore for FlakyStore {
    async fn keysets(&self) -> Result<Vec<KeysetRecord>, StoreError> {
        self.inner.keysets().await
    }
    async fn put_keysets(&self, keysets: &[KeysetRecord]) -> Result<(), StoreError> {
        self.inner.put_keysets(keysets).await
    }
    async fn add_mint_quote(&self, quote: &MintQuoteRecord) -> Result<(), StoreError> {
        self.inner.add_mint_quote(quote).await
    }
    async fn mint_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.inner.mint_quote(id).await
    }
    async fn mint_quote_by_lookup_id(
        &self,
        lookup_id: &str,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.inner.mint_quote_by_lookup_id(lookup_id).await
    }
    async fn mark_mint_quote_paid(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<MintQuoteRecord>, StoreError> {
        self.inner.mark_mint_quote_paid(id, now).await
    }
    async fn unpaid_quotes(&self, created_since: u64) -> Result<Vec<MintQuoteRecord>, StoreError> {
        self.inner.unpaid_quotes(created_since).await
    }
    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError> {
        self.inner.spent(ys).await
    }
    async fn blind_signatures(
        &self,
        blinded: &[PublicKey],
    ) -> Result<Vec<Option<BlindSignature>>, StoreError> {
        self.inner.blind_signatures(blinded).await
    }
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk unavailable (injected)".into()));
        }
        self.inner.commit(commit).await
    }
    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError> {
        self.inner.receipt(key).await
    }
    async fn prune_receipts(&self, created_before: u64) -> Result<u64, StoreError> {
        self.inner.prune_receipts(created_before).await
    }
    async fn answer(
        &self,
        key: &[u8; 32],
    ) -> Result<Option<coinslot_mint::AnswerRecord>, StoreError> {
        self.inner.answer(key).await
    }
    async fn prune_answers(&self, expired_before: u64) -> Result<u64, StoreError> {
        self.inner.prune_answers(expired_before).await
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account(id).await
    }
    async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, StoreError> {
        self.inner.debit_account(id, unit, amount).await
    }
    async fn supply(&self) -> Result<Vec<(Id, Supply)>, StoreError> {
        self.inner.supply().await
    }
    async fn pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        self.inner.pass(id).await
    }
    async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError> {
        self.inner.revoke_pass(id).await
    }
    async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, StoreError> {
        self.inner.passes(expires_after).await
    }
    async fn account_totals(&self) -> Result<Vec<AccountTotal>, StoreError> {
        self.inner.account_totals().await
    }
    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError> {
        self.inner.minted_quotes().await
    }
    async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, StoreError> {
        self.inner.setting(name).await
    }
    async fn put_setting(&self, name: &str, value: &[u8], now: u64) -> Result<u64, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk unavailable (injected)".into()));
        }
        self.inner.put_setting(name, value, now).await
    }
    async fn add_earnings(&self, rows: &[EarningsRecord]) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk unavailable (injected)".into()));
        }
        self.inner.add_earnings(rows).await
    }
    async fn earnings(&self, since: u64) -> Result<Vec<EarningsRecord>, StoreError> {
        self.inner.earnings(since).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk unavailable (injected)".into()));
        }
        self.inner.health().await
    }
    fn shared_events(&self) -> Option<tokio::sync::broadcast::Receiver<SharedEvent>> {
        self.inner.shared_events()
    }
}
