//! Wallet side of the end-to-end tests: thin helpers around the real cdk 0.18.3
//! wallet (`cdk::wallet::Wallet`, unit `sat`, in-memory `cdk-sqlite` database),
//! plus a few raw-HTTP helpers for the requests a well-behaved wallet never
//! sends (double spends, unsigned NUT-20 mint requests, ...).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cdk::amount::SplitTarget;
use cdk::mint_url::MintUrl;
use cdk::nuts::{
    CurrencyUnit, MintQuoteState, MintRequest, PaymentMethod, PreMintSecrets, Proofs,
    ProofsMethods, State, SwapRequest, Token,
};
use cdk::wallet::{MintQuote, ReceiveOptions, SendOptions, Wallet, WalletBuilder};
use cdk::Amount;
use rand::RngCore;

use crate::raw::RawClient;

/// How long helpers wait for the mint (quote paid, notifications, ...).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling interval while waiting for a quote to be paid.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A fresh random 64-byte wallet seed.
pub fn random_seed() -> [u8; 64] {
    let mut seed = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut seed);
    seed
}

/// A new cdk wallet for `mint_url` (unit sat) with an empty in-memory sqlite
/// database and the given seed. Client-side rate limiting is off so tests are
/// not paced.
pub async fn new_wallet(mint_url: &str, seed: [u8; 64]) -> Result<Wallet> {
    new_wallet_in(mint_url, CurrencyUnit::Sat, seed).await
}

/// Like [`new_wallet`], in `unit`.
pub async fn new_wallet_in(mint_url: &str, unit: CurrencyUnit, seed: [u8; 64]) -> Result<Wallet> {
    let localstore = cdk_sqlite::wallet::memory::empty()
        .await
        .context("creating the in-memory wallet database")?;
    let wallet = WalletBuilder::new()
        .mint_url(MintUrl::from_str(mint_url).context("parsing the mint url")?)
        .unit(unit)
        .localstore(Arc::new(localstore))
        .seed(seed)
        .without_rate_limiting()
        .build()?;
    Ok(wallet)
}

/// Creates a bolt11 mint quote for `amount_sat`. The wallet always locks it
/// (NUT-20) with a key derived from its seed (`quote.secret_key`).
pub async fn mint_quote(wallet: &Wallet, amount_sat: u64) -> Result<MintQuote> {
    Ok(wallet
        .mint_quote(
            PaymentMethod::BOLT11,
            Some(Amount::from(amount_sat)),
            None,
            None,
        )
        .await?)
}

