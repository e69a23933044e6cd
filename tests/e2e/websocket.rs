//! Websockets through coinslotd's proxy: a real coinslotd on 127.0.0.1:0 in front of an
//! upstream echo socket, real cdk wallets, a real websocket client (tokio-tungstenite).
//! A connection is paid at its upgrade; it stays open as long as it is paid for.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::{Duration, Instant};

use anyhow::Result;
use coinslot_tests::proxy::ProxiedApp;
use coinslot_tests::wallet::{balance, funded, token};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(app: &ProxiedApp, path: &str) -> String {
    format!("{}{path}", app.url().replace("http://", "ws://"))
}

/// Opens a websocket to `path` with `headers`; the handshake's refusal status otherwise.
async fn open(app: &ProxiedApp, path: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let mut request = ws_url(app, path).into_client_request().unwrap();
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(socket)
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        // A switch that is not a valid handshake (e.g. a stored answer of another key).
        Err(_) => Err(101),
    }
}

/// Sends `text` and returns the echo (`None` once the connection is gone).
async fn echo(socket: &mut Socket, text: &str) -> Option<String> {
    socket.send(Message::text(text)).await.ok()?;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(echo)))) => return Some(echo.to_string()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("no echo within 5 s"),
        }
    }
}

/// Waits (at most `within`) until the connection is closed by the other side; how long it
/// took.
async fn closed_within(socket: &mut Socket, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        match tokio::time::timeout_at((start + within).into(), socket.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Some(start.elapsed()),
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_paid_once_at_its_upgrade_and_then_talks_freely() -> Result<()> {
    let (app, _dir) = ProxiedApp::start_in_temp(|_| {}).await?;
    let wallet = funded(app.url(), 20).await?;

    assert_eq!(open(&app, "/ws/echo", &[]).await.err(), Some(402));
    let short = token(&wallet, 1).await?;
    assert_eq!(
        open(&app, "/ws/echo", &[("x-cashu", &short)]).await.err(),
        Some(400),
        "1 sat for a 2-sat connection (a Cashu error: too little)"
    );
    let paying = token(&wallet, 2).await?;
    let mut socket = open(&app, "/ws/echo", &[("x-cashu", &paying)])
        .await
        .unwrap();
    for i in 0..20 {
        let text = format!("message {i}");
        assert_eq!(
            echo(&mut socket, &text).await,
            Some(format!("token: {text}"))
        );
    }
    socket.close(None).await?;
    let refused_unspent = coinslot_tests::wallet::unspent(&wallet, &short).await?;
    assert!(refused_unspent, "the refused token was spent");
    let paid_unspent = coinslot_tests::wallet::unspent(&wallet, &paying).await?;
    assert!(!paid_unspent, "the connection was not paid");

    // The same token again never opens a second working connection: refused, or the
    // stored answer of the first with no upstream behind it.
    let again = match open(&app, "/ws/echo", &[("x-cashu", &paying)]).await {
        Err(_) => None,
        Ok(mut socket) => echo(&mut socket, "again").await,
    };
    assert_eq!(again, None, "one payment opened two connections");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_minute_websocket_is_paid_from_its_key_balance_and_closed_when_it_runs_out(
) -> Result<()> {
    let (app, _dir) = ProxiedApp::start_in_temp(|config| config.proxy.minute_secs = 1).await?;
    let wallet = funded(app.url(), 20).await?;
    let client = reqwest::Client::new();

    // A 5-sat token as an API key: 2 for the connection, then 1 a minute for 3 minutes.
    let key = token(&wallet, 5).await?;
    let bearer = format!("Bearer {key}");
    let mut socket = open(&app, "/ws/live", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(
        echo(&mut socket, "hello").await.as_deref(),
        Some("session: hello")
    );
    let took = closed_within(&mut socket, Duration::from_secs(20))
        .await
        .expect("the connection outlived its balance");
    assert!(
        took >= Duration::from_millis(2500),
        "closed after {took:?}, before its paid minutes"
    );
    let left: Value = client
        .get(format!("{}/cashu/balance", app.url()))
        .header("authorization", &bearer)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(left["balance"], 0, "{left}");

    // A one-shot token on the same route buys its first minute only.
    let once = token(&wallet, 2).await?;
    let mut socket = open(&app, "/ws/live", &[("x-cashu", &once)]).await.unwrap();
    assert_eq!(echo(&mut socket, "hi").await.as_deref(), Some("token: hi"));
    let took = closed_within(&mut socket, Duration::from_secs(10))
        .await
        .expect("a one-minute connection stayed open");
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    assert_eq!(balance(&wallet).await?, 20 - 5 - 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_opened_with_a_pass_closes_when_the_pass_runs_out() -> Result<()> {
    let (app, _dir) = ProxiedApp::start_in_temp(|config| {
        config.passes.minute_secs = 2;
        config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
            name: "live".into(),
            price: 1,
            unit: None,
            routes: vec!["GET /ws/echo".into()],
        }];
    })
    .await?;
    let wallet = funded(app.url(), 20).await?;
    let bought: Value = reqwest::Client::new()
        .post(format!("{}/pass", app.url()))
        .header("x-cashu", token(&wallet, 1).await?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(bought["minutes"], 1, "{bought}");
    let pass = bought["pass"].as_str().unwrap().to_owned();

    let mut socket = open(&app, "/ws/echo", &[("x-cashu-pass", &pass)])
        .await
        .unwrap();
    assert_eq!(echo(&mut socket, "in").await.as_deref(), Some("pass: in"));
    let took = closed_within(&mut socket, Duration::from_secs(10))
        .await
        .expect("the connection outlived its pass");
    assert!(took <= Duration::from_secs(3), "closed after {took:?}");
    // After its end, the pass opens no new connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        open(&app, "/ws/echo", &[("x-cashu-pass", &pass)])
            .await
            .err(),
        Some(401),
        "an expired pass"
    );
    assert_eq!(balance(&wallet).await?, 19);
    Ok(())
}
