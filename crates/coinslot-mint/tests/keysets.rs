//! Keysets: derived from the seed, stable across restarts, v1/v2 ids, wrong seed refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::cashu::nuts::nut02::KeySetVersion;
use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_mint::{
    FakeBackend, KeysetIdVersion, MemoryStore, Mint, MintConfig, MintSeed, MintStore, UnitConfig,
};

async fn open(
    config: MintConfig,
    seed: &MintSeed,
    store: &Arc<MemoryStore>,
) -> Result<Mint, coinslot_mint::Error> {
    Mint::new(
        config,
        seed.clone(),
        Arc::clone(store) as Arc<dyn MintStore>,
        Arc::new(FakeBackend::new(Default::default())),
    )
    .await
}

#[tokio::test]
async fn same_seed_same_keysets_and_ids_verify() {
    let seed = MintSeed::generate();
    let store = Arc::new(MemoryStore::new());
    let first = open(MintConfig::default(), &seed, &store).await.unwrap();
    let keys = first.keys();
    assert_eq!(keys.keysets.len(), 1);
    let keyset = &keys.keysets[0];
    assert_eq!(keyset.id.get_version(), KeySetVersion::Version01);
    keyset
        .verify_id()
        .expect("a wallet re-derives the same v2 id");
    assert_eq!(keyset.keys.len(), 32);

    // A second mint on a fresh store with the same seed derives the same keyset.
    let other = open(MintConfig::default(), &seed, &Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    assert_eq!(other.keys().keysets[0].id, keyset.id);
    assert_eq!(
        other.pubkey(),
        first.pubkey(),
        "identity key derives from the seed"
    );
}

#[tokio::test]
async fn v1_ids_when_configured() {
    let config = MintConfig {
        keyset_id_version: KeysetIdVersion::V1,
        ..MintConfig::default()
    };
    let mint = open(config, &MintSeed::generate(), &Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let keyset = &mint.keys().keysets[0];
    assert_eq!(keyset.id.get_version(), KeySetVersion::Version00);
    keyset.verify_id().expect("v1 id verifies");
}

#[tokio::test]
async fn a_different_seed_is_refused() {
    let store = Arc::new(MemoryStore::new());
    open(MintConfig::default(), &MintSeed::generate(), &store)
        .await
        .unwrap();
    let err = open(MintConfig::default(), &MintSeed::generate(), &store)
        .await
        .expect_err("a store from another seed must not open");
    assert!(err.to_string().contains("wrong seed"), "{err}");
}

#[tokio::test]
async fn rotation_keeps_old_keysets_and_units_get_their_own() {
    let seed = MintSeed::generate();
    let store = Arc::new(MemoryStore::new());
    let config = MintConfig {
        units: vec![UnitConfig::new("sat"), UnitConfig::new("credit")],
        ..MintConfig::default()
    };
    let mint = open(config.clone(), &seed, &store).await.unwrap();
    let credit = CurrencyUnit::custom("credit");
    let before = mint.active_keyset(&credit).unwrap();
    let sat = mint.active_keyset(&CurrencyUnit::Sat).unwrap();
    assert_ne!(before.id, sat.id);

    let after = mint.rotate_keyset(&credit).await.unwrap();
    assert_ne!(after.id, before.id);
    let listed = mint.keysets().keysets;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|k| k.id == before.id && !k.active));
    assert!(mint.keyset_keys(&before.id).is_ok(), "old keys stay served");

    // Restart: the rotation is remembered.
    let reopened = open(config, &seed, &store).await.unwrap();
    assert_eq!(reopened.active_keyset(&credit).unwrap().id, after.id);
    assert_eq!(reopened.keysets().keysets.len(), 3);
}
