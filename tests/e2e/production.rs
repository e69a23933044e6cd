//! The deployment `docs/production.md` walks an operator through, end to end: two coinslotd
//! instances on one PostgreSQL reached over TLS (`verify-full`, the CA in `[store]
//! ca_file`), Lightning through a real LNbits (PyPI, `FakeWallet`) holding only the shop
//! wallet's invoice key, in front of one API. A price changed once, at one instance, is
//! charged by both; a wallet tops up through LNbits at one and pays at both; the dashboard's
//! figures (`/admin/earnings`, `/admin/audit`) at either instance show what both earned today.
//! And the guide's config file is read by coinslotd as written (in the plain run).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;

use cdk::wallet::SendOptions;
use coinslot_admin::Scope;
use coinslot_tests::nodes::real_lnbits::RealLnbits;
use coinslot_tests::postgres_tls::{TlsCluster, HOST_NAME};
use coinslot_tests::proxy::{admin_token, spawn_upstream, upstream_config, Signals};
use coinslot_tests::wallet::{balance, mint_quote, new_wallet, random_seed, send, wait_quote_paid};
use coinslot_tests::{eventually, TestServer};
use serde_json::{json, Value};

/// The walk-through's config file, as coinslotd reads it: every key known, the CA and key
/// files where it says (here, files of the test's own).
#[test]
fn the_walkthrough_config_is_what_coinslotd_reads() {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/production.md"),
    )
    .unwrap();
    let start = guide.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + guide[start..].find("```").unwrap();
    let files = tempfile::tempdir().unwrap();
    let (ca, key) = (
        files.path().join("db-ca.pem"),
        files.path().join("lnbits.key"),
    );
    let certified = rcgen::generate_simple_self_signed(vec!["db.example.com".into()]).unwrap();
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let text = guide[start..end]
        .replace("/etc/coinslot/db-ca.pem", &ca.display().to_string())
        .replace("/etc/coinslot/lnbits.key", &key.display().to_string());
    let config = coinslotd::Config::parse(&text).unwrap();
    assert!(config
        .store
        .url
        .as_deref()
        .unwrap()
        .contains("sslmode=verify-full"));
    assert_eq!(config.store.ca_file.as_deref(), Some(ca.as_path()));
    assert!(matches!(
        config.backend,
        coinslotd::BackendConfig::Lnbits(ref lnbits) if lnbits.invoice_key_file.as_deref() == Some(key.as_path())
    ));
    assert!(config.limits.trust_forwarded_for);
    // … which is safe only because the guide's nginx overwrites the header.
    assert!(guide.contains("proxy_set_header X-Forwarded-For $remote_addr;"));
    let upstream = &config.proxy.upstreams[0];
    assert_eq!(
        (upstream.name.as_str(), upstream.routes[0].price),
        ("api", Some(2))
    );
}

async fn price_of(server: &TestServer, path: &str) -> Option<u64> {
    let response = reqwest::get(format!("{}{path}", server.url)).await.ok()?;
    response.json::<Value>().await.ok()?["amount"].as_u64()
}

