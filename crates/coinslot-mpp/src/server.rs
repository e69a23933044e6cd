//! The server side: [`CashuCharge`], an [`mpp::ChargeMethod`] that redeems tokens at their
//! mint into the server's own cdk wallets.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use cdk::mint_url::MintUrl;
use cdk::nuts::{nut10, CurrencyUnit, KeySetInfo, Token};
use cdk::wallet::{ReceiveOptions, Wallet};
use mpp::protocol::traits::ErrorCode;
use mpp::{ChargeMethod, ChargeRequest, PaymentCredential, Receipt, VerificationError};

use crate::method::{self, CashuPayload, MethodDetails, METHOD};

/// The `cashu` charge method for an mpp-rs server: a credential's token is checked against
/// the charge (a `cashuB` token of an accepted mint and unit, bearer proofs worth exactly
/// the amount plus their input fee) and then received into the wallet of its mint and
/// unit, which swaps it at the mint. The mint is what makes a token pay once: a token
/// spent before, here or anywhere, fails the swap and the credential is refused.
///
/// Cloning is cheap (the wallets are shared).
#[derive(Clone)]
pub struct CashuCharge {
    wallets: Arc<Vec<Wallet>>,
}

impl std::fmt::Debug for CashuCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CashuCharge")
            .field("mints", &self.mints())
            .finish()
    }
}

impl CashuCharge {
    /// Takes ecash of the mints and units of these wallets, into them.
    pub fn new(wallets: impl IntoIterator<Item = Wallet>) -> Self {
        Self {
            wallets: Arc::new(wallets.into_iter().collect()),
        }
    }

    /// The mints accepted.
    pub fn mints(&self) -> Vec<MintUrl> {
        let mut mints: Vec<MintUrl> = self.wallets.iter().map(|w| w.mint_url.clone()).collect();
        mints.dedup();
        mints
    }

    /// A charge of `amount` `unit` payable at every mint with a wallet in that unit; an
    /// error when there is none.
    pub fn charge_request(
        &self,
        amount: u64,
        unit: &CurrencyUnit,
    ) -> Result<ChargeRequest, VerificationError> {
        let mints: Vec<MintUrl> = self
            .wallets
            .iter()
            .filter(|w| w.unit == *unit)
            .map(|w| w.mint_url.clone())
            .collect();
        if mints.is_empty() {
            return Err(VerificationError::with_code(
                format!("no wallet takes {unit}"),
                ErrorCode::Internal,
            ));
        }
        Ok(method::charge_request(amount, unit, &mints))
    }

    fn wallet(&self, mint: &MintUrl, unit: &CurrencyUnit) -> Option<&Wallet> {
        self.wallets
            .iter()
            .find(|w| w.mint_url == *mint && w.unit == *unit)
    }

