//! The NWC backend against a real relay in-process and a wallet service written here on the
//! same libraries: quote → invoice from the wallet → payment notification → quote paid →
//! minted; the wallet offline; a wrong secret; duplicate notifications; a payment made while
//! the mint was down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use coinslot_backend_nwc::{NwcBackend, NwcOptions};
use coinslot_mint::cashu::nuts::MintQuoteState;
use coinslot_mint::{MemoryStore, Mint, MintConfig, MintSeed, MintStore, PaymentBackend};
use coinslot_tests::direct::{self, mint_once, quote, wait_stored};
use coinslot_tests::nwc::WalletService;
use nostr_sdk::prelude::*;

async fn relay() -> (nostr_relay_builder::LocalRelay, String) {
    coinslot_tests::nwc::relay().await.unwrap()
}

fn options() -> NwcOptions {
    NwcOptions {
        timeout: Duration::from_secs(3),
    }
}

async fn mint_over(store: &Arc<MemoryStore>, seed: &MintSeed, backend: NwcBackend) -> Mint {
    direct::mint_over(store, seed, Arc::new(backend), MintConfig::default()).await
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
    wait_stored(&store, &id, MintQuoteState::Paid).await;
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

    // Paid while nobody listened: the notification is lost, the wallet still knows. The
    // mint reconciles at start: the quote turns paid without anyone asking about it.
    wallet.pay(&hash, true, 1).await;
    let mint = mint_over(
        &store,
        &seed,
        NwcBackend::connect(&uri, options()).await.unwrap(),
    )
    .await;
    wait_stored(&store, &id, MintQuoteState::Paid).await;
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
    let err = direct::try_quote(&mint, 5).await.unwrap_err();
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

/// coinslotd with `[backend] kind = "nwc"`: a cdk wallet tops up over HTTP, the invoice comes
/// from the NWC wallet and the quote turns paid when that wallet is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinslotd_takes_top_ups_into_an_nwc_wallet() {
    use coinslot_tests::wallet::{balance, mint_quote, new_wallet, random_seed, wait_quote_paid};
    let (_relay, url) = relay().await;
    let (service, uri) = WalletService::start(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let connection = dir.path().join("nwc.uri");
    std::fs::write(&connection, format!("{uri}\n")).unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = coinslotd::BackendConfig::Nwc(coinslotd::NwcBackendConfig {
        connection_file: Some(connection.clone()),
        timeout_secs: 5,
    });
    let server = coinslot_tests::TestServer::start_with(config.clone())
        .await
        .unwrap();

    let wallet = new_wallet(&server.url, random_seed()).await.unwrap();
    let quote = mint_quote(&wallet, 34).await.unwrap();
    let hash = service
        .invoices
        .lock()
        .iter()
        .find(|(_, held)| held.invoice == quote.request)
        .map(|(hash, _)| hash.clone())
        .expect("the invoice came from the NWC wallet");
    assert_eq!(service.invoices.lock()[&hash].amount, 34_000);
    service.pay(&hash, true, 1).await;
    wait_quote_paid(&wallet, &quote.id).await.unwrap();
    let proofs = wallet
        .mint(&quote.id, cdk::amount::SplitTarget::default(), None)
        .await
        .unwrap();
    assert_eq!(proofs.iter().map(|p| u64::from(p.amount)).sum::<u64>(), 34);
    assert_eq!(balance(&wallet).await.unwrap(), 34);
    server.stop().await.unwrap();

    // A connection string that does not parse stops the start with a clear error.
    std::fs::write(&connection, "nostr+walletconnect://not-a-key").unwrap();
    let err = coinslot_tests::TestServer::start_with(config)
        .await
        .err()
        .expect("started");
    assert!(
        format!("{err:#}").contains("NWC connection string"),
        "{err:#}"
    );
}
