//! `coinslotd config check` on Lightning backend settings: each mistake is named before
//! anything connects; `--connect` creates and looks up a test invoice on a working node
//! (the LND stand-in: gRPC over TLS with a macaroon) and fails on a dead one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;

use coinslot_tests::nodes::lnd::Lnd;

/// `coinslotd config check` names what is wrong with each backend's settings before
/// anything connects, and `--connect` proves a working node (and fails on a dead one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_validates_backends_and_connects_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, toml: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, toml).unwrap();
        path
    };
    let missing = dir.path().join("missing");
    let cases = [
        (
            format!("kind = \"lnd\"\naddress = \"localhost\"\ncert_file = {missing:?}\nmacaroon_file = {missing:?}"),
            "backend.address",
        ),
        (
            format!("kind = \"lnd\"\naddress = \"127.0.0.1:10009\"\ncert_file = {missing:?}\nmacaroon_file = {missing:?}"),
            "backend.cert_file",
        ),
        (
            format!("kind = \"cln\"\nrpc_socket = {missing:?}"),
            "backend.rpc_socket",
        ),
        (
            "kind = \"lnbits\"\napi_url = \"lnbits.example\"".to_string(),
            "backend.api_url",
        ),
        (
            "kind = \"lnbits\"\napi_url = \"https://lnbits.example\"".to_string(),
            "COINSLOT_LNBITS_INVOICE_KEY",
        ),
        ("kind = \"lnd\"\naddress = \"127.0.0.1:10009\"".to_string(), "cert_file"),
    ];
    for (i, (backend, expected)) in cases.iter().enumerate() {
        let file = write(&format!("bad{i}.toml"), &format!("[backend]\n{backend}\n"));
        let out = config_check(&file, false).await;
        assert_eq!(out.status.code(), Some(2), "{backend}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{backend}: {stderr}");
    }

    let lnd = Lnd::start().await;
    let good = |address: &str| {
        format!(
            "[backend]\nkind = \"lnd\"\naddress = \"{address}\"\ncert_file = {:?}\nmacaroon_file = {:?}\n",
            lnd.cert_file, lnd.macaroon_file
        )
    };
    let file = write("good.toml", &good(&lnd.address));
    let out = config_check(&file, true).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("backend lnd: connected"), "{stdout}");
    assert_eq!(lnd.ledger.all().len(), 1, "one test invoice");
    assert_eq!(lnd.ledger.all()[0].amount_msat, 1000);

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let file = write("dead.toml", &good(&address));
    let out = config_check(&file, true).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("connection check failed"), "{stderr}");
}

/// Runs `coinslotd config check` off the runtime (the stand-in node lives on it).
async fn config_check(file: &Path, connect: bool) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coinslotd"));
    command.args(["config", "check"]).arg(file);
    if connect {
        command.arg("--connect");
    }
    command.env_remove("COINSLOT_LNBITS_INVOICE_KEY");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}
