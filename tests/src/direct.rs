//! A [`Mint`] driven directly (no HTTP) over a [`MemoryStore`], for backend tests that need
//! to see what the store holds without a wallet's question refreshing it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure fails the test

use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::cashu::nuts::{
    BlindedMessage, CurrencyUnit, MintQuoteBolt11Request, MintQuoteState, MintRequest,
};
use coinslot_mint::cashu::Amount;
use coinslot_mint::{MemoryStore, Mint, MintConfig, MintSeed, MintStore, PaymentBackend};

/// A mint with `config` over `store` and `backend`.
pub async fn mint_over(
    store: &Arc<MemoryStore>,
    seed: &MintSeed,
    backend: Arc<dyn PaymentBackend>,
    config: MintConfig,
) -> Mint {
    Mint::new(
        config,
        seed.clone(),
        Arc::clone(store) as Arc<dyn MintStore>,
        backend,
    )
    .await
    .unwrap()
}

/// Asks for a quote of `amount` sat; panics if the backend fails.
pub async fn quote(mint: &Mint, amount: u64) -> String {
    try_quote(mint, amount).await.unwrap()
}

/// Asks for a quote of `amount` sat.
pub async fn try_quote(mint: &Mint, amount: u64) -> Result<String, coinslot_mint::Error> {
    Ok(mint
        .create_mint_quote(MintQuoteBolt11Request {
            amount: Amount::from(amount),
            unit: CurrencyUnit::Sat,
            description: None,
            pubkey: None,
        })
        .await?
        .quote)
}

/// Waits until the store (not a wallet's question, which would check the backend itself)
/// holds the quote in `state`.
pub async fn wait_stored(store: &MemoryStore, id: &str, state: MintQuoteState) {
    for _ in 0..200 {
        if store.mint_quote(id).await.unwrap().unwrap().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("quote {id} never reached {state} in the store");
}

/// Blinded outputs worth `amount`, one per power of two (the signatures are only counted).
pub fn outputs(mint: &Mint, amount: u64) -> Vec<BlindedMessage> {
    let keyset = mint.keys().keysets[0].id;
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|value| amount & value != 0)
        .map(|value| {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let (blinded, _r) =
                coinslot_mint::cashu::dhke::blind_message(secret.as_bytes(), None).unwrap();
            BlindedMessage::new(Amount::from(value), keyset, blinded)
        })
        .collect()
}

/// Mints `amount` on quote `id`; returns the amount signed.
pub async fn mint_once(mint: &Mint, id: &str, amount: u64) -> Result<u64, coinslot_mint::Error> {
    let response = mint
        .mint(MintRequest {
            quote: id.to_string(),
            outputs: outputs(mint, amount),
            signature: None,
        })
        .await?;
    Ok(response
        .signatures
        .iter()
        .map(|s| u64::from(s.amount))
        .sum())
}
