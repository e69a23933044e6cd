//! NIP-60: the wallet's ecash kept on the user's own relays, encrypted to themselves
//! (NIP-44), so a client can be reinstalled (or run on several devices) without losing it.
//!
//! - kind 17375, the wallet: the mints it uses and a key of its own (NIP-60's `privkey`);
//! - kind 7375, token events: `{"mint", "unit", "proofs", "del"}`, the unspent proofs of one
//!   mint and unit;
//! - kind 7376, spending history: direction, amount, unit, and the token events created
//!   and destroyed.
//!
//! Rollover, as NIP-60 describes: after a change the client publishes one new token event
//! holding what is left, naming the events it replaces in `del`, and deletes those (NIP-09,
//! kind 5 with `k` = 7375). Restoring takes every token event that is neither deleted nor
//! named in another's `del`, and imports its proofs; proofs the wallet already knows are
//! skipped, so nothing is counted twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, Proof};
use nostr_sdk::hashes::Hash as _;
use nostr_sdk::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::wallets::Wallets;
use crate::Error;

/// Kind of the wallet event (replaceable).
pub const WALLET_KIND: Kind = Kind::Custom(17375);
/// Kind of token events.
pub const TOKEN_KIND: Kind = Kind::Custom(7375);
/// Kind of spending history events.
pub const HISTORY_KIND: Kind = Kind::Custom(7376);

/// The encrypted content of a token event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenContent {
    mint: String,
    #[serde(default)]
    unit: Option<String>,
    proofs: Vec<Proof>,
    #[serde(default)]
    del: Vec<String>,
}

/// What was last published for one (mint, unit): balance and sorted proof Ys.
type Published = (u64, Vec<cdk::nuts::PublicKey>);

/// A NIP-60 wallet on relays, for one nostr identity.
pub struct Nip60 {
    client: Client,
    keys: Keys,
    timeout: Duration,
    /// The live token events per (mint, unit), as last restored or published.
    live: Mutex<HashMap<(MintUrl, CurrencyUnit), Vec<EventId>>>,
    /// What was last published per (mint, unit): the balance (for the history's
    /// direction) and the proofs' Ys, sorted.
    published: Mutex<HashMap<(MintUrl, CurrencyUnit), Published>>,
}

impl std::fmt::Debug for Nip60 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nip60")
            .field("pubkey", &self.keys.public_key())
            .finish_non_exhaustive()
    }
}

fn relay_error(err: impl std::fmt::Display) -> Error {
    Error::Wallet(format!("nostr: {err}"))
}

impl Nip60 {
    /// Connects to `relays` as `keys` (the user's nostr identity).
    pub async fn connect<I, S>(keys: Keys, relays: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let client = Client::builder().signer(keys.clone()).build();
        for relay in relays {
            client
                .add_relay(relay.as_ref())
                .await
                .map_err(relay_error)?;
        }
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        Ok(Self {
            client,
            keys,
            timeout: Duration::from_secs(5),
            live: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
        })
    }

    fn encrypt(&self, plain: &str) -> Result<String, Error> {
        nip44::encrypt(
            self.keys.secret_key(),
            &self.keys.public_key(),
            plain,
            nip44::Version::V2,
        )
        .map_err(relay_error)
    }

    fn decrypt(&self, content: &str) -> Option<String> {
        nip44::decrypt(self.keys.secret_key(), &self.keys.public_key(), content).ok()
    }

    /// Imports every live token event's proofs into `wallets`; returns what was new.
    pub async fn restore(&self, wallets: &Wallets) -> Result<u64, Error> {
        let me = self.keys.public_key();
        let events = self
            .client
            .fetch_events(
                Filter::new()
                    .author(me)
                    .kinds([TOKEN_KIND, Kind::EventDeletion]),
                self.timeout,
            )
            .await
            .map_err(relay_error)?;
        let mut gone: HashSet<EventId> = HashSet::new();
        let mut tokens = Vec::new();
        for event in events.into_iter().filter(|e| e.pubkey == me) {
            if event.kind == Kind::EventDeletion {
                gone.extend(event.tags.event_ids().copied());
                continue;
            }
            let Some(content) = self
                .decrypt(&event.content)
                .and_then(|plain| serde_json::from_str::<TokenContent>(&plain).ok())
            else {
                tracing::warn!(event = %event.id, "skipping a token event that does not decrypt");
                continue;
            };
            for id in &content.del {
                if let Ok(id) = EventId::from_hex(id) {
                    gone.insert(id);
                }
            }
            tokens.push((event.id, content));
        }
        let mut added = 0;
        let mut live: HashMap<(MintUrl, CurrencyUnit), Vec<EventId>> = HashMap::new();
        for (id, content) in tokens.into_iter().filter(|(id, _)| !gone.contains(id)) {
            let Ok(mint) = content.mint.parse::<MintUrl>() else {
                continue;
            };
            let unit = content
                .unit
                .as_deref()
                .and_then(|u| u.parse().ok())
                .unwrap_or(CurrencyUnit::Sat);
            added += wallets.import(&mint, &unit, content.proofs).await?;
            live.entry((mint, unit)).or_default().push(id);
        }
        // Proofs this device holds may have been spent by another one sharing the wallet:
        // the relays no longer list them, the mint knows.
        for (mint, unit, _) in wallets.balances().await? {
            let gone = wallets.drop_spent(&mint, &unit).await?;
            if gone > 0 {
                tracing::info!(%mint, %unit, amount = gone, "dropped proofs spent elsewhere");
            }
        }
        for (key, ids) in live {
            // What the relay holds now may differ from the wallet (proofs it already knew,
            // spent ones): the next publish compares against an empty set and rolls over.
            let balance = wallets
                .unspent(&key.0, &key.1)
                .await?
                .iter()
                .map(|p| u64::from(p.amount))
                .sum();
            self.published
                .lock()
                .insert(key.clone(), (balance, Vec::new()));
            self.live.lock().insert(key, ids);
        }
        Ok(added)
    }

