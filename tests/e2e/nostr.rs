//! coinslotd on nostr, against a real relay (rust-nostr's relay builder) on 127.0.0.1: the
//! NIP-87 announcement and its replacement after a config change, recommendations in the
//! admin report, and a cdk wallet that tops up, swaps and checks states over nostr only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, ProofsMethods, State};
use cdk::wallet::{ReceiveOptions, SendOptions, WalletBuilder};
use coinslot_admin::Scope;
use coinslot_nostr::nip87::Recommendation;
use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_nostr::{discover, Discover, MintClient, NostrConnector};
use coinslot_tests::{eventually, proxy::admin_token, wallet, TestServer};
use nostr_relay_builder::prelude::*;
use serde_json::Value;

async fn relay() -> (LocalRelay, String) {
    coinslot_tests::nwc::local_relay(|| {
        RelayBuilder::default().rate_limit(RateLimit {
            max_reqs: 500,
            notes_per_minute: 100_000,
        })
    })
    .await
    .unwrap()
}

fn config(data_dir: &std::path::Path, relay: &str) -> coinslotd::Config {
    let mut config = coinslotd::Config::with_data_dir(data_dir);
    config.nostr.relays = vec![relay.to_string()];
    config
}

async fn mint_key(url: &str) -> PublicKey {
    let info = wallet::get_json(url, "/v1/info").await.unwrap().body;
    let pubkey = info["pubkey"].as_str().unwrap().to_string();
    PublicKey::from_hex(&pubkey[2..]).unwrap()
}

/// A coinslotd on an in-process relay. Destructure it naming every field, not with `..`,
/// which would drop the relay and the data directory at once.
struct OnNostr {
    _relay: LocalRelay,
    relay_url: String,
    _dir: tempfile::TempDir,
    server: TestServer,
    /// The mint's nostr key.
    me: PublicKey,
}

async fn on_nostr(configure: impl FnOnce(&mut coinslotd::Config)) -> OnNostr {
    let (relay, relay_url) = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), &relay_url);
    configure(&mut config);
    let server = TestServer::start_with(config).await.unwrap();
    let me = mint_key(&server.url).await;
    OnNostr {
        _relay: relay,
        relay_url,
        _dir: dir,
        server,
        me,
    }
}

/// Sends `amount` from a funded wallet to a second one over HTTP, so the token's proofs are
/// spent; returns the sender and those proofs.
async fn spend_a_token(url: &str, amount: u64) -> (cdk::wallet::Wallet, cdk::nuts::Proofs) {
    let sender = wallet::funded(url, amount * 3).await.unwrap();
    let token = wallet::send(&sender, amount, SendOptions::default())
        .await
        .unwrap();
    let proofs = wallet::token_proofs(&sender, &token).await.unwrap();
    let receiver = wallet::new_wallet(url, wallet::random_seed())
        .await
        .unwrap();
    wallet::receive(&receiver, &token, ReceiveOptions::default())
        .await
        .unwrap();
    (sender, proofs)
}

