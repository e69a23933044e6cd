//! The in-memory store passes the storage conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_mint::{MemoryStore, MintStore};

coinslot_mint::store_conformance_tests!(|| async {
    (Arc::new(MemoryStore::new()) as Arc<dyn MintStore>, ())
});
