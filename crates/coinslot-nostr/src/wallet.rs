//! A `cdk` wallet connector that reaches the mint over nostr only: give a `cdk` wallet a
//! [`NostrConnector`] instead of its HTTP client and every mint call becomes a NIP-44
//! encrypted request from a fresh key, answered by the mint's [`crate::Responder`].
//!
//! What has no nostr method (NUT-29 batches, lightning addresses, websockets) fails with a
//! clear error; the wallet's polling paths work without websockets.

use std::sync::Arc;

use async_trait::async_trait;
use cdk::error::{Error, ErrorCode, ErrorResponse};
use cdk::nuts::{
    BatchCheckMintQuoteRequest, BatchMintRequest, CheckStateRequest, CheckStateResponse, Id,
    KeySet, KeysResponse, KeysetResponse, MeltRequest, MintInfo, MintQuoteBolt11Response,
    MintRequest, MintResponse, PaymentMethod, RestoreRequest, RestoreResponse, SwapRequest,
    SwapResponse,
};
use cdk::wallet::{AuthWallet, LnurlPayInvoiceResponse, LnurlPayResponse, MintConnector};
use cdk::{MeltQuoteCreateResponse, MeltQuoteRequest, MeltQuoteResponse};
use cdk::{MintQuoteRequest, MintQuoteResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{ClientError, MintClient};
use crate::nip74::Method;

/// A `cdk` [`MintConnector`] over nostr.
#[derive(Debug, Clone)]
pub struct NostrConnector {
    client: Arc<MintClient>,
}

impl NostrConnector {
    /// A connector that sends every call through `client`.
    pub fn new(client: MintClient) -> Self {
        Self {
            client: Arc::new(client),
        }
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, data: Value) -> Result<T, Error> {
        let answer = self.client.call(method, data).await.map_err(to_cdk)?;
        serde_json::from_value(answer).map_err(|e| Error::Custom(format!("mint answer: {e}")))
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        body: &B,
    ) -> Result<T, Error> {
        let data = serde_json::to_value(body).map_err(|e| Error::Custom(e.to_string()))?;
        self.call(method, data).await
    }
}

/// The mint's refusal as the error the HTTP client would give.
fn to_cdk(error: ClientError) -> Error {
    match error {
        ClientError::Mint { code, message } => match code.parse::<u16>() {
            Ok(code) => Error::from(ErrorResponse::new(ErrorCode::from_code(code), message)),
            Err(_) => Error::Custom(format!("{code}: {message}")),
        },
        other => Error::Custom(other.to_string()),
    }
}

fn bolt11_only(method: &PaymentMethod) -> Result<(), Error> {
    if *method == PaymentMethod::BOLT11 {
        Ok(())
    } else {
        Err(Error::UnsupportedPaymentMethod)
    }
}

fn not_over_nostr(what: &str) -> Error {
    Error::Custom(format!("{what} is not available over nostr"))
}

#[async_trait]
impl MintConnector for NostrConnector {
    async fn fetch_lnurl_pay_request(&self, _url: &str) -> Result<LnurlPayResponse, Error> {
        Err(not_over_nostr("a lightning address"))
    }

    async fn fetch_lnurl_invoice(&self, _url: &str) -> Result<LnurlPayInvoiceResponse, Error> {
        Err(not_over_nostr("a lightning address"))
    }

    async fn get_mint_keys(&self) -> Result<Vec<KeySet>, Error> {
        let keys: KeysResponse = self.call(Method::Keys, json!({})).await?;
        Ok(keys.keysets)
    }

    async fn get_mint_keyset(&self, keyset_id: Id) -> Result<KeySet, Error> {
        let keys: KeysResponse = self
            .call(Method::Keys, json!({ "keyset_id": keyset_id.to_string() }))
            .await?;
        keys.keysets
            .into_iter()
            .find(|keyset| keyset.id == keyset_id)
            .ok_or(Error::UnknownKeySet)
    }

    async fn get_mint_keysets(&self) -> Result<KeysetResponse, Error> {
        self.call(Method::Keysets, json!({})).await
    }

    async fn post_mint_quote(
        &self,
        request: MintQuoteRequest,
    ) -> Result<MintQuoteResponse<String>, Error> {
        match request {
            MintQuoteRequest::Bolt11(body) => {
                let quote: MintQuoteBolt11Response<String> =
                    self.post(Method::MintQuote, &body).await?;
                Ok(MintQuoteResponse::Bolt11(quote))
            }
            _ => Err(Error::UnsupportedPaymentMethod),
        }
    }

    async fn post_mint(
        &self,
        method: &PaymentMethod,
        request: MintRequest<String>,
    ) -> Result<MintResponse, Error> {
        bolt11_only(method)?;
        self.post(Method::Mint, &request).await
    }

    async fn post_batch_check_mint_quote_status(
        &self,
        _method: &PaymentMethod,
        _request: BatchCheckMintQuoteRequest<String>,
    ) -> Result<Vec<MintQuoteResponse<String>>, Error> {
        Err(not_over_nostr("NUT-29 batch minting"))
    }

    async fn post_batch_mint(
        &self,
        _method: &PaymentMethod,
        _request: BatchMintRequest<String>,
    ) -> Result<MintResponse, Error> {
        Err(not_over_nostr("NUT-29 batch minting"))
    }

    async fn post_melt_quote(
        &self,
        request: MeltQuoteRequest,
    ) -> Result<MeltQuoteCreateResponse<String>, Error> {
        // The mint refuses every melt; asking gives the wallet the mint's own error.
        let body = match &request {
            MeltQuoteRequest::Bolt11(body) => serde_json::to_value(body),
            _ => return Err(Error::UnsupportedPaymentMethod),
        }
        .map_err(|e| Error::Custom(e.to_string()))?;
        self.call(Method::MeltQuote, body).await
    }

    async fn get_mint_quote_status(
        &self,
        method: PaymentMethod,
        quote_id: &str,
    ) -> Result<MintQuoteResponse<String>, Error> {
        bolt11_only(&method)?;
        let quote: MintQuoteBolt11Response<String> = self
            .call(Method::MintQuoteState, json!({ "quote": quote_id }))
            .await?;
        Ok(MintQuoteResponse::Bolt11(quote))
    }

    async fn get_melt_quote_status(
        &self,
        _method: PaymentMethod,
        _quote_id: &str,
    ) -> Result<MeltQuoteResponse<String>, Error> {
        self.call(Method::Melt, json!({})).await
    }

    async fn post_melt(
        &self,
        method: &PaymentMethod,
        request: MeltRequest<String>,
    ) -> Result<MeltQuoteResponse<String>, Error> {
        bolt11_only(method)?;
        self.post(Method::Melt, &request).await
    }

    async fn post_swap(&self, request: SwapRequest) -> Result<SwapResponse, Error> {
        self.post(Method::Swap, &request).await
    }

    async fn get_mint_info(&self) -> Result<MintInfo, Error> {
        self.call(Method::Info, json!({})).await
    }

    async fn post_check_state(
        &self,
        request: CheckStateRequest,
    ) -> Result<CheckStateResponse, Error> {
        self.post(Method::Check, &request).await
    }

    async fn post_restore(&self, request: RestoreRequest) -> Result<RestoreResponse, Error> {
        self.post(Method::Restore, &request).await
    }

    async fn get_auth_wallet(&self) -> Option<AuthWallet> {
        None
    }

    async fn set_auth_wallet(&self, _wallet: Option<AuthWallet>) {}
}
