//! The arcade page in a real headless Chromium: redeem a printed voucher, play pinball and
//! a metered racer run from the browser's wallet, then from a prepaid session, and cash
//! out into a cdk wallet. `#[ignore]`d (it needs chromium and chromedriver): `scripts/test.sh`
//! runs it with `--ignored` when `COINSLOT_BROWSER=1` (see `coinslot_tests::browser`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use cdk::nuts::CurrencyUnit;
use cdk::wallet::ReceiveOptions;
use coinslot_tests::browser::{self, js_string, save_png, screenshot_dir, Browser};
use coinslot_tests::wallet::{new_wallet_in, random_seed};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

mod common;

const DEBUG_IDS: &[&str] = &[
    "message",
    "balance",
    "session-balance",
    "pinball-result",
    "race-result",
];

async fn wait_for(client: &Client, what: &str, script: &str) -> Value {
    browser::wait_for(client, what, script, DEBUG_IDS).await
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text_is(client: &Client, id: &str, expected: u64) {
    wait_for(
        client,
        &format!("#{id} to read {expected}"),
        &format!("return document.getElementById('{id}').textContent === '{expected}'"),
    )
    .await;
}

async fn number(client: &Client, id: &str) -> u64 {
    js_string(
        client,
        &format!("return document.getElementById('{id}').textContent"),
    )
    .await
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: scripts/test.sh runs it when COINSLOT_BROWSER=1"]
async fn arcade_in_a_real_browser() {
    let (running, _dir) = common::start(Duration::from_secs(1)).await;
    let driver = Browser::start().await;
    let client = driver.client.clone();
    let outcome = tokio::spawn(async move { flow(&client, &running).await }).await;
    driver.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Waits for the text of `id` to start with `prefix`, and returns it.
async fn result_text(client: &Client, id: &str, prefix: &str) -> String {
    let text = wait_for(
        client,
        &format!("#{id} to start with {prefix}"),
        &format!(
            "const t = document.getElementById('{id}').textContent; \
             return t.startsWith('{prefix}') && t"
        ),
    )
    .await;
    text.as_str().unwrap().to_owned()
}

async fn flow(client: &Client, running: &arcade::Running) {
    let http = reqwest::Client::new();
    let url = running.url.as_str();
    client.goto(&format!("{url}/")).await.unwrap();
    wait_for(
        client,
        "the page to load",
        "return document.body.dataset.ready === '1'",
    )
    .await;
    let price = js_string(
        client,
        "return document.getElementById('pinball-price').textContent",
    )
    .await;
    assert_eq!(price, "2 credits per play");

    // 1. The operator prints a voucher; the player redeems it on the page.
    let voucher = common::voucher_token(running, 20).await;
    client
        .execute("document.getElementById('add-credit').open = true", vec![])
        .await
        .unwrap();
    client
        .execute(
            "document.getElementById('voucher').value = arguments[0]",
            vec![json!(voucher)],
        )
        .await
        .unwrap();
    client
        .find(Locator::Id("player"))
        .await
        .unwrap()
        .send_keys("Grace")
        .await
        .unwrap();
    click(client, "redeem").await;
    text_is(client, "balance", 20).await;
    // The page swapped the voucher for fresh proofs: the printed one is spent.
    let other = new_wallet_in(url, CurrencyUnit::custom("credit"), random_seed())
        .await
        .unwrap();
    let again = other.receive(&voucher, ReceiveOptions::default()).await;
    assert!(again.is_err(), "a redeemed voucher works once");

    // 2. Pinball, paid from the browser's wallet.
    click(client, "play-pinball").await;
    let result = result_text(client, "pinball-result", "Score").await;
    text_is(client, "balance", 18).await;
    let scores = common::get_json(running, "/games", false).await;
    let score = result.split(' ').nth(1).unwrap();
    assert_eq!(scores["scores"][0]["player"], "Grace", "{scores}");
    assert_eq!(scores["scores"][0]["score"].to_string(), score);

    // 3. A racer run: 5 reserved, about 1.3 "minutes" driven, 2 charged, the rest back.
    click(client, "race-start").await;
    wait_for(
        client,
        "the race to start",
        "return !document.getElementById('race-stop').disabled",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    click(client, "race-stop").await;
    let raced = result_text(client, "race-result", "Drove").await;
    let charged: u64 = raced
        .split("charged ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..5).contains(&charged), "{raced}");
    text_is(client, "balance", 18 - charged).await;
    let wallet_after_race = 18 - charged;

    // 4. A prepaid session of 6: pinball from it, then close it.
    client
        .execute(
            "document.getElementById('session-amount').value = '6'",
            vec![],
        )
        .await
        .unwrap();
    click(client, "open-session").await;
    text_is(client, "session-balance", 6).await;
    text_is(client, "balance", wallet_after_race - 6).await;
    click(client, "play-pinball").await;
    text_is(client, "session-balance", 4).await;
    assert_eq!(number(client, "balance").await, wallet_after_race - 6);
    client
        .execute(
            "document.getElementById('add-credit').open = false; \
             document.getElementById('pinball').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
    let shot = client.screenshot().await.unwrap();
    let path = screenshot_dir().join("arcade.png");
    save_png(&path, &shot);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(&path, docs.join("arcade.png")).unwrap();
    click(client, "close-session").await;
    let left = wallet_after_race - 2;
    text_is(client, "balance", left).await;
    wait_for(
        client,
        "the session to be gone",
        "return document.getElementById('session-line').hidden",
    )
    .await;

    // 5. Cash out: every credit left in the browser is real money for another wallet.
    click(client, "cashout").await;
    let token = wait_for(
        client,
        "the cash-out token",
        "return document.getElementById('cashout-token').value",
    )
    .await;
    text_is(client, "balance", 0).await;
    let received = other
        .receive(token.as_str().unwrap(), ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(u64::from(received), left);
    let pending = js_string(
        client,
        "return JSON.stringify(JSON.parse(localStorage.getItem('coinslot.arcade.v1')).pending)",
    )
    .await;
    assert_eq!(pending, "[]", "nothing left half-paid");

    // 6. Payments the page had sent when it was closed: on the next load, unspent ones come
    // back to the wallet, and spent ones are sent again with the same token, which the
    // server answers from its receipt without charging twice.
    let unspent = token_from(&other, 2).await;
    let spent = token_from(&other, 2).await;
    let paid_before = http
        .post(format!("{url}/games/pinball/play"))
        .header("content-type", "application/json")
        .header("X-Cashu", &spent.1)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(paid_before.status(), 200, "the first try went through");
    let pending = json!([pending_entry(&unspent), pending_entry(&spent)]);
    client
        .execute(
            "const s = JSON.parse(localStorage.getItem('coinslot.arcade.v1')); \
             s.pending = arguments[0]; localStorage.setItem('coinslot.arcade.v1', JSON.stringify(s));",
            vec![pending],
        )
        .await
        .unwrap();
    client.refresh().await.unwrap();
    text_is(client, "balance", 2).await;
    result_text(client, "pinball-result", "Score").await;
    let pending = js_string(
        client,
        "return JSON.stringify(JSON.parse(localStorage.getItem('coinslot.arcade.v1')).pending)",
    )
    .await;
    assert_eq!(pending, "[]", "both settled");
    assert_eq!(
        number(client, "balance").await,
        2,
        "the replay charged nothing more"
    );

    common::audit_ok(running).await;
}

/// A token of `amount` credits from `wallet`, and its proofs as the page stores them.
async fn token_from(wallet: &cdk::wallet::Wallet, amount: u64) -> (Value, String) {
    let token = coinslot_tests::wallet::token(wallet, amount).await.unwrap();
    let parsed: cdk::nuts::Token = token.parse().unwrap();
    let proofs = coinslot_tests::wallet::token_proofs(wallet, &parsed)
        .await
        .unwrap();
    (serde_json::to_value(proofs).unwrap(), token)
}

/// A paid request the page had sent when it was closed (its `pending` list).
fn pending_entry((proofs, token): &(Value, String)) -> Value {
    json!({
        "path": "/games/pinball/play",
        "init": {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": "{}"},
        "token": token,
        "proofs": proofs,
        "at": 0,
    })
}
