//! The real cdk wallet (crate `cdk` 0.18, in-memory SQLite store) against a real coinslotd on
//! 127.0.0.1:0, over HTTP: top up, send/receive, double spend, checkstate, restore, P2PK,
//! NUT-20 locked quotes, and NUT-17 websocket notifications.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;
use std::time::Duration;

use cdk::amount::SplitTarget;
use cdk::nuts::nut17::NotificationPayload;
use cdk::nuts::{
    CurrencyUnit, MintQuoteState, PaymentMethod, SecretKey, SpendingConditions, State, Token,
};
use cdk::wallet::{ReceiveOptions, SendOptions, Wallet};
use cdk::Amount;
use coinslot_tests::raw::{error_code, RawClient};
use coinslot_tests::TestServer;
use futures::{SinkExt, StreamExt};

async fn wallet(url: &str, seed: [u8; 64]) -> Wallet {
    let store = cdk_sqlite::wallet::memory::empty().await.unwrap();
    Wallet::new(url, CurrencyUnit::Sat, Arc::new(store), seed, None).unwrap()
}

fn seed() -> [u8; 64] {
    let mut seed = [0u8; 64];
    for byte in &mut seed {
        *byte = rand::random();
    }
    seed
}

/// Quote, wait until paid, mint; returns the minted amount.
async fn topup(wallet: &Wallet, amount: u64) -> u64 {
    let quote = wallet
        .mint_quote(
            PaymentMethod::BOLT11,
            Some(Amount::from(amount)),
            None,
            None,
        )
        .await
        .unwrap();
    for _ in 0..100 {
        let state = wallet.check_mint_quote_status(&quote.id).await.unwrap();
        if state.state == MintQuoteState::Paid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let proofs = wallet
        .mint(&quote.id, SplitTarget::default(), None)
        .await
        .unwrap();
    proofs.iter().map(|p| u64::from(p.amount)).sum()
}

async fn send(wallet: &Wallet, amount: u64, opts: SendOptions) -> Token {
    wallet
        .prepare_send(Amount::from(amount), opts)
        .await
        .unwrap()
        .confirm(None)
        .await
        .unwrap()
}

async fn balance(wallet: &Wallet) -> u64 {
    u64::from(wallet.total_balance().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_up_send_receive_and_double_spend() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let alice = wallet(&server.url, seed()).await;
    let bob = wallet(&server.url, seed()).await;
    let carol = wallet(&server.url, seed()).await;

    assert_eq!(topup(&alice, 100).await, 100);
    assert_eq!(balance(&alice).await, 100);

    let token = send(&alice, 21, SendOptions::default()).await;
    let encoded = token.to_string();
    assert!(encoded.starts_with("cashuB"), "cdk sends cashuB tokens");
    assert_eq!(balance(&alice).await, 79);

    let received = bob
        .receive(&encoded, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(u64::from(received), 21);
    assert_eq!(balance(&bob).await, 21);

    // The same token again, by someone else: refused as already spent.
    let again = carol.receive(&encoded, ReceiveOptions::default()).await;
    assert!(again.is_err(), "a spent token was received twice");
    assert_eq!(balance(&carol).await, 0);

    // Raw swap of the spent proofs: 400 with code 11001.
    let client = RawClient::new(&server.url);
    let (_, keysets) = client.get("/v1/keysets").await.unwrap();
    let keysets: cdk::nuts::KeysetResponse = serde_json::from_value(keysets).unwrap();
    let spent = token.proofs(&keysets.keysets).unwrap();
    let (status, body, _) = client.swap(spent.clone()).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11001)), "{body}");

    // NUT-07 through the wallet: spent.
    let states = bob.check_proofs_spent(spent).await.unwrap();
    assert!(states.iter().all(|s| s.state == State::Spent), "{states:?}");
    // Bob's fresh proofs are unspent.
    let fresh = bob.get_unspent_proofs().await.unwrap();
    let states = bob.check_proofs_spent(fresh).await.unwrap();
    assert!(
        states.iter().all(|s| s.state == State::Unspent),
        "{states:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_restores_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let seed = seed();
    let original = wallet(&server.url, seed).await;
    topup(&original, 64).await;
    let token = send(&original, 10, SendOptions::default()).await;
    let other = wallet(&server.url, self::seed()).await;
    other
        .receive(&token.to_string(), ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(balance(&original).await, 54);

    // Same seed, empty database: NUT-09 restore finds exactly the unspent 54.
    let restored = wallet(&server.url, seed).await;
    assert_eq!(balance(&restored).await, 0);
    restored.restore().await.unwrap();
    assert_eq!(balance(&restored).await, 54);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2pk_locked_send_only_the_right_key_receives() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let alice = wallet(&server.url, seed()).await;
    let bob = wallet(&server.url, seed()).await;
    topup(&alice, 50).await;

    let bob_key = SecretKey::generate();
    let mallory_key = SecretKey::generate();
    let opts = SendOptions {
        conditions: Some(SpendingConditions::new_p2pk(bob_key.public_key(), None)),
        ..SendOptions::default()
    };
    let token = send(&alice, 20, opts).await.to_string();

    let wrong = bob
        .receive(
            &token,
            ReceiveOptions {
                p2pk_signing_keys: vec![mallory_key],
                ..ReceiveOptions::default()
            },
        )
        .await;
    assert!(
        wrong.is_err(),
        "a P2PK token was received with the wrong key"
    );
    let unsigned = bob.receive(&token, ReceiveOptions::default()).await;
    assert!(
        unsigned.is_err(),
        "a P2PK token was received without a signature"
    );
    assert_eq!(balance(&bob).await, 0);

    let received = bob
        .receive(
            &token,
            ReceiveOptions {
                p2pk_signing_keys: vec![bob_key],
                ..ReceiveOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        u64::from(received),
        20,
        "the locked token stayed spendable for its owner"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nut20_locked_quote_needs_its_signature() {
    use coinslot_mint::cashu::nuts::MintRequest;

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let alice = wallet(&server.url, seed()).await;
    let client = RawClient::new(&server.url);

    // cdk locks its quotes to a fresh key when the mint supports NUT-20.
    let quote = alice
        .mint_quote(PaymentMethod::BOLT11, Some(Amount::from(16)), None, None)
        .await
        .unwrap();
    let (_, stored) = client
        .get(&format!("/v1/mint/quote/bolt11/{}", quote.id))
        .await
        .unwrap();
    assert!(
        stored["pubkey"].is_string(),
        "quote is not locked: {stored}"
    );

    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let outputs = RawClient::outputs(&keyset, 16).unwrap().blinded_messages();
    let mut request = MintRequest {
        quote: quote.id.clone(),
        outputs,
        signature: None,
    };
    let (status, body) = client.post("/v1/mint/bolt11", &request).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(20008)), "{body}");
    request.sign(&SecretKey::generate()).unwrap();
    let (status, body) = client.post("/v1/mint/bolt11", &request).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(20008)), "{body}");

    // The wallet holding the key mints it.
    let proofs = alice
        .mint(&quote.id, SplitTarget::default(), None)
        .await
        .unwrap();
    assert_eq!(proofs.iter().map(|p| u64::from(p.amount)).sum::<u64>(), 16);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_notifies_when_a_quote_is_paid() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = coinslotd::BackendConfig::Fake(coinslot_mint::FakeBackendConfig {
        pay_after_ms: Some(400),
    });
    let server = TestServer::start_with(config).await.unwrap();
    let alice = wallet(&server.url, seed()).await;
    let quote = alice
        .mint_quote(PaymentMethod::BOLT11, Some(Amount::from(8)), None, None)
        .await
        .unwrap();
    assert_eq!(quote.state, MintQuoteState::Unpaid);

    // Raw NUT-17 client: subscribe, get the current state, then the change.
    let ws_url = format!("{}/v1/ws", server.url.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let subscribe = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "subscribe",
        "params": {"kind": "bolt11_mint_quote", "subId": "s1", "filters": [quote.id]},
    });
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            subscribe.to_string().into(),
        ))
        .await
        .unwrap();
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !states.contains(&"PAID".to_string()) {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("no PAID notification within 10 s")
            .unwrap()
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if value["id"] == 1 {
            assert_eq!(value["result"]["status"], "OK", "{value}");
            continue;
        }
        assert_eq!(value["params"]["subId"], "s1", "{value}");
        states.push(
            value["params"]["payload"]["state"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        states.first().map(String::as_str),
        Some("UNPAID"),
        "current state first"
    );

    // And cdk's own subscription sees the quote as paid.
    let mut sub = alice
        .subscribe_mint_quote_state(vec![quote.id.clone()], PaymentMethod::BOLT11)
        .await
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("cdk subscription timed out")
        .expect("subscription closed");
    match event.into_inner() {
        NotificationPayload::MintQuoteBolt11Response(response) => {
            assert_eq!(response.state, MintQuoteState::Paid);
        }
        other => panic!("unexpected notification {other:?}"),
    }
    server.stop().await.unwrap();
}
