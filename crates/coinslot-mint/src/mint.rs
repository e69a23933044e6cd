//! [`Mint`]: construction, keysets, info (NUT-01/02/06) and the payment listener.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use cashu::nuts::nut04::MintMethodSettings;
use cashu::nuts::nut06::{ContactInfo, MintVersion};
use cashu::nuts::nut17::{SupportedMethods, WsCommand};
use cashu::nuts::{
    nut04, nut05, CurrencyUnit, Id, KeySetInfo, KeysResponse, KeysetResponse, MintInfo, Nuts,
    PaymentMethod, PublicKey, SecretKey,
};
use cashu::Amount;
use futures::StreamExt;
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::backend::PaymentBackend;
use crate::config::{MintConfig, UnitConfig};
use crate::error::Error;
use crate::keys::{Keyring, LoadedKeyset, MintSeed};
use crate::nut17::MintEvent;
use crate::store::{KeysetRecord, MintStore, SettingRecord};
use crate::unix_now;

/// Version string served in NUT-06 info: `coinslot/x.y.z`.
pub const MINT_VERSION_NAME: &str = "coinslot";

/// The embedded closed-loop mint. Cheap to clone; all clones share one mint.
///
/// Operations live in modules named after their NUT: [`Mint::swap`] (NUT-03),
/// [`Mint::create_mint_quote`] and [`Mint::mint`] (NUT-04), [`Mint::check_state`] (NUT-07),
/// [`Mint::restore`] (NUT-09), [`Mint::subscribe`] (NUT-17).
#[derive(Clone)]
pub struct Mint {
    pub(crate) inner: Arc<MintInner>,
}

impl std::fmt::Debug for Mint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mint")
            .field("pubkey", &self.inner.pubkey.to_hex())
            .field("backend", &self.inner.backend.name())
            .finish_non_exhaustive()
    }
}

/// A handle that does not keep the mint alive (for long-lived connections such as
/// websockets, which should end when the server drops its mint).
#[derive(Clone, Debug)]
pub struct WeakMint(Weak<MintInner>);

impl WeakMint {
    /// The mint, if it is still running.
    pub fn upgrade(&self) -> Option<Mint> {
        self.0.upgrade().map(|inner| Mint { inner })
    }
}

pub(crate) struct MintInner {
    pub config: MintConfig,
    pub units: HashMap<CurrencyUnit, UnitConfig>,
    pub seed: MintSeed,
    pub identity: SecretKey,
    pub pubkey: PublicKey,
    pub store: Arc<dyn MintStore>,
    pub backend: Arc<dyn PaymentBackend>,
    pub keyring: RwLock<Arc<Keyring>>,
    pub events: broadcast::Sender<MintEvent>,
    pub activity: broadcast::Sender<crate::activity::Activity>,
    /// Serializes keyset rotations: each reads the keyring, derives and writes.
    pub rotation: tokio::sync::Mutex<()>,
    /// Live prices of units with a price source: msat per unit, and when it was set.
    pub rates: RwLock<HashMap<CurrencyUnit, (u64, std::time::Instant)>>,
    /// Names of settings other instances wrote ([`Mint::setting_changes`]).
    pub settings: broadcast::Sender<String>,
    /// Earnings counted and not yet in the store's ledger.
    pub earnings: crate::earnings::Tally,
}

