//! LND, Core Lightning and LNbits backends (cdk-lnd and cdk-cln behind Coinslot's
//! PaymentBackend, and coinslot-backend-lnbits) against local stand-ins speaking each
//! node's real protocol: gRPC over TLS with a macaroon, JSON-RPC over a Unix socket, HTTP +
//! websocket with an API key. (A real LNbits: `tests/e2e/lnbits.rs`.)
//!
//! For each backend: a cdk wallet tops up through coinslotd; a payment is noticed from the
//! node's event stream alone; a payment made while the mint was down is credited at start;
//! a node that is down or refuses the credentials fails quotes clearly while the mint keeps
//! working; nothing but receiving is ever asked of the node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::sync::atomic::Ordering;
use std::sync::Arc;

use coinslot_mint::cashu::nuts::MintQuoteState;
use coinslot_mint::{MemoryStore, MintConfig, MintSeed, MintStore, PaymentBackend};
use coinslot_tests::direct::{mint_once, mint_over, quote, try_quote, wait_stored};
use coinslot_tests::nodes::{cln::Cln, lnbits::Lnbits, lnd::Lnd, Held, Ledger};
use coinslotd::BackendConfig;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Lnd,
    Cln,
    Lnbits,
}

/// A running stand-in node of any kind.
enum Node {
    Lnd(Lnd),
    Cln(Cln),
    Lnbits(Lnbits, tempfile::TempDir),
}

impl Node {
    async fn start(kind: Kind) -> Node {
        match kind {
            Kind::Lnd => Node::Lnd(Lnd::start().await),
            Kind::Cln => Node::Cln(Cln::start().await),
            Kind::Lnbits => {
                let node = Lnbits::start().await;
                let dir = tempfile::tempdir().unwrap();
                std::fs::write(dir.path().join("lnbits.key"), format!("{}\n", node.key)).unwrap();
                Node::Lnbits(node, dir)
            }
        }
    }

    fn ledger(&self) -> &Arc<Ledger> {
        match self {
            Node::Lnd(n) => &n.ledger,
            Node::Cln(n) => &n.ledger,
            Node::Lnbits(n, _) => &n.ledger,
        }
    }

    fn pay(&self, held: &Held) {
        assert!(self.ledger().settle(&held.hash), "already paid");
    }

    /// `[backend]` for coinslotd.
    fn config(&self) -> BackendConfig {
        match self {
            Node::Lnd(n) => BackendConfig::Lnd(coinslotd::LndBackendConfig {
                address: n.address.clone(),
                cert_file: n.cert_file.clone(),
                macaroon_file: n.macaroon_file.clone(),
            }),
            Node::Cln(n) => BackendConfig::Cln(coinslotd::ClnBackendConfig {
                rpc_socket: n.socket.clone(),
            }),
            Node::Lnbits(n, dir) => BackendConfig::Lnbits(coinslotd::LnbitsBackendConfig {
                api_url: n.url.clone(),
                invoice_key_file: Some(dir.path().join("lnbits.key")),
            }),
        }
    }

    /// A fresh backend connected to this node, as coinslotd builds it.
    async fn backend(&self) -> Arc<dyn PaymentBackend> {
        coinslotd::backend(&self.config()).await.unwrap()
    }

    /// The node was asked for nothing but creating, looking up and streaming invoices.
    fn assert_receive_only(&self) {
        match self {
            Node::Lnd(n) => {
                let calls = n.calls.lock().clone();
                assert!(!calls.is_empty());
                for call in calls {
                    assert!(
                        [
                            "/lnrpc.Lightning/AddInvoice",
                            "/lnrpc.Lightning/LookupInvoice",
                            "/lnrpc.Lightning/SubscribeInvoices"
                        ]
                        .contains(&call.as_str()),
                        "LND was asked {call}"
                    );
                }
            }
            Node::Cln(n) => assert!(n.refused.lock().is_empty(), "{:?}", n.refused.lock()),
            Node::Lnbits(n, _) => assert_eq!(n.pay_attempts.load(Ordering::SeqCst), 0),
        }
    }
}

/// The node's invoice behind a stored quote.
async fn held_for(node: &Node, store: &MemoryStore, id: &str) -> Held {
    let record = store.mint_quote(id).await.unwrap().unwrap();
    let held = node
        .ledger()
        .by_bolt11(&record.request)
        .expect("the invoice came from the node");
    assert_eq!(record.lookup_id, held.hash_hex());
    held
}

fn no_reconciling() -> MintConfig {
    MintConfig {
        reconcile_secs: 0,
        ..MintConfig::default()
    }
}

