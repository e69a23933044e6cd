//! The example as a newcomer runs it: the `paid-proxy` binary on loopback ports, a cdk
//! wallet buying a pass, a page fetched through the proxy (HTTP and SOCKS5), and the
//! `/clock` stream cut when the pass runs out (minutes of one second here).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::io::BufRead;
use std::time::{Duration, Instant};

use coinslot_tests::wallet::{self, token};

struct Running {
    child: std::process::Child,
    url: String,
    proxy: String,
    site: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads where it listens from what it prints.
fn start(data_dir: &std::path::Path) -> Running {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_paid-proxy"))
        .args(["--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0"])
        .args(["--demo-site", "127.0.0.1:0", "--minute-secs", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut proxy, mut site) = (None, None, None);
    while url.is_none() || proxy.is_none() || site.is_none() {
        let line = lines.next().expect("paid-proxy exited").unwrap();
        let word = |after: &str| {
            line.split(after).nth(1).map(|rest| {
                rest.split([' ', ','])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
        };
        if line.contains("demo site on") {
            site = word("demo site on ");
        } else if line.contains("pass shop on") {
            url = word("pass shop on ");
        } else if line.contains("proxy (HTTP and SOCKS5) on") {
            proxy = word("proxy (HTTP and SOCKS5) on ");
        }
    }
    Running {
        child,
        url: url.unwrap(),
        proxy: proxy.unwrap(),
        site: site.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buy_a_pass_browse_through_the_proxy_and_get_cut_at_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path());
    let wallet = wallet::funded(&running.url, 20).await.unwrap();

    // Without a pass: 407.
    let plain = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}", running.proxy)).unwrap())
        .build()
        .unwrap();
    let refused = plain
        .get(format!("{}/", running.site))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 407);

    // 4 sat at 1 sat a minute: four (one-second) minutes.
    let bought: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/pass", running.url))
        .header("x-cashu", token(&wallet, 4).await.unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bought["minutes"], 4, "{bought}");
    let pass = bought["pass"].as_str().unwrap();

    let socks = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("socks5h://pass:{pass}@{}", running.proxy)).unwrap())
        .build()
        .unwrap();
    let page = socks
        .get(format!("{}/", running.site))
        .send()
        .await
        .unwrap();
    assert_eq!(page.text().await.unwrap(), "hello through the paid proxy\n");

    // The clock ticks through the proxy until the pass runs out, then the tunnel is cut.
    let http = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://{}", running.proxy))
                .unwrap()
                .basic_auth("pass", pass),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let mut clock = http
        .get(format!("{}/clock", running.site))
        .send()
        .await
        .unwrap();
    assert_eq!(clock.status(), 200);
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(chunk)) = clock.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(read.is_ok(), "the clock was not cut within 15 s: {text}");
    let ticks = text.lines().filter(|l| l.starts_with("tick")).count();
    assert!(ticks >= 2, "cut too early: {text}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "cut late: {:?}",
        start.elapsed()
    );
    let expires = bought["expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now >= expires, "cut at {now}, before the expiry {expires}");
}
