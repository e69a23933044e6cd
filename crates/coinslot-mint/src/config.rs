//! Mint configuration: units, fees, limits and what `/v1/info` says.
//!
//! Deserializes from the `[mint]` table of `coinslotd`'s TOML config; every field has a
//! default, so an empty config is a working `sat` mint.

use cashu::nuts::CurrencyUnit;
use serde::{Deserialize, Serialize};

use crate::store::KeysetIdVersion;

/// Configuration of a [`crate::Mint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MintConfig {
    /// Units this mint issues, each with its own active keyset. Default: `sat`.
    pub units: Vec<UnitConfig>,
    /// What `/v1/info` tells wallets about this mint.
    pub info: InfoConfig,
    /// Limits on request sizes.
    pub limits: Limits,
    /// Keyset id version for new keysets (`v2` by default; `v1` for very old wallets).
    pub keyset_id_version: KeysetIdVersion,
    /// How long a mint quote's invoice can be paid, in seconds.
    pub quote_ttl_secs: u64,
    /// How often unpaid quotes are checked with the backend, in seconds (also once at
    /// start), so a payment missed while the mint was down or unnotified is credited; `0`
    /// turns it off.
    pub reconcile_secs: u64,
    /// How far back reconciliation looks, in seconds: quotes created earlier stay unpaid
    /// until a wallet asks about them.
    pub reconcile_window_secs: u64,
    /// Description of top-up invoices when the wallet gives none: `{name}` is replaced by
    /// `info.name`, `{amount}` and `{unit}` by the quote's.
    pub invoice_description: String,
}

impl Default for MintConfig {
    fn default() -> Self {
        Self {
            units: vec![UnitConfig::new("sat")],
            info: InfoConfig::default(),
            limits: Limits::default(),
            keyset_id_version: KeysetIdVersion::V2,
            quote_ttl_secs: 3600,
            reconcile_secs: 300,
            reconcile_window_secs: 7 * 24 * 3600,
            invoice_description: "{name} top-up".into(),
        }
    }
}

/// One unit the mint issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnitConfig {
    /// Unit name as wallets see it: `sat`, `msat`, `usd`, `eur`, `credit`, …
    pub name: String,
    /// Fee per input proof, in parts per thousand of one unit (NUT-02). Default 0.
    pub input_fee_ppk: u64,
    /// Keyset amounts are `1, 2, 4, …, 2^(max_order-1)`. Default 32.
    pub max_order: u8,
    /// Millisatoshis per unit for bolt11 mint quotes. Defaults to 1000 for `sat` and 1 for
    /// `msat`; other units can only be topped up over Lightning when this is set.
    pub msat_per_unit: Option<u64>,
    /// Smallest amount one mint quote may ask for.
    pub min_mint: u64,
    /// Largest amount one mint quote may ask for.
    pub max_mint: u64,
    /// A live price instead of the fixed `msat_per_unit` (fiat-like units): the mint then
    /// takes Lightning top-ups in this unit at the last fresh price.
    pub price: Option<PriceSource>,
}

/// Where a fiat-like unit's price comes from: a URL answering JSON that holds the price of
/// one bitcoin, e.g. `{"bitcoin": {"usd": 97000.5}}` with `pointer = "/bitcoin/usd"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceSource {
    /// The price URL (HTTP GET, JSON answer).
    pub url: String,
    /// JSON pointer (RFC 6901) to the price of one bitcoin in the answer.
    pub pointer: String,
    /// Units per currency unit of that price: 100 when the unit is cents of a dollar price.
    pub units_per_currency: u64,
    /// How often the price is fetched, in seconds.
    pub refresh_secs: u64,
    /// A price older than this (seconds) is not used: quotes in the unit fail instead.
    pub max_age_secs: u64,
}

impl Default for PriceSource {
    fn default() -> Self {
        Self {
            url: String::new(),
            pointer: String::new(),
            units_per_currency: 100,
            refresh_secs: 300,
            max_age_secs: 1800,
        }
    }
}

