//! The paid forward proxy of `coinslotd` (`[forward]`, `coinslot-forward`): a real server
//! with its proxy on `127.0.0.1:0`, upstreams on loopback, cdk wallets buying passes over
//! HTTP, and real proxy clients: raw `CONNECT`, reqwest (absolute-form and SOCKS5) and, where
//! installed, curl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::routing::get;
use cdk::nuts::Token;
use cdk::wallet::Wallet;
use coinslot_tests::paywall::header;
use coinslot_tests::wallet::{self, balance, token};
use coinslot_tests::TestServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Price of a proxy minute.
const PRICE: u64 = 2;

/// Loopback services behind the proxy: an HTTP app and an echo server.
struct Upstreams {
    http: SocketAddr,
    echo: SocketAddr,
}

async fn upstreams() -> Result<Upstreams> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello from upstream" }))
        .route(
            "/headers",
            get(|headers: axum::http::HeaderMap| async move {
                let names: Vec<String> = headers.keys().map(|k| k.to_string()).collect();
                axum::Json(names)
            }),
        )
        .route(
            "/bytes/{n}",
            get(|axum::extract::Path(n): axum::extract::Path<usize>| async move { vec![b'x'; n] }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let echo = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(Upstreams { http, echo })
}

/// `coinslotd` selling the `proxy` scope (2 sat a minute) and `vpn` (for `/vpn/*`), its
/// forward proxy allowing loopback; `adjust` changes the config further.
fn config(dir: &std::path::Path, adjust: impl FnOnce(&mut coinslotd::Config)) -> coinslotd::Config {
    let mut config = coinslotd::Config::with_data_dir(dir);
    config.passes.scopes = vec![
        coinslotd::config::PassScopeConfig {
            name: "proxy".into(),
            price: PRICE,
            unit: None,
            routes: vec![],
        },
        coinslotd::config::PassScopeConfig {
            name: "vpn".into(),
            price: 1,
            unit: None,
            routes: vec!["/vpn/*".into()],
        },
    ];
    config.forward.scope = "proxy".into();
    config.forward.allow = vec!["127.0.0.0/8".into()];
    adjust(&mut config);
    config
}

/// `POST {url}/pass` with a token worth `amount`; the answer's JSON and headers.
async fn buy(
    url: &str,
    wallet: &Wallet,
    amount: u64,
    scope: &str,
    extend: Option<&str>,
) -> Result<(Value, reqwest::header::HeaderMap)> {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/pass"))
        .header("x-cashu", token(wallet, amount).await?)
        .header("content-type", "application/json")
        .body(format!(r#"{{"scope": "{scope}"}}"#));
    if let Some(pass) = extend {
        request = request.header("x-cashu-pass", pass);
    }
    let response = request.send().await?;
    assert_eq!(response.status(), 200, "pass purchase refused");
    let headers = response.headers().clone();
    Ok((response.json().await?, headers))
}

/// A raw `CONNECT` to `target` with an optional `Proxy-Authorization`; the status, the
/// response head and the stream (a tunnel when the status is 200).
async fn connect(
    proxy: SocketAddr,
    target: &str,
    auth: Option<&str>,
) -> Result<(u16, String, TcpStream)> {
    let mut stream = TcpStream::connect(proxy).await?;
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = auth {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut read = Vec::new();
    let mut byte = [0u8; 1];
    while !read.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            break;
        }
        read.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&read).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, text, stream))
}

/// The JSON body after a response head on `stream` (the proxy closes after it).
async fn body_of(stream: &mut TcpStream) -> Value {
    let mut body = Vec::new();
    let _ = stream.read_to_end(&mut body).await;
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

/// `GET /hello` through an open tunnel to the HTTP upstream.
async fn hello_through(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// Whether an echo tunnel still answers a ping.
async fn echoes(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut back = [0u8; 4];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut back)).await,
        Ok(Ok(_)) if &back == b"ping"
    )
}

/// Waits until the tunnel is closed by the proxy; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buffer = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the tunnel was still open after {limit:?}"),
        }
    }
}

