//! The mint's seed, its identity key, and keysets derived from the seed (NUT-01/02).
//!
//! Nothing secret is stored outside the seed: every keyset's private keys are re-derived from
//! the seed at start-up, and the stored keyset id is checked against the derived one, so a
//! wrong seed is caught before the mint signs anything.

use std::collections::HashMap;
use std::sync::Arc;

use bitcoin::bip32::{ChildNumber, DerivationPath, Xpriv};
use cashu::nuts::nut01::MintKeyPair;
use cashu::nuts::nut02::KeySetVersion;
use cashu::nuts::{CurrencyUnit, Id, KeySet, KeySetInfo, Keys, MintKeySet, SecretKey};
use cashu::{Amount, SECP256K1};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::store::{KeysetIdVersion, KeysetRecord};

/// Purpose index of Coinslot's derivation paths (`m/129372'/…`, the Cashu purpose).
const PURPOSE: u32 = 129_372;

/// 64 bytes from which every key of the mint is derived, and optionally an identity key
/// given by the operator (an `nsec`) instead of the derived one.
#[derive(Clone)]
pub struct MintSeed {
    bytes: [u8; 64],
    identity: Option<SecretKey>,
}

impl std::fmt::Debug for MintSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MintSeed(<redacted>)")
    }
}

impl MintSeed {
    /// A seed from bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self {
            bytes,
            identity: None,
        }
    }

    /// Uses `secret` (32 bytes, e.g. a decoded `nsec`) as the identity key instead of the
    /// one derived from the seed; keysets still derive from the seed.
    pub fn with_identity(mut self, secret: &[u8; 32]) -> Result<Self, Error> {
        let key = SecretKey::from_slice(secret)
            .map_err(|e| Error::InvalidRequest(format!("identity key: {e}")))?;
        self.identity = Some(key);
        Ok(self)
    }

    /// A fresh random seed.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 64];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
        Self::from_bytes(bytes)
    }

    /// Parses the hex form written by [`MintSeed::to_hex`].
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("seed is not hex: {e}"))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("seed must be 64 bytes, found {}", b.len()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Hex form, for the seed file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    fn master(&self) -> Result<Xpriv, Error> {
        Xpriv::new_master(bitcoin::Network::Bitcoin, &self.bytes)
            .map_err(|e| Error::Storage(format!("invalid seed: {e}")))
    }

    /// The mint's identity key (`m/129372'/0'`): NUT-06 `pubkey`, and its nostr key.
    ///
    /// Normalized to an even public key (the derived secret negated when its point has an
    /// odd y), so the NUT-06 `pubkey` is `02 || x` where `x` is the BIP-340 x-only key nostr
    /// shows: wallets and nostr clients see one identity.
    /// An identity given with [`MintSeed::with_identity`] is normalized the same way.
    pub fn identity_key(&self) -> Result<SecretKey, Error> {
        let secret = match &self.identity {
            Some(given) => **given,
            None => {
                let path = [hardened(PURPOSE)?, hardened(0)?];
                self.master()?
                    .derive_priv(&SECP256K1, &path)
                    .map_err(|e| Error::Storage(format!("key derivation: {e}")))?
                    .private_key
            }
        };
        let (_, parity) = secret.x_only_public_key(&SECP256K1);
        let even = match parity {
            bitcoin::secp256k1::Parity::Even => secret,
            bitcoin::secp256k1::Parity::Odd => secret.negate(),
        };
        Ok(SecretKey::from(even))
    }

    /// The identity's nostr public key as `npub…` (NIP-19).
    pub fn npub(&self) -> Result<String, Error> {
        let (x_only, _) = self.identity_key()?.x_only_public_key(&SECP256K1);
        npub(&x_only.serialize())
    }

    /// A 32-byte secret for `purpose` (HMAC-SHA256 of the purpose under the seed), for keys
    /// that must survive a restart without a file of their own, such as the key that signs
    /// session credentials. Different purposes give unrelated secrets.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
        let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&self.bytes);
        engine.input(b"coinslot/");
        engine.input(purpose.as_bytes());
        hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
    }

    /// Derives the keyset a record describes (`m/129372'/1'/unit'/index'`).
    pub(crate) fn derive_keyset(
        &self,
        unit: &CurrencyUnit,
        derivation_index: u32,
        max_order: u8,
        input_fee_ppk: u64,
        id_version: KeysetIdVersion,
    ) -> Result<MintKeySet, Error> {
        let path = DerivationPath::from(vec![
            hardened(PURPOSE)?,
            hardened(1)?,
            hardened(unit_index(unit))?,
            hardened(derivation_index)?,
        ]);
        let amounts: Vec<u64> = (0..max_order).map(|i| 1u64 << i).collect();
        let version = match id_version {
            KeysetIdVersion::V1 => KeySetVersion::Version00,
            KeysetIdVersion::V2 => KeySetVersion::Version01,
        };
        Ok(MintKeySet::generate_from_xpriv(
            &SECP256K1,
            self.master()?,
            &amounts,
            unit.clone(),
            path,
            input_fee_ppk,
            None,
            version,
        ))
    }
}

