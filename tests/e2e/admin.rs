//! The operator's side of `coinslotd`: admin API authentication and actions, operator-issued
//! credit, liabilities that add up, `/metrics`, prices changed without a restart, keyset
//! rotation and rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Result;
use cdk::nuts::Token;
use cdk::wallet::{ReceiveOptions, SendOptions, Wallet};
use coinslot_admin::Scope;
use coinslot_mint::unix_now;
use coinslot_tests::proxy::{admin_token, ProxiedApp};
use coinslot_tests::wallet::{
    balance, mint_request, new_wallet, post_json, random_seed, send, topup,
};
use coinslot_tests::TestServer;
use serde_json::{json, Value};

async fn start() -> Result<(ProxiedApp, tempfile::TempDir)> {
    start_with(|_| {}).await
}

async fn start_with(
    adjust: impl FnOnce(&mut coinslotd::Config),
) -> Result<(ProxiedApp, tempfile::TempDir)> {
    ProxiedApp::start_in_temp(adjust).await
}

fn token_for(dir: &tempfile::TempDir, scopes: &[Scope]) -> String {
    admin_token(dir.path(), scopes, unix_now(), 600).unwrap()
}

async fn admin_get(app: &ProxiedApp, path: &str, token: Option<&str>) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new().get(format!("{}{path}", app.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

async fn admin_send(
    app: &ProxiedApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<reqwest::Response> {
    Ok(reqwest::Client::new()
        .request(method, format!("{}{path}", app.url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_requests_need_a_valid_token_with_the_scope() -> Result<()> {
    let (app, dir) = start().await?;
    let (status, body) = admin_get(&app, "/admin/liabilities", None).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );

    let forged = coinslot_admin::AdminKey::from_secret(&[1; 32]).issue(
        "mallory",
        &Scope::ALL,
        std::time::Duration::from_secs(600),
        unix_now(),
    )?;
    let (status, body) = admin_get(&app, "/admin/liabilities", Some(&forged)).await?;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("signature"),
        "{body}"
    );

    let expired = admin_token(dir.path(), &[Scope::Read], unix_now() - 120, 60)?;
    let (status, body) = admin_get(&app, "/admin/liabilities", Some(&expired)).await?;
    assert_eq!(status, 401);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let reader = token_for(&dir, &[Scope::Read]);
    let (status, _) = admin_get(&app, "/admin/liabilities", Some(&reader)).await?;
    assert_eq!(status, 200);
    let response = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &reader,
        &json!({ "amount": 10, "unit": "sat", "form": "token" }),
    )
    .await?;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "forbidden");
    assert!(body["detail"].as_str().unwrap().contains("issue"));
    let (status, body) = admin_get(&app, "/admin/whoami", Some(&reader)).await?;
    assert_eq!((status, body["sub"].as_str()), (200, Some("test-operator")));
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_credit_spends_in_a_wallet() -> Result<()> {
    let (app, dir) = start().await?;
    let issuer = token_for(&dir, &[Scope::Issue]);

    // A ready token.
    let response = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &issuer,
        &json!({ "amount": 21, "unit": "sat", "form": "token", "memo": "welcome" }),
    )
    .await?;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await?;
    let wallet = new_wallet(app.url(), random_seed()).await?;
    let received = wallet
        .receive(body["token"].as_str().unwrap(), ReceiveOptions::default())
        .await?;
    assert_eq!(received.to_u64(), 21);

    // A printable voucher: the page carries a token worth the amount and a QR code.
    let response = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &issuer,
        &json!({ "amount": 5, "unit": "sat", "form": "voucher", "memo": "Arcade night" }),
    )
    .await?;
    assert_eq!(response.status(), 201);
    assert!(response.headers()["content-type"]
        .to_str()?
        .starts_with("text/html"));
    let page = response.text().await?;
    assert!(page.contains("<svg") && page.contains("Arcade night"));
    let start = page.find("cashuB").expect("a token on the voucher");
    let end = page[start..].find('<').unwrap() + start;
    let voucher = &page[start..end];
    assert_eq!(Token::from_str(voucher)?.value()?.to_u64(), 5);
    assert_eq!(
        wallet
            .receive(voucher, ReceiveOptions::default())
            .await?
            .to_u64(),
        5
    );

    // A paid quote: any wallet mints it with the quote id.
    let response = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &issuer,
        &json!({ "amount": 8, "unit": "sat", "form": "quote" }),
    )
    .await?;
    let body: Value = response.json().await?;
    assert_eq!(body["state"], "PAID");
    let quote = body["quote"].as_str().unwrap();
    let request = mint_request(&wallet, quote, 8.into()).await?;
    let minted = post_json(
        app.url(),
        "/v1/mint/bolt11",
        &serde_json::to_value(&request)?,
    )
    .await?;
    assert_eq!(minted.status, 200, "{:?}", minted.body);
    assert_eq!(minted.body["signatures"].as_array().unwrap().len(), 1);
    let other = mint_request(&wallet, quote, 8.into()).await?;
    let again = post_json(app.url(), "/v1/mint/bolt11", &serde_json::to_value(&other)?).await?;
    assert_eq!(again.status, 400, "a credit quote minted twice");
    assert_eq!(balance(&wallet).await?, 26);

    let bad = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &issuer,
        &json!({ "amount": 5, "unit": "usd", "form": "token" }),
    )
    .await?;
    assert_eq!(bad.status(), 400);
    app.stop().await
}

