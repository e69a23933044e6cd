//! Crash safety: SIGKILL coinslotd while eight clients swap, pay for requests through its
//! proxy and top up, restart it on the same store, and check that
//! - every swap answered 200 is durable (inputs spent, outputs restorable), and every swap
//!   cut off by the crash either left its inputs unspent or can restore its outputs (NUT-09);
//! - every paid request answered 200 stays paid, and the one cut off is answered on retry
//!   (the receipt, or a fresh payment) so its change is not lost;
//! - no quote is minted twice, and a mint cut off can be finished or restored;
//! - the books add up: the mint's audit is clean, everything that came in is what the
//!   clients topped up, what is outstanding is exactly what the clients hold, and what the
//!   service kept is exactly the price of the requests it answered.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::Path;
use std::process::Child;
use std::str::FromStr;
use std::time::Duration;

use coinslot_mint::cashu::nuts::{
    CheckStateRequest, CurrencyUnit, KeySet, KeySetInfo, KeysetResponse, MintQuoteBolt11Request,
    MintRequest, PreMintSecrets, Proofs, RestoreRequest, State, SwapRequest, Token,
};
use coinslot_mint::cashu::{Amount, MintUrl};
use coinslot_tests::raw::RawClient;
use serde_json::Value;

/// What one paid request costs.
const PRICE: u64 = 2;
/// What each paying client tops up at the start.
const PAYER_FUNDS: u64 = 4000;
/// What each top-up during the load is worth.
const TOPUP: u64 = 8;

/// Starts coinslotd on a fresh port. Tokens name the mint by its public URL, so a restart
/// keeps the first run's (`public_url`), as an operator's would.
fn start(dir: &Path, store: &str, upstream: &str, public_url: Option<&str>) -> (Child, String) {
    let top = public_url
        .map(|url| format!("public_url = \"{url}\"\n"))
        .unwrap_or_default();
    let config = write_config(dir, &top, store, upstream);
    let exe = Path::new(env!("CARGO_BIN_EXE_coinslotd"));
    coinslot_tests::spawn_coinslotd_with(exe, dir, Some(&config)).unwrap()
}

fn write_config(dir: &Path, top: &str, store: &str, upstream: &str) -> std::path::PathBuf {
    // Eight clients on one address drive it as fast as they can: no per-IP rate limit.
    let config = dir.join("coinslotd.toml");
    std::fs::write(
        &config,
        format!(
            "{top}[limits]\nper_ip_per_minute = 0\n[paywall]\nrun_lease_secs = 2\n{store}\n\
             [[proxy.upstreams]]\nname = \"api\"\nurl = \"{upstream}\"\n\
             routes = [{{ method = \"GET\", path = \"/search\", price = {PRICE}, unit = \"sat\" }}]\n"
        ),
    )
    .unwrap();
    config
}

/// The sample upstream the paid requests reach.
async fn upstream() -> String {
    upstream_with(Default::default()).await
}

