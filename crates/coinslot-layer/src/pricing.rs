//! What a request costs: [`Price`] (with its [`Retry`] rule), the [`Pricing`] trait, a
//! [`PriceTable`] of routes, and the [`PassScope`]s sold by the minute.
//!
//! A pricing sees the request head (method, URI, headers, extensions) and answers `None` for
//! a free request. Three kinds come ready: one fixed [`Price`] for every request, a
//! [`PriceTable`] by method and path pattern, and any closure
//! `Fn(&http::request::Parts) -> Option<Price>` for dynamic prices.

use std::str::FromStr;
use std::sync::Arc;

use coinslot_mint::cashu::nuts::CurrencyUnit;
use http::request::Parts;
use http::Method;

/// How a retry of a paid request is served: the same payment sent again with the same
/// request (method, path, query, body, `Idempotency-Key`), because the client lost the
/// answer. A retry never buys a second run unless the route says [`Retry::Rerun`]; a
/// retry of another request with the same payment is refused as spent (`11001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retry {
    /// The answer the first run gave, byte for byte, without running the handler again
    /// (the default). It is kept up to the layer's size limit; when it was too big to keep
    /// (or its stream never ended), a `GET` or `HEAD` runs again and other methods are
    /// refused as spent.
    #[default]
    Stored,
    /// Runs the handler again, without a second charge (up to the layer's rerun limit):
    /// for idempotent handlers whose answers need not be kept.
    Rerun,
    /// Never: a retry is refused as spent.
    Never,
}

impl Retry {
    /// The name in configuration files: `stored`, `rerun`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Stored => "stored",
            Retry::Rerun => "rerun",
            Retry::Never => "never",
        }
    }

    /// Whether a retry of a request with `method` may run the handler again when no answer
    /// was kept for it.
    pub fn may_rerun(self, method: &Method) -> bool {
        match self {
            Retry::Rerun => true,
            Retry::Never => false,
            Retry::Stored => method == Method::GET || method == Method::HEAD,
        }
    }

    /// Whether the answer is kept for retries.
    pub fn stores(self) -> bool {
        self == Retry::Stored
    }
}

impl FromStr for Retry {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "stored" => Ok(Retry::Stored),
            "rerun" => Ok(Retry::Rerun),
            "never" => Ok(Retry::Never),
            other => Err(format!(
                "retry `{other}`: expected \"stored\", \"rerun\" or \"never\""
            )),
        }
    }
}

/// How a price is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceMode {
    /// The amount is the price.
    Fixed,
    /// The amount is a reservation: the handler reports the actual cost with a
    /// [`Charge`](crate::Charge) response extension and the rest goes back (as change, or
    /// credit to the session that paid).
    Metered,
}

/// A price in one unit of the mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// The amount (the most that can be charged, for a metered price).
    pub amount: u64,
    /// The unit, one the mint issues.
    pub unit: CurrencyUnit,
    /// Fixed or metered.
    pub mode: PriceMode,
    /// How a retry of a request paid at this price is served.
    pub retry: Retry,
    /// The route's name in the earnings ledger and the activity feed (`GET /search`). A
    /// [`PriceTable`] names its routes' prices by method and pattern, a [`PassScope`] by
    /// `pass` and its name; set it with [`Price::labelled`] for prices of your own, whose
    /// earnings otherwise count under no name.
    pub label: Option<Arc<str>>,
}

impl Price {
    /// A fixed price in `unit`.
    pub fn new(amount: u64, unit: CurrencyUnit) -> Self {
        Self {
            amount,
            unit,
            mode: PriceMode::Fixed,
            retry: Retry::Stored,
            label: None,
        }
    }

    /// A fixed price in sat.
    pub fn sat(amount: u64) -> Self {
        Self::new(amount, CurrencyUnit::Sat)
    }

    /// A metered price: reserve `max` in `unit`, charge what the handler reports.
    pub fn metered(max: u64, unit: CurrencyUnit) -> Self {
        Self {
            mode: PriceMode::Metered,
            ..Self::new(max, unit)
        }
    }