    /// Publishes what the wallet holds at `mint` in `unit` now, replacing the token events
    /// published before (rollover), and a history entry for the difference.
    pub async fn publish(
        &self,
        wallets: &Wallets,
        mint: &MintUrl,
        unit: &CurrencyUnit,
    ) -> Result<(), Error> {
        let key = (mint.clone(), unit.clone());
        let proofs = wallets.unspent(mint, unit).await?;
        let balance: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
        let mut ys = proofs
            .iter()
            .map(|p| p.y().map_err(|e| Error::BadToken(e.to_string())))
            .collect::<Result<Vec<_>, Error>>()?;
        ys.sort();
        let (before, published_ys) = self.published.lock().get(&key).cloned().unwrap_or_default();
        let old: Vec<EventId> = self.live.lock().get(&key).cloned().unwrap_or_default();
        // Same proofs as on the relay: nothing to roll over. (Same balance is not enough:
        // a refund swaps proofs for others of the same value.)
        if ys == published_ys && !old.is_empty() {
            return Ok(());
        }
        self.publish_wallet(mint).await?;
        let content = TokenContent {
            mint: mint.to_string(),
            unit: Some(unit.to_string()),
            proofs,
            del: old.iter().map(|id| id.to_hex()).collect(),
        };
        let plain = serde_json::to_string(&content).map_err(|e| Error::Wallet(e.to_string()))?;
        let created = self
            .client
            .send_event_builder(EventBuilder::new(TOKEN_KIND, self.encrypt(&plain)?))
            .await
            .map_err(relay_error)?
            .val;
        if !old.is_empty() {
            let deletion = EventBuilder::new(Kind::EventDeletion, "rolled over")
                .tags(old.iter().map(|id| Tag::event(*id)))
                .tag(Tag::custom(TagKind::k(), [TOKEN_KIND.as_u16().to_string()]));
            self.client
                .send_event_builder(deletion)
                .await
                .map_err(relay_error)?;
        }
        let (direction, amount) = if balance >= before {
            ("in", balance - before)
        } else {
            ("out", before - balance)
        };
        let mut history = vec![
            vec!["direction".to_string(), direction.to_string()],
            vec!["amount".to_string(), amount.to_string()],
            vec!["unit".to_string(), unit.to_string()],
            vec![
                "e".to_string(),
                created.to_hex(),
                String::new(),
                "created".into(),
            ],
        ];
        for id in &old {
            history.push(vec![
                "e".into(),
                id.to_hex(),
                String::new(),
                "destroyed".into(),
            ]);
        }
        let plain = serde_json::to_string(&history).map_err(|e| Error::Wallet(e.to_string()))?;
        self.client
            .send_event_builder(EventBuilder::new(HISTORY_KIND, self.encrypt(&plain)?))
            .await
            .map_err(relay_error)?;
        tracing::debug!(mint = %mint, unit = %unit, balance, "NIP-60 token event rolled over");
        self.live.lock().insert(key.clone(), vec![created]);
        self.published.lock().insert(key, (balance, ys));
        Ok(())
    }

    /// The wallet event (17375): the mints in use and the wallet's own key.
    async fn publish_wallet(&self, mint: &MintUrl) -> Result<(), Error> {
        let mut mints: Vec<String> = self
            .live
            .lock()
            .keys()
            .map(|(m, _)| m.to_string())
            .collect();
        mints.push(mint.to_string());
        mints.sort();
        mints.dedup();
        // The wallet's key is derived from the identity, so every device agrees on it.
        let wallet_key = nostr_sdk::hashes::sha256::Hash::hash(
            format!(
                "coinslot nip60 wallet key {}",
                self.keys.secret_key().to_secret_hex()
            )
            .as_bytes(),
        );
        let mut tags = vec![vec!["privkey".to_string(), wallet_key.to_string()]];
        tags.extend(mints.into_iter().map(|m| vec!["mint".to_string(), m]));
        let plain = serde_json::to_string(&tags).map_err(|e| Error::Wallet(e.to_string()))?;
        self.client
            .send_event_builder(EventBuilder::new(WALLET_KIND, self.encrypt(&plain)?))
            .await
            .map_err(relay_error)?;
        Ok(())
    }
}
