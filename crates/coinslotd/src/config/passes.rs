//! `[passes]`: routes sold by the minute, and the hooks told about passes.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[passes]`: routes sold by the minute. A pass bought at `path` (or with a token on one
/// of a scope's routes) opens them until it runs out; see `coinslot_layer::pass`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassesConfig {
    /// Where passes are sold (`POST` with `X-Cashu`).
    pub path: String,
    /// Seconds in a minute (60; shorter only for demos and tests).
    pub minute_secs: u64,
    /// The scopes: `[[passes.scopes]]`.
    pub scopes: Vec<PassScopeConfig>,
    /// What to run when a pass is bought, extended, runs out or is revoked.
    pub hooks: PassHooksConfig,
}

impl Default for PassesConfig {
    fn default() -> Self {
        Self {
            path: "/pass".into(),
            minute_secs: 60,
            scopes: Vec::new(),
            hooks: PassHooksConfig::default(),
        }
    }
}

/// `[passes.hooks]`: a command and/or a webhook told about every pass event (see
/// `coinslotd::hooks`). A failing hook on a purchase refunds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassHooksConfig {
    /// Program and leading arguments; `<event> <pass id> <scope> <client key or ->` follow.
    pub command: Vec<String>,
    /// A URL that gets each event as JSON (`POST`).
    pub webhook: Option<String>,
    /// How long a hook may take, in seconds.
    pub timeout_secs: u64,
    /// How often expiries and revocations are looked for, in seconds.
    pub watch_secs: u64,
}

impl PassHooksConfig {
    /// Checks what serde cannot; the message names the key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.into()));
        if self.watch_secs == 0 || self.timeout_secs == 0 {
            return fail("passes.hooks: watch_secs and timeout_secs must be at least 1");
        }
        if let Some(url) = &self.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return fail("passes.hooks.webhook: must be an http:// or https:// URL");
            }
        }
        Ok(())
    }
}

impl Default for PassHooksConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            webhook: None,
            timeout_secs: 10,
            watch_secs: 5,
        }
    }
}

/// The longest pass scope name.
pub const MAX_SCOPE_NAME: usize = 24;

/// `[[passes.scopes]]`: a set of routes one pass opens and its price per minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassScopeConfig {
    /// The scope's name (written into its passes, named in purchase bodies).
    pub name: String,
    /// Price of one minute.
    pub price: u64,
    /// Unit of the price [default: the mint's first unit].
    pub unit: Option<String>,
    /// Routes: `"/vpn/*"` (any method) or `"GET /status"`, patterns as in upstream prices.
    /// Empty only for the forward proxy's scope (`[forward] scope`).
    #[serde(default)]
    pub routes: Vec<String>,
}

impl PassesConfig {
    /// Checks what serde cannot (the scopes against the mint's `units`); the message names
    /// the key. `hooks` are checked by [`PassHooksConfig::validate`].
    pub(super) fn validate(
        &self,
        units: &[coinslot_mint::cashu::nuts::CurrencyUnit],
    ) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.into()));
        if self.minute_secs == 0 {
            return fail("passes.minute_secs: must be at least 1");
        }
        if !self.path.starts_with('/') {
            return fail("passes.path: must start with /");
        }
        self.scopes(units)?;
        Ok(())
    }

    /// The scopes as the layer takes them; the error names the key.
    pub fn scopes(
        &self,
        units: &[coinslot_mint::cashu::nuts::CurrencyUnit],
    ) -> Result<Vec<coinslot::PassScope>, ConfigError> {
        let mut names = std::collections::HashSet::new();
        self.scopes
            .iter()
            .enumerate()
            .map(|(i, scope)| {
                let key = format!("passes.scopes[{i}]");
                let fail = |msg: String| ConfigError(format!("{key}.{msg}"));
                if scope.name.is_empty() || !names.insert(scope.name.as_str()) {
                    return Err(fail("name: must be set and unique".into()));
                }
                // Short and plain: the name is inside every pass, which must fit a SOCKS5
                // password (255 bytes).
                let plain = scope.name.len() <= MAX_SCOPE_NAME
                    && scope
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !plain {
                    return Err(fail(format!(
                        "name: at most {MAX_SCOPE_NAME} letters, digits, - or _"
                    )));
                }
                if scope.price == 0 {
                    return Err(fail("price: must be at least 1".into()));
                }
                let unit = match &scope.unit {
                    None => units
                        .first()
                        .cloned()
                        .ok_or_else(|| fail("unit: the mint has no unit".into()))?,
                    Some(name) => units
                        .iter()
                        .find(|u| u.to_string() == *name)
                        .cloned()
                        .ok_or_else(|| fail(format!("unit: the mint does not issue `{name}`")))?,
                };
                let mut out =
                    coinslot::PassScope::new(&scope.name, coinslot::Price::new(scope.price, unit));
                for route in &scope.routes {
                    let (method, pattern) = match route.trim().split_once(' ') {
                        Some((method, pattern)) => (method, pattern.trim()),
                        None => ("*", route.trim()),
                    };
                    if !pattern.starts_with('/') {
                        return Err(fail(format!(
                            "routes: `{route}` must be a path starting with /"
                        )));
                    }
                    out = out
                        .try_route(method, pattern)
                        .map_err(|e| fail(format!("routes: {e}")))?;
                }
                Ok(out)
            })
            .collect()
    }
}
