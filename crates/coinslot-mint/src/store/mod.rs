//! The storage trait behind the mint, and an in-memory implementation.
//!
//! The trait is deliberately small: the mint does all verification and signing in memory and
//! then hands storage **one atomic write** per operation ([`MintStore::commit`]): mark inputs
//! spent, record issued signatures, and (for a mint) move the quote from `PAID` to `ISSUED`.
//! Either all of it happens, durably, or none of it does. Uniqueness of spent `Y`s and of
//! signed `B_`s inside that write is the whole double-spend guard, so it must hold across
//! threads (and, for shared databases, across processes).
//!
//! Points are keyed by their compressed 33-byte encoding after parsing, so `02ab…` and `02AB…`
//! can never be two different keys.
//!
//! Beside the mint's own records, a store keeps these for the services the mint sells to (the
//! paywall layer):
//! - **receipts**: what a payment bought, keyed by a hash of the spent proofs, written in the
//!   same commit as the spend, so a retried request finds the payment it already made. Each
//!   write bumps the receipt's version, and a write can be guarded ([`ReceiptGuard`]): only if
//!   no receipt exists, or only if it still has the version the writer read. That guard is
//!   what makes "one payment, one run" hold across threads and instances: two writers that
//!   read the same receipt cannot both move it on;
//! - **stored answers**: the response a paid request got, kept until it expires so a retry of
//!   the same request is answered without running it again ([`AnswerWrite`]);
//! - **accounts**: prepaid balances. A credit (deposit, refund) is part of a durable commit; a
//!   debit ([`MintStore::debit_account`]) is atomic but need not be durable on return: a crash
//!   may forget the latest debits (the customer keeps that value), never a credit. A debit
//!   inside a commit ([`AccountWrite::Debit`]) is durable with the rest of the commit.
//!
//! Every implementation must pass the `conformance` suite (enable feature `conformance`).

use std::collections::BTreeMap;

use cashu::nuts::{BlindSignature, CurrencyUnit, Id, MintQuoteState, Proof, PublicKey};
use serde::{Deserialize, Serialize};

pub mod memory;

#[cfg(feature = "conformance")]
pub mod conformance;

/// Errors a store can return. The first five are outcomes of [`MintStore::commit`] that the
/// mint turns into Cashu errors; the rest are failures of the storage itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An input was already spent; nothing was written.
    #[error("proof {0} is already spent")]
    AlreadySpent(String),
    /// An output was already signed; nothing was written.
    #[error("blinded message {0} is already signed")]
    AlreadySigned(String),
    /// The quote to issue does not exist.
    #[error("quote not found")]
    QuoteNotFound,
    /// The quote to issue is not paid.
    #[error("quote is not paid")]
    QuoteNotPaid,
    /// The quote to issue was issued before.
    #[error("quote already issued")]
    QuoteAlreadyIssued,
    /// A record with this key exists already.
    #[error("duplicate record: {0}")]
    Duplicate(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// No account with this id.
    #[error("account not found")]
    AccountNotFound,
    /// The account holds less than the debit.
    #[error("insufficient balance: {balance}")]
    InsufficientBalance {
        /// What the account holds.
        balance: u64,
    },
    /// The account exists in another unit.
    #[error("account is in unit {0}")]
    AccountUnitMismatch(String),
    /// A close named a balance the account no longer has (a debit or credit came between).
    #[error("account balance changed")]
    BalanceChanged,
    /// A guarded receipt write found another version than the one it expected (someone else
    /// wrote the receipt since it was read), or a receipt where it expected none.
    #[error("receipt changed")]
    ReceiptChanged,
    /// The pass to extend was revoked.
    #[error("pass is revoked")]
    PassRevoked,
    /// The pass to extend exists with another scope or unit.
    #[error("pass belongs to scope {0}")]
    PassMismatch(String),
    /// The underlying storage failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Which version of NUT-02 keyset id a keyset uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeysetIdVersion {
    /// `00` + 7 bytes of sha256 over the keys (understood by every wallet).
    V1,
    /// `01` + 32 bytes of sha256 over keys, unit, fee and expiry (NUT-02 v2).
    #[default]
    V2,
}