/// Millisatoshis in one bitcoin.
const MSAT_PER_BTC: f64 = 100_000_000_000.0;

impl PriceSource {
    /// Millisatoshis per unit at `btc_price` (the price of one bitcoin read from the
    /// source), rounded to the nearest msat; `None` for a price that is not a positive
    /// finite number or that makes one unit worth less than 1 msat.
    pub fn msat_per_unit(&self, btc_price: f64) -> Option<u64> {
        let units_per_btc = btc_price * self.units_per_currency as f64;
        if !units_per_btc.is_finite() || units_per_btc <= 0.0 {
            return None;
        }
        let msat = (MSAT_PER_BTC / units_per_btc).round();
        (msat >= 1.0 && msat < u64::MAX as f64).then_some(msat as u64)
    }
}

impl UnitConfig {
    /// A unit with default settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The unit as a Cashu [`CurrencyUnit`].
    pub fn currency_unit(&self) -> CurrencyUnit {
        self.name
            .parse()
            .unwrap_or_else(|_| CurrencyUnit::custom(&self.name))
    }

    /// Whether the unit can be topped up over Lightning (a fixed rate or a live price).
    pub fn takes_lightning(&self) -> bool {
        self.bolt11_rate().is_some() || self.price.is_some()
    }

    /// Millisatoshis per unit for Lightning top-ups, if this unit has a fixed rate.
    pub fn bolt11_rate(&self) -> Option<u64> {
        self.msat_per_unit.or(match self.name.as_str() {
            "sat" => Some(1000),
            "msat" => Some(1),
            _ => None,
        })
    }
}

impl Default for UnitConfig {
    fn default() -> Self {
        Self {
            name: "sat".to_string(),
            input_fee_ppk: 0,
            max_order: 32,
            msat_per_unit: None,
            min_mint: 1,
            max_mint: 1_000_000,
            price: None,
        }
    }
}

/// Mint description served by NUT-06 `/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfoConfig {
    /// Short name.
    pub name: String,
    /// One-line description.
    pub description: Option<String>,
    /// Longer description.
    pub description_long: Option<String>,
    /// Message of the day.
    pub motd: Option<String>,
    /// Icon URL.
    pub icon_url: Option<String>,
    /// Terms of service URL.
    pub tos_url: Option<String>,
    /// Contact methods (`email`, `nostr`, …).
    pub contact: Vec<Contact>,
    /// Public URLs of this mint.
    pub urls: Vec<String>,
}

impl Default for InfoConfig {
    fn default() -> Self {
        Self {
            name: "Coinslot mint".to_string(),
            description: Some("A closed-loop Cashu mint: top up, then pay per use.".to_string()),
            description_long: None,
            motd: None,
            icon_url: None,
            tos_url: None,
            contact: Vec::new(),
            urls: Vec::new(),
        }
    }
}

/// One way to reach the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// `email`, `nostr`, `twitter`, …
    pub method: String,
    /// The address.
    pub info: String,
}

/// Bounds on what one request may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Inputs per swap.
    pub max_inputs: usize,
    /// Outputs per swap, mint or restore.
    pub max_outputs: usize,
    /// Ys per checkstate.
    pub max_checkstate: usize,
    /// Bytes in one proof secret.
    pub max_secret_len: usize,
    /// Bytes in one serialized witness.
    pub max_witness_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inputs: 1000,
            max_outputs: 1000,
            max_checkstate: 1000,
            max_secret_len: 1024,
            max_witness_len: 8192,
        }
    }
}

