//! NUT-04 (with NUT-23 bolt11 and NUT-20 signed quotes): top up over Lightning.

use cashu::nuts::{
    MintQuoteBolt11Request, MintQuoteBolt11Response, MintQuoteState, MintRequest, MintResponse,
    PaymentMethod,
};
use cashu::Amount;

use crate::activity::Event;
use crate::backend::InvoiceStatus;
use crate::error::Error;
use crate::nut17::MintEvent;
use crate::store::{Commit, MintQuoteRecord};
use crate::verify::{sign_outputs, verify_outputs};
use crate::{unix_now, Mint};

impl Mint {
    /// Creates a mint quote: an invoice for `amount` of `unit`, optionally locked to a NUT-20
    /// pubkey (then minting needs that key's signature).
    pub async fn create_mint_quote(
        &self,
        request: MintQuoteBolt11Request,
    ) -> Result<MintQuoteBolt11Response<String>, Error> {
        let unit = self
            .inner
            .units
            .get(&request.unit)
            .ok_or_else(|| Error::UnsupportedUnit(request.unit.to_string()))?;
        let rate = self.bolt11_rate(&request.unit)?;
        let amount = u64::from(request.amount);
        if amount < unit.min_mint || amount > unit.max_mint {
            return Err(Error::AmountOutOfLimitRange {
                min: unit.min_mint,
                max: unit.max_mint,
                amount,
            });
        }
        let amount_msat = amount
            .checked_mul(rate)
            .ok_or_else(|| Error::InvalidRequest("amount overflows".into()))?;
        let description = request.description.clone().unwrap_or_else(|| {
            self.inner
                .config
                .invoice_description
                .replace("{name}", &self.inner.config.info.name)
                .replace("{amount}", &amount.to_string())
                .replace("{unit}", &request.unit.to_string())
        });
        let ttl = self.inner.config.quote_ttl_secs;
        let invoice = self
            .inner
            .backend
            .create_invoice(amount_msat, &description, ttl)
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        let now = unix_now();
        let quote = MintQuoteRecord {
            id: uuid::Uuid::new_v4().to_string(),
            amount,
            unit: request.unit.clone(),
            request: invoice.bolt11,
            lookup_id: invoice.lookup_id,
            state: MintQuoteState::Unpaid,
            expiry: invoice.expiry,
            created_at: now,
            updated_at: now,
            pubkey: request.pubkey,
        };
        self.inner.store.add_mint_quote(&quote).await?;
        tracing::info!(
            quote = %quote.id,
            unit = %quote.unit,
            amount,
            locked = quote.pubkey.is_some(),
            "mint quote created"
        );
        self.record(Event::QuoteCreated {
            unit: quote.unit.clone(),
            amount,
        });
        // The invoice may have been paid before the quote was stored.
        let quote = self.refresh_quote(quote).await?;
        Ok(quote_response(&quote))
    }

    /// The current state of a mint quote; asks the backend if it is still unpaid.
    pub async fn mint_quote(&self, id: &str) -> Result<MintQuoteBolt11Response<String>, Error> {
        let quote = self
            .inner
            .store
            .mint_quote(id)
            .await?
            .ok_or(Error::UnknownQuote)?;
        let quote = self.refresh_quote(quote).await?;
        Ok(quote_response(&quote))
    }

    /// Issues ecash for a paid quote. The quote moves to `ISSUED` in the same atomic write
    /// that records the signatures, so a quote is minted once even under concurrent requests.
    pub async fn mint(&self, request: MintRequest<String>) -> Result<MintResponse, Error> {
        let quote = self
            .inner
            .store
            .mint_quote(&request.quote)
            .await?
            .ok_or(Error::UnknownQuote)?;
        let quote = self.refresh_quote(quote).await?;
        match quote.state {
            MintQuoteState::Unpaid if quote.expiry <= unix_now() => {
                return Err(Error::QuoteExpired(quote.expiry))
            }
            MintQuoteState::Unpaid => return Err(Error::QuoteNotPaid),
            MintQuoteState::Issued => return Err(Error::QuoteAlreadyIssued),
            MintQuoteState::Paid => {}
        }
        if let Some(pubkey) = quote.pubkey {
            request
                .verify_signature(pubkey)
                .map_err(|e| Error::WitnessMissingOrInvalid(e.to_string()))?;
        }
        let ring = self.keyring();
        let (unit, total) = verify_outputs(&ring, &request.outputs, &self.inner.config.limits)?;
        if request.outputs.is_empty() {
            return Err(Error::InvalidRequest("no outputs".into()));
        }
        if unit.is_some_and(|u| u != quote.unit) {
            return Err(Error::UnitMismatch);
        }
        if total != quote.amount {
            return Err(Error::TransactionUnbalanced {
                inputs: quote.amount,
                outputs: total,
                fee: 0,
            });
        }
        self.ensure_unsigned(&request.outputs).await?;
        let outputs = request.outputs;
        let signed = self
            .run_crypto(outputs.len(), move || sign_outputs(&ring, &outputs))
            .await?;
        self.inner
            .store
            .commit(Commit {
                spend: &[],
                issue: &signed,
                issue_quote: Some(&quote.id),
                ..Commit::default()
            })
            .await?;
        tracing::info!(quote = %quote.id, unit = %quote.unit, amount = quote.amount, "minted");
        self.record(Event::Minted {
            unit: quote.unit.clone(),
            amount: quote.amount,
        });
        let mut issued = quote;
        issued.state = MintQuoteState::Issued;
        issued.updated_at = unix_now();
        self.publish(MintEvent::MintQuote(quote_response(&issued)));
        Ok(MintResponse {
            signatures: signed.into_iter().map(|s| s.signature).collect(),
        })
    }

