//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for the
//! browser tests of the top-up page and the arcade.
//!
//! Such tests are `#[ignore]`d and run by `scripts/test.sh` when `COINSLOT_BROWSER=1`;
//! `COINSLOT_CHROMIUM` and `COINSLOT_CHROMEDRIVER` override the binaries' paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// How long a wait in the page may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process and a browser session on it; ends both when dropped.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    child: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium emulating a phone (390×844 CSS pixels
    /// at 2 device pixels each, with touch).
    pub async fn start() -> Browser {
        Self::launch(Some((390, 844))).await
    }

    /// The same with a desktop window (1280×1000), for pages an operator opens at a desk.
    pub async fn start_desktop() -> Browser {
        Self::launch(None).await
    }

    async fn launch(phone: Option<(u32, u32)>) -> Browser {
        let bin = std::env::var("COINSLOT_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
        let port = crate::free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let chromium = std::env::var("COINSLOT_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
        let (width, height) = phone.unwrap_or((1280, 1000));
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", format!("--window-size={width},{height}"), "--lang=en-US",
            ],
        });
        if phone.is_some() {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0, "touch": true }
            });
        }
        let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot open a WebDriver session: {e}"));
        Browser { client, child }
    }

    /// Ends the browser session (the process ends on drop).
    pub async fn close(&self) {
        let _ = self.client.clone().close().await;
    }
}

/// Runs `script` until it returns something truthy (not null, false or ""), and returns
/// that; panics after [`WAIT`], printing the text (or value) of the `debug_ids` elements to
/// show where the page was.
pub async fn wait_for(client: &Client, what: &str, script: &str, debug_ids: &[&str]) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script for {what} failed: {e}"));
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() > deadline {
            let ids = serde_json::to_string(debug_ids).unwrap_or_default();
            let page = client
                .execute(
                    &format!(
                        "return {ids}.map(id => {{ const e = document.getElementById(id); \
                         return id + ': ' + (e ? (e.value || e.textContent) : '-'); }}).join(' | ')"
                    ),
                    vec![],
                )
                .await;
            panic!("timed out waiting for {what}; page: {page:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `script`, which must return a string.
pub async fn js_string(client: &Client, script: &str) -> String {
    match client.execute(script, vec![]).await {
        Ok(Value::String(s)) => s,
        other => panic!("`{script}` returned {other:?}"),
    }
}

/// Where screenshots go: `<target>/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    dir
}

/// Saves a PNG screenshot and prints where.
pub fn save_png(path: &Path, png: &[u8]) {
    if let Err(e) = std::fs::write(path, png) {
        panic!("cannot write {}: {e}", path.display());
    }
    println!("screenshot: {}", path.display());
}
