//! The mint's nostr side against a real relay (rust-nostr's relay builder) on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
use coinslot_nostr::nip74::{self, Method};
use coinslot_nostr::nip87::{Recommendation, MINT_RECOMMENDATION};
use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_nostr::{
    discover, ClientError, Discover, MintClient, MintIdentity, NostrConfig, NostrService,
    Responder, ResponderLimits,
};
use nostr_relay_builder::prelude::*;
use serde_json::json;

async fn relay() -> (LocalRelay, String) {
    let builder = RelayBuilder::default()
        .addr("127.0.0.1".parse().unwrap())
        .rate_limit(RateLimit {
            max_reqs: 500,
            notes_per_minute: 100_000,
        });
    let relay = LocalRelay::new(builder);
    relay.run().await.unwrap();
    let url = relay.url().await.to_string();
    (relay, url)
}

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

async fn start(mint: &Mint, relays: Vec<String>) -> NostrService {
    let identity = MintIdentity::of(mint, vec!["https://mint.example".into()], "regtest").unwrap();
    let http = coinslot_http::router(mint.clone(), Default::default());
    let config = NostrConfig {
        relays,
        ..NostrConfig::default()
    };
    NostrService::start(identity, http, config).await.unwrap()
}

fn mint_key(mint: &Mint) -> PublicKey {
    PublicKey::from_hex(&mint.pubkey().to_hex()[2..]).unwrap()
}

/// Polls `check` until it returns `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s: {what}");
}

