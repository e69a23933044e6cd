//! The in-memory store passes the storage conformance suite.

use std::sync::Arc;

use coinslot_mint::{MemoryStore, MintStore};

coinslot_mint::store_conformance_tests!(|| async {
    (Arc::new(MemoryStore::new()) as Arc<dyn MintStore>, ())
});