/// coinslotd with this backend: a cdk wallet asks for a quote over HTTP, the invoice is the
/// node's (amount, description), the node is paid, the wallet mints.
async fn tops_up_through_coinslotd(kind: Kind) {
    use coinslot_tests::wallet::{balance, mint_quote, new_wallet, random_seed, wait_quote_paid};
    let node = Node::start(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = node.config();
    config.mint.info.name = "Arcade".into();
    let server = coinslot_tests::TestServer::start_with(config)
        .await
        .unwrap();

    let wallet = new_wallet(&server.url, random_seed()).await.unwrap();
    let quote = mint_quote(&wallet, 34).await.unwrap();
    let held = node
        .ledger()
        .by_bolt11(&quote.request)
        .expect("node's invoice");
    assert_eq!(held.amount_msat, 34_000);
    assert_eq!(held.memo, "Arcade top-up");
    assert!(held.expires_at > held.created_at, "expiry passed on");
    node.pay(&held);
    wait_quote_paid(&wallet, &quote.id).await.unwrap();
    wallet
        .mint(&quote.id, cdk::amount::SplitTarget::default(), None)
        .await
        .unwrap();
    assert_eq!(balance(&wallet).await.unwrap(), 34);
    server.stop().await.unwrap();
    node.assert_receive_only();
}

/// Nobody asks about the quote and reconciliation is off: only the node's payment stream
/// can turn it paid. For LNbits the websocket is first cut, so the backend must resubscribe.
async fn the_payment_stream_alone_marks_quotes_paid(kind: Kind) {
    let node = Node::start(kind).await;
    let store = Arc::new(MemoryStore::new());
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        node.backend().await,
        no_reconciling(),
    )
    .await;
    let id = quote(&mint, 21).await;
    let held = held_for(&node, &store, &id).await;
    assert!(mint_once(&mint, &id, 21).await.is_err(), "minted unpaid");
    if let Node::Lnbits(lnbits, _) = &node {
        // Payments while the socket is down are for reconciliation to find; this one is
        // made once the backend has subscribed again.
        let before = lnbits.websockets.load(Ordering::SeqCst);
        lnbits.drop_websockets();
        coinslot_tests::eventually("the backend reconnects its websocket", || async {
            (lnbits.websockets.load(Ordering::SeqCst) > before).then_some(())
        })
        .await;
    }
    node.pay(&held);
    wait_stored(&store, &id, MintQuoteState::Paid).await;
    assert_eq!(mint_once(&mint, &id, 21).await.unwrap(), 21);
    assert!(mint_once(&mint, &id, 21).await.is_err(), "minted twice");
    node.assert_receive_only();
}

/// Paid while no mint listened: the next mint (a new backend connection, as after a
/// restart) credits it without anyone asking (its start-up reconciliation; CLN's
/// `waitanyinvoice` from index 0 also replays it).
async fn a_payment_made_while_down_is_credited_at_start(kind: Kind) {
    let node = Node::start(kind).await;
    let store = Arc::new(MemoryStore::new());
    let seed = MintSeed::generate();
    let mint = mint_over(&store, &seed, node.backend().await, no_reconciling()).await;
    let id = quote(&mint, 8).await;
    let held = held_for(&node, &store, &id).await;
    drop(mint);
    node.pay(&held);

    let mint = mint_over(&store, &seed, node.backend().await, MintConfig::default()).await;
    wait_stored(&store, &id, MintQuoteState::Paid).await;
    assert_eq!(mint_once(&mint, &id, 8).await.unwrap(), 8);
    let audit = mint.audit().await.unwrap();
    assert!(audit.ok && audit.units[0].came_in == 8, "{audit:?}");
}

/// A node that refuses our credentials, or is down: quotes fail naming the backend and the
/// failed call, and the rest of the mint keeps working.
async fn a_refusing_or_absent_node_fails_quotes_clearly(kind: Kind) {
    let node = Node::start(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let refused = match &node {
        Node::Lnd(n) => {
            let wrong = dir.path().join("wrong.macaroon");
            std::fs::write(&wrong, [1u8; 32]).unwrap();
            BackendConfig::Lnd(coinslotd::LndBackendConfig {
                macaroon_file: wrong,
                address: n.address.clone(),
                cert_file: n.cert_file.clone(),
            })
        }
        Node::Cln(n) => {
            n.stop();
            node.config()
        }
        Node::Lnbits(n, _) => {
            // A key LNbits refuses, and the admin key, stop coinslotd at start with a clear
            // message; LNbits down makes quotes fail like the other nodes.
            for (key, says) in [
                (
                    "0".repeat(32),
                    "refused the invoice key (404 Wallet not found.)",
                ),
                (n.admin_key.clone(), "this is the wallet's admin key"),
            ] {
                let file = dir.path().join("other.key");
                std::fs::write(&file, key).unwrap();
                let config = BackendConfig::Lnbits(coinslotd::LnbitsBackendConfig {
                    api_url: n.url.clone(),
                    invoice_key_file: Some(file),
                });
                let err = coinslotd::backend(&config).await.err().unwrap().to_string();
                assert!(err.contains(says), "{err}");
            }
            n.stop();
            node.config()
        }
    };
    let name = format!("{kind:?}").to_lowercase();
    let store = Arc::new(MemoryStore::new());
    let backend = coinslotd::backend(&refused).await.unwrap();
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        backend,
        MintConfig::default(),
    )
    .await;
    let err = try_quote(&mint, 5).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("{name}: create invoice failed")),
        "{text}"
    );
    assert!(node.ledger().all().is_empty(), "an invoice was made anyway");
    assert_eq!(
        mint.keys().keysets.len(),
        1,
        "the mint still serves its keys"
    );
    assert!(store.unpaid_quotes(0).await.unwrap().is_empty());
}

