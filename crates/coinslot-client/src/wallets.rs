//! The client's ecash: one cdk wallet per (mint, unit), all in one wallet database and
//! derived from one seed, opened as payments need them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use cdk::cdk_database::{self, WalletDatabase};
use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, Token};
use cdk::wallet::{ReceiveOptions, Wallet, WalletBuilder};
use parking_lot::Mutex;

use crate::Error;

type Db = Arc<dyn WalletDatabase<cdk_database::Error> + Send + Sync>;

/// File names inside a wallet directory.
pub const SEED_FILE: &str = "seed";
/// The wallet database (SQLite) inside a wallet directory.
pub const DB_FILE: &str = "wallet.sqlite";

/// Every wallet of one client.
#[derive(Clone)]
pub struct Wallets {
    db: Db,
    seed: [u8; 64],
    open: Arc<Mutex<HashMap<(MintUrl, CurrencyUnit), Wallet>>>,
}

impl std::fmt::Debug for Wallets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallets").finish_non_exhaustive()
    }
}

impl Wallets {
    /// Wallets kept in `dir`: its `seed` (created on first use, mode 0600) and its SQLite
    /// database.
    pub async fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Wallet(format!("cannot create {}: {e}", dir.display())))?;
        let seed = load_or_create_seed(&dir.join(SEED_FILE))?;
        let db = cdk_sqlite::WalletSqliteDatabase::new(dir.join(DB_FILE))
            .await
            .map_err(|e| Error::Wallet(format!("cannot open the wallet database: {e}")))?;
        Ok(Self::with_db(Arc::new(db), seed))
    }

    /// Wallets in memory (tests, one-off scripts): gone when dropped.
    pub async fn in_memory(seed: [u8; 64]) -> Result<Self, Error> {
        let db = cdk_sqlite::wallet::memory::empty()
            .await
            .map_err(|e| Error::Wallet(format!("cannot create the wallet database: {e}")))?;
        Ok(Self::with_db(Arc::new(db), seed))
    }

    fn with_db(db: Db, seed: [u8; 64]) -> Self {
        Self {
            db,
            seed,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The wallet for `unit` at `mint`.
    pub fn wallet(&self, mint: &MintUrl, unit: &CurrencyUnit) -> Result<Wallet, Error> {
        let mut open = self.open.lock();
        if let Some(wallet) = open.get(&(mint.clone(), unit.clone())) {
            return Ok(wallet.clone());
        }
        let wallet = WalletBuilder::new()
            .mint_url(mint.clone())
            .unit(unit.clone())
            .localstore(Arc::clone(&self.db))
            .seed(self.seed)
            .build()
            .map_err(|e| Error::Wallet(format!("cannot open a wallet for {mint}: {e}")))?;
        open.insert((mint.clone(), unit.clone()), wallet.clone());
        Ok(wallet)
    }

    /// What the wallet for `unit` at `mint` holds.
    pub async fn balance(&self, mint: &MintUrl, unit: &CurrencyUnit) -> Result<u64, Error> {
        let wallet = self.wallet(mint, unit)?;
        Ok(u64::from(wallet.total_balance().await?))
    }

    /// Every (mint, unit) with ecash, and how much.
    pub async fn balances(&self) -> Result<Vec<(MintUrl, CurrencyUnit, u64)>, Error> {
        let proofs = self
            .db
            .get_proofs(None, None, Some(vec![cdk::nuts::State::Unspent]), None)
            .await
            .map_err(|e| Error::Wallet(e.to_string()))?;
        let mut totals: HashMap<(MintUrl, CurrencyUnit), u64> = HashMap::new();
        for proof in proofs {
            *totals.entry((proof.mint_url, proof.unit)).or_default() +=
                u64::from(proof.proof.amount);
        }
        let mut all: Vec<_> = totals.into_iter().map(|((m, u), a)| (m, u, a)).collect();
        all.sort_by(|a, b| {
            (a.0.to_string(), a.1.to_string()).cmp(&(b.0.to_string(), b.1.to_string()))
        });
        Ok(all)
    }

    /// The unspent proofs of `unit` at `mint`.
    pub async fn unspent(
        &self,
        mint: &MintUrl,
        unit: &CurrencyUnit,
    ) -> Result<Vec<cdk::nuts::Proof>, Error> {
        let infos = self
            .db
            .get_proofs(
                Some(mint.clone()),
                Some(unit.clone()),
                Some(vec![cdk::nuts::State::Unspent]),
                None,
            )
            .await
            .map_err(|e| Error::Wallet(e.to_string()))?;
        Ok(infos.into_iter().map(|info| info.proof).collect())
    }

    /// Asks `mint` which of the wallet's unspent proofs in `unit` were spent elsewhere (by
    /// another device sharing the wallet, e.g. through NIP-60) and forgets those; returns
    /// how much was forgotten.
    pub async fn drop_spent(&self, mint: &MintUrl, unit: &CurrencyUnit) -> Result<u64, Error> {
        let proofs = self.unspent(mint, unit).await?;
        if proofs.is_empty() {
            return Ok(0);
        }
        let amounts: HashMap<cdk::nuts::PublicKey, u64> = proofs
            .iter()
            .filter_map(|p| Some((p.y().ok()?, u64::from(p.amount))))
            .collect();
        let states = self.wallet(mint, unit)?.check_proofs_spent(proofs).await?;
        Ok(states
            .iter()
            .filter(|s| s.state == cdk::nuts::State::Spent)
            .filter_map(|s| amounts.get(&s.y))
            .sum())
    }

    /// Adds proofs that are already this wallet's (kept elsewhere, e.g. on relays by
    /// NIP-60), skipping any it knows in any state, then asks the mint which are spent.
    /// Returns what was added and is unspent.
    pub async fn import(
        &self,
        mint: &MintUrl,
        unit: &CurrencyUnit,
        proofs: Vec<cdk::nuts::Proof>,
    ) -> Result<u64, Error> {
        let infos = proofs
            .into_iter()
            .map(|p| {
                cdk::wallet::types::ProofInfo::new(
                    p,
                    mint.clone(),
                    cdk::nuts::State::Unspent,
                    unit.clone(),
                )
                .map_err(|e| Error::BadToken(e.to_string()))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // Skip what the wallet knows in any state, and repeats within `proofs`.
        let mut known: HashSet<cdk::nuts::PublicKey> = self
            .db
            .get_proofs_by_ys(infos.iter().map(|info| info.y).collect())
            .await
            .map_err(|e| Error::Wallet(e.to_string()))?
            .into_iter()
            .map(|info| info.y)
            .collect();
        let fresh: Vec<_> = infos
            .into_iter()
            .filter(|info| known.insert(info.y))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let proofs: Vec<cdk::nuts::Proof> = fresh.iter().map(|info| info.proof.clone()).collect();
        self.db
            .update_proofs(fresh.clone(), Vec::new())
            .await
            .map_err(|e| Error::Wallet(e.to_string()))?;
        let states = self.wallet(mint, unit)?.check_proofs_spent(proofs).await?;
        let spent: HashSet<cdk::nuts::PublicKey> = states
            .iter()
            .filter(|s| s.state == cdk::nuts::State::Spent)
            .map(|s| s.y)
            .collect();
        Ok(fresh
            .iter()
            .filter(|info| !spent.contains(&info.y))
            .map(|info| u64::from(info.proof.amount))
            .sum())
    }

    /// Takes in a token (swapping it at its mint, so nobody else can spend it); returns its
    /// mint, unit and what arrived.
    pub async fn receive(&self, token: &str) -> Result<(MintUrl, CurrencyUnit, u64), Error> {
        let parsed: Token = token
            .trim()
            .parse()
            .map_err(|e| Error::BadToken(format!("{e}")))?;
        let mint = parsed
            .mint_url()
            .map_err(|e| Error::BadToken(format!("{e}")))?;
        let unit = parsed.unit().unwrap_or_default();
        let wallet = self.wallet(&mint, &unit)?;
        let amount = wallet
            .receive(token.trim(), ReceiveOptions::default())
            .await?;
        Ok((mint, unit, u64::from(amount)))
    }
}

fn load_or_create_seed(path: &Path) -> Result<[u8; 64], Error> {
    let fail = |what: String| Error::Wallet(format!("seed file {}: {what}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut seed = [0u8; 64];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| fail("not 128 hex characters".into()))?;
            Ok(seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 64];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
            write_private(path, &hex::encode(seed)).map_err(|e| fail(e.to_string()))?;
            Ok(seed)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
