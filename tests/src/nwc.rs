//! A NIP-47 wallet service for tests, on the same libraries as the NWC backend: it makes
//! invoices, answers lookups, refuses keys it was not paired with, and notifies payments.
#![allow(clippy::expect_used)] // a test fixture: a broken fixture fails the test

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nostr_sdk::nips::nip04;
use nostr_sdk::nips::nip47::{
    ErrorCode, LookupInvoiceResponse, MakeInvoiceResponse, NIP47Error, Notification,
    NotificationResult, NotificationType, PaymentNotification, Request, RequestParams, Response,
    ResponseResult,
};
use nostr_sdk::prelude::*;
use parking_lot::Mutex;

/// A local relay on `127.0.0.1` and its URL.
pub async fn relay() -> anyhow::Result<(nostr_relay_builder::LocalRelay, String)> {
    local_relay(nostr_relay_builder::RelayBuilder::default).await
}

/// Starts a relay on `127.0.0.1` built by `builder` (called again for each try).
/// nostr-relay-builder probes for a free port and binds it later, so a test running at the
/// same time can take the port in between: that bind is retried on a new port.
pub async fn local_relay(
    builder: impl Fn() -> nostr_relay_builder::RelayBuilder,
) -> anyhow::Result<(nostr_relay_builder::LocalRelay, String)> {
    let mut tries = 0;
    loop {
        let relay = nostr_relay_builder::LocalRelay::new(builder().addr("127.0.0.1".parse()?));
        match relay.run().await {
            Ok(()) => {
                let url = relay.url().await.to_string();
                return Ok((relay, url));
            }
            Err(nostr_relay_builder::Error::IO(e))
                if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 =>
            {
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// An invoice the wallet made.
#[derive(Debug, Clone)]
pub struct Held {
    /// The BOLT11 string (opaque here).
    pub invoice: String,
    /// Amount, msat.
    pub amount: u64,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was paid.
    pub settled_at: Option<Timestamp>,
}

/// A NIP-47 wallet service: answers `make_invoice` and `lookup_invoice` for the one app key
/// it was paired with, and notifies payments.
#[derive(Clone)]
pub struct WalletService {
    keys: Keys,
    app: PublicKey,
    client: Client,
    /// Invoices by payment hash.
    pub invoices: Arc<Mutex<HashMap<String, Held>>>,
    /// Cleared: the service ignores requests, as if offline.
    pub online: Arc<AtomicBool>,
}

impl WalletService {
    /// Starts the service and returns it with the connection string for the app.
    pub async fn start(relay: &str) -> (WalletService, String) {
        let keys = Keys::generate();
        let app = Keys::generate();
        let client = Client::default();
        client.add_relay(relay).await.expect("wallet service");
        client.connect().await;
        client.wait_for_connection(Duration::from_secs(5)).await;
        let service = WalletService {
            keys: keys.clone(),
            app: app.public_key(),
            client,
            invoices: Arc::default(),
            online: Arc::new(AtomicBool::new(true)),
        };
        let filter = Filter::new()
            .kind(Kind::WalletConnectRequest)
            .pubkey(keys.public_key());
        let mut notifications = service.client.notifications();
        service
            .client
            .subscribe(filter, None)
            .await
            .expect("wallet service");
        let serving = service.clone();
        tokio::spawn(async move {
            while let Ok(notification) = notifications.recv().await {
                if let RelayPoolNotification::Event { event, .. } = notification {
                    if event.kind == Kind::WalletConnectRequest
                        && serving.online.load(Ordering::SeqCst)
                    {
                        serving.answer(&event).await;
                    }
                }
            }
        });
        let uri = format!(
            "nostr+walletconnect://{}?relay={relay}&secret={}",
            keys.public_key().to_hex(),
            app.secret_key().to_secret_hex()
        );
        (service, uri)
    }

    async fn answer(&self, event: &Event) {
        let Ok(plain) = nip04::decrypt(self.keys.secret_key(), &event.pubkey, &event.content)
        else {
            return;
        };
        let request = Request::from_json(plain).expect("wallet service");
        let refuse = |code, message: &str| Response {
            result_type: request.method,
            error: Some(NIP47Error {
                code,
                message: message.into(),
            }),
            result: None,
        };
        let response = if event.pubkey != self.app {
            refuse(ErrorCode::Unauthorized, "no wallet connected for this key")
        } else {
            match &request.params {
                RequestParams::MakeInvoice(make) => {
                    let hash = hex::encode(rand::random::<[u8; 32]>());
                    let held = Held {
                        invoice: format!("lnbcrt{}n1p{}", make.amount / 100, &hash[..20]),
                        amount: make.amount,
                        created_at: Timestamp::now(),
                        settled_at: None,
                    };
                    self.invoices.lock().insert(hash.clone(), held.clone());
                    Response {
                        result_type: request.method,
                        error: None,
                        result: Some(ResponseResult::MakeInvoice(MakeInvoiceResponse {
                            invoice: held.invoice,
                            payment_hash: Some(hash),
                            description: make.description.clone(),
                            description_hash: None,
                            preimage: None,
                            amount: Some(make.amount),
                            created_at: Some(held.created_at),
                            expires_at: make.expiry.map(|e| held.created_at + e),
                        })),
                    }
                }
                RequestParams::LookupInvoice(lookup) => {
                    let hash = lookup.payment_hash.clone().unwrap_or_default();
                    match self.invoices.lock().get(&hash).cloned() {
                        Some(held) => Response {
                            result_type: request.method,
                            error: None,
                            result: Some(ResponseResult::LookupInvoice(LookupInvoiceResponse {
                                transaction_type: None,
                                state: None,
                                invoice: Some(held.invoice),
                                description: None,
                                description_hash: None,
                                preimage: None,
                                payment_hash: hash,
                                amount: held.amount,
                                fees_paid: 0,
                                created_at: held.created_at,
                                expires_at: None,
                                settled_at: held.settled_at,
                                metadata: None,
                            })),
                        },
                        None => refuse(ErrorCode::NotFound, "no such invoice"),
                    }
                }
                _ => refuse(ErrorCode::NotImplemented, "receive only"),
            }
        };
        let content = nip04::encrypt(self.keys.secret_key(), &event.pubkey, response.as_json())
            .expect("wallet service");
        let answer = EventBuilder::new(Kind::WalletConnectResponse, content)
            .tags([Tag::event(event.id), Tag::public_key(event.pubkey)])
            .sign_with_keys(&self.keys)
            .expect("wallet service");
        self.client
            .send_event(&answer)
            .await
            .expect("wallet service");
    }

    /// Marks the invoice settled; with `notify`, also sends `times` payment notifications.
    pub async fn pay(&self, hash: &str, notify: bool, times: usize) {
        let held = {
            let mut invoices = self.invoices.lock();
            let held = invoices.get_mut(hash).expect("an invoice of ours");
            held.settled_at = Some(Timestamp::now());
            held.clone()
        };
        if !notify {
            return;
        }
        let notification = Notification {
            notification_type: NotificationType::PaymentReceived,
            notification: NotificationResult::PaymentReceived(PaymentNotification {
                transaction_type: None,
                state: None,
                invoice: held.invoice,
                description: None,
                description_hash: None,
                preimage: hex::encode([7u8; 32]),
                payment_hash: hash.to_string(),
                amount: held.amount,
                fees_paid: 0,
                created_at: held.created_at,
                expires_at: None,
                settled_at: Timestamp::now(),
                metadata: None,
            }),
        };
        for _ in 0..times {
            let content = nip04::encrypt(self.keys.secret_key(), &self.app, notification.as_json())
                .expect("wallet service");
            let event = EventBuilder::new(Kind::WalletConnectNotification, content)
                .tag(Tag::public_key(self.app))
                .sign_with_keys(&self.keys)
                .expect("wallet service");
            self.client
                .send_event(&event)
                .await
                .expect("wallet service");
        }
    }
}