/// Liabilities per unit, read from the admin report.
async fn sat_liabilities(app: &ProxiedApp, token: &str) -> Result<Value> {
    let (status, body) = admin_get(app, "/admin/liabilities", Some(token)).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "sat")
        .cloned()
        .unwrap())
}

async fn pay(wallet: &Wallet, url: &str, path: &str, amount: u64) -> Result<u16> {
    let token = send(wallet, amount, SendOptions::default())
        .await?
        .to_string();
    let response = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header("x-cashu", token)
        .send()
        .await?;
    let status = response.status().as_u16();
    if let Some(back) = response.headers().get("x-cashu") {
        wallet
            .receive(back.to_str()?, ReceiveOptions::default())
            .await?;
    }
    Ok(status)
}

/// Two searches (2 sat each, one paid with 3 and given 1 back), a failed request (5,
/// refunded) and a metered chat (10 reserved, 3 kept, 7 back), its change taken back in.
async fn pay_a_mix(wallet: &Wallet, url: &str) -> Result<()> {
    assert_eq!(pay(wallet, url, "/search", 3).await?, 200);
    assert_eq!(pay(wallet, url, "/search", 2).await?, 200);
    assert_eq!(pay(wallet, url, "/boom", 5).await?, 500);
    let chat = send(wallet, 10, SendOptions::default()).await?.to_string();
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/x"))
        .header("x-cashu", chat)
        .send()
        .await?;
    let back = response.headers()["x-cashu"].to_str()?.to_string();
    wallet.receive(&back, ReceiveOptions::default()).await?;
    Ok(())
}

