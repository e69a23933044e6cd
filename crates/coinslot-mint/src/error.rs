//! Errors of the mint and their NUT-00 wire form.
//!
//! Every failure a client can cause maps to one [`Error`] variant, and every variant maps to
//! exactly one [`ErrorCode`] of the NUT error table (`error_codes.md` in cashubtc/nuts).
//! [`ErrorBody`] is the one mapping to the wire: `{"detail": "...", "code": N}` with status
//! 400, or 503 for faults of ours ([`Error::is_internal`]). The mint's HTTP API and the
//! paywall layer both answer through it.

use serde::Serialize;

use crate::store::StoreError;

/// The NUT-00 error codes this mint sends, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// An error the table has no entry for (malformed requests, unknown quotes, disabled
    /// operations). Wallets treat it as a generic failure and show `detail`.
    Generic = 10000,
    /// A proof's signature does not verify.
    TokenNotVerified = 10001,
    /// A proof was spent before.
    TokenAlreadySpent = 11001,
    /// A proof is being spent by an operation that has not finished.
    TokenPending = 11002,
    /// An output was signed before.
    OutputsAlreadySigned = 11003,
    /// Inputs, outputs and fees do not add up (or a payment is too small).
    TransactionUnbalanced = 11005,
    /// An amount outside the configured limits.
    AmountOutOfLimitRange = 11006,
    /// The same input twice.
    DuplicateInputs = 11007,
    /// The same output twice.
    DuplicateOutputs = 11008,
    /// Inputs or outputs of several units.
    MultipleUnits = 11009,
    /// Inputs and outputs (or a payment and its price) in different units.
    UnitMismatch = 11010,
    /// A unit this mint does not issue.
    UnitUnsupported = 11013,
    /// Too many inputs.
    MaxInputsExceeded = 11014,
    /// Too many outputs.
    MaxOutputsExceeded = 11015,
    /// A keyset this mint does not know (or an amount it has no key for).
    KeysetNotFound = 12001,
    /// A keyset that no longer signs.
    KeysetInactive = 12002,
    /// The quote is not paid.
    QuoteNotPaid = 20001,
    /// The quote was issued before.
    QuoteAlreadyIssued = 20002,
    /// The quote expired.
    QuoteExpired = 20007,
    /// A NUT-20 signature or NUT-10 witness is missing or invalid.
    WitnessMissingOrInvalid = 20008,
}

impl ErrorCode {
    /// The number on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

/// Code for errors the NUT table has no entry for: [`ErrorCode::Generic`] as a number.
pub const GENERIC_ERROR_CODE: u16 = ErrorCode::Generic as u16;

/// An error as a client sees it: the NUT-00 body and the HTTP status to send it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Words for people.
    pub detail: String,
    /// The NUT-00 code.
    pub code: ErrorCode,
    /// 400 for a fault of the request, 503 for one of ours (nothing was written; retry).
    #[serde(skip)]
    pub status: u16,
}

impl ErrorBody {
    /// A refusal of the request (status 400).
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            code,
            status: 400,
        }
    }

    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<&Error> for ErrorBody {
    fn from(err: &Error) -> Self {
        Self {
            detail: err.to_string(),
            code: err.error_code(),
            status: if err.is_internal() { 503 } else { 400 },
        }
    }
}

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
    /// A receipt was written by someone else since it was read (or exists where a new one
    /// was to be written): the operation lost a race and wrote nothing.
    #[error("the payment's record changed meanwhile")]
    ReceiptChanged,
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
    pub fn error_code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Error::TokenNotVerified => C::TokenNotVerified,
            Error::TokenAlreadySpent => C::TokenAlreadySpent,
            Error::BlindedMessageAlreadySigned => C::OutputsAlreadySigned,
            Error::TransactionUnbalanced { .. }
            | Error::InsufficientPayment { .. }
            | Error::InsufficientBalance { .. } => C::TransactionUnbalanced,
            Error::AmountOutOfLimitRange { .. } => C::AmountOutOfLimitRange,
            Error::DuplicateInputs => C::DuplicateInputs,
            Error::DuplicateOutputs => C::DuplicateOutputs,
            Error::MultipleUnits => C::MultipleUnits,
            Error::UnitMismatch | Error::WrongUnit { .. } => C::UnitMismatch,
            Error::UnsupportedUnit(_) => C::UnitUnsupported,
            Error::MaxInputsExceeded { .. } => C::MaxInputsExceeded,
            Error::MaxOutputsExceeded { .. } => C::MaxOutputsExceeded,
            Error::KeysetNotFound(_) | Error::AmountNotInKeyset { .. } => C::KeysetNotFound,
            Error::KeysetInactive(_) => C::KeysetInactive,
            Error::QuoteNotPaid => C::QuoteNotPaid,
            Error::QuoteAlreadyIssued => C::QuoteAlreadyIssued,
            Error::QuoteExpired(_) => C::QuoteExpired,
            Error::WitnessMissingOrInvalid(_) => C::WitnessMissingOrInvalid,
            Error::UnknownQuote
            | Error::ReceiptChanged
            | Error::PassRevoked
            | Error::PassMismatch(_)
            | Error::AccountNotFound
            | Error::MeltDisabled
            | Error::InvalidRequest(_)
            | Error::Backend(_)
            | Error::Storage(_) => C::Generic,
        }
    }

    /// The NUT-00 error code sent to clients, as a number.
    pub fn code(&self) -> u16 {
        self.error_code().as_u16()
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
            StoreError::ReceiptChanged => Error::ReceiptChanged,
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
