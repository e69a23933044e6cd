//! # coinslot-forward
//!
//! A paid forward proxy: HTTP (`CONNECT` tunnels and absolute-form requests) and SOCKS5 on
//! one port, told apart by the first byte (`0x05` is SOCKS5). A client gets in with a time
//! pass of the proxy's scope ([`coinslot_layer::pass`]), bought at the server's pass
//! endpoint with ecash, or, when [`ForwardConfig::price_per_mb`] is set, with a prepaid
//! session that pays per megabyte as bytes flow.
//!
//! | client | credential |
//! |---|---|
//! | HTTP | `Proxy-Authorization: Bearer <pass>`, or Basic with the pass as the password (`curl -x http://pass:<pass>@proxy`) |
//! | SOCKS5 | username/password authentication, the pass as the password (`curl -x socks5h://pass:<pass>@proxy`) |
//!
//! Without a valid credential an HTTP client gets `407` with `Proxy-Authenticate` and a
//! JSON body saying where to buy a pass and what it costs; a SOCKS5 client fails
//! authentication. What the proxy enforces:
//!
//! - **time:** a tunnel closes when its pass runs out (looked up again then, so an
//!   extension keeps it open) or is revoked (at once on this instance, through the mint's
//!   activity feed; within `recheck_secs` for a revocation made by another instance);
//! - **bytes:** a session pays one megabyte (10⁶ bytes, both directions counted) before the
//!   megabyte flows; the tunnel closes when the balance cannot pay for the next one;
//! - **sharing:** at most `max_tunnels_per_pass` tunnels per pass or session;
//! - **idleness:** a tunnel with no byte either way for `idle_timeout_secs` closes;
//! - **SSRF:** loopback, private, link-local, CGNAT, multicast and the server's own
//!   addresses are refused unless `allow` opens them ([`destination`]).
//!
//! Destinations are logged at `debug` only: what a customer visits is theirs.
//!
//! Map: [`ForwardProxy`] (accept loop, dispatch, admission) → [`http1`] / [`socks5`]
//! (handshakes) → `tunnel` (registry of open tunnels, relay) with [`destination`] (where a
//! tunnel may go).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use coinslot_layer::pass::{PassError, Passes};
use coinslot_layer::session::Sessions;
use coinslot_layer::PaywallLayer;
use coinslot_mint::{Event, Mint};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};

mod access;
pub mod destination;
pub mod http1;
pub mod socks5;
mod tunnel;

pub use access::from_authorization;
use access::{Access, Denied, Meter};
use destination::{Destinations, Refused, Target};
pub use tunnel::Closed;
use tunnel::{End, Registry, Slot, Traffic, Watch};

/// One megabyte, as per-megabyte prices count it.
pub const MEGABYTE: u64 = 1_000_000;

/// `[forward]`: the paid forward proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Where proxy clients connect (HTTP and SOCKS5 on one port); none: no forward proxy.
    /// Read by `coinslotd`; [`ForwardProxy::serve`] takes a bound listener.
    pub listen: Option<SocketAddr>,
    /// The pass scope whose passes open the proxy (a `[[passes.scopes]]` name).
    pub scope: String,
    /// Destinations opened despite the SSRF rules: IP addresses or CIDR ranges.
    pub allow: Vec<String>,
    /// Tunnels one pass or session may have open at once (0: no limit).
    pub max_tunnels_per_pass: usize,
    /// Client connections served at once; more wait.
    pub max_connections: usize,
    /// Seconds without a byte either way before a tunnel closes.
    pub idle_timeout_secs: u64,
    /// Seconds to connect to a destination.
    pub connect_timeout_secs: u64,
    /// Seconds a client has to finish its request head or SOCKS5 handshake.
    pub handshake_timeout_secs: u64,
    /// How often open tunnels' passes are looked up again (revocations by other instances).
    pub recheck_secs: u64,
    /// Price of one megabyte for clients paying with a prepaid session (none: passes only).
    pub price_per_mb: Option<u64>,
    /// Unit of `price_per_mb` [default: the scope's unit].
    pub unit: Option<String>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            listen: None,
            scope: "proxy".into(),
            allow: Vec::new(),
            max_tunnels_per_pass: 8,
            max_connections: 1024,
            idle_timeout_secs: 300,
            connect_timeout_secs: 10,
            handshake_timeout_secs: 10,
            recheck_secs: 5,
            price_per_mb: None,
            unit: None,
        }
    }
}

