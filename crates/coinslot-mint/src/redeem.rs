//! Paying a service with ecash: proofs spent without outputs (the paywall's path), change,
//! refunds and payouts made by the mint itself, prepaid accounts, and receipts.
//!
//! Wallets move value with a swap (NUT-03), where they blind their own outputs. A paid HTTP
//! request has no outputs: the client hands over proofs and the service keeps their value.
//! Whatever goes back (change, a refund, a closed account's balance) is made by the mint
//! itself: it picks fresh secrets and computes `C = k·hash_to_curve(secret)` directly, one
//! point multiplication per proof instead of blinding, signing and unblinding. The mint knows
//! those secrets until the client swaps them, which a wallet's receive does at once; in a
//! closed loop the mint is the only party that could abuse that knowledge, and it is also the
//! party that honours the proofs.

use cashu::nuts::nut10::SpendingConditions;
use cashu::nuts::{CurrencyUnit, Id, Proof, ProofDleq, PublicKey};
use cashu::secret::Secret;
use cashu::{Amount, SECP256K1};
use sha2::{Digest, Sha256};

use crate::dhke::hash_to_curve;
use crate::error::Error;
use crate::keys::Keyring;
use crate::store::{
    AccountRecord, AccountWrite, AnswerRecord, Commit, PassRecord, PassWrite, ReceiptGuard,
    ReceiptRecord, ReceiptWrite,
};
use crate::verify::verify_inputs;
use crate::Mint;

/// Builds a receipt's data from the proofs the operation gives back (change or payout) and
/// the input fee, so the receipt can hold them and a retry can be answered with the same
/// proofs.
pub type ReceiptFn = Box<dyn Fn(&[Proof], u64) -> Vec<u8> + Send + Sync>;

/// What a payment must satisfy, and what it buys.
pub struct Payment {
    /// Unit of the price; every proof must be of it.
    pub unit: CurrencyUnit,
    /// What the proofs buy.
    pub buys: Purchase,
    /// Accept only proofs locked (NUT-11 P2PK) to the mint's key, so a token stolen in
    /// transit is worthless to the thief.
    pub require_lock: bool,
    /// A receipt inserted by the same commit as the spend (see [`Mint::receipt`]); the
    /// commit fails if one exists under its key already.
    pub receipt: Option<([u8; 32], ReceiptFn)>,
}

/// What a [`Payment`] buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// A price: this value is kept (net of the inputs' fees, as NUT-18 amounts are), the
    /// rest comes back as change.
    Price(u64),
    /// A deposit: everything above the fees is credited to this account; at least `min`.
    Deposit {
        /// The account credited (created if new).
        account: String,
        /// The smallest deposit accepted.
        min: u64,
    },
    /// Time on a pass: as many whole minutes as the proofs pay for (at least one), the
    /// rest back as change.
    Pass(PassPurchase),
}

/// Time bought on a pass by a [`Payment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassPurchase {
    /// The pass (new, or one to extend).
    pub id: String,
    /// The routes it opens.
    pub scope: String,
    /// Price of one minute, in the payment's unit.
    pub price_per_minute: u64,
    /// Seconds in a minute (60; shorter in tests).
    pub minute_secs: u64,
    /// A key the client sent (for lifecycle hooks).
    pub client_key: Option<String>,
}

impl std::fmt::Debug for Payment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payment")
            .field("unit", &self.unit)
            .field("buys", &self.buys)
            .field("require_lock", &self.require_lock)
            .field(
                "receipt",
                &self.receipt.as_ref().map(|(key, _)| hex::encode(key)),
            )
            .finish()
    }
}

/// What a payment did.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// Keyset of the first input (what the handler is told it was paid with).
    pub keyset_id: Id,
    /// Sum of the inputs.
    pub total: u64,
    /// Input fees (NUT-02), kept by the mint.
    pub fee: u64,
    /// Value kept for the price, or credited to the deposit account.
    pub kept: u64,
    /// Fresh proofs for `total - fee - kept`, made by the mint.
    pub change: Vec<Proof>,
    /// Minutes bought, for a pass.
    pub minutes: u64,
}

/// A proof as a `cashuB` token carries it, its signature `C` still in the token's 33-byte
/// encoding. Decoding `C` into a point costs a square root (4% of a paid request's CPU),
/// and a payment never needs the point: the mint checks the encoding of the `C` it expects
/// against these bytes. Plain proofs only: no witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedProof {
    /// The proof's value.
    pub amount: u64,
    /// Its keyset.
    pub keyset_id: Id,
    /// Its secret.
    pub secret: Secret,
    /// Its signature `C`, compressed.
    pub c: [u8; 33],
    /// Its DLEQ proof (NUT-12), when the token carries one.
    pub dleq: Option<ProofDleq>,
}

