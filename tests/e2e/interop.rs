//! Other wallets than cdk, driven as a new user would:
//! - cashu-ts (the TypeScript wallet most web wallets use): `tests/interop/cashu-ts/flow.mjs`;
//! - Nutshell's `cashu` CLI (Python): `tests/interop/nutshell/flow.sh`;
//! - mppx (the TypeScript SDK of the "Payment" HTTP auth scheme) reads a Coinslot `402`
//!   with its own parser and pays with its own credential encoding: `tests/interop/mppx/pay.mjs`.
//!
//! They need Node.js/npm and Python/pip, so each is `#[ignore]`d with what it needs; a plain
//! `cargo test` lists them as ignored and `scripts/test.sh` runs them with `--ignored` when
//! `COINSLOT_INTEROP=1` (`.ci/run` sets it when those are installed).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::process::Command;

use coinslot_tests::interop::{self, npm_project, output};
use coinslot_tests::TestServer;

/// Starts coinslotd (its fake backend paying quotes after `pay_after_ms`, at once by default),
/// runs `flow` (a command that gets the mint URL as its last argument) and checks it
/// succeeded and printed `ok_line`.
async fn run_flow(mut flow: Command, ok_line: &str, pay_after_ms: Option<u64>) {
    let data = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(data.path());
    if pay_after_ms.is_some() {
        config.backend =
            coinslotd::BackendConfig::Fake(coinslot_mint::FakeBackendConfig { pay_after_ms });
    }
    let server = TestServer::start_with(config).await.unwrap();
    flow.arg(&server.url);
    let (success, stdout, stderr) = output(flow, "the flow").await;
    assert!(success, "flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(ok_line), "{stdout}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn cashu_ts_tops_up_sends_receives_and_restores() {
    let dir = npm_project("cashu-ts", "@cashu/cashu-ts");
    let mut flow = Command::new("node");
    flow.arg("flow.mjs").current_dir(&dir);
    run_flow(flow, "cashu-ts flow ok", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and PyPI: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn nutshell_tops_up_sends_receives_and_restores() {
    let dir = interop::dir("nutshell");
    let bin = interop::venv("nutshell-venv", &dir.join("requirements.txt"));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut flow = Command::new("bash");
    flow.arg(dir.join("flow.sh")).env("PATH", path);
    // `cashu invoice` mints from a websocket notification, but its callback waits 0.1 s for
    // its own subscription map and drops a PAID state that arrives before it is filled: a
    // quote already paid when it subscribes (the state is sent at once) hung it forever on a
    // busy machine. Paid a second later, the notification is a real change it sees.
    run_flow(flow, "nutshell flow ok", Some(1000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn mppx_parses_the_payment_challenge_and_pays_with_its_credential() {
    let dir = npm_project("mppx", "mppx");
    let data = tempfile::tempdir().unwrap();
    let app = coinslot_tests::paywall::PaidApp::start(data.path(), Default::default())
        .await
        .unwrap();
    let wallet = coinslot_tests::wallet::funded(&app.url, 10).await.unwrap();
    let token = coinslot_tests::wallet::token(&wallet, 2).await.unwrap();
    let mut flow = Command::new("node");
    flow.arg("pay.mjs")
        .arg(format!("{}/search?q=mppx", app.url))
        .arg(&token)
        .current_dir(&dir);
    let (success, stdout, stderr) = output(flow, "the mppx flow").await;
    assert!(success, "mppx flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("challenge: 2 sat"), "{stdout}");
    assert!(stdout.contains("mppx flow ok"), "{stdout}");
    assert_eq!(coinslot_tests::wallet::balance(&wallet).await.unwrap(), 8);
}

/// `mppx validate` (the Payment scheme's own conformance checker) against coinslotd: it
/// finds the paid routes in `/openapi.json` and checks each one's challenge and error
/// handling; every check it can run passes (it cannot pay with cashu itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn mppx_validate_passes_against_coinslotd() {
    let dir = npm_project("mppx", "mppx");
    let (app, _data) = coinslot_tests::proxy::ProxiedApp::start_in_temp(|_| {})
        .await
        .unwrap();
    let mut flow = Command::new(dir.join("node_modules/.bin/mppx"));
    flow.args(["validate", "--output-json", app.url()])
        .current_dir(&dir);
    let (_, stdout, stderr) = output(flow, "mppx validate").await;
    let start = stdout
        .find('{')
        .unwrap_or_else(|| panic!("no JSON:\n{stdout}\n{stderr}"));
    let report: serde_json::Value = serde_json::from_str(&stdout[start..])
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(report["discovery"]["found"], true, "{report:#}");
    let endpoints = report["endpoints"].as_array().unwrap();
    assert!(endpoints.len() >= 5, "{report:#}");
    assert_eq!(report["summary"]["failed"], 0, "{report:#}");
    assert!(
        report["summary"]["passed"].as_u64().unwrap() > 10,
        "{report:#}"
    );
    app.stop().await.unwrap();
}
