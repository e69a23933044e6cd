//! Secret files in the data directory: made private, refused when others can read them (the
//! server does not start, and says how to fix it), and the admin key rotated from the CLI,
//! which a running server follows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coinslot_admin::{AdminKey, ADMIN_KEY_FILE};

fn coinslotd(args: &[&str], data_dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coinslotd"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("COINSLOT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that started would not exit by itself: give it a minute, then fail.
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("coinslotd {args:?} did not exit");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_seed_or_admin_key_others_can_read_stops_the_server_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `admin token` makes admin.key; the audit opens the mint, which makes the seed.
    let out = coinslotd(&["admin", "token"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = coinslotd(&["admin", "audit"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (seed, key) = (data.join("seed"), data.join(ADMIN_KEY_FILE));
    assert_eq!((mode(&seed), mode(&key)), (0o600, 0o600));

    chmod(&seed, 0o644);
    let out = coinslotd(&["--listen", "127.0.0.1:0"], &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a world-readable seed");
    assert!(
        stderr.contains("seed") && stderr.contains("chmod 600") && stderr.contains("644"),
        "{stderr}"
    );
    chmod(&seed, 0o600);

    chmod(&key, 0o640);
    let out = coinslotd(&["admin", "token"], &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("admin") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[test]
fn rotating_the_admin_key_retires_every_token_issued_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = coinslotd(&["admin", "token", "--scope", "all"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let key_file = data.join(ADMIN_KEY_FILE);
    assert!(AdminKey::load_or_create(&key_file)
        .unwrap()
        .verify(&old_token)
        .is_ok());

    let out = coinslotd(&["admin", "rotate-key"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no longer work"));
    assert_eq!(mode(&key_file), 0o600);
    let rotated = AdminKey::load_or_create(&key_file).unwrap();
    assert!(
        rotated.verify(&old_token).is_err(),
        "an old token outlived rotation"
    );
    let out = coinslotd(&["admin", "token"], &data);
    let new_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(rotated.verify(&new_token).is_ok());
}

#[test]
fn a_running_server_refuses_admin_tokens_from_before_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, url) =
        coinslot_tests::spawn_coinslotd(Path::new(env!("CARGO_BIN_EXE_coinslotd")), &data).unwrap();
    let token = || {
        let out = coinslotd(&["admin", "token"], &data);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let whoami = |token: &str| {
        runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{url}/admin/whoami"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    let old = token();
    assert_eq!(whoami(&old), 200);

    let out = coinslotd(&["admin", "rotate-key"], &data);
    assert!(out.status.success());
    assert_eq!(whoami(&old), 401, "an old token outlived rotation");
    assert_eq!(whoami(&token()), 200, "the server did not load the new key");
    child.kill().unwrap();
    child.wait().unwrap();
}