/// What is stored about a keyset. The private keys are not stored: they are re-derived from
/// the seed and `derivation_index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetRecord {
    /// The NUT-02 keyset id.
    pub id: Id,
    /// The unit of this keyset.
    pub unit: CurrencyUnit,
    /// Rotation counter of this unit: keyset `n` of a unit derives from index `n`.
    pub derivation_index: u32,
    /// Fee per input in parts per thousand.
    pub input_fee_ppk: u64,
    /// Number of amounts: `1, 2, 4, … 2^(max_order-1)`.
    pub max_order: u8,
    /// Id version used to derive `id`.
    pub id_version: KeysetIdVersion,
    /// Whether this keyset signs new outputs. Inactive keysets still redeem.
    pub active: bool,
    /// Unix time of creation.
    pub created_at: u64,
}

/// A bolt11 mint quote (NUT-04/NUT-23) as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MintQuoteRecord {
    /// Quote id handed to the wallet.
    pub id: String,
    /// Amount of ecash to issue, in `unit`.
    pub amount: u64,
    /// Unit of the ecash to issue.
    pub unit: CurrencyUnit,
    /// The BOLT11 invoice to pay.
    pub request: String,
    /// The backend's handle for the invoice (payment hash).
    pub lookup_id: String,
    /// UNPAID → PAID → ISSUED.
    pub state: MintQuoteState,
    /// Unix time until which the invoice can be paid.
    pub expiry: u64,
    /// Unix time of creation.
    pub created_at: u64,
    /// Unix time of the last state change.
    pub updated_at: u64,
    /// NUT-20: minting requires a signature by this key.
    pub pubkey: Option<PublicKey>,
}

/// A proof being spent, as recorded: its `Y` and what it was worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentProof {
    /// `Y = hash_to_curve(secret)`.
    pub y: PublicKey,
    /// Keyset of the proof.
    pub keyset_id: Id,
    /// Amount of the proof.
    pub amount: u64,
}

/// An output signed by the mint, recorded for NUT-09 restore and so it is never signed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedSignature {
    /// The blinded message `B_`.
    pub blinded: PublicKey,
    /// The signature `C_` with its DLEQ proof.
    pub signature: BlindSignature,
}

/// A receipt: opaque data its writer keeps about a payment, when it was first written, and
/// how many times it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecord {
    /// Unix time of the first write; receipts are pruned by it.
    pub created_at: u64,
    /// 1 after the first write, one more after each write since.
    pub version: u64,
    /// The writer's data.
    pub data: Vec<u8>,
}

/// What a receipt write expects to find; when it finds something else the whole commit
/// fails with [`StoreError::ReceiptChanged`] and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptGuard {
    /// Inserts or replaces, whatever is there.
    #[default]
    Any,
    /// Inserts only: there must be no receipt with this key.
    Absent,
    /// Inserts only, under the key of the commit's own inputs
    /// ([`receipt_key`](crate::receipt_key) of the proofs it spends): a receipt under that key
    /// is only ever written with their spend, so none can exist while they are unspent, and
    /// a store may let the spend's check stand for the receipt's (the sled store skips the
    /// lookup of a key it would not find). Otherwise as [`ReceiptGuard::Absent`].
    OfInputs,
    /// Replaces only the receipt at this version (a compare-and-swap).
    Version(u64),
}

impl ReceiptGuard {
    /// Whether the write only inserts: [`ReceiptGuard::Absent`] or [`ReceiptGuard::OfInputs`].
    pub fn inserts_only(self) -> bool {
        matches!(self, Self::Absent | Self::OfInputs)
    }
}

