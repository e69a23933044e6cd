//! SledStore passes the storage conformance suite, and keeps its state across reopening.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::store::{Commit, SpentProof};
use coinslot_mint::{MintStore, StoreError};
use coinslot_store_sled::SledStore;

coinslot_mint::store_conformance_tests!(|| async {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("open sled");
    (Arc::new(store) as Arc<dyn MintStore>, dir)
});

#[tokio::test]
async fn spends_survive_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let quote = coinslot_mint::store::conformance::sample_quote();
    let y = coinslot_mint::cashu::nuts::SecretKey::generate().public_key();
    let proof = SpentProof {
        y,
        keyset_id: "009a1f293253e41e".parse().expect("id"),
        amount: 4,
    };
    {
        let store = SledStore::open(dir.path()).expect("open");
        store.add_mint_quote(&quote).await.expect("quote");
        store
            .commit(Commit {
                spend: std::slice::from_ref(&proof),
                ..Commit::default()
            })
            .await
            .expect("spend");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(store.spent(&[y]).await.expect("states"), vec![true]);
    assert_eq!(
        store.mint_quote(&quote.id).await.expect("quote"),
        Some(quote)
    );
    let again = store
        .commit(Commit {
            spend: &[proof],
            ..Commit::default()
        })
        .await;
    assert!(matches!(again, Err(StoreError::AlreadySpent(_))));
}

/// Hundreds of concurrent commits all become durable: group commit never strands a waiter
/// (sled's own `flush_async` deadlocks here, sled issue #1308).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_all_complete() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let y = coinslot_mint::cashu::nuts::SecretKey::generate().public_key();
            let proof = SpentProof {
                y,
                keyset_id: "009a1f293253e41e".parse().expect("id"),
                amount: 1,
            };
            store
                .commit(Commit {
                    spend: &[proof],
                    ..Commit::default()
                })
                .await
                .map(|()| y)
        }));
    }
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut ys = Vec::new();
        for task in tasks {
            ys.push(task.await.expect("task").expect("commit"));
        }
        ys
    })
    .await
    .expect("every concurrent commit must complete");
    assert_eq!(store.spent(&all).await.expect("states"), vec![true; 400]);
}

/// A directory still locked by a handle that is about to go away (a restart in the same
/// process) is waited for, not refused.
#[test]
fn open_waits_for_a_handle_being_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = SledStore::open(dir.path()).expect("open");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let second = SledStore::open(dir.path());
    release.join().expect("release thread");
    assert!(second.is_ok(), "{:?}", second.err());
}

/// The store skips looking for a payment's receipt only under its inputs' own key: one key
/// paid for twice with different tokens (a challenge's, say) still finds the first receipt,
/// and the second token stays spendable.
#[tokio::test]
async fn only_the_inputs_own_receipt_key_goes_unchecked() {
    use coinslot_mint::cashu::nuts::CurrencyUnit;
    use coinslot_mint::{
        receipt_key, Error, FakeBackend, Mint, MintConfig, MintSeed, Payment, Purchase,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("open"));
    let mint = Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        store,
        Arc::new(FakeBackend::new(Default::default())),
    )
    .await
    .expect("mint");
    let sat = CurrencyUnit::Sat;
    let pay = |key: [u8; 32]| Payment {
        unit: CurrencyUnit::Sat,
        buys: Purchase::Price(1),
        require_lock: false,
        receipt: Some((key, Box::new(|_, _| b"paid".to_vec()))),
    };
    let (first, second) = (
        mint.make_proofs(&sat, 1).await.expect("proofs"),
        mint.make_proofs(&sat, 1).await.expect("proofs"),
    );
    let challenge = [42u8; 32];
    mint.redeem(first.clone(), pay(challenge))
        .await
        .expect("first payment");
    let again = mint.redeem(second.clone(), pay(challenge)).await;
    assert!(matches!(again, Err(Error::ReceiptChanged)), "{again:?}");

    let own = receipt_key(&second);
    mint.redeem(second.clone(), pay(own))
        .await
        .expect("the refused token stayed spendable");
    let replay = mint.redeem(second, pay(own)).await;
    assert!(
        matches!(replay, Err(Error::TokenAlreadySpent)),
        "{replay:?}"
    );
    assert_eq!(
        mint.receipt(&own).await.expect("read").map(|r| r.version),
        Some(1)
    );
    let reused = mint.redeem(first, pay(receipt_key(&[]))).await;
    assert!(
        matches!(reused, Err(Error::TokenAlreadySpent)),
        "{reused:?}"
    );
}
