//! Logs at trace level never carry a secret: a full flow through the `coinslotd` binary
//! (top-up, paid requests with change, a refunded failure, the Payment scheme, a session, a
//! pass, the admin API) with `RUST_LOG=trace`, then every token, proof secret, credential,
//! key and seed the flow saw is looked for in what the server wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::str::FromStr;

use coinslot_admin::{AdminKey, Scope, ADMIN_KEY_FILE};
use coinslot_mint::cashu::nuts::{KeysetResponse, Token};
use coinslot_tests::proxy::{upstream_app, upstream_config, Signals};
use coinslot_tests::wallet::{funded, token};
use serde_json::Value;

/// Every secret a token carries: the token itself and each proof's secret.
async fn secrets_of(url: &str, token: &str, into: &mut Vec<String>) {
    let keysets: KeysetResponse = reqwest::get(format!("{url}/v1/keysets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parsed = Token::from_str(token).unwrap();
    for proof in parsed.proofs(&keysets.keysets).unwrap() {
        into.push(proof.secret.to_string());
    }
    into.push(token.to_string());
}

/// `method url` with one header.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    name: &str,
    value: &str,
) -> reqwest::Response {
    client
        .request(method, url)
        .header(name, value)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_secret_key_or_credential_reaches_the_logs_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = tokio::spawn(async move {
        let _ = axum::serve(listener, upstream_app(Signals::default())).await;
    });
    let mut config = coinslotd::Config::with_data_dir(&data);
    config.proxy.upstreams = vec![upstream_config(&upstream_url)];
    config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
        name: "stat".into(),
        price: 1,
        unit: None,
        routes: vec!["GET /status".into()],
    }];
    let config_file = dir.path().join("coinslotd.toml");
    std::fs::write(&config_file, toml::to_string(&config).unwrap()).unwrap();
    let log_file = dir.path().join("coinslotd.log");
    let (mut child, url) = coinslot_tests::spawn_coinslotd_logging(
        Path::new(env!("CARGO_BIN_EXE_coinslotd")),
        &data,
        Some(&config_file),
        &[("RUST_LOG", "trace")],
        std::fs::File::create(&log_file).unwrap().into(),
    )
    .unwrap();

    let mut secrets: Vec<String> = Vec::new();
    let client = reqwest::Client::new();
    let wallet = funded(&url, 100).await.unwrap();

    // Overpaid → change; a failing upstream → refund.
    for (path, amount) in [("/search", 5), ("/boom", 5)] {
        let paying = token(&wallet, amount).await.unwrap();
        secrets_of(&url, &paying, &mut secrets).await;
        let response = call(
            &client,
            reqwest::Method::GET,
            format!("{url}{path}"),
            "x-cashu",
            &paying,
        )
        .await;
        let back = header(&response, "x-cashu").expect("change or refund");
        secrets_of(&url, &back, &mut secrets).await;
    }
    // The Payment scheme.
    let asked = client.get(format!("{url}/search")).send().await.unwrap();
    assert_eq!(asked.status(), 402);
    let params = coinslot_tests::paymentauth::challenge(asked.headers());
    let paying = token(&wallet, 2).await.unwrap();
    secrets_of(&url, &paying, &mut secrets).await;
    let credential = coinslot_tests::paymentauth::credential(&params, &paying);
    secrets.push(credential.trim_start_matches("Payment ").to_string());
    let paid = client
        .get(format!("{url}/search"))
        .header("authorization", &credential)
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);

    // A session: deposit, pay from it, close it (the balance comes back as a token).
    let deposit = token(&wallet, 10).await.unwrap();
    secrets_of(&url, &deposit, &mut secrets).await;
    let opened: Value = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/cashu/session"),
        "x-cashu",
        &deposit,
    )
    .await
    .json()
    .await
    .unwrap();
    let session = opened["session"].as_str().unwrap().to_string();
    secrets.push(session.clone());
    let used = call(
        &client,
        reqwest::Method::GET,
        format!("{url}/search"),
        "x-cashu-session",
        &session,
    )
    .await;
    assert_eq!(used.status(), 200);
    let closed = call(
        &client,
        reqwest::Method::DELETE,
        format!("{url}/cashu/session"),
        "x-cashu-session",
        &session,
    )
    .await;
    if let Some(back) = header(&closed, "x-cashu") {
        secrets_of(&url, &back, &mut secrets).await;
    }

    // A pass, used, then revoked through the admin API.
    let paying = token(&wallet, 2).await.unwrap();
    secrets_of(&url, &paying, &mut secrets).await;
    let bought: Value = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/pass"),
        "x-cashu",
        &paying,
    )
    .await
    .json()
    .await
    .unwrap();
    let pass = bought["pass"].as_str().expect("a pass").to_string();
    secrets.push(pass.clone());
    let opened = call(
        &client,
        reqwest::Method::GET,
        format!("{url}/status"),
        "x-cashu-pass",
        &pass,
    )
    .await;
    assert_eq!(opened.status(), 200);
    let admin_key = AdminKey::load_or_create(&data.join(ADMIN_KEY_FILE)).unwrap();
    let admin = admin_key
        .issue(
            "log-test",
            &Scope::ALL,
            std::time::Duration::from_secs(300),
            coinslot_mint::unix_now(),
        )
        .unwrap();
    secrets.push(admin.clone());
    let listed: Value = client
        .get(format!("{url}/admin/passes"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = listed["passes"][0]["id"].as_str().unwrap().to_string();
    let revoked = client
        .post(format!("{url}/admin/passes/{id}/revoke"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());

    child.kill().unwrap();
    child.wait().unwrap();
    upstream.abort();
    for file in ["seed", ADMIN_KEY_FILE] {
        secrets.push(
            std::fs::read_to_string(data.join(file))
                .unwrap()
                .trim()
                .to_string(),
        );
    }

    let logs = std::fs::read_to_string(&log_file).unwrap();
    assert!(logs.contains("TRACE"), "the server logged at trace level");
    assert!(logs.len() > 10_000, "a full flow leaves a long log");
    for needle in ["cashuA", "cashuB", "nsec1", "Payment ey"] {
        assert!(!logs.contains(needle), "the logs hold `{needle}`");
    }
    assert!(secrets.len() > 20, "{} secrets collected", secrets.len());
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({}…) is in the logs",
            &secret[..secret.len().min(12)]
        );
    }
}