/// Polls `GET /v1/mint/quote/bolt11/{id}` (through the wallet, which stores
/// the answer) until the quote is PAID (or already ISSUED).
pub async fn wait_quote_paid(wallet: &Wallet, quote_id: &str) -> Result<MintQuote> {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        let quote = wallet.check_mint_quote_status(quote_id).await?;
        if matches!(quote.state, MintQuoteState::Paid | MintQuoteState::Issued) {
            return Ok(quote);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "mint quote {quote_id} still {} after {WAIT_TIMEOUT:?}",
                quote.state
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Tops the wallet up: quote → wait until paid (HTTP polling) → mint.
/// Returns the minted amount.
pub async fn topup(wallet: &Wallet, amount_sat: u64) -> Result<Amount> {
    let quote = mint_quote(wallet, amount_sat).await?;
    wait_quote_paid(wallet, &quote.id).await?;
    let proofs = wallet.mint(&quote.id, SplitTarget::default(), None).await?;
    Ok(proofs.total_amount()?)
}

/// The wallet's spendable balance in sat.
pub async fn balance(wallet: &Wallet) -> Result<u64> {
    Ok(wallet.total_balance().await?.to_u64())
}

/// Sends `amount_sat` as a token (`prepare_send` + `confirm`), swapping at the
/// mint if needed.
pub async fn send(wallet: &Wallet, amount_sat: u64, opts: SendOptions) -> Result<Token> {
    let prepared = wallet.prepare_send(Amount::from(amount_sat), opts).await?;
    Ok(prepared.confirm(None).await?)
}

/// Receives (swaps at the mint) a token. Errors keep their `cdk::Error`
/// (use `err.downcast_ref::<cdk::Error>()`).
pub async fn receive(wallet: &Wallet, token: &Token, opts: ReceiveOptions) -> Result<Amount> {
    Ok(wallet.receive(&token.to_string(), opts).await?)
}

/// Decodes a token's proofs (V4 tokens carry short keyset ids, so the mint's
/// keysets are needed).
pub async fn token_proofs(wallet: &Wallet, token: &Token) -> Result<Proofs> {
    let keysets = wallet.mint_connector().get_mint_keysets().await?.keysets;
    Ok(token.proofs(&keysets)?)
}

/// Whether every proof of `token` is still unspent at its mint.
pub async fn unspent(wallet: &Wallet, token: &str) -> Result<bool> {
    let proofs = token_proofs(wallet, &token.parse()?).await?;
    Ok(proof_states(wallet, &proofs)
        .await?
        .iter()
        .all(|s| *s == State::Unspent))
}

/// NUT-07 states of `proofs` as reported by the mint (wallet API, `POST /v1/checkstate`).
pub async fn proof_states(wallet: &Wallet, proofs: &Proofs) -> Result<Vec<State>> {
    Ok(wallet
        .check_proofs_spent(proofs.clone())
        .await?
        .into_iter()
        .map(|s| s.state)
        .collect())
}

/// A balanced `POST /v1/swap` body spending `proofs` into fresh random outputs
/// of the wallet's active keyset (input fee deducted).
pub async fn swap_request(wallet: &Wallet, proofs: Proofs) -> Result<SwapRequest> {
    let keyset_id = wallet.active_keyset().await?.id;
    let fee_and_amounts = wallet.get_keyset_fees_and_amounts_by_id(keyset_id).await?;
    let fee = wallet.get_proofs_fee(&proofs).await?.total;
    let out = proofs
        .total_amount()?
        .checked_sub(fee)
        .context("input fee larger than the inputs")?;
    let outputs = PreMintSecrets::random(keyset_id, out, &SplitTarget::None, &fee_and_amounts)?;
    Ok(SwapRequest::new(proofs, outputs.blinded_messages()))
}

/// An unsigned `POST /v1/mint/bolt11` body for `quote_id` with fresh random
/// outputs worth `amount` (sign it with `MintRequest::sign`).
pub async fn mint_request(
    wallet: &Wallet,
    quote_id: &str,
    amount: Amount,
) -> Result<MintRequest<String>> {
    let keyset_id = wallet.active_keyset().await?.id;
    let fee_and_amounts = wallet.get_keyset_fees_and_amounts_by_id(keyset_id).await?;
    let outputs = PreMintSecrets::random(keyset_id, amount, &SplitTarget::None, &fee_and_amounts)?;
    Ok(MintRequest {
        quote: quote_id.to_string(),
        outputs: outputs.blinded_messages(),
        signature: None,
    })
}

/// An HTTP answer from the mint: status and JSON body (`Null` if not JSON).
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// HTTP status code.
    pub status: u16,
    /// Parsed JSON body.
    pub body: serde_json::Value,
}

impl HttpAnswer {
    /// The NUT-00 error `code`, if the body has one.
    pub fn code(&self) -> Option<u64> {
        crate::raw::error_code(&self.body)
    }
}

/// `POST {mint_url}{path}` with a JSON body; any status is returned, not an error.
pub async fn post_json(mint_url: &str, path: &str, body: &serde_json::Value) -> Result<HttpAnswer> {
    let (status, body) = RawClient::new(mint_url).post(path, body).await?;
    Ok(HttpAnswer { status, body })
}

/// `GET {mint_url}{path}`; any status is returned, not an error.
pub async fn get_json(mint_url: &str, path: &str) -> Result<HttpAnswer> {
    let (status, body) = RawClient::new(mint_url).get(path).await?;
    Ok(HttpAnswer { status, body })
}

/// The mint's NUT-17 websocket URL (`ws://host:port/v1/ws`).
pub fn ws_url(mint_url: &str) -> String {
    let base = mint_url.trim_end_matches('/');
    let base = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    format!("{base}/v1/ws")
}

/// A new wallet for `mint_url` holding `amount` sat, topped up through the mint.
pub async fn funded(mint_url: &str, amount: u64) -> Result<Wallet> {
    let wallet = new_wallet(mint_url, random_seed()).await?;
    topup(&wallet, amount).await?;
    Ok(wallet)
}

/// A `cashuB` token worth `amount` sat taken from the wallet.
pub async fn token(wallet: &Wallet, amount: u64) -> Result<String> {
    Ok(send(wallet, amount, SendOptions::default())
        .await?
        .to_string())
}

/// Receives `token` (text) into a fresh wallet of `mint_url` and returns what it was worth:
/// proof that change or a refund handed out is really spendable.
pub async fn redeem_elsewhere(mint_url: &str, token: &str) -> Result<u64> {
    let wallet = new_wallet(mint_url, random_seed()).await?;
    Ok(wallet
        .receive(token, ReceiveOptions::default())
        .await?
        .to_u64())
}