async fn upstream_with(signals: coinslot_tests::proxy::Signals) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = coinslot_tests::proxy::upstream_app(signals);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn value(proofs: &Proofs) -> u64 {
    proofs.iter().map(|p| u64::from(p.amount)).sum()
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

async fn restore(client: &RawClient, outputs: &PreMintSecrets) -> usize {
    let (status, body) = client
        .post(
            "/v1/restore",
            &RestoreRequest {
                outputs: outputs.blinded_messages(),
            },
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["signatures"].as_array().unwrap().len()
}

async fn keyset_infos(client: &RawClient) -> Vec<KeySetInfo> {
    let (_, body) = client.get("/v1/keysets").await.unwrap();
    serde_json::from_value::<KeysetResponse>(body)
        .unwrap()
        .keysets
}

// ---- swaps ----

struct Swap {
    inputs: Proofs,
    outputs: PreMintSecrets,
    answered_ok: bool,
}

/// Chains 1-proof swaps until the server dies under it.
async fn swapper(client: RawClient, keyset: KeySet, mut proofs: Proofs) -> Vec<Swap> {
    let mut attempts = Vec::new();
    loop {
        let outputs = RawClient::outputs(&keyset, 1).unwrap();
        let request = SwapRequest::new(proofs.clone(), outputs.blinded_messages());
        let result = client.post("/v1/swap", &request).await;
        attempts.push(Swap {
            inputs: proofs.clone(),
            outputs: outputs.clone(),
            answered_ok: matches!(&result, Ok((200, _))),
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
            Err(_) => return attempts,
        }
    }
}

/// Checks the swaps after the restart; returns (how many were restored, value held).
async fn settle_swaps(client: &RawClient, keyset: &KeySet, attempts: &[Swap]) -> (usize, u64) {
    let mut restored = 0;
    for attempt in attempts {
        let input_states = states(client, &attempt.inputs).await;
        let signatures = restore(client, &attempt.outputs).await;
        if attempt.answered_ok {
            assert_eq!(
                input_states,
                vec![State::Spent],
                "an acknowledged spend was lost"
            );
            assert_eq!(signatures, 1, "an acknowledged swap's signature was lost");
        } else if input_states == vec![State::Spent] {
            assert_eq!(
                signatures, 1,
                "inputs spent but outputs not restorable: funds lost"
            );
            restored += 1;
        } else {
            assert_eq!(signatures, 0, "outputs signed without spending the inputs");
            // Still spendable after the restart.
            let (status, body, _) = client
                .swap_with(keyset, attempt.inputs.clone())
                .await
                .unwrap();
            assert_eq!(status, 200, "unspent inputs must still swap: {body}");
        }
    }
    // Each swapper holds what it started with: 1 sat (swaps cost no fee here).
    (restored, 1)
}

// ---- paid requests ----

struct Payment {
    token: String,
    answered_ok: bool,
}

async fn pay(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    let response = http
        .get(format!("{url}/search"))
        .header("X-Cashu", token)
        .send()
        .await?;
    let status = response.status().as_u16();
    let change = response
        .headers()
        .get("x-cashu")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.text().await?;
    if status != 200 && !body.contains("11002") {
        eprintln!("payment answered {status}: {body}");
    }
    Ok((status, change))
}

fn change_proofs(change: Option<String>, keysets: &[KeySetInfo]) -> Proofs {
    change
        .map(|t| Token::from_str(&t).unwrap().proofs(keysets).unwrap())
        .unwrap_or_default()
}

/// Pays for `/search` with everything it holds, keeps the change, again and again, until
/// the server dies. Returns the attempts and what the last answered one left it.
async fn payer(
    url: String,
    keysets: Vec<KeySetInfo>,
    mut proofs: Proofs,
) -> (Vec<Payment>, Proofs) {
    let http = reqwest::Client::new();
    let mint_url = MintUrl::from_str(&url).unwrap();
    let mut attempts = Vec::new();
    while value(&proofs) >= PRICE {
        let token =
            Token::new(mint_url.clone(), proofs.clone(), None, CurrencyUnit::Sat).to_string();
        let result = pay(&http, &url, &token).await;
        attempts.push(Payment {
            token,
            answered_ok: matches!(&result, Ok((200, _))),
        });
        match result {
            Ok((200, change)) => proofs = change_proofs(change, &keysets),
            Ok((status, _)) => panic!("payment refused before the crash: {status}"),
            Err(_) => break,
        }
    }
    (attempts, proofs)
}

// ---- top-ups ----

struct Topup {
    quote: String,
    outputs: PreMintSecrets,
    answered_ok: bool,
}

/// Tops up `TOPUP` sat at a time until the server dies.
async fn topper(client: RawClient, keyset: KeySet) -> Vec<Topup> {
    let mut attempts = Vec::new();
    loop {
        let request = MintQuoteBolt11Request {
            amount: Amount::from(TOPUP),
            unit: CurrencyUnit::Sat,
            description: None,
            pubkey: None,
        };
        let quote = match client.post("/v1/mint/quote/bolt11", &request).await {
            Ok((200, quote)) => quote["quote"].as_str().unwrap().to_string(),
            Ok((status, body)) => panic!("quote refused before the crash: {status} {body}"),
            Err(_) => return attempts,
        };
        let outputs = RawClient::outputs(&keyset, TOPUP).unwrap();
        let mint = MintRequest {
            quote: quote.clone(),
            outputs: outputs.blinded_messages(),
            signature: None,
        };
        let result = client.post("/v1/mint/bolt11", &mint).await;
        attempts.push(Topup {
            quote,
            outputs: outputs.clone(),
            answered_ok: matches!(&result, Ok((200, _))),
        });
        match result {
            Ok((200, _)) => {}
            Ok((status, body)) => panic!("mint refused before the crash: {status} {body}"),
            Err(_) => return attempts,
        }
    }
}

/// Checks the top-ups after the restart: each quote is minted once, a cut-off one can be
/// finished or restored, none mints again. Returns the value they brought in.
async fn settle_topups(client: &RawClient, keyset: &KeySet, attempts: &[Topup]) -> u64 {
    let mut minted = 0;
    for attempt in attempts {
        let (status, quote) = client
            .get(&format!("/v1/mint/quote/bolt11/{}", attempt.quote))
            .await
            .unwrap();
        assert_eq!(status, 200, "{quote}");
        let signatures = restore(client, &attempt.outputs).await;
        if attempt.answered_ok || quote["state"] == "ISSUED" {
            assert_eq!(quote["state"], "ISSUED", "an acknowledged mint was lost");
            assert_eq!(
                signatures,
                attempt.outputs.blinded_messages().len(),
                "a minted quote's signatures are not restorable"
            );
        } else if quote["state"] == "UNPAID" {
            // Created, but the crash came before the mint heard it was paid, and the fake
            // backend's invoices die with the process (a real node would still report it
            // paid): nothing came in.
            assert_eq!(signatures, 0, "outputs signed for an unpaid quote");
            continue;
        } else {
            assert_eq!(quote["state"], "PAID", "{quote}");
            assert_eq!(signatures, 0, "outputs signed for a quote still PAID");
            let finish = MintRequest {
                quote: attempt.quote.clone(),
                outputs: attempt.outputs.blinded_messages(),
                signature: None,
            };
            let (status, body) = client.post("/v1/mint/bolt11", &finish).await.unwrap();
            assert_eq!(status, 200, "a paid quote cut off must still mint: {body}");
        }
        // Never twice, whatever the outputs.
        let again = MintRequest {
            quote: attempt.quote.clone(),
            outputs: RawClient::outputs(keyset, TOPUP)
                .unwrap()
                .blinded_messages(),
            signature: None,
        };
        let (status, body) = client.post("/v1/mint/bolt11", &again).await.unwrap();
        assert_eq!(status, 400, "a quote minted twice: {body}");
        minted += TOPUP;
    }
    minted
}

async fn audit(url: &str, dir: &Path) -> Value {
    let token = coinslot_tests::proxy::admin_token(
        dir,
        &[coinslot_admin::Scope::Read],
        coinslot_mint::unix_now(),
        300,
    )
    .unwrap();
    let response = reqwest::Client::new()
        .get(format!("{url}/admin/audit"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_spend_and_the_books_add_up() {
    crash_and_check("").await;
}

/// The same on PostgreSQL (the database `COINSLOT_TEST_POSTGRES_URL` names; `scripts/test.sh`
/// runs it when that is set), in a schema of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/test.sh runs it when COINSLOT_TEST_POSTGRES_URL is set"]
async fn sigkill_under_load_on_postgres_loses_nothing_either() {
    let url = std::env::var("COINSLOT_TEST_POSTGRES_URL")
        .expect("set COINSLOT_TEST_POSTGRES_URL to run the crash test on PostgreSQL");
    let schema = format!("coinslot_crash_{:016x}", rand::random::<u64>());
    crash_and_check(&format!(
        "[store]\nurl = \"{url}\"\nschema = \"{schema}\"\n"
    ))
    .await;
    // Inside the schema it drops, so `public` is never migrated.
    let options = coinslot_store_postgres::PostgresOptions {
        schema: Some(schema.clone()),
        ..Default::default()
    };
    let admin = coinslot_store_postgres::PostgresStore::connect(&url, options)
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

async fn crash_and_check(store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstream().await;
    let (mut child, first_url) = start(dir.path(), store, &upstream, None);
    let client = RawClient::new(&first_url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let infos = keyset_infos(&client).await;

    // 4 swappers, 3 payers and a topper: 8 clients, every kind of write at once.
    let mut swappers = Vec::new();
    for _ in 0..4 {
        let proofs = client.topup_with(&keyset, 1).await.unwrap();
        swappers.push(tokio::spawn(swapper(
            client.clone(),
            keyset.clone(),
            proofs,
        )));
    }
    let mut payers = Vec::new();
    for _ in 0..3 {
        let proofs = client.topup_with(&keyset, PAYER_FUNDS).await.unwrap();
        payers.push(tokio::spawn(payer(
            first_url.clone(),
            infos.clone(),
            proofs,
        )));
    }
    let topup = tokio::spawn(topper(client.clone(), keyset.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().unwrap(); // SIGKILL: no shutdown, no final flush
    child.wait().unwrap();
    // On sled, the batches since the last checkpoint are in the spend journal, which the
    // restart below must replay (and then empty).
    let store_dir = dir.path().join("store");
    if store.is_empty() {
        let batches = coinslot_store_sled::SledStore::journaled_batches(&store_dir).unwrap();
        assert!(batches > 0, "the crash left no spend journal to replay");
    }

    let mut swaps = Vec::new();
    for task in swappers {
        swaps.push(task.await.unwrap());
    }
    let mut payments = Vec::new();
    for task in payers {
        payments.push(task.await.unwrap());
    }
    let topups = topup.await.unwrap();
    let acknowledged_swaps = swaps.iter().flatten().filter(|a| a.answered_ok).count();
    let acknowledged_payments = payments
        .iter()
        .flat_map(|(attempts, _)| attempts)
        .filter(|a| a.answered_ok)
        .count();
    assert!(acknowledged_swaps > 4, "too few swaps before the crash");
    assert!(
        acknowledged_payments > 3,
        "too few payments before the crash"
    );
    assert!(!topups.is_empty(), "no top-up before the crash");

    let (mut child, url) = start(dir.path(), store, &upstream, Some(&first_url));
    let client = RawClient::new(&url);
    if store.is_empty() {
        let batches = coinslot_store_sled::SledStore::journaled_batches(&store_dir).unwrap();
        assert_eq!(
            batches, 0,
            "the restart did not replay and empty the spend journal"
        );
    }

    let mut restored = 0;
    let mut held = 0;
    for attempts in &swaps {
        let (r, h) = settle_swaps(&client, &keyset, attempts).await;
        restored += r;
        held += h;
    }
    let topped_up = settle_topups(&client, &keyset, &topups).await;
    held += topped_up;

    // Payments: the last attempt of a payer that the crash cut off is retried as is.
    let http = reqwest::Client::new();
    let mut charged = 0;
    for (attempts, mut proofs) in payments {
        charged += attempts.iter().filter(|a| a.answered_ok).count() as u64;
        if let Some(cut) = attempts.last().filter(|a| !a.answered_ok) {
            // A run the crash cut off is pending until its lease runs out (on a shared store;
            // on sled an earlier process's run is over at once), then run again (a GET).
            let (status, change) = coinslot_tests::eventually("the cut-off payment", || async {
                match pay(&http, &url, &cut.token).await.unwrap() {
                    (400, _) => None,
                    answer => Some(answer),
                }
            })
            .await;
            assert_eq!(
                status, 200,
                "a payment cut off by the crash must be answered on retry"
            );
            proofs = change_proofs(change, &infos);
            charged += 1;
        }
        // Acknowledged payments stay spent.
        for attempt in attempts.iter().filter(|a| a.answered_ok) {
            let paid = Token::from_str(&attempt.token)
                .unwrap()
                .proofs(&infos)
                .unwrap();
            assert!(
                states(&client, &paid)
                    .await
                    .iter()
                    .all(|s| *s == State::Spent),
                "an acknowledged payment's proofs are unspent after the restart"
            );
        }
        assert!(
            states(&client, &proofs)
                .await
                .iter()
                .all(|s| *s == State::Unspent),
            "the change a payer holds is not spendable"
        );
        held += value(&proofs);
    }

    // The books: everything that came in, where it is now.
    let came_in = 4 + 3 * PAYER_FUNDS + topped_up;
    let report = audit(&url, dir.path()).await;
    assert_eq!(report["ok"], true, "{report}");
    let sat = &report["units"][0];
    assert_eq!(sat["unit"], "sat");
    assert_eq!(sat["came_in"], came_in, "{report}");
    assert_eq!(
        sat["outstanding"], held,
        "ecash outstanding is not what the clients hold: {report}"
    );
    assert_eq!(sat["retained"], PRICE * charged, "{report}");
    assert_eq!(
        sat["issued"].as_u64().unwrap(),
        sat["redeemed"].as_u64().unwrap() + held,
        "{report}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // The operator's command says the same about the store, offline.
    let top = format!("public_url = \"{first_url}\"\n");
    let config = write_config(dir.path(), &top, store, &upstream);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coinslotd"))
        .args(["admin", "audit"])
        .env("COINSLOT_CONFIG", &config)
        .env("COINSLOT_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let offline: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(offline, report, "the command and the API disagree");
    eprintln!(
        "crash test: {acknowledged_swaps} swaps, {acknowledged_payments} payments and {} top-ups \
         acknowledged before the kill, {restored} swaps restored after it; audit: {sat}",
        topups.len()
    );
}

/// A paid request cut off by a crash while the upstream works on it: after the restart,
/// its retry does not call the upstream again for a `POST` (the payment comes back, once,
/// change included) and calls it again for a `GET` (which `retry = "stored"` allows when
/// there is no answer to give).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_by_a_crash_is_refunded_or_run_again_on_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let signals = coinslot_tests::proxy::Signals::default();
    let upstream = upstream_with(signals.clone()).await;
    let config = |top: &str| {
        let path = dir.path().join("coinslotd.toml");
        std::fs::write(
            &path,
            format!(
                "{top}[limits]\nper_ip_per_minute = 0\n\
                 [[proxy.upstreams]]\nname = \"api\"\nurl = \"{upstream}\"\n\
                 routes = [{{ method = \"*\", path = \"/v1/run\", price = {PRICE} }}]\n"
            ),
        )
        .unwrap();
        path
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_coinslotd"));
    let (mut child, url) =
        coinslot_tests::spawn_coinslotd_with(exe, dir.path(), Some(&config(""))).unwrap();
    let client = RawClient::new(&url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let infos = keyset_infos(&client).await;
    let mint_url = MintUrl::from_str(&url).unwrap();
    let token =
        |proofs: Proofs| Token::new(mint_url.clone(), proofs, None, CurrencyUnit::Sat).to_string();
    // 3 sat for a 2-sat POST (1 back as change), 2 sat for a GET.
    let post = token(client.topup_with(&keyset, 3).await.unwrap());
    let get = token(client.topup_with(&keyset, 2).await.unwrap());
    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, url: String, token: String| {
        let http = http.clone();
        async move {
            let response = http
                .request(method, format!("{url}/v1/run?wait_ms=30000"))
                .header("x-cashu", token)
                .body("cut off")
                .send()
                .await?;
            let status = response.status().as_u16();
            let refund = response
                .headers()
                .get("x-cashu")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok::<_, reqwest::Error>((status, refund, response.text().await?))
        }
    };
    let cut_post = tokio::spawn(send(reqwest::Method::POST, url.clone(), post.clone()));
    let cut_get = tokio::spawn(send(reqwest::Method::GET, url.clone(), get.clone()));
    // Both payments are committed and the upstream works on them when the server dies.
    coinslot_tests::eventually("both runs to reach the upstream", || async {
        (signals.runs() == 2).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        cut_post.await.unwrap().is_err(),
        "the POST was answered before the kill"
    );
    assert!(
        cut_get.await.unwrap().is_err(),
        "the GET was answered before the kill"
    );

    let top = format!("public_url = \"{url}\"\n");
    let (mut child, url) =
        coinslot_tests::spawn_coinslotd_with(exe, dir.path(), Some(&config(&top))).unwrap();
    let client = RawClient::new(&url);
    // The POST: refunded, whole (the change its first run made, and the price), once.
    let retry = |method| send(method, url.clone(), post.clone());
    let (status, refund, body) = retry(reqwest::Method::POST).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("11001") && body.contains("refunded"),
        "{body}"
    );
    let refund = refund.expect("the refund is in X-Cashu");
    let proofs = Token::from_str(&refund).unwrap().proofs(&infos).unwrap();
    assert_eq!(value(&proofs), 3);
    assert!(states(&client, &proofs)
        .await
        .iter()
        .all(|s| *s == State::Unspent));
    let (status, again, _) = retry(reqwest::Method::POST).await.unwrap();
    assert_eq!(
        (status, again.as_deref()),
        (400, Some(refund.as_str())),
        "a second retry gets the same refund, not a new one"
    );
    assert_eq!(
        signals.runs(),
        2,
        "a retry of the POST reached the upstream"
    );
    // The GET: run again (the upstream counts it), without a second charge.
    let rerun = tokio::spawn(send(reqwest::Method::GET, url.clone(), get.clone()));
    coinslot_tests::eventually("the rerun to reach the upstream", || async {
        (signals.runs() == 3).then_some(())
    })
    .await;
    rerun.abort();
    let report = audit(&url, dir.path()).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["units"][0]["retained"], PRICE, "{report}");
    child.kill().unwrap();
    child.wait().unwrap();
}
