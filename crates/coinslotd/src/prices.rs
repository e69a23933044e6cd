//! One price list for every instance: prices changed through the admin API are a setting of
//! the store (`prices`, versioned), so they survive restarts and reach every instance that
//! shares the store. On PostgreSQL a change is notified (`LISTEN/NOTIFY`) and applied by the
//! other instances at once; each also rereads the setting every [`RECHECK`], in case a
//! notification was missed while its listening connection was down.
//!
//! The setting holds `{"upstreams": [...]}` (what `GET /admin/prices` shows), or `null`
//! after `DELETE /admin/prices`: every instance then goes back to its config file's
//! upstreams. A `prices.json` left in the data directory by an earlier version is moved into
//! the store at start, once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coinslot_admin::{PriceBook, PriceChange};
use coinslot_mint::Mint;
use coinslot_proxy::{ProxyRoutes, UpstreamConfig};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

/// File name of the price override an earlier version kept in the data directory.
pub const PRICES_FILE: &str = "prices.json";

/// The store setting that holds the price list.
pub const SETTING: &str = "prices";

/// How often an instance rereads the setting without being told.
pub const RECHECK: Duration = Duration::from_secs(30);

/// The price list as stored: the upstreams, or `None` for the config file's.
#[derive(Debug, Clone)]
pub struct StoredPrices {
    /// Its version in the store.
    pub version: u64,
    /// The upstreams it sets; `None`: the config file's.
    pub upstreams: Option<Vec<UpstreamConfig>>,
}

/// The price list in the store when an instance starts (after moving an old `prices.json`
/// into it); `None` if it was never changed.
pub async fn load(mint: &Mint, data_dir: &Path) -> anyhow::Result<Option<StoredPrices>> {
    let file = data_dir.join(PRICES_FILE);
    if let Some(stored) = read(mint).await? {
        if file.exists() {
            tracing::warn!(file = %file.display(), "the price list is in the store now: this file is no longer read; delete it");
        }
        return Ok(Some(stored));
    }
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(anyhow::anyhow!("cannot read {}: {err}", file.display())),
    };
    let upstreams = parse(serde_json::from_slice(&bytes)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let version = mint
        .put_setting(SETTING, &encode(Some(&upstreams))?)
        .await?;
    let imported = file.with_extension("json.imported");
    match std::fs::rename(&file, &imported) {
        Ok(()) => {
            tracing::info!(file = %imported.display(), "price list moved from the data directory into the store")
        }
        Err(err) => {
            tracing::warn!(error = %err, file = %file.display(), "price list copied into the store, but the file stays")
        }
    }
    Ok(Some(StoredPrices {
        version,
        upstreams: Some(upstreams),
    }))
}

async fn read(mint: &Mint) -> anyhow::Result<Option<StoredPrices>> {
    let Some(record) = mint.setting(SETTING).await? else {
        return Ok(None);
    };
    let value: Value = serde_json::from_slice(&record.value)?;
    let upstreams = match value {
        Value::Null => None,
        value => Some(parse(value).map_err(|e| anyhow::anyhow!("stored price list: {e}"))?),
    };
    Ok(Some(StoredPrices {
        version: record.version,
        upstreams,
    }))
}

fn encode(upstreams: Option<&Vec<UpstreamConfig>>) -> anyhow::Result<Vec<u8>> {
    Ok(match upstreams {
        Some(upstreams) => serde_json::to_vec(&json!({ "upstreams": upstreams }))?,
        None => b"null".to_vec(),
    })
}

/// Accepts `{"upstreams": [...]}` (what `GET /admin/prices` returns) or a bare list.
fn parse(value: Value) -> Result<Vec<UpstreamConfig>, String> {
    let list = match value {
        Value::Object(mut object) => object
            .remove("upstreams")
            .ok_or("expected {\"upstreams\": [...]}")?,
        list => list,
    };
    serde_json::from_value(list).map_err(|e| format!("upstreams: {e}"))
}

/// The admin API's view of the proxy's routes, kept in step with the store.
#[derive(Debug, Clone)]
pub struct ProxyPriceBook {
    routes: ProxyRoutes,
    mint: Mint,
    /// The config file's upstreams, for a price list reset to them.
    configured: Arc<Vec<UpstreamConfig>>,
    /// The version of the stored price list in force here (0: none yet); held while a
    /// list is applied, so two never apply out of order.
    applied: Arc<Mutex<u64>>,
}

