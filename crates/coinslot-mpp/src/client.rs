//! The client side: [`CashuProvider`], an [`mpp::client::PaymentProvider`] that pays
//! `cashu` charges from cdk wallets.

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use cdk::mint_url::MintUrl;
use cdk::nuts::CurrencyUnit;
use cdk::wallet::{SendOptions, Wallet};
use cdk::Amount;
use mpp::client::PaymentProvider;
use mpp::{ChargeRequest, MppError, PaymentChallenge, PaymentCredential};
use parking_lot::Mutex;

use crate::method::{CashuPayload, MethodDetails, INTENT, METHOD};

/// Pays `cashu` charge challenges from cdk wallets (one per mint and unit): a token worth
/// exactly the amount plus its input fee, from the first wallet whose mint the challenge
/// accepts. A charge above [`max_amount`](Self::max_amount) is refused before any ecash
/// leaves a wallet.
///
/// Every token sent stays reclaimable until the server's answer settles it: mpp's flow
/// calls [`rollback_payment`](PaymentProvider::rollback_payment) on a definite refusal,
/// and [`reclaim`](Self::reclaim) takes back every token still unspent (e.g. after a
/// server refused a credential and the flow paid its fresh challenge instead).
///
/// Cloning is cheap (the wallets and the list of outstanding tokens are shared).
#[derive(Clone)]
pub struct CashuProvider {
    inner: Arc<Inner>,
    max_amount: Option<u64>,
}

struct Inner {
    wallets: Vec<Wallet>,
    /// Tokens sent and not yet known to be accepted: challenge id → (wallet, send operation).
    outstanding: Mutex<HashMap<String, (usize, uuid::Uuid)>>,
}

impl std::fmt::Debug for CashuProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mints: Vec<String> = self
            .inner
            .wallets
            .iter()
            .map(|w| format!("{} ({})", w.mint_url, w.unit))
            .collect();
        f.debug_struct("CashuProvider")
            .field("wallets", &mints)
            .field("max_amount", &self.max_amount)
            .finish()
    }
}

impl CashuProvider {
    /// Pays from these wallets, with no cap per payment.
    pub fn new(wallets: impl IntoIterator<Item = Wallet>) -> Self {
        Self {
            inner: Arc::new(Inner {
                wallets: wallets.into_iter().collect(),
                outstanding: Mutex::new(HashMap::new()),
            }),
            max_amount: None,
        }
    }

    /// Refuses any charge above `max` (in the charge's unit, fee not included).
    pub fn max_amount(mut self, max: u64) -> Self {
        self.max_amount = Some(max);
        self
    }

    /// How many tokens were sent and not yet settled (accepted or taken back).
    pub fn outstanding(&self) -> usize {
        self.inner.outstanding.lock().len()
    }

    /// Takes back every outstanding token the mint says is unspent; returns the amount that
    /// came back. Tokens the server redeemed are forgotten.
    pub async fn reclaim(&self) -> u64 {
        let pending: Vec<(String, (usize, uuid::Uuid))> =
            self.inner.outstanding.lock().drain().collect();
        let mut back = 0;
        for (_, (index, operation)) in pending {
            back += self.revoke(index, operation).await;
        }
        back
    }

    async fn revoke(&self, index: usize, operation: uuid::Uuid) -> u64 {
        let Some(wallet) = self.inner.wallets.get(index) else {
            return 0;
        };
        match wallet.revoke_send(operation).await {
            Ok(amount) => {
                tracing::info!(mint = %wallet.mint_url, amount = u64::from(amount), "reclaimed an unspent cashu payment");
                u64::from(amount)
            }
            Err(err) => {
                tracing::debug!(mint = %wallet.mint_url, error = %err, "cashu payment not reclaimed (redeemed by the server?)");
                0
            }
        }
    }

    /// The wallet that can pay `request`, and the amount.
    fn wallet_for(&self, request: &ChargeRequest) -> Result<(usize, u64), MppError> {
        let amount: u64 = request.amount.parse().map_err(|_| {
            MppError::InvalidAmount(format!(
                "the charge's amount `{}` is not a whole number",
                request.amount
            ))
        })?;
        if let Some(max) = self.max_amount.filter(|max| amount > *max) {
            return Err(MppError::AmountExceedsMax {
                required: u128::from(amount),
                max: u128::from(max),
            });
        }
        let unit = CurrencyUnit::from_str(&request.currency)
            .map_err(|e| MppError::InvalidAmount(format!("the charge's currency: {e}")))?;
        let details = MethodDetails::of(request).map_err(MppError::InvalidConfig)?;
        self.inner
            .wallets
            .iter()
            .position(|w| w.unit == unit && details.accepts(&w.mint_url))
            .map(|index| (index, amount))
            .ok_or_else(|| {
                MppError::UnsupportedPaymentMethod(format!(
                    "no wallet holds {unit} of a mint the charge accepts ({})",
                    details.mints.join(", ")
                ))
            })
    }

    async fn pay_charge(
        &self,
        challenge: &PaymentChallenge,
    ) -> Result<PaymentCredential, MppError> {
        let request: ChargeRequest = challenge.request.decode()?;
        let (index, amount) = self.wallet_for(&request)?;
        let wallet = &self.inner.wallets[index];
        let options = SendOptions {
            include_fee: true,
            ..SendOptions::default()
        };
        let prepared = wallet
            .prepare_send(Amount::from(amount), options)
            .await
            .map_err(|e| wallet_error(&wallet.mint_url, &e))?;
        let operation = prepared.operation_id();
        let token = prepared
            .confirm(None)
            .await
            .map_err(|e| wallet_error(&wallet.mint_url, &e))?;
        self.inner
            .outstanding
            .lock()
            .insert(challenge.id.clone(), (index, operation));
        tracing::info!(mint = %wallet.mint_url, amount, unit = %wallet.unit, "paying a cashu charge");
        Ok(PaymentCredential::new(
            challenge.to_echo(),
            CashuPayload {
                cashu_token: token.to_string(),
            },
        ))
    }

    async fn take_back(&self, challenge: &PaymentChallenge) {
        let pending = self.inner.outstanding.lock().remove(&challenge.id);
        if let Some((index, operation)) = pending {
            self.revoke(index, operation).await;
        }
    }
}

fn wallet_error(mint: &MintUrl, err: &cdk::Error) -> MppError {
    match err {
        cdk::Error::InsufficientFunds => {
            MppError::InsufficientBalance(Some(format!("the wallet of {mint} holds too little")))
        }
        err => MppError::Http(format!("paying from the wallet of {mint}: {err}")),
    }
}

impl PaymentProvider for CashuProvider {
    fn supports(&self, method: &str, intent: &str) -> bool {
        method == METHOD && intent == INTENT
    }

    fn pay(
        &self,
        challenge: &PaymentChallenge,
    ) -> impl Future<Output = Result<PaymentCredential, MppError>> + Send {
        let this = self.clone();
        let challenge = challenge.clone();
        async move { this.pay_charge(&challenge).await }
    }

    fn commit_payment(
        &self,
        challenge: &PaymentChallenge,
        _credential: &PaymentCredential,
    ) -> impl Future<Output = Result<(), MppError>> + Send {
        self.inner.outstanding.lock().remove(&challenge.id);
        async { Ok(()) }
    }

    fn rollback_payment(
        &self,
        challenge: &PaymentChallenge,
        _credential: &PaymentCredential,
    ) -> impl Future<Output = Result<(), MppError>> + Send {
        let this = self.clone();
        let challenge = challenge.clone();
        async move {
            this.take_back(&challenge).await;
            Ok(())
        }
    }
}