#[tokio::test]
async fn the_announcement_is_found_and_replaced_after_a_config_change() {
    let (_relay, relay_url) = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(config(dir.path(), &relay_url))
        .await
        .unwrap();
    let me = mint_key(&server.url).await;
    let client = coinslot_nostr::connect([&relay_url]).await.unwrap();
    let first = eventually("the announcement", || async {
        discover(&client, Discover::Author(me), Duration::from_secs(2))
            .await
            .ok()?
            .into_iter()
            .next()
    })
    .await;
    assert!(first.self_signed);
    assert_eq!(first.announcement.urls, vec![server.url.clone()]);
    assert_eq!(first.announcement.network, "regtest");
    assert!(first.announcement.nuts.contains(&4));
    assert!(!first.announcement.nuts.contains(&5));
    assert_eq!(
        first.announcement.metadata.as_ref().unwrap()["name"],
        Value::from("Coinslot mint")
    );

    // A fan recommends the mint; the admin report shows it.
    let fan = Keys::generate();
    let recommendation = Recommendation {
        mint_pubkey: first.announcement.mint_pubkey.clone(),
        urls: first.announcement.urls.clone(),
        announcement: Some(first.announcement.coordinate(me)),
        relay_hint: Some(relay_url.clone()),
        comment: "pays out in fun".into(),
    };
    client
        .send_event(&recommendation.to_builder().sign_with_keys(&fan).unwrap())
        .await
        .unwrap();
    let token = admin_token(dir.path(), &[Scope::Read], coinslot_mint::unix_now(), 600).unwrap();
    let http = reqwest::Client::new();
    let report: Value = eventually("the recommendation in the admin report", || async {
        let report: Value = http
            .get(format!("{}/admin/nostr", server.url))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (report["recommendations"].as_array()?.len() == 1).then_some(report)
    })
    .await;
    assert_eq!(report["recommendations"][0]["comment"], "pays out in fun");
    assert_eq!(
        report["recommendations"][0]["author"],
        Value::from(fan.public_key().to_bech32().unwrap())
    );
    assert!(report["relays"][&relay_url]["published_at"].is_u64());
    assert_eq!(report["npub"], Value::from(me.to_bech32().unwrap()));
    server.stop().await.unwrap();

    // Restart on the same data with another URL: the new announcement replaces the old.
    let mut changed = config(dir.path(), &relay_url);
    changed.nostr.urls = vec!["http://coinslotexample.onion".into()];
    let server = TestServer::start_with(changed).await.unwrap();
    assert_eq!(mint_key(&server.url).await, me, "same seed, same identity");
    let second = eventually("the new announcement", || async {
        discover(&client, Discover::Author(me), Duration::from_secs(2))
            .await
            .ok()?
            .into_iter()
            .find(|found| found.event_id != first.event_id)
    })
    .await;
    assert!(second.created_at > first.created_at);
    assert_eq!(
        second.announcement.urls,
        vec![server.url.clone(), "http://coinslotexample.onion".into()]
    );
    let stored = client
        .fetch_events(
            Filter::new()
                .author(me)
                .kind(coinslot_nostr::nip87::CASHU_MINT_ANNOUNCEMENT),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        1,
        "the relay keeps only the newest announcement"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_cdk_wallet_tops_up_swaps_and_checks_states_over_nostr_only() {
    let OnNostr {
        _relay,
        _dir,
        relay_url,
        server,
        me,
    } = on_nostr(|_| {}).await;

    // The wallet's mint URL goes nowhere: every call must travel over nostr.
    let client = MintClient::connect([&relay_url], me)
        .await
        .unwrap()
        .timeout(Duration::from_secs(15));
    let localstore = cdk_sqlite::wallet::memory::empty().await.unwrap();
    let over_nostr = WalletBuilder::new()
        .mint_url(MintUrl::from_str("http://127.0.0.1:9").unwrap())
        .unit(CurrencyUnit::Sat)
        .localstore(Arc::new(localstore))
        .seed(wallet::random_seed())
        .client(NostrConnector::new(client))
        .build()
        .unwrap();

    let minted = wallet::topup(&over_nostr, 100).await.unwrap();
    assert_eq!(minted.to_u64(), 100);
    // A send that needs change swaps at the mint.
    let token = wallet::send(&over_nostr, 37, SendOptions::default())
        .await
        .unwrap();
    assert_eq!(wallet::balance(&over_nostr).await.unwrap(), 63);
    let proofs = wallet::token_proofs(&over_nostr, &token).await.unwrap();
    assert_eq!(proofs.total_amount().unwrap().to_u64(), 37);
    let states = wallet::proof_states(&over_nostr, &proofs).await.unwrap();
    assert!(
        states.iter().all(|state| *state == State::Unspent),
        "{states:?}"
    );

    // The proofs are real: a wallet over HTTP takes them (in a token naming the HTTP URL),
    // and then nostr sees them spent.
    let over_http = wallet::new_wallet(&server.url, wallet::random_seed())
        .await
        .unwrap();
    let for_http = cdk::nuts::Token::new(
        MintUrl::from_str(&server.url).unwrap(),
        proofs.clone(),
        None,
        CurrencyUnit::Sat,
    );
    let received = wallet::receive(&over_http, &for_http, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(received.to_u64(), 37);
    let states = wallet::proof_states(&over_nostr, &proofs).await.unwrap();
    assert!(
        states.iter().all(|state| *state == State::Spent),
        "{states:?}"
    );

    // Spending them again over nostr is refused with the HTTP error (11001, already spent).
    let again = wallet::receive(&over_nostr, &token, ReceiveOptions::default()).await;
    let err = again.unwrap_err();
    let cdk_err = err.downcast_ref::<cdk::Error>().expect("a cdk error");
    assert!(
        matches!(cdk_err, cdk::Error::TokenAlreadySpent),
        "{cdk_err:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_spent_secret_feed_lists_each_spent_y_once() {
    let OnNostr {
        _relay,
        _dir,
        relay_url,
        server,
        me,
    } = on_nostr(|config| {
        config.nostr.spent_feed = true;
        config.nostr.spent_feed_secs = 1;
    })
    .await;
    let (sender, proofs) = spend_a_token(&server.url, 21).await;
    let wanted: Vec<String> = proofs.iter().map(|p| p.y().unwrap().to_hex()).collect();

    let client = coinslot_nostr::connect([&relay_url]).await.unwrap();
    let feed = Filter::new()
        .author(me)
        .kind(coinslot_nostr::spent_feed::SPENT_FEED);
    let listed = eventually("the spent Ys in the feed", || async {
        let events = client
            .fetch_events(feed.clone(), Duration::from_secs(2))
            .await
            .ok()?;
        let ys: Vec<String> = events
            .iter()
            .flat_map(|event| coinslot_nostr::spent_feed::spent_ys(event).unwrap())
            .collect();
        wanted.iter().all(|y| ys.contains(y)).then_some(ys)
    })
    .await;
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "a Y was published twice");
    // Unspent proofs are not listed: the sender's remaining change.
    let kept = sender.get_unspent_proofs().await.unwrap();
    assert!(!kept.is_empty());
    for proof in kept {
        assert!(!listed.contains(&proof.y().unwrap().to_hex()));
    }
    client.shutdown().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_feed_is_off_by_default() {
    let OnNostr {
        _relay,
        _dir,
        relay_url,
        server,
        me,
    } = on_nostr(|_| {}).await;
    spend_a_token(&server.url, 3).await;
    let client = coinslot_nostr::connect([&relay_url]).await.unwrap();
    // The announcement arrives, the feed never does.
    eventually("the announcement", || async {
        discover(&client, Discover::Author(me), Duration::from_secs(2))
            .await
            .ok()?
            .into_iter()
            .next()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let feed = Filter::new()
        .author(me)
        .kind(coinslot_nostr::spent_feed::SPENT_FEED);
    let events = client
        .fetch_events(feed, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(events.is_empty(), "the feed published while off");
    client.shutdown().await;
    server.stop().await.unwrap();
}
