//! Compiled routes: which upstream a request goes to and what it costs. [`ProxyRoutes`] is
//! shared by the paywall (as its [`Pricing`]) and the forwarder, and can be replaced at
//! runtime (new prices without a restart) with one atomic swap.

use std::sync::Arc;

use arc_swap::ArcSwap;
use coinslot_layer::cashu::nuts::CurrencyUnit;
use coinslot_layer::discovery::{Offer, Operation};
use coinslot_layer::{Lookup, Price, PriceTable, Pricing};
use http::request::Parts;
use http::{HeaderMap, Method};
use reqwest::Url;

use crate::config::{ModelPrice, ProxyConfig, ProxyConfigError, Unlisted, UpstreamConfig};
use crate::usage::UsageCharge;

/// One upstream, ready to use.
#[derive(Debug)]
pub struct Upstream {
    /// Its name from the config.
    pub name: String,
    /// Base URL.
    pub base: Url,
    hosts: Vec<String>,
    /// Normalized prefix: no trailing `/`; empty for the root.
    prefix: String,
    strip_prefix: bool,
    unlisted: Unlisted,
    table: PriceTable,
    /// The same routes, paid only where they are priced by `usage`.
    usage_table: PriceTable,
    /// The same routes, priced where a websocket pays `per_minute`.
    minute_table: PriceTable,
    /// The same routes, priced where a metered answer without a cost has a `fallback`.
    fallback_table: PriceTable,
    models: Arc<std::collections::BTreeMap<String, ModelPrice>>,
    max_tokens: u64,
}

/// A route priced per model by the usage its answers report.
#[derive(Debug, Clone)]
pub struct UsageRoute {
    /// The unit of its prices.
    pub unit: CurrencyUnit,
    /// Prices per model.
    pub models: Arc<std::collections::BTreeMap<String, ModelPrice>>,
    /// The most output tokens a request may ask for.
    pub max_tokens: u64,
}

impl Upstream {
    fn serves(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = self.hosts.is_empty()
            || host.is_some_and(|host| {
                self.hosts
                    .iter()
                    .any(|pattern| match pattern.strip_prefix("*.") {
                        Some(domain) => host
                            .strip_suffix(domain)
                            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                        None => pattern == host,
                    })
            });
        host_ok && under_prefix(&self.prefix, path).is_some()
    }

    /// The URL a request for `path_and_query` is forwarded to.
    pub fn target(&self, path: &str, query: Option<&str>) -> Url {
        let rest = if self.strip_prefix {
            under_prefix(&self.prefix, path).unwrap_or(path)
        } else {
            path
        };
        let mut url = self.base.clone();
        let base_path = self.base.path().trim_end_matches('/');
        let rest = if rest.is_empty() { "/" } else { rest };
        url.set_path(&format!("{base_path}{rest}"));
        url.set_query(query);
        url
    }
}

/// `path` below `prefix` (`""` or starting with `/`), if it is.
fn under_prefix<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The upstream.
    pub upstream: Arc<Upstream>,
    /// What its table says.
    pub lookup: Lookup,
    /// Set when the route is priced per model by usage.
    pub usage: Option<UsageRoute>,
    /// What each further minute of a websocket on this route costs, if it is charged so.
    pub per_minute: Option<Price>,
    /// What a metered answer that reports no cost is billed, when not the reservation.
    pub fallback: Option<u64>,
}

impl Resolved {
    /// Whether the request may be forwarded (listed, or unlisted on a permissive upstream).
    pub fn allowed(&self) -> bool {
        self.lookup != Lookup::Unlisted || self.upstream.unlisted == Unlisted::Free
    }
}

/// A compiled [`ProxyConfig`].
#[derive(Debug)]
pub struct Routes {
    upstreams: Vec<Arc<Upstream>>,
    config: ProxyConfig,
}

