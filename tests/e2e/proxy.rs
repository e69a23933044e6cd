//! `coinslotd` as a paid reverse proxy: a sample upstream API on `127.0.0.1:0`, coinslotd in
//! front of it with a price table, and real cdk wallets paying over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use cdk::nuts::Token;
use cdk::wallet::{ReceiveOptions, Wallet};
use coinslot_tests::paymentauth::{challenge, credential};
use coinslot_tests::proxy::ProxiedApp;
use coinslot_tests::wallet::{balance, funded, token};
use futures::StreamExt;
use serde_json::Value;

async fn start() -> Result<(ProxiedApp, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |_| {}).await?;
    Ok((app, dir))
}

/// Takes a token handed back in `X-Cashu` into the wallet; returns its value (0 if none).
async fn take_back(wallet: &Wallet, headers: &reqwest::header::HeaderMap) -> Result<u64> {
    let Some(value) = headers.get("x-cashu") else {
        return Ok(0);
    };
    let text = value.to_str()?;
    Token::from_str(text)?;
    Ok(wallet
        .receive(text, ReceiveOptions::default())
        .await?
        .to_u64())
}

#[tokio::test(flavor = "multi_thread")]
async fn fixed_free_and_unlisted_routes() -> Result<()> {
    let (app, _dir) = start().await?;
    let client = reqwest::Client::new();

    let free = client.get(format!("{}/status", app.url())).send().await?;
    assert_eq!(free.status(), 200);
    assert_eq!(free.text().await?, "upstream ok");

    let unlisted = client.get(format!("{}/unlisted", app.url())).send().await?;
    assert_eq!(
        unlisted.status(),
        404,
        "a route missing from the table leaked"
    );

    let unpaid = client.get(format!("{}/search", app.url())).send().await?;
    assert_eq!(unpaid.status(), 402);
    assert!(unpaid.headers()["x-cashu"].to_str()?.starts_with("creq"));
    let body: Value = unpaid.json().await?;
    assert_eq!(
        (body["amount"].as_u64(), body["unit"].as_str()),
        (Some(2), Some("sat"))
    );
    assert_eq!(body["mint"].as_str(), Some(app.url()));

    let wallet = funded(app.url(), 64).await?;
    let paid = client
        .get(format!("{}/search", app.url()))
        .header("x-cashu", token(&wallet, 3).await?)
        .header("x-coinslot-paid-amount", "1000000")
        .header("x-coinslot-spoof", "yes")
        .send()
        .await?;
    assert_eq!(paid.status(), 200);
    let change = take_back(&wallet, paid.headers()).await?;
    let seen: Value = paid.json().await?;
    assert_eq!(seen["results"], serde_json::json!(["a", "b"]));
    assert_eq!(
        seen["paid_amount"], "2",
        "the upstream must see what was paid, not the client's claim"
    );
    assert_eq!(seen["paid_unit"], "sat");
    assert_eq!(seen["paid_mode"], "fixed");
    assert_eq!(seen["paid_via"], "token");
    assert_eq!(seen["saw_x_cashu"], false, "the token reached the upstream");
    assert_eq!(
        seen["saw_spoof"],
        Value::Null,
        "a client x-coinslot-* header reached the upstream"
    );
    assert_eq!(seen["forwarded_for"], "127.0.0.1");
    assert_eq!(change, 1, "3 paid for a price of 2");
    assert_eq!(balance(&wallet).await?, 62);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn metered_routes_charge_what_the_upstream_reports() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 64).await?;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/small", app.url()))
        .header("x-cashu", token(&wallet, 10).await?)
        .body("hello")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("x-coinslot-cost").is_none(),
        "the cost header is for coinslotd, not the client"
    );
    let back = take_back(&wallet, response.headers()).await?;
    assert_eq!(response.text().await?, "small says hi");
    assert_eq!(
        back, 7,
        "a reservation of 10 with a reported cost of 3 gives 7 back"
    );
    assert_eq!(balance(&wallet).await?, 61);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cost_trailer_settles_a_metered_stream_at_its_end() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 64).await?;
    let client = reqwest::Client::new();
    let opened = client
        .post(format!("{}/cashu/session", app.url()))
        .header("x-cashu", token(&wallet, 20).await?)
        .send()
        .await?;
    let session = opened.headers()["x-cashu-session"].to_str()?.to_string();
    let response = client
        .post(format!("{}/v1/late/small", app.url()))
        .header("x-cashu-session", &session)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-cashu-balance"],
        "10 sat",
        "the reservation is held"
    );
    assert_eq!(response.text().await?, "part 1\npart 2\n");
    let status: serde_json::Value = client
        .get(format!("{}/cashu/session", app.url()))
        .header("x-cashu-session", &session)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        status["balance"], 16,
        "the trailer's cost of 4 was charged, 6 went back"
    );
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_discovery_document_lists_every_price() -> Result<()> {
    let (app, _dir) = start().await?;
    let client = reqwest::Client::new();
    let doc: serde_json::Value = client
        .get(format!("{}/openapi.json", app.url()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(doc["openapi"], "3.1.0");
    let search = &doc["paths"]["/search"]["get"];
    assert_eq!(search["x-payment-info"]["amount"], "2", "{doc}");
    assert_eq!(search["x-payment-info"]["currency"], "sat");
    assert_eq!(search["x-payment-info"]["method"], "cashu");
    assert!(search["responses"]["402"].is_object());
    let chat = &doc["paths"]["/v1/chat/{model}"]["post"];
    assert_eq!(chat["x-payment-info"]["amount"], "10");
    assert!(chat["x-payment-info"]["description"]
        .as_str()
        .unwrap()
        .contains("at most 10 sat"));
    assert_eq!(chat["parameters"][0]["name"], "model");
    assert!(
        doc["paths"]["/status"]["get"]["x-payment-info"].is_null(),
        "free"
    );
    let text = client
        .get(format!("{}/llms.txt", app.url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(text.contains("- `GET /search`: 2 sat"), "{text}");
    assert!(text.contains("- `GET /status`: free"), "{text}");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_are_refunded() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 64).await?;
    let response = reqwest::Client::new()
        .get(format!("{}/boom", app.url()))
        .header("x-cashu", token(&wallet, 5).await?)
        .send()
        .await?;
    assert_eq!(response.status(), 500);
    assert_eq!(take_back(&wallet, response.headers()).await?, 5);
    assert_eq!(balance(&wallet).await?, 64, "a failed request ate ecash");

    // An upstream that is down: 502, and the payment comes back too.
    let down = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let down_url = format!("http://{}", down.local_addr()?);
    drop(down);
    let dir = tempfile::tempdir()?;
    let broken = ProxiedApp::start(dir.path(), |config| {
        config.proxy.upstreams[0].url = down_url.clone();
    })
    .await?;
    let wallet = funded(broken.url(), 8).await?;
    let response = reqwest::Client::new()
        .get(format!("{}/search", broken.url()))
        .header("x-cashu", token(&wallet, 2).await?)
        .send()
        .await?;
    assert_eq!(response.status(), 502);
    assert_eq!(take_back(&wallet, response.headers()).await?, 2);
    assert_eq!(balance(&wallet).await?, 8);
    broken.stop().await?;
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_stream_through_without_buffering() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 64).await?;
    let client = reqwest::Client::new();

    // Response: the first chunk arrives while the upstream is still holding the rest.
    let response = client
        .get(format!("{}/stream", app.url()))
        .header("x-cashu", token(&wallet, 1).await?)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("the first chunk was held back: the response is buffered")
        .unwrap()?;
    assert_eq!(&first[..], b"first\n");
    app.signals.release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk?);
    }
    assert_eq!(rest, b"rest\n");

    // Request: the upstream sees the first chunk before the client has sent the second.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let stream = tokio_stream_from(rx);
    let upload = tokio::spawn({
        let client = client.clone();
        let url = format!("{}/upload", app.url());
        let paid = token(&wallet, 1).await?;
        async move {
            client
                .post(url)
                .header("x-cashu", paid)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
        }
    });
    tx.send(Ok(vec![b'a'; 1000])).await?;
    tokio::time::timeout(Duration::from_secs(10), app.signals.first_chunk.notified())
        .await
        .expect("the upstream did not see the first chunk: the request is buffered");
    tx.send(Ok(vec![b'b'; 500])).await?;
    drop(tx);
    let response = upload.await??;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "received 1500 bytes");
    app.stop().await
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_pay_through_the_proxy() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 64).await?;
    let client = reqwest::Client::new();
    let opened: Value = client
        .post(format!("{}/cashu/session", app.url()))
        .header("x-cashu", token(&wallet, 10).await?)
        .send()
        .await?
        .json()
        .await?;
    let session = opened["session"].as_str().unwrap().to_string();
    assert_eq!(opened["balance"], 10);
    let response = client
        .get(format!("{}/search", app.url()))
        .header("x-cashu-session", &session)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cashu-balance"].to_str()?, "8 sat");
    let seen: Value = response.json().await?;
    assert_eq!(seen["paid_via"], "session");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn several_upstreams_by_host_and_prefix() -> Result<()> {
    use axum::routing::get;
    use coinslot_proxy::{RouteConfig, Unlisted, UpstreamConfig};

    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let other_url = format!("http://{}", other.local_addr()?);
    let other_app = axum::Router::new()
        .route("/search", get(|| async { "other search" }))
        .route("/status", get(|| async { "other ok" }));
    let other_task = tokio::spawn(async move { axum::serve(other, other_app).await });
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |config| {
        let by_host = UpstreamConfig {
            name: "by-host".into(),
            url: other_url.clone(),
            hosts: vec!["other.example".into()],
            prefix: "/".into(),
            strip_prefix: false,
            unlisted: Unlisted::Deny,
            retry: None,
            models: Default::default(),
            max_tokens: 4096,
            routes: vec![RouteConfig::paid("GET", "/search", 5)],
        };
        let by_prefix = UpstreamConfig {
            name: "by-prefix".into(),
            hosts: Vec::new(),
            prefix: "/other".into(),
            strip_prefix: true,
            routes: vec![RouteConfig::free("GET", "/other/status")],
            ..by_host.clone()
        };
        config.proxy.upstreams.insert(0, by_prefix);
        config.proxy.upstreams.insert(0, by_host);
    })
    .await?;
    let client = reqwest::Client::new();

    let by_host = client
        .get(format!("{}/search", app.url()))
        .header("host", "other.example")
        .send()
        .await?;
    assert_eq!(by_host.status(), 402);
    assert_eq!(by_host.json::<Value>().await?["amount"], 5);
    let wallet = funded(app.url(), 16).await?;
    let paid = client
        .get(format!("{}/search", app.url()))
        .header("host", "other.example")
        .header("x-cashu", token(&wallet, 5).await?)
        .send()
        .await?;
    assert_eq!(paid.text().await?, "other search");

    let default = client.get(format!("{}/search", app.url())).send().await?;
    assert_eq!(default.json::<Value>().await?["amount"], 2);

    let stripped = client
        .get(format!("{}/other/status", app.url()))
        .send()
        .await?;
    assert_eq!(stripped.status(), 200);
    assert_eq!(
        stripped.text().await?,
        "other ok",
        "the prefix must be stripped"
    );
    let unlisted = client
        .get(format!("{}/other/search", app.url()))
        .send()
        .await?;
    assert_eq!(unlisted.status(), 404);

    other_task.abort();
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn time_passes_open_upstream_routes_until_revoked() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |config| {
        config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
            name: "api".into(),
            price: 1,
            unit: None,
            routes: vec!["GET /search".into()],
        }];
    })
    .await?;
    let client = reqwest::Client::new();
    let search = format!("{}/search", app.url());

    // The scope's route now asks for a pass: one minute's price.
    let unpaid = client.get(&search).send().await?;
    assert_eq!(unpaid.status(), 402);
    let body: Value = unpaid.json().await?;
    assert_eq!(body["amount"], 1);
    assert!(body["detail"].as_str().unwrap().contains("/pass"), "{body}");

    let wallet = funded(app.url(), 20).await?;
    let bought: Value = buy_pass(&client, app.url(), token(&wallet, 5).await?, "", None)
        .await?
        .json()
        .await?;
    assert_eq!(bought["minutes"], 5, "{bought}");
    let pass = bought["pass"].as_str().unwrap().to_owned();

    // Through to the upstream, again and again, with no payment.
    for _ in 0..3 {
        let through = client
            .get(&search)
            .header("x-cashu-pass", &pass)
            .send()
            .await?;
        assert_eq!(through.status(), 200);
        let remaining: u64 = through.headers()["x-cashu-pass-remaining"]
            .to_str()?
            .parse()?;
        assert!((290..=300).contains(&remaining), "{remaining}");
        let seen: Value = through.json().await?;
        assert_eq!(seen["results"], serde_json::json!(["a", "b"]));
        assert_eq!(seen["saw_x_cashu"], false);
        assert_eq!(
            seen["paid_via"], "pass",
            "the upstream is told a pass opened it"
        );
        assert_eq!(seen["pass_scope"], "api");
    }
    assert_eq!(balance(&wallet).await?, 15, "the pass was paid once");

    // The operator revokes it.
    let admin = coinslot_tests::proxy::admin_token(
        &app.server.data_dir,
        &coinslot_admin::Scope::ALL,
        coinslot::crates::mint::unix_now(),
        600,
    )?;
    let listed: Value = client
        .get(format!("{}/admin/passes", app.url()))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let id = listed["passes"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["passes"][0]["scope"], "api");
    let revoked = client
        .post(format!("{}/admin/passes/{id}/revoke", app.url()))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    let refused = client
        .get(&search)
        .header("x-cashu-pass", &pass)
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    app.stop().await
}