/// A receipt written (inserted or replaced) inside a [`Commit`]. The stored version becomes
/// one more than the replaced receipt's (1 for a new one).
#[derive(Debug, Clone, Copy)]
pub struct ReceiptWrite<'a> {
    /// The receipt's key (a hash of what was paid with).
    pub key: &'a [u8; 32],
    /// Unix time of the first write: a store keeps the first write's when a receipt is
    /// replaced (what it is pruned by), whatever a later write says.
    pub created_at: u64,
    /// The data to store.
    pub data: &'a [u8],
    /// What the write expects to find.
    pub guard: ReceiptGuard,
}

impl ReceiptWrite<'_> {
    /// Checks the guard against the stored version (`None`: no receipt); the version to
    /// store. The one rule every store applies.
    pub fn next_version(&self, stored: Option<u64>) -> Result<u64, StoreError> {
        match (self.guard, stored) {
            (ReceiptGuard::Any, stored) => Ok(stored.unwrap_or(0).saturating_add(1)),
            (ReceiptGuard::Absent | ReceiptGuard::OfInputs, None) => Ok(1),
            (ReceiptGuard::Version(expected), Some(found)) if expected == found => {
                Ok(found.saturating_add(1))
            }
            _ => Err(StoreError::ReceiptChanged),
        }
    }
}

/// A stored answer written inside a [`Commit`] (inserted or replaced), under the key of the
/// receipt it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct AnswerWrite<'a> {
    /// The receipt's key.
    pub key: &'a [u8; 32],
    /// Unix time after which the answer is no longer given (and may be pruned).
    pub expires_at: u64,
    /// The writer's encoding of the answer.
    pub data: &'a [u8],
}

/// A stored answer as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRecord {
    /// Unix time after which it is no longer given.
    pub expires_at: u64,
    /// The writer's encoding of the answer.
    pub data: Vec<u8>,
}

/// A prepaid balance in one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Unit of the balance.
    pub unit: CurrencyUnit,
    /// What the account holds.
    pub balance: u64,
    /// Unix time of the first credit.
    pub created_at: u64,
}

impl AccountRecord {
    /// A new, empty account in `unit`.
    pub fn new(unit: &CurrencyUnit) -> Self {
        Self {
            unit: unit.clone(),
            balance: 0,
            created_at: crate::unix_now(),
        }
    }

    /// The balance after adding `amount` in `unit`: the rule every store applies to a credit.
    pub fn credited(&self, unit: &CurrencyUnit, amount: u64) -> Result<u64, StoreError> {
        self.check_unit(unit)?;
        self.balance
            .checked_add(amount)
            .ok_or_else(|| StoreError::Backend("account balance overflows".into()))
    }

    /// The balance after taking `amount` in `unit`: the rule every store applies to a debit.
    pub fn debited(&self, unit: &CurrencyUnit, amount: u64) -> Result<u64, StoreError> {
        self.check_unit(unit)?;
        self.balance
            .checked_sub(amount)
            .ok_or(StoreError::InsufficientBalance {
                balance: self.balance,
            })
    }

    fn check_unit(&self, unit: &CurrencyUnit) -> Result<(), StoreError> {
        if self.unit == *unit {
            Ok(())
        } else {
            Err(StoreError::AccountUnitMismatch(self.unit.to_string()))
        }
    }
}

/// A change to an account inside a [`Commit`].
#[derive(Debug, Clone, Copy)]
pub enum AccountWrite<'a> {
    /// Adds `amount`, creating the account if there is none.
    /// [`StoreError::AccountUnitMismatch`] if it exists in another unit.
    Credit {
        /// Account id.
        id: &'a str,
        /// Unit of the credit.
        unit: &'a CurrencyUnit,
        /// Amount to add.
        amount: u64,
    },
    /// Removes the account if it holds exactly `balance` ([`StoreError::BalanceChanged`]
    /// otherwise, [`StoreError::AccountNotFound`] if there is none): the balance is paid out
    /// by the same commit.
    Close {
        /// Account id.
        id: &'a str,
        /// The balance being paid out.
        balance: u64,
    },
    /// Takes `amount` from the account, durably with the rest of the commit (a debit that
    /// buys a recorded run). Fails like [`MintStore::debit_account`].
    Debit {
        /// Account id.
        id: &'a str,
        /// Unit of the debit.
        unit: &'a CurrencyUnit,
        /// Amount to take.
        amount: u64,
    },
}

