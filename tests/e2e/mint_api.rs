//! The mint's HTTP API against malicious and concurrent requests, restarts, and melt.
//! Real coinslotd on 127.0.0.1:0; requests built from cashu types over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use coinslot_mint::cashu::nuts::{
    BlindedMessage, CheckStateRequest, CurrencyUnit, Proofs, SecretKey, State, SwapRequest,
};
use coinslot_mint::cashu::Amount;
use coinslot_tests::raw::{error_code, RawClient};
use coinslot_tests::TestServer;

fn sum(proofs: &Proofs) -> u64 {
    proofs.iter().map(|p| u64::from(p.amount)).sum()
}

async fn state_of(client: &RawClient, proofs: &Proofs) -> Vec<State> {
    let ys = proofs.iter().map(|p| p.y().expect("y")).collect();
    let (status, body) = client
        .post("/v1/checkstate", &CheckStateRequest { ys })
        .await
        .expect("checkstate");
    assert_eq!(status, 200, "{body}");
    body["states"]
        .as_array()
        .expect("states")
        .iter()
        .map(|s| serde_json::from_value(s["state"].clone()).expect("state"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_advertises_mint_only_and_melt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);

    let (status, info) = client.get("/v1/info").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(info["nuts"]["5"]["disabled"], true);
    assert_eq!(info["nuts"]["5"]["methods"], serde_json::json!([]));
    assert!(info["version"].as_str().unwrap().starts_with("coinslot/"));
    let pubkey = info["pubkey"].as_str().unwrap();
    assert_eq!(pubkey.len(), 66, "compressed pubkey");

    let proofs = client.topup(8).await.unwrap();
    for path in [
        "/v1/melt/quote/bolt11",
        "/v1/melt/bolt11",
        "/v1/melt/quote/bolt11/abc",
    ] {
        let (status, body) = client
            .post(
                path,
                &serde_json::json!({"quote": "x", "inputs": proofs.clone()}),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("melt is disabled"),
            "{body}"
        );
        assert!(error_code(&body).is_some());
    }
    assert_eq!(
        state_of(&client, &proofs).await,
        vec![State::Unspent; proofs.len()]
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_spend_is_refused_with_11001() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let proofs = client.topup(13).await.unwrap();
    assert_eq!(sum(&proofs), 13);

    let (status, _, fresh) = client.swap(proofs.clone()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(sum(&fresh.unwrap()), 13);
    assert_eq!(
        state_of(&client, &proofs).await,
        vec![State::Spent; proofs.len()]
    );

    let (status, body, _) = client.swap(proofs).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(error_code(&body), Some(11001), "{body}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_proof_in_32_concurrent_swaps_has_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let proofs = client.topup(1).await.unwrap();

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let proofs = proofs.clone();
        tasks.push(tokio::spawn(
            async move { client.swap(proofs).await.unwrap() },
        ));
    }
    let mut ok = 0;
    for task in tasks {
        let (status, body, _) = task.await.unwrap();
        match status {
            200 => ok += 1,
            400 => assert_eq!(error_code(&body), Some(11001), "{body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(ok, 1, "exactly one concurrent swap may succeed");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_spent_proofs_and_keysets() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let (_, keysets_before) = client.get("/v1/keysets").await.unwrap();
    let spent = client.topup(5).await.unwrap();
    let unspent = client.topup(6).await.unwrap();
    let (status, _, _) = client.swap(spent.clone()).await.unwrap();
    assert_eq!(status, 200);
    server.stop().await.unwrap();

    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let (_, keysets_after) = client.get("/v1/keysets").await.unwrap();
    assert_eq!(
        keysets_before, keysets_after,
        "keysets changed across restart"
    );
    let (status, body, _) = client.swap(spent).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11001)), "{body}");
    let (status, body, fresh) = client.swap(unspent).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(sum(&fresh.unwrap()), 6);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malicious_swaps_get_clean_400s_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let proofs = client.topup(16).await.unwrap();
    let outputs = |amount| {
        RawClient::outputs(&keyset, amount)
            .unwrap()
            .blinded_messages()
    };

    let mut cases: Vec<(&str, SwapRequest, u64)> = Vec::new();
    // Duplicate inputs.
    let mut dup_inputs = proofs.clone();
    dup_inputs.push(proofs[0].clone());
    let dup_total = sum(&dup_inputs);
    cases.push((
        "duplicate inputs",
        SwapRequest::new(dup_inputs, outputs(dup_total)),
        11007,
    ));
    // Duplicate outputs.
    let mut dup_outputs = outputs(8);
    dup_outputs.push(dup_outputs[0].clone());
    cases.push((
        "duplicate outputs",
        SwapRequest::new(proofs.clone(), dup_outputs),
        11008,
    ));
    // Outputs worth more than inputs.
    cases.push((
        "unbalanced",
        SwapRequest::new(proofs.clone(), outputs(32)),
        11005,
    ));
    // Unknown keyset.
    let mut unknown = outputs(16);
    for output in &mut unknown {
        output.keyset_id = "00ffffffffffffff".parse().unwrap();
    }
    cases.push((
        "unknown keyset",
        SwapRequest::new(proofs.clone(), unknown),
        12001,
    ));
    // Forged signature: right secret, wrong C.
    let mut forged = proofs.clone();
    forged[0].c = SecretKey::generate().public_key();
    cases.push((
        "forged signature",
        SwapRequest::new(forged, outputs(16)),
        10001,
    ));
    // Inflated amount on a genuine proof.
    let mut inflated = proofs.clone();
    inflated[0].amount = Amount::from(u64::from(inflated[0].amount) * 2);
    let inflated_total = sum(&inflated);
    cases.push((
        "inflated amount",
        SwapRequest::new(inflated, outputs(inflated_total)),
        10001,
    ));
    // An amount the keyset has no key for.
    let mut huge = outputs(16);
    for output in &mut huge {
        output.amount = Amount::from(1u64 << 40);
    }
    cases.push((
        "amount without a key",
        SwapRequest::new(proofs.clone(), huge),
        12001,
    ));

    for (name, request, code) in cases {
        let (status, body) = client.post("/v1/swap", &request).await.unwrap();
        assert_eq!(status, 400, "{name}: {body}");
        assert!(body["detail"].is_string(), "{name}: {body}");
        assert_eq!(error_code(&body), Some(code), "{name}: {body}");
    }
    // None of that spent anything: the proofs are still good for their exact value.
    assert_eq!(
        state_of(&client, &proofs).await,
        vec![State::Unspent; proofs.len()]
    );

    // Reusing an already-signed blinded message.
    let premint = RawClient::outputs(&keyset, 16).unwrap();
    let first = client
        .post(
            "/v1/swap",
            &SwapRequest::new(proofs.clone(), premint.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!(first.0, 200, "{}", first.1);
    let more = client.topup(16).await.unwrap();
    let (status, body) = client
        .post(
            "/v1/swap",
            &SwapRequest::new(more.clone(), premint.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11003)), "{body}");
    assert_eq!(
        state_of(&client, &more).await,
        vec![State::Unspent; more.len()]
    );

    // Malformed JSON and an oversize body.
    let (status, body) = client
        .post_raw("/v1/swap", b"{not json".to_vec())
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("JSON"), "{body}");
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, body) = client.post_raw("/v1/swap", huge).await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(error_code(&body).is_some(), "{body}");

    // Too many outputs.
    let many: Vec<BlindedMessage> = (0..1001).flat_map(|_| outputs(1)).collect();
    let (status, body) = client
        .post("/v1/swap", &SwapRequest::new(more.clone(), many))
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11015)), "{body}");
    // A path parameter that is not UTF-8 once decoded (found by the mint_api fuzz target:
    // it was answered with a plain-text 400).
    for path in ["/v1/keys/00%3Ba%3B%FF%FF", "/v1/mint/quote/bolt11/%C3%28"] {
        let (status, body) = client.get(path).await.unwrap();
        assert_eq!(
            (status, error_code(&body).is_some()),
            (400, true),
            "{path}: {body}"
        );
    }
    // Too many inputs: refused on the count, before a single proof is looked at.
    let inputs = vec![more[0].clone(); 1001];
    let (status, body) = client
        .post("/v1/swap", &SwapRequest::new(inputs, outputs(1)))
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11014)), "{body}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_swap_gets_the_cached_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let proofs = client.topup(4).await.unwrap();
    let request = SwapRequest::new(
        proofs,
        RawClient::outputs(&keyset, 4).unwrap().blinded_messages(),
    );
    let first = client.post("/v1/swap", &request).await.unwrap();
    let second = client.post("/v1/swap", &request).await.unwrap();
    assert_eq!(first.0, 200);
    assert_eq!(
        first, second,
        "NUT-19: a retried swap must get the same response"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sig_all_locked_proofs_need_a_signature_over_inputs_and_outputs() {
    use coinslot_mint::cashu::amount::{FeeAndAmounts, SplitTarget};
    use coinslot_mint::cashu::dhke::construct_proofs;
    use coinslot_mint::cashu::nuts::{
        Conditions, PreMintSecrets, SigFlag, SpendingConditions, SwapResponse,
    };

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let owner = SecretKey::generate();
    let thief = SecretKey::generate();

    // Lock 8 sat to `owner` with SIG_ALL.
    let conditions = SpendingConditions::new_p2pk(
        owner.public_key(),
        Some(Conditions::new(None, None, None, None, Some(SigFlag::SigAll), None).unwrap()),
    );
    let amounts: Vec<u64> = keyset.keys.iter().map(|(a, _)| u64::from(*a)).collect();
    let fees = FeeAndAmounts::from((0, amounts));
    let locked = PreMintSecrets::with_conditions(
        keyset.id,
        Amount::from(8),
        &SplitTarget::Values(vec![Amount::from(4), Amount::from(4)]),
        &conditions,
        &fees,
    )
    .unwrap();
    let plain = client.topup(8).await.unwrap();
    let (status, body) = client
        .post(
            "/v1/swap",
            &SwapRequest::new(plain, locked.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let response: SwapResponse = serde_json::from_value(body).unwrap();
    let locked_proofs = construct_proofs(
        response.signatures,
        locked.rs(),
        locked.secrets(),
        &keyset.keys,
    )
    .unwrap();
    assert_eq!(locked_proofs.len(), 2);

    let outputs = RawClient::outputs(&keyset, 8).unwrap().blinded_messages();
    // No signature.
    let unsigned = SwapRequest::new(locked_proofs.clone(), outputs.clone());
    let (status, body) = client.post("/v1/swap", &unsigned).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(20008)), "{body}");
    // Signed by the wrong key.
    let mut wrong = SwapRequest::new(locked_proofs.clone(), outputs.clone());
    wrong.sign_sig_all(thief).unwrap();
    let (status, body) = client.post("/v1/swap", &wrong).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(20008)), "{body}");
    // Signed by the owner, then outputs swapped for the thief's: the signature no longer covers them.
    let mut tampered = SwapRequest::new(locked_proofs.clone(), outputs.clone());
    tampered.sign_sig_all(owner.clone()).unwrap();
    *tampered.outputs_mut() = RawClient::outputs(&keyset, 8).unwrap().blinded_messages();
    let (status, body) = client.post("/v1/swap", &tampered).await.unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(20008)), "{body}");
    assert_eq!(
        state_of(&client, &locked_proofs).await,
        vec![State::Unspent; 2]
    );
    // Signed by the owner over exactly these outputs.
    let mut signed = SwapRequest::new(locked_proofs.clone(), outputs);
    signed.sign_sig_all(owner).unwrap();
    let (status, body) = client.post("/v1/swap", &signed).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        state_of(&client, &locked_proofs).await,
        vec![State::Spent; 2]
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_change_rotates_the_keyset_and_old_ecash_still_redeems() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let old_keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let old_proofs = client.topup(10).await.unwrap();
    server.stop().await.unwrap();

    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.mint.units[0].input_fee_ppk = 1000; // 1 sat per input
    let server = TestServer::start_with(config).await.unwrap();
    let client = RawClient::new(&server.url);
    let new_keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    assert_ne!(
        old_keyset.id, new_keyset.id,
        "a fee change must rotate the keyset"
    );
    assert_eq!(new_keyset.input_fee_ppk, 1000);
    let (_, keysets) = client.get("/v1/keysets").await.unwrap();
    let old_info = keysets["keysets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old_keyset.id.to_string())
        .expect("old keyset still listed");
    assert_eq!(old_info["active"], false);

    // Old keyset: fee 0 on its inputs; new outputs must come from the new keyset.
    let premint = RawClient::outputs(&new_keyset, 10).unwrap();
    let (status, body) = client
        .post(
            "/v1/swap",
            &SwapRequest::new(old_proofs.clone(), premint.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "old ecash must redeem after rotation: {body}");

    // Outputs in the inactive keyset are refused.
    let more = client.topup(4).await.unwrap();
    assert!(more.iter().all(|p| p.keyset_id == new_keyset.id));
    let stale = RawClient::outputs(&old_keyset, 3).unwrap();
    let (status, body) = client
        .post(
            "/v1/swap",
            &SwapRequest::new(more.clone(), stale.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(12002)), "{body}");

    // New keyset: each input costs 1 sat, so outputs equal to inputs are unbalanced…
    let n = more.len() as u64;
    let full = RawClient::outputs(&new_keyset, 4).unwrap();
    let (status, body) = client
        .post(
            "/v1/swap",
            &SwapRequest::new(more.clone(), full.blinded_messages()),
        )
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11005)), "{body}");
    // …and inputs minus the fee balance.
    let net = RawClient::outputs(&new_keyset, 4 - n).unwrap();
    let (status, body) = client
        .post("/v1/swap", &SwapRequest::new(more, net.blinded_messages()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_respect_units_and_limits() {
    use coinslot_mint::cashu::nuts::MintQuoteBolt11Request;
    use coinslot_mint::UnitConfig;

    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.mint.units[0].max_mint = 1000;
    config.mint.units.push(UnitConfig {
        msat_per_unit: Some(10_000),
        ..UnitConfig::new("credit")
    });
    config.mint.units.push(UnitConfig::new("voucher"));
    let server = TestServer::start_with(config).await.unwrap();
    let client = RawClient::new(&server.url);
    let quote = |amount: u64, unit: &str| MintQuoteBolt11Request {
        amount: Amount::from(amount),
        unit: unit.parse().unwrap(),
        description: None,
        pubkey: None,
    };

    let (status, body) = client
        .post("/v1/mint/quote/bolt11", &quote(1001, "sat"))
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11006)), "{body}");
    let (status, body) = client
        .post("/v1/mint/quote/bolt11", &quote(5, "eur"))
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11013)), "{body}");
    // A custom unit without a Lightning rate cannot be bought over Lightning.
    let (status, body) = client
        .post("/v1/mint/quote/bolt11", &quote(5, "voucher"))
        .await
        .unwrap();
    assert_eq!((status, error_code(&body)), (400, Some(11013)), "{body}");

    // A custom unit with a rate: 7 credits = 70 sat = 70000 msat in the invoice.
    let (status, body) = client
        .post("/v1/mint/quote/bolt11", &quote(7, "credit"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unit"], "credit");
    let invoice: coinslot_mint::cashu::Bolt11Invoice =
        body["request"].as_str().unwrap().parse().unwrap();
    assert_eq!(invoice.amount_milli_satoshis(), Some(70_000));
    assert_eq!(body["state"], "PAID", "the fake backend pays at once");

    let (_, info) = client.get("/v1/info").await.unwrap();
    let units: Vec<&str> = info["nuts"]["4"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["unit"].as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        vec!["sat", "credit"],
        "only units with a rate are offered"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_quote_mints_once_under_16_concurrent_requests() {
    use coinslot_mint::cashu::nuts::{MintQuoteBolt11Request, MintRequest};

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let (status, quote) = client
        .post(
            "/v1/mint/quote/bolt11",
            &MintQuoteBolt11Request {
                amount: Amount::from(32),
                unit: CurrencyUnit::Sat,
                description: None,
                pubkey: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{quote}");
    let quote_id = quote["quote"].as_str().unwrap().to_string();

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        let request = MintRequest {
            quote: quote_id.clone(),
            outputs: RawClient::outputs(&keyset, 32).unwrap().blinded_messages(),
            signature: None,
        };
        tasks.push(tokio::spawn(async move {
            client.post("/v1/mint/bolt11", &request).await.unwrap()
        }));
    }
    let mut minted = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => minted += 1,
            _ => assert_eq!((status, error_code(&body)), (400, Some(20002)), "{body}"),
        }
    }
    assert_eq!(minted, 1, "a quote must be minted exactly once");
    let (_, quote) = client
        .get(&format!("/v1/mint/quote/bolt11/{quote_id}"))
        .await
        .unwrap();
    assert_eq!(quote["state"], "ISSUED");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_amounts_that_overflow_u64_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.mint.units[0].max_order = 64; // the keyset signs 2^63
    let server = TestServer::start_with(config).await.unwrap();
    let client = RawClient::new(&server.url);
    let keyset = client.active_keyset(&CurrencyUnit::Sat).await.unwrap();
    let proofs = client.topup(2).await.unwrap();
    let mut outputs = RawClient::outputs(&keyset, 2).unwrap().blinded_messages();
    outputs.extend(
        RawClient::outputs(&keyset, 1u64 << 63)
            .unwrap()
            .blinded_messages(),
    );
    outputs.extend(
        RawClient::outputs(&keyset, 1u64 << 63)
            .unwrap()
            .blinded_messages(),
    );
    let (status, body) = client
        .post("/v1/swap", &SwapRequest::new(proofs.clone(), outputs))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("overflow"),
        "{body}"
    );
    assert_eq!(
        state_of(&client, &proofs).await,
        vec![State::Unspent; proofs.len()]
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_an_open_websocket_releases_the_store() {
    use futures::SinkExt;

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await.unwrap();
    let ws_url = coinslot_tests::wallet::ws_url(&server.url);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let subscribe = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "subscribe",
        "params": {"kind": "proof_state", "subId": "p", "filters": []},
    });
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            subscribe.to_string().into(),
        ))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown hung on an open websocket")
        .unwrap();
    // The sled directory lock is free again: the same data dir opens at once.
    let server = TestServer::start(dir.path()).await.unwrap();
    server.stop().await.unwrap();
    drop(socket);
}