/// A prepaid session opened with `amount` from `wallet`: the endpoint's answer.
async fn open_session(url: &str, wallet: &Wallet, amount: u64) -> Result<Value> {
    let token = send(wallet, amount, SendOptions::default()).await?;
    Ok(reqwest::Client::new()
        .post(format!("{url}/cashu/session"))
        .header("x-cashu", token.to_string())
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn liabilities_add_up_after_a_mix_of_top_ups_payments_and_refunds() -> Result<()> {
    let (app, dir) = start().await?;
    let reader = token_for(&dir, &[Scope::Read, Scope::Issue]);
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 100).await?;
    topup(&wallet, 28).await?;
    pay_a_mix(&wallet, app.url()).await?;
    let credit = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/credit",
        &reader,
        &json!({ "amount": 9, "unit": "sat", "form": "token" }),
    )
    .await?
    .json::<Value>()
    .await?;
    wallet
        .receive(credit["token"].as_str().unwrap(), ReceiveOptions::default())
        .await?;
    // A session holds 6 of it.
    let session = open_session(app.url(), &wallet, 6).await?;
    assert_eq!(session["balance"], 6);

    let held = balance(&wallet).await?;
    assert_eq!(held, 128 + 9 - 2 - 2 - 3 - 6);
    let sat = sat_liabilities(&app, &reader).await?;
    let (issued, redeemed, outstanding) = (
        sat["issued"].as_u64().unwrap(),
        sat["redeemed"].as_u64().unwrap(),
        sat["outstanding"].as_u64().unwrap(),
    );
    assert_eq!(issued, redeemed + outstanding);
    assert_eq!(
        outstanding, held,
        "outstanding ecash must be exactly what the wallet holds"
    );
    assert_eq!(sat["account_balance"], 6);
    assert_eq!(sat["total"].as_u64().unwrap(), held + 6);
    let keysets_sum: u64 = sat["keysets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["outstanding"].as_u64().unwrap())
        .sum();
    assert_eq!(keysets_sum, outstanding);

    // The activity log saw it happen (it follows the mint's feed in a task of its own, so
    // the newest entries may land a moment after the answers did).
    let wanted = [
        "quote_paid",
        "minted",
        "paid",
        "refunded",
        "credit_issued",
        "deposited",
    ];
    coinslot_tests::eventually("every kind of activity in the log", || async {
        let (_, activity) = admin_get(&app, "/admin/activity?limit=500", Some(&reader))
            .await
            .ok()?;
        let kinds: Vec<String> = activity["activity"]
            .as_array()?
            .iter()
            .filter_map(|a| a["kind"].as_str().map(str::to_string))
            .collect();
        wanted
            .iter()
            .all(|kind| kinds.iter().any(|k| k == kind))
            .then_some(())
    })
    .await;
    app.stop().await
}

/// The route rows of `/admin/earnings`: `(route, requests, failed, earned, refunded, net)`.
async fn earnings_by_route(
    app: &ProxiedApp,
    token: &str,
) -> Result<Vec<(String, u64, u64, u64, u64, u64)>> {
    let (status, body) = admin_get(app, "/admin/earnings?hours=2", Some(token)).await?;
    assert_eq!(status, 200, "{body}");
    let mut routes: Vec<_> = body["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unit"] == "sat")
        .map(|r| {
            let n = |key: &str| r[key].as_u64().unwrap();
            (
                r["route"].as_str().unwrap().to_string(),
                n("requests"),
                n("failed"),
                n("earned"),
                n("refunded"),
                n("net"),
            )
        })
        .collect();
    routes.sort();
    Ok(routes)
}

/// Every paid request and refund counts under its route in the earnings ledger, which adds
/// up to what the books say the service kept, and is still there after a restart.
#[tokio::test(flavor = "multi_thread")]
async fn earnings_are_counted_per_route_and_outlive_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |_| {}).await?;
    let reader = token_for(&dir, &[Scope::Read]);
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 60).await?;
    pay_a_mix(&wallet, app.url()).await?;
    // A search paid from a prepaid session counts under the same route.
    let session = open_session(app.url(), &wallet, 6).await?;
    let paid = reqwest::Client::new()
        .get(format!("{}/search?q=s", app.url()))
        .header("x-cashu-session", session["session"].as_str().unwrap())
        .send()
        .await?;
    assert_eq!(paid.status(), 200);

    let expected = vec![
        ("api: GET /boom".to_string(), 1, 1, 5, 5, 0),
        ("api: GET /search".to_string(), 3, 0, 6, 0, 6),
        ("api: POST /v1/chat/{model}".to_string(), 1, 0, 10, 7, 3),
    ];
    assert_eq!(earnings_by_route(&app, &reader).await?, expected);
    let (_, audit) = admin_get(&app, "/admin/audit", Some(&reader)).await?;
    let retained = audit["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["unit"] == "sat")
        .unwrap()["retained"]
        .as_u64()
        .unwrap();
    let kept: u64 = expected.iter().map(|r| r.5).sum();
    assert_eq!(kept, retained, "the ledger adds up to the books: {audit}");

    // The period and the token are checked.
    let (status, body) = admin_get(&app, "/admin/earnings?hours=0", Some(&reader)).await?;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("hours"), "{body}");
    let (status, body) = admin_get(&app, "/admin/earnings?hours=lots", Some(&reader)).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("hours"), "{body}");
    assert_eq!(admin_get(&app, "/admin/earnings", None).await?.0, 401);

    // Paid just before the server stops: in the ledger after the restart (the last
    // second's sums are written on the way down).
    assert_eq!(pay(&wallet, app.url(), "/search", 2).await?, 200);
    app.stop().await?;
    let again = ProxiedApp::start(dir.path(), |_| {}).await?;
    let mut after = expected.clone();
    after[1] = ("api: GET /search".to_string(), 4, 0, 8, 0, 8);
    assert_eq!(earnings_by_route(&again, &reader).await?, after);
    again.stop().await
}

/// Parses the Prometheus text format: `name{labels} value` per sample line.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            assert!(
                line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

