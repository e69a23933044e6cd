//! Abuse limits in front of everything: request rates per client address and per prepaid
//! session (`429` with `Retry-After`), and the total size of a request's headers (`431`).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderValue, Request, StatusCode};
use serde_json::json;

use crate::config::LimitsConfig;
use crate::metrics::Metrics;

/// The limiters of one server.
#[derive(Clone)]
pub struct Limits {
    per_ip: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    per_session: Option<Arc<DefaultKeyedRateLimiter<u64>>>,
    trust_forwarded_for: bool,
    /// Set once the log has said that `X-Forwarded-For` arrives while it is not trusted.
    told_forwarded: Arc<AtomicBool>,
    max_header_bytes: usize,
    metrics: Metrics,
}

fn limiter<K: Hash + Eq + Clone>(
    per_minute: u32,
    burst: u32,
) -> Option<Arc<DefaultKeyedRateLimiter<K>>> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    )))
}

impl Limits {
    /// Limiters for `config`; a task forgets idle clients every minute.
    pub fn new(config: &LimitsConfig, metrics: Metrics) -> Self {
        let limits = Self {
            per_ip: limiter(config.per_ip_per_minute, config.burst),
            per_session: limiter(config.per_session_per_minute, config.burst),
            trust_forwarded_for: config.trust_forwarded_for,
            told_forwarded: Arc::new(AtomicBool::new(false)),
            max_header_bytes: config.max_header_bytes,
            metrics,
        };
        let weak_ip = limits.per_ip.as_ref().map(Arc::downgrade);
        let weak_session = limits.per_session.as_ref().map(Arc::downgrade);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let ip = weak_ip.as_ref().and_then(|w| w.upgrade());
                let session = weak_session.as_ref().and_then(|w| w.upgrade());
                if ip.is_none() && session.is_none() {
                    break;
                }
                if let Some(ip) = ip {
                    ip.retain_recent();
                    ip.shrink_to_fit();
                }
                if let Some(session) = session {
                    session.retain_recent();
                    session.shrink_to_fit();
                }
            }
        });
        limits
    }

    /// A request that came through a proxy which says who sent it, while coinslotd does not
    /// believe it: every client then shares the proxy's address and its one per-address
    /// limit. Counted, and said once in the log with what to do.
    fn untrusted_forward(&self, request: &Request<Body>) {
        if self.trust_forwarded_for || !request.headers().contains_key("x-forwarded-for") {
            return;
        }
        self.metrics.forwarded_for_ignored();
        if self.told_forwarded.swap(true, Ordering::Relaxed) {
            return;
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_default();
        tracing::warn!(
            %peer,
            per_ip_limit = self.per_ip.is_some(),
            "requests arrive with X-Forwarded-For, which is not trusted: every client behind \
             that proxy shares its address and its rate limit. Behind a proxy that overwrites \
             the header, set [limits] trust_forwarded_for = true (deploy/OPERATIONS.md, rate limits)"
        );
    }

    fn client_ip(&self, request: &Request<Body>) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    }
}

fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "detail": format!("too many requests: retry in {secs} s") })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The middleware.
pub async fn enforce(State(limits): State<Limits>, request: Request<Body>, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_header_bytes {
        limits.metrics.refused("headers_too_large");
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Json(json!({ "detail": format!("request headers are {header_bytes} bytes; the limit is {}", limits.max_header_bytes) })),
        )
            .into_response();
    }
    if matches!(request.uri().path(), "/health" | "/ready" | "/metrics") {
        return next.run(request).await;
    }
    limits.untrusted_forward(&request);
    // The limiter's own clock: making a new one costs a CPU calibration.
    if let (Some(limiter), Some(ip)) = (&limits.per_ip, limits.client_ip(&request)) {
        if let Err(not_until) = limiter.check_key(&ip) {
            limits.metrics.refused("rate_limited");
            return too_many(not_until.wait_time_from(limiter.clock().now()));
        }
    }
    if let (Some(limiter), Some(session)) = (
        &limits.per_session,
        request.headers().get(coinslot::nut24::X_CASHU_SESSION),
    ) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        session.as_bytes().hash(&mut hasher);
        if let Err(not_until) = limiter.check_key(&hasher.finish()) {
            limits.metrics.refused("rate_limited");
            return too_many(not_until.wait_time_from(limiter.clock().now()));
        }
    }
    next.run(request).await
}
