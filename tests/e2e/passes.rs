//! Time passes through the paywall layer (`coinslot_layer::pass`): an axum app on
//! `127.0.0.1:0` (`PaidApp`: scope `vpn` at 2 sat a minute, scope `game` at 3 credit a
//! minute, passes sold at `/pass`) with real cdk wallets paying over HTTP. Minutes last one
//! second here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use anyhow::Result;
use cdk::nuts::Token;
use cdk::wallet::Wallet;
use coinslot_tests::paywall::{header, PaidApp, PaidAppOptions};
use coinslot_tests::wallet::{self, token};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(1);

async fn app(dir: &std::path::Path) -> Result<PaidApp> {
    PaidApp::start(
        dir,
        PaidAppOptions {
            pass_minute: Some(MINUTE),
            ..PaidAppOptions::default()
        },
    )
    .await
}

/// `POST /pass` with a token, an optional body and an optional pass to extend.
async fn buy(
    app: &PaidApp,
    token: &str,
    body: Option<&str>,
    pass: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/pass", app.url))
        .header("X-Cashu", token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    if let Some(pass) = pass {
        request = request.header("X-Cashu-Pass", pass);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, headers, json)
}

fn change(headers: &reqwest::header::HeaderMap) -> u64 {
    let text = header(headers, "x-cashu");
    if text.is_empty() {
        return 0;
    }
    u64::from(text.parse::<Token>().unwrap().value().unwrap())
}

async fn unspent(wallet: &Wallet, token: &str) -> bool {
    wallet::unspent(wallet, token).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_buys_minutes_that_open_the_scope() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path()).await?;
    let wallet = wallet::funded(&app.url, 100).await?;

    // No pass: 402 asking for one minute, on the route and at /pass.
    let (status, headers, body) = app.get("/vpn/page", &[]).await?;
    assert_eq!(status, 402, "{body}");
    assert!(header(&headers, "x-cashu").starts_with("creqA"));
    assert!(
        body.contains("2 sat per minute") && body.contains("/pass"),
        "{body}"
    );
    let (status, _, body) = app.send(reqwest::Method::POST, "/pass", &[]).await?;
    assert_eq!(status, 400, "two scopes: which one? {body}");
    assert!(body.contains("vpn, game"), "{body}");

    // 7 sat at 2 a minute: 3 minutes, 1 back. The only sat scope needs no body.
    let seven = token(&wallet, 7).await?;
    let before = coinslot::crates::mint::unix_now();
    let (status, headers, bought) = buy(&app, &seven, None, None).await;
    assert_eq!(status, 200, "{bought}");
    assert_eq!(bought["minutes"], 3);
    assert_eq!(bought["scope"], "vpn");
    assert_eq!(change(&headers), 1, "the remainder comes back as change");
    // Change and pass headers together: a browser may read both.
    let exposed = header(&headers, "access-control-expose-headers");
    assert!(
        exposed.contains("x-cashu,") && exposed.contains("x-cashu-pass-remaining"),
        "{exposed}"
    );
    let expires = bought["expires_at"].as_u64().unwrap();
    assert!((before + 3..=before + 4).contains(&expires), "{bought}");
    let pass = bought["pass"].as_str().unwrap().to_owned();
    assert_eq!(header(&headers, "x-cashu-pass"), pass);

    // The pass opens the scope's routes with no payment, and says how long it has left.
    let (status, headers, body) = app.get("/vpn/page", &[("X-Cashu-Pass", &pass)]).await?;
    assert_eq!(status, 200, "{body}");
    let remaining: u64 = header(&headers, "x-cashu-pass-remaining").parse()?;
    assert!(remaining <= 3, "{remaining}");
    assert_eq!(
        header(&headers, "x-cashu-pass-expires"),
        expires.to_string()
    );
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(seen["scope"], "vpn");
    let (status, _, _) = app
        .send(
            reqwest::Method::POST,
            "/vpn/other",
            &[("X-Cashu-Pass", &pass)],
        )
        .await?;
    assert_eq!(status, 200);

    // The same token again: the same pass, nothing added (a lost answer retried).
    let (status, headers, again) = buy(&app, &seven, None, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["expires_at"], bought["expires_at"]);
    assert_eq!(change(&headers), 1);
    assert_eq!(again["minutes"], 3);

    // Paying again before expiry extends from the expiry.
    let four = token(&wallet, 4).await?;
    let (status, _, extended) = buy(&app, &four, Some(r#"{"scope": "vpn"}"#), Some(&pass)).await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["minutes"], 2);
    assert_eq!(extended["extended"], true);
    assert_eq!(extended["expires_at"].as_u64().unwrap(), expires + 2);

    // Too little for one minute: 400, the token untouched.
    let one = token(&wallet, 1).await?;
    let (status, _, refused) = buy(&app, &one, None, None).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], 11005);
    assert!(unspent(&wallet, &one).await, "the token is still spendable");

    // A tampered pass, or one for another scope, is refused with 401; without it, 402.
    let mut tampered = pass.clone();
    let at = tampered.len() - 3;
    tampered.replace_range(at..at + 1, if &pass[at..at + 1] == "A" { "B" } else { "A" });
    let (status, _, body) = app.get("/vpn/page", &[("X-Cashu-Pass", &tampered)]).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid pass"), "{body}");
    let (status, _, body) = app.get("/game/level", &[("X-Cashu-Pass", &pass)]).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("scope vpn, not game"), "{body}");
    let (status, _, _) = app.get("/game/level", &[]).await?;
    assert_eq!(status, 402);

    // With several scopes of one unit... here the units differ: a sat token for `game` is
    // refused untouched, and a body naming an unknown scope is a clear 400.
    let two = token(&wallet, 2).await?;
    let (status, _, body) = buy(&app, &two, Some(r#"{"scope": "game"}"#), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("credit"),
        "{body}"
    );
    let (status, _, body) = buy(&app, &two, Some(r#"{"scope": "moon"}"#), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("vpn, game"),
        "{body}"
    );
    assert!(unspent(&wallet, &two).await);

    // A token on a scope's route buys a pass on the spot.
    let six = token(&wallet, 6).await?;
    let (status, headers, body) = app.get("/vpn/page", &[("X-Cashu", &six)]).await?;
    assert_eq!(status, 200, "{body}");
    let spot = header(&headers, "x-cashu-pass");
    assert!(!spot.is_empty());
    let (status, _, _) = app.get("/vpn/page", &[("X-Cashu-Pass", &spot)]).await?;
    assert_eq!(status, 200);

    // It runs out: 401 saying so.
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    let (status, _, body) = app.get("/vpn/page", &[("X-Cashu-Pass", &pass)]).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    // Buying again after expiry starts from now.
    let two = token(&wallet, 2).await?;
    let now = coinslot::crates::mint::unix_now();
    let (status, _, renewed) = buy(&app, &two, None, Some(&pass)).await;
    assert_eq!(status, 200, "{renewed}");
    assert!(
        renewed["expires_at"].as_u64().unwrap() <= now + 2,
        "{renewed}"
    );
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_passes_survive_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path()).await?;
    let url = app.url.clone();
    let wallet = wallet::funded(&url, 410).await?;
    // Long passes (100 minutes) so they outlive the restart.
    let (_, _, kept) = buy(&app, &token(&wallet, 200).await?, None, None).await;
    let (_, _, revoked) = buy(&app, &token(&wallet, 200).await?, None, None).await;
    let (kept, revoked) = (
        kept["pass"].as_str().unwrap().to_owned(),
        revoked["pass"].as_str().unwrap().to_owned(),
    );
    let id = app
        .passes
        .verify(&revoked, Some("vpn"))
        .await
        .expect("valid before revocation")
        .id;
    // The operator lists the live passes and revokes one through the admin API.
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{url}/admin/passes"))
        .bearer_auth(app.admin_token())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed["passes"].as_array().unwrap().len(), 2, "{listed}");
    let answer = http
        .post(format!("{url}/admin/passes/{id}/revoke"))
        .bearer_auth(app.admin_token())
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await?;
    assert_eq!(answer["pass"]["revoked"], true, "{answer}");
    let unknown = http
        .post(format!("{url}/admin/passes/nosuchpass/revoke"))
        .bearer_auth(app.admin_token())
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);
    let anonymous = http
        .post(format!("{url}/admin/passes/{id}/revoke"))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    let (status, _, body) = app.get("/vpn/x", &[("X-Cashu-Pass", &revoked)]).await?;
    assert_eq!(status, 401);
    assert!(body.contains("revoked"), "{body}");
    // A revoked pass cannot be extended; the token is not spent.
    let top = token(&wallet, 2).await?;
    let (status, _, body) = buy(&app, &top, None, Some(&revoked)).await;
    assert_eq!(status, 401, "{body}");
    assert!(unspent(&wallet, &top).await);

    app.stop().await?;
    let app = PaidApp::start(
        dir.path(),
        PaidAppOptions {
            pass_minute: Some(MINUTE),
            listen: Some(url.trim_start_matches("http://").parse()?),
            ..PaidAppOptions::default()
        },
    )
    .await?;
    let (status, _, body) = app.get("/vpn/x", &[("X-Cashu-Pass", &kept)]).await?;
    assert_eq!(status, 200, "a pass outlives a restart: {body}");
    let (status, _, body) = app.get("/vpn/x", &[("X-Cashu-Pass", &revoked)]).await?;
    assert_eq!(status, 401, "and so does a revocation: {body}");
    app.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_extensions_all_count() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = app(dir.path()).await?;
    let wallet = wallet::funded(&app.url, 100).await?;
    // Ten minutes, so every extension lands before it runs out.
    let (_, _, first) = buy(&app, &token(&wallet, 20).await?, None, None).await;
    let pass = first["pass"].as_str().unwrap().to_owned();
    let start = first["expires_at"].as_u64().unwrap();
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(token(&wallet, 4).await?);
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for t in tokens {
        let (app, pass) = (std::sync::Arc::clone(&app), pass.clone());
        tasks.push(tokio::spawn(async move {
            buy(&app, &t, None, Some(&pass)).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await?, 200);
    }
    let id = app.passes.verify(&pass, None).await.unwrap();
    assert_eq!(id.expires_at, start + 8 * 2, "every extension counts");
    Ok(())
}