    /// The same price with another [`Retry`] rule.
    ///
    /// ```
    /// use coinslot_layer::{Price, Retry};
    ///
    /// // An image generator: a lost answer is not kept, and a retry does not run it again.
    /// let price = Price::sat(50).retry(Retry::Never);
    /// # let _ = price;
    /// ```
    pub fn retry(self, retry: Retry) -> Self {
        Self { retry, ..self }
    }

    /// The same price under the route name `label` (see [`Price::label`]). Keep the names
    /// few (one per route, not per path): each is a row per hour in the ledger.
    ///
    /// ```
    /// use coinslot_layer::Price;
    ///
    /// let price = Price::sat(3).labelled("thumbnail");
    /// assert_eq!(price.label.as_deref(), Some("thumbnail"));
    /// ```
    pub fn labelled(self, label: impl Into<Arc<str>>) -> Self {
        Self {
            label: Some(label.into()),
            ..self
        }
    }

    /// Whether this price is metered.
    pub fn is_metered(&self) -> bool {
        self.mode == PriceMode::Metered
    }
}

/// Decides what a request costs; `None` means free.
pub trait Pricing: Send + Sync + 'static {
    /// The price of the request with this head.
    fn price(&self, request: &Parts) -> Option<Price>;
}

impl Pricing for Price {
    fn price(&self, _: &Parts) -> Option<Price> {
        Some(self.clone())
    }
}

impl<F> Pricing for F
where
    F: Fn(&Parts) -> Option<Price> + Send + Sync + 'static,
{
    fn price(&self, request: &Parts) -> Option<Price> {
        self(request)
    }
}

/// Prices by method and path pattern; the first matching route wins.
///
/// Patterns are matched segment by segment: a literal, `{name}` (or `:name`) for any one
/// segment, and a trailing `*` (or `{*name}`) for the rest of the path.
///
/// ```
/// use coinslot_layer::{Price, PriceTable};
/// use coinslot_layer::cashu::nuts::CurrencyUnit;
///
/// let table = PriceTable::new()
///     .free("GET", "/")
///     .route("GET", "/search", Price::sat(2))
///     .route("POST", "/v1/chat/{model}", Price::metered(500, CurrencyUnit::Sat))
///     .route("*", "/files/*", Price::sat(1));
/// # let _ = table;
/// ```
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    routes: Vec<Route>,
    fallback: Option<Price>,
}

#[derive(Debug, Clone)]
struct Route {
    method: Option<Method>,
    /// The pattern as written (for the discovery document).
    source: String,
    pattern: Pattern,
    price: Option<Price>,
}

impl PriceTable {
    /// An empty table: every request is free until routes are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charges `price` for `method` (or `"*"` for any) on paths matching `pattern`. Its
    /// earnings count under `METHOD pattern` (`GET /search`) unless the price has a
    /// [label](Price::label) already.
    ///
    /// # Panics
    /// If `method` is not a valid HTTP method; tables are built at start-up, so a typo
    /// stops the program before it serves anything. [`PriceTable::try_route`] returns the
    /// error instead.
    pub fn route(self, method: &str, pattern: &str, price: Price) -> Self {
        self.push(method, pattern, Some(price))
    }

    /// Makes `method` on `pattern` free (useful before a broader paid pattern).
    pub fn free(self, method: &str, pattern: &str) -> Self {
        self.push(method, pattern, None)
    }

    /// Like [`PriceTable::route`], returning an error for an invalid method;
    /// `price = None` makes the route free.
    pub fn try_route(
        mut self,
        method: &str,
        pattern: &str,
        price: Option<Price>,
    ) -> Result<Self, String> {
        let method = match method {
            "*" | "" => None,
            m => Some(
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("invalid HTTP method `{m}` in price table"))?,
            ),
        };
        let label = || {
            let method = method.as_ref().map_or("*", Method::as_str);
            Arc::from(format!("{method} {pattern}"))
        };
        let price = price.map(|price| match price.label {
            Some(_) => price,
            None => price.labelled(label()),
        });
        self.routes.push(Route {
            method,
            source: pattern.to_string(),
            pattern: Pattern::parse(pattern),
            price,
        });
        Ok(self)
    }

    /// The price of requests no route matches (free when unset).
    pub fn fallback(mut self, price: Price) -> Self {
        self.fallback = Some(price);
        self
    }

    #[allow(clippy::panic)] // documented: a bad method in a static table is a programming error
    fn push(self, method: &str, pattern: &str, price: Option<Price>) -> Self {
        match self.try_route(method, pattern, price) {
            Ok(table) => table,
            Err(err) => panic!("{err}"),
        }
    }
}