    /// Checks the credential against the charge, then redeems its token.
    async fn redeem(
        &self,
        credential: &PaymentCredential,
        request: &ChargeRequest,
    ) -> Result<Receipt, VerificationError> {
        let payload: CashuPayload = credential.payload_as().map_err(|e| {
            VerificationError::with_code(
                format!("expected a payload {{\"cashu_token\": \"cashuB…\"}}: {e}"),
                ErrorCode::InvalidPayload,
            )
        })?;
        let raw = payload.cashu_token.trim();
        if !raw.starts_with("cashuB") {
            return Err(VerificationError::with_code(
                "payload.cashu_token must be a cashuB token",
                ErrorCode::InvalidPayload,
            ));
        }
        let token = Token::from_str(raw).map_err(|e| {
            VerificationError::with_code(
                format!("the token does not decode: {e}"),
                ErrorCode::InvalidPayload,
            )
        })?;
        let amount: u64 = request.amount.parse().map_err(|_| {
            VerificationError::with_code(
                format!(
                    "the charge's amount `{}` is not a whole number",
                    request.amount
                ),
                ErrorCode::InvalidAmount,
            )
        })?;
        let unit = token.unit().unwrap_or_default();
        if unit.to_string() != request.currency {
            return Err(VerificationError::with_code(
                format!("the token is in {unit}, the charge in {}", request.currency),
                ErrorCode::CredentialMismatch,
            ));
        }
        let mint = token.mint_url().map_err(|e| {
            VerificationError::with_code(
                format!("the token's mint: {e}"),
                ErrorCode::InvalidPayload,
            )
        })?;
        let details = MethodDetails::of(request)
            .map_err(|e| VerificationError::with_code(e, ErrorCode::InvalidChallenge))?;
        let wallet = self
            .wallet(&mint, &unit)
            .filter(|_| details.accepts(&mint))
            .ok_or_else(|| {
                VerificationError::with_code(
                    format!("the token is from {mint}, not a mint this charge accepts"),
                    ErrorCode::CredentialMismatch,
                )
            })?;
        // The mint's keyset ids (a cashuB token may name them by their short form).
        let keysets: Vec<KeySetInfo> = wallet
            .get_keyset_fees_and_amounts()
            .await
            .map_err(|e| unavailable(&mint, &e))?
            .into_keys()
            .map(|id| KeySetInfo {
                id,
                unit: unit.clone(),
                active: true,
                input_fee_ppk: 0,
                final_expiry: None,
            })
            .collect();
        let proofs = token.proofs(&keysets).map_err(|e| {
            VerificationError::with_code(
                format!("the token names a keyset its mint does not know: {e}"),
                ErrorCode::CredentialMismatch,
            )
        })?;
        if proofs.is_empty() {
            return Err(VerificationError::with_code(
                "the token holds no proofs",
                ErrorCode::InvalidPayload,
            ));
        }
        if proofs
            .iter()
            .any(|p| nut10::Secret::try_from(&p.secret).is_ok())
        {
            return Err(VerificationError::with_code(
                "locked (NUT-10) proofs are not accepted: send plain bearer proofs",
                ErrorCode::CredentialMismatch,
            ));
        }
        let fee = u64::from(
            wallet
                .get_proofs_fee(&proofs)
                .await
                .map_err(|e| unavailable(&mint, &e))?
                .total,
        );
        let total: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        if Some(total) != amount.checked_add(fee) {
            return Err(VerificationError::with_code(
                format!(
                    "the token is worth {total} {unit}; this charge takes exactly {} (amount {amount} + input fee {fee}), with no change",
                    amount.saturating_add(fee)
                ),
                ErrorCode::InvalidAmount,
            ));
        }
        let received = wallet
            .receive(raw, ReceiveOptions::default())
            .await
            .map_err(|e| match e {
                cdk::Error::TokenAlreadySpent => VerificationError::with_code(
                    "the token is spent already",
                    ErrorCode::CredentialReplayed,
                ),
                cdk::Error::TokenPending => VerificationError::with_code(
                    "the token is being spent by another payment",
                    ErrorCode::CredentialReplayed,
                ),
                e if is_transient(&e) => unavailable(&mint, &e),
                e => VerificationError::with_code(
                    format!("the mint refused the token: {e}"),
                    ErrorCode::TransactionFailed,
                ),
            })?;
        tracing::info!(mint = %mint, unit = %unit, amount, received = u64::from(received), "cashu charge redeemed");
        let mut receipt = Receipt::success(METHOD, method::reference(raw));
        receipt.external_id = request.external_id.clone();
        Ok(receipt)
    }
}

/// Whether a wallet error is the mint being unreachable (the credential may be sent again).
fn is_transient(err: &cdk::Error) -> bool {
    matches!(err, cdk::Error::HttpError(..) | cdk::Error::Custom(_))
}

/// The mint could not be reached: nothing was spent, the same credential may be sent again.
fn unavailable(mint: &MintUrl, err: &cdk::Error) -> VerificationError {
    tracing::warn!(mint = %mint, error = %err, "cashu charge: the mint could not be reached");
    VerificationError::with_code(
        format!("the mint {mint} could not be reached: {err}"),
        ErrorCode::NetworkError,
    )
    .retryable()
}

impl ChargeMethod for CashuCharge {
    fn method(&self) -> &str {
        METHOD
    }

    /// A credential's request must accept no mint the route's request does not.
    fn validate_expected_request(
        &self,
        request: &ChargeRequest,
        expected: &ChargeRequest,
    ) -> Result<(), VerificationError> {
        let offered = MethodDetails::of(request)
            .map_err(|e| VerificationError::with_code(e, ErrorCode::InvalidChallenge))?;
        let allowed = MethodDetails::of(expected)
            .map_err(|e| VerificationError::with_code(e, ErrorCode::Internal))?;
        let foreign = offered.mints.iter().find(|m| {
            m.parse::<MintUrl>()
                .map_or(true, |mint| !allowed.accepts(&mint))
        });
        match foreign {
            Some(mint) => Err(VerificationError::with_code(
                format!("the challenge names a mint this route does not accept: {mint}"),
                ErrorCode::InvalidChallenge,
            )),
            None => Ok(()),
        }
    }

    fn verify(
        &self,
        credential: &PaymentCredential,
        request: &ChargeRequest,
    ) -> impl Future<Output = Result<Receipt, VerificationError>> + Send {
        let this = self.clone();
        let credential = credential.clone();
        let request = request.clone();
        async move { this.redeem(&credential, &request).await }
    }
}
