//! The client against `examples/paid-search` (a real server on 127.0.0.1:0 with its
//! embedded mint): the first request pays by itself and the rest stays in the wallet; over
//! budget, an untrusted mint or too little ecash → a clear error and nothing spent; a
//! server failure → the refund is back in the wallet.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use cdk::mint_url::MintUrl;
use cdk::nuts::CurrencyUnit;
use coinslot_client::{Budget, Error, Limits, OverBudget, PayingClient, Wallets};
use std::sync::Mutex;

struct Server {
    url: String,
    _dir: tempfile::TempDir,
}

async fn paid_search() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = paid_search::spawn_on_loopback(dir.path()).await.unwrap();
    Server { url, _dir: dir }
}

/// A client paying from `wallets` with ecash of `server`'s mint only.
fn paying_client(wallets: &Wallets, budget: Budget, server: &Server) -> PayingClient {
    PayingClient::new(
        reqwest::Client::new(),
        wallets.clone(),
        budget,
        [mint(&server.url)],
    )
}

/// `routes` behind a paywall charging per `pricing`, with the mint's API, on loopback.
async fn paywalled(pricing: coinslot::PriceTable, routes: axum::Router) -> Server {
    use coinslot::{EmbeddedMint, PaywallLayer};
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedMint::open_dev(dir.path()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let paywall = PaywallLayer::new(embedded.mint.clone(), &url, pricing).unwrap();
    let app = routes.layer(paywall).merge(coinslot::mint_api(
        embedded.mint.clone(),
        Default::default(),
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, _dir: dir }
}

/// A server whose paid route always fails (500): the layer must refund.
async fn broken_server() -> Server {
    use coinslot::{Price, PriceTable};
    let broken = axum::routing::get(|| async {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "index is down",
        )
    });
    let pricing = PriceTable::new().route("GET", "/broken", Price::sat(3));
    paywalled(pricing, axum::Router::new().route("/broken", broken)).await
}

fn mint(url: &str) -> MintUrl {
    url.parse().unwrap()
}

/// In-memory wallets holding `amount` sat from the server's mint.
async fn funded(url: &str, amount: u64) -> Wallets {
    let wallets = Wallets::in_memory(coinslot_tests::wallet::random_seed())
        .await
        .unwrap();
    let wallet = wallets.wallet(&mint(url), &CurrencyUnit::Sat).unwrap();
    coinslot_tests::wallet::topup(&wallet, amount)
        .await
        .unwrap();
    wallets
}

fn budget(per_request: u64, per_host_per_hour: u64) -> Budget {
    Budget::new().allow(
        CurrencyUnit::Sat,
        Limits {
            per_request: Some(per_request),
            per_host_per_hour: Some(per_host_per_hour),
            per_hour: Some(1000),
        },
    )
}

async fn balance(wallets: &Wallets, url: &str) -> u64 {
    wallets
        .balance(&mint(url), &CurrencyUnit::Sat)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_pays_by_itself_and_the_rest_stays_in_the_wallet() {
    let server = paid_search().await;
    let wallets = funded(&server.url, 20).await;
    let client = paying_client(&wallets, budget(5, 100), &server);

    let paid = client
        .get(&format!("{}/search?q=payment", server.url))
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);
    let payment = paid.payment.clone().expect("paid");
    assert_eq!((payment.price, payment.fee, payment.cost()), (2, 0, 2));
    let body: serde_json::Value = paid.response.json().await.unwrap();
    assert_eq!(body["paid"]["amount"], 2);
    assert!(!body["results"].as_array().unwrap().is_empty(), "{body}");
    assert_eq!(balance(&wallets, &server.url).await, 18, "the rest is kept");

    // Free routes cost nothing; a second search pays again.
    let free = client.get(&format!("{}/", server.url)).await.unwrap();
    assert!(free.payment.is_none());
    client
        .get(&format!("{}/search?q=nut", server.url))
        .await
        .unwrap();
    assert_eq!(balance(&wallets, &server.url).await, 16);
    assert_eq!(client.spent_last_hour(&CurrencyUnit::Sat), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_budget_untrusted_or_too_poor_spends_nothing() {
    let server = paid_search().await;
    let search = format!("{}/search?q=nut", server.url);
    let wallets = funded(&server.url, 20).await;

    let strict = paying_client(&wallets, budget(1, 100), &server);
    let err = strict.get(&search).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OverBudget(OverBudget::PerRequest {
                amount: 2,
                limit: 1,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(balance(&wallets, &server.url).await, 20);

    let hourly = paying_client(&wallets, budget(5, 3), &server);
    hourly.get(&search).await.unwrap();
    let err = hourly.get(&search).await.unwrap_err();
    assert!(err.to_string().contains("within an hour"), "{err}");
    assert_eq!(balance(&wallets, &server.url).await, 18);

    let stranger = PayingClient::new(
        reqwest::Client::new(),
        wallets.clone(),
        budget(5, 100),
        [mint("http://mint.other.example")],
    );
    let err = stranger.get(&search).await.unwrap_err();
    assert!(
        matches!(&err, Error::UntrustedMint(m) if m[0].starts_with(&server.url)),
        "{err}"
    );
    assert_eq!(balance(&wallets, &server.url).await, 18);

    let poor = funded(&server.url, 1).await;
    let client = paying_client(&poor, budget(5, 100), &server);
    let err = client.get(&search).await.unwrap_err();
    assert!(
        matches!(err, Error::InsufficientFunds { needed: 2, .. }),
        "{err}"
    );
    assert_eq!(balance(&poor, &server.url).await, 1);
    assert_eq!(client.spent_last_hour(&CurrencyUnit::Sat), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_refunds_into_the_wallet() {
    let server = broken_server().await;
    let wallets = funded(&server.url, 10).await;
    let client = paying_client(&wallets, budget(5, 100), &server);
    let paid = client.get(&format!("{}/broken", server.url)).await.unwrap();
    assert_eq!(paid.response.status(), 500);
    let payment = paid.payment.expect("paid");
    assert_eq!((payment.price, payment.returned, payment.cost()), (3, 3, 0));
    assert_eq!(balance(&wallets, &server.url).await, 10, "refund kept");
    assert_eq!(client.spent_last_hour(&CurrencyUnit::Sat), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepaid_session_is_opened_reused_and_closed() {
    let server = paid_search().await;
    let wallets = funded(&server.url, 20).await;
    let client = paying_client(&wallets, budget(10, 100), &server).with_sessions(10);

    for i in 0..3 {
        let paid = client
            .get(&format!("{}/search?q=nut", server.url))
            .await
            .unwrap();
        assert_eq!(paid.response.status(), 200, "search {i}");
        assert!(paid.via_session && paid.payment.is_none(), "search {i}");
        let body: serde_json::Value = paid.response.json().await.unwrap();
        assert_eq!(body["paid"]["session"], true);
    }
    // One deposit of 10 left the wallet; three searches took 6 of it.
    assert_eq!(balance(&wallets, &server.url).await, 10);
    assert_eq!(client.spent_last_hour(&CurrencyUnit::Sat), 10);
    assert_eq!(client.close_sessions().await, 4);
    assert_eq!(balance(&wallets, &server.url).await, 14);
    assert_eq!(client.spent_last_hour(&CurrencyUnit::Sat), 6);
    assert_eq!(client.close_sessions().await, 0, "nothing left open");

    // A deposit the budget does not allow: that request is paid on its own.
    let frugal = paying_client(&wallets, budget(5, 100), &server).with_sessions(50);
    let paid = frugal
        .get(&format!("{}/search?q=nut", server.url))
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);
    assert!(!paid.via_session);
    assert_eq!(paid.payment.map(|p| p.cost()), Some(2));
    assert_eq!(balance(&wallets, &server.url).await, 12);
}

/// A proxy in front of `upstream` that, once, forwards a paid request and then drops the
/// client's connection without the answer: the payment happened, the client never heard.
/// The answer it dropped is kept, for the test to compare.
async fn dropping_proxy(upstream: &str) -> (String, std::sync::Arc<Mutex<Option<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dropped = std::sync::Arc::new(Mutex::new(None));
    let flag = std::sync::Arc::clone(&dropped);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, flag) = (upstream.clone(), std::sync::Arc::clone(&flag));
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                // One request per connection: upstream closes after answering.
                let text = text.replacen("\r\n", "\r\nconnection: close\r\n", 1);
                let paid = text.to_lowercase().contains("x-cashu: cashu");
                let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                server.write_all(text.as_bytes()).await.unwrap();
                let mut response = Vec::new();
                server.read_to_end(&mut response).await.unwrap();
                if paid {
                    let mut lost = flag.lock().unwrap();
                    if lost.is_none() {
                        *lost = Some(response);
                        return; // processed and paid upstream; the answer is lost
                    }
                }
                let _ = client.write_all(&response).await;
            });
        }
    });
    (url, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_with_the_same_token_and_paid_once() {
    let server = paid_search().await;
    let (proxy, dropped) = dropping_proxy(&server.url).await;
    let wallets = funded(&server.url, 20).await;
    let client = paying_client(&wallets, budget(5, 100), &server);
    let paid = client.get(&format!("{proxy}/search?q=nut")).await.unwrap();
    let lost = dropped
        .lock()
        .unwrap()
        .clone()
        .expect("the answer was dropped");
    assert_eq!(paid.response.status(), 200);
    let body = paid.response.text().await.unwrap();
    // The retry got the answer that was lost (stored), not a second run of the handler.
    assert!(
        String::from_utf8_lossy(&lost).ends_with(&body),
        "not the lost answer: {body}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["paid"]["replay"], false, "{body}");
    assert_eq!(balance(&wallets, &server.url).await, 18, "paid once");
}

/// The client as a tower service: composes with tower middleware, answers `http` types,
/// and says what the request cost in the response's extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_tower_service_it_pays_and_reports_the_payment() {
    use tower::{ServiceBuilder, ServiceExt};
    let server = paid_search().await;
    let wallets = funded(&server.url, 10).await;
    let client = paying_client(&wallets, budget(5, 100), &server);
    let service = ServiceBuilder::new().concurrency_limit(4).service(client);
    let request = http::Request::get(format!("{}/search?q=nut", server.url))
        .body(Vec::<u8>::new())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let payment = response
        .extensions()
        .get::<coinslot_client::Payment>()
        .expect("payment reported");
    assert_eq!(payment.cost(), 2);
    assert_eq!(balance(&wallets, &server.url).await, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_scheme_is_paid_when_preferred() {
    let server = paid_search().await;
    let wallets = funded(&server.url, 10).await;
    let client =
        paying_client(&wallets, budget(5, 100), &server).prefer(coinslot_client::Binding::Payment);
    let paid = client
        .get(&format!("{}/search?q=payment", server.url))
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);
    let receipt = paid
        .response
        .headers()
        .get("payment-receipt")
        .expect("paid through the Payment scheme: a receipt")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        paid.response.headers().get("x-cashu").is_none(),
        "no change in this binding"
    );
    let payment = paid.payment.unwrap();
    assert_eq!((payment.price, payment.returned), (2, 0));
    assert_eq!(balance(&wallets, &server.url).await, 8);
    use base64::Engine as _;
    let receipt: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(receipt)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(receipt["method"], "cashu");

    // By default the same client pays NUT-24 (the answer has no receipt).
    let client = paying_client(&wallets, budget(5, 100), &server);
    let paid = client
        .get(&format!("{}/search?q=nut24", server.url))
        .await
        .unwrap();
    assert_eq!(paid.response.status(), 200);
    assert!(paid.response.headers().get("payment-receipt").is_none());
    assert_eq!(balance(&wallets, &server.url).await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_is_paid_with_the_payment_scheme_bound_to_its_digest() {
    use coinslot::{Price, PriceTable};
    let echo = axum::routing::post(|body: String| async move { body });
    let pricing = PriceTable::new().route("POST", "/echo", Price::sat(2));
    let server = paywalled(pricing, axum::Router::new().route("/echo", echo)).await;
    let wallets = funded(&server.url, 10).await;
    let client =
        paying_client(&wallets, budget(5, 100), &server).prefer(coinslot_client::Binding::Payment);
    let request = reqwest::Client::new()
        .post(format!("{}/echo", server.url))
        .body("{\"prompt\": \"a long question\"}")
        .build()
        .unwrap();
    let paid = client.execute(request).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    assert!(paid.response.headers().contains_key("payment-receipt"));
    assert_eq!(
        paid.response.text().await.unwrap(),
        "{\"prompt\": \"a long question\"}",
        "the handler got the body the client sent"
    );
    assert_eq!(balance(&wallets, &server.url).await, 8);
}