impl EncodedProof {
    /// The proof with `C` decoded; `None` if the bytes are no point.
    pub fn decode(self) -> Option<Proof> {
        let c = PublicKey::from_slice(&self.c).ok()?;
        Some(self.with_signature(c))
    }

    /// The proof, its `C` being `c` (which the mint checked is what the bytes encode).
    pub(crate) fn with_signature(self, c: PublicKey) -> Proof {
        let mut proof = Proof::new(Amount::from(self.amount), self.keyset_id, self.secret, c);
        proof.dleq = self.dleq;
        proof
    }
}

/// The proofs a payment spends: parsed, or as a token carried them ([`EncodedProof`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// Proofs of cashu's types.
    Proofs(Vec<Proof>),
    /// Plain proofs whose `C` is not decoded.
    Encoded(Vec<EncodedProof>),
}

impl From<Vec<Proof>> for Inputs {
    fn from(proofs: Vec<Proof>) -> Self {
        Self::Proofs(proofs)
    }
}

impl Inputs {
    /// How many proofs.
    pub fn len(&self) -> usize {
        match self {
            Self::Proofs(proofs) => proofs.len(),
            Self::Encoded(proofs) => proofs.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Their [`receipt_key`].
    pub fn receipt_key(&self) -> [u8; 32] {
        match self {
            Self::Proofs(proofs) => receipt_key(proofs),
            Self::Encoded(proofs) => key_of_secrets(proofs.iter().map(|p| &p.secret)),
        }
    }
}

/// The receipt key of a set of proofs: SHA-256 over their secrets in a canonical order.
/// The same proofs give the same key however the token was encoded or ordered.
pub fn receipt_key(proofs: &[Proof]) -> [u8; 32] {
    key_of_secrets(proofs.iter().map(|p| &p.secret))
}

fn key_of_secrets<'a>(secrets: impl Iterator<Item = &'a Secret>) -> [u8; 32] {
    let mut secrets: Vec<&[u8]> = secrets.map(Secret::as_bytes).collect();
    secrets.sort_unstable();
    let mut hash = Sha256::new();
    for secret in secrets {
        hash.update((secret.len() as u64).to_be_bytes());
        hash.update(secret);
    }
    hash.finalize().into()
}

/// How many tries a close gets when debits keep changing the balance under it.
const CLOSE_ATTEMPTS: usize = 8;

impl Mint {
    /// Spends `proofs` as a payment: verifies them (signatures, keysets, unit, duplicates,
    /// spending conditions), then in **one durable write** marks them spent, records the
    /// receipt and (for a deposit) credits the account. Overpayment comes back as change.
    /// On any error nothing was written and the proofs are still spendable, unless the error
    /// is [`Error::TokenAlreadySpent`].
    pub async fn redeem(
        &self,
        proofs: impl Into<Inputs>,
        payment: Payment,
    ) -> Result<Redeemed, Error> {
        let proofs = proofs.into();
        let ring = self.keyring();
        let limits = self.inner.config.limits.clone();
        let (own, own_pubkey) = (self.inner.identity.clone(), self.inner.pubkey);
        let weight = proofs.len();
        let expected_unit = payment.unit.clone();
        let require_lock = payment.require_lock;
        let given_key = payment.receipt.as_ref().map(|(key, _)| *key);
        let (inputs, key_of_inputs) = self
            .run_crypto(weight, {
                let ring = ring.clone();
                move || {
                    let (inputs, proofs) = match proofs {
                        Inputs::Proofs(proofs) => (verify_inputs(&ring, &proofs, &limits)?, proofs),
                        Inputs::Encoded(encoded) => {
                            let inputs = verify_inputs(&ring, &encoded, &limits)?;
                            let proofs = encoded
                                .into_iter()
                                .zip(&inputs.signatures)
                                .map(|(proof, c)| proof.with_signature(*c))
                                .collect::<Vec<_>>();
                            (inputs, proofs)
                        }
                    };
                    if inputs.unit != expected_unit {
                        return Err(Error::WrongUnit {
                            expected: expected_unit.to_string(),
                            found: inputs.unit.to_string(),
                        });
                    }
                    let key_of_inputs = given_key == Some(receipt_key(&proofs));
                    check_conditions(proofs, &own, own_pubkey, require_lock)?;
                    Ok((inputs, key_of_inputs))
                }
            })
            .await?;

        let paid = inputs.total.saturating_sub(inputs.fee);
        let required = match &payment.buys {
            Purchase::Price(amount) => *amount,
            Purchase::Deposit { min, .. } => *min,
            Purchase::Pass(pass) => pass.price_per_minute.max(1),
        };
        if paid < required || inputs.total < inputs.fee {
            return Err(Error::InsufficientPayment {
                paid,
                required,
                fee: inputs.fee,
            });
        }
        let (kept, change_amount, minutes) = match &payment.buys {
            Purchase::Price(amount) => (*amount, paid - amount, 0),
            Purchase::Deposit { .. } => (paid, 0, 0),
            Purchase::Pass(pass) => {
                let minutes = paid / pass.price_per_minute.max(1);
                let kept = minutes * pass.price_per_minute.max(1);
                (kept, paid - kept, minutes)
            }
        };
        // The commit checks the inputs again in any case; reading them first only spares
        // the signatures of change for a token already spent. Without change it would be a
        // store read per payment for nothing (4% of a paid request's CPU).
        if change_amount > 0 {
            self.ensure_unspent(&inputs.proofs).await?;
        }

        let change = if change_amount > 0 {
            let unit = payment.unit.clone();
            self.run_crypto(change_amount.count_ones() as usize, move || {
                make_proofs(&ring, &unit, change_amount)
            })
            .await?
        } else {
            Vec::new()
        };
        let receipt_data = payment
            .receipt
            .map(|(key, build)| (key, build(&change, inputs.fee)));
        let receipt = receipt_data.as_ref().map(|(key, data)| ReceiptWrite {
            key,
            created_at: crate::unix_now(),
            data,
            // The inputs' own key lets the store skip a lookup (see the guard).
            guard: if key_of_inputs {
                ReceiptGuard::OfInputs
            } else {
                ReceiptGuard::Absent
            },
        });
        let (account, pass) = match &payment.buys {
            Purchase::Price(_) => (None, None),
            Purchase::Deposit { account, .. } => {
                let credit = AccountWrite::Credit {
                    id: account,
                    unit: &payment.unit,
                    amount: kept,
                };
                (Some(credit), None)
            }
            Purchase::Pass(pass) => {
                let write = PassWrite {
                    id: &pass.id,
                    scope: &pass.scope,
                    unit: &payment.unit,
                    secs: minutes.saturating_mul(pass.minute_secs),
                    now: crate::unix_now(),
                    client_key: pass.client_key.as_deref(),
                };
                (None, Some(write))
            }
        };
        self.inner
            .store
            .commit(Commit {
                spend: &inputs.proofs,
                made: &change,
                receipt,
                account,
                pass,
                ..Commit::default()
            })
            .await?;
        self.publish_spent(&inputs.proofs);
        let keyset_id = inputs
            .proofs
            .first()
            .map(|p| p.keyset_id)
            .ok_or_else(|| Error::InvalidRequest("no inputs".into()))?;
        tracing::debug!(
            unit = %payment.unit,
            inputs = inputs.proofs.len(),
            total = inputs.total,
            fee = inputs.fee,
            kept,
            change = change_amount,
            deposit = matches!(payment.buys, Purchase::Deposit { .. }),
            "redeem"
        );
        Ok(Redeemed {
            keyset_id,
            total: inputs.total,
            fee: inputs.fee,
            kept,
            change,
            minutes,
        })
    }