impl Mint {
    /// Opens the mint: loads keysets from `store` (creating or rotating one per configured
    /// unit where needed), re-derives their keys from `seed`, and starts listening to the
    /// backend for paid invoices. Must run inside a tokio runtime.
    pub async fn new(
        config: MintConfig,
        seed: MintSeed,
        store: Arc<dyn MintStore>,
        backend: Arc<dyn PaymentBackend>,
    ) -> Result<Self, Error> {
        config.validate().map_err(Error::InvalidRequest)?;
        let identity = seed.identity_key()?;
        let pubkey = identity.public_key();
        let units: HashMap<CurrencyUnit, UnitConfig> = config
            .units
            .iter()
            .map(|u| (u.currency_unit(), u.clone()))
            .collect();

        let records = reconcile_keysets(&config, &seed, store.as_ref()).await?;
        let loaded = records
            .into_iter()
            .map(|record| LoadedKeyset::derive(&seed, record))
            .collect::<Result<Vec<_>, _>>()?;
        let keyring = Keyring::new(loaded);
        for keyset in keyring.active.values() {
            tracing::info!(
                keyset = %keyset.record.id,
                unit = %keyset.record.unit,
                input_fee_ppk = keyset.record.input_fee_ppk,
                "active keyset"
            );
        }

        let (events, _) = broadcast::channel(4096);
        let (activity, _) = broadcast::channel(crate::activity::ACTIVITY_CAPACITY);
        let mint = Mint {
            inner: Arc::new(MintInner {
                config,
                units,
                seed,
                identity,
                pubkey,
                store,
                backend,
                keyring: RwLock::new(Arc::new(keyring)),
                events,
                activity,
                rotation: tokio::sync::Mutex::new(()),
                rates: RwLock::new(HashMap::new()),
                settings: broadcast::channel(16).0,
                earnings: crate::earnings::Tally::default(),
            }),
        };
        mint.spawn_payment_listener().await?;
        mint.spawn_shared_listener();
        mint.spawn_reconciler();
        mint.spawn_earnings_flusher();
        Ok(mint)
    }

    /// A handle that does not keep the mint alive.
    pub fn downgrade(&self) -> WeakMint {
        WeakMint(Arc::downgrade(&self.inner))
    }

    /// The mint's public key (NUT-06 `pubkey`; also its nostr key).
    pub fn pubkey(&self) -> PublicKey {
        self.inner.pubkey
    }

    /// The mint's identity secret key. Handle with care: it is the mint's nostr key.
    pub fn identity_key(&self) -> &SecretKey {
        &self.inner.identity
    }

    /// The mint's identity as a nostr public key (`npub…`, NIP-19): the x of the NUT-06
    /// `pubkey`, which is always the even key.
    pub fn npub(&self) -> Result<String, Error> {
        let (x_only, _) = self.inner.identity.x_only_public_key(&cashu::SECP256K1);
        crate::keys::npub(&x_only.serialize())
    }

    /// Sets the live price of a unit with a price source (see [`crate::PriceSource`]).
    pub fn set_rate(&self, unit: &CurrencyUnit, msat_per_unit: u64) {
        self.inner
            .rates
            .write()
            .insert(unit.clone(), (msat_per_unit, std::time::Instant::now()));
    }

    /// Millisatoshis per unit for a Lightning top-up now: the fixed rate, or the live price
    /// if it is fresh enough.
    pub fn bolt11_rate(&self, unit: &CurrencyUnit) -> Result<u64, Error> {
        let config = self
            .inner
            .units
            .get(unit)
            .ok_or_else(|| Error::UnsupportedUnit(unit.to_string()))?;
        if let Some(rate) = config.bolt11_rate() {
            return Ok(rate);
        }
        let Some(price) = &config.price else {
            return Err(Error::UnsupportedUnit(unit.to_string()));
        };
        match self.inner.rates.read().get(unit) {
            Some((rate, at)) if at.elapsed().as_secs() <= price.max_age_secs => Ok(*rate),
            Some(_) => Err(Error::Backend(format!(
                "the price of {unit} is stale (older than {} s): top-ups in {unit} are paused",
                price.max_age_secs
            ))),
            None => Err(Error::Backend(format!(
                "no price for {unit} yet: top-ups in {unit} start once the price source answers"
            ))),
        }
    }

    /// The configuration the mint runs with.
    pub fn config(&self) -> &MintConfig {
        &self.inner.config
    }

