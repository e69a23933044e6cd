//! Two coinslotd instances on one PostgreSQL database: they share keysets, quotes and spent
//! proofs, so a quote paid through one mints on the other and one token sent to both at
//! once is accepted once, also after a restart.
//!
//! Every test is `#[ignore]`d: `cargo test -- --ignored` runs them against the database
//! `COINSLOT_TEST_POSTGRES_URL` names (`scripts/test.sh` does when it is set; `.ci/run`
//! sets it). Each works in a schema of its own, dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cdk::nuts::{ProofsMethods, State};
use cdk::wallet::SendOptions;
use coinslot_store_postgres::{PostgresOptions, PostgresStore};
use coinslot_tests::proxy::{spawn_upstream, upstream_config, Signals};
use coinslot_tests::wallet::{
    funded, get_json, mint_request, new_wallet, post_json, proof_states, random_seed, send,
    swap_request, token_proofs, topup,
};
use coinslot_tests::{eventually, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const URL_ENV: &str = "COINSLOT_TEST_POSTGRES_URL";

/// A schema of its own on the test server, dropped when the guard goes.
struct Database {
    url: String,
    schema: String,
}

impl Database {
    /// A schema on the server `COINSLOT_TEST_POSTGRES_URL` names; without it the test fails
    /// saying so (it runs only when asked for, with `--ignored`).
    fn new() -> Self {
        let url = std::env::var(URL_ENV).unwrap_or_else(|_| {
            panic!("set {URL_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL tests")
        });
        let schema = format!("coinslot_e2e_{:016x}", rand::random::<u64>());
        Self { url, schema }
    }

    fn config(&self, data_dir: &Path) -> coinslotd::Config {
        let mut config = coinslotd::Config::with_data_dir(data_dir);
        config.store.url = Some(self.url.clone());
        config.store.schema = Some(self.schema.clone());
        config
    }
}

impl Database {
    /// Two instances on this database, each with its data directory (the second gets a
    /// copy of the first's seed, as every instance needs the same one).
    async fn two_instances(
        &self,
    ) -> (tempfile::TempDir, TestServer, tempfile::TempDir, TestServer) {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = TestServer::start_with(self.config(dir_a.path()))
            .await
            .unwrap();
        std::fs::copy(dir_a.path().join("seed"), dir_b.path().join("seed")).unwrap();
        let b = TestServer::start_with(self.config(dir_b.path()))
            .await
            .unwrap();
        (dir_a, a, dir_b, b)
    }
}

/// Two instances on one database in front of the sample upstream (its signals say what
/// ran), both going by the first one's URL: one service behind a load balancer.
struct Proxied {
    a: TestServer,
    b: TestServer,
    dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// The sample upstream on a port of its own, served for the rest of the test; its URL.
async fn start_upstream(signals: Signals) -> String {
    spawn_upstream(signals).await.unwrap().0
}

impl Database {
    /// An instance's config on this database, in front of the upstream at `upstream_url`.
    fn proxied_config(&self, dir: &Path, upstream_url: &str) -> coinslotd::Config {
        let mut config = self.config(dir);
        config.proxy.upstreams = vec![upstream_config(upstream_url)];
        config
    }

    async fn two_proxied(&self) -> (Signals, Proxied) {
        let signals = Signals::default();
        let upstream_url = start_upstream(signals.clone()).await;
        let with_upstream = |dir: &Path| self.proxied_config(dir, &upstream_url);
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = TestServer::start_with(with_upstream(dir_a.path()))
            .await
            .unwrap();
        std::fs::copy(dir_a.path().join("seed"), dir_b.path().join("seed")).unwrap();
        let mut config_b = with_upstream(dir_b.path());
        config_b.public_url = Some(a.url.clone());
        let b = TestServer::start_with(config_b).await.unwrap();
        let proxied = Proxied {
            a,
            b,
            dirs: (dir_a, dir_b),
        };
        (signals, proxied)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                // Inside the schema it drops, so `public` is never migrated.
                let options = PostgresOptions {
                    schema: Some(schema.clone()),
                    ..PostgresOptions::default()
                };
                if let Ok(store) = PostgresStore::connect(&url, options).await {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    let _ = store.execute_unprepared(&drop).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn two_instances_share_quotes_keysets_and_spent_proofs() {
    let db = Database::new();
    let (dir_a, a, _dir_b, b) = db.two_instances().await;
    let keysets_a = get_json(&a.url, "/v1/keysets").await.unwrap().body;
    assert_eq!(
        keysets_a,
        get_json(&b.url, "/v1/keysets").await.unwrap().body
    );

    // A quote made (and paid) through B mints through A, and only once.
    let quote = post_json(
        &b.url,
        "/v1/mint/quote/bolt11",
        &json!({"amount": 8, "unit": "sat"}),
    )
    .await
    .unwrap();
    assert_eq!(quote.status, 200, "{}", quote.body);
    let id = quote.body["quote"].as_str().unwrap().to_string();
    eventually("the quote paid, seen from A", || async {
        let state = get_json(&a.url, &format!("/v1/mint/quote/bolt11/{id}"))
            .await
            .ok()?;
        (state.body["state"] == "PAID").then_some(())
    })
    .await;
    let wallet = new_wallet(&a.url, random_seed()).await.unwrap();
    let minted = post_json(
        &a.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(mint_request(&wallet, &id, 8.into()).await.unwrap()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(minted.status, 200, "{}", minted.body);
    let again = post_json(
        &b.url,
        "/v1/mint/bolt11",
        &serde_json::to_value(mint_request(&wallet, &id, 8.into()).await.unwrap()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        (again.status, again.code()),
        (400, Some(20002)),
        "{}",
        again.body
    );

    // One token, swapped at both instances at once, many times over: one winner each time.
    let payer = funded(&a.url, 64).await.unwrap();
    let mut spent = Vec::new();
    for _ in 0..16 {
        let token = send(&payer, 2, SendOptions::default()).await.unwrap();
        let proofs = token_proofs(&payer, &token).await.unwrap();
        let mut tries = Vec::new();
        for i in 0..8 {
            let url = if i % 2 == 0 {
                a.url.clone()
            } else {
                b.url.clone()
            };
            let body =
                serde_json::to_value(swap_request(&payer, proofs.clone()).await.unwrap()).unwrap();
            tries.push(tokio::spawn(async move {
                post_json(&url, "/v1/swap", &body).await.unwrap()
            }));
        }
        let mut won = 0;
        for answer in futures::future::join_all(tries).await {
            let answer = answer.unwrap();
            match answer.status {
                200 => won += 1,
                _ => assert_eq!(answer.code(), Some(11001), "{}", answer.body),
            }
        }
        assert_eq!(
            won, 1,
            "a token was swapped {won} times across two instances"
        );
        spent.extend(proofs);
    }
    assert_eq!(spent.total_amount().unwrap(), 32.into());

    // Still spent, seen from either instance, after A restarts.
    a.stop().await.unwrap();
    let a = TestServer::start_with(db.config(dir_a.path()))
        .await
        .unwrap();
    for url in [&a.url, &b.url] {
        let checker = new_wallet(url, random_seed()).await.unwrap();
        let states = proof_states(&checker, &spent).await.unwrap();
        assert!(states.iter().all(|s| *s == State::Spent), "{states:?}");
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn another_seed_on_the_same_database_is_refused() {
    let db = Database::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start_with(db.config(dir_a.path()))
        .await
        .unwrap();
    // B has a seed of its own: it must not sign with keysets the database says are A's.
    let refused = TestServer::start_with(db.config(dir_b.path())).await;
    let err = refused
        .err()
        .expect("an instance with another seed started");
    assert!(err.to_string().contains("wrong seed file"), "{err}");
    a.stop().await.unwrap();
}

/// A TCP forwarder to the database that can be cut (every connection dropped, new ones
/// refused) and restored: a network outage between coinslotd and PostgreSQL.
struct Link {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Link {
    async fn to(target: &str) -> Link {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let link = Link {
            port,
            up: Default::default(),
            open: Default::default(),
        };
        link.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (link.up.clone(), link.open.clone(), target.to_string());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused, as good as
                }
                let target = target.clone();
                open.lock().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        link
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.open.lock().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn while_the_database_is_down_requests_get_503_and_no_token_is_taken() {
    let db = Database::new();
    // The test server's address, from the URL: postgres://user@HOST:PORT/db.
    let after_at = db.url.rsplit_once('@').unwrap().1;
    let (host_port, database) = after_at.split_once('/').unwrap();
    let link = Link::to(host_port).await;
    let user = db
        .url
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0;
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config(dir.path());
    config.store.url = Some(format!(
        "postgres://{user}@127.0.0.1:{}/{database}",
        link.port
    ));
    config.store.acquire_timeout_secs = 1;
    let server = TestServer::start_with(config).await.unwrap();
    let payer = funded(&server.url, 16).await.unwrap();
    let token = send(&payer, 4, SendOptions::default()).await.unwrap();
    let proofs = token_proofs(&payer, &token).await.unwrap();

    link.cut();
    let swap = serde_json::to_value(swap_request(&payer, proofs.clone()).await.unwrap()).unwrap();
    let refused = post_json(&server.url, "/v1/swap", &swap).await.unwrap();
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body["detail"].is_string(), "{}", refused.body);
    let ready = get_json(&server.url, "/ready").await.unwrap();
    assert_eq!(ready.status, 503);

    // Back up: the pool reconnects by itself, and the token was never spent.
    link.restore();
    eventually("ready again", || async {
        let ready = get_json(&server.url, "/ready").await.ok()?;
        (ready.status == 200).then_some(())
    })
    .await;
    let swap = serde_json::to_value(swap_request(&payer, proofs).await.unwrap()).unwrap();
    let accepted = post_json(&server.url, "/v1/swap", &swap).await.unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    server.stop().await.unwrap();
}

/// Waits on a NUT-17 socket for a notification of `sub_id` whose payload has `field` =
/// `value`.
async fn notified(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    sub_id: &str,
    field: &str,
    value: &str,
) -> serde_json::Value {
    let wait = async {
        while let Some(message) = ws.next().await {
            let Ok(Message::Text(text)) = message else {
                continue;
            };
            let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let params = &message["params"];
            if params["subId"] == sub_id && params["payload"][field] == value {
                return params["payload"].clone();
            }
        }
        panic!("the websocket closed");
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), wait)
        .await
        .unwrap_or_else(|_| panic!("no {field} = {value} notification for {sub_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn a_websocket_on_one_instance_sees_what_the_other_did() {
    let db = Database::new();
    let (_dir_a, a, _dir_b, b) = db.two_instances().await;

    // A client of B watches a token's proofs and a quote made through A.
    let payer = funded(&a.url, 16).await.unwrap();
    let token = send(&payer, 4, SendOptions::default()).await.unwrap();
    let proofs = token_proofs(&payer, &token).await.unwrap();
    let ys: Vec<String> = proofs.iter().map(|p| p.y().unwrap().to_hex()).collect();
    let quote = post_json(
        &a.url,
        "/v1/mint/quote/bolt11",
        &json!({"amount": 3, "unit": "sat"}),
    )
    .await
    .unwrap();
    let quote_id = quote.body["quote"].as_str().unwrap().to_string();
    let (mut ws, _) = tokio_tungstenite::connect_async(coinslot_tests::wallet::ws_url(&b.url))
        .await
        .unwrap();
    for (id, kind, filters) in [
        (0, "proof_state", json!(ys)),
        (1, "bolt11_mint_quote", json!([quote_id])),
    ] {
        let subscribe = json!({
            "jsonrpc": "2.0", "id": id, "method": "subscribe",
            "params": { "kind": kind, "subId": kind, "filters": filters },
        });
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
    }
    notified(&mut ws, "bolt11_mint_quote", "state", "PAID").await;

    // A swaps the token and mints the quote; B's client hears of both.
    let swap = serde_json::to_value(swap_request(&payer, proofs).await.unwrap()).unwrap();
    assert_eq!(
        post_json(&a.url, "/v1/swap", &swap).await.unwrap().status,
        200
    );
    let mut waiting: std::collections::HashSet<String> = ys.into_iter().collect();
    while !waiting.is_empty() {
        let seen = notified(&mut ws, "proof_state", "state", "SPENT").await;
        waiting.remove(seen["Y"].as_str().unwrap());
    }
    let mint =
        serde_json::to_value(mint_request(&payer, &quote_id, 3.into()).await.unwrap()).unwrap();
    assert_eq!(
        post_json(&a.url, "/v1/mint/bolt11", &mint)
            .await
            .unwrap()
            .status,
        200
    );
    notified(&mut ws, "bolt11_mint_quote", "state", "ISSUED").await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// One token, 64 copies of one paid request split over two instances on one database: the
/// upstream runs once; every other copy is told to wait (11002) or gets that run's answer,
/// whichever instance it reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn one_payment_runs_once_across_two_instances() {
    let db = Database::new();
    let (signals, proxied) = db.two_proxied().await;
    let Proxied { a, b, .. } = &proxied;

    let wallet = funded(&a.url, 10).await.unwrap();
    let token = coinslot_tests::wallet::token(&wallet, 2).await.unwrap();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let base = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let (client, token) = (client.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(format!("{base}/v1/run?wait_ms=300"))
                .header("x-cashu", token)
                .body("one job")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }));
    }
    let (mut answered, mut pending) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        match status {
            200 => {
                assert_eq!(json["run"], 1, "{body}");
                answered += 1;
            }
            400 => {
                assert_eq!(json["code"], 11002, "{body}");
                pending += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(signals.runs(), 1, "two instances ran one payment twice");
    assert!(answered >= 1);
    assert_eq!(answered + pending, 64);
    // Once it is done, both instances answer with the stored answer.
    for base in [&a.url, &b.url] {
        let response = client
            .post(format!("{base}/v1/run?wait_ms=300"))
            .header("x-cashu", &token)
            .body("one job")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let json: serde_json::Value = response.json().await.unwrap();
        assert_eq!((status.as_u16(), &json["run"]), (200, &1.into()), "{json}");
    }
    assert_eq!(signals.runs(), 1);
}

/// A `Payment` challenge paid at one instance cannot be paid again at the other with
/// another token: the challenge is consumed with the spend, in the shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn a_payment_challenge_pays_once_across_two_instances() {
    let db = Database::new();
    let (_, proxied) = db.two_proxied().await;
    let Proxied { a, b, .. } = &proxied;

    let wallet = funded(&a.url, 10).await.unwrap();
    let client = reqwest::Client::new();
    let offered = client
        .get(format!("{}/search?q=twice", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(offered.status(), 402);
    let params = coinslot_tests::paymentauth::challenge(offered.headers());
    let pay = |base: String, token: String| {
        let authorization = coinslot_tests::paymentauth::credential(&params, &token);
        let client = client.clone();
        async move {
            let response = client
                .get(format!("{base}/search?q=twice"))
                .header("authorization", authorization)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let first = coinslot_tests::wallet::token(&wallet, 2).await.unwrap();
    let (status, body) = pay(a.url.clone(), first).await;
    assert_eq!(status, 200, "{body}");
    let second = coinslot_tests::wallet::token(&wallet, 2).await.unwrap();
    let (status, body) = pay(b.url.clone(), second.clone()).await;
    assert_eq!(status, 402, "{body}");
    assert!(body.contains("invalid-challenge"), "{body}");
    assert!(coinslot_tests::wallet::unspent(&wallet, &second)
        .await
        .unwrap());
}

/// A TCP forwarder to the database that the test can cut and bring back on the same port:
/// the database going away and coming back, as coinslotd sees it.
struct Forwarder {
    addr: std::net::SocketAddr,
    target: String,
    tasks: tokio::task::JoinSet<()>,
}

impl Forwarder {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut forwarder = Self {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: tokio::task::JoinSet::new(),
        };
        forwarder.serve(listener);
        forwarder
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.tasks.spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    /// Closes the port and every connection through it.
    async fn cut(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

async fn ready_status(server: &TestServer) -> Option<u16> {
    let response = reqwest::get(format!("{}/ready", server.url)).await.ok()?;
    Some(response.status().as_u16())
}

/// `/ready` asks the store itself: it turns 503 while the database cannot be reached and
/// 200 again once it can, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn readiness_follows_the_database() {
    let db = Database::new();
    let mut url = reqwest::Url::parse(&db.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let mut forwarder = Forwarder::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(forwarder.addr.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = db.config(dir.path());
    config.store.url = Some(url.to_string());
    let server = TestServer::start_with(config).await.unwrap();
    assert_eq!(ready_status(&server).await, Some(200));

    forwarder.cut().await;
    eventually("/ready 503 while the database is away", || async {
        (ready_status(&server).await == Some(503)).then_some(())
    })
    .await;
    let health = reqwest::get(format!("{}/health", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process itself is still up");

    forwarder.restore().await;
    eventually("/ready 200 once the database is back", || async {
        (ready_status(&server).await == Some(200)).then_some(())
    })
    .await;
    server.stop().await.unwrap();
}

async fn price_of(server: &TestServer, path: &str) -> Option<u64> {
    let response = reqwest::get(format!("{}{path}", server.url)).await.ok()?;
    let body: serde_json::Value = response.json().await.ok()?;
    body["amount"].as_u64()
}

/// A price changed through one instance's admin API reaches the other without a restart
/// (`LISTEN/NOTIFY`), and a restarted instance starts with it, not its config file's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn a_price_change_reaches_every_instance_and_outlives_their_restarts() {
    use coinslot_admin::Scope;
    let db = Database::new();
    let upstream_url = start_upstream(Signals::default()).await;
    let config = |dir: &Path| db.proxied_config(dir, &upstream_url);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start_with(config(dir_a.path())).await.unwrap();
    std::fs::copy(dir_a.path().join("seed"), dir_b.path().join("seed")).unwrap();
    let b = TestServer::start_with(config(dir_b.path())).await.unwrap();
    assert_eq!(price_of(&b, "/search").await, Some(2));

    let now = coinslot_mint::unix_now();
    let token =
        coinslot_tests::proxy::admin_token(dir_a.path(), &[Scope::Read, Scope::Prices], now, 600)
            .unwrap();
    let client = reqwest::Client::new();
    let mut prices: serde_json::Value = client
        .get(format!("{}/admin/prices", a.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    prices["upstreams"][0]["routes"][0]["price"] = json!(5);
    let response = client
        .put(format!("{}/admin/prices", a.url))
        .bearer_auth(&token)
        .json(&prices)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(price_of(&a, "/search").await, Some(5));
    // Notified, not polled: the recheck comes every 30 s; a notification in well under 10.
    let started = std::time::Instant::now();
    eventually("the new price at the other instance", || async {
        (price_of(&b, "/search").await == Some(5)).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "reached after {:?}: by the {:?} recheck, not the notification",
        started.elapsed(),
        coinslotd::prices::RECHECK
    );

    b.stop().await.unwrap();
    let b = TestServer::start_with(config(dir_b.path())).await.unwrap();
    assert_eq!(
        price_of(&b, "/search").await,
        Some(5),
        "a restart keeps the shared prices"
    );
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

/// The earnings ledger is the service's: a payment at either instance shows in both
/// instances' `/admin/earnings`, each adding its sums to the same rows every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn two_instances_keep_one_earnings_ledger() {
    use coinslot_admin::Scope;
    let db = Database::new();
    let (_signals, proxied) = db.two_proxied().await;
    let wallet = new_wallet(&proxied.a.url, random_seed()).await.unwrap();
    topup(&wallet, 20).await.unwrap();
    let client = reqwest::Client::new();
    for server in [&proxied.a, &proxied.b] {
        let token = send(&wallet, 2, SendOptions::default()).await.unwrap();
        let paid = client
            .get(format!("{}/search?q=ledger", server.url))
            .header("x-cashu", token.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), 200);
    }
    // Each instance signs admin tokens with the key in its own data directory.
    let now = coinslot_mint::unix_now();
    let admin = |dir: &tempfile::TempDir| {
        coinslot_tests::proxy::admin_token(dir.path(), &[Scope::Read], now, 600).unwrap()
    };
    let (admin_a, admin_b) = (admin(&proxied.dirs.0), admin(&proxied.dirs.1));
    let search = |server: &TestServer, token: &str| {
        let request = client
            .get(format!("{}/admin/earnings", server.url))
            .bearer_auth(token);
        async move {
            let body: serde_json::Value = request.send().await.ok()?.json().await.ok()?;
            let row = body["routes"]
                .as_array()?
                .iter()
                .find(|r| r["route"] == "api: GET /search")?
                .clone();
            Some((row["requests"].as_u64()?, row["net"].as_u64()?))
        }
    };
    // A's reads write only A's sums: B's payment reaches A through B's own flush.
    eventually("B's payment in A's ledger", || async {
        (search(&proxied.a, &admin_a).await? == (2, 4)).then_some(())
    })
    .await;
    assert_eq!(search(&proxied.b, &admin_b).await, Some((2, 4)));
    proxied.b.stop().await.unwrap();
    proxied.a.stop().await.unwrap();
}
