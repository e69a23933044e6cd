//! Stand-ins for Lightning nodes that cannot run here (LND, Core Lightning) and for LNbits
//! in the plain test run: each speaks the real protocol of the calls Coinslot makes (gRPC
//! over TLS, JSON-RPC over a Unix socket, HTTP + websocket) over one [`Ledger`] of real,
//! signed BOLT11 invoices that a test pays by hand. [`real_lnbits`] runs the real LNbits.
#![allow(clippy::expect_used)] // test fixtures: a broken fixture fails the test

pub mod cln;
pub mod lnbits;
pub mod lnd;
pub mod real_lnbits;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Bolt11Invoice, Currency, InvoiceBuilder, PaymentSecret};
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// One invoice the node made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The BOLT11 string.
    pub bolt11: String,
    /// Payment hash.
    pub hash: [u8; 32],
    /// Preimage (revealed on settlement).
    pub preimage: [u8; 32],
    /// Invoice amount.
    pub amount_msat: u64,
    /// Description.
    pub memo: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Creation order, from 1 (LND's add_index, CLN's created_index).
    pub add_index: u64,
    /// Settlement order, from 1 (LND's settle_index, CLN's pay_index), once paid.
    pub settle_index: Option<u64>,
    /// Unix seconds, once paid.
    pub settled_at: Option<u64>,
}

impl Held {
    /// The payment hash in hex.
    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

/// The invoices of one stand-in node.
#[derive(Debug)]
pub struct Ledger {
    node_key: SecretKey,
    invoices: Mutex<BTreeMap<[u8; 32], Held>>,
    settled: broadcast::Sender<Held>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ledger {
    /// An empty ledger with a fresh node key.
    pub fn new() -> Arc<Self> {
        let node_key = SecretKey::from_slice(&rand::random::<[u8; 32]>()).expect("node key");
        Arc::new(Self {
            node_key,
            invoices: Mutex::new(BTreeMap::new()),
            settled: broadcast::channel(64).0,
        })
    }

    /// Makes and keeps a real regtest invoice.
    pub fn create(&self, amount_msat: u64, memo: &str, expiry_secs: u64) -> Held {
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        let secp = Secp256k1::signing_only();
        let invoice = InvoiceBuilder::new(Currency::Regtest)
            .description(memo.to_string())
            .payment_hash(hash)
            .payment_secret(PaymentSecret(rand::random()))
            .current_timestamp()
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(amount_msat)
            .expiry_time(Duration::from_secs(expiry_secs))
            .build_signed(|h| secp.sign_ecdsa_recoverable(h, &self.node_key))
            .expect("stand-in invoice");
        let mut invoices = self.invoices.lock();
        let held = Held {
            bolt11: invoice.to_string(),
            hash: hash.to_byte_array(),
            preimage,
            amount_msat,
            memo: memo.to_string(),
            created_at: now(),
            expires_at: now() + expiry_secs,
            add_index: invoices.len() as u64 + 1,
            settle_index: None,
            settled_at: None,
        };
        invoices.insert(held.hash, held.clone());
        held
    }

    /// The invoice with this hash.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Held> {
        self.invoices.lock().get(hash).cloned()
    }

    /// The invoice behind a BOLT11 string (what a wallet shows its user).
    pub fn by_bolt11(&self, bolt11: &str) -> Option<Held> {
        let invoice: Bolt11Invoice = bolt11.parse().ok()?;
        self.get(&invoice.payment_hash().to_byte_array())
    }

    /// Every invoice, in creation order.
    pub fn all(&self) -> Vec<Held> {
        let mut all: Vec<Held> = self.invoices.lock().values().cloned().collect();
        all.sort_by_key(|h| h.add_index);
        all
    }

    /// Settles an invoice as if its payment arrived; tells subscribers. False if unknown or
    /// already settled.
    pub fn settle(&self, hash: &[u8; 32]) -> bool {
        let settled = {
            let mut invoices = self.invoices.lock();
            let next = invoices
                .values()
                .filter(|h| h.settle_index.is_some())
                .count() as u64
                + 1;
            match invoices.get_mut(hash) {
                Some(held) if held.settle_index.is_none() => {
                    held.settle_index = Some(next);
                    held.settled_at = Some(now());
                    held.clone()
                }
                _ => return false,
            }
        };
        let _ = self.settled.send(settled);
        true
    }

    /// Settled invoices as they are settled.
    pub fn subscribe(&self) -> broadcast::Receiver<Held> {
        self.settled.subscribe()
    }

    /// The first settled invoice after settle index `after`, waiting for one if needed.
    pub async fn next_settled(&self, after: u64) -> Held {
        let mut events = self.subscribe();
        loop {
            let found = self
                .all()
                .into_iter()
                .filter(|h| h.settle_index.is_some_and(|i| i > after))
                .min_by_key(|h| h.settle_index);
            if let Some(held) = found {
                return held;
            }
            // Closed cannot happen while `self` lives; lagging just means: look again.
            let _ = events.recv().await;
        }
    }
}