/// The forward proxy. Build it from the paywall whose passes open it, then [`serve`] it.
///
/// [`serve`]: ForwardProxy::serve
#[derive(Clone)]
pub struct ForwardProxy {
    inner: Inner,
}

impl std::fmt::Debug for ForwardProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardProxy")
            .field("scope", &self.inner.scope)
            .field("tunnels", &self.inner.registry.open_tunnels())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Inner {
    mint: Mint,
    passes: Passes,
    sessions: Sessions,
    scope: String,
    /// What the 407 body says about buying: price, unit, where.
    offer: serde_json::Value,
    destinations: Destinations,
    per_mb: Option<(u64, String)>,
    limit: usize,
    idle: Duration,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    recheck: Duration,
    max_connections: usize,
    registry: Arc<Registry>,
}

impl ForwardProxy {
    /// A proxy opened by passes of `config.scope` from `paywall`, which sells them at
    /// `pass_url` (named in every `407`). The error names the setting that is wrong.
    pub fn new(
        paywall: &PaywallLayer,
        config: &ForwardConfig,
        pass_url: &str,
    ) -> Result<Self, String> {
        let passes = paywall.passes();
        let scope = passes.scope(&config.scope).ok_or_else(|| {
            format!(
                "forward.scope: no pass scope is named `{}`; add [[passes.scopes]] with that name",
                config.scope
            )
        })?;
        let destinations =
            Destinations::new(&config.allow).map_err(|e| format!("forward.allow: {e}"))?;
        let scope_unit = scope.price().unit.to_string();
        let per_mb = config.price_per_mb.map(|price| {
            (
                price,
                config.unit.clone().unwrap_or_else(|| scope_unit.clone()),
            )
        });
        let mut offer = json!({
            "pass_url": pass_url,
            "scope": scope.name(),
            "price_per_minute": scope.price().amount,
            "unit": scope_unit,
        });
        if let Some((price, unit)) = &per_mb {
            offer["price_per_mb"] = json!(price);
            offer["mb_unit"] = json!(unit);
        }
        Ok(Self {
            inner: Inner {
                mint: paywall.mint().clone(),
                sessions: paywall.sessions(),
                scope: scope.name().to_string(),
                passes,
                offer,
                destinations,
                per_mb,
                limit: config.max_tunnels_per_pass,
                idle: Duration::from_secs(config.idle_timeout_secs.max(1)),
                connect_timeout: Duration::from_secs(config.connect_timeout_secs.max(1)),
                handshake_timeout: Duration::from_secs(config.handshake_timeout_secs.max(1)),
                recheck: Duration::from_secs(config.recheck_secs.max(1)),
                max_connections: config.max_connections.max(1),
                registry: Arc::default(),
            },
        })
    }

    /// Marks `addr` as this server's (e.g. its HTTP listener): never a destination.
    pub fn own_address(mut self, addr: SocketAddr) -> Self {
        self.inner.destinations.own(addr);
        self
    }

    /// Tunnels open now.
    pub fn open_tunnels(&self) -> usize {
        self.inner.registry.open_tunnels()
    }

    /// Serves proxy clients on `listener` until `shutdown` completes; then every tunnel is
    /// closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let inner = Arc::new(self.own_address(local).inner);
        tracing::info!(addr = %local, scope = %inner.scope, "forward proxy (HTTP and SOCKS5) listening");
        let watcher = tokio::spawn(watch_passes(Arc::downgrade(&inner), inner.mint.activity()));
        let permits = Arc::new(Semaphore::new(inner.max_connections));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "forward proxy: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let inner = Arc::clone(&inner);
            tokio::spawn(async move {
                let _permit = permit;
                serve_connection(&inner, stream, peer).await;
            });
        }
        watcher.abort();
        inner.registry.close_all(Closed::Shutdown);
        tracing::info!("forward proxy stopped");
        Ok(())
    }
}

