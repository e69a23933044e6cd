//! Open tunnels: counted per credential (the per-pass limit), closed all at once when their
//! pass is revoked or runs out, and relayed byte for byte with an idle timeout and, for a
//! session, a meter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::access::{Denied, Meter};

/// Why a tunnel was closed by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its pass ran out.
    Expired,
    /// Its pass was revoked.
    Revoked,
    /// Its session could not pay for the next megabyte.
    BalanceEmpty,
    /// Nothing flowed for the idle timeout.
    Idle,
    /// The server is stopping.
    Shutdown,
}

impl Closed {
    /// The reason's name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Expired => "expired",
            Closed::Revoked => "revoked",
            Closed::BalanceEmpty => "balance_empty",
            Closed::Idle => "idle",
            Closed::Shutdown => "shutdown",
        }
    }
}

struct Entry {
    tunnels: usize,
    close: watch::Sender<Option<Closed>>,
    meter: Option<Arc<Meter>>,
    touched: Instant,
}

/// The tunnels open now, per credential key.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

/// One open tunnel's place in the registry; leaving it (drop) frees the place.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    key: String,
    pub closed: watch::Receiver<Option<Closed>>,
    pub meter: Option<Arc<Meter>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut entries = self.registry.entries.lock();
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.tunnels = entry.tunnels.saturating_sub(1);
            entry.touched = Instant::now();
            // A meter keeps what is left of a paid megabyte for the session's next tunnel.
            if entry.tunnels == 0 && entry.meter.is_none() {
                entries.remove(&self.key);
            }
        }
    }
}

impl Registry {
    /// Takes a place for one more tunnel on `key`, if fewer than `limit` are open;
    /// `meter` makes the key's meter the first time.
    pub fn enter(
        self: &Arc<Self>,
        key: &str,
        limit: usize,
        meter: impl FnOnce() -> Option<Arc<Meter>>,
    ) -> Result<Slot, Denied> {
        let mut entries = self.entries.lock();
        let entry = entries.entry(key.to_string()).or_insert_with(|| Entry {
            tunnels: 0,
            close: watch::channel(None).0,
            meter: None,
            touched: Instant::now(),
        });
        if limit > 0 && entry.tunnels >= limit {
            return Err(Denied::TooMany(limit));
        }
        // A key closed before (revoked, run out) and opened again with more time starts over.
        if entry.tunnels == 0 {
            entry.close.send_replace(None);
        }
        if entry.meter.is_none() {
            entry.meter = meter();
        }
        entry.tunnels += 1;
        entry.touched = Instant::now();
        Ok(Slot {
            registry: Arc::clone(self),
            key: key.to_string(),
            closed: entry.close.subscribe(),
            meter: entry.meter.clone(),
        })
    }

    /// Closes every tunnel open on `key`.
    pub fn close(&self, key: &str, why: Closed) -> usize {
        let entries = self.entries.lock();
        match entries.get(key) {
            Some(entry) if entry.tunnels > 0 => {
                entry.close.send_replace(Some(why));
                entry.tunnels
            }
            _ => 0,
        }
    }

    /// Closes every tunnel.
    pub fn close_all(&self, why: Closed) {
        for entry in self.entries.lock().values() {
            entry.close.send_replace(Some(why));
        }
    }

    /// Keys with tunnels open now.
    pub fn open_keys(&self) -> Vec<String> {
        self.entries
            .lock()
            .iter()
            .filter(|(_, entry)| entry.tunnels > 0)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Tunnels open now, in all.
    pub fn open_tunnels(&self) -> usize {
        self.entries.lock().values().map(|e| e.tunnels).sum()
    }

    /// Forgets meters of sessions with no tunnel for `older_than`.
    pub fn prune(&self, older_than: Duration) {
        self.entries
            .lock()
            .retain(|_, entry| entry.tunnels > 0 || entry.touched.elapsed() < older_than);
    }
}

/// How a relayed tunnel ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Both sides finished.
    Finished,
    /// The proxy closed it.
    Closed(Closed),
    /// A side failed.
    Failed(std::io::Error),
}

/// Bytes carried each way.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

/// Looks a pass up again when it runs out: its new expiry, or why the tunnel closes.
pub(crate) type Recheck = Box<dyn Fn() -> BoxFuture<'static, Result<u64, Closed>> + Send + Sync>;

