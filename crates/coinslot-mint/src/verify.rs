//! Checks shared by every operation that takes inputs or signs outputs.
//!
//! Verification uses the process-wide secp256k1 context (`cashu::SECP256K1`): building a
//! context per proof, as `cashu::dhke::verify_message` does, costs more than the check itself.

use std::collections::HashSet;

use cashu::dhke::{hash_to_curve, sign_message};
use cashu::nuts::{BlindSignature, BlindedMessage, CurrencyUnit, Proof};
use cashu::{Amount, SECP256K1};

use crate::error::Error;
use crate::keys::Keyring;
use crate::store::{point_key, IssuedSignature, SpentProof};
use crate::Limits;

/// Inputs that passed every check, ready to be marked spent.
#[derive(Debug)]
pub(crate) struct VerifiedInputs {
    pub unit: CurrencyUnit,
    pub proofs: Vec<SpentProof>,
    pub total: u64,
    pub fee: u64,
}

/// Checks inputs: count, sizes, keysets, one unit, no duplicates, valid signatures, and sums
/// them with their fee. Spending conditions (NUT-10/11/14) are checked by the caller, because
/// SIG_ALL covers the outputs too.
pub(crate) fn verify_inputs(
    ring: &Keyring,
    proofs: &[Proof],
    limits: &Limits,
) -> Result<VerifiedInputs, Error> {
    if proofs.is_empty() {
        return Err(Error::InvalidRequest("no inputs".into()));
    }
    if proofs.len() > limits.max_inputs {
        return Err(Error::MaxInputsExceeded {
            count: proofs.len(),
            max: limits.max_inputs,
        });
    }
    let mut unit: Option<&CurrencyUnit> = None;
    let mut seen = HashSet::with_capacity(proofs.len());
    let mut verified = Vec::with_capacity(proofs.len());
    let mut total: u64 = 0;
    let mut fee_ppk: u64 = 0;
    for proof in proofs {
        if proof.secret.as_bytes().len() > limits.max_secret_len {
            return Err(Error::InvalidRequest(format!(
                "secret longer than {} bytes",
                limits.max_secret_len
            )));
        }
        if let Some(witness) = &proof.witness {
            let len = serde_json::to_vec(witness)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if len > limits.max_witness_len {
                return Err(Error::InvalidRequest(format!(
                    "witness longer than {} bytes",
                    limits.max_witness_len
                )));
            }
        }
        let keyset = ring.get(&proof.keyset_id)?;
        match unit {
            None => unit = Some(&keyset.record.unit),
            Some(u) if *u != keyset.record.unit => return Err(Error::MultipleUnits),
            Some(_) => {}
        }
        let amount = u64::from(proof.amount);
        let secret_key = keyset.secret_key(amount)?;
        let y = hash_to_curve(proof.secret.as_bytes()).map_err(|_| Error::TokenNotVerified)?;
        if !seen.insert(point_key(&y)) {
            return Err(Error::DuplicateInputs);
        }
        let expected = y
            .mul_tweak(&SECP256K1, &secret_key.as_scalar())
            .map_err(|_| Error::TokenNotVerified)?;
        if expected != *proof.c {
            return Err(Error::TokenNotVerified);
        }
        total = total.checked_add(amount).ok_or_else(overflow)?;
        fee_ppk = fee_ppk
            .checked_add(keyset.record.input_fee_ppk)
            .ok_or_else(overflow)?;
        verified.push(SpentProof {
            y,
            keyset_id: proof.keyset_id,
            amount,
        });
    }
    let unit = unit
        .cloned()
        .ok_or_else(|| Error::InvalidRequest("no inputs".into()))?;
    Ok(VerifiedInputs {
        unit,
        proofs: verified,
        total,
        fee: fee_of(fee_ppk),
    })
}

/// NUT-02: the input fee of proofs whose keysets charge `ppk` in all (parts per thousand).
pub(crate) fn fee_of(ppk: u64) -> u64 {
    ppk.div_ceil(1000)
}

/// Checks outputs: count, active keysets of one unit, amounts the keyset signs, no duplicate
/// `B_`. Returns their unit (`None` for no outputs) and sum.
pub(crate) fn verify_outputs(
    ring: &Keyring,
    outputs: &[BlindedMessage],
    limits: &Limits,
) -> Result<(Option<CurrencyUnit>, u64), Error> {
    if outputs.len() > limits.max_outputs {
        return Err(Error::MaxOutputsExceeded {
            count: outputs.len(),
            max: limits.max_outputs,
        });
    }
    let mut unit: Option<&CurrencyUnit> = None;
    let mut seen = HashSet::with_capacity(outputs.len());
    let mut total: u64 = 0;
    for output in outputs {
        let keyset = ring.get(&output.keyset_id)?;
        if !keyset.record.active {
            return Err(Error::KeysetInactive(output.keyset_id.to_string()));
        }
        match unit {
            None => unit = Some(&keyset.record.unit),
            Some(u) if *u != keyset.record.unit => return Err(Error::MultipleUnits),
            Some(_) => {}
        }
        let amount = u64::from(output.amount);
        keyset.secret_key(amount)?;
        if !seen.insert(point_key(&output.blinded_secret)) {
            return Err(Error::DuplicateOutputs);
        }
        total = total.checked_add(amount).ok_or_else(overflow)?;
    }
    Ok((unit.cloned(), total))
}

/// Signs verified outputs: `C_ = k·B_` with a DLEQ proof (NUT-12) on each.
pub(crate) fn sign_outputs(
    ring: &Keyring,
    outputs: &[BlindedMessage],
) -> Result<Vec<IssuedSignature>, Error> {
    outputs
        .iter()
        .map(|output| {
            let keyset = ring.get(&output.keyset_id)?;
            let amount = u64::from(output.amount);
            let k = keyset.secret_key(amount)?;
            let c = sign_message(k, &output.blinded_secret)
                .map_err(|e| Error::InvalidRequest(format!("cannot sign output: {e}")))?;
            let signature = BlindSignature::new(
                Amount::from(amount),
                c,
                output.keyset_id,
                &output.blinded_secret,
                k,
            )
            .map_err(|e| Error::InvalidRequest(format!("cannot sign output: {e}")))?;
            Ok(IssuedSignature {
                blinded: output.blinded_secret,
                signature,
            })
        })
        .collect()
}

fn overflow() -> Error {
    Error::InvalidRequest("amounts overflow".into())
}