    pub(crate) fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.inner.keyring.read())
    }

    /// NUT-01: the keys of every active keyset.
    pub fn keys(&self) -> KeysResponse {
        let ring = self.keyring();
        KeysResponse {
            keysets: ring
                .sorted()
                .into_iter()
                .filter(|k| k.record.active)
                .map(|k| k.keyset())
                .collect(),
        }
    }

    /// NUT-01: the keys of one keyset, active or not.
    pub fn keyset_keys(&self, id: &Id) -> Result<KeysResponse, Error> {
        let ring = self.keyring();
        let keyset = ring.get(id)?;
        Ok(KeysResponse {
            keysets: vec![keyset.keyset()],
        })
    }

    /// NUT-02: the input fee spending `proofs` costs, by their keysets' `input_fee_ppk`;
    /// an unknown keyset is an error.
    pub fn input_fee(&self, proofs: &[cashu::nuts::Proof]) -> Result<u64, Error> {
        let ring = self.keyring();
        let mut ppk: u64 = 0;
        for proof in proofs {
            ppk = ppk.saturating_add(ring.get(&proof.keyset_id)?.record.input_fee_ppk);
        }
        Ok(crate::verify::fee_of(ppk))
    }

    /// NUT-02: every keyset with its unit, state and fee.
    pub fn keysets(&self) -> KeysetResponse {
        KeysetResponse {
            keysets: self
                .keyring()
                .sorted()
                .into_iter()
                .map(|k| k.info())
                .collect(),
        }
    }

    /// The active keyset of a unit.
    pub fn active_keyset(&self, unit: &CurrencyUnit) -> Option<KeySetInfo> {
        self.keyring().active.get(unit).map(|k| k.info())
    }

    /// NUT-06: what this mint is and which NUTs it supports. Melt (NUT-05) is always
    /// advertised as disabled.
    pub fn info(&self) -> MintInfo {
        let config = &self.inner.config;
        let mut mint_methods = Vec::new();
        let mut ws_methods = Vec::new();
        for unit in &config.units {
            if !unit.takes_lightning() {
                continue;
            }
            let currency = unit.currency_unit();
            mint_methods.push(MintMethodSettings {
                method: PaymentMethod::BOLT11,
                unit: currency.clone(),
                method_name: None,
                min_amount: Some(Amount::from(unit.min_mint)),
                max_amount: Some(Amount::from(unit.max_mint)),
                options: None,
            });
            ws_methods.push(SupportedMethods::new(
                PaymentMethod::BOLT11,
                currency,
                vec![WsCommand::Bolt11MintQuote, WsCommand::ProofState],
            ));
        }
        let nuts = Nuts::new()
            .nut04(nut04::Settings::new(mint_methods, false))
            .nut05(nut05::Settings {
                methods: Vec::new(),
                disabled: true,
            })
            .nut07(true)
            .nut08(false)
            .nut09(true)
            .nut10(true)
            .nut11(true)
            .nut12(true)
            .nut14(true)
            .nut17(ws_methods)
            .nut20(true);
        let info = &config.info;
        MintInfo {
            name: Some(info.name.clone()),
            pubkey: Some(self.inner.pubkey),
            version: Some(MintVersion::new(
                MINT_VERSION_NAME.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )),
            description: info.description.clone(),
            description_long: info.description_long.clone(),
            contact: (!info.contact.is_empty()).then(|| {
                info.contact
                    .iter()
                    .map(|c| ContactInfo::new(c.method.clone(), c.info.clone()))
                    .collect()
            }),
            nuts,
            icon_url: info.icon_url.clone(),
            urls: (!info.urls.is_empty()).then(|| info.urls.clone()),
            motd: info.motd.clone(),
            time: Some(unix_now()),
            tos_url: info.tos_url.clone(),
            max_array_length: None,
        }
    }

    /// Rotates a unit's keyset: a new keyset becomes active, the old one stays redeemable.
    /// Concurrent calls run one after the other, so each rotates once.
    pub async fn rotate_keyset(&self, unit: &CurrencyUnit) -> Result<KeySetInfo, Error> {
        let _rotating = self.inner.rotation.lock().await;
        let unit_config = self
            .inner
            .units
            .get(unit)
            .ok_or_else(|| Error::UnsupportedUnit(unit.to_string()))?
            .clone();
        let ring = self.keyring();
        let mut records: Vec<KeysetRecord> =
            ring.by_id.values().map(|k| k.record.clone()).collect();
        let changed = rotate(
            &mut records,
            &unit_config,
            &self.inner.seed,
            self.inner.config.keyset_id_version,
        )?;
        self.inner.store.put_keysets(&changed).await?;

        // Keys already loaded are reused; only the new keyset is derived.
        let loaded = records
            .into_iter()
            .map(|record| match ring.by_id.get(&record.id) {
                Some(existing) => Ok(existing.with_record(record)),
                None => LoadedKeyset::derive(&self.inner.seed, record),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        *self.inner.keyring.write() = Arc::new(Keyring::new(loaded));
        let active = self
            .active_keyset(unit)
            .ok_or_else(|| Error::Storage("rotated keyset is not active".into()))?;
        tracing::info!(unit = %unit, keyset = %active.id, "rotated keyset");
        Ok(active)
    }

    async fn spawn_payment_listener(&self) -> Result<(), Error> {
        let mut paid = self
            .inner
            .backend
            .paid_invoices()
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        let weak: Weak<MintInner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(lookup_id) = paid.next().await {
                let Some(inner) = weak.upgrade() else { break };
                let mint = Mint { inner };
                if let Err(err) = mint.on_invoice_paid(&lookup_id).await {
                    tracing::error!(error = %err, "could not record a paid invoice");
                }
            }
            tracing::debug!("payment listener stopped");
        });
        Ok(())
    }
}