/// What a [`PriceTable`] says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A route with a price matched.
    Paid(Price),
    /// A free route matched.
    Free,
    /// No route matched (the table's fallback, if any, applies).
    Unlisted,
}

impl PriceTable {
    /// The first route matching `method` and `path`, ignoring the fallback.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup {
        let found = self.routes.iter().find(|route| {
            route.method.as_ref().is_none_or(|m| m == method) && route.pattern.matches(path)
        });
        match found {
            Some(Route {
                price: Some(price), ..
            }) => Lookup::Paid(price.clone()),
            Some(_) => Lookup::Free,
            None => Lookup::Unlisted,
        }
    }
}

impl PriceTable {
    /// The table's routes as the discovery document shows them, in order (see
    /// [`discovery`](crate::discovery)).
    pub fn operations(&self) -> Vec<crate::discovery::Operation> {
        self.routes
            .iter()
            .map(|route| crate::discovery::Operation {
                method: route
                    .method
                    .as_ref()
                    .map_or_else(|| "*".to_string(), ToString::to_string),
                path: route.source.clone(),
                offer: route.price.as_ref().map(crate::discovery::Offer::of),
                summary: None,
                example: None,
            })
            .collect()
    }
}

impl Pricing for PriceTable {
    fn price(&self, request: &Parts) -> Option<Price> {
        match self.lookup(&request.method, request.uri.path()) {
            Lookup::Paid(price) => Some(price),
            Lookup::Free => None,
            Lookup::Unlisted => self.fallback.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
    rest: bool,
}

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Self {
        let mut segments = Vec::new();
        let mut rest = false;
        for segment in pattern
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
        {
            if segment == "*" || segment.starts_with("{*") {
                rest = true;
                break;
            }
            let any =
                segment.starts_with(':') || (segment.starts_with('{') && segment.ends_with('}'));
            segments.push(if any {
                Segment::Any
            } else {
                Segment::Literal(segment.to_string())
            });
        }
        Self { segments, rest }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        let mut parts = path.trim_matches('/').split('/').filter(|s| !s.is_empty());
        for segment in &self.segments {
            match (segment, parts.next()) {
                (_, None) => return false,
                (Segment::Any, Some(_)) => {}
                (Segment::Literal(lit), Some(part)) if lit == part => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none()
    }
}

/// A set of routes one time pass opens, and its price per minute (see
/// [`crate::pass`]).
///
/// ```
/// use coinslot_layer::pass::PassScope;
/// use coinslot_layer::Price;
///
/// // 1 sat per minute for everything under /vpn.
/// let scope = PassScope::new("vpn", Price::sat(1)).route("*", "/vpn/*");
/// # let _ = scope;
/// ```
#[derive(Debug, Clone)]
pub struct PassScope {
    name: String,
    price: Price,
    routes: Vec<(Option<Method>, Pattern)>,
}

impl PassScope {
    /// A scope called `name` (it is written into its passes) costing `price_per_minute`.
    pub fn new(name: &str, price_per_minute: Price) -> Self {
        let price = match price_per_minute.label {
            Some(_) => price_per_minute,
            None => price_per_minute.labelled(format!("pass {name}")),
        };
        Self {
            name: name.to_string(),
            price,
            routes: Vec::new(),
        }
    }

    /// Adds `method` (or `"*"`) on paths matching `pattern` (as in [`PriceTable`]).
    ///
    /// # Panics
    /// If `method` is not an HTTP method; [`PassScope::try_route`] returns the error.
    #[allow(clippy::panic)] // documented: scopes are built at start-up
    pub fn route(self, method: &str, pattern: &str) -> Self {
        match self.try_route(method, pattern) {
            Ok(scope) => scope,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`PassScope::route`], returning an error for an invalid method.
    pub fn try_route(mut self, method: &str, pattern: &str) -> Result<Self, String> {
        let method =
            match method {
                "*" | "" => None,
                m => Some(Method::from_str(&m.to_ascii_uppercase()).map_err(|_| {
                    format!("invalid HTTP method `{m}` in pass scope {}", self.name)
                })?),
            };
        self.routes.push((method, Pattern::parse(pattern)));
        Ok(self)
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The price of one minute.
    pub fn price(&self) -> &Price {
        &self.price
    }

    /// Whether a request with `method` on `path` is one of this scope's.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        self.routes
            .iter()
            .any(|(m, pattern)| m.as_ref().is_none_or(|m| m == method) && pattern.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn patterns_match_segments() {
        let p = Pattern::parse("/v1/chat/{model}");
        assert!(p.matches("/v1/chat/gpt"));
        assert!(!p.matches("/v1/chat"));
        assert!(!p.matches("/v1/chat/gpt/extra"));
        let rest = Pattern::parse("/files/*");
        assert!(rest.matches("/files/a/b/c"));
        assert!(rest.matches("/files"));
        assert!(!rest.matches("/other/a"));
        assert!(Pattern::parse("/").matches("/"));
        assert!(!Pattern::parse("/").matches("/x"));
        assert!(Pattern::parse("/users/:id").matches("/users/7"));
    }

    #[test]
    fn first_route_wins_and_fallback_applies() {
        let table = PriceTable::new()
            .free("GET", "/files/free")
            .route("get", "/files/*", Price::sat(3))
            .route("*", "/search", Price::sat(2))
            .fallback(Price::sat(9));
        assert_eq!(table.price(&parts("GET", "/files/free")), None);
        assert_eq!(
            table.price(&parts("GET", "/files/x")).map(|p| p.amount),
            Some(3)
        );
        assert_eq!(
            table.price(&parts("POST", "/files/x")).map(|p| p.amount),
            Some(9)
        );
        assert_eq!(
            table
                .price(&parts("DELETE", "/search?q=1"))
                .map(|p| p.amount),
            Some(2)
        );
    }

    #[test]
    fn routes_name_their_prices_for_the_ledger() {
        let table = PriceTable::new()
            .route("get", "/files/*", Price::sat(3))
            .route("*", "/search", Price::sat(2))
            .route("POST", "/own", Price::sat(1).labelled("uploads"))
            .fallback(Price::sat(9));
        let label = |method, path| {
            table
                .price(&parts(method, path))
                .and_then(|p| p.label)
                .map(|l| l.to_string())
        };
        assert_eq!(label("GET", "/files/a"), Some("GET /files/*".into()));
        assert_eq!(label("PUT", "/search"), Some("* /search".into()));
        assert_eq!(
            label("POST", "/own"),
            Some("uploads".into()),
            "a label given stays"
        );
        assert_eq!(
            label("POST", "/elsewhere"),
            None,
            "the fallback has none of its own"
        );
        let scope = PassScope::new("vpn", Price::sat(1));
        assert_eq!(scope.price().label.as_deref(), Some("pass vpn"));
    }

    #[test]
    fn invalid_methods_are_named() {
        let err = PriceTable::new()
            .try_route("GE T", "/", None)
            .expect_err("invalid method");
        assert!(err.contains("GE T"), "{err}");
    }

    #[test]
    fn retry_rules_parse_and_decide_reruns() {
        assert_eq!("never".parse::<Retry>(), Ok(Retry::Never));
        assert!("sometimes"
            .parse::<Retry>()
            .unwrap_err()
            .contains("sometimes"));
        assert!(Retry::Stored.may_rerun(&Method::GET));
        assert!(Retry::Stored.may_rerun(&Method::HEAD));
        assert!(!Retry::Stored.may_rerun(&Method::POST));
        assert!(Retry::Rerun.may_rerun(&Method::POST));
        assert!(!Retry::Never.may_rerun(&Method::GET));
        assert_eq!(Price::sat(2).retry, Retry::Stored);
        assert_eq!(Price::sat(2).retry(Retry::Never).retry, Retry::Never);
    }

    #[test]
    fn closures_price_dynamically() {
        let pricing = |req: &Parts| req.uri.query().map(|q| Price::sat(q.len() as u64));
        assert_eq!(
            pricing.price(&parts("GET", "/?abc")).map(|p| p.amount),
            Some(3)
        );
        assert_eq!(pricing.price(&parts("GET", "/")), None);
    }
}
