//! The `[proxy]` section of `coinslotd`'s config: upstreams and their price tables.
//!
//! ```toml
//! [proxy]
//! timeout_secs = 60
//!
//! [[proxy.upstreams]]
//! name = "search"
//! url = "http://127.0.0.1:8080"
//! routes = [
//!   { method = "GET", path = "/search", price = 2, unit = "sat" },
//!   { method = "POST", path = "/v1/chat/{model}", price = 500, metered = true },
//!   { path = "/health", free = true },
//! ]
//!
//! # An OpenAI-compatible API, priced per model from the usage it reports.
//! [[proxy.upstreams]]
//! name = "llm"
//! url = "http://127.0.0.1:8081"
//! prefix = "/v1"
//! max_tokens = 4096
//! routes = [
//!   { method = "POST", path = "/v1/chat/completions", usage = "openai" },
//!   { method = "GET", path = "/v1/models", free = true },
//! ]
//! models = { "small-1" = { prompt = 1, completion = 4 } }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use coinslot_layer::cashu::nuts::CurrencyUnit;
use coinslot_layer::{Price, PriceTable, Retry};
use serde::{Deserialize, Serialize};

/// Header prefix telling the upstream what was paid: `-Amount`, `-Unit`, `-Mode`, `-Via`.
pub const DEFAULT_PAID_HEADER: &str = "x-coinslot-paid";
/// Header in which an upstream reports the actual cost of a metered request.
pub const DEFAULT_COST_HEADER: &str = "x-coinslot-cost";

/// The reverse proxy: where requests go and what they cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Upstreams, tried in order: the first whose `hosts` and `prefix` match gets the request.
    pub upstreams: Vec<UpstreamConfig>,
    /// Prefix of the headers that tell the upstream what a request paid
    /// (`<prefix>-amount`, `-unit`, `-mode`, `-via`).
    pub paid_header: String,
    /// Header in which the upstream reports a metered request's actual cost.
    pub cost_header: String,
    /// Seconds to wait for an upstream to start answering (and between body chunks).
    pub timeout_secs: u64,
    /// Seconds to wait for a connection to an upstream.
    pub connect_timeout_secs: u64,
    /// The longest request body a `usage` route reads before payment (to find its model).
    pub usage_body_bytes: u64,
    /// How long a minute of a websocket connection on a `per_minute` route lasts, in
    /// seconds (60; shorter only for tests and demos).
    pub minute_secs: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            paid_header: DEFAULT_PAID_HEADER.into(),
            cost_header: DEFAULT_COST_HEADER.into(),
            timeout_secs: 60,
            connect_timeout_secs: 5,
            usage_body_bytes: 1 << 20,
            minute_secs: 60,
        }
    }
}

/// One upstream service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A name for logs and errors.
    pub name: String,
    /// Base URL requests are forwarded to (`http://` or `https://`, optionally with a path).
    pub url: String,
    /// Host names this upstream serves (the request's `Host`, without port); empty: any.
    /// `*.example.com` matches every subdomain.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix this upstream serves.
    #[serde(default = "root")]
    pub prefix: String,
    /// Whether to remove `prefix` from the path before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// What happens to a request no route matches.
    #[serde(default)]
    pub unlisted: Unlisted,
    /// How retries of paid requests are served on this upstream's routes, unless a route
    /// says otherwise: `stored` (the default: the answer is kept and sent again, nothing
    /// runs twice), `rerun` (the upstream is called again, no second charge) or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Prices by method and path; the first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Prices per model, for the routes priced by `usage`: the model a request names (in its
    /// JSON body) must be here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelPrice>,
    /// The most output tokens a `usage` route's request may ask for (`max_tokens` or
    /// `max_completion_tokens`), and what is reserved for one that names none.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
}

fn default_max_tokens() -> u64 {
    4096
}

/// What one model costs, in the unit of the route that uses it, per 1,000 tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Per 1,000 prompt (input) tokens.
    pub prompt: u64,
    /// Per 1,000 completion (output) tokens.
    pub completion: u64,
}