/// `POST {url}/pass` with a token, a JSON body (may be empty) and a pass to extend.
async fn buy_pass(
    client: &reqwest::Client,
    url: &str,
    token: String,
    body: &'static str,
    pass: Option<String>,
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(format!("{url}/pass"))
        .header("x-cashu", token)
        .header("content-type", "application/json")
        .body(body);
    if let Some(pass) = pass {
        request = request.header("x-cashu-pass", pass);
    }
    request.send().await
}

/// Waits until the hook log holds a line starting with `prefix` and ending with `suffix`;
/// returns that line.
async fn hook_line(log: &std::path::Path, prefix: &str, suffix: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with(prefix) && l.ends_with(suffix))
        {
            return line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{prefix}` in the hook log: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pass_hooks_run_on_every_event_and_a_failing_purchase_hook_refunds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("hooks.log");
    let script = format!("echo \"$*\" >> {}; [ \"$4\" != fail ]", log.display());
    let app = ProxiedApp::start(dir.path(), |config| {
        config.passes.minute_secs = 1;
        config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
            name: "api".into(),
            price: 1,
            unit: None,
            routes: vec!["GET /search".into()],
        }];
        config.passes.hooks.command = vec!["sh".into(), "-c".into(), script, "hook".into()];
        config.passes.hooks.watch_secs = 1;
    })
    .await?;
    let client = reqwest::Client::new();
    let wallet = funded(app.url(), 50).await?;
    let buy = |token: String, body: &'static str, pass: Option<String>| {
        buy_pass(&client, app.url(), token, body, pass)
    };

    // Purchase and extension: the hook gets the event, the pass id, the scope and the key.
    let bought: Value = buy(
        token(&wallet, 30).await?,
        r#"{"client_key": "wg-key-1"}"#,
        None,
    )
    .await?
    .json()
    .await?;
    let pass = bought["pass"].as_str().unwrap().to_owned();
    let line = hook_line(&log, "purchase ", " wg-key-1").await;
    let id = line.split(' ').nth(1).unwrap().to_owned();
    assert_eq!(line, format!("purchase {id} api wg-key-1"));
    let extended = buy(token(&wallet, 1).await?, "", Some(pass.clone())).await?;
    assert_eq!(extended.status(), 200);
    assert_eq!(
        hook_line(&log, "extension ", "").await,
        format!("extension {id} api wg-key-1")
    );

    // A failing purchase hook: 502, the payment back in X-Cashu, the pass revoked.
    let before = balance(&wallet).await?;
    let failed = buy(token(&wallet, 3).await?, r#"{"client_key": "fail"}"#, None).await?;
    assert_eq!(failed.status(), 502);
    let refund = take_back(&wallet, failed.headers()).await?;
    assert_eq!(refund, 3, "the whole payment comes back");
    assert_eq!(balance(&wallet).await?, before);
    let failed_line = hook_line(&log, "purchase ", " api fail").await;
    assert_ne!(failed_line.split(' ').nth(1), Some(id.as_str()));

    // Revocation and expiry reach the hook through the watcher.
    let admin = coinslot_tests::proxy::admin_token(
        &app.server.data_dir,
        &coinslot_admin::Scope::ALL,
        coinslot::crates::mint::unix_now(),
        600,
    )?;
    let revoked = client
        .post(format!("{}/admin/passes/{id}/revoke", app.url()))
        .bearer_auth(&admin)
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        hook_line(&log, &format!("revocation {id}"), "").await,
        format!("revocation {id} api wg-key-1")
    );
    let short: Value = buy(token(&wallet, 1).await?, "", None)
        .await?
        .json()
        .await?;
    assert_eq!(short["minutes"], 1);
    let short_id = app_pass_id(&short);
    hook_line(&log, &format!("expiry {short_id} api -"), "").await;
    app.stop().await
}

/// The pass id inside a purchase answer's credential (the JWT's `pid`).
fn app_pass_id(bought: &Value) -> String {
    use base64::Engine as _;
    let jwt = bought["pass"].as_str().unwrap();
    let claims = jwt.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    let claims: Value = serde_json::from_slice(&claims).unwrap();
    claims["pid"].as_str().unwrap().to_owned()
}

/// The issue's leak, through coinslotd in proxy mode: one 2-sat token and a POST whose runs
/// the upstream counts. The identical request again gets the stored answer; bodies of the
/// same length but other bytes are refused as spent; the upstream ran once. The same for a
/// `Payment` credential with an `Idempotency-Key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_payment_buys_one_upstream_run_whatever_the_body() -> Result<()> {
    let (app, _dir) = start().await?;
    let wallet = funded(app.url(), 10).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/run", app.url());
    let send = |headers: Vec<(&'static str, String)>, body: &'static str| {
        let mut request = client.post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let code = |body: &str| serde_json::from_str::<Value>(body).unwrap()["code"].clone();

    let t = token(&wallet, 2).await?;
    let paid = || vec![("x-cashu", t.clone())];
    let (status, first) = send(paid(), "body-aaaa").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(serde_json::from_str::<Value>(&first)?["run"], 1);
    let (status, again) = send(paid(), "body-aaaa").await;
    assert_eq!((status, again.as_str()), (200, first.as_str()));
    for other in ["body-bbbb", "body-cccc", "body-dddd"] {
        let (status, body) = send(paid(), other).await;
        assert_eq!((status, code(&body)), (400, 11001.into()), "{body}");
    }
    assert_eq!(
        app.signals.runs(),
        1,
        "one token bought more than one upstream run"
    );

    // The Payment scheme, with an Idempotency-Key.
    let (status, headers, _) = {
        let response = client.post(&url).body("body-eeee").send().await?;
        let status = response.status().as_u16();
        (status, response.headers().clone(), response.text().await?)
    };
    assert_eq!(status, 402);
    let paying = token(&wallet, 2).await?;
    let authorization = credential(&challenge(&headers), &paying);
    let keyed = || {
        vec![
            ("authorization", authorization.clone()),
            ("idempotency-key", "op-1".to_string()),
        ]
    };
    let (status, first) = send(keyed(), "body-eeee").await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = send(keyed(), "body-eeee").await;
    assert_eq!((status, again.as_str()), (200, first.as_str()));
    for other in ["body-ffff", "body-gggg", "body-hhhh"] {
        let (status, body) = send(keyed(), other).await;
        assert_eq!(status, 402, "{body}");
    }
    assert_eq!(
        app.signals.runs(),
        2,
        "one credential bought more than one upstream run"
    );
    assert_eq!(balance(&wallet).await?, 6, "two payments");
    Ok(())
}
