//! [`Proxy`]: the tower service that forwards a request to its upstream, streaming both
//! bodies, and turns the upstream's cost header into a [`Charge`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use coinslot_layer::{Charge, Meter, Paid, ValidPass};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body as _;
use tower_service::Service;

use crate::config::{ModelPrice, ProxyConfigError};
use crate::routes::ProxyRoutes;
use crate::usage::UsageCharge;

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The forwarding service: put it behind a [`PaywallLayer`](coinslot_layer::PaywallLayer)
/// priced by the same [`ProxyRoutes`].
#[derive(Debug, Clone)]
pub struct Proxy {
    routes: ProxyRoutes,
    client: reqwest::Client,
    /// For websocket upgrades: no read timeout (a quiet connection is not a dead upstream).
    upgrades: reqwest::Client,
}

impl Proxy {
    /// A proxy for `routes`, with one connection pool for all upstreams.
    pub fn new(routes: ProxyRoutes) -> Result<Self, ProxyConfigError> {
        let config = routes.load().config().clone();
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(config.connect_timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
        };
        let built = |result: reqwest::Result<reqwest::Client>| {
            result
                .map_err(|e| ProxyConfigError(format!("proxy: cannot build the HTTP client: {e}")))
        };
        let client = built(builder().read_timeout(config.timeout()).build())?;
        let upgrades = built(builder().http1_only().build())?;
        Ok(Self {
            routes,
            client,
            upgrades,
        })
    }

    async fn forward(self, request: Request<Body>) -> Response<Body> {
        let routes = self.routes.load();
        let config = routes.config();
        let Some(resolved) = routes.resolve(request.headers(), request.uri(), request.method())
        else {
            return error(StatusCode::NOT_FOUND, "no upstream serves this path".into());
        };
        if !resolved.allowed() {
            return error(StatusCode::NOT_FOUND, "no such route".into());
        }
        let upstream = resolved.upstream;
        let (mut parts, body) = request.into_parts();
        // A websocket: the client's side of the switch, taken before the request goes on.
        let upgrade = crate::websocket::is_upgrade(&parts.headers)
            .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
            .flatten();
        // What a metered answer's end is read for: its usage (a `usage` route), or a cost
        // trailer.
        let metered = parts
            .extensions
            .get::<Paid>()
            .is_some_and(|paid| paid.metered);
        let usage = parts
            .extensions
            .get::<UsageCharge>()
            .map(|charge| charge.price);
        let url = upstream.target(parts.uri.path(), parts.uri.query());
        let mut headers = forwarded_headers(
            &parts.headers,
            config.paid_header.as_str(),
            &config.cost_header,
        );
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        add_forwarding(&mut headers, &parts.headers, client_ip);
        if let Some(paid) = parts.extensions.get::<Paid>() {
            add_paid(&mut headers, &config.paid_header, paid);
        }
        if metered {
            // An HTTP/1.1 server sends trailers (the cost, known at the end) only when asked.
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if let Some(pass) = parts.extensions.get::<ValidPass>() {
            add_pass(&mut headers, &config.paid_header, pass);
        }
        if upgrade.is_some() {
            crate::websocket::ask_upgrade(&mut headers);
        }

        let client = if upgrade.is_some() {
            &self.upgrades
        } else {
            &self.client
        };
        let mut outgoing = client.request(parts.method.clone(), url).headers(headers);
        if body.size_hint().exact() != Some(0) {
            outgoing = outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        let sent = tokio::time::timeout(config.timeout(), outgoing.send()).await;
        let answer = match sent {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                tracing::warn!(upstream = %upstream.name, error = %err, "upstream request failed");
                let status = if err.is_timeout() {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                return error(
                    status,
                    format!("upstream `{}` did not answer", upstream.name),
                );
            }
            Err(_) => {
                tracing::warn!(upstream = %upstream.name, "upstream timed out");
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("upstream `{}` did not answer in time", upstream.name),
                );
            }
        };
        if let Some(client) = upgrade {
            if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
                let minute = std::time::Duration::from_secs(config.minute_secs);
                let limit =
                    crate::websocket::Limit::of(&parts.extensions, resolved.per_minute, minute);
                return crate::websocket::join(answer, client, limit, upstream.name.clone());
            }
        }
        let scan = metered.then_some(usage);
        respond(
            answer,
            &config.cost_header,
            &upstream.name,
            scan,
            resolved.fallback,
        )
    }
}

/// Any request body (the paywall's, axum's): streamed to the upstream as it arrives.
impl<B> Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.forward(request.map(Body::new)).await) })
    }
}

