//! The layer on a plain tower service (no axum): it gets the client's body type wrapped
//! in the layer's `RequestBody`, and answers with its own response body type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use coinslot_layer::{PaywallLayer, Price, PriceTable, RequestBody};
use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};

async fn mint() -> Mint {
    Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        Arc::new(MemoryStore::new()),
        Arc::new(FakeBackend::new(Default::default())),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn wraps_any_tower_service_with_its_own_body_types() {
    let pricing = PriceTable::new()
        .free("GET", "/")
        .route("GET", "/paid", Price::sat(3))
        .route("POST", "/paid", Price::sat(3));
    let service = ServiceBuilder::new()
        .layer(PaywallLayer::new(mint().await, "http://127.0.0.1:1", pricing).unwrap())
        .service(service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        }));

    let free = service
        .clone()
        .oneshot(Request::get("/").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(free.status(), StatusCode::OK);
    assert_eq!(
        free.into_body().collect().await.unwrap().to_bytes(),
        "inner"
    );

    let unpaid = service
        .clone()
        .oneshot(Request::get("/paid").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(unpaid.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(unpaid
        .headers()
        .get("x-cashu")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("creqA")));
    let body = unpaid.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (body["amount"].as_u64(), body["unit"].as_str()),
        (Some(3), Some("sat"))
    );

    // A body: the Payment challenge is bound to it (RFC 9530 digest).
    let posted = service
        .oneshot(
            Request::post("/paid")
                .body(Full::new(Bytes::from_static(b"{\"q\":\"x\"}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::PAYMENT_REQUIRED);
    let challenge = posted
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("Payment "))
        .unwrap()
        .to_string();
    let expected = coinslot_layer::paymentauth::content_digest(b"{\"q\":\"x\"}");
    assert!(expected.starts_with("sha-256=:") && expected.ends_with(':'));
    assert!(
        challenge.contains(&format!("digest=\"{expected}\"")),
        "{challenge}"
    );
}

/// A plain `cashuB` token is paid with its `C` left encoded (the mint compares the bytes it
/// expects): a forged `C` is a Cashu `400` that spends nothing, and the real token then pays.
#[tokio::test]
async fn a_plain_token_with_a_forged_signature_is_refused_and_spends_nothing() {
    use coinslot_mint::cashu::nuts::{CurrencyUnit, Token};
    let mint = mint().await;
    let url = "http://127.0.0.1:1";
    let pricing = PriceTable::new().route("GET", "/paid", Price::sat(1));
    let service = ServiceBuilder::new()
        .layer(PaywallLayer::new(mint.clone(), url, pricing).unwrap())
        .service(service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        }));
    let sat = CurrencyUnit::Sat;
    let proofs = mint.make_proofs(&sat, 1).await.unwrap();
    let other = mint.make_proofs(&sat, 1).await.unwrap();
    let token = |proofs| Token::new(url.parse().unwrap(), proofs, None, sat.clone()).to_string();
    let mut forged = proofs.clone();
    forged[0].c = other[0].c;
    let pay = |token: String| {
        service.clone().oneshot(
            Request::get("/paid")
                .header("x-cashu", token)
                .body(Full::default())
                .unwrap(),
        )
    };

    let refused = pay(token(forged)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"].as_u64(), Some(10001), "{body}");
    assert!(body["detail"].as_str().is_some(), "{body}");

    let paid = pay(token(proofs)).await.unwrap();
    assert_eq!(
        paid.status(),
        StatusCode::OK,
        "the refusal spent the proofs"
    );
}
