//! A real LNbits (PyPI `lnbits` 1.6, `FakeWallet` funding source) behind coinslotd's
//! `[backend] kind = "lnbits"`, holding only the shop wallet's invoice key. The invoices are
//! paid from a second wallet on the same LNbits: an internal payment, which LNbits settles.
//!
//! A cdk wallet tops up through coinslotd; a quote turns paid from LNbits' own websocket
//! notification; a payment made while the mint was down is credited at the next start; a
//! wrong key and the admin key are refused at start with a clear message; another wallet's
//! paid invoice (which LNbits reports paid to any caller) is not taken for ours.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::Arc;

use coinslot_backend_lnbits::{LnbitsBackend, LnbitsOptions};
use coinslot_mint::backend::{Invoice, InvoiceStatus};
use coinslot_mint::cashu::nuts::MintQuoteState;
use coinslot_mint::{MemoryStore, MintConfig, MintSeed, MintStore, PaymentBackend};
use coinslot_tests::direct::{mint_once, mint_over, quote, wait_stored};
use coinslot_tests::nodes::real_lnbits::{LnbitsWallet, RealLnbits};
use coinslotd::BackendConfig;

/// LNbits with the shop's wallet (coinslotd's) and a payer's wallet holding 10,000 sat.
struct Shop {
    lnbits: RealLnbits,
    shop: LnbitsWallet,
    payer: LnbitsWallet,
    dir: tempfile::TempDir,
}

