//! The conformance suite every [`MintStore`] must pass.
//!
//! A storage crate runs it with one line in its tests:
//!
//! ```text
//! coinslot_mint::store_conformance_tests!(|| async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = MyStore::open(dir.path()).unwrap();
//!     (std::sync::Arc::new(store) as std::sync::Arc<dyn coinslot_mint::MintStore>, dir)
//! });
//! ```
//!
//! The factory returns the store and a guard kept alive for the test (a temp dir, say).
//! For a store that needs a server which may not be there (PostgreSQL), write
//! `store_conformance_tests!(needs "PostgreSQL: set …", || async { … })`: every check is
//! `#[ignore]`d with that reason, so a plain `cargo test` lists them as ignored instead of
//! passing them unrun, and `cargo test -- --ignored` runs them (the factory then panics
//! with what is missing). Each check panics with a message naming the broken rule.

// A test suite: panicking with a message is how a check fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::str::FromStr;
use std::sync::Arc;

use cashu::nuts::{BlindSignature, CurrencyUnit, Id, MintQuoteState, PublicKey, SecretKey};
use cashu::Amount;

use super::{
    AccountTotal, AccountWrite, Commit, IssuedSignature, KeysetIdVersion, KeysetRecord,
    MintQuoteRecord, MintStore, PassWrite, QuoteTotal, ReceiptWrite, SpentProof, StoreError,
    Supply,
};
use super::{AnswerWrite, EarningsRecord, ReceiptGuard};