impl Routes {
    /// Checks and compiles `config`; prices must be in `units`.
    pub fn compile(config: &ProxyConfig, units: &[CurrencyUnit]) -> Result<Self, ProxyConfigError> {
        let err = |msg: String| Err(ProxyConfigError(msg));
        if config.timeout_secs == 0 {
            return err("proxy.timeout_secs: must be at least 1".into());
        }
        if config.minute_secs == 0 {
            return err("proxy.minute_secs: must be at least 1".into());
        }
        if config.connect_timeout_secs == 0 {
            return err("proxy.connect_timeout_secs: must be at least 1".into());
        }
        for (key, value) in [
            ("proxy.paid_header", &config.paid_header),
            ("proxy.cost_header", &config.cost_header),
        ] {
            if http::HeaderName::from_bytes(value.as_bytes()).is_err() {
                return err(format!("{key}: `{value}` is not a header name"));
            }
        }
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (i, upstream) in config.upstreams.iter().enumerate() {
            upstreams.push(Arc::new(compile_upstream(
                &format!("proxy.upstreams[{i}]"),
                upstream,
                units,
            )?));
        }
        for (i, upstream) in upstreams.iter().enumerate() {
            if upstreams[..i].iter().any(|u| u.name == upstream.name) {
                return err(format!(
                    "proxy.upstreams[{i}].name: `{}` is used twice",
                    upstream.name
                ));
            }
        }
        Ok(Self {
            upstreams,
            config: config.clone(),
        })
    }

    /// The config these routes were compiled from.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// The upstream for a request, and what its price table says.
    pub fn resolve(
        &self,
        headers: &HeaderMap,
        uri: &http::Uri,
        method: &Method,
    ) -> Option<Resolved> {
        let host = request_host(headers, uri);
        let path = uri.path();
        let upstream = self
            .upstreams
            .iter()
            .find(|u| u.serves(host.as_deref(), path))?;
        let usage = match upstream.usage_table.lookup(method, path) {
            Lookup::Paid(price) => Some(UsageRoute {
                unit: price.unit,
                models: Arc::clone(&upstream.models),
                max_tokens: upstream.max_tokens,
            }),
            Lookup::Free | Lookup::Unlisted => None,
        };
        let paid = |table: &PriceTable| match table.lookup(method, path) {
            Lookup::Paid(price) => Some(price),
            Lookup::Free | Lookup::Unlisted => None,
        };
        let per_minute = paid(&upstream.minute_table);
        let fallback = paid(&upstream.fallback_table).map(|price| price.amount);
        Some(Resolved {
            upstream: Arc::clone(upstream),
            lookup: upstream.table.lookup(method, path),
            usage,
            per_minute,
            fallback,
        })
    }
}

fn compile_upstream(
    key: &str,
    config: &UpstreamConfig,
    units: &[CurrencyUnit],
) -> Result<Upstream, ProxyConfigError> {
    let err = |msg: String| Err(ProxyConfigError(format!("{key}.{msg}")));
    if config.name.trim().is_empty() {
        return err("name: must not be empty".into());
    }
    let base = match Url::parse(&config.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        Ok(_) => return err(format!("url: `{}` is not an http(s) URL", config.url)),
        Err(e) => return err(format!("url: `{}` is not a URL: {e}", config.url)),
    };
    if base.query().is_some() || base.fragment().is_some() {
        return err(format!(
            "url: `{}` must not have a query or fragment",
            config.url
        ));
    }
    if !config.prefix.starts_with('/') {
        return err(format!("prefix: `{}` must start with `/`", config.prefix));
    }
    for host in &config.hosts {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) {
            return err(format!(
                "hosts: `{host}` is not a host name (no scheme, port or path; `*.` only as a prefix)"
            ));
        }
    }
    let table = config.price_table(key, units)?;
    let usage_table = config.usage_table(key, units)?;
    let minute_table = config.minute_table(key, units)?;
    let fallback_table = config.fallback_table(key, units)?;
    if config.max_tokens == 0 {
        return err("max_tokens: must be at least 1".into());
    }
    for (model, price) in &config.models {
        if price.prompt == 0 && price.completion == 0 {
            return err(format!(
                "models.{model}: a model that costs nothing belongs on a free route"
            ));
        }
    }
    Ok(Upstream {
        name: config.name.clone(),
        base,
        hosts: config
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        prefix: config.prefix.trim_end_matches('/').to_string(),
        strip_prefix: config.strip_prefix,
        unlisted: config.unlisted,
        table,
        usage_table,
        minute_table,
        fallback_table,
        models: Arc::new(config.models.clone()),
        max_tokens: config.max_tokens,
    })
}