impl MintConfig {
    /// Checks the configuration; the error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.units.is_empty() {
            return Err("mint.units: at least one unit is required".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, unit) in self.units.iter().enumerate() {
            let key = format!("mint.units[{i}]");
            let name = unit.name.as_str();
            if name.is_empty()
                || name.len() > 32
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!(
                    "{key}.name: `{name}` must be 1 to 32 characters of a-z, 0-9 or _"
                ));
            }
            if name == "auth" {
                return Err(format!("{key}.name: `auth` is reserved for NUT-22"));
            }
            if !seen.insert(name) {
                return Err(format!("{key}.name: unit `{name}` is listed twice"));
            }
            if unit.max_order == 0 || unit.max_order > 64 {
                return Err(format!(
                    "{key}.max_order: {} must be between 1 and 64",
                    unit.max_order
                ));
            }
            if unit.input_fee_ppk > 100_000 {
                return Err(format!(
                    "{key}.input_fee_ppk: {} is more than 100 units per input",
                    unit.input_fee_ppk
                ));
            }
            if unit.msat_per_unit == Some(0) {
                return Err(format!("{key}.msat_per_unit: must be at least 1"));
            }
            if let Some(price) = &unit.price {
                if unit.msat_per_unit.is_some() || matches!(name, "sat" | "msat") {
                    return Err(format!(
                        "{key}.price: a live price is for fiat-like units without msat_per_unit"
                    ));
                }
                if !(price.url.starts_with("http://") || price.url.starts_with("https://")) {
                    return Err(format!(
                        "{key}.price.url: `{}` is not an http(s) URL",
                        price.url
                    ));
                }
                if !price.pointer.starts_with('/') {
                    return Err(format!(
                        "{key}.price.pointer: `{}` is not a JSON pointer (like /bitcoin/usd)",
                        price.pointer
                    ));
                }
                if price.units_per_currency == 0 || price.refresh_secs == 0 {
                    return Err(format!(
                        "{key}.price: units_per_currency and refresh_secs must be at least 1"
                    ));
                }
                if price.max_age_secs < price.refresh_secs {
                    return Err(format!(
                        "{key}.price.max_age_secs: must be at least refresh_secs"
                    ));
                }
            }
            if unit.min_mint == 0 || unit.min_mint > unit.max_mint {
                return Err(format!(
                    "{key}.min_mint/max_mint: need 1 <= min_mint ({}) <= max_mint ({})",
                    unit.min_mint, unit.max_mint
                ));
            }
        }
        let limits = &self.limits;
        for (key, value) in [
            ("mint.limits.max_inputs", limits.max_inputs),
            ("mint.limits.max_outputs", limits.max_outputs),
            ("mint.limits.max_checkstate", limits.max_checkstate),
            ("mint.limits.max_secret_len", limits.max_secret_len),
            ("mint.limits.max_witness_len", limits.max_witness_len),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        if self.quote_ttl_secs == 0 {
            return Err("mint.quote_ttl_secs: must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bitcoin_price_becomes_msat_per_unit() {
        let cents = PriceSource::default();
        // $100,000 per bitcoin: a cent is 10 sat.
        assert_eq!(cents.msat_per_unit(100_000.0), Some(10_000));
        assert_eq!(cents.msat_per_unit(30_000.0), Some(33_333));
        let whole = PriceSource {
            units_per_currency: 1,
            ..PriceSource::default()
        };
        assert_eq!(whole.msat_per_unit(100_000.0), Some(1_000_000));
        for bad in [0.0, -5.0, f64::NAN, f64::INFINITY, 1e30] {
            assert_eq!(cents.msat_per_unit(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_price_source_is_only_for_fiat_like_units() {
        let priced = |name: &str, fixed: Option<u64>| MintConfig {
            units: vec![UnitConfig {
                msat_per_unit: fixed,
                price: Some(PriceSource {
                    url: "https://prices.example/btc".into(),
                    pointer: "/bitcoin/usd".into(),
                    ..PriceSource::default()
                }),
                ..UnitConfig::new(name)
            }],
            ..MintConfig::default()
        };
        assert!(priced("usd", None).validate().is_ok());
        assert!(priced("sat", None)
            .validate()
            .unwrap_err()
            .contains("price"));
        assert!(priced("usd", Some(10))
            .validate()
            .unwrap_err()
            .contains("price"));
        let mut bad = priced("usd", None);
        bad.units[0].price.as_mut().unwrap().pointer = "bitcoin.usd".into();
        assert!(bad.validate().unwrap_err().contains("JSON pointer"));
    }
}
