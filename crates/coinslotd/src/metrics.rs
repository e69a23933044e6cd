//! Prometheus metrics at `/metrics`.
//!
//! Each server has its own recorder (not the process-global one), so several servers in one
//! process (tests, embedders) never mix their numbers. Counters follow the mint's activity
//! feed; the supply gauges are read from the store's counters when scraped.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coinslot_mint::{Activity, Event, Mint};
use http::{header, Request, StatusCode};
use metrics::{counter, gauge, histogram, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::sync::broadcast::error::RecvError;

/// Latency buckets in seconds: from a cached free request to a slow upstream.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One server's metrics.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    mint: Mint,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Starts counting `mint`'s activity.
    pub fn follow(mint: &Mint) -> anyhow::Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)?
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder: Arc::new(recorder),
            handle,
            mint: mint.clone(),
        };
        let mut feed = mint.activity();
        // The task holds the recorder, never the mint: it ends when the mint is dropped.
        let recorder = Arc::clone(&metrics.recorder);
        tokio::spawn(async move {
            loop {
                match feed.recv().await {
                    Ok(activity) => count(&recorder, &activity),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "metrics fell behind the activity feed")
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ok(metrics)
    }

    fn observe(&self, kind: &'static str, status: StatusCode, seconds: f64) {
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        with_local_recorder(self.recorder.as_ref(), || {
            histogram!("coinslot_http_request_duration_seconds", "kind" => kind, "status" => class)
                .record(seconds);
        });
    }

    /// Counts a request refused before the paywall (rate limits).
    pub fn refused(&self, reason: &'static str) {
        with_local_recorder(self.recorder.as_ref(), || {
            counter!("coinslot_requests_refused_total", "reason" => reason).increment(1);
        });
    }

    /// Counts a request that carried `X-Forwarded-For` while `[limits] trust_forwarded_for`
    /// is off (its client was limited by the proxy's address).
    pub fn forwarded_for_ignored(&self) {
        with_local_recorder(self.recorder.as_ref(), || {
            counter!("coinslot_forwarded_for_ignored_total").increment(1);
        });
    }

    /// The Prometheus text exposition, with the supply gauges read now.
    pub async fn render(&self) -> Result<String, coinslot_mint::Error> {
        let report = self.mint.liabilities().await?;
        with_local_recorder(self.recorder.as_ref(), || {
            for unit in &report.units {
                let name = unit.unit.to_string();
                gauge!("coinslot_ecash_outstanding", "unit" => name.clone())
                    .set(unit.outstanding as f64);
                gauge!("coinslot_ecash_issued", "unit" => name.clone()).set(unit.issued as f64);
                gauge!("coinslot_ecash_redeemed", "unit" => name.clone()).set(unit.redeemed as f64);
                gauge!("coinslot_session_balance", "unit" => name.clone())
                    .set(unit.account_balance as f64);
                gauge!("coinslot_sessions_open", "unit" => name).set(unit.accounts as f64);
            }
        });
        Ok(self.handle.render())
    }
}

fn count(recorder: &PrometheusRecorder, activity: &Activity) {
    with_local_recorder(recorder, || record(&activity.event));
}

fn record(event: &Event) {
    match event {
        Event::QuoteCreated { unit, .. } => {
            counter!("coinslot_quotes_created_total", "unit" => unit.to_string()).increment(1)
        }
        Event::QuotePaid { unit, .. } => {
            counter!("coinslot_quotes_paid_total", "unit" => unit.to_string()).increment(1)
        }
        Event::Minted { unit, amount } => {
            counter!("coinslot_minted_total", "unit" => unit.to_string()).increment(*amount)
        }
        Event::Swapped { unit, amount, fee } => {
            counter!("coinslot_swaps_total", "unit" => unit.to_string()).increment(1);
            counter!("coinslot_swapped_total", "unit" => unit.to_string()).increment(*amount);
            counter!("coinslot_fees_total", "unit" => unit.to_string()).increment(*fee);
        }
        Event::Paid {
            unit,
            amount,
            fee,
            with,
            route,
        } => {
            let with = match with {
                coinslot_mint::PaidWith::Token => "token",
                coinslot_mint::PaidWith::Session => "session",
            };
            let unit = unit.to_string();
            let route = route.as_deref().unwrap_or_default().to_string();
            counter!("coinslot_requests_paid_total", "unit" => unit.clone(), "with" => with, "route" => route.clone())
                .increment(1);
            counter!("coinslot_redeemed_total", "unit" => unit.clone(), "route" => route)
                .increment(*amount);
            counter!("coinslot_fees_total", "unit" => unit).increment(*fee);
        }
        Event::Refunded {
            unit,
            amount,
            failed,
            route,
        } => {
            let why = if *failed { "failed" } else { "metered" };
            let unit = unit.to_string();
            let route = route.as_deref().unwrap_or_default().to_string();
            counter!("coinslot_refunds_total", "unit" => unit.clone(), "why" => why, "route" => route.clone())
                .increment(1);
            counter!("coinslot_refunded_total", "unit" => unit, "why" => why, "route" => route)
                .increment(*amount);
        }
        Event::Refused { reason } => {
            counter!("coinslot_requests_refused_total", "reason" => *reason).increment(1)
        }
        Event::Deposited { unit, amount } => {
            counter!("coinslot_deposited_total", "unit" => unit.to_string()).increment(*amount)
        }
        Event::SessionClosed { unit, amount } => {
            counter!("coinslot_session_payouts_total", "unit" => unit.to_string())
                .increment(*amount)
        }
        Event::CreditIssued { unit, amount, .. } => {
            counter!("coinslot_credit_issued_total", "unit" => unit.to_string()).increment(*amount)
        }
        Event::KeysetRotated { unit, .. } => {
            counter!("coinslot_keyset_rotations_total", "unit" => unit.to_string()).increment(1)
        }
        Event::PassRevoked { scope, .. } => {
            counter!("coinslot_passes_revoked_total", "scope" => scope.clone()).increment(1)
        }
        Event::PricesChanged { .. } => counter!("coinslot_price_changes_total").increment(1),
    }
}

/// `GET /metrics`.
pub async fn scrape(State(metrics): State<Metrics>) -> Response {
    match metrics.render().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot read the supply counters for /metrics");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// Middleware timing every request, labelled by what it was for.
pub async fn time_requests(
    State(metrics): State<Metrics>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let kind = kind_of(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(kind, response.status(), started.elapsed().as_secs_f64());
    response
}

/// Paths of the mint's API (an upstream may have its own `/v1/…` routes).
const MINT_PATHS: [&str; 9] = [
    "/v1/info",
    "/v1/keys",
    "/v1/keysets",
    "/v1/mint/",
    "/v1/swap",
    "/v1/checkstate",
    "/v1/restore",
    "/v1/ws",
    "/v1/melt",
];

fn kind_of(path: &str) -> &'static str {
    if MINT_PATHS.iter().any(|p| path.starts_with(p)) {
        "mint"
    } else if path.starts_with("/admin/") {
        "admin"
    } else if matches!(path, "/health" | "/ready" | "/metrics") {
        "ops"
    } else {
        "service"
    }
}
