//! Paying the "Payment" HTTP authentication scheme (`WWW-Authenticate: Payment`, method
//! `cashu`, intent `charge`): the standard binding beside NUT-24. The token must be worth
//! exactly the amount plus the mint's input fee (no change comes back); the answer carries
//! a `Payment-Receipt`.

use std::str::FromStr;

use cdk::mint_url::MintUrl;
use cdk::nuts::CurrencyUnit;
use coinslot_mpp::{CashuPayload, MethodDetails};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mpp::{ChargeRequest, PaymentChallenge, PaymentCredential};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Offer, Paid, PayingClient, Payment};
use crate::Error;

/// What the client tells servers it pays with, when it prefers the `Payment` binding.
pub const ACCEPT_PAYMENT: &str = "cashu/charge";
/// `Accept-Payment`.
pub const ACCEPT_PAYMENT_HEADER: HeaderName = HeaderName::from_static("accept-payment");

/// Which binding a client uses when a `402` offers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// NUT-24 (`X-Cashu`): overpayment comes back as change.
    #[default]
    Nut24,
    /// The `Payment` scheme (`Authorization: Payment`): exact amount, a receipt.
    Payment,
}

/// A `cashu` charge challenge, and its decoded request.
#[derive(Debug, Clone)]
pub(crate) struct CashuChallenge {
    challenge: PaymentChallenge,
    request: ChargeRequest,
}

/// The `cashu` charge challenge among a response's `WWW-Authenticate` headers, if any
/// (challenges that do not parse, or of other methods, are passed over).
pub(crate) fn find_challenge(headers: &HeaderMap) -> Option<CashuChallenge> {
    let values = headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok());
    mpp::parse_www_authenticate_all(values)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|c| c.method.as_str() == coinslot_mpp::METHOD && c.intent.is_charge())
        .find_map(|challenge| {
            let request = challenge.request.decode().ok()?;
            Some(CashuChallenge { challenge, request })
        })
}

impl PayingClient {
    /// What a `cashu` charge asks, checked against what this client may pay.
    fn charge_offer(&self, challenge: &CashuChallenge, host: &str) -> Result<Offer, Error> {
        let request = &challenge.request;
        let amount = request
            .amount
            .parse::<u64>()
            .map_err(|_| Error::BadRequest("the Payment challenge has no whole amount".into()))?;
        let unit = CurrencyUnit::from_str(&request.currency)
            .map_err(|_| Error::BadRequest("the Payment challenge has no currency".into()))?;
        let mints: Vec<MintUrl> = MethodDetails::of(request)
            .map_err(Error::BadRequest)?
            .mints
            .iter()
            .filter_map(|m| MintUrl::from_str(m).ok())
            .collect();
        let mint = mints
            .iter()
            .find(|m| self.is_trusted(m))
            .cloned()
            .ok_or_else(|| Error::UntrustedMint(mints.iter().map(|m| m.to_string()).collect()))?;
        tracing::debug!(host, amount, unit = %unit, mint = %mint, "402: Payment challenge");
        Ok(Offer {
            mint,
            unit,
            amount,
            lock: None,
        })
    }

    /// Pays a `cashu` charge: a token worth exactly the amount plus its input fee, in an
    /// `Authorization: Payment` credential echoing the challenge.
    pub(crate) async fn pay_challenge(
        &self,
        mut request: reqwest::Request,
        challenge: CashuChallenge,
        host: &str,
    ) -> Result<Paid, Error> {
        let offer = self.charge_offer(&challenge, host)?;
        let spent = self.spend(&offer, offer.amount, host).await?;
        let credential = PaymentCredential::new(
            challenge.challenge.to_echo(),
            CashuPayload {
                cashu_token: spent.token.clone(),
            },
        );
        let value = mpp::format_authorization(&credential)
            .ok()
            .and_then(|value| HeaderValue::from_str(&value).ok());
        let Some(value) = value else {
            self.reclaim(
                &spent.wallet,
                spent.operation,
                &spent.reservation,
                offer.amount + spent.fee,
            )
            .await;
            return Err(Error::Wallet(
                "the credential is not a valid header value".into(),
            ));
        };
        // The header the challenge names (`Payment-Authorization` leaves `Authorization`
        // to the application).
        let header = HeaderName::from_str(challenge.challenge.credential_header())
            .unwrap_or(http::header::AUTHORIZATION);
        request.headers_mut().insert(header, value);
        let give_back = || {
            self.reclaim(
                &spent.wallet,
                spent.operation,
                &spent.reservation,
                offer.amount + spent.fee,
            )
        };
        let response = match self.http().execute(request).await {
            Ok(response) => response,
            Err(err) => {
                give_back().await;
                return Err(err.into());
            }
        };
        if response.status() == StatusCode::PAYMENT_REQUIRED {
            give_back().await;
            let detail = response
                .json::<Value>()
                .await
                .ok()
                .and_then(|p| p["detail"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "{host} refused the credential: {detail}"
            )));
        }
        // A failed request is refunded in X-Cashu, as for NUT-24.
        let returned = self.take_returned(&response).await;
        if returned > 0 {
            self.release(&spent.reservation, returned);
        }
        if response.status().is_success() {
            check_receipt(response.headers(), &spent.token);
        }
        self.sync_nip60(&offer.mint, &offer.unit).await;
        tracing::info!(host, unit = %offer.unit, cost = offer.amount + spent.fee - returned, status = %response.status(), "paid request (Payment scheme)");
        Ok(Paid {
            response,
            payment: Some(Payment {
                mint: offer.mint,
                unit: offer.unit,
                price: offer.amount,
                fee: spent.fee,
                returned,
            }),
            via_session: false,
        })
    }
}

/// The `Payment-Receipt` of an answer, decoded (method, reference, status, timestamp, and
/// what a server adds, such as `challengeId`).
pub fn receipt(headers: &HeaderMap) -> Option<mpp::Receipt> {
    headers
        .get("payment-receipt")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| mpp::parse_receipt(v).ok())
}

/// Logs a receipt that does not name the token sent (the payment stands either way).
fn check_receipt(headers: &HeaderMap, token: &str) {
    let receipt = receipt(headers);
    let expected = hex::encode(Sha256::digest(token.as_bytes()));
    match receipt {
        Some(receipt) if receipt.reference == expected => {
            let challenge = receipt
                .extensions
                .get("challengeId")
                .and_then(Value::as_str);
            tracing::debug!(challenge = challenge.unwrap_or(""), "payment receipt")
        }
        Some(_) => tracing::warn!("the payment receipt names another token"),
        None => tracing::warn!("a paid answer without a Payment-Receipt"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn only_cashu_charge_challenges_are_taken() {
        let request = URL_SAFE_NO_PAD.encode(r#"{"amount":"2","currency":"sat"}"#);
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                r#"Payment id="x", realm="r", method="tempo", intent="charge", request="{request}""#
            ))
            .unwrap(),
        );
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Payment id=\"unterminated"),
        );
        assert!(find_challenge(&headers).is_none());
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                r#"Payment id="y", realm="r", method="cashu", intent="charge", request="{request}", header="Payment-Authorization""#
            ))
            .unwrap(),
        );
        let found = find_challenge(&headers).unwrap();
        assert_eq!(found.challenge.id, "y");
        assert_eq!(found.request.amount, "2");
        assert_eq!(found.challenge.credential_header(), "Payment-Authorization");
    }
}
