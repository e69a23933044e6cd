//! NIP-60 round trip with a relay in-process: proofs stored as token events, the client
//! "reinstalled" (fresh local wallets) restores them, pays from them, rolls the events over,
//! and a second reinstall finds exactly what is left: nothing double counted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use cdk::mint_url::MintUrl;
use cdk::nuts::CurrencyUnit;
use coinslot_client::nip60::{TOKEN_KIND, WALLET_KIND};
use coinslot_client::{Budget, Limits, Nip60, PayingClient, Wallets};
use nostr_sdk::prelude::*;

async fn fresh_wallets() -> Wallets {
    Wallets::in_memory(coinslot_tests::wallet::random_seed())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_survive_a_reinstall_through_the_relay_and_are_counted_once() {
    let (_relay, relay_url) = coinslot_tests::nwc::relay().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = paid_search::spawn_on_loopback(dir.path()).await.unwrap();
    let mint: MintUrl = url.parse().unwrap();
    let sat = CurrencyUnit::Sat;
    let keys = Keys::generate();

    // First install: top up 20 and publish.
    let first = fresh_wallets().await;
    let wallet = first.wallet(&mint, &sat).unwrap();
    coinslot_tests::wallet::topup(&wallet, 20).await.unwrap();
    let nip60 = Nip60::connect(keys.clone(), [&relay_url]).await.unwrap();
    nip60.publish(&first, &mint, &sat).await.unwrap();

    // Reinstall: nothing local; restore from the relay, twice (the second adds nothing).
    let second = fresh_wallets().await;
    let nip60 = Arc::new(Nip60::connect(keys.clone(), [&relay_url]).await.unwrap());
    assert_eq!(nip60.restore(&second).await.unwrap(), 20);
    assert_eq!(nip60.restore(&second).await.unwrap(), 0, "counted once");
    assert_eq!(second.balance(&mint, &sat).await.unwrap(), 20);

    // Pay from the restored proofs; the client rolls the token events over.
    let client = PayingClient::new(
        reqwest::Client::new(),
        second.clone(),
        Budget::new().allow(
            sat.clone(),
            Limits {
                per_request: Some(5),
                ..Limits::default()
            },
        ),
        [mint.clone()],
    )
    .with_nip60(Arc::clone(&nip60));
    let paid = client.get(&format!("{url}/search?q=nut")).await.unwrap();
    assert_eq!(paid.response.status(), 200);
    assert_eq!(second.balance(&mint, &sat).await.unwrap(), 18);

    // Another reinstall sees exactly what is left, not the old event's 20 as well.
    let third = fresh_wallets().await;
    let nip60 = Nip60::connect(keys.clone(), [&relay_url]).await.unwrap();
    assert_eq!(nip60.restore(&third).await.unwrap(), 18);
    assert_eq!(third.balance(&mint, &sat).await.unwrap(), 18);

    // Same balance, other proofs (sent to itself and received back, as a refund would):
    // still rolled over, so a reinstall finds spendable proofs, not the spent ones.
    let wallet = third.wallet(&mint, &sat).unwrap();
    let token = coinslot_tests::wallet::send(&wallet, 5, Default::default())
        .await
        .unwrap();
    third.receive(&token.to_string()).await.unwrap();
    assert_eq!(third.balance(&mint, &sat).await.unwrap(), 18);
    nip60.publish(&third, &mint, &sat).await.unwrap();
    let fourth = fresh_wallets().await;
    let nip60 = Nip60::connect(keys.clone(), [&relay_url]).await.unwrap();
    assert_eq!(nip60.restore(&fourth).await.unwrap(), 18);
    assert_eq!(fourth.balance(&mint, &sat).await.unwrap(), 18);

    // On the relay: the replaced token events deleted (kind 5; the relay drops them), so one
    // token event is left; a wallet event; history.
    let reader = Client::default();
    reader.add_relay(&relay_url).await.unwrap();
    reader.connect().await;
    let mine = |kind: Kind| Filter::new().author(keys.public_key()).kind(kind);
    let fetch = |filter: Filter| {
        let reader = reader.clone();
        async move {
            reader
                .fetch_events(filter, std::time::Duration::from_secs(3))
                .await
                .unwrap()
        }
    };
    assert_eq!(fetch(mine(TOKEN_KIND)).await.len(), 1);
    assert_eq!(fetch(mine(Kind::EventDeletion)).await.len(), 2);
    assert!(!fetch(mine(WALLET_KIND)).await.is_empty());
    assert!(!fetch(mine(Kind::Custom(7376))).await.is_empty());
    // Contents are encrypted: no proof secret in the clear.
    for event in fetch(mine(TOKEN_KIND)).await {
        assert!(!event.content.contains("secret"), "{}", event.content);
    }
}