    /// The pass with this id.
    pub async fn pass(&self, id: &str) -> Result<Option<PassRecord>, Error> {
        Ok(self.inner.store.pass(id).await?)
    }

    /// Revokes a pass (durably); the record after, `None` if there is no such pass.
    pub async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, Error> {
        let revoked = self.inner.store.revoke_pass(id).await?;
        if let Some(pass) = &revoked {
            self.record(crate::activity::Event::PassRevoked {
                id: pass.id.clone(),
                scope: pass.scope.clone(),
            });
        }
        Ok(revoked)
    }

    /// Passes running out after `expires_after` (Unix seconds), revoked ones included.
    pub async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, Error> {
        Ok(self.inner.store.passes(expires_after).await?)
    }

    /// Makes fresh proofs worth `amount` in `unit`'s active keyset (a refund or a payout).
    /// They are valid by their signature alone; record what they were for, and count them as
    /// issued, with [`Mint::update_receipt`] (or use [`Mint::issue_proofs`]).
    pub async fn make_proofs(&self, unit: &CurrencyUnit, amount: u64) -> Result<Vec<Proof>, Error> {
        if amount == 0 {
            return Ok(Vec::new());
        }
        let ring = self.keyring();
        let unit = unit.clone();
        self.run_crypto(amount.count_ones() as usize, move || {
            make_proofs(&ring, &unit, amount)
        })
        .await
    }

