//! Websockets through the proxy. The client's upgrade goes to the upstream with its own
//! `Sec-WebSocket-*` headers; once the upstream switched protocols, the two connections are
//! joined byte for byte (frames are not parsed, so any subprotocol passes). A connection is
//! paid like any request, at its upgrade, by its route's price; it stays open:
//!
//! - opened with a time pass: until the pass runs out;
//! - on a route with `per_minute`, opened from a session or key balance: each further
//!   minute is taken from that balance, and the connection closes when it cannot pay;
//! - on such a route opened with a one-shot token or a credential: for its first minute;
//! - otherwise until either side closes it.
//!
//! Closing is both TCP connections dropped: a close frame could cut a frame in half, since
//! the proxy does not track them.

use std::time::Duration;

use axum::body::Body;
use coinslot_layer::{Balance, Paid, Price, ValidPass};
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// Whether a request asks to switch to the websocket protocol.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    connection_upgrade && websocket
}

/// Puts back what an upgrade needs of the hop-by-hop headers (dropped when forwarding).
pub(crate) fn ask_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// How long a paid connection may stay open.
#[derive(Debug)]
pub(crate) enum Limit {
    /// Until either side closes it.
    Open,
    /// Until then (a pass's end, or the one minute a token paid).
    Until(Instant),
    /// A further minute from the balance each minute.
    PerMinute {
        balance: Balance,
        price: Price,
        minute: Duration,
    },
}

impl Limit {
    /// The limit of a connection paid as `extensions` say, on a route whose further
    /// minutes cost `per_minute`.
    pub(crate) fn of(
        extensions: &http::Extensions,
        per_minute: Option<Price>,
        minute: Duration,
    ) -> Self {
        if let Some(pass) = extensions.get::<ValidPass>() {
            let left = pass.remaining(coinslot_layer::cashu::util::unix_time());
            return Limit::Until(Instant::now() + Duration::from_secs(left));
        }
        let Some(price) = per_minute else {
            return Limit::Open;
        };
        match extensions
            .get::<Paid>()
            .and_then(|paid| paid.balance.clone())
        {
            Some(balance) => Limit::PerMinute {
                balance,
                price,
                minute,
            },
            None => Limit::Until(Instant::now() + minute),
        }
    }
}

/// Our `101` for the upstream's, and the task that joins the two connections once the
/// client's switched too.
pub(crate) fn join(
    answer: reqwest::Response,
    client: OnUpgrade,
    limit: Limit,
    upstream: String,
) -> Response<Body> {
    let mut headers = answer.headers().clone();
    // The handshake's own headers (accept key, subprotocol, extensions) go back as sent.
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    super::forward::strip_hop_by_hop(&mut headers);
    crate::websocket::ask_upgrade(&mut headers);
    tokio::spawn(async move {
        let upstream_io = match answer.upgrade().await {
            Ok(io) => io,
            Err(err) => {
                tracing::warn!(upstream = %upstream, error = %err, "websocket: the upstream's connection was lost at the switch");
                return;
            }
        };
        let client_io = match client.await {
            Ok(io) => TokioIo::new(io),
            Err(err) => {
                tracing::debug!(upstream = %upstream, error = %err, "websocket: the client left at the switch");
                return;
            }
        };
        relay(client_io, upstream_io, limit, &upstream).await;
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = headers;
    response
}

/// Copies both ways until a side closes or the limit ends the connection.
async fn relay<A, B>(mut client: A, mut upstream: B, limit: Limit, name: &str)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tracing::debug!(upstream = %name, "websocket open");
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    match limit {
        Limit::Open => {
            let _ = copy.await;
        }
        Limit::Until(at) => {
            tokio::select! {
                _ = &mut copy => {}
                () = tokio::time::sleep_until(at) => {
                    tracing::info!(upstream = %name, "websocket closed: its paid time is over");
                }
            }
        }
        Limit::PerMinute {
            balance,
            price,
            minute,
        } => {
            let mut minutes = tokio::time::interval_at(Instant::now() + minute, minute);
            loop {
                tokio::select! {
                    _ = &mut copy => break,
                    _ = minutes.tick() => match balance.debit(&price.unit, price.amount).await {
                        Ok(left) => tracing::debug!(upstream = %name, left, unit = %price.unit, "websocket: another minute paid"),
                        Err(err) => {
                            tracing::info!(upstream = %name, reason = %err, "websocket closed: the balance cannot pay another minute");
                            break;
                        }
                    },
                }
            }
        }
    }
    tracing::debug!(upstream = %name, "websocket closed");
}
