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
