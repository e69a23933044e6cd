//! Live prices for fiat-like units (`[[mint.units]] price = { url, pointer, … }`): each is
//! fetched at start and every `refresh_secs`, and handed to the mint. A failed fetch keeps
//! the last price until it is older than `max_age_secs`; after that, quotes in the unit
//! fail (saying why) rather than selling at a stale price.

use std::time::Duration;

use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_mint::{Mint, PriceSource, WeakMint};

/// Starts one fetch loop per unit with a price source; each ends with the mint.
pub fn spawn(mint: &Mint) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the price client");
            return;
        }
    };
    for unit in &mint.config().units {
        if let Some(source) = &unit.price {
            tokio::spawn(follow(
                mint.downgrade(),
                client.clone(),
                unit.currency_unit(),
                source.clone(),
            ));
        }
    }
}

async fn follow(mint: WeakMint, client: reqwest::Client, unit: CurrencyUnit, source: PriceSource) {
    let mut ticks = tokio::time::interval(Duration::from_secs(source.refresh_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(mint) = mint.upgrade() else { return };
        match fetch(&client, &source).await {
            Ok((price, msat_per_unit)) => {
                tracing::debug!(unit = %unit, price, msat_per_unit, "price updated");
                mint.set_rate(&unit, msat_per_unit);
            }
            Err(err) => {
                tracing::warn!(unit = %unit, url = %source.url, error = %err, "price fetch failed")
            }
        }
    }
}

/// The price of one bitcoin at the source, and what one unit is worth in msat at it.
pub async fn fetch(client: &reqwest::Client, source: &PriceSource) -> Result<(f64, u64), String> {
    let response = client
        .get(&source.url)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| format!("not JSON: {e}"))?;
    let value = body
        .pointer(&source.pointer)
        .ok_or_else(|| format!("nothing at {}", source.pointer))?;
    // Price APIs give numbers, some as strings ("97000.50").
    let price = value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| format!("{} is not a number: {value}", source.pointer))?;
    let msat = source
        .msat_per_unit(price)
        .ok_or_else(|| format!("{price} is not a usable price"))?;
    Ok((price, msat))
}
