//! `[relay]`: a paid front for a nostr relay someone already runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[relay]`: coinslotd in front of any NIP-01 relay. Writes are charged with the paid
/// relay's rules (a `cashu` tag, or a prepaid balance of a NIP-42 authenticated author)
/// before they reach the relay; reads pass through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayFrontConfig {
    /// The relay behind (`ws://host:port`); empty: no relay front.
    pub upstream: String,
    /// Where clients connect (a websocket; `GET` with `Accept: application/nostr+json`
    /// gives the NIP-11 document with the fees).
    pub path: String,
    /// The public URL clients use (`wss://…`): NIP-42 `AUTH` events must name this host.
    pub url: Option<String>,
    /// Name in the NIP-11 document.
    pub name: String,
    /// Description in the NIP-11 document.
    pub description: String,
    /// The unit of the prices (one the mint issues).
    pub unit: String,
    /// The price of a write of a kind not in `kinds`.
    pub price: u64,
    /// Prices per kind (`kinds = { 1 = 2 }`; 0: free).
    pub kinds: BTreeMap<String, u64>,
    /// Accept only tokens locked (NUT-11 P2PK) to the mint's key.
    pub require_lock: bool,
    /// Largest websocket message, in bytes.
    pub max_message_bytes: usize,
    /// How old an `AUTH` event may be, in seconds.
    pub auth_window_secs: u64,
}

impl Default for RelayFrontConfig {
    fn default() -> Self {
        let paid = coinslot_relay::RelayConfig::default();
        Self {
            upstream: String::new(),
            path: "/relay".into(),
            url: None,
            name: paid.name,
            description: paid.description,
            unit: paid.prices.unit,
            price: paid.prices.default,
            kinds: paid
                .prices
                .kinds
                .into_iter()
                .map(|(kind, price)| (kind.to_string(), price))
                .collect(),
            require_lock: paid.require_lock,
            max_message_bytes: paid.max_message_bytes,
            auth_window_secs: paid.auth_window_secs,
        }
    }
}

impl RelayFrontConfig {
    /// Whether a front is configured.
    pub fn enabled(&self) -> bool {
        !self.upstream.trim().is_empty()
    }

    /// The paid relay's rules these settings make.
    pub fn rules(&self) -> Result<coinslot_relay::RelayConfig, ConfigError> {
        let mut kinds = BTreeMap::new();
        for (kind, price) in &self.kinds {
            let number = kind.trim().parse::<u16>().map_err(|_| {
                ConfigError(format!(
                    "relay.kinds: `{kind}` is not an event kind (0 to 65535)"
                ))
            })?;
            kinds.insert(number, *price);
        }
        Ok(coinslot_relay::RelayConfig {
            url: self.url.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            prices: coinslot_relay::Prices {
                unit: self.unit.clone(),
                default: self.price,
                kinds,
            },
            require_lock: self.require_lock,
            max_message_bytes: self.max_message_bytes,
            auth_window_secs: self.auth_window_secs,
            ..coinslot_relay::RelayConfig::default()
        })
    }

    /// Checks what serde cannot; the message names the key.
    pub(super) fn validate(
        &self,
        units: &[coinslot_mint::cashu::nuts::CurrencyUnit],
    ) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if !units.iter().any(|u| u.to_string() == self.unit) {
            return Err(ConfigError(format!(
                "relay.unit: the mint does not issue `{}`",
                self.unit
            )));
        }
        if !self.upstream.starts_with("ws://") {
            return Err(ConfigError(format!(
                "relay.upstream: `{}` must be a ws:// URL (the relay on this host or network)",
                self.upstream
            )));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError(format!(
                "relay.path: `{}` must start with `/`",
                self.path
            )));
        }
        coinslot_relay::PaidRelay::validate(&self.rules()?)
            .map_err(|e| ConfigError(format!("relay: {e}")))
    }
}