#[tokio::test]
async fn the_announcement_is_found_by_author_and_by_recommendation() {
    let (_relay, url) = relay().await;
    let mint = mint().await;
    let service = start(&mint, vec![url.clone()]).await;
    let me = mint_key(&mint);

    let client = coinslot_nostr::connect([&url]).await.unwrap();
    let found = eventually("the announcement is found", || async {
        let found = discover(&client, Discover::Author(me), Duration::from_secs(2))
            .await
            .unwrap();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(found.len(), 1);
    let announced = &found[0];
    assert!(announced.self_signed);
    assert_eq!(announced.announcement.mint_pubkey, mint.pubkey().to_hex());
    assert_eq!(announced.announcement.urls, vec!["https://mint.example"]);
    assert_eq!(announced.announcement.network, "regtest");
    for nut in [1, 2, 3, 4, 6, 7] {
        assert!(
            announced.announcement.nuts.contains(&nut),
            "NUT-{nut} missing"
        );
    }
    assert!(
        !announced.announcement.nuts.contains(&5),
        "melt is disabled"
    );

    // A fan recommends the mint; the service reads it back, and discovery by
    // recommendation finds the mint.
    let fan = Keys::generate();
    let recommendation = Recommendation {
        mint_pubkey: mint.pubkey().to_hex(),
        urls: vec!["https://mint.example".into()],
        announcement: Some(announced.announcement.coordinate(me)),
        relay_hint: Some(url.clone()),
        comment: "honest arcade".into(),
    };
    let event = recommendation.to_builder().sign_with_keys(&fan).unwrap();
    client.send_event(&event).await.unwrap();
    let report = eventually("the recommendation is read", || async {
        let report = service.report().await;
        (!report.recommendations.is_empty()).then_some(report)
    })
    .await;
    assert_eq!(report.recommendations[0].comment, "honest arcade");
    assert_eq!(
        report.recommendations[0].author,
        fan.public_key().to_bech32().unwrap()
    );
    assert!(report.relays[&url].published_at.is_some());
    let by_fan = discover(
        &client,
        Discover::RecommendedBy(fan.public_key()),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(by_fan.len(), 1);
    assert_eq!(by_fan[0].author, me);

    // A recommendation of some other mint is not this mint's.
    let other = Recommendation {
        mint_pubkey: format!("02{}", Keys::generate().public_key().to_hex()),
        urls: vec![],
        announcement: None,
        relay_hint: None,
        comment: "not you".into(),
    };
    let stranger = Keys::generate();
    client
        .send_event(&other.to_builder().sign_with_keys(&stranger).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = service.report().await;
    assert_eq!(report.recommendations.len(), 1);
    assert!(
        client
            .fetch_events(
                Filter::new().kind(MINT_RECOMMENDATION),
                Duration::from_secs(2)
            )
            .await
            .unwrap()
            .len()
            >= 2
    );
    service.shutdown().await;
}

#[tokio::test]
async fn a_reannouncement_replaces_the_old_event() {
    let (_relay, url) = relay().await;
    let mint = mint().await;
    let service = start(&mint, vec![url.clone()]).await;
    let first = eventually("the first announcement", || async {
        service.published().first().cloned()
    })
    .await;
    service.reannounce();
    let second = eventually("the second announcement", || async {
        service
            .published()
            .into_iter()
            .find(|event| event.created_at > first.created_at)
    })
    .await;
    let client = coinslot_nostr::connect([&url]).await.unwrap();
    let stored = eventually("the relay holds the second", || async {
        let events = client
            .fetch_events(
                Filter::new().author(mint_key(&mint)).kind(first.kind),
                Duration::from_secs(2),
            )
            .await
            .unwrap();
        events
            .first()
            .filter(|event| event.id == second.id)
            .map(|_| events.len())
    })
    .await;
    assert_eq!(stored, 1, "the relay keeps only the newest announcement");
    service.shutdown().await;
}

#[tokio::test]
async fn mint_operations_over_nostr_give_the_http_answers() {
    let (_relay, url) = relay().await;
    let mint = mint().await;
    let service = start(&mint, vec![url.clone()]).await;
    let client = MintClient::connect([&url], mint_key(&mint))
        .await
        .unwrap()
        .timeout(Duration::from_secs(10));

    let info = client.call(Method::Info, json!({})).await.unwrap();
    assert_eq!(info["pubkey"], json!(mint.pubkey().to_hex()));
    let keysets = client.call(Method::Keysets, json!({})).await.unwrap();
    let id = keysets["keysets"][0]["id"].as_str().unwrap().to_string();
    let keys = client
        .call(Method::Keys, json!({ "keyset_id": id }))
        .await
        .unwrap();
    assert_eq!(keys["keysets"][0]["id"], json!(id));

    let quote = client
        .call(Method::MintQuote, json!({ "amount": 8, "unit": "sat" }))
        .await
        .unwrap();
    assert!(quote["request"].as_str().unwrap().starts_with("lnbc"));
    let state = client
        .call(Method::MintQuoteState, json!({ "quote": quote["quote"] }))
        .await
        .unwrap();
    assert_eq!(state["quote"], quote["quote"]);

    // Refusals carry the same Cashu codes as over HTTP.
    let melt = client.call(Method::MeltQuote, json!({})).await.unwrap_err();
    let ClientError::Mint { code, .. } = melt else {
        panic!("{melt:?}")
    };
    let http = coinslot_http::router(mint.clone(), Default::default());
    let over_http = tower::ServiceExt::oneshot(
        http,
        http::Request::post("/v1/melt/quote/bolt11")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap(),
    )
    .await
    .unwrap();
    let body = http_body_util::BodyExt::collect(over_http.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, body["code"].to_string());
    let swap = client
        .call(Method::Swap, json!({ "inputs": [], "outputs": [] }))
        .await
        .unwrap_err();
    assert!(matches!(swap, ClientError::Mint { .. }), "{swap:?}");

    let report = service.report().await;
    assert_eq!(report.requests_answered, 7);

    // A request the mint never sees (another mint's key) times out instead of answering.
    let elsewhere = MintClient::connect([&url], Keys::generate().public_key())
        .await
        .unwrap()
        .timeout(Duration::from_millis(800));
    assert!(matches!(
        elsewhere.call(Method::Info, json!({})).await,
        Err(ClientError::Timeout(_))
    ));
    service.shutdown().await;
}

/// A fresh mint, its nostr keys and a responder for it.
async fn responder(limits: ResponderLimits) -> (Mint, Keys, Responder) {
    let mint = mint().await;
    let keys = Keys::new(SecretKey::from_slice(&mint.identity_key().to_secret_bytes()).unwrap());
    let router = coinslot_http::router(mint.clone(), Default::default());
    (mint, keys.clone(), Responder::new(keys, router, limits))
}

/// Builds a request event from `client` to `mint` with `content` as the plaintext.
fn request(client: &Keys, mint: PublicKey, plain: &str, at: Timestamp) -> Event {
    let content = nip44::encrypt(client.secret_key(), &mint, plain, nip44::Version::V2).unwrap();
    EventBuilder::new(nip74::REQUEST, content)
        .tag(Tag::public_key(mint))
        .custom_created_at(at)
        .sign_with_keys(client)
        .unwrap()
}

#[tokio::test]
async fn the_responder_ignores_replays_strangers_stale_and_garbage() {
    use coinslot_nostr::Ignored;
    let (mint, keys, responder) = responder(ResponderLimits::default()).await;
    let wallet = Keys::generate();
    let info = r#"{"method":"info","request_id":"1","data":{}}"#;
    let now = Timestamp::now();

    let event = request(&wallet, keys.public_key(), info, now);
    let result = responder.answer(&event).await.unwrap();
    assert_eq!(result.kind, nip74::RESULT);
    assert!(result
        .tags
        .public_keys()
        .any(|pk| *pk == wallet.public_key()));
    assert!(result.tags.event_ids().any(|id| *id == event.id));
    let plain = nip44::decrypt(wallet.secret_key(), &keys.public_key(), &result.content).unwrap();
    let response: nip74::Response = serde_json::from_str(&plain).unwrap();
    assert_eq!(response.status, nip74::Status::Success);
    assert_eq!(
        response.data.unwrap()["pubkey"],
        json!(mint.pubkey().to_hex())
    );

    assert_eq!(
        responder.answer(&event).await.unwrap_err(),
        Ignored::Duplicate
    );
    let other_mint = Keys::generate().public_key();
    let stranger = request(&wallet, other_mint, info, now);
    assert_eq!(
        responder.answer(&stranger).await.unwrap_err(),
        Ignored::NotForUs
    );
    let old = request(
        &wallet,
        keys.public_key(),
        info,
        Timestamp::from_secs(now.as_secs() - 3600),
    );
    assert_eq!(responder.answer(&old).await.unwrap_err(), Ignored::Stale);
    let future = request(
        &wallet,
        keys.public_key(),
        info,
        Timestamp::from_secs(now.as_secs() + 3600),
    );
    assert_eq!(responder.answer(&future).await.unwrap_err(), Ignored::Stale);
    let garbage = request(&wallet, keys.public_key(), "{not json", now);
    assert!(matches!(
        responder.answer(&garbage).await,
        Err(Ignored::Garbage(_))
    ));
    let unencrypted = EventBuilder::new(nip74::REQUEST, info)
        .tag(Tag::public_key(keys.public_key()))
        .sign_with_keys(&wallet)
        .unwrap();
    assert!(matches!(
        responder.answer(&unencrypted).await,
        Err(Ignored::Garbage(_))
    ));
    let huge = EventBuilder::new(nip74::REQUEST, "x".repeat(200_000))
        .tag(Tag::public_key(keys.public_key()))
        .sign_with_keys(&wallet)
        .unwrap();
    assert!(matches!(
        responder.answer(&huge).await,
        Err(Ignored::TooLarge(_))
    ));
    let mut forged = request(&wallet, keys.public_key(), info, now);
    forged.content = request(&wallet, keys.public_key(), info, now).content;
    assert_eq!(
        responder.answer(&forged).await.unwrap_err(),
        Ignored::BadSignature
    );

    // An unknown method from a genuine client gets an error result, not silence.
    let unknown = request(
        &wallet,
        keys.public_key(),
        r#"{"method":"mint_quote_state","request_id":"2","data":{}}"#,
        now,
    );
    let result = responder.answer(&unknown).await.unwrap();
    let plain = nip44::decrypt(wallet.secret_key(), &keys.public_key(), &result.content).unwrap();
    let response: nip74::Response = serde_json::from_str(&plain).unwrap();
    assert_eq!(response.error.unwrap().code, "bad_request");
}

#[tokio::test]
async fn the_responder_limits_requests_per_pubkey_and_per_minute() {
    use coinslot_nostr::Ignored;
    let (_mint, keys, responder) = responder(ResponderLimits {
        per_pubkey_per_minute: 3,
        per_minute: 5,
        ..ResponderLimits::default()
    })
    .await;
    let info = |n: usize| format!(r#"{{"method":"info","request_id":"{n}","data":{{}}}}"#);
    let now = Timestamp::now();
    let (busy, other, third) = (Keys::generate(), Keys::generate(), Keys::generate());
    for n in 0..3 {
        let event = request(&busy, keys.public_key(), &info(n), now);
        assert!(responder.answer(&event).await.is_ok(), "request {n}");
    }
    // The fourth request of the minute from the same pubkey gets no answer...
    let over = request(&busy, keys.public_key(), &info(3), now);
    assert_eq!(
        responder.answer(&over).await.unwrap_err(),
        Ignored::RateLimited
    );
    // ...while another pubkey is answered, until the mint's total for the minute is reached
    // (3 + 2 = 5).
    for n in 0..2 {
        let event = request(&other, keys.public_key(), &info(10 + n), now);
        assert!(responder.answer(&event).await.is_ok(), "other {n}");
    }
    let fresh = request(&third, keys.public_key(), &info(20), now);
    assert_eq!(
        responder.answer(&fresh).await.unwrap_err(),
        Ignored::RateLimited
    );
    // A forged event in the busy pubkey's name is refused before it could use any allowance.
    let mut forged = request(&busy, keys.public_key(), &info(30), now);
    forged.content = request(&busy, keys.public_key(), &info(31), now).content;
    assert_eq!(
        responder.answer(&forged).await.unwrap_err(),
        Ignored::BadSignature
    );
}

#[tokio::test]
async fn a_relay_that_is_down_at_start_gets_the_announcement_when_it_comes_up() {
    // Reserve a port, free it, and start the relay there only after the service.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let mint = mint().await;
    let service = start(&mint, vec![url.clone()]).await;
    let report = eventually("a failed attempt", || async {
        let report = service.report().await;
        let relay = report.relays.get(&url)?;
        (relay.failures >= 1).then_some(report)
    })
    .await;
    assert!(report.relays[&url].published_at.is_none());
    assert!(report.relays[&url].last_error.is_some());

    let relay = LocalRelay::new(
        RelayBuilder::default()
            .addr("127.0.0.1".parse().unwrap())
            .port(port),
    );
    relay.run().await.unwrap();
    let client = coinslot_nostr::connect([&url]).await.unwrap();
    let me = mint_key(&mint);
    eventually("the announcement reaches the late relay", || async {
        let found = discover(&client, Discover::Author(me), Duration::from_secs(1))
            .await
            .ok()?;
        (!found.is_empty()).then_some(())
    })
    .await;
    // The subscriptions came back with the connection: requests are answered.
    let mint_client = MintClient::connect([&url], me)
        .await
        .unwrap()
        .timeout(Duration::from_secs(10));
    let info = mint_client.call(Method::Info, json!({})).await.unwrap();
    assert_eq!(info["pubkey"], json!(mint.pubkey().to_hex()));
    service.shutdown().await;
}