impl ProxyPriceBook {
    /// Prices of `routes` (built with `start`'s upstreams, when the store had a price list),
    /// kept in `mint`'s store; `configured` are the config file's upstreams.
    pub fn new(
        routes: ProxyRoutes,
        mint: Mint,
        configured: Vec<UpstreamConfig>,
        start: Option<&StoredPrices>,
    ) -> Self {
        Self {
            routes,
            mint,
            configured: Arc::new(configured),
            applied: Arc::new(Mutex::new(start.map_or(0, |s| s.version))),
        }
    }

    /// Applies the price lists other instances write, as they are notified, and rereads the
    /// store every [`RECHECK`]. Ends with the mint.
    pub fn follow(&self) {
        let mut changes = self.mint.setting_changes();
        let weak = self.mint.downgrade();
        let book = self.follower();
        tokio::spawn(async move {
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.tick().await;
            loop {
                tokio::select! {
                    changed = changes.recv() => match changed {
                        Ok(name) if name != SETTING => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    },
                    _ = recheck.tick() => {}
                }
                let Some(mint) = weak.upgrade() else { break };
                if let Err(err) = book.catch_up(&mint).await {
                    tracing::warn!(error = %err, "cannot apply the stored price list");
                }
            }
        });
    }

    /// The part that applies stored lists, without a handle on the mint (the task that
    /// follows the store must not keep the mint alive).
    fn follower(&self) -> Follower {
        Follower {
            routes: self.routes.clone(),
            configured: Arc::clone(&self.configured),
            applied: Arc::clone(&self.applied),
        }
    }

    async fn write(&self, upstreams: Option<Vec<UpstreamConfig>>) -> Result<Value, String> {
        let target = upstreams
            .clone()
            .unwrap_or_else(|| self.configured.to_vec());
        // Checked before it is stored: a price list that cannot apply is never written.
        self.routes.check_upstreams(&target).map_err(|e| e.0)?;
        let bytes = encode(upstreams.as_ref()).map_err(|e| e.to_string())?;
        let version = self
            .mint
            .put_setting(SETTING, &bytes)
            .await
            .map_err(|err| {
                tracing::error!(error = %err, "the new prices could not be stored");
                format!("the new prices could not be stored ({err}); nothing changed")
            })?;
        self.follower()
            .apply(&StoredPrices { version, upstreams })?;
        Ok(self.prices())
    }
}

/// What follows the store's price list: the routes it changes and the version in force.
struct Follower {
    routes: ProxyRoutes,
    configured: Arc<Vec<UpstreamConfig>>,
    applied: Arc<Mutex<u64>>,
}

impl Follower {
    async fn catch_up(&self, mint: &Mint) -> anyhow::Result<()> {
        if let Some(stored) = read(mint).await? {
            self.apply(&stored).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Applies `stored` if it is newer than the list in force.
    fn apply(&self, stored: &StoredPrices) -> Result<(), String> {
        let mut applied = lock(&self.applied);
        if *applied >= stored.version {
            return Ok(());
        }
        let upstreams = stored
            .upstreams
            .clone()
            .unwrap_or_else(|| self.configured.to_vec());
        // A list that cannot apply here is passed over, not retried at every recheck.
        *applied = stored.version;
        self.routes
            .replace_upstreams(upstreams)
            .map_err(|e| format!("price list version {}: {}", stored.version, e.0))?;
        tracing::info!(version = stored.version, "price list applied");
        Ok(())
    }
}

/// The applied version, even after a panic elsewhere (it is only a number).
fn lock(applied: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    applied
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PriceBook for ProxyPriceBook {
    fn prices(&self) -> Value {
        json!({
            "upstreams": self.routes.load().config().upstreams,
            "version": *lock(&self.applied),
        })
    }

    fn set_prices(&self, prices: Value) -> PriceChange<'_> {
        Box::pin(async move { self.write(Some(parse(prices)?)).await })
    }

    fn reset_prices(&self) -> PriceChange<'_> {
        Box::pin(self.write(None))
    }
}
