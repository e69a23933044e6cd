//! [`EmbeddedMint`]: a mint whose seed and store live in one data directory.
//!
//! Layout of the directory: `seed` (64 bytes, hex, mode 0600: every key of the mint derives
//! from it, back it up) and `store/` (the sled store: spent proofs, quotes, receipts,
//! sessions). sled locks the directory, so one process owns it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coinslot_mint::{FakeBackend, Mint, MintConfig, MintSeed, PaymentBackend};
use coinslot_store_sled::SledStore;

/// File name of the seed inside the data directory.
pub const SEED_FILE: &str = "seed";
/// Directory name of the sled store inside the data directory.
pub const STORE_DIR: &str = "store";

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The seed file is not a seed.
    #[error("seed file {path}: {message}")]
    Seed {
        /// The seed file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] coinslot_mint::StoreError),
    /// The mint refused to start (configuration, or a store from another seed).
    #[error(transparent)]
    Mint(#[from] coinslot_mint::Error),
}

/// A running mint and its sled store.
#[derive(Debug, Clone)]
pub struct EmbeddedMint {
    /// The mint.
    pub mint: Mint,
    /// Its store (flush it on shutdown with [`SledStore::flush`]).
    pub store: SledStore,
}

impl EmbeddedMint {
    /// Opens (or creates) the mint in `data_dir` with `config` and a payment backend.
    pub async fn open(
        data_dir: impl AsRef<Path>,
        config: MintConfig,
        backend: Arc<dyn PaymentBackend>,
    ) -> Result<Self, OpenError> {
        Self::open_with_identity(data_dir, config, backend, None).await
    }

    /// Like [`EmbeddedMint::open`], with the mint's identity (NUT-06 `pubkey` and nostr
    /// key) given as 32 secret bytes (a decoded `nsec`) instead of derived from the seed.
    pub async fn open_with_identity(
        data_dir: impl AsRef<Path>,
        config: MintConfig,
        backend: Arc<dyn PaymentBackend>,
        identity: Option<&[u8; 32]>,
    ) -> Result<Self, OpenError> {
        let dir = data_dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
            what: "cannot create data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut seed = load_or_create_seed(&dir.join(SEED_FILE))?;
        if let Some(identity) = identity {
            seed = seed.with_identity(identity)?;
        }
        let store = SledStore::open(&dir.join(STORE_DIR))?;
        let mint = Mint::new(config, seed, Arc::new(store.clone()), backend).await?;
        Ok(Self { mint, store })
    }

    /// For development: the default configuration (sat) and the fake Lightning backend,
    /// which marks every invoice paid at once.
    pub async fn open_dev(data_dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        let backend = Arc::new(FakeBackend::new(Default::default()));
        Self::open(data_dir, MintConfig::default(), backend).await
    }
}

/// Reads the hex seed at `path`, or creates one readable by the owner only (0600).
pub fn load_or_create_seed(path: &Path) -> Result<MintSeed, OpenError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { what, path, source }
    };
    if path.exists() {
        return read_seed(path);
    }
    let seed = MintSeed::generate();
    let created = coinslot_mint::secret_file::create_once(path, seed.to_hex().as_bytes())
        .map_err(io("cannot create seed file"))?;
    if !created {
        return read_seed(path);
    }
    tracing::info!(path = %path.display(), "created a new mint seed; back it up");
    Ok(seed)
}

fn read_seed(path: &Path) -> Result<MintSeed, OpenError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { what, path, source }
    };
    let text = coinslot_mint::secret_file::read_private(path)
        .map_err(io("refusing to use the seed file"))?;
    MintSeed::from_hex(&text).map_err(|message| OpenError::Seed {
        path: path.to_path_buf(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reopening_keeps_the_same_mint() {
        let dir = tempfile::tempdir().unwrap();
        let pubkey = {
            let first = EmbeddedMint::open_dev(dir.path()).await.unwrap();
            first.store.flush().await.unwrap();
            first.mint.pubkey()
        };
        let again = EmbeddedMint::open_dev(dir.path()).await.unwrap();
        assert_eq!(again.mint.pubkey(), pubkey);
    }

    #[test]
    fn a_bad_seed_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SEED_FILE);
        std::fs::write(&path, "not hex").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = load_or_create_seed(&path).unwrap_err().to_string();
        assert!(
            err.contains("seed file") && err.contains("not hex"),
            "{err}"
        );
    }
}