impl Shop {
    async fn open() -> Shop {
        let lnbits = RealLnbits::start().await.expect("LNbits starts");
        let shop = lnbits.wallet("shop").await.unwrap();
        let payer = lnbits.wallet("payer").await.unwrap();
        lnbits.fund(&payer, 10_000).await.unwrap();
        Shop {
            lnbits,
            shop,
            payer,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `[backend]` for coinslotd with `key` in its key file.
    fn config_with(&self, key: &str) -> BackendConfig {
        let file = self.dir.path().join(format!("{}.key", &key[..8]));
        std::fs::write(&file, format!("{key}\n")).unwrap();
        BackendConfig::Lnbits(coinslotd::LnbitsBackendConfig {
            api_url: self.lnbits.url.clone(),
            invoice_key_file: Some(file),
        })
    }

    fn config(&self) -> BackendConfig {
        self.config_with(&self.shop.invoice_key)
    }

    /// The backend as coinslotd builds it, kept to watch its websocket.
    async fn backend(&self) -> LnbitsBackend {
        LnbitsBackend::connect(LnbitsOptions {
            api_url: self.lnbits.url.clone(),
            invoice_key: self.shop.invoice_key.clone(),
        })
        .await
        .unwrap()
    }

    /// An invoice of a new wallet on this LNbits (not the shop's), made through coinslotd's
    /// backend with that wallet's invoice key.
    async fn invoice_elsewhere(&self, msat: u64, memo: &str) -> Invoice {
        let other = self.lnbits.wallet("other").await.unwrap();
        coinslotd::backend(&self.config_with(&other.invoice_key))
            .await
            .unwrap()
            .create_invoice(msat, memo, 600)
            .await
            .unwrap()
    }

    /// The quote's invoice, paid from the payer's wallet.
    async fn pay(&self, store: &MemoryStore, id: &str) {
        let record = store.mint_quote(id).await.unwrap().unwrap();
        self.lnbits.pay(&self.payer, &record.request).await.unwrap();
    }
}

fn no_reconciling() -> MintConfig {
    MintConfig {
        reconcile_secs: 0,
        ..MintConfig::default()
    }
}

/// coinslotd with the invoice key: a cdk wallet asks for a quote over HTTP, the invoice is
/// the shop wallet's, the payer's wallet pays it, the wallet mints; the sats are in the
/// shop's LNbits wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and the PyPI lnbits: scripts/test.sh runs it with COINSLOT_TEST_LNBITS=1"]
async fn a_cdk_wallet_tops_up_through_lnbits() {
    use coinslot_tests::wallet::{balance, mint_quote, new_wallet, random_seed, wait_quote_paid};
    let shop = Shop::open().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = shop.config();
    config.mint.info.name = "Arcade".into();
    let server = coinslot_tests::TestServer::start_with(config)
        .await
        .unwrap();

    let wallet = new_wallet(&server.url, random_seed()).await.unwrap();
    let quote = mint_quote(&wallet, 34).await.unwrap();
    // LNbits' FakeWallet invoices carry no feature bits: read them raw.
    let invoice: lightning_invoice::SignedRawBolt11Invoice = quote.request.parse().unwrap();
    let hash = invoice.raw_invoice().payment_hash().unwrap().0.to_string();
    let made = shop
        .lnbits
        .payment(&shop.shop, &hash)
        .await
        .unwrap()
        .expect("the invoice is the shop wallet's");
    assert_eq!(made["amount"], 34_000);
    assert_eq!(made["memo"], "Arcade top-up");

    shop.lnbits.pay(&shop.payer, &quote.request).await.unwrap();
    wait_quote_paid(&wallet, &quote.id).await.unwrap();
    wallet
        .mint(&quote.id, cdk::amount::SplitTarget::default(), None)
        .await
        .unwrap();
    assert_eq!(balance(&wallet).await.unwrap(), 34);
    assert_eq!(shop.lnbits.balance_msat(&shop.shop).await.unwrap(), 34_000);
    assert_eq!(
        shop.lnbits.balance_msat(&shop.payer).await.unwrap(),
        10_000_000 - 34_000
    );
    server.stop().await.unwrap();

    // The key coinslotd holds cannot spend what came in: LNbits refuses it for paying.
    let bolt11 = shop.invoice_elsewhere(1_000, "to pay").await.bolt11;
    let status = shop
        .lnbits
        .try_pay_with(&shop.shop.invoice_key, &bolt11)
        .await
        .unwrap();
    assert_eq!(status, 403, "an invoice key paid");
    assert_eq!(shop.lnbits.balance_msat(&shop.shop).await.unwrap(), 34_000);
}

/// Nobody asks about the quote and reconciliation is off: LNbits' websocket notification
/// alone (confirmed by a lookup with the key) turns it paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and the PyPI lnbits: scripts/test.sh runs it with COINSLOT_TEST_LNBITS=1"]
async fn the_notification_alone_marks_the_quote_paid() {
    let shop = Shop::open().await;
    let backend = shop.backend().await;
    let store = Arc::new(MemoryStore::new());
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        Arc::new(backend.clone()),
        no_reconciling(),
    )
    .await;
    coinslot_tests::eventually("the backend opens LNbits' websocket", || async {
        backend.listening().then_some(())
    })
    .await;
    let id = quote(&mint, 21).await;
    assert!(mint_once(&mint, &id, 21).await.is_err(), "minted unpaid");
    shop.pay(&store, &id).await;
    wait_stored(&store, &id, MintQuoteState::Paid).await;
    assert_eq!(mint_once(&mint, &id, 21).await.unwrap(), 21);
    assert!(mint_once(&mint, &id, 21).await.is_err(), "minted twice");
}

/// Paid while no mint ran: the next one credits it at start (its reconciliation asks
/// LNbits), without anyone asking about the quote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and the PyPI lnbits: scripts/test.sh runs it with COINSLOT_TEST_LNBITS=1"]
async fn a_payment_made_while_down_is_credited_at_start() {
    let shop = Shop::open().await;
    let store = Arc::new(MemoryStore::new());
    let seed = MintSeed::generate();
    let backend = coinslotd::backend(&shop.config()).await.unwrap();
    let mint = mint_over(&store, &seed, backend, no_reconciling()).await;
    let id = quote(&mint, 8).await;
    drop(mint);
    shop.pay(&store, &id).await;

    let backend = coinslotd::backend(&shop.config()).await.unwrap();
    let mint = mint_over(&store, &seed, backend, MintConfig::default()).await;
    wait_stored(&store, &id, MintQuoteState::Paid).await;
    assert_eq!(mint_once(&mint, &id, 8).await.unwrap(), 8);
    let audit = mint.audit().await.unwrap();
    assert!(audit.ok && audit.units[0].came_in == 8, "{audit:?}");
}

/// A key LNbits does not know, and the wallet's admin key, stop coinslotd at start saying
/// which; a paid invoice of another wallet on the same LNbits, which LNbits reports paid to
/// any caller, is not taken for one of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and the PyPI lnbits: scripts/test.sh runs it with COINSLOT_TEST_LNBITS=1"]
async fn wrong_keys_and_other_wallets_payments_are_refused() {
    let shop = Shop::open().await;
    let dir = tempfile::tempdir().unwrap();
    for (key, says) in [
        (
            "0123456789abcdef".repeat(2),
            "refused the invoice key (404 Wallet not found.)",
        ),
        (
            shop.shop.admin_key.clone(),
            "this is the wallet's admin key",
        ),
    ] {
        let mut config = coinslotd::Config::with_data_dir(dir.path());
        config.backend = shop.config_with(&key);
        let err = match coinslot_tests::TestServer::start_with(config).await {
            Ok(_) => panic!("coinslotd started with a key it must refuse"),
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains(says), "{err}");
    }

    // The payer pays an invoice of a third wallet; the shop's backend is asked about it.
    let theirs = shop.invoice_elsewhere(5_000, "not the shop's").await;
    shop.lnbits.pay(&shop.payer, &theirs.bolt11).await.unwrap();
    let backend = shop.backend().await;
    // With the shop's key LNbits looks in the shop's wallet only: not found.
    assert_eq!(
        backend.invoice_status(&theirs.lookup_id).await.unwrap(),
        InvoiceStatus::Expired
    );
    // Without a valid key it says "paid" for any hash: such an answer never counts.
    let unkeyed = reqwest::get(format!(
        "{}/api/v1/payments/{}",
        shop.lnbits.url, theirs.lookup_id
    ))
    .await
    .unwrap()
    .json::<serde_json::Value>()
    .await
    .unwrap();
    assert_eq!(unkeyed["paid"], true, "{unkeyed}");
    assert!(unkeyed.get("details").is_none(), "{unkeyed}");
    let ours = backend
        .create_invoice(5_000, "the shop's", 600)
        .await
        .unwrap();
    assert_eq!(
        backend.invoice_status(&ours.lookup_id).await.unwrap(),
        InvoiceStatus::Unpaid
    );
    shop.lnbits.pay(&shop.payer, &ours.bolt11).await.unwrap();
    assert_eq!(
        backend.invoice_status(&ours.lookup_id).await.unwrap(),
        InvoiceStatus::Paid
    );
}