impl Mint {
    /// The setting `name` in the store, shared by every instance on it.
    pub async fn setting(&self, name: &str) -> Result<Option<SettingRecord>, Error> {
        Ok(self.inner.store.setting(name).await?)
    }

    /// Writes the setting `name` durably; returns its new version. Other instances on the
    /// store hear of it through their [`Mint::setting_changes`].
    pub async fn put_setting(&self, name: &str, value: &[u8]) -> Result<u64, Error> {
        Ok(self
            .inner
            .store
            .put_setting(name, value, unix_now())
            .await?)
    }

    /// Names of the settings other instances on a shared store write from now on (read the
    /// setting to learn its value and version). Nothing comes on a store only this process
    /// writes.
    pub fn setting_changes(&self) -> broadcast::Receiver<String> {
        self.inner.settings.subscribe()
    }

    /// Whether other processes write to this mint's store too (instances on one database).
    pub fn store_is_shared(&self) -> bool {
        self.inner.store.shared()
    }

    /// Publishes to this process's subscribers what other instances on a shared store did.
    fn spawn_shared_listener(&self) {
        let Some(mut shared) = self.inner.store.shared_events() else {
            return;
        };
        let weak: Weak<MintInner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let event = match shared.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed changes from other instances");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Some(inner) = weak.upgrade() else { break };
                let mint = Mint { inner };
                match event {
                    crate::store::SharedEvent::Spent(ys) => {
                        for y in ys {
                            mint.publish(MintEvent::ProofState(cashu::nuts::ProofState {
                                y,
                                state: cashu::nuts::State::Spent,
                                witness: None,
                            }));
                        }
                    }
                    crate::store::SharedEvent::Setting(name) => {
                        let _ = mint.inner.settings.send(name);
                    }
                    crate::store::SharedEvent::Quote(id) => {
                        match mint.inner.store.mint_quote(&id).await {
                            Ok(Some(quote)) => mint.publish(MintEvent::MintQuote(
                                crate::nut04::quote_response(&quote),
                            )),
                            Ok(None) => {}
                            Err(err) => {
                                tracing::warn!(error = %err, "cannot read a quote another instance changed")
                            }
                        }
                    }
                }
            }
            tracing::debug!("shared-store listener stopped");
        });
    }
}

