//! `[topup]`: the page where people buy ecash.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[topup]`: the page where people buy ecash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopupConfig {
    /// Serve the page.
    pub enabled: bool,
    /// Where (it hides an upstream's route of the same path).
    pub path: String,
    /// Page title [default: the mint's name].
    pub title: Option<String>,
    /// Preset amounts (in the first unit).
    pub amounts: Vec<u64>,
}

impl Default for TopupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/".into(),
            title: None,
            amounts: vec![100, 500, 1000, 5000],
        }
    }
}

impl TopupConfig {
    /// Checks `path` (see [`check_topup_path`]); the message names the key.
    pub(super) fn validate_path(&self) -> Result<(), ConfigError> {
        check_topup_path(&self.path)
    }

    /// Checks `amounts`; the message names the key. Separate from
    /// [`TopupConfig::validate_path`] because [`super::Config::validate`] has always checked
    /// the two at different points, and the first failure is the one reported.
    pub(super) fn validate_amounts(&self) -> Result<(), ConfigError> {
        if self.amounts.contains(&0) {
            return Err(ConfigError(
                "topup.amounts: amounts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The top-up page's path: a plain path that hides none of coinslotd's own routes.
fn check_topup_path(path: &str) -> Result<(), ConfigError> {
    let fail = |why: &str| Err(ConfigError(format!("topup.path: `{path}` {why}")));
    if !path.starts_with('/') {
        return fail("must start with `/`");
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
    {
        return fail("may only hold letters, digits, `/`, `-`, `_` and `.`");
    }
    let reserved = ["/v1", "/admin", "/_coinslot", "/cashu"];
    let exact = ["/health", "/ready", "/metrics"];
    if exact.contains(&path)
        || reserved
            .iter()
            .any(|r| path == *r || path.starts_with(&format!("{r}/")))
    {
        return fail("is one of coinslotd's own routes");
    }
    Ok(())
}
