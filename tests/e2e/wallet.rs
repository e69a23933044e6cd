//! End-to-end tests: a real `coinslotd` (via `coinslot_tests::TestServer`) and
//! real cdk 0.18.3 wallets talking standard Cashu over HTTP / websocket.
//!
//! Every test starts its own server on a fresh temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use anyhow::{Context, Result};
use cdk::amount::SplitTarget;
use cdk::nuts::{
    CheckStateRequest, MintQuoteState, NotificationPayload, PaymentMethod, ProofsMethods,
    SecretKey, SpendingConditions, State,
};
use cdk::wallet::{ReceiveOptions, SendOptions};
use cdk::Amount;
use coinslot_tests::wallet::{
    self as w, balance, new_wallet, random_seed, receive, send, topup, WAIT_TIMEOUT,
};
use coinslot_tests::TestServer;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A running server on a fresh temporary directory (kept alive with it). `TestServer`
/// sets up logging (`RUST_LOG`, default `warn`).
async fn start() -> Result<(TestServer, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    Ok((server, dir))
}

#[tokio::test(flavor = "multi_thread")]
async fn topup_via_quote_sets_balance() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    assert_eq!(balance(&alice).await?, 0);

    let quote = w::mint_quote(&alice, 100).await?;
    // A real BOLT11 invoice for exactly the quoted amount.
    let invoice: cdk::Bolt11Invoice = quote
        .request
        .parse()
        .with_context(|| format!("quote request is not a bolt11 invoice: {}", quote.request))?;
    assert_eq!(invoice.amount_milli_satoshis(), Some(100_000));

    let paid = w::wait_quote_paid(&alice, &quote.id).await?;
    assert_eq!(paid.state, MintQuoteState::Paid);

    let proofs = alice.mint(&quote.id, SplitTarget::default(), None).await?;
    assert_eq!(proofs.total_amount()?, Amount::from(100));
    assert_eq!(balance(&alice).await?, 100);

    // The quote is now ISSUED, and minting it again (correctly signed) is refused.
    let issued = alice.check_mint_quote_status(&quote.id).await?;
    assert_eq!(issued.state, MintQuoteState::Issued);
    let mut again = w::mint_request(&alice, &quote.id, Amount::from(100)).await?;
    let key = quote
        .secret_key
        .clone()
        .context("wallet quote has no NUT-20 key")?;
    again.sign(&key)?;
    let answer = w::post_json(
        &server.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(&again)?,
    )
    .await?;
    assert_eq!(answer.status, 400, "re-minting an issued quote: {answer:?}");
    assert_eq!(
        answer.code(),
        Some(20002),
        "re-minting an issued quote: {answer:?}"
    );
    assert_eq!(balance(&alice).await?, 100);

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn send_and_receive_between_wallets() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let bob = new_wallet(&server.url, random_seed()).await?;
    assert_eq!(topup(&alice, 100).await?, Amount::from(100));

    let token = send(&alice, 40, SendOptions::default()).await?;
    assert_eq!(token.value()?, Amount::from(40));
    assert_eq!(balance(&alice).await?, 60);

    let received = receive(&bob, &token, ReceiveOptions::default()).await?;
    assert_eq!(received, Amount::from(40));
    assert_eq!(balance(&bob).await?, 40);
    assert_eq!(balance(&alice).await?, 60);

    // Bob can spend what he received: send it back to Alice.
    let back = send(&bob, 25, SendOptions::default()).await?;
    assert_eq!(
        receive(&alice, &back, ReceiveOptions::default()).await?,
        Amount::from(25)
    );
    assert_eq!(balance(&alice).await?, 85);
    assert_eq!(balance(&bob).await?, 15);

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn double_spend_is_refused() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let bob = new_wallet(&server.url, random_seed()).await?;
    let carol = new_wallet(&server.url, random_seed()).await?;
    topup(&alice, 64).await?;

    let token = send(&alice, 50, SendOptions::default()).await?;
    assert_eq!(
        receive(&bob, &token, ReceiveOptions::default()).await?,
        Amount::from(50)
    );

    // Same token again, by another wallet: the mint says "already spent".
    let err = match receive(&carol, &token, ReceiveOptions::default()).await {
        Ok(amount) => anyhow::bail!("second receive of the same token gave {amount}"),
        Err(err) => err,
    };
    assert!(
        matches!(
            err.downcast_ref::<cdk::Error>(),
            Some(cdk::Error::TokenAlreadySpent)
        ),
        "expected TokenAlreadySpent, got {err:#}"
    );
    assert_eq!(balance(&carol).await?, 0);
    assert_eq!(balance(&bob).await?, 50);

    // Raw POST /v1/swap of the spent proofs: HTTP 400, NUT-00 code 11001.
    let spent = w::token_proofs(&carol, &token).await?;
    let request = w::swap_request(&carol, spent).await?;
    let answer = w::post_json(&server.url, "/v1/swap", &serde_json::to_value(&request)?).await?;
    assert_eq!(answer.status, 400, "swap of spent proofs: {answer:?}");
    assert_eq!(
        answer.code(),
        Some(11001),
        "swap of spent proofs: {answer:?}"
    );
    assert!(
        answer
            .body
            .get("detail")
            .is_some_and(serde_json::Value::is_string),
        "error body has no detail: {answer:?}"
    );

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn checkstate_unspent_then_spent() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    topup(&alice, 100).await?;

    let proofs = alice.get_unspent_proofs().await?;
    assert_eq!(proofs.total_amount()?, Amount::from(100));
    let ys = proofs.ys()?;

    let states = w::proof_states(&alice, &proofs).await?;
    assert_eq!(states.len(), proofs.len());
    assert!(
        states.iter().all(|s| *s == State::Unspent),
        "before swap: {states:?}"
    );

    // Swap exactly these proofs at the mint.
    alice
        .swap(None, SplitTarget::None, proofs.clone(), None, false, false)
        .await?;
    assert_eq!(balance(&alice).await?, 100);

    let states = w::proof_states(&alice, &proofs).await?;
    assert!(
        states.iter().all(|s| *s == State::Spent),
        "after swap: {states:?}"
    );

    // Same through raw POST /v1/checkstate, in request order.
    let body = serde_json::to_value(&CheckStateRequest { ys: ys.clone() })?;
    let answer = w::post_json(&server.url, "/v1/checkstate", &body).await?;
    assert_eq!(answer.status, 200, "{answer:?}");
    let raw = answer.body["states"]
        .as_array()
        .context("no states array")?;
    assert_eq!(raw.len(), ys.len());
    for (y, state) in ys.iter().zip(raw) {
        assert_eq!(state["Y"].as_str(), Some(y.to_string().as_str()));
        assert_eq!(state["state"].as_str(), Some("SPENT"));
    }

    // The new proofs from the swap are unspent.
    let fresh = alice.get_unspent_proofs().await?;
    let states = w::proof_states(&alice, &fresh).await?;
    assert!(!states.is_empty());
    assert!(
        states.iter().all(|s| *s == State::Unspent),
        "new proofs: {states:?}"
    );

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_from_seed_recovers_balance() -> Result<()> {
    let (server, _dir) = start().await?;
    let seed = random_seed();
    let alice = new_wallet(&server.url, seed).await?;
    let bob = new_wallet(&server.url, random_seed()).await?;
    topup(&alice, 100).await?;
    let token = send(&alice, 30, SendOptions::default()).await?;
    receive(&bob, &token, ReceiveOptions::default()).await?;
    assert_eq!(balance(&alice).await?, 70);

    // Same seed, empty database.
    let restored_wallet = new_wallet(&server.url, seed).await?;
    assert_eq!(balance(&restored_wallet).await?, 0);
    let restored = restored_wallet.restore().await?;
    assert_eq!(restored.unspent, Amount::from(70), "{restored:?}");
    assert!(restored.spent >= Amount::from(30), "{restored:?}");
    assert_eq!(balance(&restored_wallet).await?, 70);

    // The restored proofs are really spendable.
    let carol = new_wallet(&server.url, random_seed()).await?;
    let token = send(&restored_wallet, 70, SendOptions::default()).await?;
    assert_eq!(
        receive(&carol, &token, ReceiveOptions::default()).await?,
        Amount::from(70)
    );

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn p2pk_locked_token_needs_the_right_key() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let bob = new_wallet(&server.url, random_seed()).await?;
    topup(&alice, 100).await?;

    let key_a = SecretKey::generate();
    let wrong = SecretKey::generate();
    let opts = SendOptions {
        conditions: Some(SpendingConditions::new_p2pk(key_a.public_key(), None)),
        ..Default::default()
    };
    let token = send(&alice, 50, opts).await?;
    assert!(token.p2pk_pubkeys()?.contains(&key_a.public_key()));

    // The wallet refuses without the right key...
    let wrong_opts = ReceiveOptions {
        p2pk_signing_keys: vec![wrong.clone()],
        ..Default::default()
    };
    assert!(receive(&bob, &token, wrong_opts).await.is_err());
    assert!(receive(&bob, &token, ReceiveOptions::default())
        .await
        .is_err());
    assert_eq!(balance(&bob).await?, 0);

    // ...and so does the mint: raw swaps signed with the wrong key, or unsigned.
    let locked = w::token_proofs(&bob, &token).await?;
    let unsigned = w::swap_request(&bob, locked.clone()).await?;
    let answer = w::post_json(&server.url, "/v1/swap", &serde_json::to_value(&unsigned)?).await?;
    assert_eq!(
        answer.status, 400,
        "unsigned swap of p2pk proofs: {answer:?}"
    );
    assert_eq!(
        answer.code(),
        Some(20008),
        "witness missing or invalid: {answer:?}"
    );
    let mut badly_signed = locked.clone();
    for proof in badly_signed.iter_mut() {
        proof.sign_p2pk(wrong.clone())?;
    }
    let request = w::swap_request(&bob, badly_signed).await?;
    let answer = w::post_json(&server.url, "/v1/swap", &serde_json::to_value(&request)?).await?;
    assert_eq!(
        answer.status, 400,
        "wrongly signed swap of p2pk proofs: {answer:?}"
    );
    assert_eq!(
        answer.code(),
        Some(20008),
        "witness missing or invalid: {answer:?}"
    );

    // The token is still spendable.
    let states = w::proof_states(&bob, &locked).await?;
    assert!(states.iter().all(|s| *s == State::Unspent), "{states:?}");

    let right_opts = ReceiveOptions {
        p2pk_signing_keys: vec![key_a],
        ..Default::default()
    };
    assert_eq!(receive(&bob, &token, right_opts).await?, Amount::from(50));
    assert_eq!(balance(&bob).await?, 50);
    let states = w::proof_states(&bob, &locked).await?;
    assert!(states.iter().all(|s| *s == State::Spent), "{states:?}");

    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn nut20_locked_quote_requires_signature() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;

    // cdk 0.18.3 always locks its quotes to a seed-derived key.
    let quote = w::mint_quote(&alice, 100).await?;
    let quote_key = quote
        .secret_key
        .clone()
        .context("wallet quote has no NUT-20 key")?;
    let status = w::get_json(&server.url, &format!("/v1/mint/quote/bolt11/{}", quote.id)).await?;
    assert_eq!(status.status, 200, "{status:?}");
    assert_eq!(
        status.body["pubkey"].as_str(),
        Some(quote_key.public_key().to_string().as_str()),
        "quote status does not carry the lock pubkey: {status:?}"
    );
    w::wait_quote_paid(&alice, &quote.id).await?;

    // No signature.
    let unsigned = w::mint_request(&alice, &quote.id, Amount::from(100)).await?;
    let answer = w::post_json(
        &server.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(&unsigned)?,
    )
    .await?;
    assert_eq!(
        answer.status, 400,
        "unsigned mint of a locked quote: {answer:?}"
    );
    assert_eq!(
        answer.code(),
        Some(20008),
        "unsigned mint of a locked quote: {answer:?}"
    );

    // Signed by another key.
    let mut wrong = w::mint_request(&alice, &quote.id, Amount::from(100)).await?;
    wrong.sign(&SecretKey::generate())?;
    let answer = w::post_json(
        &server.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(&wrong)?,
    )
    .await?;
    assert_eq!(answer.status, 400, "wrongly signed mint: {answer:?}");
    assert_eq!(
        answer.code(),
        Some(20008),
        "wrongly signed mint: {answer:?}"
    );

    // Garbage in the signature field.
    let mut garbage = w::mint_request(&alice, &quote.id, Amount::from(100)).await?;
    garbage.signature = Some("not-a-signature".to_string());
    let answer = w::post_json(
        &server.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(&garbage)?,
    )
    .await?;
    assert_eq!(answer.status, 400, "garbage signature: {answer:?}");
    assert_eq!(answer.code(), Some(20008), "garbage signature: {answer:?}");

    // None of that consumed the quote: the owner mints it.
    let proofs = alice.mint(&quote.id, SplitTarget::default(), None).await?;
    assert_eq!(proofs.total_amount()?, Amount::from(100));
    assert_eq!(balance(&alice).await?, 100);

    server.stop().await?;
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a NUT-17 `subscribe` for a bolt11 mint quote and returns the socket.
async fn ws_subscribe(mint_url: &str, sub_id: &str, quote_id: &str) -> Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(w::ws_url(mint_url)).await?;
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "subscribe",
        "params": { "kind": "bolt11_mint_quote", "subId": sub_id, "filters": [quote_id] },
    });
    ws.send(Message::text(request.to_string())).await?;
    Ok(ws)
}

