//! The PostgreSQL store over TLS, against a cluster of the test's own that accepts TLS only
//! (`coinslot_tests::postgres_tls`): libpq's `sslmode` and `sslrootcert` in the URL, and
//! `[store] ca_file` in coinslotd's config.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use coinslot_store_postgres::{PostgresOptions, PostgresStore};
use coinslot_tests::postgres_tls::{TlsCluster, HOST_NAME};

async fn connect(url: &str) -> Result<PostgresStore, String> {
    let options = PostgresOptions {
        acquire_timeout: std::time::Duration::from_secs(10),
        ..PostgresOptions::default()
    };
    PostgresStore::connect(url, options)
        .await
        .map_err(|e| e.to_string())
}

/// Each `sslmode` against a TLS-only server: what connects is encrypted, what must not
/// connect says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's initdb and pg_ctl: scripts/test.sh runs it with COINSLOT_TEST_POSTGRES_TLS=1"]
async fn each_sslmode_against_a_tls_only_server() {
    let cluster = TlsCluster::start().expect("a TLS cluster starts");
    let ca = cluster.ca_file.display().to_string();
    let other = cluster.other_ca_file.display().to_string();
    // The certificate's name, reached at 127.0.0.1.
    let named = |query: &str| cluster.url(HOST_NAME, &format!("hostaddr=127.0.0.1&{query}"));

    // verify-full with the right CA connects, encrypted.
    let store = connect(&named(&format!("sslmode=verify-full&sslrootcert={ca}")))
        .await
        .unwrap();
    assert!(store.encrypted().await.unwrap());
    store.close();

    // … with another CA, or to a name the certificate does not carry, it refuses.
    let err = connect(&named(&format!("sslmode=verify-full&sslrootcert={other}")))
        .await
        .expect_err("a certificate from another CA was accepted");
    assert!(err.contains("UnknownIssuer"), "{err}");
    let by_address = cluster.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = connect(&by_address)
        .await
        .expect_err("a certificate for another name was accepted");
    assert!(err.contains("not valid for name \"127.0.0.1\""), "{err}");

    // verify-ca checks the chain and not the name.
    let store = connect(&cluster.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .unwrap();
    assert!(store.encrypted().await.unwrap());
    store.close();
    let err = connect(&cluster.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    ))
    .await
    .expect_err("verify-ca accepted another CA");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // require and the default (prefer) encrypt without a CA.
    for query in ["sslmode=require", ""] {
        let store = connect(&cluster.url("127.0.0.1", query)).await.unwrap();
        assert!(store.encrypted().await.unwrap(), "{query}");
        store.close();
    }

    // disable: the server takes no plain text.
    let err = connect(&cluster.url("127.0.0.1", "sslmode=disable"))
        .await
        .expect_err("a TLS-only server took plain text");
    assert!(err.contains("no encryption"), "{err}");
}

/// coinslotd on the TLS-only server with `verify-full` and its CA in `[store] ca_file`:
/// it starts and is ready; `config check` names a missing CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL's initdb and pg_ctl: scripts/test.sh runs it with COINSLOT_TEST_POSTGRES_TLS=1"]
async fn coinslotd_runs_on_a_tls_database_with_its_ca_in_the_config() {
    let cluster = TlsCluster::start().expect("a TLS cluster starts");
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.store.url = Some(cluster.url(HOST_NAME, "hostaddr=127.0.0.1&sslmode=verify-full"));
    config.store.ca_file = Some(cluster.ca_file.clone());
    config.validate().unwrap();
    let server = coinslot_tests::TestServer::start_with(config.clone())
        .await
        .unwrap();
    let ready = reqwest::get(format!("{}/ready", server.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    server.stop().await.unwrap();

    config.store.ca_file = None;
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("store.url") && err.contains("sslrootcert"),
        "{err}"
    );
    config.store.ca_file = Some(dir.path().join("missing.pem"));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
}
