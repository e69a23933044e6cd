//! The paid relay end to end: the example server on 127.0.0.1:0 (relay and mint on one
//! port, sled store), cdk wallets topping up over HTTP, and raw websocket clients that
//! speak NIP-01/NIP-42 exactly as a nostr client does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use cdk::nuts::{PaymentRequest, SpendingConditions, State};
use cdk::wallet::SendOptions;
use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_tests::relay_conn::{note, Conn};
use coinslot_tests::wallet::{funded, proof_states, send, token, token_proofs};
use serde_json::{json, Value};

struct Server {
    url: String,
    ws: String,
    mint: coinslot::Mint,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Server {
    async fn start(dir: &Path) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let opened = paid_relay::open(dir).await?;
        let mint = opened.embedded.mint.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let public = url.clone();
        let task = tokio::spawn(async move {
            paid_relay::serve(listener, opened, &public, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self {
            ws: paid_relay::relay_url(&url),
            url,
            mint,
            stop: Some(stop),
            task,
        })
    }

    async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), self.task).await???;
        Ok(())
    }

    fn mint_key(&self) -> cdk::nuts::PublicKey {
        self.mint.pubkey()
    }
}

/// A token locked (NUT-11) to the mint's key, as the relay's payment requests ask.
async fn locked_token(
    wallet: &cdk::wallet::Wallet,
    server: &Server,
    amount: u64,
) -> Result<String> {
    let opts = SendOptions {
        conditions: Some(SpendingConditions::new_p2pk(server.mint_key(), None)),
        ..SendOptions::default()
    };
    Ok(send(wallet, amount, opts).await?.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpaid_post_is_refused_with_a_payment_request_and_reading_is_free() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let keys = Keys::generate();
    let mut conn = Conn::open(&server.ws).await?;

    let event = note(&keys, "hello for free?", None);
    let (accepted, message) = conn.publish(&event).await?;
    assert!(!accepted, "an unpaid post was accepted: {message}");
    assert!(
        message.starts_with("restricted: payment-required: 1 sat"),
        "{message}"
    );
    let creq = message.split_whitespace().last().unwrap();
    let request = PaymentRequest::from_str(creq).context("the refusal's NUT-18 request")?;
    assert_eq!(request.amount, Some(1.into()));
    assert_eq!(request.unit, Some(cdk::nuts::CurrencyUnit::Sat));
    let mints: Vec<String> = request.mints.iter().map(|m| m.to_string()).collect();
    assert_eq!(mints, vec![server.url.clone()]);
    let lock = request.nut10.context("the request asks for a lock")?;
    assert_eq!(lock.data, server.mint_key().to_hex());

    // Nothing was stored, and reading costs nothing.
    let stored = conn.req("all", json!({"kinds": [1]})).await?;
    assert!(stored.is_empty(), "a refused event was stored");

    // A malformed tag is named; the NIP-11 document tells the price and the mint.
    let bad = note(&keys, "bad tag", Some("cashuBnot-a-token"));
    let (accepted, message) = conn.publish(&bad).await?;
    assert!(!accepted);
    assert!(message.starts_with("invalid: the cashu tag"), "{message}");
    let nip11: Value = reqwest::Client::new()
        .get(&server.url)
        .header("accept", "application/nostr+json")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(nip11["limitation"]["payment_required"], true);
    assert_eq!(nip11["cashu"]["mint"], server.url);
    assert_eq!(
        nip11["fees"]["publication"][0],
        json!({"amount": 1, "unit": "sat"})
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_post_is_stored_and_its_token_cannot_pay_again() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let wallet = funded(&server.url, 64).await?;
    let keys = Keys::generate();
    let mut reader = Conn::open(&server.ws).await?;
    assert!(reader
        .req("live", json!({"kinds": [1], "limit": 0}))
        .await?
        .is_empty());
    let mut conn = Conn::open(&server.ws).await?;

    let locked = locked_token(&wallet, &server, 3).await?;
    let paid = note(&keys, "paid with a locked token", Some(&locked));
    let (accepted, message) = conn.publish(&paid).await?;
    assert!(accepted, "{message}");
    assert_eq!(message, "paid 1 sat; balance 2 sat");
    // The token's proofs are spent at the mint, and readers see the event live.
    let decoded = cdk::nuts::Token::from_str(&locked)?;
    let proofs = token_proofs(&wallet, &decoded).await?;
    assert!(proof_states(&wallet, &proofs)
        .await?
        .iter()
        .all(|s| *s == State::Spent));
    let live = reader.next().await?;
    assert_eq!(live[0], "EVENT");
    assert_eq!(live[2]["id"], paid.id.to_hex());

    // The same token on another event: refused, nothing stored.
    let again = note(&keys, "same token again", Some(&locked));
    let (accepted, message) = conn.publish(&again).await?;
    assert!(!accepted);
    assert!(
        message.contains("restricted: payment-required"),
        "{message}"
    );
    assert!(message.contains("11001"), "{message}");
    // The same event again: a free duplicate.
    let (accepted, message) = conn.publish(&paid).await?;
    assert!(accepted);
    assert!(message.starts_with("duplicate:"), "{message}");
    let stored = conn.req("all", json!({"kinds": [1]})).await?;
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![paid.id]
    );

    // An unlocked token pays too.
    let plain = token(&wallet, 1).await?;
    let (accepted, message) = conn.publish(&note(&keys, "unlocked", Some(&plain))).await?;
    assert!(accepted, "{message}");
    assert_eq!(message, "paid 1 sat; balance 2 sat");
    assert_eq!(
        server
            .mint
            .account(&format!("nostr:{}", keys.public_key().to_hex()))
            .await?
            .unwrap()
            .balance,
        2
    );
    // The two paid posts count in the earnings ledger under their kind; the refused one
    // and the duplicate do not.
    let earnings = server.mint.earnings(0).await?;
    let routes: Vec<_> = earnings
        .routes
        .iter()
        .map(|r| (r.sums.route.as_str(), r.sums.requests, r.net))
        .collect();
    assert_eq!(routes, vec![("kind 1", 2, 2)]);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_on_many_connections_at_once_pays_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let wallet = funded(&server.url, 16).await?;
    let token = locked_token(&wallet, &server, 2).await?;
    let mut tries = Vec::new();
    for i in 0..16 {
        let ws = server.ws.clone();
        let token = token.clone();
        tries.push(tokio::spawn(async move {
            let mut conn = Conn::open(&ws).await?;
            let event = note(&Keys::generate(), &format!("race {i}"), Some(&token));
            conn.publish(&event).await
        }));
    }
    let mut accepted = 0;
    for outcome in futures::future::join_all(tries).await {
        let (ok, message) = outcome??;
        if ok {
            accepted += 1;
        } else {
            assert!(
                message.starts_with("restricted: payment-required"),
                "{message}"
            );
        }
    }
    assert_eq!(accepted, 1, "one token paid for {accepted} posts");
    let mut conn = Conn::open(&server.ws).await?;
    assert_eq!(conn.req("all", json!({"kinds": [1]})).await?.len(), 1);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nip42_balance_pays_posts_and_survives_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let wallet = funded(&server.url, 16).await?;
    let alice = Keys::generate();
    let mallory = Keys::generate();

    // A 3 sat token on a post: 1 sat for the post, 2 sat of balance.
    let mut conn = Conn::open(&server.ws).await?;
    let deposit = locked_token(&wallet, &server, 3).await?;
    let (accepted, message) = conn
        .publish(&note(&alice, "deposit", Some(&deposit)))
        .await?;
    assert!(accepted, "{message}");

    // Without AUTH the balance is not used; AUTH as someone else does not help either.
    let (accepted, message) = conn.publish(&note(&alice, "no auth", None)).await?;
    assert!(!accepted);
    assert!(message.contains("AUTH (NIP-42)"), "{message}");
    let (ok, _) = conn.auth(&mallory, &server.ws).await?;
    assert!(ok);
    let (accepted, _) = conn
        .publish(&note(&alice, "mallory's connection", None))
        .await?;
    assert!(!accepted, "a post was paid from another pubkey's balance");

    // A wrong challenge is refused; the right one shows the balance.
    let mut conn = Conn::open(&server.ws).await?;
    let forged = EventBuilder::auth("not-the-challenge", RelayUrl::parse(&server.ws)?)
        .sign_with_keys(&alice)?;
    let (ok, message) = conn.ok_for(json!(["AUTH", forged]), forged.id).await?;
    assert!(!ok);
    assert!(message.starts_with("invalid:"), "{message}");
    let (ok, message) = conn.auth(&alice, &server.ws).await?;
    assert!(ok);
    assert_eq!(message, "authenticated; balance 2 sat");

    let (accepted, message) = conn.publish(&note(&alice, "from balance", None)).await?;
    assert!(accepted, "{message}");
    assert_eq!(message, "paid 1 sat; balance 1 sat");

    // The balance and the spent token outlive the process.
    server.stop().await?;
    let server = Server::start(dir.path()).await?;
    let mut conn = Conn::open(&server.ws).await?;
    let (_, message) = conn.auth(&alice, &server.ws).await?;
    assert_eq!(message, "authenticated; balance 1 sat");
    // So do the posts (LMDB).
    let stored = conn
        .req("mine", json!({"authors": [alice.public_key()]}))
        .await?;
    assert_eq!(stored.len(), 2, "posts lost across a restart");
    let (accepted, message) = conn.publish(&note(&alice, "last sat", None)).await?;
    assert!(accepted, "{message}");
    let (accepted, message) = conn.publish(&note(&alice, "empty", None)).await?;
    assert!(!accepted);
    assert!(
        message.starts_with("restricted: payment-required: 1 sat")
            && message.contains("balance is 0 sat"),
        "{message}"
    );
    let (accepted, message) = conn
        .publish(&note(&alice, "replay", Some(&deposit)))
        .await?;
    assert!(!accepted, "a spent token paid after a restart: {message}");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mint_announces_itself_on_its_own_relay() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let mint_key = PublicKey::from_slice(&server.mint_key().to_bytes()[1..])?;
    let client = coinslot_nostr::connect([server.ws.as_str()]).await?;
    let found = coinslot_tests::eventually("the announcement on the relay", || async {
        coinslot_nostr::discover(
            &client,
            coinslot_nostr::Discover::Author(mint_key),
            Duration::from_secs(2),
        )
        .await
        .ok()
        .filter(|found| !found.is_empty())
    })
    .await;
    let mint = &found[0];
    assert!(mint.self_signed);
    assert_eq!(mint.announcement.urls, vec![server.url.clone()]);
    assert_eq!(mint.announcement.mint_pubkey, server.mint_key().to_hex());
    client.shutdown().await;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paid_event_the_store_refuses_gives_its_price_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(dir.path()).await?;
    let wallet = funded(&server.url, 16).await?;
    let keys = Keys::generate();
    let account = format!("nostr:{}", keys.public_key().to_hex());
    let mut conn = Conn::open(&server.ws).await?;
    let (ok, _) = conn.auth(&keys, &server.ws).await?;
    assert!(ok);

    // A profile (replaceable, kind 0) paid with a token: 1 sat taken, 4 left.
    let deposit = locked_token(&wallet, &server, 5).await?;
    let newer = EventBuilder::metadata(&Metadata::new().name("new"))
        .tag(Tag::parse(["cashu", deposit.as_str()])?)
        .sign_with_keys(&keys)?;
    let (accepted, message) = conn.publish(&newer).await?;
    assert!(accepted, "{message}");
    assert_eq!(server.mint.account(&account).await?.unwrap().balance, 4);

    // An older profile is paid from the balance, then refused by the store: refunded.
    let older = EventBuilder::metadata(&Metadata::new().name("old"))
        .custom_created_at(Timestamp::from(newer.created_at.as_secs() - 60))
        .sign_with_keys(&keys)?;
    let (accepted, message) = conn.publish(&older).await?;
    assert!(
        !accepted,
        "an older replaceable event was stored: {message}"
    );
    assert!(message.contains("went back to your balance"), "{message}");
    assert_eq!(server.mint.account(&account).await?.unwrap().balance, 4);
    let stored = conn
        .req(
            "profile",
            json!({"kinds": [0], "authors": [keys.public_key()]}),
        )
        .await?;
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![newer.id]
    );
    // In the earnings ledger: two profiles paid, one of them given back.
    let earnings = server.mint.earnings(0).await?;
    let kind0 = earnings
        .routes
        .iter()
        .find(|r| r.sums.route == "kind 0")
        .expect("kind 0 in the ledger");
    let price = kind0.sums.earned / 2;
    assert_eq!(
        (
            kind0.sums.requests,
            kind0.sums.failed,
            kind0.sums.refunded,
            kind0.net
        ),
        (2, 1, price, price),
        "{kind0:?}"
    );
    server.stop().await
}