/// What arrived on the socket until a notification for `sub_id` with `state`.
struct WsSeen {
    subscribe_ok: bool,
    payload: serde_json::Value,
}

async fn ws_wait_state(ws: &mut Ws, sub_id: &str, state: &str) -> Result<WsSeen> {
    let mut subscribe_ok = false;
    let wait = async {
        while let Some(message) = ws.next().await {
            let text = match message? {
                Message::Text(text) => text,
                _ => continue,
            };
            let value: serde_json::Value = serde_json::from_str(text.as_str())?;
            if value["id"] == 0 && value["result"]["status"] == "OK" {
                subscribe_ok = value["result"]["subId"] == sub_id;
                continue;
            }
            if value.get("error").is_some() {
                anyhow::bail!("websocket error answer: {value}");
            }
            let params = &value["params"];
            if value["method"] == "subscribe"
                && params["subId"] == sub_id
                && params["payload"]["state"] == state
            {
                return Ok(params["payload"].clone());
            }
        }
        anyhow::bail!("websocket closed before a {state} notification")
    };
    let payload = tokio::time::timeout(WAIT_TIMEOUT, wait)
        .await
        .with_context(|| format!("no {state} notification within {WAIT_TIMEOUT:?}"))??;
    Ok(WsSeen {
        subscribe_ok,
        payload,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_notifies_paid_mint_quote() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let quote = w::mint_quote(&alice, 21).await?;

    let mut ws = ws_subscribe(&server.url, "sub-paid", &quote.id).await?;
    let seen = ws_wait_state(&mut ws, "sub-paid", "PAID").await?;
    assert!(
        seen.subscribe_ok,
        "no OK answer to subscribe before the notification"
    );
    assert_eq!(seen.payload["quote"].as_str(), Some(quote.id.as_str()));
    assert_eq!(
        seen.payload["request"].as_str(),
        Some(quote.request.as_str())
    );

    ws.close(None).await.ok();
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_notifies_issued_after_mint() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let quote = w::mint_quote(&alice, 21).await?;

    let mut ws = ws_subscribe(&server.url, "sub-issued", &quote.id).await?;
    ws_wait_state(&mut ws, "sub-issued", "PAID").await?;
    w::wait_quote_paid(&alice, &quote.id).await?;
    alice.mint(&quote.id, SplitTarget::default(), None).await?;
    let seen = ws_wait_state(&mut ws, "sub-issued", "ISSUED").await?;
    assert_eq!(seen.payload["quote"].as_str(), Some(quote.id.as_str()));

    ws.close(None).await.ok();
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn wallet_subscription_and_wait_and_mint() -> Result<()> {
    let (server, _dir) = start().await?;
    let alice = new_wallet(&server.url, random_seed()).await?;
    let quote = w::mint_quote(&alice, 42).await?;

    // cdk's subscription manager: websocket if the mint offers NUT-17, else polling.
    let mut sub = alice
        .subscribe_mint_quote_state(vec![quote.id.clone()], PaymentMethod::BOLT11)
        .await?;
    let paid = tokio::time::timeout(WAIT_TIMEOUT, async {
        while let Some(event) = sub.recv().await {
            if let NotificationPayload::MintQuoteBolt11Response(r) = event.into_inner() {
                if r.quote == quote.id && r.state == MintQuoteState::Paid {
                    return Some(r);
                }
            }
        }
        None
    })
    .await
    .context("no PAID event from the wallet subscription")?;
    assert!(paid.is_some(), "subscription ended without a PAID event");
    drop(sub);

    let proofs = alice
        .wait_and_mint_quote(quote, SplitTarget::default(), None, WAIT_TIMEOUT)
        .await?;
    assert_eq!(proofs.total_amount()?, Amount::from(42));
    assert_eq!(balance(&alice).await?, 42);

    // Let background subscription tasks wind down before the server stops.
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop().await?;
    Ok(())
}

/// With a backend that pays after 400 ms, a subscriber sees the current state (UNPAID) first
/// and then the change (PAID): a real transition, not just the state at subscription time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sees_a_delayed_payment_go_from_unpaid_to_paid() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = coinslotd::BackendConfig::Fake(coinslot_mint::FakeBackendConfig {
        pay_after_ms: Some(400),
    });
    let server = TestServer::start_with(config).await.unwrap();
    let alice = new_wallet(&server.url, random_seed()).await.unwrap();
    let quote = alice
        .mint_quote(PaymentMethod::BOLT11, Some(Amount::from(8)), None, None)
        .await
        .unwrap();
    assert_eq!(quote.state, MintQuoteState::Unpaid);

    // Raw NUT-17 client: subscribe, get the current state, then the change.
    let ws_url = coinslot_tests::wallet::ws_url(&server.url);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let subscribe = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "subscribe",
        "params": {"kind": "bolt11_mint_quote", "subId": "s1", "filters": [quote.id]},
    });
    socket
        .send(Message::Text(subscribe.to_string().into()))
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

    server.stop().await.unwrap();
}