    /// A receipt written by [`Mint::redeem`], [`Mint::close_account`] or
    /// [`Mint::update_receipt`].
    pub async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, Error> {
        Ok(self.inner.store.receipt(key).await?)
    }

    /// Whether the store can take payments now ([`crate::MintStore::health`]): what readiness
    /// probes ask.
    pub async fn health(&self) -> Result<(), Error> {
        Ok(self.inner.store.health().await?)
    }

    /// Makes fresh proofs worth `amount` in `unit` and counts them as issued, durably: ecash
    /// the operator hands out (credit, vouchers). Recorded as a credit quote minted in the
    /// same write, so the audit sees where the value came from.
    pub async fn issue_proofs(
        &self,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<Vec<Proof>, Error> {
        let quote = self.credit_quote(unit, amount, "operator ecash")?;
        let proofs = self.make_proofs(unit, amount).await?;
        // A crash between these two writes leaves a paid quote nobody knows the id of: it
        // counts for nothing until minted, which cannot happen.
        self.inner.store.add_mint_quote(&quote).await?;
        self.inner
            .store
            .commit(Commit {
                made: &proofs,
                issue_quote: Some(&quote.id),
                ..Commit::default()
            })
            .await?;
        Ok(proofs)
    }

    /// Writes a receipt (as its guard allows), durably, counting `made` (proofs from
    /// [`Mint::make_proofs`] the receipt hands out) as issued in the same write. A failed
    /// guard is [`Error::ReceiptChanged`], with nothing written.
    pub async fn update_receipt(
        &self,
        receipt: ReceiptWrite<'_>,
        made: &[Proof],
    ) -> Result<(), Error> {
        self.write_receipt(receipt, made, None, None).await
    }

    /// One durable write of a payment's records: its receipt (as its guard allows), the
    /// proofs it hands out (`made`, counted as issued), an answer kept for retries, and a
    /// debit or credit of an account. Nothing is written unless all of it is.
    pub async fn write_receipt(
        &self,
        receipt: ReceiptWrite<'_>,
        made: &[Proof],
        answer: Option<crate::store::AnswerWrite<'_>>,
        account: Option<AccountWrite<'_>>,
    ) -> Result<(), Error> {
        Ok(self
            .inner
            .store
            .commit(Commit {
                receipt: Some(receipt),
                made,
                answer,
                account,
                ..Commit::default()
            })
            .await?)
    }

    /// Writes a receipt (as its guard allows) and an answer kept for retries, atomically
    /// but without waiting for the disk: records whose loss in a crash costs no value (a
    /// run's lease, the answer it gave). Ordered with every other write.
    pub async fn note_receipt(
        &self,
        receipt: ReceiptWrite<'_>,
        answer: Option<crate::store::AnswerWrite<'_>>,
    ) -> Result<(), Error> {
        Ok(self
            .inner
            .store
            .commit(Commit {
                receipt: Some(receipt),
                answer,
                lazy: true,
                ..Commit::default()
            })
            .await?)
    }

    /// The answer kept under a receipt's key, if it is kept and not expired at `now`.
    pub async fn answer(&self, key: &[u8; 32], now: u64) -> Result<Option<Vec<u8>>, Error> {
        let record: Option<AnswerRecord> = self.inner.store.answer(key).await?;
        Ok(record.filter(|a| a.expires_at >= now).map(|a| a.data))
    }

    /// Deletes receipts created before `created_before` (Unix seconds).
    pub async fn prune_receipts(&self, created_before: u64) -> Result<u64, Error> {
        Ok(self.inner.store.prune_receipts(created_before).await?)
    }

    /// Deletes answers that expired before `expired_before` (Unix seconds).
    pub async fn prune_answers(&self, expired_before: u64) -> Result<u64, Error> {
        Ok(self.inner.store.prune_answers(expired_before).await?)
    }

    /// A prepaid account.
    pub async fn account(&self, id: &str) -> Result<Option<AccountRecord>, Error> {
        Ok(self.inner.store.account(id).await?)
    }

    /// Takes `amount` from an account atomically; returns the new balance. Not flushed before
    /// it returns: a crash may forget the newest debits, in the customer's favour.
    pub async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, Error> {
        Ok(self.inner.store.debit_account(id, unit, amount).await?)
    }

    /// Adds `amount` to an account (creating it), durably, with an optional receipt.
    pub async fn credit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
        receipt: Option<ReceiptWrite<'_>>,
    ) -> Result<(), Error> {
        Ok(self
            .inner
            .store
            .commit(Commit {
                account: Some(AccountWrite::Credit { id, unit, amount }),
                receipt,
                ..Commit::default()
            })
            .await?)
    }

