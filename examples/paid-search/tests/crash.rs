//! Kill -9 the `paid-search` binary right after it answered, restart it on the same data
//! directory, and check that every payment it acknowledged is still recorded: a paid token
//! stays spent, a session deposit is still there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use cdk::wallet::SendOptions;
use coinslot_tests::wallet::{new_wallet, random_seed, send, topup};
use serde_json::Value;

fn spawn(data_dir: &Path, listen: &str) -> Result<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paid-search"))
        .args(["--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context(format!("no URL in {line:?}"))?
        .to_string();
    Ok((child, url))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Result<(u16, String, Value)> {
    let mut request = reqwest::Client::new().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let balance = response
        .headers()
        .get("x-cashu-balance")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await?;
    Ok((
        status,
        balance,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_payments_survive_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut child, url) = spawn(dir.path(), "127.0.0.1:0")?;
    let wallet = new_wallet(&url, random_seed()).await?;
    topup(&wallet, 40).await?;

    let paid = send(&wallet, 2, SendOptions::default()).await?.to_string();
    let (status, _, body) = get(&format!("{url}/search?q=nut"), &[("x-cashu", &paid)]).await?;
    assert_eq!(status, 200, "{body}");
    assert!(!body["results"].as_array().unwrap().is_empty());

    let deposit = send(&wallet, 10, SendOptions::default()).await?.to_string();
    let opened = reqwest::Client::new()
        .post(format!("{url}/cashu/session"))
        .header("x-cashu", &deposit)
        .send()
        .await?;
    assert_eq!(opened.status().as_u16(), 200);
    let opened: Value = opened.json().await?;
    let credential = opened["session"].as_str().unwrap().to_string();
    let auth = [("x-cashu-session", credential.as_str())];
    let (status, balance, _) = get(&format!("{url}/search?q=keysets"), &auth).await?;
    assert_eq!((status, balance.as_str()), (200, "8 sat"));

    child.kill()?; // SIGKILL: no shutdown, no final flush
    child.wait()?;

    let listen = url.trim_start_matches("http://").to_string();
    let (mut child, url) = spawn(dir.path(), &listen)?;
    let (status, _, body) = get(&format!("{url}/search?q=other"), &[("x-cashu", &paid)]).await?;
    assert_eq!(status, 400, "an acknowledged payment was lost: {body}");
    assert_eq!(body["code"], 11001);

    // The deposit survived; a debit may be forgotten by a crash (in the customer's favour).
    let (status, _, body) = get(&format!("{url}/cashu/session"), &auth).await?;
    assert_eq!(status, 200, "the session deposit was lost: {body}");
    let balance = body["balance"].as_u64().unwrap();
    assert!((8..=10).contains(&balance), "balance {balance}");
    child.kill()?;
    child.wait()?;
    Ok(())
}
