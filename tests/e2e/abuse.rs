//! Abuse limits, each shown to hold on a real server on 127.0.0.1:0: slow and idle
//! connections (slowloris), the connection cap (websockets included) and the cap per
//! client address, NUT-17 subscriptions per websocket, and the paid relay's subscriptions,
//! message size and rates.
//!
//! Elsewhere: header and body sizes and request rates in `admin.rs`, inputs and outputs per
//! request in `mint_api.rs`, the mint-over-nostr responder's rates and event sizes in
//! `crates/coinslot-nostr/tests/relay.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use anyhow::{Context, Result};
use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_relay::{PaidRelay, RelayConfig};
use coinslot_tests::proxy::ProxiedApp;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &ProxiedApp) -> TcpStream {
    TcpStream::connect(app.url().trim_start_matches("http://"))
        .await
        .unwrap()
}

/// What the server sent before it closed the connection, or `None` if it was still open
/// after `limit`.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&read).into_owned()),
            Ok(Ok(n)) => read.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /health` on `stream`: what came back before the server closed it (within 5 s).
async fn health(mut stream: TcpStream) -> Result<String> {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    until_closed(&mut stream, Duration::from_secs(5))
        .await
        .context("the connection stayed open")
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed_while_others_are_served() -> Result<()> {
    let (app, _dir) =
        ProxiedApp::start_in_temp(|config| config.limits.header_read_timeout_secs = 1).await?;
    // Never sends a byte.
    let mut idle = connect(&app).await;
    // Sends half a head and stalls (slowloris).
    let mut slow_head = connect(&app).await;
    slow_head
        .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await?;
    // Announces a body and sends a tenth of it.
    let mut slow_body = connect(&app).await;
    slow_body
        .write_all(
            b"POST /v1/checkstate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"Ys\": [",
        )
        .await?;
    // One request, then keeps the connection without sending another.
    let mut kept_alive = connect(&app).await;
    kept_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;

    // Meanwhile the server answers everyone else.
    let status = reqwest::get(format!("{}/status", app.url())).await?;
    assert_eq!(status.status(), 200);

    for (name, stream) in [
        ("idle", &mut idle),
        ("slow head", &mut slow_head),
        ("slow body", &mut slow_body),
    ] {
        let sent = until_closed(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the {name} connection is still open after 10 s"));
        assert!(
            !sent.contains(" 200 "),
            "the {name} connection was answered as if complete: {sent}"
        );
    }
    let sent = until_closed(&mut kept_alive, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_until_one_closes() -> Result<()> {
    let (app, _dir) = ProxiedApp::start_in_temp(|config| {
        config.limits.max_connections = 3;
        config.limits.header_read_timeout_secs = 60;
    })
    .await?;
    // Three slots taken: a websocket (counted while it is open, after hyper handed it over)
    // and two idle connections.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(coinslot_tests::wallet::ws_url(app.url())).await?;
    let first = connect(&app).await;
    let _second = connect(&app).await;

    // Each request on a client of its own, kept (with its idle connection) once answered.
    let get = |url: String| {
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let response = client.get(url).send().await?;
            anyhow::Ok((response.status().as_u16(), client))
        })
    };
    let waiting = get(format!("{}/health", app.url()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection was served while three were open"
    );
    // A slot frees: the waiting request is served (its connection now holds that slot).
    drop(first);
    let (status, _kept) = tokio::time::timeout(Duration::from_secs(10), waiting).await???;
    assert_eq!(status, 200);

    let waiting = get(format!("{}/health", app.url()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !waiting.is_finished(),
        "the websocket did not hold its slot"
    );
    ws.close(None).await?;
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), waiting).await???;
    assert_eq!(status, 200);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_more_than_its_share_of_connections() -> Result<()> {
    let (app, _dir) = ProxiedApp::start_in_temp(|config| {
        config.limits.max_connections_per_ip = 2;
        config.limits.header_read_timeout_secs = 60;
    })
    .await?;
    let server: std::net::SocketAddr = app.url().trim_start_matches("http://").parse()?;
    let from = |source: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{source}:0").parse()?)?;
        anyhow::Ok(socket.connect(server).await?)
    };
    // From 127.0.0.3 (all of 127/8 is loopback on Linux): the harness's own connections,
    // from 127.0.0.1, must not count against this address. Each of the two is served once
    // (kept alive), so the server surely counts both.
    let mut first = from("127.0.0.3").await?;
    let mut second = from("127.0.0.3").await?;
    for stream in [&mut first, &mut second] {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut read = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&read).contains("\"ok\"") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
            anyhow::ensure!(n > 0, "a kept-alive connection was closed");
            read.extend_from_slice(&buf[..n]);
        }
    }
    let sent = health(from("127.0.0.3").await?).await?;
    assert_eq!(sent, "", "a third connection from one address was served");

    // Another address is served meanwhile.
    let sent = health(from("127.0.0.4").await?).await?;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");

    // A closed connection gives the address its slot back (once the server has seen the
    // close: retried for up to 10 s, so a loaded machine does not fail the test).
    drop(first);
    let mut sent = String::new();
    for _ in 0..50 {
        sent = health(from("127.0.0.3").await?).await?;
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    app.stop().await
}

async fn rpc(ws: &mut Socket, request: Value) -> Result<Value> {
    let id = request["id"].clone();
    ws.send(Message::Text(request.to_string().into())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no answer in 10 s")?
            .context("closed")??;
        if let Message::Text(text) = message {
            let reply: Value = serde_json::from_str(&text)?;
            if reply["id"] == id {
                return Ok(reply);
            }
        }
    }
}

fn subscribe(id: u64, sub: &str, filters: Vec<String>) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "subscribe",
        "params": {"kind": "proof_state", "subId": sub, "filters": filters},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_holds_a_limited_number_of_subscriptions_and_filters() -> Result<()> {
    let (app, _dir) =
        ProxiedApp::start_in_temp(|config| config.http.max_ws_subscriptions = 2).await?;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(coinslot_tests::wallet::ws_url(app.url())).await?;
    let y = || {
        let secret = cdk::secret::Secret::generate();
        cdk::dhke::hash_to_curve(secret.as_bytes())
            .unwrap()
            .to_hex()
    };
    for (id, sub) in [(1, "a"), (2, "b")] {
        let reply = rpc(&mut ws, subscribe(id, sub, vec![y()])).await?;
        assert_eq!(reply["result"]["status"], "OK", "{reply}");
    }
    let reply = rpc(&mut ws, subscribe(3, "c", vec![y()])).await?;
    assert_eq!(reply["error"]["code"], -32000, "{reply}");
    // Unsubscribing frees a place.
    let reply = rpc(
        &mut ws,
        json!({"jsonrpc": "2.0", "id": 4, "method": "unsubscribe", "params": {"subId": "a"}}),
    )
    .await?;
    assert_eq!(reply["result"]["status"], "OK", "{reply}");
    let reply = rpc(&mut ws, subscribe(5, "c", vec![y()])).await?;
    assert_eq!(reply["result"]["status"], "OK", "{reply}");
    // One subscription naming more filters than allowed is refused whole.
    let reply = rpc(&mut ws, subscribe(6, "b", (0..1001).map(|_| y()).collect())).await?;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    app.stop().await
}

/// A paid relay with `config` on 127.0.0.1:0 over an in-memory mint; its websocket URL.
async fn relay_with(config: RelayConfig) -> Result<String> {
    let mint = coinslot_tests::load::memory_mint().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let relay = PaidRelay::new(mint, url.parse()?, config);
    tokio::spawn(async move { axum::serve(listener, relay.router()).await });
    Ok(url.replace("http://", "ws://"))
}

/// A relay connection past its NIP-42 greeting.
async fn relay_socket(url: &str) -> Result<Socket> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let hello = next_json(&mut socket).await?;
    assert_eq!(hello[0], "AUTH", "{hello}");
    Ok(socket)
}

async fn next_json(socket: &mut Socket) -> Result<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .context("no message in 10 s")?
            .context("the relay closed the connection")??;
        if let Message::Text(text) = message {
            return Ok(serde_json::from_str(&text)?);
        }
    }
}

/// Sends `message` and returns the first reply whose type is one of `kinds`.
async fn ask(socket: &mut Socket, message: Value, kinds: &[&str]) -> Result<Value> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    loop {
        let reply = next_json(socket).await?;
        if kinds.iter().any(|kind| reply[0] == *kind) {
            return Ok(reply);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_caps_subscriptions_and_message_size() -> Result<()> {
    let url = relay_with(RelayConfig {
        max_subscriptions: 2,
        max_message_bytes: 4096,
        ..RelayConfig::default()
    })
    .await?;
    let mut socket = relay_socket(&url).await?;
    let req = |sub: &str| json!(["REQ", sub, {"kinds": [1], "limit": 1}]);
    for sub in ["a", "b"] {
        let reply = ask(&mut socket, req(sub), &["EOSE", "CLOSED"]).await?;
        assert_eq!(reply[0], "EOSE", "{reply}");
    }
    let reply = ask(&mut socket, req("c"), &["EOSE", "CLOSED"]).await?;
    assert_eq!(reply[0], "CLOSED", "{reply}");
    assert!(
        reply[2].as_str().unwrap().starts_with("blocked:"),
        "{reply}"
    );
    socket
        .send(Message::Text(json!(["CLOSE", "a"]).to_string().into()))
        .await?;
    let reply = ask(&mut socket, req("c"), &["EOSE", "CLOSED"]).await?;
    assert_eq!(reply[0], "EOSE", "{reply}");

    // A message over the size limit ends the connection; a new one is welcome.
    let huge = json!(["REQ", "d", {"search": "x".repeat(5000)}]).to_string();
    socket.send(Message::Text(huge.into())).await?;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "an oversized message did not end the connection"
    );
    let mut again = relay_socket(&url).await?;
    let reply = ask(&mut again, req("e"), &["EOSE", "CLOSED"]).await?;
    assert_eq!(reply[0], "EOSE", "{reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_limits_events_per_author_and_messages_per_connection() -> Result<()> {
    let url = relay_with(RelayConfig {
        events_per_minute: 3,
        messages_per_minute: 10,
        ..RelayConfig::default()
    })
    .await?;
    let mut socket = relay_socket(&url).await?;
    let (busy, other) = (Keys::generate(), Keys::generate());
    let publish = |keys: &Keys, n: usize| {
        let event = EventBuilder::text_note(format!("note {n}"))
            .sign_with_keys(keys)
            .unwrap();
        json!(["EVENT", event])
    };
    // Unpaid events are refused for want of payment, and still count towards the rate.
    for n in 0..3 {
        let reply = ask(&mut socket, publish(&busy, n), &["OK"]).await?;
        assert_eq!(reply[2], false);
        assert!(
            !reply[3].as_str().unwrap().starts_with("rate-limited:"),
            "{reply}"
        );
    }
    let reply = ask(&mut socket, publish(&busy, 3), &["OK"]).await?;
    assert!(
        reply[3].as_str().unwrap().starts_with("rate-limited:"),
        "{reply}"
    );
    // Another author on the same connection is not held back by the first.
    let reply = ask(&mut socket, publish(&other, 0), &["OK"]).await?;
    assert!(
        !reply[3].as_str().unwrap().starts_with("rate-limited:"),
        "{reply}"
    );

    // Five messages so far on this connection; the eleventh of the minute is not handled.
    let mut notices = 0;
    for n in 0..6 {
        let reply = ask(
            &mut socket,
            json!(["COUNT", format!("c{n}"), {"kinds": [1]}]),
            &["COUNT", "CLOSED", "NOTICE"],
        )
        .await?;
        if reply[0] == "NOTICE" {
            assert!(
                reply[1].as_str().unwrap().starts_with("rate-limited:"),
                "{reply}"
            );
            notices += 1;
        }
    }
    assert_eq!(notices, 1, "the eleventh message is refused");
    // The limit is per connection.
    let mut fresh = relay_socket(&url).await?;
    let reply = ask(
        &mut fresh,
        json!(["COUNT", "x", {"kinds": [1]}]),
        &["COUNT", "CLOSED", "NOTICE"],
    )
    .await?;
    assert_eq!(reply[0], "COUNT", "{reply}");
    Ok(())
}
