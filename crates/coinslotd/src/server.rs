//! The HTTP server under coinslotd's listeners: hyper's HTTP/1.1 with the limits
//! `axum::serve` does not offer.
//!
//! - **Header read timeout** (slowloris): a connection that does not finish a request's head
//!   within [`ServerLimits::header_read_timeout`] is closed, and so is a keep-alive connection
//!   idle that long (hyper starts the timer whenever it waits for a head).
//! - **Body read timeout**: a request body that stalls for as long between two chunks fails
//!   its request (slow uploads hold a connection just as slow heads do).
//! - **Maximum connections**: at most [`ServerLimits::max_connections`] are open at once,
//!   websockets included (the count is released when the socket closes, not when hyper
//!   hands it over). At the limit, new connections wait in the kernel's accept queue until
//!   one closes, rather than being refused: a short burst costs latency, not errors.
//! - **Connections per address**: at most [`ServerLimits::max_connections_per_ip`] from one
//!   client address (an IPv6 /64); more are closed as soon as they are accepted, so one
//!   client holding idle connections cannot make everyone else wait for a slot.
//!
//! HTTP/1.1 only, on purpose: hyper-util's HTTP/2 auto-detection reads the connection
//! preface without a deadline, so a client sending `P` and stalling would hold its
//! connection forever. TLS and HTTP/2 belong to the reverse proxy in front, which speaks
//! HTTP/1.1 to its upstreams.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::config::LimitsConfig;

/// How long a graceful shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once (websockets included).
    pub max_connections: usize,
    /// Connections open at once from one client address, IPv6 counted per /64 (0: no cap).
    /// Beyond it a new connection is closed at once, so one client cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Time allowed for a request's head, and for a keep-alive connection to stay idle;
    /// also the longest pause allowed inside a request body.
    pub header_read_timeout: Duration,
}

/// The defaults live in one place, `[limits]` of the config.
impl From<&LimitsConfig> for ServerLimits {
    fn from(limits: &LimitsConfig) -> Self {
        Self {
            max_connections: limits.max_connections,
            // Behind a proxy every connection comes from the proxy's address.
            max_connections_per_ip: if limits.trust_forwarded_for {
                0
            } else {
                limits.max_connections_per_ip
            },
            header_read_timeout: Duration::from_secs(limits.header_read_timeout_secs),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish (for up to 30 s) and returns. Handlers can read the peer's
/// address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let body_timeout = limits.header_read_timeout;
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::new(limits.max_connections_per_ip));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot first: at the limit, connections queue in the kernel.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            // Reap finished connections so the set stays as small as the open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some(address_slot) = per_address.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            stream,
            _permit: permit,
            _address_slot: address_slot,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let mut request = request.map(|body| Body::new(TimeoutBody::new(body_timeout, body)));
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = async { let _ = stopped.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still busy after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Accept errors are about one connection (reset before accept) or about the process
/// (out of file descriptors): neither stops the server, the second needs a pause.
async fn accept_failed(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Open connections per client address.
struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address, given back when dropped.
struct AddressSlot {
    owner: Arc<PerAddress>,
    address: Option<IpAddr>,
}

impl PerAddress {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection from `ip`, or `None` when that address has its share.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if self.cap == 0 {
            return Some(AddressSlot {
                owner: self.clone(),
                address: None,
            });
        }
        let address = client_address(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: self.clone(),
            address: Some(address),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(address) = self.address else {
            return;
        };
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6
/// by its /64, the block one subscriber usually gets.
fn client_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A client socket holding its connection slots until it is dropped, which for an
/// upgraded connection (websocket) is when the socket closes.
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    _address_slot: AddressSlot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_address(a), client_address(b));
        assert_ne!(client_address(a), client_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_address_gets_its_slot_back_when_a_connection_closes() {
        let per_address = Arc::new(PerAddress::new(2));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = per_address.admit(ip).unwrap();
        let _second = per_address.admit(ip).unwrap();
        assert!(
            per_address.admit(ip).is_none(),
            "a third slot for one address"
        );
        assert!(per_address.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(per_address.admit(ip).is_some());
        let unlimited = Arc::new(PerAddress::new(0));
        let slots: Vec<_> = (0..10).map(|_| unlimited.admit(ip).unwrap()).collect();
        assert_eq!(slots.len(), 10);
        assert!(unlimited.open.lock().unwrap().is_empty());
    }
}