async fn session_balance(url: &str, session: &str) -> u64 {
    let answer: Value = reqwest::Client::new()
        .get(format!("{url}/cashu/session"))
        .header("x-cashu-session", session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["balance"].as_u64().unwrap()
}

fn bearer(pass: &str) -> String {
    format!("Bearer {pass}")
}

/// A reqwest client going through the proxy: `http` (absolute-form, with a bearer
/// credential) or `socks5h` (the credential as password).
fn through(proxy: SocketAddr, scheme: &str, credential: Option<&str>) -> reqwest::Client {
    let proxy = match (scheme, credential) {
        ("socks5h", Some(c)) => reqwest::Proxy::all(format!("socks5h://pass:{c}@{proxy}")).unwrap(),
        ("socks5h", None) => reqwest::Proxy::all(format!("socks5h://{proxy}")).unwrap(),
        (_, Some(c)) => reqwest::Proxy::http(format!("http://{proxy}"))
            .unwrap()
            .custom_http_auth(reqwest::header::HeaderValue::from_str(&bearer(c)).unwrap()),
        (_, None) => reqwest::Proxy::http(format!("http://{proxy}")).unwrap(),
    };
    reqwest::Client::builder().proxy(proxy).build().unwrap()
}

/// curl is part of the test: a third-party client. Missing, the test fails saying so.
fn require_curl() {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test drives curl: install it (Debian: apt-get install curl)"
    );
}

