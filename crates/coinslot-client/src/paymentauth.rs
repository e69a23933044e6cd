//! Paying the "Payment" HTTP authentication scheme (`WWW-Authenticate: Payment`, method
//! `cashu`, intent `charge`): the standard binding beside NUT-24. The token must be worth
//! exactly the amount plus the mint's input fee (no change comes back); the answer carries
//! a `Payment-Receipt`.

use std::collections::HashMap;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cdk::mint_url::MintUrl;
use cdk::nuts::CurrencyUnit;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::{Offer, Paid, PayingClient, Payment};
use crate::Error;

/// Which binding a client uses when a `402` offers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// NUT-24 (`X-Cashu`): overpayment comes back as change.
    #[default]
    Nut24,
    /// The `Payment` scheme (`Authorization: Payment`): exact amount, a receipt.
    Payment,
}

/// A `cashu` charge challenge: its auth-params as sent, and the decoded request.
#[derive(Debug, Clone)]
pub(crate) struct CashuChallenge {
    params: HashMap<String, String>,
    request: Value,
}

/// Parses the auth-params of one challenge (`name="value"` or `name=token`, comma-separated).
fn auth_params(text: &str) -> Option<HashMap<String, String>> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(name, value);
        rest = tail.trim_start_matches([',', ' ', '\t', '\r', '\n']);
    }
    Some(params)
}

/// The `cashu` charge challenge among a response's `WWW-Authenticate` headers, if any.
pub(crate) fn find_challenge(headers: &HeaderMap) -> Option<CashuChallenge> {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| {
            let (scheme, rest) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("payment").then_some(rest)
        })
        .filter_map(auth_params)
        .filter(|p| {
            p.get("method").map(String::as_str) == Some("cashu")
                && p.get("intent").map(String::as_str) == Some("charge")
        })
        .find_map(|params| {
            let bytes = URL_SAFE_NO_PAD
                .decode(params.get("request")?.trim_end_matches('='))
                .ok()?;
            let request = serde_json::from_slice(&bytes).ok()?;
            Some(CashuChallenge { params, request })
        })
}

impl PayingClient {
    /// What a `cashu` charge asks, checked against what this client may pay.
    fn charge_offer(&self, challenge: &CashuChallenge, host: &str) -> Result<Offer, Error> {
        let request = &challenge.request;
        let amount = request["amount"]
            .as_str()
            .and_then(|a| a.parse::<u64>().ok())
            .ok_or_else(|| Error::BadRequest("the Payment challenge has no amount".into()))?;
        let unit = request["currency"]
            .as_str()
            .and_then(|u| CurrencyUnit::from_str(u).ok())
            .ok_or_else(|| Error::BadRequest("the Payment challenge has no currency".into()))?;
        let mints: Vec<MintUrl> = request["methodDetails"]["mints"]
            .as_array()
            .map(|mints| {
                mints
                    .iter()
                    .filter_map(|m| m.as_str().and_then(|m| MintUrl::from_str(m).ok()))
                    .collect()
            })
            .unwrap_or_default();
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
        let echoed: serde_json::Map<String, Value> = challenge
            .params
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        let credential = json!({
            "challenge": echoed,
            "payload": { "cashu_token": spent.token },
        });
        let value = format!("Payment {}", URL_SAFE_NO_PAD.encode(credential.to_string()));
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Error::Wallet("the credential is not a valid header value".into()))?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
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

/// The `Payment-Receipt` of an answer, decoded (method, challengeId, reference, status,
/// timestamp).
pub fn receipt(headers: &HeaderMap) -> Option<Value> {
    headers
        .get("payment-receipt")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim().trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
}

/// Logs a receipt that does not name the token sent (the payment stands either way).
fn check_receipt(headers: &HeaderMap, token: &str) {
    let receipt = receipt(headers);
    let expected = hex::encode(Sha256::digest(token.as_bytes()));
    match receipt {
        Some(receipt) if receipt["reference"] == json!(expected) => {
            tracing::debug!(challenge = %receipt["challengeId"], "payment receipt")
        }
        Some(_) => tracing::warn!("the payment receipt names another token"),
        None => tracing::warn!("a paid answer without a Payment-Receipt"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn auth_params_parse_quoted_and_token_values() {
        let params =
            auth_params(r#"id="a\"b", realm=api.example.com,  method="cashu", intent="charge""#)
                .unwrap();
        assert_eq!(params["id"], "a\"b");
        assert_eq!(params["realm"], "api.example.com");
        assert_eq!(params["method"], "cashu");
        assert!(auth_params(r#"id="unterminated"#).is_none());
    }

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
        assert!(find_challenge(&headers).is_none());
        headers.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(
                r#"Payment id="y", realm="r", method="cashu", intent="charge", request="{request}""#
            ))
            .unwrap(),
        );
        let found = find_challenge(&headers).unwrap();
        assert_eq!(found.params["id"], "y");
        assert_eq!(found.request["amount"], "2");
    }
}
