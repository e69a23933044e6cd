//! `coinslotd` on nostr as a process: the identity given as an nsec, and the
//! `coinslotd nostr discover` / `coinslotd nostr call` commands against an in-process relay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_tests::spawn_coinslotd_env;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coinslotd"))
}

fn coinslotd(args: &[&str]) -> Output {
    Command::new(exe()).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nsec_is_the_identity_and_the_cli_finds_and_calls_the_mint() {
    let (_relay, relay_url) = coinslot_tests::nwc::relay().await.unwrap();
    let keys = Keys::generate();
    let nsec = keys.secret_key().to_bech32().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_coinslotd_env(
        exe(),
        dir.path(),
        None,
        &[
            ("COINSLOT_NOSTR_RELAYS", relay_url.as_str()),
            ("COINSLOT_NOSTR_NSEC", nsec.as_str()),
        ],
    )
    .unwrap();

    // The NUT-06 pubkey is the given key, as the even point.
    let info: serde_json::Value = reqwest::get(format!("{url}/v1/info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pubkey = info["pubkey"].as_str().unwrap().to_string();
    assert_eq!(pubkey, format!("02{}", keys.public_key().to_hex()));

    // discover --author finds its announcement (it is published in the background).
    let npub = keys.public_key().to_bech32().unwrap();
    let mut found = None;
    for _ in 0..30 {
        let out = coinslotd(&[
            "nostr",
            "discover",
            "--relay",
            &relay_url,
            "--author",
            &npub,
            "--timeout",
            "2",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        if let Some(line) = stdout.lines().next() {
            found = Some(serde_json::from_str::<serde_json::Value>(line).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let found = found.expect("coinslotd nostr discover found no announcement");
    assert_eq!(found["mint_pubkey"], pubkey);
    assert_eq!(found["urls"], serde_json::json!([url]));
    assert_eq!(found["self_signed"], true);

    // call: the NUT-06 key form is accepted; the answer is the mint's JSON.
    let out = coinslotd(&[
        "nostr", "call", "--relay", &relay_url, "--mint", &pubkey, "keysets",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keysets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keysets["keysets"][0]["unit"], "sat");
    // Melt is refused over nostr as over HTTP; an unknown operation is a usage error.
    let melt = r#"{"request": "lnbc1", "unit": "sat"}"#;
    let out = coinslotd(&[
        "nostr",
        "call",
        "--relay",
        &relay_url,
        "--mint",
        &npub,
        "melt_quote",
        melt,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("melt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = coinslotd(&[
        "nostr", "call", "--relay", &relay_url, "--mint", &npub, "pay_me",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_nsec_is_refused_without_being_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(exe())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("COINSLOT_NOSTR_NSEC", "nsec1-secret-typo")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("COINSLOT_NOSTR_NSEC"), "{stderr}");
    assert!(
        !stderr.contains("secret-typo"),
        "the error repeats the key: {stderr}"
    );
}