/// A setting every instance on the store shares (the price list), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRecord {
    /// Counts the writes: 1 for the first. An instance applies a version newer than the
    /// one it applied last, whatever order notifications arrive in.
    pub version: u64,
    /// Unix time of the last write.
    pub updated_at: u64,
    /// The writer's encoding of the setting.
    pub value: Vec<u8>,
}

/// What one route earned in one unit during one hour (the earnings ledger). Writes add to
/// the row ([`MintStore::add_earnings`]), so instances on one database keep one ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EarningsRecord {
    /// Unix time of the hour's start (a multiple of 3600).
    pub hour: u64,
    /// The unit.
    pub unit: String,
    /// The route's name (`GET /search`, `pass search`, …); empty when the price had none.
    pub route: String,
    /// Requests paid.
    pub requests: u64,
    /// Of those, the ones that failed and were refunded.
    pub failed: u64,
    /// Value kept when they were paid: prices (reservations, for metered ones) and fees.
    pub earned: u64,
    /// Value given back: refunds of failures and the unused part of reservations.
    pub refunded: u64,
}

impl EarningsRecord {
    /// What the route kept: `earned - refunded`.
    pub fn net(&self) -> u64 {
        self.earned.saturating_sub(self.refunded)
    }

    /// Adds `other`'s counts to this row's.
    pub fn add(&mut self, other: &EarningsRecord) {
        self.requests = self.requests.saturating_add(other.requests);
        self.failed = self.failed.saturating_add(other.failed);
        self.earned = self.earned.saturating_add(other.earned);
        self.refunded = self.refunded.saturating_add(other.refunded);
    }
}

/// A time pass as stored: the routes it opens (a scope) and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassRecord {
    /// Pass id (random, in the pass credential).
    pub id: String,
    /// Name of the routes it opens.
    pub scope: String,
    /// Unit it was paid in.
    pub unit: CurrencyUnit,
    /// Unix time it runs out.
    pub expires_at: u64,
    /// Revoked by the operator: it opens nothing any more.
    pub revoked: bool,
    /// Unix time of the first purchase.
    pub created_at: u64,
    /// A key the client sent with the purchase (e.g. a WireGuard public key), for hooks.
    pub client_key: Option<String>,
}

/// A pass bought or extended inside a [`Commit`]: a new pass runs `secs` from `now`; an
/// existing one runs `secs` longer from its expiry, or from `now` if it has run out.
/// Fails with [`StoreError::PassRevoked`] or [`StoreError::PassMismatch`] (other scope or
/// unit), writing nothing.
#[derive(Debug, Clone, Copy)]
pub struct PassWrite<'a> {
    /// Pass id.
    pub id: &'a str,
    /// Its scope.
    pub scope: &'a str,
    /// The unit paid in.
    pub unit: &'a CurrencyUnit,
    /// Seconds bought.
    pub secs: u64,
    /// Unix time of the purchase.
    pub now: u64,
    /// A client key to remember (kept if `None`).
    pub client_key: Option<&'a str>,
}

impl PassWrite<'_> {
    /// The record after this write, given what was stored.
    pub fn apply(&self, stored: Option<PassRecord>) -> Result<PassRecord, StoreError> {
        match stored {
            None => Ok(PassRecord {
                id: self.id.to_string(),
                scope: self.scope.to_string(),
                unit: self.unit.clone(),
                expires_at: self.now.saturating_add(self.secs),
                revoked: false,
                created_at: self.now,
                client_key: self.client_key.map(str::to_string),
            }),
            Some(pass) if pass.revoked => Err(StoreError::PassRevoked),
            Some(pass) if pass.scope != self.scope || &pass.unit != self.unit => {
                Err(StoreError::PassMismatch(pass.scope))
            }
            Some(pass) => Ok(PassRecord {
                expires_at: pass.expires_at.max(self.now).saturating_add(self.secs),
                client_key: self
                    .client_key
                    .map(str::to_string)
                    .or(pass.client_key.clone()),
                ..pass
            }),
        }
    }
}

