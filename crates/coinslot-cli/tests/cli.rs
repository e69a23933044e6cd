//! The `coinslot` binary against `examples/paid-search` (in-process, on 127.0.0.1:0):
//! `topup` discovers the mint from a 402, shows the invoice and mints; `get` pays by
//! itself; `balance`, `send`, `receive`; an over-budget `get` fails clearly and spends
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::process::Output;

async fn paid_search() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = paid_search::spawn_on_loopback(dir.path()).await.unwrap();
    (url, dir)
}

/// Runs `coinslot --wallet <wallet> args…` off the runtime (the server lives on it).
async fn coinslot(wallet: &Path, args: &[&str]) -> (Output, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coinslot"));
    command.arg("--wallet").arg(wallet).args(args);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topup_then_get_pays_by_itself() {
    let (url, _server) = paid_search().await;
    let wallet = tempfile::tempdir().unwrap();
    let search = format!("{url}/search?q=nut");

    // The mint is found from the service's own 402.
    let (out, stdout, stderr) = coinslot(wallet.path(), &["topup", &search, "20"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("lnbcrt"), "the invoice is shown: {stdout}");
    assert!(
        stdout.contains('█') || stdout.contains('▀'),
        "and a QR code"
    );
    assert!(stderr.contains("minted 20 sat"), "{stderr}");

    let (out, stdout, stderr) = coinslot(wallet.path(), &["get", &search]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("paid 2 sat"), "{stderr}");
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["paid"]["amount"], 2);

    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("18 sat"), "{stdout}");

    // Over budget: a clear error, nothing spent.
    let (out, _, stderr) =
        coinslot(wallet.path(), &["get", &search, "--max-per-request", "1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("over budget"), "{stderr}");
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("18 sat"), "{stdout}");

    // Send 5 to another wallet, which receives it.
    let (out, token, stderr) = coinslot(wallet.path(), &["send", "5"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(token.trim().starts_with("cashuB"), "{token}");
    let other = tempfile::tempdir().unwrap();
    let (out, _, stderr) = coinslot(other.path(), &["receive", token.trim()]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("received 5 sat"), "{stderr}");
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("13 sat"), "{stdout}");
    // The receiver trusts the mint now and can pay the service with it.
    let (out, _, stderr) = coinslot(other.path(), &["get", &search]).await;
    assert!(out.status.success(), "{stderr}");
    let (_, stdout, _) = coinslot(other.path(), &["balance"]).await;
    assert!(stdout.starts_with("3 sat"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nostr_key_carries_the_wallet_to_another_machine() {
    let (url, _server) = paid_search().await;
    let (_relay, relay) =
        coinslot_tests::nwc::local_relay(nostr_relay_builder::RelayBuilder::default)
            .await
            .unwrap();
    let nsec = {
        use nostr_sdk::ToBech32;
        nostr_sdk::Keys::generate()
            .secret_key()
            .to_bech32()
            .unwrap()
    };
    let search = format!("{url}/search?q=nut");
    let (laptop, phone) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let with_key = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = ["--nostr-key", &nsec, "--relay", &relay]
            .iter()
            .map(|s| s.to_string())
            .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let run = |dir: &Path, args: Vec<String>| {
        let dir = dir.to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            coinslot(&dir, &args).await
        }
    };

    // The laptop tops up; the proofs go to the relay too.
    let (out, _, stderr) = run(laptop.path(), with_key(&["topup", &search, "20"])).await;
    assert!(out.status.success(), "{stderr}");

    // The phone has nothing locally but the same key: it sees the 20 and may pay with it.
    let (out, stdout, stderr) = run(phone.path(), with_key(&["balance"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("restored 20"), "{stderr}");
    assert!(stdout.starts_with("20 sat"), "{stdout}");
    let (out, _, stderr) = run(phone.path(), with_key(&["get", &search])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("paid 2 sat"), "{stderr}");

    // Back on the laptop: its old proofs were spent by the phone; it holds 18, not 38.
    let (out, stdout, stderr) = run(laptop.path(), with_key(&["balance"])).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("18 sat"), "{stdout}");
    // Without the key the laptop only knows its own database: nothing is double counted
    // there either once it has synced.
    let (_, stdout, _) = coinslot(laptop.path(), &["balance"]).await;
    assert!(stdout.starts_with("18 sat"), "{stdout}");

    // A key without a relay is a clear error.
    let (out, _, stderr) = coinslot(laptop.path(), &["--nostr-key", &nsec, "balance"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--relay"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hourly_budget_holds_across_runs() {
    let (url, _server) = paid_search().await;
    let wallet = tempfile::tempdir().unwrap();
    let search = format!("{url}/search?q=nut");
    let (out, _, stderr) = coinslot(wallet.path(), &["topup", &search, "20"]).await;
    assert!(out.status.success(), "{stderr}");
    // 5 sat an hour at this host: two searches (4 sat) pass, the third would make 6.
    let limit = ["--max-per-host-hour", "5"];
    for _ in 0..2 {
        let args: Vec<&str> = [&["get", search.as_str()][..], &limit[..]].concat();
        let (out, _, stderr) = coinslot(wallet.path(), &args).await;
        assert!(out.status.success(), "{stderr}");
    }
    let args: Vec<&str> = [&["get", search.as_str()][..], &limit[..]].concat();
    let (out, _, stderr) = coinslot(wallet.path(), &args).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("within an hour"), "{stderr}");
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(
        stdout.starts_with("16 sat"),
        "nothing spent by the refused run: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_buys_time_on_a_paid_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (url, proxy, site) = paid_proxy::spawn_on_loopback(dir.path(), 60).await.unwrap();
    let wallet = tempfile::tempdir().unwrap();
    let (out, _, stderr) = coinslot(wallet.path(), &["topup", &url, "20"]).await;
    assert!(out.status.success(), "{stderr}");

    // Too little for a minute is refused before anything leaves the wallet.
    let shop = format!("{url}/pass");
    let (out, _, stderr) = coinslot(wallet.path(), &["pass", &shop, "0"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("buys nothing"), "{stderr}");

    let (out, pass, stderr) = coinslot(wallet.path(), &["pass", &shop, "5"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("bought 5 minute(s) of proxy"), "{stderr}");
    let pass = pass.trim().to_string();
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("15 sat"), "{stdout}");

    // The pass opens the proxy.
    let client = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://{proxy}"))
                .unwrap()
                .basic_auth("pass", &pass),
        )
        .build()
        .unwrap();
    let page = client.get(format!("http://{site}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // Extending adds minutes to the same pass.
    let (out, _, stderr) = coinslot(wallet.path(), &["pass", &shop, "3", "--extend", &pass]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("extended by 3 minute(s)"), "{stderr}");
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("12 sat"), "{stdout}");

    // An unknown scope is refused before anything leaves the wallet.
    let (out, _, stderr) = coinslot(wallet.path(), &["pass", &shop, "3", "--scope", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("12 sat"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_pays_the_payment_scheme_when_asked() {
    let (url, _server) = paid_search().await;
    let wallet = tempfile::tempdir().unwrap();
    let search = format!("{url}/search?q=nut");
    let (out, _, stderr) = coinslot(wallet.path(), &["topup", &search, "10"]).await;
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) =
        coinslot(wallet.path(), &["get", &search, "--prefer", "payment"]).await;
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("paid 2 sat (fee 0, back 0)"), "{stderr}");
    assert!(stderr.contains("receipt"), "the receipt is shown: {stderr}");
    let body: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(body["paid"]["amount"], 2);
    let (_, stdout, _) = coinslot(wallet.path(), &["balance"]).await;
    assert!(stdout.starts_with("8 sat"), "{stdout}");
}
