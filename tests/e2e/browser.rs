//! The operator's dashboard (`/admin/dashboard`) in a real headless Chromium, on a coinslotd
//! that has earned something: the page holds no data and refuses a bad token; with a good
//! one it shows today's earnings, the books, the chart, the activity and the prices, and its
//! form changes a price that the server then charges. `#[ignore]`d (it needs chromium and
//! chromedriver): `scripts/test.sh` runs it when `COINSLOT_BROWSER=1`. The screenshot is
//! `docs/screenshots/dashboard.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use cdk::wallet::SendOptions;
use coinslot_admin::Scope;
use coinslot_mint::unix_now;
use coinslot_tests::browser::{self, js_string, save_png, screenshot_dir, Browser};
use coinslot_tests::proxy::{admin_token, ProxiedApp};
use coinslot_tests::wallet::{new_wallet, random_seed, send, topup};
use fantoccini::{Client, Locator};
use serde_json::Value;

const DEBUG_IDS: &[&str] = &["signin-error", "error", "who", "prices-result", "totals"];

async fn wait_for(client: &Client, what: &str, script: &str) -> Value {
    browser::wait_for(client, what, script, DEBUG_IDS).await
}

async fn type_into(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    let element = client.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn price_of(url: &str, path: &str) -> u64 {
    let response = reqwest::get(format!("{url}{path}")).await.unwrap();
    assert_eq!(response.status(), 402);
    response.json::<Value>().await.unwrap()["amount"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: scripts/test.sh runs it when COINSLOT_BROWSER=1"]
async fn the_dashboard_shows_todays_earnings_and_changes_prices() {
    let dir = tempfile::tempdir().unwrap();
    let app = ProxiedApp::start(dir.path(), |_| {}).await.unwrap();
    let url = app.url().to_string();

    // Something earned: a 2-sat search paid with a token.
    let wallet = new_wallet(&url, random_seed()).await.unwrap();
    topup(&wallet, 20).await.unwrap();
    let token = send(&wallet, 2, SendOptions::default()).await.unwrap();
    let paid = reqwest::Client::new()
        .get(format!("{url}/search?q=coins"))
        .header("X-Cashu", token.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);

    // The page itself holds nothing and may only talk to its own origin.
    let page = reqwest::get(format!("{url}/admin/dashboard"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
    assert!(!page.text().await.unwrap().contains("retained"));

    let operator = admin_token(dir.path(), &[Scope::Read, Scope::Prices], unix_now(), 600).unwrap();
    let driver = Browser::start_desktop().await;
    let client = driver.client.clone();
    let outcome = tokio::spawn({
        let url = url.clone();
        async move { flow(&client, &url, &operator).await }
    })
    .await;
    driver.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert_eq!(
        price_of(&url, "/search").await,
        5,
        "the page's price is charged"
    );
    app.stop().await.unwrap();
}

async fn flow(client: &Client, url: &str, operator: &str) {
    client
        .goto(&format!("{url}/admin/dashboard"))
        .await
        .unwrap();

    // A token the server did not sign is refused on the page.
    type_into(client, "token", "not-a-token").await;
    click(client, "#signin button").await;
    wait_for(
        client,
        "the bad token to be refused",
        "return document.getElementById('signin-error').textContent.includes('refused')",
    )
    .await;

    type_into(client, "token", operator).await;
    click(client, "#signin button").await;
    wait_for(
        client,
        "today's earnings",
        "const c = document.querySelector('#today-sat b'); return c && c.textContent === '2'",
    )
    .await;
    let kept = js_string(
        client,
        "return document.querySelector('#kept-sat b').textContent",
    )
    .await;
    assert_eq!(kept, "2", "the books' kept value");
    let came_in = js_string(
        client,
        "return document.querySelector('#came-in-sat b').textContent",
    )
    .await;
    assert_eq!(came_in, "20");
    let who = js_string(client, "return document.getElementById('who').textContent").await;
    assert!(who.starts_with("test-operator"), "{who}");
    wait_for(
        client,
        "the 2-sat hour in the chart",
        "return !!document.querySelector('#chart svg[data-unit=sat] rect.bar[data-value=\"2\"]')",
    )
    .await;
    let route = js_string(
        client,
        "return document.querySelector('#chart svg[data-unit=sat] rect.bar').dataset.route",
    )
    .await;
    assert_eq!(route, "api: GET /search", "the bar is the route's");
    let row = js_string(
        client,
        "return [...document.querySelectorAll('#routes tbody tr')].map(r => [...r.cells].map(c => c.textContent).join('|')).join(';')",
    )
    .await;
    assert_eq!(row, "sat|api: GET /search|1|0|2|0|2", "the route table");
    let books = js_string(
        client,
        "return document.getElementById('audit-state').textContent",
    )
    .await;
    assert_eq!(books, "The books add up.");
    let paid_rows = js_string(
        client,
        "return String([...document.querySelectorAll('#activity tbody tr')].filter(r => r.cells[1].textContent === 'paid').length)",
    )
    .await;
    assert_eq!(paid_rows, "1");

    let shot = client.screenshot().await.unwrap();
    save_png(&screenshot_dir().join("dashboard.png"), &shot);

    // The price form: /search from 2 to 5, saved for every instance.
    let input = "#prices input[aria-label='price of GET /search']";
    let value = js_string(
        client,
        &format!("return document.querySelector(\"{input}\").value"),
    )
    .await;
    assert_eq!(value, "2");
    let field = client.find(Locator::Css(input)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("5").await.unwrap();
    click(client, "#prices-form button[type=submit]").await;
    wait_for(
        client,
        "the prices to be saved",
        "return document.getElementById('prices-result').textContent.startsWith('Saved: version')",
    )
    .await;
}
