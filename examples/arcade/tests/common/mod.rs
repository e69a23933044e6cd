//! What both arcade test files need: an arcade on loopback, the operator's token, vouchers,
//! the audit.
#![allow(dead_code)] // each test file uses its own part

use std::time::Duration;

use arcade::{ArcadeConfig, Running};
use coinslot_admin::Scope;
use serde_json::{json, Value};

/// An arcade on `127.0.0.1:0` whose racer minute lasts `minute`.
pub async fn start(minute: Duration) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = ArcadeConfig {
        minute,
        ..ArcadeConfig::default()
    };
    let running = arcade::spawn_on_loopback(dir.path(), config).await.unwrap();
    (running, dir)
}

/// A token for the admin API (read and issue).
pub fn admin_token(running: &Running) -> String {
    let now = coinslot::crates::mint::unix_now();
    running
        .opened
        .admin_key
        .issue(
            "test",
            &[Scope::Read, Scope::Issue],
            Duration::from_secs(600),
            now,
        )
        .unwrap()
}

/// `POST /admin/credit` in `form` (`token` or `voucher`); the answer's body.
pub async fn credit(running: &Running, amount: u64, form: &str) -> String {
    reqwest::Client::new()
        .post(format!("{}/admin/credit", running.url))
        .bearer_auth(admin_token(running))
        .json(&json!({"amount": amount, "unit": "credit", "form": form, "memo": "Welcome"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Credit printed by the operator, as a bare token.
pub async fn voucher_token(running: &Running, amount: u64) -> String {
    let answer: Value = serde_json::from_str(&credit(running, amount, "token").await).unwrap();
    answer["token"].as_str().unwrap().to_owned()
}

/// `GET url` as JSON, with the admin token when `admin`.
pub async fn get_json(running: &Running, path: &str, admin: bool) -> Value {
    let mut request = reqwest::Client::new().get(format!("{}{path}", running.url));
    if admin {
        request = request.bearer_auth(admin_token(running));
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// The mint's books balance.
pub async fn audit_ok(running: &Running) {
    let audit = get_json(running, "/admin/audit", true).await;
    assert_eq!(audit["ok"], json!(true), "{audit}");
}