/// An x-only (BIP-340) public key as a NIP-19 `npub…`.
pub fn npub(x_only: &[u8; 32]) -> Result<String, Error> {
    let hrp = bitcoin::bech32::Hrp::parse("npub").map_err(|e| Error::Storage(e.to_string()))?;
    bitcoin::bech32::encode::<bitcoin::bech32::Bech32>(hrp, x_only)
        .map_err(|e| Error::Storage(format!("npub: {e}")))
}

fn hardened(index: u32) -> Result<ChildNumber, Error> {
    ChildNumber::from_hardened_idx(index)
        .map_err(|e| Error::Storage(format!("derivation index {index}: {e}")))
}

/// A stable 31-bit index per unit name, so any custom unit gets its own branch.
fn unit_index(unit: &CurrencyUnit) -> u32 {
    let digest = Sha256::digest(unit.to_string().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff
}

/// A keyset with its private keys, ready to sign and verify.
#[derive(Debug)]
pub(crate) struct LoadedKeyset {
    pub record: KeysetRecord,
    pub keys: MintKeySet,
    pub public: Keys,
}

impl LoadedKeyset {
    /// Derives the keyset for `record` and checks the derived id against the stored one.
    pub fn derive(seed: &MintSeed, record: KeysetRecord) -> Result<Self, Error> {
        let keys = seed.derive_keyset(
            &record.unit,
            record.derivation_index,
            record.max_order,
            record.input_fee_ppk,
            record.id_version,
        )?;
        if keys.id != record.id {
            return Err(Error::Storage(format!(
                "keyset {} does not derive from this seed (derived {}): wrong seed file?",
                record.id, keys.id
            )));
        }
        let public = Keys::from(keys.keys.clone());
        Ok(Self {
            record,
            keys,
            public,
        })
    }

    /// The same keys under an updated record (e.g. deactivated), without deriving again.
    pub fn with_record(&self, record: KeysetRecord) -> Self {
        Self {
            record,
            keys: self.keys.clone(),
            public: self.public.clone(),
        }
    }

    /// The private key that signs `amount`.
    pub fn secret_key(&self, amount: u64) -> Result<&SecretKey, Error> {
        self.key_pair(amount).map(|pair| &pair.secret_key)
    }

    /// The key pair that signs `amount`.
    pub fn key_pair(&self, amount: u64) -> Result<&MintKeyPair, Error> {
        self.keys
            .keys
            .get(&Amount::from(amount))
            .ok_or_else(|| Error::AmountNotInKeyset {
                keyset: self.record.id.to_string(),
                amount,
            })
    }

    pub fn info(&self) -> KeySetInfo {
        KeySetInfo {
            id: self.record.id,
            unit: self.record.unit.clone(),
            active: self.record.active,
            input_fee_ppk: self.record.input_fee_ppk,
            final_expiry: None,
        }
    }

    pub fn keyset(&self) -> KeySet {
        KeySet {
            id: self.record.id,
            unit: self.record.unit.clone(),
            active: Some(self.record.active),
            keys: self.public.clone(),
            input_fee_ppk: self.record.input_fee_ppk,
            final_expiry: None,
        }
    }
}

/// All keysets of the mint, immutable; rotation swaps in a new `Keyring`.
#[derive(Debug, Default)]
pub(crate) struct Keyring {
    pub by_id: HashMap<Id, Arc<LoadedKeyset>>,
    pub active: HashMap<CurrencyUnit, Arc<LoadedKeyset>>,
}

impl Keyring {
    pub fn new(keysets: Vec<LoadedKeyset>) -> Self {
        let mut ring = Keyring::default();
        for keyset in keysets {
            let keyset = Arc::new(keyset);
            if keyset.record.active {
                ring.active
                    .insert(keyset.record.unit.clone(), Arc::clone(&keyset));
            }
            ring.by_id.insert(keyset.record.id, keyset);
        }
        ring
    }

    pub fn get(&self, id: &Id) -> Result<&Arc<LoadedKeyset>, Error> {
        self.by_id
            .get(id)
            .ok_or_else(|| Error::KeysetNotFound(id.to_string()))
    }

    /// Keysets sorted active-first, then by unit and age, for stable listings.
    pub fn sorted(&self) -> Vec<&Arc<LoadedKeyset>> {
        let mut all: Vec<_> = self.by_id.values().collect();
        all.sort_by(|a, b| {
            (
                !a.record.active,
                a.record.unit.to_string(),
                a.record.derivation_index,
            )
                .cmp(&(
                    !b.record.active,
                    b.record.unit.to_string(),
                    b.record.derivation_index,
                ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_given_identity_replaces_the_derived_one_and_is_made_even() {
        let seed = MintSeed::generate();
        let derived = seed.identity_key().unwrap();
        // Find keys of both parities: each must come out as the even point of its x.
        let mut parities = std::collections::HashSet::new();
        for byte in 1u8..=16 {
            let given = [byte; 32];
            let with = seed.clone().with_identity(&given).unwrap();
            let key = with.identity_key().unwrap();
            let original = SecretKey::from_slice(&given).unwrap();
            let (x, parity) = original.x_only_public_key(&SECP256K1);
            parities.insert(parity);
            assert_eq!(key.public_key().to_bytes()[0], 0x02);
            assert_eq!(key.public_key().to_bytes()[1..], x.serialize());
            assert_ne!(key, derived);
            // Keysets still come from the seed.
            assert_eq!(with.to_hex(), seed.to_hex());
        }
        assert_eq!(parities.len(), 2, "both parities were exercised");
        assert!(seed.clone().with_identity(&[0u8; 32]).is_err());
    }

    #[test]
    fn npub_follows_nip19() {
        // The NIP-19 example key.
        let hex = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d";
        let bytes: [u8; 32] = hex::decode(hex).unwrap().try_into().unwrap();
        assert_eq!(
            npub(&bytes).unwrap(),
            "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
        );
    }

    #[test]
    fn the_identity_is_one_key_for_wallets_and_nostr() {
        let mut odd_before = 0;
        for _ in 0..32 {
            let seed = MintSeed::generate();
            let path = [hardened(PURPOSE).unwrap(), hardened(0).unwrap()];
            let raw = seed
                .master()
                .unwrap()
                .derive_priv(&SECP256K1, &path)
                .unwrap()
                .private_key;
            if raw.public_key(&SECP256K1).serialize()[0] == 3 {
                odd_before += 1;
            }
            let identity = seed.identity_key().unwrap();
            let compressed = identity.public_key().to_bytes();
            assert_eq!(compressed[0], 2, "the NUT-06 pubkey must be the even key");
            let (x_only, _) = identity.x_only_public_key(&SECP256K1);
            assert_eq!(&compressed[1..], &x_only.serialize()[..]);
            assert_eq!(seed.npub().unwrap(), npub(&x_only.serialize()).unwrap());
            assert_eq!(
                raw.x_only_public_key(&SECP256K1).0,
                x_only,
                "same x as derived"
            );
        }
        assert!(
            odd_before > 0,
            "32 seeds and no odd key: the normalization went untested"
        );
    }
}
