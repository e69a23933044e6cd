//! The arcade over HTTP with real cdk wallets: vouchers from the admin API, pinball per
//! play, racer per minute (metered: the unused reservation comes back), sessions, and a
//! run whose player goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::str::FromStr;
use std::time::{Duration, Instant};

use arcade::Running;
use cdk::nuts::{CurrencyUnit, Token};
use cdk::wallet::{ReceiveOptions, Wallet};
use coinslot_tests::wallet::{balance, new_wallet_in, random_seed, token};
use serde_json::{json, Value};

mod common;
use common::{audit_ok, credit as admin_credit, get_json, start, voucher_token};

fn credit() -> CurrencyUnit {
    CurrencyUnit::custom("credit")
}

/// An arcade with a racer minute of `minute`, and a player holding 30 credits.
async fn setup(minute: Duration) -> (Running, tempfile::TempDir, Wallet) {
    let (running, dir) = start(minute).await;
    let wallet = player(&running, 30).await;
    (running, dir, wallet)
}

/// A player's cdk wallet holding `amount` credits from a voucher.
async fn player(running: &Running, amount: u64) -> Wallet {
    let wallet = new_wallet_in(&running.url, credit(), random_seed())
        .await
        .unwrap();
    let voucher = voucher_token(running, amount).await;
    wallet
        .receive(&voucher, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(balance(&wallet).await.unwrap(), amount);
    wallet
}

fn token_value(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("x-cashu")
        .map(|v| {
            let token = Token::from_str(v.to_str().unwrap()).unwrap();
            u64::from(token.value().unwrap())
        })
        .unwrap_or(0)
}

async fn post(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .json(&json!({"player": "Ada"}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vouchers_pay_for_pinball_and_land_on_the_board() {
    let (running, _dir) = start(Duration::from_secs(60)).await;
    let url = &running.url;

    // A printable voucher is a page with the token on it.
    let page = admin_credit(&running, 25, "voucher").await;
    assert!(
        page.contains("25 credit") && page.contains("cashuB"),
        "{page}"
    );

    let wallet = player(&running, 20).await;
    // Unpaid: 402 with a request in credit.
    let unpaid = post(&format!("{url}/games/pinball/play"), &[]).await;
    assert_eq!(unpaid.status(), 402);

    let exact = token(&wallet, 2).await.unwrap();
    let played = post(&format!("{url}/games/pinball/play"), &[("X-Cashu", &exact)]).await;
    assert_eq!(played.status(), 200);
    assert_eq!(
        token_value(played.headers()),
        0,
        "no change for an exact token"
    );
    let body: Value = played.json().await.unwrap();
    assert_eq!(body["player"], "Ada");
    assert_eq!(body["paid"]["amount"], 2);
    let score = body["score"].as_u64().unwrap();
    assert!((1_000..=100_000).contains(&score), "{score}");

    // Overpaying: the rest comes back as change.
    let five = token(&wallet, 5).await.unwrap();
    let played = post(&format!("{url}/games/pinball/play"), &[("X-Cashu", &five)]).await;
    assert_eq!(played.status(), 200);
    assert_eq!(token_value(played.headers()), 3);

    // A token from a wallet of another unit is refused, untouched.
    let sats = coinslot_tests::wallet::new_wallet(url, random_seed())
        .await
        .unwrap();
    assert!(
        coinslot_tests::wallet::topup(&sats, 10).await.is_err(),
        "the arcade issues credit only"
    );

    let games = get_json(&running, "/games", false).await;
    let scores = games["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "{games}");
    assert!(scores
        .iter()
        .any(|s| s["score"] == score && s["player"] == "Ada"));
    assert_eq!(games["games"][1]["reserve"], 5);
    audit_ok(&running).await;
}

/// Starts a racer run paid with `headers`, returning the task that waits for its answer.
fn drive(
    url: &str,
    run: &str,
    headers: Vec<(String, String)>,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let url = format!("{url}/games/racer/run?run={run}");
    tokio::spawn(async move {
        let mut request = reqwest::Client::new().post(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    })
}

async fn stop(url: &str, run: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(format!("{url}/games/racer/stop?run={run}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racer_charges_started_minutes_and_returns_the_rest() {
    let (running, _dir, wallet) = setup(Duration::from_secs(1)).await;
    let url = &running.url;

    // Stopped after a bit over one "minute": two started minutes, three credits back.
    let reserve = token(&wallet, 5).await.unwrap();
    let run = drive(url, "run-one-0001", vec![("X-Cashu".into(), reserve)]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The stop may overtake the run request; either way it ends the run.
    assert!(stop(url, "run-one-0001").await.is_success());
    let answer = run.await.unwrap();
    assert_eq!(answer.status(), 200);
    let change = token_value(answer.headers());
    let body: Value = answer.json().await.unwrap();
    let minutes = body["minutes"].as_u64().unwrap();
    let seconds = body["seconds"].as_f64().unwrap();
    assert_eq!(body["ended"], "stopped", "{body}");
    assert_eq!(minutes, (seconds.ceil() as u64).clamp(1, 5), "{body}");
    assert!(
        (2..5).contains(&minutes),
        "a 1.2 s run is 2 started minutes: {body}"
    );
    assert_eq!(body["charged"].as_u64().unwrap(), minutes);
    assert_eq!(change, 5 - minutes, "the unused reservation comes back");

    // A stop that arrives first ends the run as soon as it starts: one minute.
    assert_eq!(stop(url, "run-two-0002").await, 202);
    let reserve = token(&wallet, 5).await.unwrap();
    let answer = drive(url, "run-two-0002", vec![("X-Cashu".into(), reserve)])
        .await
        .unwrap();
    assert_eq!(token_value(answer.headers()), 4);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (body["minutes"].as_u64(), body["charged"].as_u64()),
        (Some(1), Some(1))
    );

    // A bad run id costs nothing: the whole reservation comes back.
    let reserve = token(&wallet, 5).await.unwrap();
    let answer = drive(url, "bad id", vec![("X-Cashu".into(), reserve)])
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(token_value(answer.headers()), 5);
    audit_ok(&running).await;
}

/// `method /cashu/session` with the session's credential; the JSON answer.
async fn session_call(method: reqwest::Method, url: &str, credential: &str) -> Value {
    reqwest::Client::new()
        .request(method, format!("{url}/cashu/session"))
        .header("X-Cashu-Session", credential)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racer_ends_at_the_time_limit_and_sessions_pay_for_runs() {
    let (running, _dir, wallet) = setup(Duration::from_millis(200)).await;
    let url = &running.url;

    // Nobody stops it: the run ends at 5 minutes and keeps the whole reservation.
    let reserve = token(&wallet, 5).await.unwrap();
    let answer = drive(url, "run-limit-01", vec![("X-Cashu".into(), reserve)])
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(token_value(answer.headers()), 0);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["ended"], "time limit");
    assert_eq!(body["charged"], 5);

    // A session of 12: a run reserves 5 from it and gives back what it did not use.
    let deposit = token(&wallet, 12).await.unwrap();
    let opened: Value = post(&format!("{url}/cashu/session"), &[("X-Cashu", &deposit)])
        .await
        .json()
        .await
        .unwrap();
    let credential = opened["session"].as_str().unwrap().to_owned();
    assert_eq!(opened["balance"], 12);
    let session = vec![("X-Cashu-Session".to_string(), credential.clone())];
    assert_eq!(stop(url, "run-session-1").await, 202);
    let answer = drive(url, "run-session-1", session.clone()).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-cashu-balance"], "11 credit");
    let session_balance = || async {
        session_call(reqwest::Method::GET, url, &credential).await["balance"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(session_balance().await, 11);

    // The player goes away mid-run: the layer returns the reservation to the session.
    let client = reqwest::Client::new();
    let dropped = client
        .post(format!("{url}/games/racer/run?run=run-gone-0001"))
        .header("X-Cashu-Session", &credential)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the run was still going when the client left"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = session_balance().await;
        if now == 11 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the abandoned run's reservation did not come back: balance {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Pinball from the session, then close it: the rest comes back as a token.
    let played = post(
        &format!("{url}/games/pinball/play"),
        &[("X-Cashu-Session", &credential)],
    )
    .await;
    assert_eq!(played.status(), 200);
    assert_eq!(played.headers()["x-cashu-balance"], "9 credit");
    let closed = session_call(reqwest::Method::DELETE, url, &credential).await;
    assert_eq!(closed["amount"], 9);
    let back = wallet
        .receive(closed["token"].as_str().unwrap(), ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(u64::from(back), 9);
    assert_eq!(balance(&wallet).await.unwrap(), 30 - 5 - 12 + 9);
    audit_ok(&running).await;
}
