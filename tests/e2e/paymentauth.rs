//! The "Payment" HTTP authentication scheme with the `cashu` charge method
//! (`coinslot_layer::paymentauth`) against `PaidApp` (an axum app behind the paywall on
//! `127.0.0.1:0`), paid with tokens from real cdk wallets over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cdk::nuts::SpendingConditions;
use cdk::wallet::{SendOptions, Wallet};
use coinslot_tests::paymentauth::{challenge, credential};
use coinslot_tests::paywall::{header, PaidApp, PaidAppOptions};
use coinslot_tests::wallet::{self, send, token, token_proofs};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn decode(text: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
}

async fn unspent(wallet: &Wallet, token: &str) -> bool {
    wallet::unspent(wallet, token).await.unwrap()
}

/// The problem type of a refusal, checking it is a 402 with a fresh challenge.
fn problem(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> String {
    assert_eq!(status, 402, "{body}");
    assert_eq!(header(headers, "content-type"), "application/problem+json");
    assert_eq!(header(headers, "cache-control"), "no-store");
    assert!(!challenge(headers)["id"].is_empty(), "a fresh challenge");
    assert!(
        header(headers, "payment-receipt").is_empty(),
        "no receipt on errors"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], 402);
    assert_eq!(
        body["challengeId"].as_str(),
        Some(challenge(headers)["id"].as_str()),
        "the problem names the fresh challenge"
    );
    body["type"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://paymentauth.org/problems/")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_402_offers_both_bindings_and_the_payment_one_pays_with_a_receipt() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 20).await?;

    let (status, headers, _) = app.get("/search?q=nut", &[]).await?;
    assert_eq!(status, 402);
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let creq = header(&headers, "x-cashu");
    assert!(creq.starts_with("creqA"), "{creq}");
    let params = challenge(&headers);
    assert_eq!(params["method"], "cashu");
    assert_eq!(params["intent"], "charge");
    assert_eq!(params["realm"], app.url.trim_start_matches("http://"));
    let request = decode(&params["request"]);
    assert_eq!(request["amount"], "2");
    assert_eq!(request["currency"], "sat");
    assert_eq!(request["methodDetails"]["request"], creq);
    assert_eq!(request["methodDetails"]["mints"], json!([app.url]));
    assert_eq!(decode(&params["opaque"])["route"], "GET /search");
    // The request is JCS: keys sorted, no spaces.
    let jcs = String::from_utf8(URL_SAFE_NO_PAD.decode(&params["request"])?)?;
    assert!(
        jcs.starts_with("{\"amount\":\"2\",\"currency\":\"sat\",\"methodDetails\":{\"mints\":["),
        "{jcs}"
    );

    let paying = token(&wallet, 2).await?;
    let (status, headers, body) = app
        .get(
            "/search?q=nut",
            &[("authorization", &credential(&params, &paying))],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(seen["paid"]["amount"], 2);
    assert!(
        header(&headers, "x-cashu").is_empty(),
        "no change in this binding"
    );
    assert_eq!(header(&headers, "cache-control"), "private");
    let receipt = decode(&header(&headers, "payment-receipt"));
    assert_eq!(receipt["method"], "cashu");
    assert_eq!(receipt["status"], "success");
    assert_eq!(receipt["challengeId"], params["id"]);
    assert_eq!(
        receipt["reference"],
        hex::encode(Sha256::digest(paying.as_bytes()))
    );
    assert!(
        !receipt.to_string().contains("cashuB"),
        "never the token itself"
    );
    assert!(!unspent(&wallet, &paying).await);
    assert_eq!(wallet::balance(&wallet).await?, 18);
    Ok(())
}

/// A service that keeps `Authorization` for its own log-in asks for the credential in
/// `Payment-Authorization`: the header is bound into the challenge, the handler sees its
/// own `Authorization` and never the credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_can_ask_for_payment_authorization_and_leave_authorization_to_the_app(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let options = PaidAppOptions {
        payment_authorization: true,
        ..PaidAppOptions::default()
    };
    let app = PaidApp::start(dir.path(), options).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let login = ("authorization", "Bearer app-session-7");

    let (status, headers, _) = app.get("/whoami", &[login]).await?;
    assert_eq!(status, 402);
    let params = challenge(&headers);
    assert_eq!(params["header"], "Payment-Authorization");

    // The header dropped from the echo: the id no longer binds.
    let mut stripped = params.clone();
    stripped.remove("header");
    let paying = token(&wallet, 2).await?;
    let (status, headers, body) = app
        .get(
            "/whoami",
            &[
                login,
                ("payment-authorization", &credential(&stripped, &paying)),
            ],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "invalid-challenge");
    assert!(unspent(&wallet, &paying).await);

    let (status, headers, body) = app
        .get(
            "/whoami",
            &[
                login,
                ("payment-authorization", &credential(&params, &paying)),
            ],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert!(!header(&headers, "payment-receipt").is_empty());
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(seen["authorization"], json!(["Bearer app-session-7"]));
    assert_eq!(seen["payment-authorization"], json!([]));
    assert!(!unspent(&wallet, &paying).await);

    // A credential in both headers at once is refused as malformed; nothing is spent.
    let (_, headers, _) = app.get("/whoami", &[login]).await?;
    let params = challenge(&headers);
    let twice = token(&wallet, 2).await?;
    let value = credential(&params, &twice);
    let (status, headers, body) = app
        .get(
            "/whoami",
            &[("authorization", &value), ("payment-authorization", &value)],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "malformed-credential");
    assert!(unspent(&wallet, &twice).await);
    // In `Authorization` alone it pays too: servers take either header.
    let (status, _, body) = app.get("/whoami", &[("authorization", &value)]).await?;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(
        seen["authorization"],
        json!([]),
        "the credential reached the handler"
    );
    assert_eq!(wallet::balance(&wallet).await?, 16);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_misrouted_and_wrong_amount_credentials_leave_the_token_untouched(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(
        dir.path(),
        PaidAppOptions {
            payment_challenge_ttl: Some(Duration::from_secs(2)),
            ..PaidAppOptions::default()
        },
    )
    .await?;
    let wallet = wallet::funded(&app.url, 40).await?;
    let (_, headers, _) = app.get("/search?q=x", &[]).await?;
    let params = challenge(&headers);
    let paying = token(&wallet, 2).await?;

    // Each echoed field changed in turn: invalid-challenge (a method other than cashu:
    // method-unsupported, a 400).
    let other_request = {
        let mut request = decode(&params["request"]);
        request["amount"] = json!("1");
        URL_SAFE_NO_PAD.encode(request.to_string())
    };
    let other_route = URL_SAFE_NO_PAD.encode(json!({ "route": "GET /free" }).to_string());
    for (field, value) in [
        ("id", "AAAA".to_string()),
        ("realm", "evil.example".to_string()),
        ("intent", "session".to_string()),
        ("request", other_request),
        ("expires", "2099-01-01T00:00:00Z".to_string()),
        ("opaque", other_route),
    ] {
        let mut tampered = params.clone();
        tampered.insert(field.to_string(), value);
        let (status, headers, body) = app
            .get(
                "/search?q=x",
                &[("authorization", &credential(&tampered, &paying))],
            )
            .await?;
        assert_eq!(
            problem(status, &headers, &body),
            "invalid-challenge",
            "{field}: {body}"
        );
    }
    let mut tampered = params.clone();
    tampered.insert("method".into(), "lightning".into());
    let (status, _, body) = app
        .get(
            "/search?q=x",
            &[("authorization", &credential(&tampered, &paying))],
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("method-unsupported"), "{body}");

    // A challenge of /search presented on /slow (same price): refused.
    let (status, headers, body) = app
        .get("/slow", &[("authorization", &credential(&params, &paying))])
        .await?;
    assert_eq!(problem(status, &headers, &body), "invalid-challenge");
    assert!(body.contains("GET /search"), "{body}");

    // Too much or too little: payment-insufficient, no change made.
    for amount in [1, 3] {
        let wrong = token(&wallet, amount).await?;
        let (status, headers, body) = app
            .get(
                "/search?q=x",
                &[("authorization", &credential(&params, &wrong))],
            )
            .await?;
        assert_eq!(
            problem(status, &headers, &body),
            "payment-insufficient",
            "{amount}"
        );
        assert!(unspent(&wallet, &wrong).await);
    }

    // A P2PK-locked proof, even to the mint itself: verification-failed.
    let locked = send(
        &wallet,
        2,
        SendOptions {
            conditions: Some(SpendingConditions::new_p2pk(app.mint.pubkey(), None)),
            ..SendOptions::default()
        },
    )
    .await?
    .to_string();
    let (status, headers, body) = app
        .get(
            "/search?q=x",
            &[("authorization", &credential(&params, &locked))],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");
    assert!(body.contains("locked"), "{body}");

    // A DLEQ proof that does not hold: verification-failed (cdk's tokens carry DLEQ proofs).
    let honest = token(&wallet, 2).await?;
    let parsed: cdk::nuts::Token = honest.parse()?;
    let mut proofs = token_proofs(&wallet, &parsed).await?;
    assert!(
        proofs.iter().all(|p| p.dleq.is_some()),
        "the wallet sends DLEQ proofs"
    );
    for proof in &mut proofs {
        let dleq = proof.dleq.as_mut().unwrap();
        std::mem::swap(&mut dleq.e, &mut dleq.s);
    }
    let forged = cdk::nuts::Token::new(
        parsed.mint_url()?,
        proofs,
        None,
        cdk::nuts::CurrencyUnit::Sat,
    )
    .to_string();
    let (status, headers, body) = app
        .get(
            "/search?q=x",
            &[("authorization", &credential(&params, &forged))],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");
    assert!(body.contains("DLEQ"), "{body}");
    assert!(unspent(&wallet, &honest).await);

    // Garbage and a cashuA token: malformed-credential.
    let (status, headers, body) = app
        .get("/search?q=x", &[("authorization", "Payment !!!")])
        .await?;
    assert_eq!(problem(status, &headers, &body), "malformed-credential");
    let v3 = paying.parse::<cdk::nuts::Token>()?;
    let v3 = cdk::nuts::nut00::TokenV3::new(
        v3.mint_url()?,
        token_proofs(&wallet, &v3).await?,
        None,
        Some(cdk::nuts::CurrencyUnit::Sat),
    )?
    .to_string();
    let (status, headers, body) = app
        .get(
            "/search?q=x",
            &[("authorization", &credential(&params, &v3))],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "malformed-credential");

    // Expired: the same credential, once the challenge ran out.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, headers, body) = app
        .get(
            "/search?q=x",
            &[("authorization", &credential(&params, &paying))],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "payment-expired");
    assert!(
        unspent(&wallet, &paying).await,
        "every refusal left the token spendable"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_402_has_its_own_challenge_and_a_challenge_pays_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = std::sync::Arc::new(PaidApp::start(dir.path(), PaidAppOptions::default()).await?);
    let wallet = wallet::funded(&app.url, 40).await?;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..8 {
        let (_, headers, _) = app.get("/search?q=same", &[]).await?;
        assert!(
            ids.insert(challenge(&headers)["id"].clone()),
            "two 402s shared an id"
        );
    }

    // Paid once; another token for the same challenge is refused and stays the wallet's.
    let (_, headers, _) = app.get("/search?q=once", &[]).await?;
    let params = challenge(&headers);
    let first = token(&wallet, 2).await?;
    let (status, _, body) = app
        .get(
            "/search?q=once",
            &[("authorization", &credential(&params, &first))],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let second = token(&wallet, 2).await?;
    let (status, headers, body) = app
        .get(
            "/search?q=once",
            &[("authorization", &credential(&params, &second))],
        )
        .await?;
    assert_eq!(
        problem(status, &headers, &body),
        "invalid-challenge",
        "{body}"
    );
    assert!(body.contains("paid already"), "{body}");
    assert!(unspent(&wallet, &second).await);

    // Eight tokens for one fresh challenge at once: one pays, seven are refused untouched.
    let (_, headers, _) = app.get("/search?q=race", &[]).await?;
    let params = challenge(&headers);
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(token(&wallet, 2).await?);
    }
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let (app, authorization) = (app.clone(), credential(&params, t));
            tokio::spawn(async move {
                app.get("/search?q=race", &[("authorization", &authorization)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut paid = 0;
    for task in tasks {
        let (status, headers, body) = task.await?;
        match status {
            200 => paid += 1,
            _ => assert_eq!(
                problem(status, &headers, &body),
                "invalid-challenge",
                "{body}"
            ),
        }
    }
    assert_eq!(paid, 1, "one challenge paid {paid} times");
    let mut untouched = 0;
    for t in &tokens {
        untouched += usize::from(unspent(&wallet, t).await);
    }
    assert_eq!(untouched, 7);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_pays_once_even_sent_64_times_at_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = std::sync::Arc::new(PaidApp::start(dir.path(), PaidAppOptions::default()).await?);
    let wallet = wallet::funded(&app.url, 20).await?;
    let (_, headers, _) = app.get("/search?q=x", &[]).await?;
    let authorization = credential(&challenge(&headers), &token(&wallet, 2).await?);

    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (app, authorization) = (app.clone(), authorization.clone());
            tokio::spawn(async move {
                app.get("/search?q=x", &[("authorization", &authorization)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, headers, body) = task.await?;
        match status {
            200 => ok += 1,
            _ => assert_eq!(
                problem(status, &headers, &body),
                "verification-failed",
                "{body}"
            ),
        }
    }
    assert_eq!(ok, 1, "exactly one of 64 concurrent uses is served");
    // And once more afterwards: spent.
    let (status, headers, body) = app
        .get("/search?q=x", &[("authorization", &authorization)])
        .await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");
    assert!(body.contains("pays once"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_retry_gets_the_original_response_without_a_second_charge_or_run(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let (_, headers, _) = app.post("/echo", &[], "job 1").await?;
    let params = challenge(&headers);
    let paying = token(&wallet, 2).await?;
    let authorization = credential(&params, &paying);
    let with_key = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", "op-1"),
    ];

    let (status, first_headers, first_body) = app.post("/echo", &with_key, "job 1").await?;
    assert_eq!(status, 200, "{first_body}");
    let first: Value = serde_json::from_str(&first_body)?;
    assert_eq!(
        (first["body"].as_str(), first["runs"].as_u64()),
        (Some("job 1"), Some(1))
    );
    // The answer was lost: the same credential, key and body again → the same response,
    // and the handler did not run again.
    let (status, headers, body) = app.post("/echo", &with_key, "job 1").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, first_body, "the original response, not a second run");
    assert_eq!(
        header(&headers, "payment-receipt"),
        header(&first_headers, "payment-receipt")
    );
    let (_, _, other) = app.post("/echo", &with_key, "job 1").await?;
    assert_eq!(
        other, first_body,
        "as often as the client asks within the window"
    );
    assert_eq!(wallet::balance(&wallet).await?, 8, "paid once");
    // Another key, or none: the credential has paid.
    let other_key = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", "op-2"),
    ];
    let (status, headers, body) = app.post("/echo", &other_key, "job 1").await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");
    let (status, headers, body) = app
        .post(
            "/echo",
            &[("authorization", authorization.as_str())],
            "job 1",
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");

    // The answer is kept in the mint's store: after a restart the retry still gets it,
    // and nothing runs again (the new process's handler has not run: a run would say 1).
    let (_, headers, _) = app.post("/echo", &[], "job 2").await?;
    let params = challenge(&headers);
    let paying = token(&wallet, 2).await?;
    let authorization = credential(&params, &paying);
    let with_key = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", "op-3"),
    ];
    let (status, first_headers, first_body) = app.post("/echo", &with_key, "job 2").await?;
    assert_eq!(status, 200, "{first_body}");
    let first: Value = serde_json::from_str(&first_body)?;
    assert_eq!(first["runs"], 2, "{first_body}");
    let addr = app.addr;
    app.stop().await?;
    let again = PaidAppOptions {
        listen: Some(addr),
        ..PaidAppOptions::default()
    };
    let app = PaidApp::start(dir.path(), again).await?;
    let (status, headers, body) = app.post("/echo", &with_key, "job 2").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body, first_body,
        "the stored answer, not a run of the new process"
    );
    assert_eq!(
        header(&headers, "payment-receipt"),
        header(&first_headers, "payment-receipt")
    );
    assert_eq!(wallet::balance(&wallet).await?, 6, "two payments in all");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_for_a_request_body_pays_only_for_that_body() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    // No body, no digest.
    let (_, headers, _) = app.get("/search?q=x", &[]).await?;
    assert!(!challenge(&headers).contains_key("digest"));

    let body = "{\"prompt\": \"summarise this\"}";
    let (status, headers, _) = app.post("/echo", &[], body).await?;
    assert_eq!(status, 402);
    let params = challenge(&headers);
    let expected = format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
    );
    assert_eq!(params["digest"], expected, "RFC 9530 digest of the body");

    let paying = token(&wallet, 2).await?;
    let authorization = credential(&params, &paying);
    let paid = [("authorization", authorization.as_str())];
    // Another body: the challenge does not pay for it, and the token stays the client's.
    let (status, headers, text) = app.post("/echo", &paid, "{\"prompt\": \"other\"}").await?;
    assert_eq!(problem(status, &headers, &text), "invalid-challenge");
    assert!(text.contains("body"), "{text}");
    assert!(
        challenge(&headers).contains_key("digest"),
        "the fresh challenge is bound to the body sent"
    );
    // No body at all: refused too.
    let (status, headers, text) = app.post("/echo", &paid, "").await?;
    assert_eq!(problem(status, &headers, &text), "invalid-challenge");
    assert!(unspent(&wallet, &paying).await);

    // Dropping the digest from the echoed challenge breaks its id.
    let mut stripped = params.clone();
    stripped.remove("digest");
    let other_body = [("authorization", credential(&stripped, &paying))];
    let other_body: Vec<(&str, &str)> = other_body.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, headers, text) = app.post("/echo", &other_body, "{}").await?;
    assert_eq!(problem(status, &headers, &text), "invalid-challenge");
    assert!(unspent(&wallet, &paying).await);

    // The body it was issued for: paid, and the handler gets that body.
    let (status, _, text) = app.post("/echo", &paid, body).await?;
    assert_eq!(status, 200, "{text}");
    let seen: Value = serde_json::from_str(&text)?;
    assert_eq!(seen["body"], body);
    assert!(!unspent(&wallet, &paying).await);

    // A body over the limit (1 MiB) is not read: its challenge carries no digest.
    let big = vec![b'x'; (1 << 20) + 1];
    let (status, headers, _) = app.post("/echo", &[], big).await?;
    assert_eq!(status, 402);
    assert!(!challenge(&headers).contains_key("digest"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_a_503_mint_unavailable_and_the_same_credential_pays_later() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let (_, headers, _) = app.get("/search?q=x", &[]).await?;
    let paying = token(&wallet, 2).await?;
    let authorization = credential(&challenge(&headers), &paying);
    let paid = [("authorization", authorization.as_str())];

    app.store.fail(true);
    let (status, headers, body) = app.get("/search?q=x", &paid).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "content-type"), "application/problem+json");
    assert_eq!(header(&headers, "retry-after"), "1");
    assert!(!challenge(&headers)["id"].is_empty(), "a fresh challenge");
    assert!(header(&headers, "payment-receipt").is_empty());
    let problem: Value = serde_json::from_str(&body)?;
    assert_eq!(
        problem["type"],
        "https://paymentauth.org/problems/internal-payment-error"
    );
    assert_eq!(problem["status"], 503);
    assert!(
        unspent(&wallet, &paying).await,
        "the token was not consumed"
    );

    app.store.fail(false);
    let (status, headers, body) = app.get("/search?q=x", &paid).await?;
    assert_eq!(
        status, 200,
        "the same credential pays once the store is back: {body}"
    );
    assert!(!header(&headers, "payment-receipt").is_empty());
    assert!(!unspent(&wallet, &paying).await);
    assert_eq!(wallet::balance(&wallet).await?, 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_pass_route_a_credential_buys_one_minute_and_pays_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let (status, headers, _) = app.get("/vpn/status", &[]).await?;
    assert_eq!(status, 402);
    assert!(header(&headers, "x-cashu").starts_with("creqA"));
    let params = challenge(&headers);
    let request = decode(&params["request"]);
    assert_eq!(
        (request["amount"].as_str(), request["currency"].as_str()),
        (Some("2"), Some("sat")),
        "one minute of scope vpn"
    );
    assert_eq!(decode(&params["opaque"])["route"], "GET /vpn/status");

    // More than one minute's price: exact amounts only, the token stays the client's.
    let over = token(&wallet, 4).await?;
    let (status, headers, body) = app
        .get(
            "/vpn/status",
            &[("authorization", &credential(&params, &over))],
        )
        .await?;
    assert_eq!(problem(status, &headers, &body), "payment-insufficient");
    assert!(unspent(&wallet, &over).await);

    let paying = token(&wallet, 2).await?;
    let authorization = credential(&params, &paying);
    let (status, headers, body) = app
        .get("/vpn/status", &[("authorization", authorization.as_str())])
        .await?;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(seen["scope"], "vpn");
    let receipt = decode(&header(&headers, "payment-receipt"));
    assert_eq!(
        receipt["reference"],
        hex::encode(Sha256::digest(paying.as_bytes()))
    );
    let pass = header(&headers, "x-cashu-pass");
    assert!(!pass.is_empty(), "the minute's pass comes back");
    let remaining: u64 = header(&headers, "x-cashu-pass-remaining").parse()?;
    assert!((55..=60).contains(&remaining), "{remaining}");
    // The pass opens the scope's other routes for the rest of the minute.
    let (status, _, body) = app.get("/vpn/other", &[("x-cashu-pass", &pass)]).await?;
    assert_eq!(status, 200, "{body}");
    // The credential has paid: a repeat is refused.
    let (status, headers, body) = app
        .get("/vpn/status", &[("authorization", authorization.as_str())])
        .await?;
    assert_eq!(problem(status, &headers, &body), "verification-failed");
    // 20 − 2 paid − 4 in the refused (still spendable) token.
    assert_eq!(wallet::balance(&wallet).await?, 14);
    assert!(unspent(&wallet, &over).await);
    Ok(())
}