    /// Closes an account and pays its balance out as fresh proofs, in one durable write with
    /// the receipt `receipt` builds from them (so a retried close can return the same proofs).
    pub async fn close_account(
        &self,
        id: &str,
        receipt: Option<([u8; 32], ReceiptFn)>,
    ) -> Result<(AccountRecord, Vec<Proof>), Error> {
        for _ in 0..CLOSE_ATTEMPTS {
            let account = self.account(id).await?.ok_or(Error::AccountNotFound)?;
            let proofs = self.make_proofs(&account.unit, account.balance).await?;
            let data = receipt
                .as_ref()
                .map(|(key, build)| (*key, build(&proofs, 0)));
            let write = data.as_ref().map(|(key, data)| ReceiptWrite {
                key,
                created_at: crate::unix_now(),
                data,
                guard: ReceiptGuard::Any,
            });
            let closed = self
                .inner
                .store
                .commit(Commit {
                    account: Some(AccountWrite::Close {
                        id,
                        balance: account.balance,
                    }),
                    made: &proofs,
                    receipt: write,
                    ..Commit::default()
                })
                .await;
            match closed {
                Ok(()) => return Ok((account, proofs)),
                Err(crate::StoreError::BalanceChanged) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Storage(
            "account kept changing while it was being closed".into(),
        ))
    }

    /// A 32-byte secret derived from the mint's seed for `purpose` (stable across restarts).
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        self.inner.seed.derive_secret(purpose)
    }
}

/// Checks NUT-10 spending conditions of proofs spent without outputs. A proof locked to the
/// mint's own key is signed by the mint (it is the key holder) and then verified like any
/// other, so multisig and locktime rules apply unchanged. SIG_ALL needs outputs to sign
/// over, so it cannot pay a request.
fn check_conditions(
    proofs: Vec<Proof>,
    own: &cashu::nuts::SecretKey,
    // Given, not derived from `own`: a generator multiplication per payment cost a third of
    // the proof's own verification.
    own_pubkey: cashu::nuts::PublicKey,
    require_lock: bool,
) -> Result<(), Error> {
    // Compared by x only: NUT-11 signatures are BIP-340 (x-only), so a lock to `03 || x` is
    // a lock to our `02 || x` too (mints from before the identity was made even used both).
    let own_x = own_pubkey.x_only_public_key();
    for mut proof in proofs {
        let conditions = SpendingConditions::try_from(&proof.secret).ok();
        let locked_to_us = match &conditions {
            Some(SpendingConditions::P2PKConditions { .. }) => conditions
                .as_ref()
                .and_then(SpendingConditions::pubkeys)
                .is_some_and(|keys| keys.iter().any(|k| k.x_only_public_key() == own_x)),
            _ => false,
        };
        if require_lock && !locked_to_us {
            return Err(Error::WitnessMissingOrInvalid(format!(
                "proofs must be locked (P2PK) to this service's key {}",
                own_pubkey.to_hex()
            )));
        }
        let result = match conditions {
            None => Ok(()),
            Some(SpendingConditions::P2PKConditions { .. }) => {
                if locked_to_us {
                    proof
                        .sign_p2pk(own.clone())
                        .map_err(|e| Error::WitnessMissingOrInvalid(e.to_string()))?;
                }
                proof.verify_p2pk().map_err(|e| e.to_string())
            }
            Some(SpendingConditions::HTLCConditions { .. }) => {
                proof.verify_htlc().map_err(|e| e.to_string())
            }
        };
        result.map_err(Error::WitnessMissingOrInvalid)?;
    }
    Ok(())
}

/// Proofs for `amount` in the unit's active keyset, one per set bit: `C = k·Y`.
fn make_proofs(ring: &Keyring, unit: &CurrencyUnit, amount: u64) -> Result<Vec<Proof>, Error> {
    let keyset = ring
        .active
        .get(unit)
        .ok_or_else(|| Error::UnsupportedUnit(unit.to_string()))?;
    let mut proofs = Vec::with_capacity(amount.count_ones() as usize);
    for bit in 0..64 {
        let value = 1u64 << bit;
        if amount & value == 0 {
            continue;
        }
        let k = keyset.secret_key(value)?;
        let secret = Secret::generate();
        let y = hash_to_curve(secret.as_bytes())?;
        let c = y
            .mul_tweak(&SECP256K1, &k.as_scalar())
            .map_err(|e| Error::InvalidRequest(format!("cannot make proof: {e}")))?;
        proofs.push(Proof::new(
            Amount::from(value),
            keyset.record.id,
            secret,
            c.into(),
        ));
    }
    Ok(proofs)
}
