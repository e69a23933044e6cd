//! NIP-11: the relay information document, served on `GET /` with
//! `Accept: application/nostr+json`.
//!
//! Besides the standard fields (`limitation.payment_required`, `fees.publication` per
//! kind), a `cashu` object tells a client how to pay without reading prose: the mint URL,
//! the unit and the tag name.

use coinslot_mint::cashu::mint_url::MintUrl;
use nostr_sdk::prelude::PublicKey;
use serde_json::{json, Value};

use crate::payment::CASHU_TAG;
use crate::RelayConfig;

/// The NIP-11 media type.
pub const CONTENT_TYPE: &str = "application/nostr+json";

/// NIPs this relay speaks.
pub const SUPPORTED_NIPS: &[u16] = &[1, 11, 42, 45];

/// The information document of a relay configured with `config`, taking tokens of the
/// mint at `mint_url`, operated by `operator` (the mint's nostr key).
pub fn document(config: &RelayConfig, mint_url: &MintUrl, operator: Option<&PublicKey>) -> Value {
    let prices = &config.prices;
    // One fee entry per distinct price, listing its kinds; the default covers the rest.
    let mut fees: Vec<Value> = Vec::new();
    let mut by_price: std::collections::BTreeMap<u64, Vec<u16>> = Default::default();
    for (kind, price) in &prices.kinds {
        by_price.entry(*price).or_default().push(*kind);
    }
    fees.push(json!({ "amount": prices.default, "unit": prices.unit }));
    for (price, kinds) in by_price {
        fees.push(json!({ "amount": price, "unit": prices.unit, "kinds": kinds }));
    }
    json!({
        "name": config.name,
        "description": config.description,
        "pubkey": operator.map(|key| key.to_hex()),
        "supported_nips": SUPPORTED_NIPS,
        "software": env!("CARGO_PKG_REPOSITORY"),
        "version": env!("CARGO_PKG_VERSION"),
        "payments_url": mint_url.to_string(),
        "limitation": {
            "max_message_length": config.max_message_bytes,
            "max_subscriptions": config.max_subscriptions,
            "max_filters": config.max_filters,
            "max_limit": config.max_limit,
            "auth_required": false,
            "payment_required": prices.default > 0 || prices.kinds.values().any(|p| *p > 0),
            "restricted_writes": true,
            "created_at_upper_limit": config.max_future_secs,
        },
        "fees": { "publication": fees },
        "cashu": {
            "mint": mint_url.to_string(),
            "unit": prices.unit,
            "tag": CASHU_TAG,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn fees_list_each_price_with_its_kinds() {
        let mut config = RelayConfig::default();
        config.prices.default = 3;
        config.prices.kinds.insert(1, 2);
        config.prices.kinds.insert(7, 2);
        let mint = MintUrl::from_str("http://127.0.0.1:7777").unwrap();
        let doc = document(&config, &mint, None);
        let fees = doc["fees"]["publication"].as_array().unwrap();
        assert_eq!(fees[0], json!({"amount": 3, "unit": "sat"}));
        assert!(fees.contains(&json!({"amount": 2, "unit": "sat", "kinds": [1, 7]})));
        assert!(fees.contains(
            &json!({"amount": 0, "unit": "sat", "kinds": [5, 27401, 27402, 37400, 38172]})
        ));
        assert_eq!(doc["limitation"]["payment_required"], true);
        assert_eq!(doc["cashu"]["mint"], "http://127.0.0.1:7777");
        assert!(doc["supported_nips"]
            .as_array()
            .unwrap()
            .contains(&json!(42)));
    }

    #[test]
    fn a_free_relay_says_so() {
        let mut config = RelayConfig::default();
        config.prices.default = 0;
        let mint = MintUrl::from_str("http://127.0.0.1:7777").unwrap();
        assert_eq!(
            document(&config, &mint, None)["limitation"]["payment_required"],
            false
        );
    }
}