/// The request's host, lower-case, without port.
fn request_host(headers: &HeaderMap, uri: &http::Uri) -> Option<String> {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.host())?;
    let host = match raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets' content.
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => raw.split(':').next().unwrap_or(raw),
    };
    Some(host.to_ascii_lowercase())
}

/// The routes in force: shared by the paywall and the forwarder, replaceable at runtime.
#[derive(Debug, Clone)]
pub struct ProxyRoutes {
    current: Arc<ArcSwap<Routes>>,
    units: Arc<Vec<CurrencyUnit>>,
}

impl ProxyRoutes {
    /// Compiles `config` with prices in `units`.
    pub fn new(config: &ProxyConfig, units: Vec<CurrencyUnit>) -> Result<Self, ProxyConfigError> {
        let routes = Routes::compile(config, &units)?;
        Ok(Self {
            current: Arc::new(ArcSwap::from_pointee(routes)),
            units: Arc::new(units),
        })
    }

    /// The routes in force now.
    pub fn load(&self) -> Arc<Routes> {
        self.current.load_full()
    }

    /// Whether `upstreams` would replace the current ones (what [`Self::replace_upstreams`]
    /// checks), without replacing them.
    pub fn check_upstreams(&self, upstreams: &[UpstreamConfig]) -> Result<(), ProxyConfigError> {
        let config = ProxyConfig {
            upstreams: upstreams.to_vec(),
            ..self.load().config.clone()
        };
        Routes::compile(&config, &self.units).map(|_| ())
    }

    /// Replaces the upstreams (and their prices), keeping the other settings. Requests
    /// already routed finish with the old routes; nothing changes if `upstreams` is invalid.
    pub fn replace_upstreams(
        &self,
        upstreams: Vec<UpstreamConfig>,
    ) -> Result<(), ProxyConfigError> {
        let config = ProxyConfig {
            upstreams,
            ..self.load().config.clone()
        };
        let routes = Routes::compile(&config, &self.units)?;
        self.current.store(Arc::new(routes));
        Ok(())
    }
}

impl ProxyRoutes {
    /// Every upstream's routes as the discovery document shows them (see
    /// [`coinslot_layer::discovery`]): fixed and metered prices, free routes, and `usage`
    /// routes priced per model (no fixed amount; the models' prices in the description).
    pub fn operations(&self) -> Vec<Operation> {
        let routes = self.load();
        let mut operations = Vec::new();
        for upstream in &routes.config.upstreams {
            for route in &upstream.routes {
                let offer = match (route.free, route.usage, route.price) {
                    (true, _, _) => None,
                    (false, Some(_), _) => {
                        let models: Vec<String> = upstream
                            .models
                            .iter()
                            .map(|(name, price)| {
                                format!(
                                    "{name} (prompt {}, completion {})",
                                    price.prompt, price.completion
                                )
                            })
                            .collect();
                        Some(Offer {
                            amount: None,
                            currency: route.unit.clone(),
                            description: Some(format!(
                                "per 1,000 tokens of the model named in the JSON body: {}; the most a request can cost is reserved, and what its answer's usage does not use comes back",
                                models.join(", ")
                            )),
                        })
                    }
                    (false, None, Some(amount)) => Some(Offer {
                        amount: Some(amount),
                        currency: route.unit.clone(),
                        description: route.metered.then(|| {
                            format!(
                                "at most {amount} {}, reserved; the unused part comes back",
                                route.unit
                            )
                        }),
                    }),
                    (false, None, None) => None,
                };
                // A usage route refuses a body without a model before it asks for payment.
                let cheapest = upstream
                    .models
                    .iter()
                    .min_by_key(|(_, price)| price.prompt.saturating_add(price.completion))
                    .map(|(model, _)| model);
                let example = route.usage.and(cheapest).map(|model| {
                    serde_json::json!({
                        "model": model,
                        "messages": [{ "role": "user", "content": "hello" }],
                        "max_tokens": 16,
                    })
                });
                operations.push(Operation {
                    method: route.method.clone(),
                    path: route.path.clone(),
                    offer,
                    summary: route.description.clone(),
                    example,
                });
            }
        }
        operations
    }
}