fn change(headers: &reqwest::header::HeaderMap) -> u64 {
    let text = header(headers, "x-cashu");
    if text.is_empty() {
        return 0;
    }
    u64::from(text.parse::<Token>().unwrap().value().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_opens_connect_absolute_form_and_socks5_and_nothing_else_does() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    let (server, proxy) = TestServer::start_forward(config(dir.path(), |_| {})).await?;
    let wallet = wallet::funded(&server.url, 50).await?;
    let target = up.http.to_string();

    // No pass: 407 with a challenge and where to buy, on CONNECT and on a plain request.
    let (status, head, mut stream) = connect(proxy, &target, None).await?;
    assert_eq!(status, 407, "{head}");
    assert!(
        head.contains("Proxy-Authenticate: Bearer realm=\"coinslot\""),
        "{head}"
    );
    let body = body_of(&mut stream).await;
    assert_eq!(body["pass_url"], format!("{}/pass", server.url));
    assert_eq!(body["price_per_minute"], PRICE);
    assert_eq!(body["scope"], "proxy");
    assert!(
        body["detail"].as_str().unwrap().contains("buy a pass"),
        "{body}"
    );
    let refused = through(proxy, "http", None)
        .get(format!("http://{target}/hello"))
        .send()
        .await?;
    assert_eq!(refused.status(), 407);
    assert!(through(proxy, "socks5h", Some("not-a-pass"))
        .get(format!("http://{target}/hello"))
        .send()
        .await
        .is_err());

    // 7 sat buy three minutes; 1 sat comes back as change.
    let before = balance(&wallet).await?;
    let (bought, headers) = buy(&server.url, &wallet, 7, "proxy", None).await?;
    assert_eq!(bought["minutes"], 3);
    assert_eq!(change(&headers), 1);
    let now = coinslot::crates::mint::unix_now();
    let expires = bought["expires_at"].as_u64().unwrap();
    assert!(
        (now + 178..=now + 181).contains(&expires),
        "{expires} vs {now}"
    );
    wallet
        .receive(&header(&headers, "x-cashu"), Default::default())
        .await?;
    assert_eq!(balance(&wallet).await?, before - 6);
    let pass = bought["pass"].as_str().unwrap().to_owned();
    assert!(pass.len() <= 255, "a pass fits a SOCKS5 password");

    // CONNECT: a tunnel to the upstream, the pass's expiry in the answer.
    let (status, head, mut tunnel) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains(&format!("X-Cashu-Pass-Expires: {expires}")),
        "{head}"
    );
    let answer = hello_through(&mut tunnel).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello from upstream"),
        "{answer}"
    );

    // Absolute-form: the upstream sees the request without the proxy's credential.
    let client = through(proxy, "http", Some(&pass));
    let answer = client.get(format!("http://{target}/hello")).send().await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await?, "hello from upstream");
    let names: Vec<String> = client
        .get(format!("http://{target}/headers"))
        .send()
        .await?
        .json()
        .await?;
    assert!(names.contains(&"host".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("proxy-")), "{names:?}");

    // SOCKS5 with the pass as the password.
    let answer = through(proxy, "socks5h", Some(&pass))
        .get(format!("http://{target}/hello"))
        .send()
        .await?;
    assert_eq!(answer.text().await?, "hello from upstream");

    // curl, a third-party client, both ways (CONNECT with Basic, and SOCKS5).
    require_curl();
    for args in [
        vec![
            "-p".to_string(),
            "-x".into(),
            format!("http://{proxy}"),
            "-U".into(),
            format!("pass:{pass}"),
        ],
        vec!["-x".to_string(), format!("socks5h://pass:{pass}@{proxy}")],
    ] {
        let out = std::process::Command::new("curl")
            .args(["-s", "-S", "--max-time", "10"])
            .args(&args)
            .arg(format!("http://{target}/hello"))
            .output()?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from upstream",
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A tampered pass, and a pass of another scope, open nothing.
    let mut tampered = pass.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    let (status, head, mut stream) = connect(proxy, &target, Some(&bearer(&tampered))).await?;
    assert_eq!(status, 407);
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("invalid pass"));
    assert!(through(proxy, "socks5h", Some(&tampered))
        .get(format!("http://{target}/hello"))
        .send()
        .await
        .is_err());
    let (vpn, _) = buy(&server.url, &wallet, 1, "vpn", None).await?;
    let (status, _, mut stream) =
        connect(proxy, &target, Some(&bearer(vpn["pass"].as_str().unwrap()))).await?;
    assert_eq!(status, 407);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("scope vpn"));

    // Extending adds the minutes to the current expiry.
    let (extended, _) = buy(&server.url, &wallet, 4, "proxy", Some(&pass)).await?;
    assert_eq!(extended["extended"], true);
    assert_eq!(extended["expires_at"].as_u64().unwrap(), expires + 120);
    drop(tunnel);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_refuses_private_and_loopback_destinations() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    // No allow list: the defaults.
    let (server, proxy) =
        TestServer::start_forward(config(dir.path(), |c| c.forward.allow.clear())).await?;
    let wallet = wallet::funded(&server.url, 20).await?;
    let (bought, _) = buy(&server.url, &wallet, 2, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap();
    for target in [
        up.echo.to_string(),
        "localhost:80".into(),
        "10.0.0.1:80".into(),
        "192.168.1.1:443".into(),
        "169.254.169.254:80".into(),
        "[::1]:22".into(),
        "[fd00::1]:80".into(),
        proxy.to_string(),
    ] {
        let (status, head, mut stream) = connect(proxy, &target, Some(&bearer(pass))).await?;
        assert_eq!(status, 403, "{target}: {head}");
        let body = body_of(&mut stream).await;
        assert!(
            body["detail"].as_str().unwrap().contains("not allowed"),
            "{target}: {body}"
        );
    }
    let refused = through(proxy, "http", Some(pass))
        .get(format!("http://{}/hello", up.http))
        .send()
        .await?;
    assert_eq!(refused.status(), 403);
    assert!(through(proxy, "socks5h", Some(pass))
        .get(format!("http://{}/hello", up.http))
        .send()
        .await
        .is_err());
    server.stop().await?;

    // An allow list opens loopback, but never the proxy itself.
    let dir = tempfile::tempdir()?;
    let (server, proxy) = TestServer::start_forward(config(dir.path(), |_| {})).await?;
    let wallet = wallet::funded(&server.url, 20).await?;
    let (bought, _) = buy(&server.url, &wallet, 2, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap();
    let (status, _, _) = connect(proxy, &up.echo.to_string(), Some(&bearer(pass))).await?;
    assert_eq!(status, 200);
    let (status, _, _) = connect(proxy, &proxy.to_string(), Some(&bearer(pass))).await?;
    assert_eq!(status, 403);
    let own_http = server.url.trim_start_matches("http://").to_string();
    let (status, _, _) = connect(proxy, &own_http, Some(&bearer(pass))).await?;
    assert_eq!(status, 403, "the server's HTTP listener is its own address");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_close_when_the_pass_runs_out_unless_it_was_extended() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    // Minutes of one second.
    let (server, proxy) =
        TestServer::start_forward(config(dir.path(), |c| c.passes.minute_secs = 1)).await?;
    let wallet = wallet::funded(&server.url, 50).await?;
    let target = up.echo.to_string();

    // Two minutes (two seconds): the tunnel closes when they are over, not before.
    let (bought, _) = buy(&server.url, &wallet, 4, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap().to_owned();
    let expires = bought["expires_at"].as_u64().unwrap();
    let (status, _, mut tunnel) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert_eq!(status, 200);
    assert!(echoes(&mut tunnel).await);
    closed_within(&mut tunnel, Duration::from_secs(6)).await;
    let now = coinslot::crates::mint::unix_now();
    assert!(
        now >= expires,
        "closed at {now}, before the expiry {expires}"
    );
    let (status, _, mut stream) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert_eq!(status, 407);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("expired"));

    // A pass extended while its tunnel is open keeps the tunnel open past the old expiry.
    let (bought, _) = buy(&server.url, &wallet, 4, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap().to_owned();
    let first_expiry = bought["expires_at"].as_u64().unwrap();
    let (_, _, mut tunnel) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    let (extended, _) = buy(&server.url, &wallet, 6, "proxy", Some(&pass)).await?;
    let second_expiry = extended["expires_at"].as_u64().unwrap();
    assert_eq!(second_expiry, first_expiry + 3);
    while coinslot::crates::mint::unix_now() <= first_expiry {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        echoes(&mut tunnel).await,
        "the extended pass's tunnel was cut at the old expiry"
    );
    closed_within(&mut tunnel, Duration::from_secs(6)).await;
    assert!(coinslot::crates::mint::unix_now() >= second_expiry);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_open_tunnels_at_once_and_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    let (server, proxy) = TestServer::start_forward(config(dir.path(), |_| {})).await?;
    let wallet = wallet::funded(&server.url, 20).await?;
    let (bought, _) = buy(&server.url, &wallet, 10, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap().to_owned();
    let (status, _, mut http_tunnel) =
        connect(proxy, &up.echo.to_string(), Some(&bearer(&pass))).await?;
    assert_eq!(status, 200);
    // A SOCKS5 tunnel, by hand: greeting, password, CONNECT.
    let mut socks = TcpStream::connect(proxy).await?;
    let mut hello = vec![5, 1, 2, 1, 4];
    hello.extend_from_slice(b"pass");
    hello.push(u8::try_from(pass.len())?);
    hello.extend_from_slice(pass.as_bytes());
    let mut request = vec![5, 1, 0, 1, 127, 0, 0, 1];
    request.extend_from_slice(&up.echo.port().to_be_bytes());
    hello.extend_from_slice(&request);
    socks.write_all(&hello).await?;
    let mut answers = [0u8; 2 + 2 + 10];
    socks.read_exact(&mut answers).await?;
    assert_eq!(
        &answers[..4],
        &[5, 2, 1, 0],
        "method, then authentication accepted"
    );
    assert_eq!(answers[5], 0, "CONNECT succeeded");
    assert!(echoes(&mut http_tunnel).await && echoes(&mut socks).await);

    let admin = coinslot_tests::proxy::admin_token(
        &server.data_dir,
        &coinslot_admin::Scope::ALL,
        coinslot::crates::mint::unix_now(),
        600,
    )?;
    let id = {
        use base64::Engine as _;
        let claims = pass.split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims)?;
        serde_json::from_slice::<Value>(&claims)?["pid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let revoked = reqwest::Client::new()
        .post(format!("{}/admin/passes/{id}/revoke", server.url))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    // At once: well within the recheck interval (5 s).
    let took = closed_within(&mut http_tunnel, Duration::from_secs(3)).await;
    closed_within(&mut socks, Duration::from_secs(3)).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let (status, _, mut stream) =
        connect(proxy, &up.echo.to_string(), Some(&bearer(&pass))).await?;
    assert_eq!(status, 407);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("revoked"));

    // After a restart the revocation stands.
    server.stop().await?;
    let (server, proxy) = TestServer::start_forward(config(dir.path(), |_| {})).await?;
    let (status, _, mut stream) =
        connect(proxy, &up.echo.to_string(), Some(&bearer(&pass))).await?;
    assert_eq!(status, 407);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pass_opens_a_limited_number_of_tunnels_and_idle_ones_close() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    let (server, proxy) = TestServer::start_forward(config(dir.path(), |c| {
        c.forward.max_tunnels_per_pass = 2;
        c.forward.idle_timeout_secs = 2;
    }))
    .await?;
    let wallet = wallet::funded(&server.url, 20).await?;
    let (bought, _) = buy(&server.url, &wallet, 10, "proxy", None).await?;
    let pass = bought["pass"].as_str().unwrap().to_owned();
    let target = up.echo.to_string();
    let (_, _, mut first) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    let (_, _, mut second) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert!(echoes(&mut first).await && echoes(&mut second).await);
    let (status, _, mut stream) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert_eq!(status, 429);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("2 tunnels"));
    // SOCKS5 counts the same tunnels.
    assert!(through(proxy, "socks5h", Some(&pass))
        .get(format!("http://{}/hello", up.http))
        .send()
        .await
        .is_err());
    // Closing one frees its place.
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, mut third) = connect(proxy, &target, Some(&bearer(&pass))).await?;
    assert_eq!(status, 200);
    assert!(echoes(&mut third).await);

    // Idle tunnels close after the idle timeout; busy ones do not.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert!(echoes(&mut third).await, "a busy tunnel was closed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    closed_within(&mut first, Duration::from_secs(1)).await;
    let idle = closed_within(&mut third, Duration::from_secs(4)).await;
    assert!(
        idle >= Duration::from_secs(1),
        "closed {idle:?} after its last byte"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pays_per_megabyte_as_bytes_flow() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let up = upstreams().await?;
    let (server, proxy) =
        TestServer::start_forward(config(dir.path(), |c| c.forward.price_per_mb = Some(1))).await?;
    let wallet = wallet::funded(&server.url, 20).await?;
    let http = reqwest::Client::new();
    // A prepaid session with 3 sat: three megabytes.
    let opened = http
        .post(format!("{}/cashu/session", server.url))
        .header("x-cashu", token(&wallet, 3).await?)
        .send()
        .await?;
    assert_eq!(opened.status(), 200);
    let session = header(opened.headers(), "x-cashu-session");
    assert!(!session.is_empty());
    // A small request costs the first megabyte.
    let client = through(proxy, "http", Some(&session));
    let small = client
        .get(format!("http://{}/hello", up.http))
        .send()
        .await?;
    assert_eq!(small.text().await?, "hello from upstream");
    assert_eq!(session_balance(&server.url, &session).await, 2);

    // Five megabytes asked: the proxy carries what the balance pays for, then cuts.
    let mut response = client
        .get(format!("http://{}/bytes/5000000", up.http))
        .send()
        .await?;
    let mut received = 0usize;
    while let Ok(Some(chunk)) = response.chunk().await {
        received += chunk.len();
    }
    assert!(
        (2_000_000..3_000_000).contains(&received),
        "received {received} bytes for the 2 MB left (and the rest of the first)"
    );
    assert_eq!(session_balance(&server.url, &session).await, 0);
    let (status, _, mut stream) =
        connect(proxy, &up.echo.to_string(), Some(&bearer(&session))).await?;
    assert_eq!(status, 407);
    assert!(body_of(&mut stream).await["detail"]
        .as_str()
        .unwrap()
        .contains("balance"));
    server.stop().await
}