fn sample(samples: &HashMap<String, f64>, name: &str, label: &str) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| series.starts_with(name) && series.contains(label))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_when_requests_are_paid() -> Result<()> {
    let (app, _dir) = start().await?;
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", app.url())).await?;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()?
            .starts_with("text/plain"));
        anyhow::Ok(parse_metrics(&response.text().await?))
    };
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 50).await?;
    let before = scrape().await?;
    assert_eq!(pay(&wallet, app.url(), "/search", 2).await?, 200);
    assert_eq!(pay(&wallet, app.url(), "/boom", 5).await?, 500);
    let unpaid = reqwest::get(format!("{}/search", app.url())).await?;
    assert_eq!(unpaid.status(), 402);
    // The metrics follow the mint's activity feed in a task of their own: wait until the
    // counters caught up, then check they moved by exactly what happened.
    let caught_up = |m: &HashMap<String, f64>| {
        let moved = |name: &str, label: &str| sample(m, name, label) - sample(&before, name, label);
        moved("coinslot_requests_paid_total", "unit=\"sat\"") >= 2.0
            && moved("coinslot_refunded_total", "why=\"failed\"") >= 5.0
            && moved("coinslot_requests_refused_total", "payment_required") >= 1.0
    };
    let after = coinslot_tests::eventually("the metrics to catch up", || async {
        scrape().await.ok().filter(|m| caught_up(m))
    })
    .await;

    let moved =
        |name: &str, label: &str| sample(&after, name, label) - sample(&before, name, label);
    assert_eq!(moved("coinslot_requests_paid_total", "unit=\"sat\""), 2.0);
    assert_eq!(moved("coinslot_redeemed_total", "unit=\"sat\""), 7.0);
    assert_eq!(moved("coinslot_refunded_total", "why=\"failed\""), 5.0);
    assert_eq!(
        moved("coinslot_requests_refused_total", "payment_required"),
        1.0
    );
    assert!(sample(&after, "coinslot_quotes_paid_total", "sat") >= 1.0);
    assert_eq!(
        sample(&after, "coinslot_ecash_outstanding", "sat"),
        balance(&wallet).await? as f64
    );
    assert!(
        sample(
            &after,
            "coinslot_http_request_duration_seconds_count",
            "kind=\"service\""
        ) >= 3.0
    );
    let health = reqwest::get(format!("{}/health", app.url())).await?;
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/ready", app.url())).await?;
    assert_eq!(ready.status(), 200);
    app.stop().await
}