impl Pricing for ProxyRoutes {
    fn price(&self, request: &Parts) -> Option<Price> {
        let resolved =
            self.current
                .load()
                .resolve(&request.headers, &request.uri, &request.method)?;
        let price = match resolved.lookup {
            Lookup::Paid(price) => price,
            Lookup::Free | Lookup::Unlisted => return None,
        };
        let Some(usage) = resolved.usage else {
            return Some(price);
        };
        // The reservation the usage layer worked out from the body; without it (the layer
        // is not in front), the most any request could cost.
        let reservation = match request.extensions.get::<UsageCharge>() {
            Some(charge) => charge.reservation,
            None => usage.most(self.current.load().config.usage_body_bytes),
        };
        Some(Price {
            label: price.label,
            ..Price::metered(reservation, price.unit).retry(price.retry)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;
    use coinslot_layer::Retry;

    fn upstream(name: &str, prefix: &str, hosts: &[&str]) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: "http://127.0.0.1:9/base/".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            prefix: prefix.into(),
            strip_prefix: true,
            unlisted: Unlisted::Deny,
            retry: None,
            models: Default::default(),
            max_tokens: 4096,
            routes: vec![
                RouteConfig::paid("GET", "/api/search", 2),
                RouteConfig::free("*", "/api/free"),
            ],
        }
    }

    fn resolve(
        routes: &Routes,
        host: &str,
        method: Method,
        path: &str,
    ) -> Option<(String, Lookup)> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        let uri: http::Uri = path.parse().unwrap();
        routes
            .resolve(&headers, &uri, &method)
            .map(|r| (r.upstream.name.clone(), r.lookup))
    }

    #[test]
    fn upstreams_are_chosen_by_host_then_prefix() {
        let config = ProxyConfig {
            upstreams: vec![
                upstream("eu", "/api", &["*.eu.example.com"]),
                upstream("api", "/api", &["api.example.com"]),
                upstream("any", "/", &[]),
            ],
            ..ProxyConfig::default()
        };
        let routes = Routes::compile(&config, &[CurrencyUnit::Sat]).unwrap();
        let name = |host, path| resolve(&routes, host, Method::GET, path).map(|r| r.0);
        assert_eq!(
            name("api.example.com:8443", "/api/search").as_deref(),
            Some("api")
        );
        assert_eq!(name("x.eu.example.com", "/api/x").as_deref(), Some("eu"));
        assert_eq!(name("eu.example.com", "/api/x").as_deref(), Some("any"));
        assert_eq!(name("api.example.com", "/apix").as_deref(), Some("any"));
        assert_eq!(name("other", "/api/search").as_deref(), Some("any"));
    }

    #[test]
    fn lookups_follow_the_table() {
        let config = ProxyConfig {
            upstreams: vec![upstream("a", "/", &[])],
            ..ProxyConfig::default()
        };
        let routes = Routes::compile(&config, &[CurrencyUnit::Sat]).unwrap();
        let lookup = |method, path| resolve(&routes, "h", method, path).unwrap().1;
        assert_eq!(
            lookup(Method::GET, "/api/search"),
            Lookup::Paid(Price::sat(2).labelled("a: GET /api/search"))
        );
        assert_eq!(lookup(Method::POST, "/api/search"), Lookup::Unlisted);
        assert_eq!(lookup(Method::DELETE, "/api/free"), Lookup::Free);
    }

