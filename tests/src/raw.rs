//! A minimal raw Cashu client over HTTP, built from `cashu` types, for requests no honest
//! wallet would send (forged, duplicated, oversized) and for precise control in tests.

use coinslot_mint::cashu::amount::{FeeAndAmounts, SplitTarget};
use coinslot_mint::cashu::dhke::construct_proofs;
use coinslot_mint::cashu::nuts::{
    CurrencyUnit, Id, KeySet, KeysResponse, KeysetResponse, MintQuoteBolt11Request,
    MintQuoteBolt11Response, MintRequest, MintResponse, PreMintSecrets, Proofs, SwapRequest,
    SwapResponse,
};
use coinslot_mint::cashu::Amount;
use serde_json::Value;

/// A raw client for one mint.
#[derive(Debug, Clone)]
pub struct RawClient {
    /// The mint's base URL.
    pub url: String,
    http: reqwest::Client,
}

impl RawClient {
    /// A client for the mint at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// POSTs raw bytes; returns the status and the body parsed as JSON (Null if not JSON).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// POSTs a JSON value.
    pub async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> anyhow::Result<(u16, Value)> {
        self.post_raw(path, serde_json::to_vec(body)?).await
    }

    /// GETs a path; returns status and JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The active keyset of `unit`, with its keys.
    pub async fn active_keyset(&self, unit: &CurrencyUnit) -> anyhow::Result<KeySet> {
        let (_, keysets) = self.get("/v1/keysets").await?;
        let keysets: KeysetResponse = serde_json::from_value(keysets)?;
        let info = keysets
            .keysets
            .into_iter()
            .find(|k| k.active && &k.unit == unit)
            .ok_or_else(|| anyhow::anyhow!("no active keyset for {unit}"))?;
        self.keyset(&info.id).await
    }

    /// One keyset's keys.
    pub async fn keyset(&self, id: &Id) -> anyhow::Result<KeySet> {
        let (_, keys) = self.get(&format!("/v1/keys/{id}")).await?;
        let keys: KeysResponse = serde_json::from_value(keys)?;
        keys.keysets
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("keyset {id} has no keys"))
    }

    /// Fresh outputs for `amount` in `keyset`.
    pub fn outputs(keyset: &KeySet, amount: u64) -> anyhow::Result<PreMintSecrets> {
        let amounts: Vec<u64> = keyset.keys.iter().map(|(a, _)| u64::from(*a)).collect();
        let fees = FeeAndAmounts::from((keyset.input_fee_ppk, amounts));
        Ok(PreMintSecrets::random(
            keyset.id,
            Amount::from(amount),
            &SplitTarget::None,
            &fees,
        )?)
    }

    /// Tops up `amount` sat through a quote (the fake backend pays it) and returns proofs.
    pub async fn topup(&self, amount: u64) -> anyhow::Result<Proofs> {
        let keyset = self.active_keyset(&CurrencyUnit::Sat).await?;
        self.topup_with(&keyset, amount).await
    }

    /// [`RawClient::topup`] into a known keyset.
    pub async fn topup_with(&self, keyset: &KeySet, amount: u64) -> anyhow::Result<Proofs> {
        let (status, quote) = self
            .post(
                "/v1/mint/quote/bolt11",
                &MintQuoteBolt11Request {
                    amount: Amount::from(amount),
                    unit: keyset.unit.clone(),
                    description: None,
                    pubkey: None,
                },
            )
            .await?;
        anyhow::ensure!(status == 200, "quote failed: {quote}");
        let quote: MintQuoteBolt11Response<String> = serde_json::from_value(quote)?;
        let premint = Self::outputs(keyset, amount)?;
        let request = MintRequest {
            quote: quote.quote,
            outputs: premint.blinded_messages(),
            signature: None,
        };
        // A mint whose backend settles invoices after a while (cdk-mintd's fake wallet)
        // answers "quote not paid" (20001) until then.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (status, body) = loop {
            let (status, body) = self.post("/v1/mint/bolt11", &request).await?;
            if status == 200 || body["code"] != 20001 || std::time::Instant::now() > deadline {
                break (status, body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        anyhow::ensure!(status == 200, "mint failed: {body}");
        let response: MintResponse = serde_json::from_value(body)?;
        Ok(construct_proofs(
            response.signatures,
            premint.rs(),
            premint.secrets(),
            &keyset.keys,
        )?)
    }

    /// Swaps `inputs` for fresh outputs of the same total; returns status, body and, on
    /// success, the new proofs.
    pub async fn swap(&self, inputs: Proofs) -> anyhow::Result<(u16, Value, Option<Proofs>)> {
        let keyset = self.active_keyset(&CurrencyUnit::Sat).await?;
        self.swap_with(&keyset, inputs).await
    }

    /// [`RawClient::swap`] into a known keyset.
    pub async fn swap_with(
        &self,
        keyset: &KeySet,
        inputs: Proofs,
    ) -> anyhow::Result<(u16, Value, Option<Proofs>)> {
        let total: u64 = inputs.iter().map(|p| u64::from(p.amount)).sum();
        let premint = Self::outputs(keyset, total)?;
        let request = SwapRequest::new(inputs, premint.blinded_messages());
        let (status, body) = self.post("/v1/swap", &request).await?;
        if status != 200 {
            return Ok((status, body, None));
        }
        let response: SwapResponse = serde_json::from_value(body.clone())?;
        let proofs = construct_proofs(
            response.signatures,
            premint.rs(),
            premint.secrets(),
            &keyset.keys,
        )?;
        Ok((status, body, Some(proofs)))
    }
}

/// The `code` of a Cashu error body, if it is one.
pub fn error_code(body: &Value) -> Option<u64> {
    body.get("code").and_then(Value::as_u64)
}
