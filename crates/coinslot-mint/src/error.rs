//! Errors of the mint and their NUT-00 wire codes.
//!
//! Every failure a client can cause maps to one [`Error`] variant, and every variant maps to
//! exactly one code of the NUT error table (`error_codes.md` in cashubtc/nuts), so the HTTP
//! crate turns any error into `400 {"detail": "...", "code": N}` with one match.

use crate::store::StoreError;

/// Code for errors the NUT table has no entry for (malformed requests, unknown quotes,
/// disabled operations). Wallets treat it as a generic failure and show `detail`.
pub const GENERIC_ERROR_CODE: u16 = 10000;

/// Everything that can go wrong in a mint operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A proof's signature `C` does not match `k·hash_to_curve(secret)`.
    #[error("proof could not be verified")]
    TokenNotVerified,
    /// An input proof was spent before.
    #[error("token already spent")]
    TokenAlreadySpent,
    /// A blinded message was signed before (reusing outputs would duplicate value).
    #[error("blinded message is already signed")]
    BlindedMessageAlreadySigned,
    /// Inputs minus fees do not equal outputs.
    #[error("transaction is not balanced: inputs {inputs}, outputs {outputs}, fee {fee}")]
    TransactionUnbalanced {
        /// Sum of the inputs.
        inputs: u64,
        /// Sum of the outputs.
        outputs: u64,
        /// Fee the inputs owe.
        fee: u64,
    },
    /// The amount is outside of the configured limits.
    #[error("amount {amount} is outside of the limit range {min}..={max}")]
    AmountOutOfLimitRange {
        /// Lowest accepted amount.
        min: u64,
        /// Highest accepted amount.
        max: u64,
        /// What was asked for.
        amount: u64,
    },
    /// The same proof appears twice among the inputs.
    #[error("duplicate inputs provided")]
    DuplicateInputs,
    /// The same blinded message appears twice among the outputs.
    #[error("duplicate outputs provided")]
    DuplicateOutputs,
    /// Inputs (or outputs) are of more than one unit.
    #[error("inputs or outputs of multiple units")]
    MultipleUnits,
    /// Inputs and outputs are of different units.
    #[error("inputs and outputs are not of the same unit")]
    UnitMismatch,
    /// The unit is not one this mint issues.
    #[error("unit `{0}` is not supported")]
    UnsupportedUnit(String),
    /// Too many inputs in one request.
    #[error("too many inputs: {count} (the limit is {max})")]
    MaxInputsExceeded {
        /// Inputs in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// Too many outputs in one request.
    #[error("too many outputs: {count} (the limit is {max})")]
    MaxOutputsExceeded {
        /// Outputs in the request.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// The keyset id is not one of this mint's keysets.
    #[error("keyset {0} is not known")]
    KeysetNotFound(String),
    /// Outputs name a keyset that no longer signs (it still redeems).
    #[error("keyset {0} is inactive and cannot sign")]
    KeysetInactive(String),
    /// The keyset has no key for this amount.
    #[error("keyset {keyset} has no key for amount {amount}")]
    AmountNotInKeyset {
        /// The keyset id.
        keyset: String,
        /// The amount asked for.
        amount: u64,
    },
    /// The mint quote has not been paid yet.
    #[error("quote is not paid")]
    QuoteNotPaid,
    /// The mint quote was already used to issue ecash.
    #[error("quote has already been issued")]
    QuoteAlreadyIssued,
    /// The unpaid quote expired.
    #[error("quote expired at {0}")]
    QuoteExpired(u64),
    /// NUT-20 signature or NUT-10/11/14 witness missing or invalid.
    #[error("witness missing or invalid: {0}")]
    WitnessMissingOrInvalid(String),
    /// A payment is worth less than its price plus the inputs' fees.
    #[error(
        "payment too small: the token is worth {paid} after {fee} in fees, {required} is required"
    )]
    InsufficientPayment {
        /// Value of the inputs after fees.
        paid: u64,
        /// The price.
        required: u64,
        /// Input fees.
        fee: u64,
    },
    /// A payment is in another unit than the price.
    #[error("wrong unit: the price is in {expected}, the token is in {found}")]
    WrongUnit {
        /// Unit of the price.
        expected: String,
        /// Unit of the token.
        found: String,
    },
    /// No prepaid account with this id (never opened, or closed).
    #[error("account not found")]
    AccountNotFound,
    /// A prepaid account holds less than the debit.
    #[error("insufficient balance: {balance}")]
    InsufficientBalance {
        /// What the account holds.
        balance: u64,
    },
    /// The pass was revoked by the operator.
    #[error("pass revoked")]
    PassRevoked,
    /// The pass exists for other routes (another scope or unit).
    #[error("the pass belongs to scope {0}")]
    PassMismatch(String),
    /// No quote with this id.
    #[error("unknown quote")]
    UnknownQuote,
    /// A melt route was called. This mint is closed-loop: ecash never leaves as Lightning.
    #[error("melt is disabled: this closed-loop mint only mints and swaps")]
    MeltDisabled,
    /// The request is malformed in a way the NUT table has no code for.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The payment backend failed (no invoice could be created, for instance).
    #[error("payment backend error: {0}")]
    Backend(String),
    /// Storage failed; the operation had no effect.
    #[error("storage error: {0}")]
    Storage(String),
}

