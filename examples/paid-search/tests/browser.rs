//! A page on another origin pays the search API from a real headless Chromium with the
//! `Payment` scheme: it reads the challenge from `WWW-Authenticate` on the `402`, answers it
//! with `Authorization: Payment …` (a preflighted header, which `*` would not allow), and
//! reads the `Payment-Receipt` of the answer.
//!
//! It needs Chromium and chromedriver, so a plain `cargo test` ignores it (and says so);
//! `scripts/test.sh` runs it with `--ignored` when `COINSLOT_BROWSER=1` (`.ci/run` installs
//! them and sets it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use axum::response::Html;
use axum::routing::get;
use coinslot_tests::browser::Browser;
use serde_json::Value;

/// The paying page: every step in the browser's own `fetch`, as a web app would do it.
const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>pay across origins</title>
<script>
function b64url(text) {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function params(header) {
  const at = header.indexOf("Payment ");
  const out = {};
  const re = /([a-z]+)="([^"]*)"/g;
  let m;
  const rest = header.slice(at + 8);
  while ((m = re.exec(rest)) !== null) out[m[1]] = m[2];
  return out;
}
async function pay(api, token) {
  const offered = await fetch(api + "/search?q=cors");
  const www = offered.headers.get("www-authenticate");
  if (offered.status !== 402 || !www) return { step: "challenge", status: offered.status, www };
  const credential = b64url(JSON.stringify({ challenge: params(www), payload: { cashu_token: token } }));
  const paid = await fetch(api + "/search?q=cors", { headers: { Authorization: "Payment " + credential } });
  return {
    step: "paid",
    status: paid.status,
    receipt: paid.headers.get("payment-receipt"),
    body: await paid.json(),
  };
}
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: scripts/test.sh runs it when COINSLOT_BROWSER=1"]
async fn a_page_on_another_origin_pays_with_the_payment_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = paid_search::open(dir.path()).await.unwrap();
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    let app = paid_search::app(embedded.mint.clone(), &api).unwrap();
    tokio::spawn(async move { axum::serve(api_listener, app).await });
    // Another origin: another port.
    let page_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!("http://{}", page_listener.local_addr().unwrap());
    let site = axum::Router::new().route("/", get(|| async { Html(PAGE) }));
    tokio::spawn(async move { axum::serve(page_listener, site).await });

    // The preflight names `authorization`: under the Fetch rules `*` does not cover it (some
    // browsers still let it through; others do not).
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{api}/search"))
        .header("origin", &page)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.split(',').any(|h| h.trim() == "authorization"),
        "{allowed}"
    );

    let wallet = coinslot_tests::wallet::funded(&api, 10).await.unwrap();
    let token = coinslot_tests::wallet::token(&wallet, 2).await.unwrap();
    let driver = Browser::start().await;
    let client = driver.client.clone();
    let paying = token.clone();
    let outcome = tokio::spawn(async move {
        client.goto(&format!("{page}/")).await.unwrap();
        client
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 pay(arguments[0], arguments[1]).then(done, e => done({ error: String(e) }));",
                vec![Value::from(api.as_str()), Value::from(paying.as_str())],
            )
            .await
            .unwrap()
    })
    .await;
    driver.close().await;
    drop(driver);
    let result = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    assert_eq!(result["step"], "paid", "{result}");
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["body"]["paid"]["amount"], 2, "{result}");
    let receipt = result["receipt"]
        .as_str()
        .expect("the page reads the receipt");
    assert!(!receipt.is_empty(), "{result}");
    assert!(
        !coinslot_tests::wallet::unspent(&wallet, &token)
            .await
            .unwrap(),
        "the token paid"
    );
}
