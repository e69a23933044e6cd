//! The `cashu` method's wire types: the credential's payload, the charge request's
//! `methodDetails`, and building a challenge.

use std::time::Duration;

use cashu::mint_url::MintUrl;
use cashu::nuts::CurrencyUnit;
use mpp::protocol::core::Base64UrlJson;
use mpp::{ChargeRequest, PaymentChallenge};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The method's name in challenges and credentials.
pub const METHOD: &str = "cashu";
/// The only intent this method serves.
pub const INTENT: &str = "charge";

/// A `cashu` credential's payload: a `cashuB` token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashuPayload {
    /// A `cashuB` token worth the amount plus its input fee.
    pub cashu_token: String,
}

/// `methodDetails` of a `cashu` charge request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDetails {
    /// Mints whose ecash is accepted.
    pub mints: Vec<String>,
    /// The same charge as a NUT-18 payment request (`creqA…`), when the server gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl MethodDetails {
    /// The details of a charge request; an error names what is missing.
    pub fn of(request: &ChargeRequest) -> Result<Self, String> {
        let details = request
            .method_details
            .clone()
            .ok_or("the cashu charge request has no methodDetails")?;
        serde_json::from_value(details)
            .map_err(|e| format!("the cashu charge request's methodDetails: {e}"))
    }

    /// Whether `mint` is among the accepted mints (URLs compared normalized).
    pub fn accepts(&self, mint: &MintUrl) -> bool {
        self.mints
            .iter()
            .filter_map(|m| m.parse::<MintUrl>().ok())
            .any(|m| m == *mint)
    }
}

/// A charge of `amount` `unit`, payable at any of `mints`.
pub fn charge_request(amount: u64, unit: &CurrencyUnit, mints: &[MintUrl]) -> ChargeRequest {
    let details = MethodDetails {
        mints: mints.iter().map(ToString::to_string).collect(),
        request: None,
    };
    ChargeRequest {
        amount: amount.to_string(),
        currency: unit.to_string(),
        method_details: serde_json::to_value(details).ok(),
        ..ChargeRequest::default()
    }
}

/// A `cashu` charge challenge for `request`, valid for `ttl`, its id bound to every field
/// by `secret` (use at least 32 random bytes).
pub fn challenge(
    secret: &str,
    realm: &str,
    request: &ChargeRequest,
    ttl: Duration,
) -> mpp::Result<PaymentChallenge> {
    let expires = time::OffsetDateTime::now_utc() + ttl;
    let expires = expires
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| mpp::MppError::Internal(e.to_string()))?;
    Ok(PaymentChallenge::with_secret_key_full(
        secret,
        realm,
        METHOD,
        INTENT,
        Base64UrlJson::from_typed(request)?,
        Some(&expires),
        None,
        None,
        None,
        None,
    ))
}

/// A receipt's `reference` for a token: SHA-256 of the token as sent, lowercase hex.
pub fn reference(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_charge_request_names_its_mints_and_reads_back() {
        let mint: MintUrl = "http://127.0.0.1:3338".parse().unwrap();
        let request = charge_request(21, &CurrencyUnit::Sat, std::slice::from_ref(&mint));
        assert_eq!(request.amount, "21");
        assert_eq!(request.currency, "sat");
        let details = MethodDetails::of(&request).unwrap();
        assert!(details.accepts(&mint));
        assert!(details.accepts(&"http://127.0.0.1:3338/".parse().unwrap()));
        assert!(!details.accepts(&"http://127.0.0.1:3339".parse().unwrap()));
        let bare = ChargeRequest::default();
        assert!(MethodDetails::of(&bare)
            .unwrap_err()
            .contains("methodDetails"));
    }

    #[test]
    fn a_challenge_verifies_with_its_secret_only() {
        let mint: MintUrl = "http://127.0.0.1:3338".parse().unwrap();
        let request = charge_request(2, &CurrencyUnit::Sat, &[mint]);
        let secret = "0123456789abcdef0123456789abcdef";
        let challenge = challenge(secret, "api.test", &request, Duration::from_secs(60)).unwrap();
        assert_eq!(challenge.method.as_str(), METHOD);
        assert!(challenge.verify(secret));
        assert!(!challenge.verify("another secret of thirty-two bytes!"));
        assert!(!challenge.is_expired());
        let back: ChargeRequest = challenge.request.decode().unwrap();
        assert_eq!(back.amount, "2");
    }
}