/// The upstream's answer as ours: hop-by-hop headers dropped, the cost header turned into a
/// [`Charge`], the body streamed through. A metered answer without a cost header (`scan` is
/// set) is read for its cost at its end ([`crate::usage`]): a [`Meter`] the paywall settles by.
fn respond(
    answer: reqwest::Response,
    cost_header: &str,
    upstream: &str,
    scan: Option<Option<ModelPrice>>,
    fallback: Option<u64>,
) -> Response<Body> {
    let status = answer.status();
    let mut headers = answer.headers().clone();
    strip_hop_by_hop(&mut headers);
    let charge = headers.remove(cost_header).and_then(|value| {
        let cost = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        if cost.is_none() {
            tracing::warn!(
                upstream,
                "upstream sent an unreadable cost header; charging the reservation"
            );
        }
        cost.map(Charge)
    });
    // As an `http` body, so its trailers come through.
    let body = Body::new(http::Response::from(answer).into_body());
    let mut meter = None;
    let body = match (&charge, scan) {
        (None, Some(price)) => {
            let at_end = fallback.map_or_else(Meter::new, Meter::fallback);
            meter = Some(at_end.clone());
            crate::usage::scan(body, &headers, price, cost_header, at_end)
        }
        _ => body,
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Some(charge) = charge {
        response.extensions_mut().insert(charge);
    }
    if let Some(meter) = meter {
        response.extensions_mut().insert(meter);
    }
    response
}

pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The client's headers as the upstream should see them: no hop-by-hop headers, no payment
/// credentials, no `Host` (the upstream's own is set), and nothing a client could use to
/// pretend it paid (any `x-coinslot-*` header, the paid and cost headers).
fn forwarded_headers(incoming: &HeaderMap, paid_prefix: &str, cost_header: &str) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    let paid_prefix = paid_prefix.to_ascii_lowercase();
    let payment = |name: &HeaderName, value: &HeaderValue| {
        let name = name.as_str();
        if name.starts_with("x-cashu")
            || name.starts_with("x-coinslot-")
            || name.starts_with(paid_prefix.as_str())
            || name.eq_ignore_ascii_case(cost_header)
        {
            return true;
        }
        if name == "payment-authorization" {
            return true;
        }
        name == header::AUTHORIZATION.as_str()
            && value.to_str().is_ok_and(|v| {
                let v = v.trim_start();
                v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("cashu "))
                    || v.get(..8)
                        .is_some_and(|s| s.eq_ignore_ascii_case("payment "))
                    || v.get(..12)
                        .is_some_and(|s| s.eq_ignore_ascii_case("bearer cashu"))
            })
    };
    let names: Vec<HeaderName> = headers
        .iter()
        .filter(|(name, value)| payment(name, value))
        .map(|(name, _)| name.clone())
        .collect();
    for name in names {
        headers.remove(name);
    }
    headers
}

fn add_forwarding(
    headers: &mut HeaderMap,
    incoming: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
) {
    if let Some(ip) = client_ip {
        let chain = match incoming
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    if let Some(host) = incoming.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
}

fn add_paid(headers: &mut HeaderMap, prefix: &str, paid: &Paid) {
    let mut put = |suffix: &str, value: String| {
        let name = HeaderName::from_bytes(format!("{prefix}-{suffix}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(&value)) {
            headers.insert(name, value);
        }
    };
    put("amount", paid.amount.to_string());
    put("unit", paid.unit.to_string());
    put(
        "mode",
        if paid.metered { "metered" } else { "fixed" }.into(),
    );
    put(
        "via",
        if paid.session.is_some() {
            "session"
        } else {
            "token"
        }
        .into(),
    );
}

/// A request opened by a time pass: `{prefix}-via: pass` and the pass's id, scope and
/// expiry, so the upstream can tell its users apart.
fn add_pass(headers: &mut HeaderMap, prefix: &str, pass: &ValidPass) {
    let mut put = |suffix: &str, value: &str| {
        let name = HeaderName::from_bytes(format!("{prefix}-{suffix}").as_bytes());
        if let (Ok(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.insert(name, value);
        }
    };
    put("via", "pass");
    put("pass-id", &pass.id);
    put("pass-scope", &pass.scope);
    put("pass-expires", &pass.expires_at.to_string());
}

fn error(status: StatusCode, detail: String) -> Response<Body> {
    let body = serde_json::json!({ "detail": detail }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_and_spoofed_headers_are_not_forwarded() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("x-cashu", "cashuBxyz"),
            ("x-cashu-session", "jwt"),
            ("authorization", "Cashu cashuBxyz"),
            ("authorization", "Payment eyJjaGFsbGVuZ2UiOnt9fQ"),
            ("payment-authorization", "Payment eyJjaGFsbGVuZ2UiOnt9fQ"),
            ("x-coinslot-paid-amount", "1000"),
            ("x-my-paid-amount", "1000"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("host", "api.example.com"),
            ("x-keep", "yes"),
        ] {
            incoming.append(name, value.parse().unwrap());
        }
        let headers = forwarded_headers(&incoming, "x-my-paid", "x-coinslot-cost");
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-keep"]);

        let mut bearer = HeaderMap::new();
        bearer.insert(
            "authorization",
            "Bearer someone-elses-api-key".parse().unwrap(),
        );
        let kept = forwarded_headers(&bearer, "x-coinslot-paid", "x-coinslot-cost");
        assert!(
            kept.contains_key("authorization"),
            "a non-Cashu bearer must reach the upstream"
        );
    }
}
