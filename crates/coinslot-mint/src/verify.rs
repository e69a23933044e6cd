//! Checks shared by every operation that takes inputs or signs outputs.
//!
//! Verification uses the process-wide secp256k1 context (`cashu::SECP256K1`): building a
//! context per proof, as `cashu::dhke::verify_message` does, costs more than the check itself.

use std::collections::HashSet;

use bitcoin::hashes::hmac::{Hmac, HmacEngine};
use bitcoin::hashes::{sha256, Hash, HashEngine};
use cashu::dhke::hash_e;
use cashu::nuts::nut01::MintKeyPair;
use cashu::nuts::nut12::BlindSignatureDleq;
use cashu::nuts::{
    BlindSignature, BlindedMessage, CurrencyUnit, Id, Proof, PublicKey, SecretKey, Witness,
};
use cashu::secret::Secret;
use cashu::{Amount, SECP256K1};

use crate::dhke::hash_to_curve;
use crate::error::Error;
use crate::keys::Keyring;
use crate::redeem::EncodedProof;
use crate::store::{point_key, IssuedSignature, SpentProof};
use crate::Limits;

/// Inputs that passed every check, ready to be marked spent.
#[derive(Debug)]
pub(crate) struct VerifiedInputs {
    pub unit: CurrencyUnit,
    pub proofs: Vec<SpentProof>,
    /// Each input's signature `C`, as checked (`k·Y`).
    pub signatures: Vec<PublicKey>,
    pub total: u64,
    pub fee: u64,
}

/// What the checks read of an input, whichever form it came in: a [`Proof`], or an
/// [`EncodedProof`] whose `C` is still the token's 33 bytes.
pub(crate) trait Input {
    fn secret(&self) -> &Secret;
    fn keyset_id(&self) -> Id;
    fn amount(&self) -> u64;
    fn witness(&self) -> Option<&Witness>;
    /// Whether the input's `C` is `signature`, the one its secret must have.
    fn is_signed_with(&self, signature: &PublicKey) -> bool;
}

impl Input for Proof {
    fn secret(&self) -> &Secret {
        &self.secret
    }
    fn keyset_id(&self) -> Id {
        self.keyset_id
    }
    fn amount(&self) -> u64 {
        self.amount.into()
    }
    fn witness(&self) -> Option<&Witness> {
        self.witness.as_ref()
    }
    fn is_signed_with(&self, signature: &PublicKey) -> bool {
        self.c == *signature
    }
}

impl Input for EncodedProof {
    fn secret(&self) -> &Secret {
        &self.secret
    }
    fn keyset_id(&self) -> Id {
        self.keyset_id
    }
    fn amount(&self) -> u64 {
        self.amount
    }
    fn witness(&self) -> Option<&Witness> {
        None
    }
    fn is_signed_with(&self, signature: &PublicKey) -> bool {
        // The expected point encoded, where decoding `C` would cost a square root.
        signature.to_bytes() == self.c
    }
}

