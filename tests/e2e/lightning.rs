//! LND, Core Lightning and LNbits backends (cdk-lnd, cdk-cln, cdk-lnbits behind Coinslot's
//! PaymentBackend) against local stand-ins speaking each node's real protocol: gRPC over
//! TLS with a macaroon, JSON-RPC over a Unix socket, HTTP + websocket with an API key.
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
            let wrong = dir.path().join("wrong.key");
            std::fs::write(&wrong, "0".repeat(32)).unwrap();
            BackendConfig::Lnbits(coinslotd::LnbitsBackendConfig {
                api_url: n.url.clone(),
                invoice_key_file: Some(wrong),
            })
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