/// One atomic write: everything in it happens, durably, or nothing does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Commit<'a> {
    /// Proofs to mark spent. Fails with [`StoreError::AlreadySpent`] if any is spent.
    pub spend: &'a [SpentProof],
    /// Signatures to record. Fails with [`StoreError::AlreadySigned`] if any `B_` is known.
    pub issue: &'a [IssuedSignature],
    /// Proofs the mint made itself (change, refunds, payouts): nothing is stored about them
    /// but their value, added to the keyset's issued counter.
    pub made: &'a [Proof],
    /// A quote to move from `PAID` to `ISSUED`.
    pub issue_quote: Option<&'a str>,
    /// A receipt to insert or replace.
    pub receipt: Option<ReceiptWrite<'a>>,
    /// A stored answer to insert or replace.
    pub answer: Option<AnswerWrite<'a>>,
    /// An account to credit or close.
    pub account: Option<AccountWrite<'a>>,
    /// A pass to buy or extend.
    pub pass: Option<PassWrite<'a>>,
    /// Return before the write is on disk. It is still atomic, and every read and write
    /// after it sees it, but a crash soon after may lose it, even where later writes of
    /// other keys survive (a store may hold it in memory for a moment: sled up to about a
    /// second). A later durable write of the same receipt makes it durable too. For records
    /// whose loss costs no value: a run's lease, the answer it gave (never for spends,
    /// issues or credits).
    pub lazy: bool,
}

/// The value counters of one keyset: what it signed and what was spent from it.
///
/// `issued - redeemed` is the ecash of this keyset still in circulation: the mint's
/// outstanding liability. The counters move in the same [`Commit`] as the writes they count,
/// so they cannot drift from the spent and signed records, even across a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Supply {
    /// Value signed: blind signatures (mint, swap) and proofs the mint made itself.
    pub issued: u64,
    /// Value spent (swaps, payments, deposits).
    pub redeemed: u64,
}

impl Supply {
    /// Ecash still in circulation (`issued - redeemed`).
    pub fn outstanding(&self) -> u64 {
        self.issued.saturating_sub(self.redeemed)
    }

    /// Both counters plus `other`'s (saturating).
    pub fn plus(self, other: Supply) -> Supply {
        Supply {
            issued: self.issued.saturating_add(other.issued),
            redeemed: self.redeemed.saturating_add(other.redeemed),
        }
    }
}

/// What a commit adds to each keyset's [`Supply`]: the one rule every store applies.
pub fn supply_delta(commit: &Commit<'_>) -> BTreeMap<Id, Supply> {
    let mut delta: BTreeMap<Id, Supply> = BTreeMap::new();
    for proof in commit.spend {
        let entry = delta.entry(proof.keyset_id).or_default();
        entry.redeemed = entry.redeemed.saturating_add(proof.amount);
    }
    let signed = commit
        .issue
        .iter()
        .map(|s| (s.signature.keyset_id, u64::from(s.signature.amount)));
    let made = commit
        .made
        .iter()
        .map(|p| (p.keyset_id, u64::from(p.amount)));
    for (keyset_id, amount) in signed.chain(made) {
        let entry = delta.entry(keyset_id).or_default();
        entry.issued = entry.issued.saturating_add(amount);
    }
    delta
}

/// Prepaid balances of one unit, summed over accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTotal {
    /// The unit.
    pub unit: CurrencyUnit,
    /// Number of open accounts.
    pub accounts: u64,
    /// Sum of their balances.
    pub balance: u64,
}

