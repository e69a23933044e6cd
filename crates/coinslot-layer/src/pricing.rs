//! What a request costs: [`Price`], the [`Pricing`] trait, and a [`PriceTable`] of routes.
//!
//! A pricing sees the request head (method, URI, headers, extensions) and answers `None` for
//! a free request. Three kinds come ready: one fixed [`Price`] for every request, a
//! [`PriceTable`] by method and path pattern, and any closure
//! `Fn(&http::request::Parts) -> Option<Price>` for dynamic prices.

use coinslot_mint::cashu::nuts::CurrencyUnit;
use http::request::Parts;
use http::Method;

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
}

impl Price {
    /// A fixed price in `unit`.
    pub fn new(amount: u64, unit: CurrencyUnit) -> Self {
        Self {
            amount,
            unit,
            mode: PriceMode::Fixed,
        }
    }

    /// A fixed price in sat.
    pub fn sat(amount: u64) -> Self {
        Self::new(amount, CurrencyUnit::Sat)
    }

    /// A metered price: reserve `max` in `unit`, charge what the handler reports.
    pub fn metered(max: u64, unit: CurrencyUnit) -> Self {
        Self {
            amount: max,
            unit,
            mode: PriceMode::Metered,
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
    pattern: Pattern,
    price: Option<Price>,
}

impl PriceTable {
    /// An empty table: every request is free until routes are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Charges `price` for `method` (or `"*"` for any) on paths matching `pattern`.
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
        self.routes.push(Route {
            method,
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
    fn invalid_methods_are_named() {
        let err = PriceTable::new()
            .try_route("GE T", "/", None)
            .expect_err("invalid method");
        assert!(err.contains("GE T"), "{err}");
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
