//! The `mpp` crate (mpp-rs, the Rust SDK of the HTTP Payment scheme) and Coinslot, with
//! `coinslot-mpp`'s cashu method on both sides: an unmodified mpp-rs client (reqwest with
//! `send_with_payment`) paying the Coinslot paywall, and an mpp-rs server taking cashu with
//! `CashuCharge`, redeeming at a Coinslot mint. Real cdk wallets, real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking
// mpp-rs's payment flow is one deeply nested future.
#![recursion_limit = "256"]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cdk::nuts::CurrencyUnit;
use coinslot_mpp::{CashuCharge, CashuPayload, CashuProvider};
use coinslot_tests::paywall::{PaidApp, PaidAppOptions};
use coinslot_tests::wallet::{self, new_wallet};
use mpp::client::Fetch;
use mpp::server::Mpp;
use mpp::{PaymentCredential, Receipt};

const SECRET: &str = "a test secret of at least thirty-two bytes";

/// GET `url` with mpp-rs's reqwest extension, paying with `provider`.
async fn pay_get(url: &str, provider: &CashuProvider) -> Result<reqwest013::Response> {
    Ok(reqwest013::Client::new()
        .get(url)
        .header("accept-payment", "cashu/charge")
        .send_with_payment(provider)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mpp_rs_client_pays_the_coinslot_paywall() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let provider = CashuProvider::new([wallet.clone()]).max_amount(10);

    let response = pay_get(&format!("{}/search?q=mpp", app.url), &provider).await?;
    assert_eq!(response.status().as_u16(), 200);
    let receipt = response
        .headers()
        .get("payment-receipt")
        .expect("a receipt")
        .to_str()?
        .to_string();
    let receipt = Receipt::from_header(&receipt)?;
    assert!(receipt.is_success());
    assert_eq!(receipt.method.as_str(), "cashu");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["q"], "mpp");
    assert_eq!(body["paid"]["amount"], 2, "{body}");
    assert_eq!(wallet::balance(&wallet).await?, 18, "exactly the price");
    // mpp's flow committed the accepted payment: nothing is left to reclaim.
    assert_eq!(provider.outstanding(), 0);
    assert_eq!(provider.reclaim().await, 0);
    assert_eq!(wallet::balance(&wallet).await?, 18);

    // A charge above the cap is declined before any ecash leaves the wallet.
    let capped = CashuProvider::new([wallet.clone()]).max_amount(1);
    let declined = pay_get(&format!("{}/search?q=cap", app.url), &capped).await;
    assert!(declined.is_err(), "a 2-sat charge paid under a 1-sat cap");
    assert_eq!(capped.outstanding(), 0);
    assert_eq!(wallet::balance(&wallet).await?, 18);
    Ok(())
}

/// mpp-rs's client with Coinslot's provider pays the example search API (its own embedded
/// mint), as an agent would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mpp_rs_client_pays_examples_paid_search() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = paid_search::spawn_on_loopback(dir.path()).await?;
    let wallet = wallet::funded(&url, 10).await?;
    let provider = CashuProvider::new([wallet.clone()]).max_amount(5);
    let response = pay_get(&format!("{url}/search?q=ecash"), &provider).await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("payment-receipt"));
    let spent = 10 - wallet::balance(&wallet).await?;
    let body: serde_json::Value = response.json().await?;
    assert!(body.to_string().contains("ecash"), "{body}");
    assert!(spent > 0 && spent <= 5, "paid {spent}");
    Ok(())
}

/// An mpp-rs server selling `/report` for `price` sat through `CashuCharge`.
#[derive(Clone)]
struct Shop {
    mpp: Mpp<CashuCharge>,
    method: CashuCharge,
    /// What a challenge asks (may change between the challenge and the payment).
    asked: Arc<AtomicU64>,
    /// What a payment must be worth.
    price: Arc<AtomicU64>,
}

impl Shop {
    fn request(&self, amount: u64) -> mpp::ChargeRequest {
        self.method
            .charge_request(amount, &CurrencyUnit::Sat)
            .expect("a wallet in sat")
    }

    fn challenge(&self) -> Response {
        let asked = self.asked.load(Ordering::SeqCst);
        let challenge = coinslot_mpp::method::challenge(
            SECRET,
            "shop.test",
            &self.request(asked),
            Duration::from_secs(60),
        )
        .unwrap();
        let value = mpp::format_www_authenticate(&challenge).unwrap();
        (
            StatusCode::PAYMENT_REQUIRED,
            [
                ("www-authenticate", value),
                ("cache-control", "no-store".into()),
            ],
            "payment required",
        )
            .into_response()
    }
}

async fn report(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let Some(credential) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| mpp::parse_authorization(v).ok())
    else {
        return shop.challenge();
    };
    let expected = shop.request(shop.price.load(Ordering::SeqCst));
    match shop
        .mpp
        .verify_credential_with_expected_request(&credential, &expected)
        .await
    {
        Ok(receipt) => (
            [("payment-receipt", receipt.to_header().unwrap())],
            "the report",
        )
            .into_response(),
        Err(err) => {
            // The fresh challenge asks what a payment must now be worth.
            shop.asked
                .store(shop.price.load(Ordering::SeqCst), Ordering::SeqCst);
            let mut refused = shop.challenge();
            *refused.body_mut() = axum::body::Body::from(err.message);
            refused
        }
    }
}