impl ModelPrice {
    /// The cost of `prompt` and `completion` tokens, rounded up to a whole unit.
    pub fn cost(&self, prompt: u64, completion: u64) -> u64 {
        let total = u128::from(prompt) * u128::from(self.prompt)
            + u128::from(completion) * u128::from(self.completion);
        u64::try_from(total.div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// How a route's cost is read from its answer's usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageFormat {
    /// OpenAI-style: the request body names its `model` (and may cap its output with
    /// `max_tokens`/`max_completion_tokens`), and the answer ends with a `usage` object
    /// (`prompt_tokens`, `completion_tokens`): the JSON body, or the last server-sent event
    /// of a stream.
    Openai,
}

fn root() -> String {
    "/".into()
}

/// What happens to requests no route of an upstream matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlisted {
    /// `404`: only listed routes are reachable (a forgotten route is never free by accident).
    #[default]
    Deny,
    /// Forwarded without charge.
    Free,
}

/// One priced (or free) route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// HTTP method, or `*` for any.
    #[serde(default = "any_method")]
    pub method: String,
    /// Path pattern: literal segments, `{name}` or `:name` for one segment, a trailing `*`
    /// for the rest. Matched against the path the client sent, before a `strip_prefix`.
    pub path: String,
    /// Price per request (for a metered route: the most it can cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
    /// Unit of the price (one the mint issues).
    #[serde(default = "sat")]
    pub unit: String,
    /// The upstream reports the actual cost in the cost header (or in a trailer of that
    /// name, at the end of its answer).
    #[serde(default, skip_serializing_if = "is_false")]
    pub metered: bool,
    /// Priced per model from the upstream's `models`, charged by the usage the answer
    /// reports at its end (`openai`); no `price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageFormat>,
    /// No charge.
    #[serde(default, skip_serializing_if = "is_false")]
    pub free: bool,
    /// Shown to people on the top-up page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How a retry of a paid request is served (the upstream's `retry` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// A websocket connection opened on this route (paid `price` for its first minute)
    /// pays this much for each further minute from the session or key balance that opened
    /// it, and is closed when that balance cannot pay; opened with a one-shot token or a
    /// credential, it lasts its first minute. Unset: a connection is paid once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u64>,
    /// On a `metered` or `usage` route: what an answer that ends without reporting its
    /// cost (no cost header or trailer, no `usage`) is billed; at most the reservation,
    /// which is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<u64>,
}

fn any_method() -> String {
    "*".into()
}

fn sat() -> String {
    "sat".into()
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A proxy configuration that cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProxyConfigError(pub String);

impl RouteConfig {
    /// `method` on `path` at `price` sat (set `unit`, `metered`, `description` on the result
    /// for anything else).
    pub fn paid(method: &str, path: &str, price: u64) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            price: Some(price),
            unit: sat(),
            metered: false,
            usage: None,
            free: false,
            description: None,
            retry: None,
            per_minute: None,
            fallback: None,
        }
    }

    /// `method` on `path` priced per model by the usage its answers report (`unit` sat).
    pub fn usage(method: &str, path: &str, format: UsageFormat) -> Self {
        Self {
            price: None,
            usage: Some(format),
            ..Self::paid(method, path, 0)
        }
    }

    /// `method` on `path` free of charge.
    pub fn free(method: &str, path: &str) -> Self {
        Self {
            price: None,
            free: true,
            ..Self::paid(method, path, 0)
        }
    }

    /// The price of this route (`None`: free), checked against the units the mint issues;
    /// `retry` is the upstream's rule, used when the route names none.
    pub fn to_price(
        &self,
        key: &str,
        units: &[CurrencyUnit],
        retry: Retry,
    ) -> Result<Option<Price>, ProxyConfigError> {
        let err = |msg: String| Err(ProxyConfigError(format!("{key}: {msg}")));
        if self.free && self.retry.is_some() {
            return err("`retry` is for paid routes; a free route has nothing to retry".into());
        }
        let retry = self.retry.unwrap_or(retry);
        if self.usage.is_some() {
            if self.free || self.price.is_some() || self.metered {
                return err(
                    "a `usage` route is priced by its models: no `price`, `free` or `metered`"
                        .into(),
                );
            }
            // The most a request can cost is known per request: a placeholder here.
            let unit = self.unit_in(key, units)?;
            return Ok(Some(Price::metered(1, unit).retry(retry)));
        }
        match (self.free, self.price) {
            (true, Some(_)) => {
                err("a route is either `free = true` or has a `price`, not both".into())
            }
            (true, None) if self.metered => err("a free route cannot be `metered`".into()),
            (true, None) => Ok(None),
            (false, None) => err("missing `price` (or `free = true`)".into()),
            (false, Some(0)) => err("`price` must be at least 1 (use `free = true`)".into()),
            (false, Some(amount)) => {
                let unit = self.unit_in(key, units)?;
                let price = if self.metered {
                    Price::metered(amount, unit)
                } else {
                    Price::new(amount, unit)
                };
                Ok(Some(price.retry(retry)))
            }
        }
    }
}

