//! What the fuzz targets share: each keeps one runtime and one in-memory mint (fixed seed,
//! fake Lightning backend) for all its inputs, built once on the first input.
//!
//! The targets are in `fuzz_targets/`; `fuzz/README.md` says how to run them.

use std::future::Future;
use std::sync::Arc;

use coinslot_mint::{FakeBackend, MemoryStore, Mint, MintConfig, MintSeed};
use tokio::runtime::Runtime;

/// A current-thread runtime, as the targets drive one input at a time.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A runtime and what `build` makes of a fresh in-memory mint on it.
pub fn with_mint<T, F, Fut>(build: F) -> (Runtime, T)
where
    F: FnOnce(Mint) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = runtime();
    let built = runtime.block_on(async {
        let mint = Mint::new(
            MintConfig::default(),
            MintSeed::from_bytes([7; 64]),
            Arc::new(MemoryStore::new()),
            Arc::new(FakeBackend::new(Default::default())),
        )
        .await
        .expect("an in-memory mint");
        build(mint).await
    });
    (runtime, built)
}