impl AccountTotal {
    /// Sums accounts per unit, in unit order.
    pub fn sum<'a>(accounts: impl IntoIterator<Item = &'a AccountRecord>) -> Vec<AccountTotal> {
        let mut totals: BTreeMap<String, AccountTotal> = BTreeMap::new();
        for account in accounts {
            let total = totals
                .entry(account.unit.to_string())
                .or_insert_with(|| AccountTotal {
                    unit: account.unit.clone(),
                    accounts: 0,
                    balance: 0,
                });
            total.accounts += 1;
            total.balance = total.balance.saturating_add(account.balance);
        }
        totals.into_values().collect()
    }
}

/// The value that came into one unit through quotes: the `ISSUED` ones, minted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuoteTotal {
    /// The unit.
    pub unit: CurrencyUnit,
    /// Number of minted quotes.
    pub quotes: u64,
    /// Their amounts, summed: Lightning payments and operator credit.
    pub amount: u64,
    /// The part of `amount` the operator issued as credit (lookup id `credit:`…).
    pub credit: u64,
}

impl QuoteTotal {
    /// Sums the `ISSUED` quotes among `quotes` per unit, in unit order.
    pub fn sum<'a>(quotes: impl IntoIterator<Item = &'a MintQuoteRecord>) -> Vec<QuoteTotal> {
        let mut totals: BTreeMap<String, QuoteTotal> = BTreeMap::new();
        for quote in quotes {
            if quote.state != MintQuoteState::Issued {
                continue;
            }
            let total = totals
                .entry(quote.unit.to_string())
                .or_insert_with(|| QuoteTotal {
                    unit: quote.unit.clone(),
                    ..QuoteTotal::default()
                });
            total.quotes = total.quotes.saturating_add(1);
            total.amount = total.amount.saturating_add(quote.amount);
            if quote
                .lookup_id
                .starts_with(crate::accounting::CREDIT_LOOKUP_PREFIX)
            {
                total.credit = total.credit.saturating_add(quote.amount);
            }
        }
        totals.into_values().collect()
    }
}

/// A change another process made to a store it shares with this one (instances on one
/// database), so this process's NUT-17 subscribers hear of it too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedEvent {
    /// These proofs were spent.
    Spent(Vec<PublicKey>),
    /// This quote changed state.
    Quote(String),
    /// This setting was written ([`MintStore::put_setting`]).
    Setting(String),
}

