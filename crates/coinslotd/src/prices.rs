//! Prices changed through the admin API: applied at once and kept in the data directory
//! (`prices.json`), so a restart does not silently bring the config file's old prices back.
//! Delete the file to return to the config file's prices.

use std::path::{Path, PathBuf};

use coinslot_admin::PriceBook;
use coinslot_proxy::{ProxyRoutes, UpstreamConfig};
use serde_json::{json, Value};

/// File name of the price override inside the data directory.
pub const PRICES_FILE: &str = "prices.json";

/// The admin API's view of the proxy's routes.
#[derive(Debug, Clone)]
pub struct ProxyPriceBook {
    routes: ProxyRoutes,
    file: PathBuf,
}

impl ProxyPriceBook {
    /// Prices of `routes`, persisted in `data_dir`.
    pub fn new(routes: ProxyRoutes, data_dir: &Path) -> Self {
        Self {
            routes,
            file: data_dir.join(PRICES_FILE),
        }
    }
}

/// The upstreams saved by an earlier price change, if any.
pub fn saved_upstreams(data_dir: &Path) -> anyhow::Result<Option<Vec<UpstreamConfig>>> {
    let file = data_dir.join(PRICES_FILE);
    match std::fs::read(&file) {
        Ok(bytes) => {
            let upstreams = parse(serde_json::from_slice(&bytes)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Ok(Some(upstreams))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::anyhow!("cannot read {}: {err}", file.display())),
    }
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

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = file.with_extension("json.tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, file)
}

impl PriceBook for ProxyPriceBook {
    fn prices(&self) -> Value {
        json!({ "upstreams": self.routes.load().config().upstreams })
    }

    fn set_prices(&self, prices: Value) -> Result<Value, String> {
        let upstreams = parse(prices)?;
        // Check before saving: a file that cannot start the server must never be written.
        let routes = self.routes.clone();
        routes
            .replace_upstreams(upstreams.clone())
            .map_err(|e| e.0)?;
        let saved = serde_json::to_vec_pretty(&json!({ "upstreams": upstreams }))
            .map_err(|e| e.to_string())?;
        if let Err(err) = write_atomically(&self.file, &saved) {
            tracing::error!(error = %err, file = %self.file.display(), "new prices apply but were not saved");
            return Err(format!(
                "the new prices apply now but could not be saved ({err}); they will be lost at restart"
            ));
        }
        Ok(self.prices())
    }
}