/// One client connection: SOCKS5 or HTTP by its first byte.
async fn serve_connection(inner: &Arc<Inner>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(inner.handshake_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == socks5::VERSION {
        socks(inner, stream, local, peer).await;
    } else {
        http(inner, stream, local, peer).await;
    }
}

impl Inner {
    /// Checks a credential: a pass of the proxy's scope, else (with per-megabyte pricing)
    /// a session in the right unit.
    async fn admit(&self, credential: Option<String>) -> Result<Access, Denied> {
        let credential = credential.ok_or(Denied::Missing)?;
        match self.passes.verify(&credential, Some(&self.scope)).await {
            Ok(pass) => Ok(Access::Pass { pass, credential }),
            Err(PassError::Invalid(why)) => {
                let Some((_, unit)) = &self.per_mb else {
                    return Err(Denied::Refused(format!("invalid pass: {why}")));
                };
                let claims = self.sessions.verify(&credential).map_err(|e| {
                    Denied::Refused(format!("neither a pass nor a session of this server ({e})"))
                })?;
                if claims.unit != *unit {
                    return Err(Denied::Refused(format!(
                        "the session is in {}, the proxy charges in {unit}",
                        claims.unit
                    )));
                }
                Ok(Access::Session(claims))
            }
            Err(err) => Err(Denied::from_pass(err)),
        }
    }

    /// Takes a tunnel place for `access`; a session must be able to pay its first megabyte.
    async fn enter(&self, access: &Access) -> Result<Slot, Denied> {
        let meter = || match (access, &self.per_mb) {
            (Access::Session(claims), Some((price, _))) => Some(Meter::new(
                self.sessions.clone(),
                claims.clone(),
                *price,
                MEGABYTE,
            )),
            _ => None,
        };
        let slot = self.registry.enter(&access.key(), self.limit, meter)?;
        if let Some(meter) = &slot.meter {
            meter.ready().await?;
        }
        Ok(slot)
    }

    /// What a relay watches for `access`: its pass's expiry, looked up again when reached.
    fn watch(self: &Arc<Self>, access: &Access) -> Watch {
        let expiry = match access {
            Access::Pass { pass, credential } => {
                let inner = Arc::clone(self);
                let credential = credential.clone();
                let recheck: tunnel::Recheck = Box::new(move || {
                    let (inner, credential) = (Arc::clone(&inner), credential.clone());
                    Box::pin(async move {
                        match inner.passes.verify(&credential, Some(&inner.scope)).await {
                            Ok(pass) => Ok(pass.expires_at),
                            Err(PassError::Revoked) => Err(Closed::Revoked),
                            // The store did not answer: keep going, look again shortly.
                            Err(PassError::Storage(_)) => Ok(coinslot_mint::unix_now() + 1),
                            Err(_) => Err(Closed::Expired),
                        }
                    })
                });
                Some((pass.expires_at, recheck))
            }
            Access::Session(_) => None,
        };
        Watch {
            expiry,
            idle: self.idle,
        }
    }

    /// Connects to `target` if the destination rules allow it (refusals logged at debug:
    /// destinations are the customer's business).
    async fn dial(
        &self,
        target: &Target,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Result<TcpStream, Refused> {
        let dialled = self
            .destinations
            .connect(target, local, self.connect_timeout)
            .await;
        if let Err(refused) = &dialled {
            tracing::debug!(%peer, target = %target, why = %refused, "forward: destination refused");
        }
        dialled
    }

    /// The `407` body: why, and where and for how much a pass is sold.
    fn offer(&self, denied: &Denied) -> serde_json::Value {
        let mut body = self.offer.clone();
        let buy = format!(
            "buy a pass: POST a token (X-Cashu) to {}",
            self.offer["pass_url"].as_str().unwrap_or("/pass")
        );
        body["detail"] = json!(format!("{denied}; {buy}"));
        body["code"] = json!(coinslot_mint::GENERIC_ERROR_CODE);
        body
    }
}

/// The HTTP side: a request head, then a tunnel or one forwarded request.
async fn http(inner: &Arc<Inner>, mut stream: TcpStream, local: SocketAddr, peer: SocketAddr) {
    let read = tokio::time::timeout(inner.handshake_timeout, http1::read_head(&mut stream)).await;
    let (bytes, len) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(bad)) => return refuse_http(&mut stream, bad.status, &bad.detail).await,
        Err(_) => return refuse_http(&mut stream, 408, "the request head took too long").await,
    };
    let head = match http1::parse(&bytes[..len]) {
        Ok(head) => head,
        Err(bad) => return refuse_http(&mut stream, bad.status, &bad.detail).await,
    };
    let wanted = match http1::wanted(&head) {
        Ok(wanted) => wanted,
        Err(bad) => return refuse_http(&mut stream, bad.status, &bad.detail).await,
    };
    let credential = match head
        .header("proxy-authorization")
        .map(String::from_utf8_lossy)
    {
        None => Ok(None),
        Some(value) => access::from_authorization(&value).map(Some),
    };
    let admitted = match credential {
        Ok(credential) => inner.admit(credential).await,
        Err(why) => Err(Denied::Refused(why)),
    };
    let access = match admitted {
        Ok(access) => access,
        Err(denied) => return deny_http(inner, &mut stream, &denied).await,
    };
    let mut slot = match inner.enter(&access).await {
        Ok(slot) => slot,
        Err(denied) => return deny_http(inner, &mut stream, &denied).await,
    };
    let (target, mut first) = match wanted {
        http1::Wanted::Tunnel(target) => (target, Vec::new()),
        http1::Wanted::Forward { target, head } => (target, head),
    };
    let tunnel = first.is_empty();
    first.extend_from_slice(&bytes[len..]);
    let upstream = match inner.dial(&target, local, peer).await {
        Ok(upstream) => upstream,
        Err(refused) => {
            let status = match refused {
                Refused::Forbidden(_) => 403,
                Refused::TimedOut => 504,
                _ => 502,
            };
            return refuse_http(&mut stream, status, &refused.to_string()).await;
        }
    };
    if tunnel {
        let mut ok = "HTTP/1.1 200 Connection established\r\n".to_string();
        if let Some(expires) = access.expires_at() {
            ok.push_str(&format!("X-Cashu-Pass-Expires: {expires}\r\n"));
        }
        ok.push_str("\r\n");
        if tokio::io::AsyncWriteExt::write_all(&mut stream, ok.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
    carry(
        inner, &access, &mut slot, stream, upstream, &first, &target, peer,
    )
    .await;
}

/// The SOCKS5 side: greeting with the pass as password, then a `CONNECT`.
async fn socks(inner: &Arc<Inner>, mut stream: TcpStream, local: SocketAddr, peer: SocketAddr) {
    let handshake = async {
        let credential = socks5::greet(&mut stream).await?;
        let access = match inner.admit(Some(credential)).await {
            Ok(access) => access,
            Err(denied) => {
                socks5::auth_result(&mut stream, false).await?;
                tracing::info!(%peer, why = %denied, "forward: SOCKS5 client refused");
                return Ok(None);
            }
        };
        socks5::auth_result(&mut stream, true).await?;
        let target = socks5::request(&mut stream).await?;
        Ok::<_, socks5::HandshakeError>(Some((access, target)))
    };
    let (access, target) = match tokio::time::timeout(inner.handshake_timeout, handshake).await {
        Ok(Ok(Some(done))) => done,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "forward: SOCKS5 handshake failed"),
        Err(_) => return tracing::debug!(%peer, "forward: SOCKS5 handshake took too long"),
    };
    let mut slot = match inner.enter(&access).await {
        Ok(slot) => slot,
        Err(denied) => {
            tracing::info!(%peer, access = %access.describe(), why = %denied, "forward: tunnel refused");
            let _ = socks5::reply(&mut stream, socks5::Reply::NotAllowed, None).await;
            return;
        }
    };
    let upstream = match inner.dial(&target, local, peer).await {
        Ok(upstream) => upstream,
        Err(refused) => {
            let code = match &refused {
                Refused::Forbidden(_) => socks5::Reply::NotAllowed,
                Refused::TimedOut => socks5::Reply::TtlExpired,
                Refused::Unreachable(why) if why.contains("refused") => {
                    socks5::Reply::ConnectionRefused
                }
                _ => socks5::Reply::HostUnreachable,
            };
            let _ = socks5::reply(&mut stream, code, None).await;
            return;
        }
    };
    if socks5::reply(
        &mut stream,
        socks5::Reply::Succeeded,
        upstream.local_addr().ok(),
    )
    .await
    .is_err()
    {
        return;
    }
    carry(
        inner,
        &access,
        &mut slot,
        stream,
        upstream,
        &[],
        &target,
        peer,
    )
    .await;
}

/// Relays an admitted, connected tunnel and reports how it ended.
#[allow(clippy::too_many_arguments)]
async fn carry(
    inner: &Arc<Inner>,
    access: &Access,
    slot: &mut Slot,
    mut client: TcpStream,
    mut upstream: TcpStream,
    first: &[u8],
    target: &Target,
    peer: SocketAddr,
) {
    tracing::debug!(%peer, access = %access.describe(), target = %target, "forward: tunnel open");
    metrics::gauge!("coinslot_forward_tunnels_open").increment(1.0);
    let traffic = Traffic::default();
    let end = tunnel::relay(
        &mut client,
        &mut upstream,
        first,
        slot,
        inner.watch(access),
        &traffic,
    )
    .await;
    metrics::gauge!("coinslot_forward_tunnels_open").decrement(1.0);
    let (up, down) = (
        traffic.up.load(std::sync::atomic::Ordering::Relaxed),
        traffic.down.load(std::sync::atomic::Ordering::Relaxed),
    );
    metrics::counter!("coinslot_forward_bytes_total", "direction" => "up").increment(up);
    metrics::counter!("coinslot_forward_bytes_total", "direction" => "down").increment(down);
    let end = match &end {
        End::Finished => "finished",
        End::Closed(why) => why.as_str(),
        End::Failed(error) => {
            tracing::debug!(%peer, %error, "forward: a side of the tunnel failed");
            "failed"
        }
    };
    metrics::counter!("coinslot_forward_tunnels_total", "end" => end).increment(1);
    tracing::info!(access = %access.describe(), up, down, end, "forward: tunnel closed");
}

async fn deny_http(inner: &Inner, stream: &mut TcpStream, denied: &Denied) {
    let (status, challenge) = match denied {
        Denied::TooMany(_) => (429, false),
        Denied::Unavailable(_) => (503, false),
        _ => (407, true),
    };
    let mut headers = Vec::new();
    if challenge {
        let error = if matches!(denied, Denied::Missing) {
            String::new()
        } else {
            ", error=\"invalid_token\"".into()
        };
        headers.push((
            "Proxy-Authenticate",
            format!(
                "Bearer realm=\"coinslot\", scope=\"{}\"{error}",
                inner.scope
            ),
        ));
        headers.push(("Proxy-Authenticate", "Basic realm=\"coinslot\"".to_string()));
    }
    let _ = http1::respond(stream, status, &headers, &inner.offer(denied)).await;
}

async fn refuse_http(stream: &mut TcpStream, status: u16, detail: &str) {
    let body = json!({ "detail": detail, "code": coinslot_mint::GENERIC_ERROR_CODE });
    let _ = http1::respond(stream, status, &[], &body).await;
}

/// Closes tunnels whose pass is revoked (at once for revocations the activity feed shows)
/// or has run out, and sessions that were closed; every `recheck`.
async fn watch_passes(
    inner: Weak<Inner>,
    mut activity: broadcast::Receiver<coinslot_mint::Activity>,
) {
    let every = match inner.upgrade() {
        Some(inner) => inner.recheck,
        None => return,
    };
    let mut tick = tokio::time::interval(every);
    let mut feed_open = true;
    loop {
        let event = tokio::select! {
            _ = tick.tick() => None,
            received = activity.recv(), if feed_open => Some(received),
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            Some(Ok(activity)) => {
                if let Event::PassRevoked { id, .. } = activity.event {
                    let closed = inner.registry.close(&format!("pass:{id}"), Closed::Revoked);
                    if closed > 0 {
                        tracing::info!(pass = %id, tunnels = closed, "forward: revoked pass's tunnels closed");
                    }
                }
            }
            Some(Err(broadcast::error::RecvError::Lagged(_))) => recheck(&inner).await,
            Some(Err(broadcast::error::RecvError::Closed)) => feed_open = false,
            None => recheck(&inner).await,
        }
    }
}

/// Looks up every pass and session with tunnels open.
async fn recheck(inner: &Inner) {
    let now = coinslot_mint::unix_now();
    for key in inner.registry.open_keys() {
        let why = if let Some(id) = key.strip_prefix("pass:") {
            match inner.mint.pass(id).await {
                Ok(Some(pass)) if pass.revoked => Some(Closed::Revoked),
                Ok(Some(pass)) if pass.expires_at <= now => Some(Closed::Expired),
                Ok(Some(_)) => None,
                Ok(None) => Some(Closed::Revoked),
                Err(err) => {
                    tracing::warn!(error = %err, "forward: cannot look passes up");
                    None
                }
            }
        } else if let Some(id) = key.strip_prefix("session:") {
            match inner.mint.account(id).await {
                Ok(None) => Some(Closed::BalanceEmpty),
                _ => None,
            }
        } else {
            None
        };
        if let Some(why) = why {
            inner.registry.close(&key, why);
        }
    }
    inner.registry.prune(Duration::from_secs(24 * 3600));
}