macro_rules! for_each_backend {
    ($($scenario:ident),* $(,)?) => {
        mod lnd {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() { super::$scenario(super::Kind::Lnd).await })*
        }
        mod cln {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() { super::$scenario(super::Kind::Cln).await })*
        }
        mod lnbits {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() { super::$scenario(super::Kind::Lnbits).await })*
        }
    };
}

for_each_backend!(
    tops_up_through_coinslotd,
    the_payment_stream_alone_marks_quotes_paid,
    a_payment_made_while_down_is_credited_at_start,
    a_refusing_or_absent_node_fails_quotes_clearly,
);

/// LNbits keys reset after coinslotd started: LNbits then answers a lookup as it answers
/// anyone ("paid", no details), and that never turns a quote paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lnbits_answer_without_our_details_never_counts() {
    let node = Node::start(Kind::Lnbits).await;
    let Node::Lnbits(lnbits, _) = &node else {
        unreachable!()
    };
    let store = Arc::new(MemoryStore::new());
    let backend = node.backend().await;
    let mint = mint_over(
        &store,
        &MintSeed::generate(),
        Arc::clone(&backend),
        no_reconciling(),
    )
    .await;
    let id = quote(&mint, 13).await;
    let held = held_for(&node, &store, &id).await;
    lnbits.revoke_keys();
    node.pay(&held);
    let err = backend.invoice_status(&held.hash_hex()).await.unwrap_err();
    assert!(
        err.0.contains("not as the wallet's incoming one"),
        "{}",
        err.0
    );
    assert!(
        mint_once(&mint, &id, 13).await.is_err(),
        "minted on an unkeyed answer"
    );
    assert_eq!(
        store.mint_quote(&id).await.unwrap().unwrap().state,
        MintQuoteState::Unpaid
    );
}

/// A fiat-like unit priced from a live source: quotes become invoices at the current price,
/// follow it when it moves, and stop (saying why) when the price goes stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fiat_unit_is_priced_from_a_live_source() {
    use coinslot_mint::{PriceSource, UnitConfig};
    use serde_json::{json, Value};

    let price = Arc::new(parking_lot::Mutex::new(
        json!({"bitcoin": {"usd": 100_000}}),
    ));
    let shown = Arc::clone(&price);
    let app = axum::Router::new().route(
        "/simple/price",
        axum::routing::get(move || {
            let body = shown.lock().clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let price_url = format!("http://{}/simple/price", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let node = Node::start(Kind::Lnd).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.backend = node.config();
    config.mint.info.name = "Arcade".into();
    config.mint.invoice_description = "{name}: {amount} {unit} of play".into();
    config.mint.units.push(UnitConfig {
        price: Some(PriceSource {
            url: price_url,
            pointer: "/bitcoin/usd".into(),
            units_per_currency: 100,
            refresh_secs: 1,
            max_age_secs: 2,
        }),
        ..UnitConfig::new("usd")
    });
    let server = coinslot_tests::TestServer::start_with(config)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let quote_usd = |cents: u64| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let response = http
                .post(format!("{url}/v1/mint/quote/bolt11"))
                .json(&json!({"amount": cents, "unit": "usd"}))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let held = |body: &Value| {
        node.ledger()
            .by_bolt11(body["request"].as_str().unwrap())
            .unwrap()
    };
    let invoiced = |body: &Value| held(body).amount_msat;

    let info: Value = http
        .get(format!("{}/v1/info", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        info["nuts"]["4"]["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["unit"] == "usd"),
        "{info}"
    );

    // $100,000 per bitcoin: $2.50 is 2,500 sat.
    let (status, body) = quote_usd(250).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(invoiced(&body), 2_500_000);
    assert_eq!(held(&body).memo, "Arcade: 250 usd of play");

    // The price halves: the same top-up costs twice as much.
    *price.lock() = json!({"bitcoin": {"usd": "50000.00"}});
    coinslot_tests::eventually("quotes follow the new price", || async {
        let (status, body) = quote_usd(250).await;
        (status == 200 && invoiced(&body) == 5_000_000).then_some(())
    })
    .await;

    // The source stops giving a price: after max_age, top-ups in usd pause (503: ours,
    // and passing, like a backend that is down).
    *price.lock() = json!({"bitcoin": {"usd": "n/a"}});
    let body = coinslot_tests::eventually("quotes refuse a stale price", || async {
        let (status, body) = quote_usd(250).await;
        (status == 503).then_some(body)
    })
    .await;
    assert!(body["detail"].as_str().unwrap().contains("stale"), "{body}");
    // Sat top-ups are unaffected.
    let response = http
        .post(format!("{}/v1/mint/quote/bolt11", server.url))
        .json(&json!({"amount": 10, "unit": "sat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await.unwrap();
}
