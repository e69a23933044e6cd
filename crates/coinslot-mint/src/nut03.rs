//! NUT-03: swap inputs for freshly signed outputs of equal value (minus fees).

use cashu::nuts::nut10::SpendingConditionVerification;
use cashu::nuts::{SwapRequest, SwapResponse};

use crate::activity::Event;
use crate::error::Error;
use crate::store::Commit;
use crate::verify::{sign_outputs, verify_inputs, verify_outputs};
use crate::Mint;

impl Mint {
    /// Swaps proofs for new signatures. All checks run in memory; then one atomic, durable
    /// write marks every input spent and records every signature. If that write finds an
    /// input already spent (a concurrent swap won), the signatures are thrown away unsent.
    pub async fn swap(&self, request: SwapRequest) -> Result<SwapResponse, Error> {
        let ring = self.keyring();
        let limits = self.inner.config.limits.clone();
        let weight = request.inputs().len();
        let (request, inputs) = self
            .run_crypto(weight, {
                let ring = ring.clone();
                move || {
                    let inputs = verify_inputs(&ring, request.inputs(), &limits)?;
                    let (unit, outputs_total) = verify_outputs(&ring, request.outputs(), &limits)?;
                    if unit.is_some_and(|unit| unit != inputs.unit) {
                        return Err(Error::UnitMismatch);
                    }
                    let expected = outputs_total
                        .checked_add(inputs.fee)
                        .ok_or_else(|| Error::InvalidRequest("amounts overflow".into()))?;
                    if expected != inputs.total {
                        return Err(Error::TransactionUnbalanced {
                            inputs: inputs.total,
                            outputs: outputs_total,
                            fee: inputs.fee,
                        });
                    }
                    request
                        .verify_spending_conditions()
                        .map_err(|e| Error::WitnessMissingOrInvalid(e.to_string()))?;
                    Ok((request, inputs))
                }
            })
            .await?;

        // Cheap reads first, so a replayed request costs no signing.
        self.ensure_unspent(&inputs.proofs).await?;
        self.ensure_unsigned(request.outputs()).await?;

        let outputs = request.outputs().clone();
        let signed = self
            .run_crypto(outputs.len(), move || sign_outputs(&ring, &outputs))
            .await?;
        self.inner
            .store
            .commit(Commit {
                spend: &inputs.proofs,
                issue: &signed,
                issue_quote: None,
                ..Commit::default()
            })
            .await?;
        self.publish_spent(&inputs.proofs);
        self.record(Event::Swapped {
            unit: inputs.unit.clone(),
            amount: inputs.total,
            fee: inputs.fee,
        });
        tracing::debug!(
            unit = %inputs.unit,
            inputs = inputs.proofs.len(),
            outputs = signed.len(),
            amount = inputs.total,
            fee = inputs.fee,
            "swap"
        );
        Ok(SwapResponse {
            signatures: signed.into_iter().map(|s| s.signature).collect(),
        })
    }
}