async fn price_of(url: &str, path: &str) -> Result<u64> {
    let response = reqwest::get(format!("{url}{path}")).await?;
    assert_eq!(response.status(), 402);
    Ok(response.json::<Value>().await?["amount"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn prices_change_without_a_restart_and_stay_changed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |_| {}).await?;
    let token = token_for(&dir, &[Scope::Read, Scope::Prices]);
    assert_eq!(price_of(app.url(), "/search").await?, 2);

    let (_, mut prices) = admin_get(&app, "/admin/prices", Some(&token)).await?;
    prices["upstreams"][0]["routes"][0]["price"] = json!(4);
    let response = admin_send(&app, reqwest::Method::PUT, "/admin/prices", &token, &prices).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(price_of(app.url(), "/search").await?, 4);

    let mut broken = prices.clone();
    broken["upstreams"][0]["routes"][0]["unit"] = json!("usd");
    let response = admin_send(&app, reqwest::Method::PUT, "/admin/prices", &token, &broken).await?;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await?;
    assert!(body["detail"].as_str().unwrap().contains("unit"), "{body}");
    assert_eq!(
        price_of(app.url(), "/search").await?,
        4,
        "a refused change applied"
    );

    // A restart keeps the changed prices (the config file still says 2).
    let upstream = app.upstream_url.clone();
    app.stop().await?;
    let again = ProxiedApp::start(dir.path(), |_| {}).await?;
    assert_ne!(again.upstream_url, upstream);
    let (_, prices) = admin_get(&again, "/admin/prices", Some(&token)).await?;
    assert_eq!(prices["upstreams"][0]["routes"][0]["price"], 4);
    assert_eq!(prices["version"], 1, "one change stored: {prices}");

    // DELETE goes back to the config file's prices, and so does the next start.
    let response = admin_send(
        &again,
        reqwest::Method::DELETE,
        "/admin/prices",
        &token,
        &json!(null),
    )
    .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(price_of(again.url(), "/search").await?, 2);
    again.stop().await?;
    let third = ProxiedApp::start(dir.path(), |_| {}).await?;
    assert_eq!(price_of(third.url(), "/search").await?, 2);
    let (_, prices) = admin_get(&third, "/admin/prices", Some(&token)).await?;
    assert_eq!(prices["version"], 2, "{prices}");
    third.stop().await
}

/// A `prices.json` an earlier version left in the data directory is moved into the store
/// at the first start, once.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_prices_file_is_moved_into_the_store() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = ProxiedApp::start(dir.path(), |_| {}).await?;
    let token = token_for(&dir, &[Scope::Read]);
    let (_, mut prices) = admin_get(&app, "/admin/prices", Some(&token)).await?;
    app.stop().await?;
    prices["upstreams"][0]["routes"][0]["price"] = json!(7);
    let file = dir.path().join("prices.json");
    std::fs::write(&file, serde_json::to_vec(&prices)?)?;

    let app = ProxiedApp::start(dir.path(), |_| {}).await?;
    assert_eq!(price_of(app.url(), "/search").await?, 7);
    assert!(!file.exists(), "the file was moved aside");
    assert!(dir.path().join("prices.json.imported").exists());
    let (_, stored) = admin_get(&app, "/admin/prices", Some(&token)).await?;
    assert_eq!(stored["version"], 1, "{stored}");
    app.stop().await?;
    let again = ProxiedApp::start(dir.path(), |_| {}).await?;
    assert_eq!(price_of(again.url(), "/search").await?, 7);
    again.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_a_keyset_keeps_old_ecash_spendable() -> Result<()> {
    let (app, dir) = start().await?;
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 16).await?;
    let old = send(&wallet, 4, SendOptions::default()).await?.to_string();
    let keys = token_for(&dir, &[Scope::Keys, Scope::Read]);
    let before: Value = reqwest::get(format!("{}/v1/keysets", app.url()))
        .await?
        .json()
        .await?;
    let sat = json!({ "unit": "sat" });
    let (a, b) = tokio::join!(
        admin_send(
            &app,
            reqwest::Method::POST,
            "/admin/keysets/rotate",
            &keys,
            &sat
        ),
        admin_send(
            &app,
            reqwest::Method::POST,
            "/admin/keysets/rotate",
            &keys,
            &sat
        ),
    );
    assert_eq!((a?.status().as_u16(), b?.status().as_u16()), (200, 200));
    let after: Value = reqwest::get(format!("{}/v1/keysets", app.url()))
        .await?
        .json()
        .await?;
    let count = |v: &Value| v["keysets"].as_array().unwrap().len();
    let active = |v: &Value| {
        v["keysets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["active"] == true && k["unit"] == "sat")
            .count()
    };
    assert_eq!(
        count(&after),
        count(&before) + 2,
        "two rotations, two new keysets"
    );
    assert_eq!(active(&after), 1);
    let response = reqwest::Client::new()
        .get(format!("{}/search", app.url()))
        .header("x-cashu", old)
        .send()
        .await?;
    assert_eq!(
        response.status(),
        200,
        "ecash of the old keyset must still pay"
    );
    let refused = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/keysets/rotate",
        &keys,
        &json!({ "unit": "usd" }),
    )
    .await?;
    assert_eq!(refused.status(), 400);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after() -> Result<()> {
    let (app, _dir) = start_with(|config| {
        config.limits.per_ip_per_minute = 6;
        config.limits.burst = 3;
    })
    .await?;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = reqwest::get(format!("{}/status", app.url())).await?;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = response.json().await?;
            assert!(body["detail"].as_str().unwrap().contains("too many"));
        }
    }
    // A burst of 3 (less what start-up's readiness probe spent), then 429 until the bucket
    // refills one request every 10 s.
    let first_refusal = statuses
        .iter()
        .position(|s| *s == 429)
        .expect("never limited");
    assert!((1..=3).contains(&first_refusal), "{statuses:?}");
    assert!(
        statuses[..first_refusal].iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    assert!(
        statuses[first_refusal..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    let health = reqwest::get(format!("{}/health", app.url())).await?;
    assert_eq!(health.status(), 200, "health checks are never rate limited");
    let secs: u64 = retry_after.unwrap().parse()?;
    assert!((1..=10).contains(&secs), "Retry-After {secs}");
    // Counted by the metrics task, a moment after the answers.
    coinslot_tests::eventually("a rate_limited refusal in the metrics", || async {
        let metrics = reqwest::get(format!("{}/metrics", app.url()))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics.contains("reason=\"rate_limited\"").then_some(())
    })
    .await;
    app.stop().await
}

/// Requests `n` times from one address, each claiming another client in `X-Forwarded-For`.
async fn statuses_behind_a_proxy(app: &ProxiedApp, n: u8) -> Result<Vec<u16>> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..n {
        let response = client
            .get(format!("{}/status", app.url()))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await?;
        statuses.push(response.status().as_u16());
    }
    Ok(statuses)
}

async fn forwarded_for_ignored(app: &ProxiedApp) -> Result<Option<u64>> {
    let metrics = reqwest::get(format!("{}/metrics", app.url()))
        .await?
        .text()
        .await?;
    Ok(metrics
        .lines()
        .find_map(|line| line.strip_prefix("coinslot_forwarded_for_ignored_total "))
        .map(|n| n.trim().parse())
        .transpose()?)
}

/// Behind a proxy that is not trusted, every client shares the proxy's address and its
/// limit, and coinslotd counts (and logs once) that `X-Forwarded-For` was there; trusted,
/// each client has a limit of its own.
#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_counted_when_untrusted_and_separates_clients_when_trusted() -> Result<()>
{
    let limit = |trust: bool| {
        move |config: &mut coinslotd::Config| {
            config.limits.per_ip_per_minute = 6;
            config.limits.burst = 3;
            config.limits.trust_forwarded_for = trust;
        }
    };
    let (app, _dir) = start_with(limit(false)).await?;
    let statuses = statuses_behind_a_proxy(&app, 6).await?;
    assert!(statuses.contains(&429), "one shared limit: {statuses:?}");
    assert_eq!(forwarded_for_ignored(&app).await?, Some(6));
    app.stop().await?;

    let (app, _dir) = start_with(limit(true)).await?;
    let statuses = statuses_behind_a_proxy(&app, 6).await?;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a limit each: {statuses:?}"
    );
    assert_eq!(forwarded_for_ignored(&app).await?, None);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_and_bodies_are_refused() -> Result<()> {
    let (app, _dir) = start_with(|config| {
        config.limits.max_header_bytes = 2048;
        config.limits.max_body_bytes = 4096;
    })
    .await?;
    let response = reqwest::Client::new()
        .get(format!("{}/status", app.url()))
        .header("x-big", "a".repeat(4096))
        .send()
        .await?;
    assert_eq!(response.status(), 431);
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 8).await?;
    let paid = send(&wallet, 1, SendOptions::default()).await?.to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/upload", app.url()))
        .header("x-cashu", &paid)
        .body(vec![0u8; 10_000])
        .send()
        .await?;
    assert_eq!(response.status(), 413);
    let back = wallet.receive(&paid, ReceiveOptions::default()).await?;
    assert_eq!(
        back.to_u64(),
        1,
        "a refused request must leave its token spendable"
    );
    assert_eq!(balance(&wallet).await?, 8);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_rate_limited_on_its_own() -> Result<()> {
    let (app, dir) = start_with(|config| {
        config.limits.per_ip_per_minute = 0;
        config.limits.per_session_per_minute = 6;
        config.limits.burst = 3;
    })
    .await?;
    let wallet = new_wallet(app.url(), random_seed()).await?;
    topup(&wallet, 32).await?;
    let client = reqwest::Client::new();
    let opened: Value = client
        .post(format!("{}/cashu/session", app.url()))
        .header(
            "x-cashu",
            send(&wallet, 20, SendOptions::default()).await?.to_string(),
        )
        .send()
        .await?
        .json()
        .await?;
    let session = opened["session"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client
            .get(format!("{}/search", app.url()))
            .header("x-cashu-session", &session)
            .send()
            .await?;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    // Another client (no session) from the same address is not held back by it.
    let unpaid = client.get(format!("{}/search", app.url())).send().await?;
    assert_eq!(unpaid.status(), 402);
    // Refused requests were not charged: 3 paid at 2 sat each.
    let reader = token_for(&dir, &[Scope::Read]);
    assert_eq!(sat_liabilities(&app, &reader).await?["account_balance"], 14);
    app.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_top_up_page_is_served_with_live_prices() -> Result<()> {
    let (app, dir) = start().await?;
    let page = reqwest::get(format!("{}/", app.url())).await?;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()?
        .contains("default-src"));
    let html = page.text().await?;
    assert!(
        html.contains(&format!("data-mint=\"{}\"", app.url())),
        "tokens made by the page must name the public URL"
    );
    let prices = || async {
        let body: Value = reqwest::get(format!("{}/_coinslot/topup/prices.json", app.url()))
            .await?
            .json()
            .await?;
        anyhow::Ok(body["prices"].as_array().unwrap().clone())
    };
    let listed = prices().await?;
    let search = listed.iter().find(|p| p["path"] == "/search").unwrap();
    assert_eq!(
        (search["amount"].as_u64(), search["unit"].as_str()),
        (Some(2), Some("sat"))
    );
    assert!(listed
        .iter()
        .any(|p| p["path"] == "/v1/chat/{model}" && p["metered"] == true));
    assert!(
        !listed.iter().any(|p| p["path"] == "/status"),
        "free routes are not prices"
    );

    // The 402 sends people to the page.
    let unpaid: Value = reqwest::get(format!("{}/search", app.url()))
        .await?
        .json()
        .await?;
    assert_eq!(unpaid["topup"], format!("{}/", app.url()));

    // A price change shows on the page at once.
    let token = token_for(&dir, &[Scope::Read, Scope::Prices]);
    let (_, mut table) = admin_get(&app, "/admin/prices", Some(&token)).await?;
    table["upstreams"][0]["routes"][0]["price"] = json!(3);
    admin_send(&app, reqwest::Method::PUT, "/admin/prices", &token, &table).await?;
    let listed = prices().await?;
    let search = listed.iter().find(|p| p["path"] == "/search").unwrap();
    assert_eq!(search["amount"], 3);
    app.stop().await?;

    // It can be turned off.
    let dir = tempfile::tempdir()?;
    let off = ProxiedApp::start(dir.path(), |config| config.topup.enabled = false).await?;
    let page = reqwest::get(format!("{}/_coinslot/topup/prices.json", off.url())).await?;
    assert_eq!(page.status(), 404);
    let unpaid: Value = reqwest::get(format!("{}/search", off.url()))
        .await?
        .json()
        .await?;
    assert!(unpaid["topup"]
        .as_str()
        .unwrap()
        .ends_with("/v1/mint/quote/bolt11"));
    off.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_can_live_on_its_own_address() -> Result<()> {
    let free = std::net::TcpListener::bind("127.0.0.1:0")?;
    let admin_addr = free.local_addr()?;
    drop(free);
    let (app, dir) = start_with(|config| config.admin.listen = Some(admin_addr)).await?;
    let token = token_for(&dir, &[Scope::Read]);
    let public = reqwest::Client::new()
        .get(format!("{}/admin/liabilities", app.url()))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(
        public.status(),
        404,
        "the admin API is still on the public port"
    );
    let private = reqwest::Client::new()
        .get(format!("http://{admin_addr}/admin/liabilities"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(private.status(), 200);
    let refused = reqwest::get(format!("http://{admin_addr}/admin/liabilities")).await?;
    assert_eq!(
        refused.status(),
        401,
        "its own address does not skip authentication"
    );
    app.stop().await?;
    let gone = reqwest::get(format!("http://{admin_addr}/admin/whoami")).await;
    assert!(gone.is_err(), "the admin listener outlived the server");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_serves_the_admin_api_on_a_listener_it_is_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = coinslotd::Config::with_data_dir(dir.path());
    let (server, admin_addr) = TestServer::start_admin(config).await?;
    let token = token_for(&dir, &[Scope::Read]);
    let private = reqwest::Client::new()
        .get(format!("http://{admin_addr}/admin/liabilities"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(private.status(), 200);
    let public = reqwest::Client::new()
        .get(format!("{}/admin/liabilities", server.url))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(
        public.status(),
        404,
        "the admin API is also on the public port"
    );
    server.stop().await?;

    // A listener for a server the config does not start is refused, before the mint opens.
    let other = tempfile::tempdir()?;
    for (listeners, key) in [
        (
            coinslotd::Listeners::new(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
                .admin(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
            "[admin] enabled and listen",
        ),
        (
            coinslotd::Listeners::new(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
                .forward(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
            "[forward] listen",
        ),
    ] {
        let config = coinslotd::Config::with_data_dir(other.path());
        let err = coinslotd::run(listeners, config, async {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
    assert!(
        !other.path().join(coinslotd::SEED_FILE).exists(),
        "the mint was opened"
    );
    Ok(())
}
