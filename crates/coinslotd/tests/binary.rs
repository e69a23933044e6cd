//! The `coinslotd` binary: prints its URL, serves, refuses bad flags, stops on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coinslot_tests::spawn_coinslotd;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_coinslotd"))
}

#[test]
fn bad_flag_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coinslotd"))
        .args(["--listen", "not-an-address", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_coinslotd(exe(), dir.path()).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let info: serde_json::Value = runtime.block_on(async {
        reqwest::get(format!("{url}/v1/info"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(info["nuts"]["5"]["disabled"], true);

    let seed = dir.path().join("seed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&seed).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "seed file must be private");
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "coinslotd exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "coinslotd did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// sled allows one process per store: a second coinslotd on the same data directory must
/// refuse to start rather than serve a second, diverging view of spent proofs.
#[test]
fn a_second_instance_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _url) = spawn_coinslotd(exe(), dir.path()).unwrap();

    let second = Command::new(env!("CARGO_BIN_EXE_coinslotd"))
        .env("COINSLOT_LISTEN", "127.0.0.1:0")
        .env("COINSLOT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        !second.status.success(),
        "a second instance started on the same store"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("lock"), "{stderr}");
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A database that cannot be reached at start stops coinslotd with an error that says so,
/// without the password, and the audit command fails the same way.
#[test]
fn an_unreachable_database_at_start_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let url = "postgres://coinslot:hunter2@127.0.0.1:1/coinslot";
    for args in [&["serve"][..], &["admin", "audit"][..]] {
        let output = Command::new(exe())
            .args(args)
            .env("COINSLOT_LISTEN", "127.0.0.1:0")
            .env("COINSLOT_DATA_DIR", dir.path())
            .env("COINSLOT_DATABASE_URL", url)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{args:?} started without its database"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("PostgreSQL"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2"),
            "{args:?} printed the password: {stderr}"
        );
    }
}

#[test]
fn admin_token_prints_a_token_signed_with_the_data_dir_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(exe())
        .args([
            "admin",
            "token",
            "--expires",
            "1h",
            "--scope",
            "read,issue",
            "--subject",
            "ops",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let key = coinslot_admin::AdminKey::load_or_create(&dir.path().join("admin.key")).unwrap();
    let claims = key.verify(token.trim()).unwrap();
    assert_eq!(claims.sub, "ops");
    assert!(claims.allows(coinslot_admin::Scope::Issue));
    assert!(!claims.allows(coinslot_admin::Scope::Keys));
    let lifetime = claims.exp - claims.iat;
    assert_eq!(lifetime, 3600);

    let bad = Command::new(exe())
        .args(["admin", "token", "--scope", "root", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope `root`"));
}

#[test]
fn config_check_validates_and_prints_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[proxy.upstreams]]\nname = \"api\"\nurl = \"http://127.0.0.1:9\"\nroutes = [{ path = \"/a\", price = 3 }]\n",
    )
    .unwrap();
    let output = Command::new(exe())
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("valid") && printed.contains("price = 3"),
        "{printed}"
    );
    assert!(
        printed.contains("per_ip_per_minute"),
        "defaults are shown: {printed}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[proxy.upstreams]]\nname = \"api\"\nurl = \"http://127.0.0.1:9\"\nroutes = [{ path = \"/a\", price = 3, unit = \"eur\" }]\n").unwrap();
    let output = Command::new(exe())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("proxy.upstreams[0].routes[0].unit"),
        "{stderr}"
    );
}

/// `--log-format json` writes one JSON object per line, with the event's fields at the top
/// level, and the admin key never appears in the logs.
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::BufRead;
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(exe())
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line.contains("coinslotd serving");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!lines.is_empty());
    let key = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
        assert!(!line.contains(key.trim()), "the admin key was logged");
    }
    let serving: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(
        serving["pubkey"].is_string(),
        "fields are flattened: {serving}"
    );
    assert!(
        serving["pubkey"].as_str().unwrap().starts_with("02"),
        "the identity is the even key"
    );
    assert!(
        serving["npub"].as_str().unwrap().starts_with("npub1"),
        "{serving}"
    );
}
