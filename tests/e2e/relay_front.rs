//! coinslotd as a paid front (`[relay]`) for relays that are not ours: rust-nostr's
//! relay builder in-process, and the PyPI `nostr-relay` (Python) when COINSLOT_INTEROP=1.
//! A real coinslotd on 127.0.0.1:0, real cdk wallets, raw websocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use anyhow::{Context, Result};
use coinslot_tests::relay_conn::{note, Conn};
use coinslot_tests::wallet::{funded, token, unspent};
use coinslot_tests::TestServer;
use nostr_sdk::prelude::*;
use serde_json::json;

/// Starts coinslotd in front of the relay at `upstream`, 2 sat a write.
async fn front(dir: &std::path::Path, upstream: &str) -> Result<(TestServer, String)> {
    let mut config = coinslotd::Config::with_data_dir(dir);
    config.relay.upstream = upstream.to_string();
    config.relay.price = 2;
    let server = TestServer::start_with(config).await?;
    let ws = format!("{}/relay", server.url.replace("http://", "ws://"));
    Ok((server, ws))
}

/// Whether the relay behind holds `id` (asked directly, not through the front).
async fn relay_has(upstream: &str, id: EventId) -> Result<bool> {
    let mut direct = Conn::open_plain(upstream).await?;
    let found = direct.req("check", json!({ "ids": [id.to_hex()] })).await?;
    Ok(found.iter().any(|event| event.id == id))
}

/// The author's balance, as the front tells it on AUTH (a connection of its own).
async fn balance(ws: &str, keys: &Keys) -> Result<String> {
    let mut conn = Conn::open(ws).await?;
    let (ok, message) = conn.auth(keys, ws).await?;
    assert!(ok, "{message}");
    Ok(message)
}

/// Writes through the front: refused unpaid, paid by a token tag, then from the balance;
/// a duplicate costs nothing; reads pass through; a forged event never reaches the relay.
async fn writes_are_paid_before_they_reach(upstream: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (server, ws) = front(dir.path(), upstream).await?;
    let wallet = funded(&server.url, 20).await?;
    let keys = Keys::generate();
    let mut conn = Conn::open(&ws).await?;
    assert!(
        !conn.challenge.is_empty(),
        "the front sends its own challenge"
    );

    let unpaid = note(&keys, "for free?", None);
    let (ok, message) = conn.publish(&unpaid).await?;
    assert!(!ok);
    assert!(
        message.starts_with("restricted: payment-required: 2 sat"),
        "{message}"
    );
    assert!(message.contains("creqA"), "a payment request: {message}");
    assert!(
        !relay_has(upstream, unpaid.id).await?,
        "an unpaid write reached the relay"
    );

    // A 7-sat token in the tag: 2 for this write, 5 kept as the author's balance.
    let paying = token(&wallet, 7).await?;
    let tagged = note(&keys, "paid with a tag", Some(&paying));
    let (ok, message) = conn.publish(&tagged).await?;
    assert!(ok, "{message}");
    assert!(relay_has(upstream, tagged.id).await?);
    assert!(!unspent(&wallet, &paying).await?, "the token was not taken");

    // AUTH: later writes are paid from the balance.
    let (ok, message) = conn.auth(&keys, &ws).await?;
    assert!(ok, "{message}");
    assert!(message.contains("balance 5 sat"), "{message}");
    let from_balance = note(&keys, "paid from the balance", None);
    let (ok, message) = conn.publish(&from_balance).await?;
    assert!(ok, "{message}");
    assert!(relay_has(upstream, from_balance.id).await?);
    assert!(balance(&ws, &keys).await?.contains("balance 3 sat"));

    // The same event again: the relay has it, so its price comes back.
    let (_, message) = conn.publish(&from_balance).await?;
    assert!(message.starts_with("duplicate:"), "{message}");
    let left = balance(&ws, &keys).await?;
    assert!(
        left.contains("balance 3 sat"),
        "a duplicate was charged: {left}"
    );

    // Reads pass through to the relay.
    let read = conn
        .req("mine", json!({ "authors": [keys.public_key().to_hex()] }))
        .await?;
    let ids: Vec<EventId> = read.iter().map(|event| event.id).collect();
    assert!(
        ids.contains(&tagged.id) && ids.contains(&from_balance.id),
        "{ids:?}"
    );
    assert!(!ids.contains(&unpaid.id));

    // A forged event (content changed after signing) is refused by the front itself.
    let mut forged = serde_json::to_value(note(&keys, "original", None))?;
    forged["content"] = json!("changed");
    let id = EventId::from_hex(forged["id"].as_str().context("id")?)?;
    let (ok, message) = conn.ok_for(json!(["EVENT", forged]), id).await?;
    assert!(!ok);
    assert!(message.starts_with("invalid:"), "{message}");
    assert!(!relay_has(upstream, id).await?);
    assert!(balance(&ws, &keys).await?.contains("balance 3 sat"));

    // Another author without a balance or a tag: refused, whatever it was authed as.
    let stranger = Keys::generate();
    let (ok, _) = conn.publish(&note(&stranger, "hello", None)).await?;
    assert!(!ok);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_nostr_relay_behind_coinslotd_gets_only_paid_writes() -> Result<()> {
    let (_relay, url) = coinslot_tests::nwc::relay().await?;
    writes_are_paid_before_they_reach(&url).await
}

/// The PyPI `nostr-relay` (Python), in a venv under ~/.cache/coinslot, on a loopback port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and the PyPI nostr-relay; scripts/test.sh runs it with COINSLOT_INTEROP=1"]
async fn a_python_relay_behind_coinslotd_gets_only_paid_writes() -> Result<()> {
    let bin = coinslot_tests::interop::venv(
        "nostr-relay-venv",
        &coinslot_tests::interop::dir("nostr-relay").join("requirements.txt"),
    );
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  sqlalchemy.url: sqlite+aiosqlite:///{}/nostr.sqlite3\ngunicorn:\n  bind: 127.0.0.1:{port}\n  workers: 1\n  control_socket_disable: true\n",
            dir.path().display()
        ),
    )?;
    let mut relay = tokio::process::Command::new(bin.join("nostr-relay"))
        .arg("-c")
        .arg(&config)
        .arg("serve")
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("nostr-relay does not start")?;
    let http = format!("http://127.0.0.1:{port}/");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !matches!(reqwest::get(&http).await, Ok(r) if r.status().is_success()) {
        assert!(
            std::time::Instant::now() < deadline,
            "nostr-relay did not come up in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = writes_are_paid_before_they_reach(&format!("ws://127.0.0.1:{port}")).await;
    if let Some(pid) = relay.id() {
        // SIGTERM lets it close its database; kill_on_drop is the fallback.
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(10), relay.wait()).await;
    }
    result
}