/// Serves the shop on 127.0.0.1:0; returns its `/report` URL.
async fn serve(shop: Shop) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/report", get(report)).with_state(shop);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/report"))
}

/// A shop whose takings go into a wallet of the paid app's mint.
async fn shop(app: &PaidApp, price: u64) -> Result<(Shop, cdk::wallet::Wallet)> {
    let takings = new_wallet(&app.url, wallet::random_seed()).await?;
    let method = CashuCharge::new([takings.clone()]);
    let shop = Shop {
        mpp: Mpp::new(method.clone(), "shop.test", SECRET),
        method,
        asked: Arc::new(AtomicU64::new(price)),
        price: Arc::new(AtomicU64::new(price)),
    };
    Ok((shop, takings))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mpp_rs_server_takes_cashu_through_cashu_charge() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let (shop, takings) = shop(&app, 2).await?;
    let url = serve(shop.clone()).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let provider = CashuProvider::new([wallet.clone()]);

    let response = pay_get(&url, &provider).await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("payment-receipt"));
    assert_eq!(response.text().await?, "the report");
    assert_eq!(wallet::balance(&wallet).await?, 18);
    assert_eq!(
        wallet::balance(&takings).await?,
        2,
        "the shop holds the ecash"
    );

    // By hand: one credential, sent twice. The mint makes it pay once.
    let asked = reqwest013::get(&url).await?;
    assert_eq!(asked.status().as_u16(), 402);
    let challenge =
        mpp::parse_www_authenticate(asked.headers().get("www-authenticate").unwrap().to_str()?)?;
    let paying = wallet::token(&wallet, 2).await?;
    let credential = PaymentCredential::new(
        challenge.to_echo(),
        CashuPayload {
            cashu_token: paying.clone(),
        },
    );
    let authorization = mpp::format_authorization(&credential)?;
    let send = || {
        reqwest013::Client::new()
            .get(&url)
            .header("authorization", &authorization)
            .send()
    };
    assert_eq!(send().await?.status().as_u16(), 200);
    let again = send().await?;
    assert_eq!(again.status().as_u16(), 402);
    assert!(again.text().await?.contains("spent"));
    assert_eq!(wallet::balance(&takings).await?, 4);

    // A token worth more than the charge is refused before the swap and stays the payer's.
    let over = wallet::token(&wallet, 3).await?;
    let credential = PaymentCredential::new(
        challenge.to_echo(),
        CashuPayload {
            cashu_token: over.clone(),
        },
    );
    let refused = reqwest013::Client::new()
        .get(&url)
        .header("authorization", mpp::format_authorization(&credential)?)
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 402);
    assert!(refused.text().await?.contains("exactly"));
    assert!(
        wallet::unspent(&wallet, &over).await?,
        "the refused token was spent"
    );
    assert_eq!(wallet::balance(&takings).await?, 4);
    Ok(())
}

/// Coinslot's own client (`coinslot-client`, preferring the Payment scheme) pays an mpp-rs
/// server that takes cashu through `CashuCharge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinslot_s_client_pays_an_mpp_rs_server() -> Result<()> {
    use coinslot_client::{Binding, Budget, Limits, PayingClient, Wallets};
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let (shop, takings) = shop(&app, 2).await?;
    let url = serve(shop).await?;
    let mint: cdk::mint_url::MintUrl = app.url.parse()?;
    let wallets = Wallets::in_memory(wallet::random_seed()).await?;
    let held = wallets.wallet(&mint, &CurrencyUnit::Sat)?;
    wallet::topup(&held, 20).await?;
    let limits = Limits {
        per_request: Some(5),
        per_host_per_hour: Some(50),
        per_hour: Some(50),
    };
    let budget = Budget::new().allow(CurrencyUnit::Sat, limits);
    let client = PayingClient::new(
        reqwest::Client::new(),
        wallets.clone(),
        budget,
        [mint.clone()],
    )
    .prefer(Binding::Payment);
    let paid = client.get(&url).await?;
    assert_eq!(paid.response.status().as_u16(), 200);
    assert_eq!(paid.payment.as_ref().map(|p| p.price), Some(2));
    assert_eq!(paid.response.text().await?, "the report");
    assert_eq!(wallet::balance(&takings).await?, 2);
    assert_eq!(wallets.balance(&mint, &CurrencyUnit::Sat).await?, 18);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_the_server_refuses_comes_back_to_the_wallet() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    // The price went up between the challenge and the payment: the first credential (2)
    // is refused, the fresh challenge (3) is paid.
    let (shop, takings) = shop(&app, 3).await?;
    shop.asked.store(2, Ordering::SeqCst);
    let url = serve(shop).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let provider = CashuProvider::new([wallet.clone()]);

    let response = pay_get(&url, &provider).await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(wallet::balance(&takings).await?, 3);
    // Two tokens went out (2, refused; 3, taken): mpp's flow rolled the refused one back,
    // which took it back into the wallet, and committed the other.
    assert_eq!(provider.outstanding(), 0);
    assert_eq!(
        wallet::balance(&wallet).await?,
        17,
        "the refused 2 sat came back"
    );
    assert_eq!(provider.reclaim().await, 0);
    Ok(())
}
