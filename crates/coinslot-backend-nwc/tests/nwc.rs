//! The NWC backend against a real relay in-process and a wallet service written here on the
//! same libraries: quote → invoice from the wallet → payment notification → quote paid →
//! minted; the wallet offline; a wrong secret; duplicate notifications; a payment made while
//! the mint was down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coinslot_backend_nwc::{NwcBackend, NwcOptions};
use coinslot_mint::cashu::nuts::{
    BlindedMessage, CurrencyUnit, MintQuoteBolt11Request, MintQuoteState, MintRequest,
};
use coinslot_mint::cashu::Amount;
use coinslot_mint::{MemoryStore, Mint, MintConfig, MintSeed, MintStore, PaymentBackend};
use nostr_relay_builder::prelude::*;
use nostr_sdk::nips::nip04;
use nostr_sdk::nips::nip47::{
    ErrorCode, LookupInvoiceResponse, MakeInvoiceResponse, NIP47Error, Notification,
    NotificationResult, NotificationType, PaymentNotification, Request, RequestParams, Response,
    ResponseResult,
};
use nostr_sdk::prelude::*;
use parking_lot::Mutex;

async fn relay() -> (LocalRelay, String) {
    let relay = LocalRelay::new(RelayBuilder::default().addr("127.0.0.1".parse().unwrap()));
    relay.run().await.unwrap();
    let url = relay.url().await.to_string();
    (relay, url)
}

#[derive(Debug, Clone)]
struct Held {
    invoice: String,
    amount: u64,
    created_at: Timestamp,
    settled_at: Option<Timestamp>,
}

/// A NIP-47 wallet service: answers `make_invoice` and `lookup_invoice` for the one app key
/// it was paired with, and notifies payments.
#[derive(Clone)]
struct WalletService {
    keys: Keys,
    app: PublicKey,
    client: Client,
    invoices: Arc<Mutex<HashMap<String, Held>>>,
    online: Arc<AtomicBool>,
}

impl WalletService {
    /// Starts the service and returns it with the connection string for the app.
    async fn start(relay: &str) -> (WalletService, String) {
        let keys = Keys::generate();
        let app = Keys::generate();
        let client = Client::default();
        client.add_relay(relay).await.unwrap();
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
        service.client.subscribe(filter, None).await.unwrap();
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
        let request = Request::from_json(plain).unwrap();
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
        let content =
            nip04::encrypt(self.keys.secret_key(), &event.pubkey, response.as_json()).unwrap();
        let answer = EventBuilder::new(Kind::WalletConnectResponse, content)
            .tags([Tag::event(event.id), Tag::public_key(event.pubkey)])
            .sign_with_keys(&self.keys)
            .unwrap();
        self.client.send_event(&answer).await.unwrap();
    }

    /// Marks the invoice settled; with `notify`, also sends `times` payment notifications.
    async fn pay(&self, hash: &str, notify: bool, times: usize) {
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
            let content =
                nip04::encrypt(self.keys.secret_key(), &self.app, notification.as_json()).unwrap();
            let event = EventBuilder::new(Kind::WalletConnectNotification, content)
                .tag(Tag::public_key(self.app))
                .sign_with_keys(&self.keys)
                .unwrap();
            self.client.send_event(&event).await.unwrap();
        }
    }
}

fn options() -> NwcOptions {
    NwcOptions {
        timeout: Duration::from_secs(3),
    }
}

async fn mint_over(store: &Arc<MemoryStore>, seed: &MintSeed, backend: NwcBackend) -> Mint {
    Mint::new(
        MintConfig::default(),
        seed.clone(),
        Arc::clone(store) as Arc<dyn MintStore>,
        Arc::new(backend),
    )
    .await
    .unwrap()
}

async fn quote(mint: &Mint, amount: u64) -> String {
    mint.create_mint_quote(MintQuoteBolt11Request {
        amount: Amount::from(amount),
        unit: CurrencyUnit::Sat,
        description: None,
        pubkey: None,
    })
    .await
    .unwrap()
    .quote
}

async fn wait_state(mint: &Mint, id: &str, state: MintQuoteState) {
    for _ in 0..100 {
        if mint.mint_quote(id).await.unwrap().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("quote {id} never reached {state}");
}

/// Blinded outputs worth `amount`, one per power of two (the signatures are only counted).
fn outputs(mint: &Mint, amount: u64) -> Vec<BlindedMessage> {
    let keyset = mint.keys().keysets[0].id;
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|value| amount & value != 0)
        .map(|value| {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let (blinded, _r) =
                coinslot_mint::cashu::dhke::blind_message(secret.as_bytes(), None).unwrap();
            BlindedMessage::new(Amount::from(value), keyset, blinded)
        })
        .collect()
}

