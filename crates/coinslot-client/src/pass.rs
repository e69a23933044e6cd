//! Buying time passes: `POST` a token to a server's pass endpoint, get a pass credential
//! (for `X-Cashu-Pass`, or as a forward proxy's password) and the change back.

use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::client::PayingClient;
use crate::Error;

/// `X-Cashu-Pass`: a pass credential.
pub const X_CASHU_PASS: &str = "x-cashu-pass";

/// What to buy.
#[derive(Debug, Clone, Default)]
pub struct PassOrder {
    /// The scope, when the server sells several.
    pub scope: Option<String>,
    /// A key for the server's lifecycle hooks (e.g. a WireGuard public key).
    pub client_key: Option<String>,
    /// A pass to extend instead of buying a new one.
    pub extend: Option<String>,
}

/// A pass bought.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BoughtPass {
    /// The credential.
    pub pass: String,
    /// When it runs out, Unix seconds.
    pub expires_at: u64,
    /// Minutes this purchase added.
    pub minutes: u64,
    /// Its scope.
    pub scope: String,
    /// Whether an existing pass was extended.
    #[serde(default)]
    pub extended: bool,
    /// What came back as change (in the scope's unit).
    #[serde(skip)]
    pub change: u64,
}

impl PayingClient {
    /// Spends `amount` (plus input fees) at the pass endpoint `url` (e.g.
    /// `https://vpn.example/pass`) for as many minutes as it buys. The mint and unit come
    /// from the endpoint's own `402`, and are checked like any payment (trusted mint,
    /// budget). A refused purchase leaves the ecash in the wallet.
    pub async fn buy_pass(
        &self,
        url: &str,
        amount: u64,
        order: &PassOrder,
    ) -> Result<BoughtPass, Error> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| Error::BadRequest(format!("{url}: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let body = serde_json::json!({ "scope": order.scope, "client_key": order.client_key });
        let post = || {
            let mut request = self
                .http()
                .post(parsed.clone())
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(pass) = &order.extend {
                request = request.header(X_CASHU_PASS, pass);
            }
            request
        };
        // The 402 says which mint and unit the pass is sold in, and one minute's price.
        let asked = post().send().await?;
        if asked.status() != StatusCode::PAYMENT_REQUIRED {
            let status = asked.status();
            let detail = asked.text().await.unwrap_or_default();
            return Err(Error::BadRequest(format!(
                "{url} answered {status} instead of a 402 naming the price: {detail}"
            )));
        }
        let offer = self.offer(asked.headers(), &host)?;
        if amount < offer.amount {
            return Err(Error::Refused(format!(
                "one minute costs {} {}; {amount} buys nothing",
                offer.amount, offer.unit
            )));
        }
        let spent = self.spend(&offer, amount, &host).await?;
        let token = HeaderValue::from_str(&spent.token)
            .map_err(|_| Error::Wallet("the token is not a valid header value".into()))?;
        let give_back = || {
            self.reclaim(
                &spent.wallet,
                spent.operation,
                &spent.reservation,
                amount + spent.fee,
            )
        };
        // A lost answer may hide a purchase that went through: the same token again gets
        // the same pass back (the server keeps a receipt), so it is retried once as it was.
        let sent = match post().header(crate::X_CASHU, token.clone()).send().await {
            Ok(response) => Ok(response),
            Err(_) => post().header(crate::X_CASHU, token).send().await,
        };
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                give_back().await;
                return Err(err.into());
            }
        };
        let status = response.status();
        // Change on success; a refund when the server took the token and then failed.
        let returned = self.take_returned(&response).await;
        if returned > 0 {
            self.release(&spent.reservation, returned);
        }
        let text = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            if returned == 0 {
                give_back().await;
            }
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(Error::Refused(format!("{status}: {detail}")));
        }
        self.sync_nip60(&offer.mint, &offer.unit).await;
        let mut bought: BoughtPass = serde_json::from_str(&text)
            .map_err(|e| Error::BadRequest(format!("the pass endpoint's answer: {e}")))?;
        bought.change = returned;
        tracing::info!(host, minutes = bought.minutes, scope = %bought.scope, "pass bought");
        Ok(bought)
    }
}
