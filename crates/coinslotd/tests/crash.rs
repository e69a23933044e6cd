//! Crash safety: SIGKILL coinslotd in the middle of concurrent swaps, restart it on the same
//! data directory, and check that
//! - every swap that was answered 200 is durable: its inputs are spent, its outputs spend;
//! - every swap cut off by the crash lost nothing: either its inputs are still unspent, or
//!   they are spent and the wallet can restore its outputs' signatures (NUT-09).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use coinslot_mint::cashu::nuts::{
    CheckStateRequest, CurrencyUnit, PreMintSecrets, Proofs, RestoreRequest, State, SwapRequest,
};
use coinslot_tests::raw::RawClient;

fn start(dir: &Path, store: &str) -> (Child, String) {
    // Eight clients on one address drive it as fast as they can: no per-IP rate limit.
    let config = dir.join("coinslotd.toml");
    std::fs::write(&config, format!("[limits]\nper_ip_per_minute = 0\n{store}")).unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_coinslotd"));
    coinslot_tests::spawn_coinslotd_with(exe, dir, Some(&config)).unwrap()
}

struct Attempt {
    inputs: Proofs,
    outputs: PreMintSecrets,
    answered_ok: bool,
}

async fn states(client: &RawClient, proofs: &Proofs) -> Vec<State> {
    let ys = proofs.iter().map(|p| p.y().unwrap()).collect();
    let (status, body) = client
        .post("/v1/checkstate", &CheckStateRequest { ys })
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s["state"].clone()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_swaps_loses_no_acknowledged_spend_and_no_funds() {
    crash_and_check("").await;
}

/// The same on PostgreSQL (when `COINSLOT_TEST_POSTGRES_URL` names a database; `.ci/run`
/// sets it), in a schema of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_swaps_on_postgres_loses_nothing_either() {
    let Ok(url) = std::env::var("COINSLOT_TEST_POSTGRES_URL") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "crash test on PostgreSQL skipped: set COINSLOT_TEST_POSTGRES_URL"
        );
        return;
    };
    let schema = format!("coinslot_crash_{:016x}", rand::random::<u64>());
    crash_and_check(&format!(
        "[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n"
    ))
    .await;
    let admin = coinslot_store_postgres::PostgresStore::connect(&url, Default::default())
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

async fn crash_and_check(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start(dir.path(), store);
    let client = RawClient::new(&url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();

    let mut wallets = Vec::new();
    for _ in 0..8 {
        wallets.push(client.topup_with(&keyset, 1).await.unwrap());
    }
    // 8 workers chain 1-proof swaps until the server dies under them.
    let mut tasks = Vec::new();
    for mut proofs in wallets {
        let client = client.clone();
        let keyset = keyset.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            loop {
                let outputs = RawClient::outputs(&keyset, 1).unwrap();
                let request = SwapRequest::new(proofs.clone(), outputs.blinded_messages());
                let result = client.post("/v1/swap", &request).await;
                let ok = matches!(&result, Ok((200, _)));
                attempts.push(Attempt {
                    inputs: proofs.clone(),
                    outputs: outputs.clone(),
                    answered_ok: ok,
                });
                match result {
                    Ok((200, body)) => {
                        let response: coinslot_mint::cashu::nuts::SwapResponse =
                            serde_json::from_value(body).unwrap();
                        proofs = coinslot_mint::cashu::dhke::construct_proofs(
                            response.signatures,
                            outputs.rs(),
                            outputs.secrets(),
                            &keyset.keys,
                        )
                        .unwrap();
                    }
                    Ok((status, body)) => panic!("swap refused before the crash: {status} {body}"),
                    Err(_) => return attempts, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill().unwrap(); // SIGKILL: no shutdown, no final flush
    child.wait().unwrap();
    let mut attempts = Vec::new();
    for task in tasks {
        attempts.extend(task.await.unwrap());
    }
    let acknowledged = attempts.iter().filter(|a| a.answered_ok).count();
    assert!(
        acknowledged > 8,
        "too few swaps before the crash to test anything"
    );

    let (mut child, url) = start(dir.path(), store);
    let client = RawClient::new(&url);
    let mut restored = 0;
    for attempt in &attempts {
        let input_states = states(&client, &attempt.inputs).await;
        let (status, body) = client
            .post(
                "/v1/restore",
                &RestoreRequest {
                    outputs: attempt.outputs.blinded_messages(),
                },
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let signatures = body["signatures"].as_array().unwrap().len();
        if attempt.answered_ok {
            assert_eq!(
                input_states,
                vec![State::Spent],
                "an acknowledged spend was lost"
            );
            assert_eq!(signatures, 1, "an acknowledged swap's signature was lost");
        } else if input_states == vec![State::Spent] {
            // Cut off after the write: the outputs must be recoverable.
            assert_eq!(
                signatures, 1,
                "inputs spent but outputs not restorable: funds lost"
            );
            restored += 1;
        } else {
            assert_eq!(signatures, 0, "outputs signed without spending the inputs");
        }
    }
    // Every wallet's latest proofs still spend after the restart.
    for attempt in attempts.iter().filter(|a| !a.answered_ok) {
        if states(&client, &attempt.inputs).await == vec![State::Unspent] {
            let (status, body, _) = client
                .swap_with(&keyset, attempt.inputs.clone())
                .await
                .unwrap();
            assert_eq!(status, 200, "unspent inputs must still swap: {body}");
        }
    }
    eprintln!(
        "crash test: {} attempts, {acknowledged} acknowledged, {restored} restored after the crash",
        attempts.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