/// Checks inputs: count, sizes, keysets, one unit, no duplicates, valid signatures, and sums
/// them with their fee. Spending conditions (NUT-10/11/14) are checked by the caller, because
/// SIG_ALL covers the outputs too.
pub(crate) fn verify_inputs<I: Input>(
    ring: &Keyring,
    proofs: &[I],
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
    let mut signatures = Vec::with_capacity(proofs.len());
    let mut total: u64 = 0;
    let mut fee_ppk: u64 = 0;
    for proof in proofs {
        if proof.secret().as_bytes().len() > limits.max_secret_len {
            return Err(Error::InvalidRequest(format!(
                "secret longer than {} bytes",
                limits.max_secret_len
            )));
        }
        if let Some(witness) = proof.witness() {
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
        let keyset = ring.get(&proof.keyset_id())?;
        match unit {
            None => unit = Some(&keyset.record.unit),
            Some(u) if *u != keyset.record.unit => return Err(Error::MultipleUnits),
            Some(_) => {}
        }
        let amount = proof.amount();
        let secret_key = keyset.secret_key(amount)?;
        let y = hash_to_curve(proof.secret().as_bytes())?;
        if !seen.insert(point_key(&y)) {
            return Err(Error::DuplicateInputs);
        }
        let expected = y
            .mul_tweak(&SECP256K1, &secret_key.as_scalar())
            .map_err(|_| Error::TokenNotVerified)?;
        let expected = PublicKey::from(expected);
        if !proof.is_signed_with(&expected) {
            return Err(Error::TokenNotVerified);
        }
        signatures.push(expected);
        total = total.checked_add(amount).ok_or_else(overflow)?;
        fee_ppk = fee_ppk
            .checked_add(keyset.record.input_fee_ppk)
            .ok_or_else(overflow)?;
        verified.push(SpentProof {
            y,
            keyset_id: proof.keyset_id(),
            amount,
        });
    }
    let unit = unit
        .cloned()
        .ok_or_else(|| Error::InvalidRequest("no inputs".into()))?;
    Ok(VerifiedInputs {
        unit,
        proofs: verified,
        signatures,
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
            let pair = keyset.key_pair(u64::from(output.amount))?;
            let signature = sign_with_dleq(
                pair,
                output.amount,
                output.keyset_id,
                &output.blinded_secret,
            )?;
            Ok(IssuedSignature {
                blinded: output.blinded_secret,
                signature,
            })
        })
        .collect()
}

/// `C_ = k·B_` with its DLEQ proof, the same bytes as cashu's `BlindSignature::new` (same
/// deterministic nonce), but with the keyset's public key `A = k·G` taken from the keyset:
/// `BlindSignature::new` computes it twice per signature, two generator multiplications,
/// a quarter of a swap's crypto.
pub(crate) fn sign_with_dleq(
    pair: &MintKeyPair,
    amount: Amount,
    keyset_id: Id,
    blinded: &PublicKey,
) -> Result<BlindSignature, Error> {
    let failed =
        |e: cashu::nuts::nut01::Error| Error::InvalidRequest(format!("cannot sign output: {e}"));
    let (k, a) = (&pair.secret_key, pair.public_key);
    let c: PublicKey = blinded
        .mul_tweak(&SECP256K1, &k.as_scalar())
        .map_err(|e| failed(e.into()))?
        .into();
    // NUT-12's nonce: HMAC-SHA256 keyed by k over a tag, A, B_, C_ and a counter, the first
    // that is a valid scalar.
    let (a_bytes, b_bytes, c_bytes) = (
        a.to_uncompressed_bytes(),
        blinded.to_uncompressed_bytes(),
        c.to_uncompressed_bytes(),
    );
    let mut nonce = None;
    for counter in 0..=u8::MAX {
        let mut engine = HmacEngine::<sha256::Hash>::new(k.as_secret_bytes());
        for part in [
            &b"Cashu_DLEQ_R_v1"[..],
            &a_bytes,
            &b_bytes,
            &c_bytes,
            &[counter],
        ] {
            engine.input(part);
        }
        if let Ok(r) = SecretKey::from_slice(&Hmac::from_engine(engine).to_byte_array()) {
            nonce = Some(r);
            break;
        }
    }
    let r =
        nonce.ok_or_else(|| Error::InvalidRequest("cannot sign output: no DLEQ nonce".into()))?;
    let r1 = r.public_key();
    let r2: PublicKey = blinded
        .mul_tweak(&SECP256K1, &r.as_scalar())
        .map_err(|e| failed(e.into()))?
        .into();
    let e = SecretKey::from_slice(&hash_e([r1, r2, a, c])).map_err(failed)?;
    let s1: SecretKey = e
        .mul_tweak(&k.as_scalar())
        .map_err(|e| failed(e.into()))?
        .into();
    let s: SecretKey = r
        .add_tweak(&s1.to_scalar())
        .map_err(|e| failed(e.into()))?
        .into();
    Ok(BlindSignature {
        amount,
        keyset_id,
        c,
        dleq: Some(BlindSignatureDleq { e, s }),
    })
}

fn overflow() -> Error {
    Error::InvalidRequest("amounts overflow".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashu::dhke::blind_message;
    use cashu::secret::Secret;

    #[test]
    fn signatures_match_cashu_and_verify() {
        for _ in 0..32 {
            let secret_key = SecretKey::generate();
            let pair = MintKeyPair {
                public_key: secret_key.public_key(),
                secret_key,
            };
            let id = Id::from_bytes(&[0, 1, 2, 3, 4, 5, 6, 7]).expect("id");
            let (blinded, _) = blind_message(Secret::generate().as_bytes(), None).expect("B_");
            let ours = sign_with_dleq(&pair, Amount::from(8), id, &blinded).expect("signs");
            let c = cashu::dhke::sign_message(&pair.secret_key, &blinded).expect("C_");
            let theirs = BlindSignature::new(Amount::from(8), c, id, &blinded, &pair.secret_key)
                .expect("cashu");
            assert_eq!(ours, theirs);
            ours.verify_dleq(pair.public_key, blinded)
                .expect("the DLEQ proof verifies");
        }
    }
}
