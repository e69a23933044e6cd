//! The official `openai` SDKs, unmodified, pay the paid LLM API with a Cashu token as their
//! API key: the Python package (PyPI) and the npm package, each non-streamed and streamed.
//! Each flow prints the usage of its completions; the test checks that the key's balance
//! fell by exactly that usage times the models' prices, and that the rest comes back to a
//! cdk wallet, exactly.
//!
//! They need Python/pip and Node.js/npm and the package registries, so they are ignored by a
//! plain `cargo test`; `scripts/test.sh` runs them with `--ignored` when
//! `COINSLOT_INTEROP=1` (which `.ci/run` sets where those tools exist).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::process::Command;
use std::time::Duration;

use coinslot_tests::{interop, wallet};
use common::start;

mod common;

const DEPOSIT: u64 = 800;

/// Runs `flow` (the base URL and the key are appended) and checks the key's balance against
/// the usage it printed, then takes the rest back into the wallet.
async fn pays_with(mut flow: Command, ok_line: &str) {
    let llm = start(Duration::from_millis(5), |_| {}).await;
    let url = &llm.url;
    let wallet = wallet::funded(url, DEPOSIT + 100).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();
    flow.arg(format!("{url}/v1")).arg(&key);
    let (success, stdout, stderr) = interop::output(flow, "the SDK flow").await;
    assert!(success, "flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(ok_line), "{stdout}");

    let mut spent = 0;
    let mut first = None;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["USAGE", prompt, completion, model] = words[..] {
            let cost = paid_llm::cost(model, prompt.parse().unwrap(), completion.parse().unwrap())
                .unwrap();
            spent += cost;
            first.get_or_insert(cost);
        }
    }
    assert!(spent > 0, "{stdout}");
    // The non-streamed answer carried its settled balance.
    let first = first.unwrap();
    assert!(
        stdout.contains(&format!("BALANCE {} sat", DEPOSIT - first)),
        "{stdout}"
    );
    assert_eq!(
        llm.balance(&key).await.1["balance"],
        DEPOSIT - spent,
        "{stdout}"
    );
    let rest = llm.pay_out(&key).await;
    let before = wallet::balance(&wallet).await.unwrap();
    let received = wallet
        .receive(rest["token"].as_str().unwrap(), Default::default())
        .await
        .unwrap()
        .to_u64();
    assert_eq!(received, DEPOSIT - spent);
    assert_eq!(wallet::balance(&wallet).await.unwrap(), before + received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python3 and PyPI: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn the_openai_python_sdk_pays_with_the_token_as_its_key() {
    let dir = interop::dir("openai-python");
    let bin = interop::venv("openai-venv", &dir.join("requirements.txt"));
    let python = bin.join("python");
    let mut flow = Command::new(python);
    flow.arg(dir.join("flow.py"));
    pays_with(flow, "openai python flow ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and npm: scripts/test.sh runs it when COINSLOT_INTEROP=1"]
async fn the_openai_npm_sdk_pays_with_the_token_as_its_key() {
    let dir = interop::npm_project("openai-node", "openai");
    let mut flow = Command::new("node");
    flow.arg("flow.mjs").current_dir(&dir);
    pays_with(flow, "openai node flow ok").await;
}