impl RouteConfig {
    fn unit_in(&self, key: &str, units: &[CurrencyUnit]) -> Result<CurrencyUnit, ProxyConfigError> {
        units
            .iter()
            .find(|u| u.to_string() == self.unit)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = units.iter().map(|u| u.to_string()).collect();
                ProxyConfigError(format!(
                    "{key}.unit: the mint has no unit `{}` (it has: {})",
                    self.unit,
                    known.join(", ")
                ))
            })
    }
}

impl UpstreamConfig {
    /// The same routes, paid only where they are priced by `usage` (so a lookup says whether
    /// the first route that matches is one), checked.
    pub fn usage_table(
        &self,
        key: &str,
        units: &[CurrencyUnit],
    ) -> Result<PriceTable, ProxyConfigError> {
        self.table(key, |route, route_key| match route.usage {
            Some(_) if self.models.is_empty() => Err(ProxyConfigError(format!(
                "{route_key}.usage: the upstream has no `models` to price it by"
            ))),
            Some(_) => Ok(Some(Price::metered(1, route.unit_in(route_key, units)?))),
            None => Ok(None),
        })
    }

    /// What a further minute of a websocket costs, per route (routes without `per_minute`
    /// are free here).
    pub fn minute_table(
        &self,
        key: &str,
        units: &[CurrencyUnit],
    ) -> Result<PriceTable, ProxyConfigError> {
        self.table(key, |route, route_key| match route.per_minute {
            Some(_) if route.price.is_none() || route.metered || route.usage.is_some() => {
                Err(ProxyConfigError(format!(
                    "{route_key}.per_minute: needs a fixed `price` (the first minute)"
                )))
            }
            Some(0) => Err(ProxyConfigError(format!(
                "{route_key}.per_minute: must be at least 1 (leave it out to charge once)"
            ))),
            Some(amount) => Ok(Some(Price::new(amount, route.unit_in(route_key, units)?))),
            None => Ok(None),
        })
    }

    /// What a metered answer that reports no cost is billed, per route (routes without
    /// `fallback` are free here: the reservation is billed).
    pub fn fallback_table(
        &self,
        key: &str,
        units: &[CurrencyUnit],
    ) -> Result<PriceTable, ProxyConfigError> {
        self.table(key, |route, route_key| match route.fallback {
            Some(_) if !route.metered && route.usage.is_none() => Err(ProxyConfigError(format!(
                "{route_key}.fallback: only for `metered` or `usage` routes"
            ))),
            Some(amount) => Ok(Some(Price::new(amount, route.unit_in(route_key, units)?))),
            None => Ok(None),
        })
    }

    /// The upstream's price table, checked.
    pub fn price_table(
        &self,
        key: &str,
        units: &[CurrencyUnit],
    ) -> Result<PriceTable, ProxyConfigError> {
        let retry = self.retry.unwrap_or_default();
        self.table(key, |route, route_key| {
            if !route.path.starts_with('/') {
                return Err(ProxyConfigError(format!(
                    "{route_key}.path: `{}` must start with `/`",
                    route.path
                )));
            }
            // Earnings count per upstream and route: `name: METHOD path`.
            let method = match route.method.trim() {
                "" | "*" => "*".to_string(),
                method => method.to_ascii_uppercase(),
            };
            let label = format!("{}: {method} {}", self.name, route.path);
            Ok(route
                .to_price(route_key, units, retry)?
                .map(|price| price.labelled(label)))
        })
    }

    /// A table of the routes in order, each priced by `price_of` (given the route and its
    /// config key).
    fn table(
        &self,
        key: &str,
        price_of: impl Fn(&RouteConfig, &str) -> Result<Option<Price>, ProxyConfigError>,
    ) -> Result<PriceTable, ProxyConfigError> {
        let mut table = PriceTable::new();
        for (i, route) in self.routes.iter().enumerate() {
            let route_key = format!("{key}.routes[{i}]");
            let price = price_of(route, &route_key)?;
            table = table
                .try_route(&route.method, &route.path, price)
                .map_err(|e| ProxyConfigError(format!("{route_key}.method: {e}")))?;
        }
        Ok(table)
    }
}

impl ProxyConfig {
    /// Upstream timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Checks everything serde cannot: URLs, names, prices against the mint's units.
    pub fn validate(&self, units: &[CurrencyUnit]) -> Result<(), ProxyConfigError> {
        crate::routes::Routes::compile(self, units).map(|_| ())
    }
}