    /// Records that the invoice behind `lookup_id` was paid.
    pub(crate) async fn on_invoice_paid(&self, lookup_id: &str) -> Result<(), Error> {
        let Some(quote) = self.inner.store.mint_quote_by_lookup_id(lookup_id).await? else {
            // Paid before its quote was stored; `create_mint_quote` checks again.
            tracing::debug!("paid invoice without a stored quote yet");
            return Ok(());
        };
        self.mark_paid(quote).await.map(|_| ())
    }

    /// Asks the backend about every unpaid quote of the reconciliation window and records
    /// the payments it reports; returns how many quotes turned paid. Credits what arrived
    /// while the mint was down, or whose notification was lost.
    pub async fn reconcile_quotes(&self) -> Result<usize, Error> {
        let window = self.inner.config.reconcile_window_secs;
        let unpaid = self
            .inner
            .store
            .unpaid_quotes(unix_now().saturating_sub(window))
            .await?;
        let mut paid = 0;
        for quote in unpaid {
            if self.refresh_quote(quote).await?.state != MintQuoteState::Unpaid {
                paid += 1;
            }
        }
        Ok(paid)
    }

    /// Runs [`Mint::reconcile_quotes`] at start and every `reconcile_secs`, for as long as
    /// the mint lives.
    pub(crate) fn spawn_reconciler(&self) {
        let every = self.inner.config.reconcile_secs;
        if every == 0 {
            return;
        }
        let weak = self.downgrade();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(std::time::Duration::from_secs(every));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(mint) = weak.upgrade() else { return };
                match mint.reconcile_quotes().await {
                    Ok(0) => {}
                    Ok(paid) => tracing::info!(paid, "reconciliation: quotes paid"),
                    Err(err) => tracing::warn!(error = %err, "reconciliation failed"),
                }
            }
        });
    }

    /// If `quote` is unpaid, asks the backend and records a payment.
    async fn refresh_quote(&self, quote: MintQuoteRecord) -> Result<MintQuoteRecord, Error> {
        if quote.state != MintQuoteState::Unpaid {
            return Ok(quote);
        }
        match self.inner.backend.invoice_status(&quote.lookup_id).await {
            Ok(InvoiceStatus::Paid) => self.mark_paid(quote).await,
            Ok(_) => Ok(quote),
            Err(err) => {
                tracing::warn!(quote = %quote.id, error = %err, "backend status check failed");
                Ok(quote)
            }
        }
    }

    async fn mark_paid(&self, quote: MintQuoteRecord) -> Result<MintQuoteRecord, Error> {
        if quote.state != MintQuoteState::Unpaid {
            return Ok(quote);
        }
        let updated = self
            .inner
            .store
            .mark_mint_quote_paid(&quote.id, unix_now())
            .await?
            .ok_or(Error::UnknownQuote)?;
        tracing::info!(quote = %updated.id, amount = updated.amount, "mint quote paid");
        self.record(Event::QuotePaid {
            unit: updated.unit.clone(),
            amount: updated.amount,
        });
        self.publish(MintEvent::MintQuote(quote_response(&updated)));
        Ok(updated)
    }
}

/// The wire form of a stored quote.
pub(crate) fn quote_response(quote: &MintQuoteRecord) -> MintQuoteBolt11Response<String> {
    let paid = match quote.state {
        MintQuoteState::Unpaid => 0,
        _ => quote.amount,
    };
    let issued = match quote.state {
        MintQuoteState::Issued => quote.amount,
        _ => 0,
    };
    MintQuoteBolt11Response {
        quote: quote.id.clone(),
        request: quote.request.clone(),
        amount: Some(Amount::from(quote.amount)),
        unit: Some(quote.unit.clone()),
        method: PaymentMethod::BOLT11,
        amount_paid: Amount::from(paid),
        amount_issued: Amount::from(issued),
        updated_at: quote.updated_at,
        state: quote.state,
        expiry: Some(quote.expiry),
        pubkey: quote.pubkey,
    }
}