/// Generates one `#[tokio::test]` per conformance check for the store `$make` creates
/// (`needs "why", $make`: each test ignored with that reason unless run with `--ignored`).
#[macro_export]
macro_rules! store_conformance_tests {
    (needs $reason:literal, $make:expr) => {
        $crate::__store_conformance_tests!(@checks [needs $reason] $make);
    };
    ($make:expr) => {
        $crate::__store_conformance_tests!(@checks [required] $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_tests {
    (@checks [$($mode:tt)*] $make:expr) => {
        $crate::__store_conformance_tests!(
            @tests [$($mode)*] $make;
            keysets_round_trip,
            quotes_round_trip,
            spends_are_unique_and_atomic,
            signatures_are_unique_and_restorable,
            quote_issues_once,
            concurrent_spends_have_one_winner,
            concurrent_quote_issues_have_one_winner,
            points_are_keyed_as_points,
            receipts_are_written_with_their_spend,
            receipts_prune_by_age,
            receipt_guards_let_one_writer_win,
            receipts_of_their_inputs_are_written_once,
            concurrent_guarded_receipt_writes_have_one_winner,
            receipt_writes_see_every_path_that_wrote_before,
            answers_are_written_with_their_receipt_and_pruned,
            debits_in_a_commit_are_atomic_with_it,
            accounts_credit_debit_close,
            concurrent_debits_never_overdraw,
            account_close_needs_the_current_balance,
            supply_counts_what_commits_write,
            account_totals_sum_per_unit,
            minted_quotes_sum_issued_quotes_per_unit,
            unpaid_quotes_lists_unpaid_quotes_since,
            passes_are_bought_with_their_spend,
            concurrent_pass_extensions_add_up,
            revoked_passes_stay_revoked,
            a_store_that_takes_writes_is_healthy,
            settings_count_their_versions,
            earnings_add_up_per_hour_unit_and_route,
            concurrent_earnings_writers_add_up
        );
    };
    (@tests [needs $reason:literal] $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = $reason]
            async fn $name() {
                let (store, _guard) = ($make)().await;
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
    (@tests [required] $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = ($make)().await;
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}

fn point() -> PublicKey {
    SecretKey::generate().public_key()
}

fn keyset_id() -> Id {
    Id::from_str("009a1f293253e41e").unwrap_or_else(|e| panic!("test keyset id: {e}"))
}

fn spent(y: PublicKey) -> SpentProof {
    SpentProof {
        y,
        keyset_id: keyset_id(),
        amount: 8,
    }
}

fn signature(blinded: PublicKey) -> IssuedSignature {
    IssuedSignature {
        blinded,
        signature: BlindSignature {
            amount: Amount::from(8),
            keyset_id: keyset_id(),
            c: point(),
            dleq: None,
        },
    }
}

/// A quote in state UNPAID with fresh ids.
pub fn sample_quote() -> MintQuoteRecord {
    let id = uuid::Uuid::new_v4().to_string();
    MintQuoteRecord {
        lookup_id: format!("lookup-{id}"),
        id,
        amount: 64,
        unit: CurrencyUnit::Sat,
        request: "lnbcrt640n1fake".into(),
        state: MintQuoteState::Unpaid,
        expiry: 2_000_000_000,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        pubkey: Some(point()),
    }
}

/// Keysets are stored, listed, and replaced by id.
pub async fn keysets_round_trip(store: Arc<dyn MintStore>) {
    assert!(
        store.keysets().await.unwrap_or_default().is_empty(),
        "new store has keysets"
    );
    let a = KeysetRecord {
        id: keyset_id(),
        unit: CurrencyUnit::Sat,
        derivation_index: 0,
        input_fee_ppk: 100,
        max_order: 32,
        id_version: KeysetIdVersion::V1,
        active: true,
        created_at: 1,
    };
    let b = KeysetRecord {
        id: Id::from_str("00ad268c4d1f5826").unwrap_or_else(|e| panic!("{e}")),
        unit: CurrencyUnit::custom("credit"),
        derivation_index: 3,
        ..a.clone()
    };
    store
        .put_keysets(&[a.clone(), b.clone()])
        .await
        .expect("put keysets");
    let mut listed = store.keysets().await.expect("list keysets");
    listed.sort_by_key(|k| k.derivation_index);
    assert_eq!(
        listed,
        vec![a.clone(), b.clone()],
        "keysets did not round-trip"
    );

    let mut inactive = a.clone();
    inactive.active = false;
    store
        .put_keysets(&[inactive.clone()])
        .await
        .expect("update keyset");
    let listed = store.keysets().await.expect("list keysets");
    assert_eq!(
        listed.len(),
        2,
        "updating a keyset must replace it, not add one"
    );
    assert!(listed.contains(&inactive), "keyset update was lost");
}

/// Quotes are found by id and lookup id; ids are unique; paid is a one-way transition.
pub async fn quotes_round_trip(store: Arc<dyn MintStore>) {
    let quote = sample_quote();
    store.add_mint_quote(&quote).await.expect("add quote");
    assert_eq!(
        store.mint_quote(&quote.id).await.expect("get"),
        Some(quote.clone())
    );
    assert_eq!(
        store
            .mint_quote_by_lookup_id(&quote.lookup_id)
            .await
            .expect("by lookup"),
        Some(quote.clone())
    );
    assert_eq!(store.mint_quote("nope").await.expect("get unknown"), None);
    assert_eq!(
        store
            .mint_quote_by_lookup_id("nope")
            .await
            .expect("lookup unknown"),
        None
    );

    let mut same_id = sample_quote();
    same_id.id = quote.id.clone();
    assert!(
        matches!(
            store.add_mint_quote(&same_id).await,
            Err(StoreError::Duplicate(_))
        ),
        "a second quote with the same id was accepted"
    );
    let mut same_lookup = sample_quote();
    same_lookup.lookup_id = quote.lookup_id.clone();
    assert!(
        matches!(
            store.add_mint_quote(&same_lookup).await,
            Err(StoreError::Duplicate(_))
        ),
        "a second quote with the same lookup id was accepted"
    );

    let paid = store
        .mark_mint_quote_paid(&quote.id, 1_800_000_000)
        .await
        .expect("mark paid")
        .expect("quote exists");
    assert_eq!(paid.state, MintQuoteState::Paid);
    assert_eq!(paid.updated_at, 1_800_000_000);
    let again = store
        .mark_mint_quote_paid(&quote.id, 1_900_000_000)
        .await
        .expect("mark paid twice")
        .expect("quote exists");
    assert_eq!(
        again, paid,
        "marking a paid quote paid again must change nothing"
    );
    assert_eq!(store.mint_quote(&quote.id).await.expect("get"), Some(paid));
    assert_eq!(
        store
            .mark_mint_quote_paid("nope", 1)
            .await
            .expect("unknown"),
        None
    );
}

/// A `Y` is spent once; a commit with one spent input writes nothing at all.
pub async fn spends_are_unique_and_atomic(store: Arc<dyn MintStore>) {
    let (a, b, c) = (point(), point(), point());
    store
        .commit(Commit {
            spend: &[spent(a), spent(b)],
            ..Commit::default()
        })
        .await
        .expect("first spend");
    assert_eq!(
        store.spent(&[a, b, c]).await.expect("states"),
        vec![true, true, false]
    );

    let fresh_sig = signature(point());
    let result = store
        .commit(Commit {
            spend: &[spent(c), spent(a)],
            issue: std::slice::from_ref(&fresh_sig),
            issue_quote: None,
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::AlreadySpent(_))),
        "double spend accepted"
    );
    assert_eq!(
        store.spent(&[c]).await.expect("states"),
        vec![false],
        "a failed commit marked an input spent"
    );
    assert_eq!(
        store
            .blind_signatures(&[fresh_sig.blinded])
            .await
            .expect("sigs"),
        vec![None],
        "a failed commit recorded a signature"
    );

    let d = point();
    let result = store
        .commit(Commit {
            spend: &[spent(d), spent(d)],
            ..Commit::default()
        })
        .await;
    assert!(
        result.is_err(),
        "the same Y twice in one commit was accepted"
    );
    assert_eq!(store.spent(&[d]).await.expect("states"), vec![false]);
}

/// A `B_` is signed once, and its signature is found again for restore.
pub async fn signatures_are_unique_and_restorable(store: Arc<dyn MintStore>) {
    let sig = signature(point());
    store
        .commit(Commit {
            issue: std::slice::from_ref(&sig),
            ..Commit::default()
        })
        .await
        .expect("issue");
    let other = point();
    assert_eq!(
        store
            .blind_signatures(&[sig.blinded, other])
            .await
            .expect("sigs"),
        vec![Some(sig.signature.clone()), None]
    );
    let y = point();
    let result = store
        .commit(Commit {
            spend: &[spent(y)],
            issue: &[signature(point()), signature(sig.blinded)],
            issue_quote: None,
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::AlreadySigned(_))),
        "a blinded message was signed twice"
    );
    assert_eq!(
        store.spent(&[y]).await.expect("states"),
        vec![false],
        "a failed commit spent its input"
    );
}

/// A quote issues only when paid, and only once.
pub async fn quote_issues_once(store: Arc<dyn MintStore>) {
    let quote = sample_quote();
    store.add_mint_quote(&quote).await.expect("add quote");
    let sig = signature(point());
    let unpaid = store
        .commit(Commit {
            issue: std::slice::from_ref(&sig),
            issue_quote: Some(&quote.id),
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(unpaid, Err(StoreError::QuoteNotPaid)),
        "unpaid quote issued"
    );
    assert_eq!(
        store.blind_signatures(&[sig.blinded]).await.expect("sigs"),
        vec![None]
    );

    store
        .mark_mint_quote_paid(&quote.id, 5)
        .await
        .expect("paid");
    store
        .commit(Commit {
            issue: std::slice::from_ref(&sig),
            issue_quote: Some(&quote.id),
            ..Commit::default()
        })
        .await
        .expect("issue paid quote");
    let stored = store
        .mint_quote(&quote.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.state, MintQuoteState::Issued);

    let again = store
        .commit(Commit {
            issue: &[signature(point())],
            issue_quote: Some(&quote.id),
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::QuoteAlreadyIssued)),
        "quote issued twice"
    );
    let unknown = store
        .commit(Commit {
            issue_quote: Some("no-such-quote"),
            ..Commit::default()
        })
        .await;
    assert!(matches!(unknown, Err(StoreError::QuoteNotFound)));
}

/// 32 concurrent commits spending one `Y`, payments and deposits mixed: exactly one wins, the
/// others write nothing; and each kind refuses a proof the other spent.
pub async fn concurrent_spends_have_one_winner(store: Arc<dyn MintStore>) {
    let shared = point();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = Arc::clone(&store);
        let own = point();
        tasks.push(tokio::spawn(async move {
            // Half are deposits: a store may take another road for a commit that also
            // writes an account, and both roads must see each other's spends.
            let spend = [spent(own), spent(shared)];
            let deposit = Commit {
                spend: &spend,
                ..credit("deposits", &CurrencyUnit::Sat, 2)
            };
            let payment = Commit {
                spend: &spend,
                ..Commit::default()
            };
            let result = store
                .commit(if i % 2 == 0 { payment } else { deposit })
                .await;
            (own, result)
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (own, result) = task.await.expect("task");
        match result {
            Ok(()) => winners += 1,
            Err(StoreError::AlreadySpent(_)) => {
                assert_eq!(
                    store.spent(&[own]).await.expect("states"),
                    vec![false],
                    "a losing commit spent its other input"
                );
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent spend must win");

    // One after the other, each road refuses what the other spent.
    let (paid, deposited) = (point(), point());
    store
        .commit(Commit {
            spend: &[spent(paid)],
            ..Commit::default()
        })
        .await
        .expect("payment");
    store
        .commit(Commit {
            spend: &[spent(deposited)],
            ..credit("deposits", &CurrencyUnit::Sat, 2)
        })
        .await
        .expect("deposit");
    let again = store
        .commit(Commit {
            spend: &[spent(paid)],
            ..credit("deposits", &CurrencyUnit::Sat, 2)
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadySpent(_))),
        "{again:?}"
    );
    let again = store
        .commit(Commit {
            spend: &[spent(deposited)],
            ..Commit::default()
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadySpent(_))),
        "{again:?}"
    );
}

/// 16 concurrent issues of one paid quote: exactly one wins.
pub async fn concurrent_quote_issues_have_one_winner(store: Arc<dyn MintStore>) {
    let quote = sample_quote();
    store.add_mint_quote(&quote).await.expect("add quote");
    store
        .mark_mint_quote_paid(&quote.id, 5)
        .await
        .expect("paid");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        let id = quote.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(Commit {
                    issue: &[signature(point())],
                    issue_quote: Some(&id),
                    ..Commit::default()
                })
                .await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => winners += 1,
            Err(StoreError::QuoteAlreadyIssued) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1, "a paid quote must issue exactly once");
}

/// The same point written in upper- and lower-case hex is one key.
pub async fn points_are_keyed_as_points(store: Arc<dyn MintStore>) {
    let y = point();
    let upper = PublicKey::from_hex(y.to_hex().to_uppercase()).expect("upper-case hex parses");
    store
        .commit(Commit {
            spend: &[spent(upper)],
            ..Commit::default()
        })
        .await
        .expect("spend");
    assert_eq!(store.spent(&[y]).await.expect("states"), vec![true]);
    let again = store
        .commit(Commit {
            spend: &[spent(y)],
            ..Commit::default()
        })
        .await;
    assert!(matches!(again, Err(StoreError::AlreadySpent(_))));
}

fn receipt_key() -> [u8; 32] {
    *uuid::Uuid::new_v4()
        .as_bytes()
        .repeat(2)
        .first_chunk::<32>()
        .expect("32 bytes")
}

/// A receipt is written by the commit that spends, and not at all if the spend fails.
pub async fn receipts_are_written_with_their_spend(store: Arc<dyn MintStore>) {
    let (key, y) = (receipt_key(), point());
    store
        .commit(Commit {
            spend: &[spent(y)],
            receipt: Some(ReceiptWrite {
                key: &key,
                created_at: 100,
                data: b"first",
                guard: ReceiptGuard::Any,
            }),
            ..Commit::default()
        })
        .await
        .expect("spend with receipt");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(
        (stored.created_at, stored.data.as_slice()),
        (100, &b"first"[..])
    );

    let other = receipt_key();
    let failed = store
        .commit(Commit {
            spend: &[spent(y)],
            receipt: Some(ReceiptWrite {
                key: &other,
                created_at: 100,
                data: b"second",
                guard: ReceiptGuard::Any,
            }),
            ..Commit::default()
        })
        .await;
    assert!(matches!(failed, Err(StoreError::AlreadySpent(_))));
    assert_eq!(
        store.receipt(&other).await.expect("read"),
        None,
        "a failed commit wrote its receipt"
    );

    store
        .commit(Commit {
            receipt: Some(ReceiptWrite {
                key: &key,
                created_at: 100,
                data: b"replaced",
                guard: ReceiptGuard::Any,
            }),
            ..Commit::default()
        })
        .await
        .expect("replace receipt");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(stored.data, b"replaced", "a receipt could not be replaced");
}

/// Pruning removes receipts older than the cut-off and keeps the rest. A receipt's age is
/// its first write's, whatever a later write says.
pub async fn receipts_prune_by_age(store: Arc<dyn MintStore>) {
    let (old, new, paid) = (receipt_key(), receipt_key(), receipt_key());
    let write = |key, created_at, guard| Commit {
        receipt: Some(ReceiptWrite {
            key,
            created_at,
            data: b"r",
            guard,
        }),
        ..Commit::default()
    };
    for (key, created_at) in [(&old, 10), (&new, 20)] {
        let commit = write(key, created_at, ReceiptGuard::Any);
        store.commit(commit).await.expect("receipt");
    }
    // A paid request's receipt, and the run's answer written lazily after it.
    let spend = [spent(point())];
    let commit = Commit {
        spend: &spend,
        ..write(&paid, 12, ReceiptGuard::OfInputs)
    };
    store.commit(commit).await.expect("payment");
    let answer = Commit {
        lazy: true,
        ..write(&paid, 40, ReceiptGuard::Version(1))
    };
    store.commit(answer).await.expect("answer");
    for (key, created_at) in [(&old, 30), (&new, 5)] {
        let commit = write(key, created_at, ReceiptGuard::Any);
        store.commit(commit).await.expect("receipt again");
    }
    for (key, created_at) in [(&old, 10), (&new, 20), (&paid, 12)] {
        let stored = store.receipt(key).await.expect("read").expect("receipt");
        assert_eq!(
            stored.created_at, created_at,
            "the first write's time is kept"
        );
    }
    assert_eq!(store.prune_receipts(15).await.expect("prune"), 2);
    assert_eq!(store.receipt(&old).await.expect("read"), None);
    assert_eq!(store.receipt(&paid).await.expect("read"), None);
    assert!(store.receipt(&new).await.expect("read").is_some());
    assert_eq!(store.prune_receipts(15).await.expect("prune again"), 0);
}

fn guarded<'a>(key: &'a [u8; 32], data: &'a [u8], guard: ReceiptGuard) -> Commit<'a> {
    Commit {
        receipt: Some(ReceiptWrite {
            key,
            created_at: 100,
            data,
            guard,
        }),
        ..Commit::default()
    }
}

/// A receipt under its inputs' own key ([`ReceiptGuard::OfInputs`]) is written by the one
/// commit that spends them, alone or racing: a store may skip looking for it, never the
/// spend's own check. The loser writes nothing, and the run's answer replaces it after.
pub async fn receipts_of_their_inputs_are_written_once(store: Arc<dyn MintStore>) {
    let (key, y) = (receipt_key(), point());
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let data = [b'p', i];
            let spend = [spent(y)];
            let commit = Commit {
                spend: &spend,
                ..guarded(&key, &data, ReceiptGuard::OfInputs)
            };
            (data, store.commit(commit).await)
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (data, Ok(())) => won.push(data),
            (_, Err(StoreError::AlreadySpent(_))) => {}
            (_, Err(other)) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one spend of the inputs must win");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!((stored.version, stored.data), (1, won[0].to_vec()));

    let replay = Commit {
        spend: &[spent(y)],
        ..guarded(&key, b"replayed", ReceiptGuard::OfInputs)
    };
    assert!(matches!(
        store.commit(replay).await,
        Err(StoreError::AlreadySpent(_))
    ));
    let answered = Commit {
        lazy: true,
        ..guarded(&key, b"answered", ReceiptGuard::Version(1))
    };
    store.commit(answered).await.expect("the run's write");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(
        (stored.version, stored.data.as_slice()),
        (2, &b"answered"[..])
    );
}

/// Receipts count their writes; `Absent` inserts only, `Version` replaces only the version
/// read, and a failed guard writes nothing of its commit (not even its spend).
pub async fn receipt_guards_let_one_writer_win(store: Arc<dyn MintStore>) {
    let key = receipt_key();
    let y = point();
    let first = Commit {
        spend: &[spent(y)],
        ..guarded(&key, b"running", ReceiptGuard::Absent)
    };
    store.commit(first).await.expect("insert");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(
        (stored.version, stored.data.as_slice()),
        (1, &b"running"[..])
    );

    let y2 = point();
    let again = Commit {
        spend: &[spent(y2)],
        ..guarded(&key, b"second insert", ReceiptGuard::Absent)
    };
    assert!(
        matches!(store.commit(again).await, Err(StoreError::ReceiptChanged)),
        "an insert found a receipt and went on"
    );
    assert_eq!(
        store.spent(&[y2]).await.expect("read"),
        vec![false],
        "a commit whose receipt guard failed spent its proofs"
    );

    let swap = guarded(&key, b"answered", ReceiptGuard::Version(1));
    store.commit(swap).await.expect("swap at the version read");
    let stale = guarded(&key, b"stale", ReceiptGuard::Version(1));
    assert!(matches!(
        store.commit(stale).await,
        Err(StoreError::ReceiptChanged)
    ));
    let missing = receipt_key();
    let nothing = guarded(&missing, b"x", ReceiptGuard::Version(1));
    assert!(matches!(
        store.commit(nothing).await,
        Err(StoreError::ReceiptChanged)
    ));
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(
        (stored.version, stored.data.as_slice()),
        (2, &b"answered"[..])
    );
    store
        .commit(guarded(&key, b"any", ReceiptGuard::Any))
        .await
        .expect("unguarded write");
    let stored = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!((stored.version, stored.created_at), (3, 100));
}

/// A receipt written with its spend, then replaced by a commit that also moves value (a
/// refund to an account), is written again only at the version that commit left: a store
/// that remembers what it wrote last must not trust it past another writer.
pub async fn receipt_writes_see_every_path_that_wrote_before(store: Arc<dyn MintStore>) {
    // Both orders: the stale write first, then the right one; and the right one alone.
    for stale_first in [true, false] {
        let key = receipt_key();
        let paid = Commit {
            spend: &[spent(point())],
            ..guarded(&key, b"running", ReceiptGuard::Absent)
        };
        store.commit(paid).await.expect("spend with receipt");
        let refund = Commit {
            account: Some(AccountWrite::Credit {
                id: "refunds",
                unit: &CurrencyUnit::Sat,
                amount: 2,
            }),
            ..guarded(&key, b"refunded", ReceiptGuard::Version(1))
        };
        store.commit(refund).await.expect("refund with receipt");
        if stale_first {
            let stale = guarded(&key, b"stale answer", ReceiptGuard::Version(1));
            assert!(matches!(
                store.commit(stale).await,
                Err(StoreError::ReceiptChanged)
            ));
            let stored = store.receipt(&key).await.expect("read").expect("receipt");
            assert_eq!(
                (stored.version, stored.data.as_slice()),
                (2, &b"refunded"[..])
            );
        }
        store
            .commit(guarded(&key, b"answered", ReceiptGuard::Version(2)))
            .await
            .expect("write at the version found");
        let stored = store.receipt(&key).await.expect("read").expect("receipt");
        assert_eq!(
            (stored.version, stored.data.as_slice()),
            (3, &b"answered"[..])
        );
    }
}

/// 32 writers that all read version 1 race to move the receipt on: exactly one wins.
pub async fn concurrent_guarded_receipt_writes_have_one_winner(store: Arc<dyn MintStore>) {
    // Made alone, and made by a payment (which a store may keep apart until it is written
    // again): the race is the same.
    for by_payment in [false, true] {
        let key = receipt_key();
        let made = guarded(&key, b"running", ReceiptGuard::Absent);
        let proof = [spent(point())];
        let made = if by_payment {
            Commit {
                spend: &proof,
                ..made
            }
        } else {
            made
        };
        store.commit(made).await.expect("insert");
        let mut tasks = Vec::new();
        for i in 0..32u8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let data = [i];
                // Half the writers keep an answer with it, as a run's last write does.
                let answer = AnswerWrite {
                    key: &key,
                    // 2100: far off, and within a BIGINT (u64::MAX is not: a store may
                    // refuse it, and then only when the winner kept an answer).
                    expires_at: 4_102_444_800,
                    data: b"answer",
                };
                let write = Commit {
                    answer: (i % 2 == 1).then_some(answer),
                    lazy: i % 2 == 1,
                    ..guarded(&key, &data, ReceiptGuard::Version(1))
                };
                store.commit(write).await.map(|()| i)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(i) => winners.push(i),
                Err(StoreError::ReceiptChanged) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "a guarded receipt write must have one winner"
        );
        let stored = store.receipt(&key).await.expect("read").expect("receipt");
        assert_eq!((stored.version, stored.data), (2, vec![winners[0]]));
        let answer = store.answer(&key).await.expect("read answer");
        assert_eq!(
            answer.map(|a| a.data),
            (winners[0] % 2 == 1).then(|| b"answer".to_vec()),
            "the answer is the winner's, or none"
        );
    }
}

/// An answer is written by the commit that writes it (and not if that commit fails), read
/// back as written, replaced by a later write, and pruned once expired.
pub async fn answers_are_written_with_their_receipt_and_pruned(store: Arc<dyn MintStore>) {
    let (key, other) = (receipt_key(), receipt_key());
    store
        .commit(guarded(&key, b"running", ReceiptGuard::Absent))
        .await
        .expect("insert");
    let body = vec![7u8; 70_000];
    let answered = Commit {
        answer: Some(AnswerWrite {
            key: &key,
            expires_at: 50,
            data: &body,
        }),
        ..guarded(&key, b"answered", ReceiptGuard::Version(1))
    };
    store.commit(answered).await.expect("answer");
    let stored = store.answer(&key).await.expect("read").expect("answer");
    assert_eq!((stored.expires_at, stored.data.len()), (50, body.len()));
    assert_eq!(stored.data, body, "the answer came back changed");
    // Writing the receipt again leaves its answer alone.
    store
        .commit(guarded(&key, b"answered again", ReceiptGuard::Version(2)))
        .await
        .expect("receipt again");
    let stored = store.answer(&key).await.expect("read").expect("answer");
    assert_eq!(stored.data, body, "a receipt write took its answer");
    let receipt = store.receipt(&key).await.expect("read").expect("receipt");
    assert_eq!(receipt.data, b"answered again");

    let lost = Commit {
        answer: Some(AnswerWrite {
            key: &other,
            expires_at: 50,
            data: b"lost",
        }),
        ..guarded(&other, b"stale", ReceiptGuard::Version(7))
    };
    assert!(store.commit(lost).await.is_err());
    assert_eq!(
        store.answer(&other).await.expect("read"),
        None,
        "a failed commit wrote its answer"
    );

    let later = Commit {
        answer: Some(AnswerWrite {
            key: &other,
            expires_at: 90,
            data: b"kept",
        }),
        ..Commit::default()
    };
    store.commit(later).await.expect("answer");
    assert_eq!(store.prune_answers(60).await.expect("prune"), 1);
    assert_eq!(store.answer(&key).await.expect("read"), None);
    let kept = store.answer(&other).await.expect("read").expect("answer");
    assert_eq!(kept.data, b"kept");
}

/// A debit inside a commit happens with its receipt or not at all: a failed guard leaves
/// the balance alone, and a failed debit writes no receipt.
pub async fn debits_in_a_commit_are_atomic_with_it(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    let id = format!("debit-{}", uuid::Uuid::new_v4());
    store.commit(credit(&id, &sat, 10)).await.expect("open");
    let key = receipt_key();
    let pay = |amount| Commit {
        account: Some(AccountWrite::Debit {
            id: &id,
            unit: &sat,
            amount,
        }),
        ..guarded(&key, b"paid", ReceiptGuard::Absent)
    };
    store.commit(pay(4)).await.expect("debit with receipt");
    let balance = |store: Arc<dyn MintStore>, id: String| async move {
        store
            .account(&id)
            .await
            .expect("read")
            .expect("account")
            .balance
    };
    assert_eq!(balance(Arc::clone(&store), id.clone()).await, 6);
    assert!(matches!(
        store.commit(pay(4)).await,
        Err(StoreError::ReceiptChanged)
    ));
    assert_eq!(
        balance(Arc::clone(&store), id.clone()).await,
        6,
        "a debit went through although its receipt guard failed"
    );

    let other = receipt_key();
    let too_much = Commit {
        account: Some(AccountWrite::Debit {
            id: &id,
            unit: &sat,
            amount: 7,
        }),
        ..guarded(&other, b"paid", ReceiptGuard::Absent)
    };
    assert!(matches!(
        store.commit(too_much).await,
        Err(StoreError::InsufficientBalance { balance: 6 })
    ));
    assert_eq!(store.receipt(&other).await.expect("read"), None);
    assert_eq!(balance(Arc::clone(&store), id.clone()).await, 6);
}

fn credit<'a>(id: &'a str, unit: &'a CurrencyUnit, amount: u64) -> Commit<'a> {
    Commit {
        account: Some(AccountWrite::Credit { id, unit, amount }),
        ..Commit::default()
    }
}

/// Credits create and grow an account; debits take from it and never below zero; a close
/// removes it; units never mix.
pub async fn accounts_credit_debit_close(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    let credit_unit = CurrencyUnit::custom("credit");
    assert_eq!(store.account("a").await.expect("read"), None);
    assert!(matches!(
        store.debit_account("a", &sat, 1).await,
        Err(StoreError::AccountNotFound)
    ));

    store.commit(credit("a", &sat, 10)).await.expect("open");
    store.commit(credit("a", &sat, 5)).await.expect("top up");
    let account = store.account("a").await.expect("read").expect("account");
    assert_eq!((account.balance, account.unit.clone()), (15, sat.clone()));

    assert_eq!(store.debit_account("a", &sat, 4).await.expect("debit"), 11);
    assert!(matches!(
        store.debit_account("a", &sat, 12).await,
        Err(StoreError::InsufficientBalance { balance: 11 })
    ));
    assert!(matches!(
        store.debit_account("a", &credit_unit, 1).await,
        Err(StoreError::AccountUnitMismatch(_))
    ));
    assert!(matches!(
        store.commit(credit("a", &credit_unit, 1)).await,
        Err(StoreError::AccountUnitMismatch(_))
    ));
    assert_eq!(
        store.debit_account("a", &sat, 11).await.expect("debit all"),
        0
    );

    store
        .commit(Commit {
            account: Some(AccountWrite::Close {
                id: "a",
                balance: 0,
            }),
            ..Commit::default()
        })
        .await
        .expect("close");
    assert_eq!(store.account("a").await.expect("read"), None);
}

/// 64 concurrent debits of 3 from a balance of 100: exactly 33 succeed, 1 is left.
pub async fn concurrent_debits_never_overdraw(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    store.commit(credit("race", &sat, 100)).await.expect("open");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.debit_account("race", &CurrencyUnit::Sat, 3).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::InsufficientBalance { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(ok, 33, "debits must be atomic");
    let account = store.account("race").await.expect("read").expect("account");
    assert_eq!(account.balance, 1);
}

/// A close that names a stale balance (a debit came between) writes nothing at all.
pub async fn account_close_needs_the_current_balance(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    store.commit(credit("c", &sat, 8)).await.expect("open");
    store.debit_account("c", &sat, 2).await.expect("debit");
    let blinded = point();
    let stale = store
        .commit(Commit {
            issue: &[signature(blinded)],
            account: Some(AccountWrite::Close {
                id: "c",
                balance: 8,
            }),
            ..Commit::default()
        })
        .await;
    assert!(matches!(stale, Err(StoreError::BalanceChanged)));
    assert_eq!(
        store.blind_signatures(&[blinded]).await.expect("read"),
        vec![None],
        "a failed close issued its payout"
    );
    assert!(matches!(
        store
            .commit(Commit {
                account: Some(AccountWrite::Close {
                    id: "none",
                    balance: 0
                }),
                ..Commit::default()
            })
            .await,
        Err(StoreError::AccountNotFound)
    ));
    store
        .commit(Commit {
            account: Some(AccountWrite::Close {
                id: "c",
                balance: 6,
            }),
            ..Commit::default()
        })
        .await
        .expect("close with the current balance");
}

fn made_proof(keyset: Id, amount: u64) -> cashu::nuts::Proof {
    cashu::nuts::Proof::new(
        Amount::from(amount),
        keyset,
        cashu::secret::Secret::generate(),
        point(),
    )
}

/// Supply counters move in the commit they count: spends add to `redeemed`, signatures and
/// made proofs to `issued`, per keyset; a failed commit moves nothing.
pub async fn supply_counts_what_commits_write(store: Arc<dyn MintStore>) {
    let other = Id::from_str("00ad268c4d1f5826").unwrap();
    assert!(
        store.supply().await.unwrap().is_empty(),
        "a new store has counters"
    );
    let y = point();
    store
        .commit(Commit {
            issue: &[signature(point()), signature(point())],
            made: &[made_proof(other, 4)],
            ..Commit::default()
        })
        .await
        .expect("issue");
    store
        .commit(Commit {
            spend: &[spent(y)],
            made: &[made_proof(keyset_id(), 2), made_proof(keyset_id(), 1)],
            ..Commit::default()
        })
        .await
        .expect("spend with change");
    let failed = store
        .commit(Commit {
            spend: &[spent(point()), spent(y)],
            issue: &[signature(point())],
            made: &[made_proof(other, 64)],
            ..Commit::default()
        })
        .await;
    assert!(failed.is_err(), "double spend accepted");

    let mut supply = store.supply().await.expect("supply");
    supply.sort_by_key(|(id, _)| id.to_string());
    let mut expected = vec![
        (
            keyset_id(),
            Supply {
                issued: 8 + 8 + 2 + 1,
                redeemed: 8,
            },
        ),
        (
            other,
            Supply {
                issued: 4,
                redeemed: 0,
            },
        ),
    ];
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(supply, expected, "counters do not match the commits");
    assert_eq!(
        expected[0].1.outstanding() + expected[1].1.outstanding(),
        15
    );
}

/// Account totals count open accounts and their balances per unit.
pub async fn account_totals_sum_per_unit(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    let credit_unit = CurrencyUnit::custom("credit");
    store.commit(credit("s1", &sat, 10)).await.expect("credit");
    store.commit(credit("s2", &sat, 7)).await.expect("credit");
    store
        .commit(credit("c1", &credit_unit, 3))
        .await
        .expect("credit");
    store.debit_account("s2", &sat, 2).await.expect("debit");
    let mut totals = store.account_totals().await.expect("totals");
    totals.sort_by_key(|t| t.unit.to_string());
    assert_eq!(
        totals,
        vec![
            AccountTotal {
                unit: credit_unit,
                accounts: 1,
                balance: 3
            },
            AccountTotal {
                unit: sat,
                accounts: 2,
                balance: 15
            },
        ]
    );
}

/// Minted-quote totals count `ISSUED` quotes only, per unit, with credit quotes apart.
pub async fn minted_quotes_sum_issued_quotes_per_unit(store: Arc<dyn MintStore>) {
    assert!(store.minted_quotes().await.expect("totals").is_empty());
    let credit_unit = CurrencyUnit::custom("credit");
    let mut quotes = Vec::new();
    for (unit, amount, credit, minted) in [
        (CurrencyUnit::Sat, 64, false, true),
        (CurrencyUnit::Sat, 5, true, true),
        (CurrencyUnit::Sat, 1000, false, false), // paid, not minted
        (credit_unit.clone(), 7, true, true),
    ] {
        let mut quote = sample_quote();
        quote.unit = unit;
        quote.amount = amount;
        if credit {
            quote.lookup_id = format!("credit:{}", quote.id);
        }
        store.add_mint_quote(&quote).await.expect("add");
        store
            .mark_mint_quote_paid(&quote.id, 1_700_000_001)
            .await
            .expect("paid");
        if minted {
            store
                .commit(Commit {
                    issue_quote: Some(&quote.id),
                    ..Commit::default()
                })
                .await
                .expect("issue");
        }
        quotes.push(quote);
    }
    let unpaid = sample_quote();
    store.add_mint_quote(&unpaid).await.expect("add unpaid");
    let mut totals = store.minted_quotes().await.expect("totals");
    totals.sort_by_key(|t| t.unit.to_string());
    assert_eq!(
        totals,
        vec![
            QuoteTotal {
                unit: credit_unit,
                quotes: 1,
                amount: 7,
                credit: 7
            },
            QuoteTotal {
                unit: CurrencyUnit::Sat,
                quotes: 2,
                amount: 69,
                credit: 5
            },
        ]
    );
}

/// `unpaid_quotes` lists the `UNPAID` quotes created since a time, and nothing else.
pub async fn unpaid_quotes_lists_unpaid_quotes_since(store: Arc<dyn MintStore>) {
    let mut old = sample_quote();
    old.created_at = 1_600_000_000;
    let fresh = sample_quote();
    let paid = sample_quote();
    for quote in [&old, &fresh, &paid] {
        store.add_mint_quote(quote).await.expect("add");
    }
    store
        .mark_mint_quote_paid(&paid.id, 1_700_000_001)
        .await
        .expect("paid");
    let unpaid = store.unpaid_quotes(1_650_000_000).await.expect("unpaid");
    assert_eq!(unpaid, vec![fresh.clone()], "only the fresh unpaid quote");
    let mut all: Vec<String> = store
        .unpaid_quotes(0)
        .await
        .expect("unpaid")
        .into_iter()
        .map(|q| q.id)
        .collect();
    all.sort();
    let mut expected = vec![old.id, fresh.id];
    expected.sort();
    assert_eq!(all, expected);
}

/// Spends `proof` and writes `write` in one commit.
async fn commit_pass(
    store: &Arc<dyn MintStore>,
    proof: PublicKey,
    write: PassWrite<'_>,
) -> Result<(), StoreError> {
    store
        .commit(Commit {
            spend: &[spent(proof)],
            pass: Some(write),
            ..Commit::default()
        })
        .await
}

fn pass_write<'a>(id: &'a str, unit: &'a CurrencyUnit, secs: u64, now: u64) -> PassWrite<'a> {
    PassWrite {
        id,
        scope: "vpn",
        unit,
        secs,
        now,
        client_key: None,
    }
}

/// A pass is bought by the commit that spends its payment, or not at all; buying again
/// extends it from its expiry (or from now, once it ran out).
pub async fn passes_are_bought_with_their_spend(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    let id = format!("pass-{}", point().to_hex());
    let first = point();
    let mut write = pass_write(&id, &sat, 180, 1_000);
    write.client_key = Some("wg-key");
    commit_pass(&store, first, write).await.expect("buy");
    let pass = store
        .pass(&id)
        .await
        .expect("read")
        .expect("the pass exists");
    assert_eq!((pass.expires_at, pass.created_at), (1_180, 1_000));
    assert_eq!(pass.client_key.as_deref(), Some("wg-key"));
    assert!(!pass.revoked);

    // A commit that fails (the proof is spent) extends nothing.
    let refused = commit_pass(&store, first, pass_write(&id, &sat, 60, 1_050)).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadySpent(_))),
        "{refused:?}"
    );
    assert_eq!(store.pass(&id).await.unwrap().unwrap().expires_at, 1_180);

    // Extended before expiry: from the expiry. After it: from now.
    commit_pass(&store, point(), pass_write(&id, &sat, 60, 1_100))
        .await
        .expect("extend");
    assert_eq!(store.pass(&id).await.unwrap().unwrap().expires_at, 1_240);
    commit_pass(&store, point(), pass_write(&id, &sat, 60, 5_000))
        .await
        .expect("renew");
    let pass = store.pass(&id).await.unwrap().unwrap();
    assert_eq!(pass.expires_at, 5_060);
    assert_eq!(
        pass.client_key.as_deref(),
        Some("wg-key"),
        "the key is kept"
    );

    // Another unit (or scope) is refused, and its spend undone.
    let usd = CurrencyUnit::Usd;
    let other = point();
    let mismatch = commit_pass(&store, other, pass_write(&id, &usd, 60, 5_000)).await;
    assert!(
        matches!(mismatch, Err(StoreError::PassMismatch(_))),
        "{mismatch:?}"
    );
    assert_eq!(store.spent(&[other]).await.unwrap(), vec![false]);

    let live = store.passes(5_000).await.expect("list");
    assert!(live.iter().any(|p| p.id == id));
    assert!(store
        .passes(5_060)
        .await
        .unwrap()
        .iter()
        .all(|p| p.id != id));
}

/// 16 extensions of one pass at once: every one of them counts.
pub async fn concurrent_pass_extensions_add_up(store: Arc<dyn MintStore>) {
    let id = Arc::new(format!("pass-{}", point().to_hex()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, id) = (Arc::clone(&store), Arc::clone(&id));
        tasks.push(tokio::spawn(async move {
            let sat = CurrencyUnit::Sat;
            commit_pass(&store, point(), pass_write(&id, &sat, 60, 1_000)).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("every extension commits");
    }
    let pass = store.pass(&id).await.unwrap().unwrap();
    assert_eq!(pass.expires_at, 1_000 + 16 * 60, "no extension was lost");
}

/// A revoked pass stays revoked and cannot be extended; unknown passes are not created.
pub async fn revoked_passes_stay_revoked(store: Arc<dyn MintStore>) {
    let sat = CurrencyUnit::Sat;
    let id = format!("pass-{}", point().to_hex());
    assert_eq!(store.revoke_pass(&id).await.expect("revoke unknown"), None);
    assert_eq!(store.pass(&id).await.unwrap(), None);
    commit_pass(&store, point(), pass_write(&id, &sat, 60, 1_000))
        .await
        .expect("buy");
    let revoked = store.revoke_pass(&id).await.unwrap().expect("known");
    assert!(revoked.revoked);
    assert!(store.pass(&id).await.unwrap().unwrap().revoked);
    let proof = point();
    let refused = commit_pass(&store, proof, pass_write(&id, &sat, 60, 1_010)).await;
    assert!(
        matches!(refused, Err(StoreError::PassRevoked)),
        "{refused:?}"
    );
    assert_eq!(
        store.spent(&[proof]).await.unwrap(),
        vec![false],
        "nothing spent"
    );
    assert_eq!(store.pass(&id).await.unwrap().unwrap().expires_at, 1_060);
}

/// A store that has just taken a write says it is healthy (readiness asks this).
pub async fn a_store_that_takes_writes_is_healthy(store: Arc<dyn MintStore>) {
    store
        .commit(Commit {
            spend: &[spent(point())],
            ..Commit::default()
        })
        .await
        .expect("spend");
    store.health().await.expect("a working store is healthy");
}

/// A setting reads back as last written, with one more version per write; names are apart.
pub async fn settings_count_their_versions(store: Arc<dyn MintStore>) {
    assert_eq!(store.setting("prices").await.expect("read"), None);
    assert_eq!(
        store
            .put_setting("prices", b"{\"a\":1}", 10)
            .await
            .expect("put"),
        1
    );
    assert_eq!(
        store
            .put_setting("prices", b"{\"a\":2}", 20)
            .await
            .expect("put"),
        2
    );
    assert_eq!(store.put_setting("other", b"x", 30).await.expect("put"), 1);
    let stored = store
        .setting("prices")
        .await
        .expect("read")
        .expect("setting");
    assert_eq!(
        (stored.version, stored.updated_at, stored.value.as_slice()),
        (2, 20, &b"{\"a\":2}"[..])
    );
}

fn earnings_row(hour: u64, unit: &str, route: &str, earned: u64, refunded: u64) -> EarningsRecord {
    EarningsRecord {
        hour,
        unit: unit.into(),
        route: route.into(),
        requests: 1,
        failed: u64::from(refunded > 0),
        earned,
        refunded,
    }
}

/// Ledger rows add to the stored row of their hour, unit and route (also twice in one
/// call), read back ordered, from an hour on.
pub async fn earnings_add_up_per_hour_unit_and_route(store: Arc<dyn MintStore>) {
    assert!(store.earnings(0).await.expect("read").is_empty());
    store
        .add_earnings(&[
            earnings_row(7_200, "sat", "GET /b", 5, 0),
            earnings_row(3_600, "sat", "GET /a", 2, 0),
            earnings_row(3_600, "sat", "GET /a", 2, 2),
        ])
        .await
        .expect("add");
    store
        .add_earnings(&[
            earnings_row(3_600, "sat", "GET /a", 3, 0),
            earnings_row(3_600, "usd", "", 7, 1),
            earnings_row(3_600, "sat", "GET /a/b", 1, 0),
        ])
        .await
        .expect("add again");
    let rows: Vec<_> = store
        .earnings(0)
        .await
        .expect("read")
        .into_iter()
        .map(|r| {
            (
                r.hour, r.unit, r.route, r.requests, r.failed, r.earned, r.refunded,
            )
        })
        .collect();
    let row = |hour, unit: &str, route: &str, requests, failed, earned, refunded| {
        (
            hour,
            unit.to_string(),
            route.to_string(),
            requests,
            failed,
            earned,
            refunded,
        )
    };
    assert_eq!(
        rows,
        vec![
            row(3_600, "sat", "GET /a", 3, 1, 7, 2),
            row(3_600, "sat", "GET /a/b", 1, 0, 1, 0),
            row(3_600, "usd", "", 1, 1, 7, 1),
            row(7_200, "sat", "GET /b", 1, 0, 5, 0),
        ]
    );
    let later = store.earnings(7_200).await.expect("read from an hour");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].route, "GET /b");
    assert!(store.earnings(10_800).await.expect("read").is_empty());
}

/// Writers adding to the same rows at once (instances on one database) lose no count.
pub async fn concurrent_earnings_writers_add_up(store: Arc<dyn MintStore>) {
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    store
                        .add_earnings(&[
                            earnings_row(0, "sat", "GET /a", 2, 0),
                            earnings_row(0, "sat", "GET /b", 1, 1),
                        ])
                        .await
                        .expect("add");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let rows = store.earnings(0).await.expect("read");
    let sums: Vec<_> = rows
        .iter()
        .map(|r| (r.route.as_str(), r.requests, r.failed, r.earned, r.refunded))
        .collect();
    assert_eq!(
        sums,
        vec![("GET /a", 100, 0, 200, 0), ("GET /b", 100, 100, 100, 100)]
    );
}