/// Loads keysets and makes sure each configured unit has an active keyset matching its
/// configuration (fee, amounts, id version); otherwise derives the next one and deactivates
/// the old. Units no longer configured keep their keysets, inactive, so their ecash redeems.
async fn reconcile_keysets(
    config: &MintConfig,
    seed: &MintSeed,
    store: &dyn MintStore,
) -> Result<Vec<KeysetRecord>, Error> {
    let mut records = store.keysets().await?;
    let mut changed: Vec<KeysetRecord> = Vec::new();
    for unit in &config.units {
        let currency = unit.currency_unit();
        let matches = |r: &KeysetRecord| {
            r.input_fee_ppk == unit.input_fee_ppk
                && r.max_order == unit.max_order
                && r.id_version == config.keyset_id_version
        };
        let active_ok = records
            .iter()
            .any(|r| r.unit == currency && r.active && matches(r));
        if active_ok {
            continue;
        }
        let rotated = rotate(&mut records, unit, seed, config.keyset_id_version)?;
        if let Some(new) = rotated.last() {
            tracing::info!(unit = %currency, keyset = %new.id, "created keyset");
        }
        changed.extend(rotated);
    }
    for record in records.iter_mut() {
        let configured = config
            .units
            .iter()
            .any(|u| u.currency_unit() == record.unit);
        if record.active && !configured {
            record.active = false;
            changed.push(record.clone());
        }
    }
    if !changed.is_empty() {
        store.put_keysets(&changed).await?;
    }
    Ok(records)
}

/// Rotates `unit` within `records`: its active keysets are deactivated and a new keyset at
/// the next derivation index is added. Returns the records to write (the new one last).
fn rotate(
    records: &mut Vec<KeysetRecord>,
    unit: &UnitConfig,
    seed: &MintSeed,
    id_version: crate::store::KeysetIdVersion,
) -> Result<Vec<KeysetRecord>, Error> {
    let currency = unit.currency_unit();
    let next_index = records
        .iter()
        .filter(|r| r.unit == currency)
        .map(|r| r.derivation_index.saturating_add(1))
        .max()
        .unwrap_or(0);
    let mut changed = Vec::new();
    for record in records
        .iter_mut()
        .filter(|r| r.unit == currency && r.active)
    {
        record.active = false;
        changed.push(record.clone());
    }
    let new = new_keyset_record(seed, unit, next_index, id_version)?;
    changed.push(new.clone());
    records.push(new);
    Ok(changed)
}

fn new_keyset_record(
    seed: &MintSeed,
    unit: &UnitConfig,
    derivation_index: u32,
    id_version: crate::store::KeysetIdVersion,
) -> Result<KeysetRecord, Error> {
    let currency = unit.currency_unit();
    let keyset = seed.derive_keyset(
        &currency,
        derivation_index,
        unit.max_order,
        unit.input_fee_ppk,
        id_version,
    )?;
    Ok(KeysetRecord {
        id: keyset.id,
        unit: currency,
        derivation_index,
        input_fee_ppk: unit.input_fee_ppk,
        max_order: unit.max_order,
        id_version,
        active: true,
        created_at: unix_now(),
    })
}

/// Requests with more crypto than this many points run on the blocking pool, so one large
/// swap cannot stall the async workers that serve everyone else.
const INLINE_CRYPTO_MAX: usize = 16;

impl Mint {
    pub(crate) async fn run_crypto<T, F>(&self, weight: usize, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Error> + Send + 'static,
    {
        if weight <= INLINE_CRYPTO_MAX {
            work()
        } else {
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| Error::Storage(format!("crypto task failed: {e}")))?
        }
    }

    /// Fails with `TokenAlreadySpent` if any input is spent (a read; the commit re-checks).
    pub(crate) async fn ensure_unspent(
        &self,
        proofs: &[crate::store::SpentProof],
    ) -> Result<(), Error> {
        let ys: Vec<PublicKey> = proofs.iter().map(|p| p.y).collect();
        if self.inner.store.spent(&ys).await?.into_iter().any(|s| s) {
            return Err(Error::TokenAlreadySpent);
        }
        Ok(())
    }

    /// Fails with `BlindedMessageAlreadySigned` if any output was signed before.
    pub(crate) async fn ensure_unsigned(
        &self,
        outputs: &[cashu::nuts::BlindedMessage],
    ) -> Result<(), Error> {
        let blinded: Vec<PublicKey> = outputs.iter().map(|o| o.blinded_secret).collect();
        let known = self.inner.store.blind_signatures(&blinded).await?;
        if known.iter().any(Option::is_some) {
            return Err(Error::BlindedMessageAlreadySigned);
        }
        Ok(())
    }
}