/// What a relay needs to know beyond the two streams.
pub(crate) struct Watch {
    /// When the pass runs out (Unix seconds) and how to look again then.
    pub expiry: Option<(u64, Recheck)>,
    /// Close after this long without a byte either way.
    pub idle: Duration,
}

/// Carries bytes between `client` and `upstream` (after sending `first` upstream) until
/// both sides finish or the proxy closes the tunnel.
pub(crate) async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    first: &[u8],
    slot: &mut Slot,
    watch: Watch,
    traffic: &Traffic,
) -> End {
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let meter = slot.meter.clone();
    if !first.is_empty() {
        let (granted, stop) = match &meter {
            Some(meter) => meter.take(first.len() as u64).await,
            None => (first.len() as u64, None),
        };
        let granted = usize::try_from(granted)
            .unwrap_or(first.len())
            .min(first.len());
        if let Err(e) = upstream.write_all(&first[..granted]).await {
            return End::Failed(e);
        }
        traffic.up.fetch_add(granted as u64, Ordering::Relaxed);
        if stop.is_some() {
            return End::Closed(Closed::BalanceEmpty);
        }
    }
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let meter = meter.as_deref();
    let pumps = async {
        tokio::try_join!(
            pump(
                &mut client_read,
                &mut upstream_write,
                meter,
                &traffic.up,
                &last,
                start
            ),
            pump(
                &mut upstream_read,
                &mut client_write,
                meter,
                &traffic.down,
                &last,
                start
            ),
        )
    };
    let control = control(&mut slot.closed, watch, &last, start);
    tokio::select! {
        done = pumps => match done {
            Ok(_) => End::Finished,
            Err(Stop::Balance) => End::Closed(Closed::BalanceEmpty),
            Err(Stop::Io(e)) => End::Failed(e),
        },
        why = control => End::Closed(why),
    }
}

enum Stop {
    Balance,
    Io(std::io::Error),
}

const BUFFER: usize = 16 * 1024;
/// A sleep that never ends in practice (a branch with no expiry is disabled anyway).
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    meter: Option<&Meter>,
    count: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buffer).await.map_err(Stop::Io)?;
        if n == 0 {
            // Half-close: the other direction may still be talking.
            let _ = to.shutdown().await;
            return Ok(());
        }
        let (granted, stop) = match meter {
            Some(meter) => meter.take(n as u64).await,
            None => (n as u64, None),
        };
        let granted = usize::try_from(granted).unwrap_or(n).min(n);
        to.write_all(&buffer[..granted]).await.map_err(Stop::Io)?;
        count.fetch_add(granted as u64, Ordering::Relaxed);
        last.store(millis(start.elapsed()), Ordering::Relaxed);
        if stop.is_some() {
            let _ = to.flush().await;
            return Err(Stop::Balance);
        }
    }
}

/// Waits for a reason to close: the registry says so, the pass runs out (looked up again
/// then, as it may have been extended), or nothing flows for the idle timeout.
async fn control(
    closed: &mut watch::Receiver<Option<Closed>>,
    watch: Watch,
    last: &AtomicU64,
    start: Instant,
) -> Closed {
    let mut expiry = watch.expiry.as_ref().map(|(at, _)| *at);
    loop {
        let idle_at = start + Duration::from_millis(last.load(Ordering::Relaxed)) + watch.idle;
        let expiry_in = expiry.map(until_unix);
        tokio::select! {
            changed = closed.changed() => match changed {
                Ok(()) => {
                    if let Some(why) = *closed.borrow_and_update() {
                        return why;
                    }
                }
                Err(_) => return Closed::Shutdown,
            },
            () = tokio::time::sleep_until(idle_at.into()) => {
                let since = Duration::from_millis(last.load(Ordering::Relaxed));
                if start + since + watch.idle <= Instant::now() {
                    return Closed::Idle;
                }
            }
            () = tokio::time::sleep(expiry_in.unwrap_or(FAR)), if expiry.is_some() => {
                let Some((_, recheck)) = &watch.expiry else { return Closed::Expired };
                match recheck().await {
                    Ok(at) if at > unix_now() => expiry = Some(at),
                    Ok(_) => return Closed::Expired,
                    Err(why) => return why,
                }
            }
        }
    }
}

/// How long until Unix second `at` (zero once past).
fn until_unix(at: u64) -> Duration {
    let at = UNIX_EPOCH + Duration::from_secs(at);
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

fn unix_now() -> u64 {
    coinslot_mint::unix_now()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