impl Error {
    /// The NUT-00 error code sent to clients.
    pub fn code(&self) -> u16 {
        match self {
            Error::TokenNotVerified => 10001,
            Error::TokenAlreadySpent => 11001,
            Error::BlindedMessageAlreadySigned => 11003,
            Error::TransactionUnbalanced { .. }
            | Error::InsufficientPayment { .. }
            | Error::InsufficientBalance { .. } => 11005,
            Error::AmountOutOfLimitRange { .. } => 11006,
            Error::DuplicateInputs => 11007,
            Error::DuplicateOutputs => 11008,
            Error::MultipleUnits => 11009,
            Error::UnitMismatch | Error::WrongUnit { .. } => 11010,
            Error::UnsupportedUnit(_) => 11013,
            Error::MaxInputsExceeded { .. } => 11014,
            Error::MaxOutputsExceeded { .. } => 11015,
            Error::KeysetNotFound(_) | Error::AmountNotInKeyset { .. } => 12001,
            Error::KeysetInactive(_) => 12002,
            Error::QuoteNotPaid => 20001,
            Error::QuoteAlreadyIssued => 20002,
            Error::QuoteExpired(_) => 20007,
            Error::WitnessMissingOrInvalid(_) => 20008,
            Error::UnknownQuote
            | Error::PassRevoked
            | Error::PassMismatch(_)
            | Error::AccountNotFound
            | Error::MeltDisabled
            | Error::InvalidRequest(_)
            | Error::Backend(_)
            | Error::Storage(_) => GENERIC_ERROR_CODE,
        }
    }

    /// Whether the fault is ours (storage, backend) rather than the client's request.
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Backend(_) | Error::Storage(_))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadySpent(_) => Error::TokenAlreadySpent,
            StoreError::AlreadySigned(_) => Error::BlindedMessageAlreadySigned,
            StoreError::QuoteNotFound => Error::UnknownQuote,
            StoreError::QuoteNotPaid => Error::QuoteNotPaid,
            StoreError::QuoteAlreadyIssued => Error::QuoteAlreadyIssued,
            StoreError::AccountNotFound => Error::AccountNotFound,
            StoreError::PassRevoked => Error::PassRevoked,
            StoreError::PassMismatch(scope) => Error::PassMismatch(scope),
            StoreError::InsufficientBalance { balance } => Error::InsufficientBalance { balance },
            StoreError::AccountUnitMismatch(found) => Error::WrongUnit {
                expected: "the account's unit".into(),
                found,
            },
            other => Error::Storage(other.to_string()),
        }
    }
}