async fn admin_get(server: &TestServer, path: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// What `route` kept today, by the ledger at `server`: `(requests, net)`.
async fn todays(server: &TestServer, token: &str, route: &str) -> Option<(u64, u64)> {
    let earnings = admin_get(server, "/admin/earnings?hours=24", token).await;
    let midnight = earnings["now"].as_u64()? / 86_400 * 86_400;
    let rows = earnings["hours"]
        .as_array()?
        .iter()
        .filter(|r| r["route"] == route && r["hour"].as_u64().is_some_and(|hour| hour >= midnight));
    let (mut requests, mut net) = (0, 0);
    for row in rows {
        requests += row["requests"].as_u64()?;
        net += row["earned"].as_u64()? - row["refunded"].as_u64()?;
    }
    Some((requests, net))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs python3 with the PyPI lnbits, and PostgreSQL's initdb: scripts/test.sh runs it with COINSLOT_TEST_LNBITS=1 and COINSLOT_TEST_POSTGRES_TLS=1"]
async fn two_instances_on_tls_postgres_and_lnbits_share_prices_and_earnings() {
    let cluster = TlsCluster::start().expect("a TLS cluster starts");
    let lnbits = RealLnbits::start().await.expect("LNbits starts");
    let shop = lnbits.wallet("shop").await.unwrap();
    let payer = lnbits.wallet("payer").await.unwrap();
    lnbits.fund(&payer, 10_000).await.unwrap();
    let (upstream_url, _upstream) = spawn_upstream(Signals::default()).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("lnbits.invoice-key");
    std::fs::write(&key_file, format!("{}\n", shop.invoice_key)).unwrap();

    // One config for both, as the guide gives it (only the data directory differs).
    let config = |dir: &Path| {
        let mut config = coinslotd::Config::with_data_dir(dir);
        config.store.url = Some(cluster.url(HOST_NAME, "hostaddr=127.0.0.1&sslmode=verify-full"));
        config.store.ca_file = Some(cluster.ca_file.clone());
        config.backend = coinslotd::BackendConfig::Lnbits(coinslotd::LnbitsBackendConfig {
            api_url: lnbits.url.clone(),
            invoice_key_file: Some(key_file.clone()),
        });
        config.proxy.upstreams = vec![upstream_config(&upstream_url)];
        config
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::start_with(config(dir_a.path())).await.unwrap();
    // The second instance gets the first's seed (one mint) and admin key (one operator).
    for file in ["seed", "admin.key"] {
        std::fs::copy(dir_a.path().join(file), dir_b.path().join(file)).unwrap();
    }
    let mut config_b = config(dir_b.path());
    config_b.public_url = Some(a.url.clone()); // behind one address, as behind a balancer
    let b = TestServer::start_with(config_b).await.unwrap();

    // The operator changes /search from 2 to 3 sat once, at A; B charges it too.
    let operator = admin_token(
        dir_a.path(),
        &[Scope::Read, Scope::Prices],
        coinslot_mint::unix_now(),
        600,
    )
    .unwrap();
    assert_eq!(price_of(&b, "/search").await, Some(2));
    let mut prices = admin_get(&a, "/admin/prices", &operator).await;
    prices["upstreams"][0]["routes"][0]["price"] = json!(3);
    let changed = reqwest::Client::new()
        .put(format!("{}/admin/prices", a.url))
        .bearer_auth(&operator)
        .json(&prices)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    eventually("the new price at B", || async {
        (price_of(&b, "/search").await == Some(3)).then_some(())
    })
    .await;

    // A customer tops up 50 sat at A, paid from another LNbits wallet.
    let wallet = new_wallet(&a.url, random_seed()).await.unwrap();
    let quote = mint_quote(&wallet, 50).await.unwrap();
    lnbits.pay(&payer, &quote.request).await.unwrap();
    wait_quote_paid(&wallet, &quote.id).await.unwrap();
    wallet
        .mint(&quote.id, cdk::amount::SplitTarget::default(), None)
        .await
        .unwrap();
    assert_eq!(lnbits.balance_msat(&shop).await.unwrap(), 50_000);

    // … and searches once at each instance, at the new price.
    for server in [&b, &a] {
        let token = send(&wallet, 3, SendOptions::default()).await.unwrap();
        let paid = reqwest::Client::new()
            .get(format!("{}/search?q=walkthrough", server.url))
            .header("x-cashu", token.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), 200, "at {}", server.url);
    }
    assert_eq!(balance(&wallet).await.unwrap(), 44);

    // The dashboard's figures, at either instance: both searches today, the books agree.
    for server in [&a, &b] {
        eventually("today's earnings of both instances", || async {
            (todays(server, &operator, "api: GET /search").await? == (2, 6)).then_some(())
        })
        .await;
        let audit = admin_get(server, "/admin/audit", &operator).await;
        let sat = &audit["units"][0];
        assert_eq!(
            (&audit["ok"], &sat["came_in"], &sat["retained"]),
            (&json!(true), &json!(50), &json!(6)),
            "{audit}"
        );
    }
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}
