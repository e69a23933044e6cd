//! PostgresStore against a real PostgreSQL: the storage conformance suite, spends raced
//! between two pools (as two coinslotd instances would), and state kept across reconnects.
//!
//! Each test that needs the server is `#[ignore]`d (a plain `cargo test` lists it as
//! ignored); `cargo test -- --ignored` runs them against the database
//! `COINSLOT_TEST_POSTGRES_URL` names (`scripts/test.sh` does when it is set, and `.ci/run`
//! sets it to the server at 127.0.0.1:5432). Each works in a schema of its own, dropped at
//! the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::cashu::nuts::SecretKey;
use coinslot_mint::store::{Commit, SpentProof};
use coinslot_mint::{MintStore, StoreError};
use coinslot_store_postgres::{PostgresOptions, PostgresStore};

const URL_ENV: &str = "COINSLOT_TEST_POSTGRES_URL";

/// A fresh schema on the test server, dropped when the guard goes.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    /// A schema on the server `COINSLOT_TEST_POSTGRES_URL` names; without it the test fails
    /// saying so (it runs only when asked for, with `--ignored`).
    fn new() -> Self {
        let url = std::env::var(URL_ENV).unwrap_or_else(|_| {
            panic!("set {URL_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL tests")
        });
        let name = format!("coinslot_test_{:016x}", rand::random::<u64>());
        Self { url, name }
    }

    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: Some(self.name.clone()),
            ..PostgresOptions::default()
        }
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, self.options())
            .await
            .expect("connect to the test database")
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A runtime of its own: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                // Connected inside the schema it drops: connecting elsewhere would run the
                // migrations on that schema (`public`) of the machine's database.
                let options = PostgresOptions {
                    schema: Some(name.clone()),
                    ..PostgresOptions::default()
                };
                if let Ok(store) = PostgresStore::connect(&url, options).await {
                    let _ = sqlx_drop(&store, &name).await;
                }
            });
        })
        .join();
    }
}

async fn sqlx_drop(store: &PostgresStore, schema: &str) -> Result<(), StoreError> {
    store
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
}

coinslot_mint::store_conformance_tests!(
    needs "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set",
    || async {
        let schema = Schema::new();
        let store = schema.store().await;
        (Arc::new(store) as Arc<dyn MintStore>, schema)
    }
);

fn spent_proof() -> SpentProof {
    SpentProof {
        y: SecretKey::generate().public_key(),
        keyset_id: "009a1f293253e41e".parse().expect("id"),
        amount: 8,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn two_instances_racing_on_one_proof_have_one_winner() {
    let schema = Schema::new();
    // Two pools: what two coinslotd processes on one database are.
    let (a, b) = (schema.store().await, schema.store().await);
    for _ in 0..20 {
        let proof = spent_proof();
        let mut tries = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let proof = proof.clone();
            tries.push(tokio::spawn(async move {
                store
                    .commit(Commit {
                        spend: std::slice::from_ref(&proof),
                        ..Commit::default()
                    })
                    .await
            }));
        }
        let mut won = 0;
        for outcome in futures_join(tries).await {
            match outcome {
                Ok(()) => won += 1,
                Err(StoreError::AlreadySpent(_)) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(won, 1, "one proof was spent {won} times");
        assert_eq!(a.spent(&[proof.y]).await.unwrap(), vec![true]);
        assert_eq!(b.spent(&[proof.y]).await.unwrap(), vec![true]);
    }
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn state_survives_reconnecting_and_migrations_run_once() {
    let schema = Schema::new();
    let proof = spent_proof();
    {
        let store = schema.store().await;
        store
            .commit(Commit {
                spend: std::slice::from_ref(&proof),
                ..Commit::default()
            })
            .await
            .unwrap();
        store.close();
    }
    // Connecting again runs the (already applied) migrations without harm.
    let store = schema.store().await;
    assert_eq!(store.spent(&[proof.y]).await.unwrap(), vec![true]);
    let again = store
        .commit(Commit {
            spend: std::slice::from_ref(&proof),
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadySpent(_))),
        "{again:?}"
    );
    let supply = store.supply().await.unwrap();
    assert_eq!(supply.len(), 1);
    assert_eq!(supply[0].1.redeemed, 8);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let options = PostgresOptions {
        acquire_timeout: std::time::Duration::from_secs(1),
        ..PostgresOptions::default()
    };
    // Port 9 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://coinslot@127.0.0.1:9/coinslot", options)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot connect to PostgreSQL"),
        "{err}"
    );
    let err = PostgresStore::connect("mysql://nope", PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database URL"), "{err}");
}
