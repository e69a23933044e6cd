//! The audit: books that add up pass; value created out of nothing, or counters that say
//! more was spent than issued, are reported.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_mint::store::{Commit, SpentProof};
use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed, MintStore};

async fn mint(store: &Arc<MemoryStore>) -> Mint {
    Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        Arc::clone(store) as Arc<dyn MintStore>,
        Arc::new(FakeBackend::new(Default::default())),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn operator_ecash_is_accounted_for_and_created_value_is_caught() {
    let store = Arc::new(MemoryStore::new());
    let mint = mint(&store).await;
    let sat = CurrencyUnit::Sat;

    // Operator ecash counts as value in, through a credit quote minted with it.
    let proofs = mint.issue_proofs(&sat, 21).await.unwrap();
    let audit = mint.audit().await.unwrap();
    assert!(audit.ok, "{audit:?}");
    let books = &audit.units[0];
    assert_eq!(
        (
            books.came_in,
            books.credit,
            books.minted_quotes,
            books.outstanding,
            books.retained
        ),
        (21, 21, 1, 21, 0)
    );

    // A payment of 5 with 16 back as change: the service retains 5.
    let spend: Vec<SpentProof> = proofs
        .iter()
        .map(|p| SpentProof {
            y: p.y().unwrap(),
            keyset_id: p.keyset_id,
            amount: u64::from(p.amount),
        })
        .collect();
    let change = mint.make_proofs(&sat, 16).await.unwrap();
    store
        .commit(Commit {
            spend: &spend,
            made: &change,
            ..Commit::default()
        })
        .await
        .unwrap();
    let audit = mint.audit().await.unwrap();
    assert!(audit.ok, "{audit:?}");
    assert_eq!(
        (audit.units[0].outstanding, audit.units[0].retained),
        (16, 5)
    );

    // Proofs made and counted without any value coming in: the books no longer add up.
    let forged = mint.make_proofs(&sat, 100).await.unwrap();
    store
        .commit(Commit {
            made: &forged,
            ..Commit::default()
        })
        .await
        .unwrap();
    let audit = mint.audit().await.unwrap();
    assert!(!audit.ok);
    assert_eq!(audit.violations.len(), 1, "{:?}", audit.violations);
    assert!(
        audit.violations[0].contains("116 owed") && audit.violations[0].contains("only 21 came in"),
        "{:?}",
        audit.violations
    );
}

#[tokio::test]
async fn more_redeemed_than_issued_is_reported_per_keyset() {
    let store = Arc::new(MemoryStore::new());
    let mint = mint(&store).await;
    let keyset = mint.keys().keysets[0].id;
    store
        .commit(Commit {
            spend: &[SpentProof {
                y: coinslot_mint::cashu::nuts::SecretKey::generate().public_key(),
                keyset_id: keyset,
                amount: 8,
            }],
            ..Commit::default()
        })
        .await
        .unwrap();
    let audit = mint.audit().await.unwrap();
    assert!(!audit.ok);
    assert_eq!(
        audit.violations,
        vec![format!("keyset {keyset}: 8 redeemed but only 0 issued")]
    );
}