    #[test]
    fn targets_join_base_and_path() {
        let config = ProxyConfig {
            upstreams: vec![upstream("a", "/api", &[])],
            ..ProxyConfig::default()
        };
        let routes = Routes::compile(&config, &[CurrencyUnit::Sat]).unwrap();
        let upstream = &routes.upstreams[0];
        assert_eq!(
            upstream.target("/api/search", Some("q=1")).as_str(),
            "http://127.0.0.1:9/base/search?q=1"
        );
        assert_eq!(
            upstream.target("/api", None).as_str(),
            "http://127.0.0.1:9/base/"
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let units = [CurrencyUnit::Sat];
        let check = |upstream: UpstreamConfig| {
            let config = ProxyConfig {
                upstreams: vec![upstream],
                ..ProxyConfig::default()
            };
            Routes::compile(&config, &units).unwrap_err().0
        };
        let mut bad = upstream("a", "/", &[]);
        bad.url = "ftp://x".into();
        assert!(check(bad).starts_with("proxy.upstreams[0].url:"));
        let mut bad = upstream("a", "/", &[]);
        bad.routes[0].unit = "usd".into();
        let msg = check(bad);
        assert!(
            msg.starts_with("proxy.upstreams[0].routes[0].unit:") && msg.contains("sat"),
            "{msg}"
        );
        let mut bad = upstream("a", "/", &[]);
        bad.routes[1].free = false;
        assert!(check(bad).contains("routes[1]: missing `price`"));
        let mut bad = upstream("a", "/", &[]);
        bad.routes[0].method = "GE T".into();
        assert!(check(bad).starts_with("proxy.upstreams[0].routes[0].method:"));
        let mut bad = upstream("a", "/", &[]);
        bad.hosts = vec!["http://x".into()];
        assert!(check(bad).starts_with("proxy.upstreams[0].hosts:"));
    }

    #[test]
    fn retry_rules_come_from_the_route_then_the_upstream() {
        let units = [CurrencyUnit::Sat];
        let mut config: UpstreamConfig = serde_json::from_value(serde_json::json!({
            "name": "llm",
            "url": "http://127.0.0.1:9",
            "retry": "never",
            "routes": [
                { "method": "POST", "path": "/v1/chat", "price": 5 },
                { "method": "GET", "path": "/v1/models", "price": 1, "retry": "rerun" },
            ],
        }))
        .unwrap();
        let table = config.price_table("u", &units).unwrap();
        let chat = table.lookup(&Method::POST, "/v1/chat");
        let models = table.lookup(&Method::GET, "/v1/models");
        let chat_price = Price::sat(5).labelled("llm: POST /v1/chat");
        assert_eq!(chat, Lookup::Paid(chat_price.clone().retry(Retry::Never)));
        assert_eq!(
            models,
            Lookup::Paid(
                Price::sat(1)
                    .retry(Retry::Rerun)
                    .labelled("llm: GET /v1/models")
            )
        );
        config.retry = None;
        let table = config.price_table("u", &units).unwrap();
        assert_eq!(
            table.lookup(&Method::POST, "/v1/chat"),
            Lookup::Paid(chat_price),
            "stored by default"
        );
        let mut free = RouteConfig::free("GET", "/x");
        free.retry = Some(Retry::Rerun);
        config.routes = vec![free];
        let err = config.price_table("u", &units).unwrap_err().0;
        assert!(err.contains("`retry` is for paid routes"), "{err}");
        let bad: Result<UpstreamConfig, _> = serde_json::from_value(
            serde_json::json!({"name": "a", "url": "http://x", "retry": "sometimes"}),
        );
        assert!(bad.unwrap_err().to_string().contains("sometimes"));
    }

    #[test]
    fn replacing_upstreams_is_atomic_and_checked() {
        let config = ProxyConfig {
            upstreams: vec![upstream("a", "/", &[])],
            ..ProxyConfig::default()
        };
        let shared = ProxyRoutes::new(&config, vec![CurrencyUnit::Sat]).unwrap();
        let mut cheaper = upstream("a", "/", &[]);
        cheaper.routes[0].price = Some(1);
        shared.replace_upstreams(vec![cheaper]).unwrap();
        let parts = http::Request::get("/api/search")
            .header("host", "h")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let cheap = Price::sat(1).labelled("a: GET /api/search");
        assert_eq!(shared.price(&parts), Some(cheap.clone()));
        let mut broken = upstream("a", "/", &[]);
        broken.routes[0].price = Some(0);
        assert!(shared.replace_upstreams(vec![broken]).is_err());
        assert_eq!(
            shared.price(&parts),
            Some(cheap),
            "a bad replacement changed prices"
        );
    }
}