async fn mint_once(mint: &Mint, id: &str, amount: u64) -> Result<u64, coinslot_mint::Error> {
    let response = mint
        .mint(MintRequest {
            quote: id.to_string(),
            outputs: outputs(mint, amount),
            signature: None,
        })
        .await?;
    Ok(response
        .signatures
        .iter()
        .map(|s| u64::from(s.amount))
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quote_is_paid_through_the_wallet_and_minted_once_despite_duplicate_notifications() {
    let (_relay, url) = relay().await;
    let (wallet, uri) = WalletService::start(&url).await;
    let store = Arc::new(MemoryStore::new());
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        NwcBackend::connect(&uri, options()).await.unwrap(),
    )
    .await;

    let id = quote(&mint, 21).await;
    let record = store.mint_quote(&id).await.unwrap().unwrap();
    let held = wallet
        .invoices
        .lock()
        .get(&record.lookup_id)
        .cloned()
        .expect("the wallet made the invoice");
    assert_eq!(held.amount, 21_000, "msat");
    assert_eq!(record.request, held.invoice);
    assert_eq!(
        mint.mint_quote(&id).await.unwrap().state,
        MintQuoteState::Unpaid
    );
    assert!(
        mint_once(&mint, &id, 21).await.is_err(),
        "minted before payment"
    );

    // Paid, announced three times: the quote turns paid by the notification alone.
    wallet.pay(&record.lookup_id, true, 3).await;
    for _ in 0..100 {
        if store.mint_quote(&id).await.unwrap().unwrap().state == MintQuoteState::Paid {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.mint_quote(&id).await.unwrap().unwrap().state,
        MintQuoteState::Paid,
        "the notification did not mark the quote paid"
    );
    assert_eq!(mint_once(&mint, &id, 21).await.unwrap(), 21);
    assert!(mint_once(&mint, &id, 21).await.is_err(), "minted twice");
    let audit = mint.audit().await.unwrap();
    assert!(audit.ok && audit.units[0].came_in == 21, "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_while_the_mint_was_down_is_credited_at_restart() {
    let (_relay, url) = relay().await;
    let (wallet, uri) = WalletService::start(&url).await;
    let store = Arc::new(MemoryStore::new());
    let seed = MintSeed::generate();
    let backend = NwcBackend::connect(&uri, options()).await.unwrap();
    let mint = mint_over(&store, &seed, backend.clone()).await;
    let id = quote(&mint, 8).await;
    let hash = store.mint_quote(&id).await.unwrap().unwrap().lookup_id;
    drop(mint);
    backend.shutdown().await;

    // Paid while nobody listened: the notification is lost, the wallet still knows.
    wallet.pay(&hash, true, 1).await;
    let mint = mint_over(
        &store,
        &seed,
        NwcBackend::connect(&uri, options()).await.unwrap(),
    )
    .await;
    wait_state(&mint, &id, MintQuoteState::Paid).await;
    assert_eq!(mint_once(&mint, &id, 8).await.unwrap(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_invoice_is_paid_by_lookup_and_an_unknown_one_has_expired() {
    let (_relay, url) = relay().await;
    let (wallet, uri) = WalletService::start(&url).await;
    let backend = NwcBackend::connect(&uri, options()).await.unwrap();
    let invoice = backend.create_invoice(5_000, "top-up", 600).await.unwrap();
    assert!(invoice.expiry > Timestamp::now().as_secs() + 500);
    assert_eq!(
        backend.invoice_status(&invoice.lookup_id).await.unwrap(),
        coinslot_mint::backend::InvoiceStatus::Unpaid
    );
    wallet.pay(&invoice.lookup_id, false, 0).await;
    assert_eq!(
        backend.invoice_status(&invoice.lookup_id).await.unwrap(),
        coinslot_mint::backend::InvoiceStatus::Paid
    );
    assert_eq!(
        backend.invoice_status(&"ab".repeat(32)).await.unwrap(),
        coinslot_mint::backend::InvoiceStatus::Expired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_wallet_or_a_wrong_secret_fails_quotes_clearly() {
    let (_relay, url) = relay().await;
    let (wallet, uri) = WalletService::start(&url).await;

    // A connection string with another secret: the wallet refuses it.
    let stranger = uri.replace(
        &uri[uri.find("secret=").unwrap() + 7..],
        &Keys::generate().secret_key().to_secret_hex(),
    );
    let backend = NwcBackend::connect(&stranger, options()).await.unwrap();
    let err = backend.create_invoice(1_000, "x", 60).await.unwrap_err();
    assert!(err.0.contains("Unauthorized"), "{err}");

    // The wallet offline: a quote fails after the timeout, saying so; the mint keeps working.
    wallet.online.store(false, Ordering::SeqCst);
    let store = Arc::new(MemoryStore::new());
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        NwcBackend::connect(&uri, options()).await.unwrap(),
    )
    .await;
    let err = mint
        .create_mint_quote(MintQuoteBolt11Request {
            amount: Amount::from(5u64),
            unit: CurrencyUnit::Sat,
            description: None,
            pubkey: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert_eq!(mint.keys().keysets.len(), 1);

    // Malformed connection strings name the problem and never echo the secret.
    for bad in [
        "",
        "https://example.com",
        "nostr+walletconnect://nothex?relay=ws://x&secret=01",
    ] {
        let err = NwcBackend::connect(bad, options()).await.unwrap_err();
        assert!(err.0.contains("NWC connection string"), "{bad}: {err}");
    }
    let secretless = NwcBackend::connect(&uri.replace("relay=", "relayx="), options())
        .await
        .unwrap_err();
    assert!(
        !secretless
            .0
            .contains(&uri[uri.find("secret=").unwrap() + 7..]),
        "{secretless}"
    );
}