/// Durable state of a mint. See the module docs for the contract.
#[async_trait::async_trait]
pub trait MintStore: Send + Sync + 'static {
    /// All keysets ever created, in any order.
    async fn keysets(&self) -> Result<Vec<KeysetRecord>, StoreError>;

    /// Inserts or replaces keysets (by id), atomically and durably. A rotation writes the new
    /// keyset and the deactivated old one in one call.
    async fn put_keysets(&self, keysets: &[KeysetRecord]) -> Result<(), StoreError>;

    /// Stores a new quote, durably. [`StoreError::Duplicate`] if the id or lookup id exists.
    async fn add_mint_quote(&self, quote: &MintQuoteRecord) -> Result<(), StoreError>;

    /// A quote by id.
    async fn mint_quote(&self, id: &str) -> Result<Option<MintQuoteRecord>, StoreError>;

    /// A quote by its backend lookup id (payment hash).
    async fn mint_quote_by_lookup_id(
        &self,
        lookup_id: &str,
    ) -> Result<Option<MintQuoteRecord>, StoreError>;

    /// Moves an `UNPAID` quote to `PAID`, durably, and returns it. A quote already `PAID` or
    /// `ISSUED` is returned unchanged; `None` if there is no such quote.
    async fn mark_mint_quote_paid(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<MintQuoteRecord>, StoreError>;

    /// `UNPAID` quotes created at or after `created_since` (Unix seconds), for reconciling
    /// with the backend.
    async fn unpaid_quotes(&self, created_since: u64) -> Result<Vec<MintQuoteRecord>, StoreError>;

    /// For each `Y`: `true` if spent.
    async fn spent(&self, ys: &[PublicKey]) -> Result<Vec<bool>, StoreError>;

    /// For each `B_`: the signature issued for it, if any.
    async fn blind_signatures(
        &self,
        blinded: &[PublicKey],
    ) -> Result<Vec<Option<BlindSignature>>, StoreError>;

    /// Applies one [`Commit`] atomically and returns only once it is durable (unless the
    /// commit is `lazy`).
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError>;

    /// A receipt by key.
    async fn receipt(&self, key: &[u8; 32]) -> Result<Option<ReceiptRecord>, StoreError>;

    /// Deletes receipts created before `created_before`; returns how many.
    async fn prune_receipts(&self, created_before: u64) -> Result<u64, StoreError>;

    /// The stored answer under a receipt's key (also one past its expiry, until pruned).
    async fn answer(&self, key: &[u8; 32]) -> Result<Option<AnswerRecord>, StoreError>;

    /// Deletes stored answers that expired before `expired_before`; returns how many.
    async fn prune_answers(&self, expired_before: u64) -> Result<u64, StoreError>;

    /// An account by id.
    async fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError>;

    /// Takes `amount` from an account in `unit` atomically and returns the new balance.
    /// Fails without change with [`StoreError::AccountNotFound`],
    /// [`StoreError::AccountUnitMismatch`] or [`StoreError::InsufficientBalance`]. Need not be
    /// durable on return (see the module docs), but must be ordered with commits: a crash keeps
    /// a prefix of all writes.
    async fn debit_account(
        &self,
        id: &str,
        unit: &CurrencyUnit,
        amount: u64,
    ) -> Result<u64, StoreError>;

    /// The [`Supply`] counters of every keyset that has any.
    async fn supply(&self) -> Result<Vec<(Id, Supply)>, StoreError>;

    /// The pass with this id.
    async fn pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError>;

    /// Marks a pass revoked (it stays revoked across restarts); the record after, or `None`
    /// if there is no such pass.
    async fn revoke_pass(&self, id: &str) -> Result<Option<PassRecord>, StoreError>;

    /// Passes running out after `expires_after` (revoked ones included).
    async fn passes(&self, expires_after: u64) -> Result<Vec<PassRecord>, StoreError>;

    /// Open accounts and their balances, per unit.
    async fn account_totals(&self) -> Result<Vec<AccountTotal>, StoreError>;

    /// The minted (`ISSUED`) quotes, summed per unit: all the value that ever came in. Reads
    /// every quote; for audits, not for the hot path.
    async fn minted_quotes(&self) -> Result<Vec<QuoteTotal>, StoreError>;

    /// The setting `name`, if it was ever written.
    async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, StoreError>;

    /// Writes the setting `name`, durably, one version after the stored one (1 if none);
    /// returns the new version. Instances sharing the store hear of it
    /// ([`SharedEvent::Setting`]).
    async fn put_setting(&self, name: &str, value: &[u8], now: u64) -> Result<u64, StoreError>;

    /// Adds each row's counts to the stored row of its hour, unit and route (creating it),
    /// durably, all or none. Several writers (instances) add to the same rows.
    async fn add_earnings(&self, rows: &[EarningsRecord]) -> Result<(), StoreError>;

    /// The earnings ledger's rows of the hours starting at or after `since` (Unix seconds),
    /// ordered by hour, unit and route.
    async fn earnings(&self, since: u64) -> Result<Vec<EarningsRecord>, StoreError>;

    /// Whether the store can take payments now: it answers, and nothing it wrote is known
    /// to be missing (readiness probes ask this). Cheap: one round trip at most.
    async fn health(&self) -> Result<(), StoreError>;

    /// Whether other processes write to this store too (instances on one database). A
    /// store only this process writes can tell that work recorded by an earlier process is
    /// over (that process is gone); a shared one cannot.
    fn shared(&self) -> bool {
        false
    }

    /// Changes other processes make to this store, when it is shared (a database several
    /// instances use); `None` for a store only this process writes (the default).
    fn shared_events(&self) -> Option<tokio::sync::broadcast::Receiver<SharedEvent>> {
        None
    }
}

/// The canonical storage key of a point: its compressed encoding.
pub fn point_key(point: &PublicKey) -> [u8; 33] {
    point.to_bytes()
}
