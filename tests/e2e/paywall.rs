//! End-to-end tests of the paywall layer: an axum app behind `PaywallLayer` on
//! `127.0.0.1:0` (`coinslot_tests::paywall::PaidApp`, sled store in a temp dir), real cdk
//! wallets topping up at its mint and paying over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use cdk::nuts::nut18::PaymentRequest;
use cdk::nuts::{CurrencyUnit, SecretKey, SpendingConditions, Token};
use cdk::wallet::{SendOptions, Wallet};
use coinslot::session::SessionKeys;
use coinslot_tests::paywall::{code, header, json, paid_app as app, PaidApp, PaidAppOptions};
use coinslot_tests::raw::RawClient;
use coinslot_tests::wallet::{self, balance, redeem_elsewhere, send, token, token_proofs};
use serde_json::Value;

async fn funded(app: &PaidApp, amount: u64) -> Result<Wallet> {
    wallet::funded(&app.url, amount).await
}

#[tokio::test(flavor = "multi_thread")]
async fn unpaid_requests_get_a_402_a_wallet_can_parse_then_pay() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let (status, _, body) = app.get("/free", &[]).await?;
    assert_eq!((status, body.as_str()), (200, "free"));
    // A CORS preflight of a paid route is never asked to pay.
    let (status, _, _) = app.send(reqwest::Method::OPTIONS, "/slow", &[]).await?;
    assert_ne!(status, 402);

    let (status, headers, body) = app.get("/search?q=nut", &[]).await?;
    assert_eq!(status, 402, "{body}");
    let creq = header(&headers, "x-cashu");
    assert!(creq.starts_with("creqA"), "{creq}");
    let request = PaymentRequest::from_str(&creq)?;
    assert_eq!(request.amount.map(u64::from), Some(2));
    assert_eq!(request.unit, Some(CurrencyUnit::Sat));
    assert_eq!(request.mints.len(), 1);
    assert_eq!(
        request.mints[0].to_string().trim_end_matches('/'),
        app.url.trim_end_matches('/')
    );
    assert!(header(&headers, "access-control-expose-headers").contains("x-cashu"));
    let body = json(&body);
    assert_eq!(body["amount"], 2);
    assert_eq!(body["unit"], "sat");
    assert_eq!(
        body["mint"].as_str().map(|m| m.trim_end_matches('/')),
        Some(app.url.as_str())
    );

    // NUT-26 on request.
    let (_, headers, _) = app
        .get("/search?q=nut", &[("x-cashu-accept", "creqB")])
        .await?;
    let creqb = header(&headers, "x-cashu");
    let request = PaymentRequest::from_bech32_string(&creqb)?;
    assert_eq!(request.amount.map(u64::from), Some(2));

    // Pay exactly: 200, the handler saw the payment, no change comes back.
    let wallet = funded(&app, 10).await?;
    let exact = token(&wallet, 2).await?;
    let (status, headers, body) = app.get("/search?q=nut", &[("x-cashu", &exact)]).await?;
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["paid"]["amount"], 2);
    assert_eq!(body["paid"]["unit"], "sat");
    assert!(body["paid"]["keyset"].is_string());
    assert_eq!(header(&headers, "x-cashu"), "");
    assert_eq!(balance(&wallet).await?, 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_headers_pay_too() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 10).await?;
    let a = token(&wallet, 2).await?;
    let (status, _, body) = app
        .get("/search?q=a", &[("authorization", &format!("Cashu {a}"))])
        .await?;
    assert_eq!(status, 200, "{body}");
    let b = token(&wallet, 2).await?;
    let (status, _, body) = app
        .get("/search?q=b", &[("authorization", &format!("Bearer {b}"))])
        .await?;
    assert_eq!(status, 200, "{body}");
    // The older cashuA encoding pays as well.
    let v3 = send(&wallet, 2, SendOptions::default())
        .await?
        .to_v3_string();
    assert!(v3.starts_with("cashuA"));
    let (status, _, body) = app.get("/search?q=v3", &[("x-cashu", &v3)]).await?;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = app
        .get("/search?q=c", &[("x-cashu", "creqAnot-a-token")])
        .await?;
    assert_eq!(status, 400);
    assert!(json(&body)["detail"].as_str().unwrap().contains("X-Cashu"));
    let (status, _, body) = app
        .get("/search?q=c", &[("x-cashu", "cashuBgarbage")])
        .await?;
    assert_eq!(status, 400);
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("malformed token"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn overpayment_comes_back_as_change_a_wallet_can_receive() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 16).await?;
    let ten = token(&wallet, 10).await?;
    let (status, headers, body) = app.get("/search?q=x", &[("x-cashu", &ten)]).await?;
    assert_eq!(status, 200, "{body}");
    let change = header(&headers, "x-cashu");
    assert!(change.starts_with("cashuB"), "{change}");
    let parsed = Token::from_str(&change)?;
    assert_eq!(parsed.unit(), Some(CurrencyUnit::Sat));
    assert_eq!(redeem_elsewhere(&app.url, &change).await?, 8);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn underpaid_wrong_unit_and_foreign_tokens_are_refused_and_stay_spendable() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 10).await?;

    let one = token(&wallet, 1).await?;
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &one)]).await?;
    assert_eq!((status, code(&body)), (400, 11005), "{body}");
    assert_eq!(
        redeem_elsewhere(&app.url, &one).await?,
        1,
        "underpaid token was eaten"
    );

    // A token in the mint's other unit.
    let raw = RawClient::new(&app.url);
    let credit = CurrencyUnit::custom("credit");
    let keyset = raw.active_keyset(&credit).await?;
    let proofs = raw.topup_with(&keyset, 5).await?;
    let credits = Token::new(app.url.parse()?, proofs, None, credit).to_string();
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &credits)]).await?;
    assert_eq!((status, code(&body)), (400, 11010), "{body}");
    // Still spendable: it pays a route priced in credit, with change.
    let (status, headers, body) = app.get("/credit", &[("x-cashu", &credits)]).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["unit"], "credit");
    assert!(header(&headers, "x-cashu").starts_with("cashuB"));

    // A token of another mint.
    let (other, _other_dir) = self::app(PaidAppOptions::default()).await?;
    let foreign_wallet = funded(&other, 4).await?;
    let foreign = token(&foreign_wallet, 4).await?;
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &foreign)]).await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        json(&body)["detail"].as_str().unwrap().contains("mint"),
        "{body}"
    );
    assert_eq!(redeem_elsewhere(&other.url, &foreign).await?, 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_token_is_refused_with_11001() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 4).await?;
    let t = token(&wallet, 2).await?;
    assert_eq!(redeem_elsewhere(&app.url, &t).await?, 2);
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &t)]).await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_in_64_concurrent_different_requests_pays_once() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 4).await?;
    let t = token(&wallet, 2).await?;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            app.get(&format!("/search?q={i}"), &[("x-cashu", &t)]).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let (status, _, body) = task.await??;
        match status {
            200 => ok += 1,
            400 => assert!([11001, 11002].contains(&code(&body)), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 1, "exactly one request may be paid by one token");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_in_64_concurrent_identical_requests_runs_once() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 4).await?;
    let t = token(&wallet, 2).await?;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            app.get("/gate", &[("x-cashu", &t)]).await
        }));
    }
    // The winner waits at the gate; every duplicate must be answered meanwhile.
    let mut pending = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tasks.iter().filter(|t| t.is_finished()).count() < 63 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "duplicates were not answered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.open_gate(64);
    let mut ok = 0;
    for task in tasks {
        let (status, _, body) = task.await??;
        match status {
            200 => ok += 1,
            400 => {
                assert_eq!(code(&body), 11002, "{body}");
                pending += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, pending), (1, 63));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_failures_refund_the_payment() -> Result<()> {
    let options = PaidAppOptions {
        timeout: Some(Duration::from_millis(100)),
        ..PaidAppOptions::default()
    };
    let (app, _dir) = app(options).await?;
    let wallet = funded(&app, 32).await?;
    for (path, expected) in [("/fail", 500), ("/panic", 500), ("/slow", 504)] {
        let t = token(&wallet, 5).await?;
        let (status, headers, body) = app.get(path, &[("x-cashu", &t)]).await?;
        assert_eq!(status, expected, "{path}: {body}");
        let refund = header(&headers, "x-cashu");
        assert!(refund.starts_with("cashuB"), "{path}: no refund");
        assert_eq!(
            redeem_elsewhere(&app.url, &refund).await?,
            5,
            "{path}: the whole payment must come back"
        );
        // Repeating the failed request shows the refund again instead of charging.
        let (status, headers, body) = app.get(path, &[("x-cashu", &t)]).await?;
        assert_eq!((status, code(&body)), (400, 11001), "{path}: {body}");
        assert_eq!(header(&headers, "x-cashu"), refund);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn metered_requests_return_the_unused_reservation() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 64).await?;
    // Reserve 10 with exactly 10: cost 3 → 7 back.
    let t = token(&wallet, 10).await?;
    let (status, headers, body) = app.get("/metered?cost=3", &[("x-cashu", &t)]).await?;
    assert_eq!((status, body.as_str()), (200, "cost 3"));
    assert_eq!(
        redeem_elsewhere(&app.url, &header(&headers, "x-cashu")).await?,
        7
    );
    // Overpay too: change and the unused part come back in one token.
    let t = token(&wallet, 15).await?;
    let (_, headers, _) = app.get("/metered?cost=4", &[("x-cashu", &t)]).await?;
    assert_eq!(
        redeem_elsewhere(&app.url, &header(&headers, "x-cashu")).await?,
        11
    );
    // A report above the reservation is capped at it.
    let t = token(&wallet, 10).await?;
    let (status, headers, _) = app.get("/metered?cost=50", &[("x-cashu", &t)]).await?;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cashu"), "");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_gets_the_stored_answer_not_a_second_charge() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 8).await?;
    let t = token(&wallet, 5).await?;
    let (status, headers, first) = app.get("/search?q=lost", &[("x-cashu", &t)]).await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(json(&first)["paid"]["replay"], false);
    let change = header(&headers, "x-cashu");

    // The answer was "lost": the same request with the same token gets that answer again,
    // change included, as often as it asks within the window.
    for _ in 0..3 {
        let (status, headers, body) = app.get("/search?q=lost", &[("x-cashu", &t)]).await?;
        assert_eq!((status, body.as_str()), (200, first.as_str()));
        assert_eq!(header(&headers, "x-cashu"), change, "the same change");
    }
    assert_eq!(redeem_elsewhere(&app.url, &change).await?, 3);

    // A different request cannot use it.
    let (status, _, body) = app.get("/search?q=other", &[("x-cashu", &t)]).await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn p2pk_locks_can_be_required() -> Result<()> {
    let options = PaidAppOptions {
        require_lock: true,
        ..PaidAppOptions::default()
    };
    let (app, _dir) = app(options).await?;
    let (status, headers, _) = app.get("/search?q=x", &[]).await?;
    assert_eq!(status, 402);
    let request = PaymentRequest::from_str(&header(&headers, "x-cashu"))?;
    let lock = request.nut10.expect("the request names the lock");
    assert_eq!(lock.data, app.mint.pubkey().to_hex());

    let wallet = funded(&app, 10).await?;
    let open = token(&wallet, 2).await?;
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &open)]).await?;
    assert_eq!((status, code(&body)), (400, 20008), "{body}");
    assert_eq!(redeem_elsewhere(&app.url, &open).await?, 2);

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
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &locked)]).await?;
    assert_eq!(status, 200, "{body}");

    // A lock to the odd form of the same x-only key (what a mint from before the identity
    // was made even may have advertised) is a lock to this mint too.
    let mut odd = app.mint.pubkey().to_bytes();
    assert_eq!(odd[0], 2);
    odd[0] = 3;
    let odd = cdk::nuts::PublicKey::from_slice(&odd)?;
    let locked = send(
        &wallet,
        2,
        SendOptions {
            conditions: Some(SpendingConditions::new_p2pk(odd, None)),
            ..SendOptions::default()
        },
    )
    .await?
    .to_string();
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &locked)]).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_locked_to_someone_else_need_their_signature() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 10).await?;
    let key = SecretKey::generate();
    let locked = send(
        &wallet,
        2,
        SendOptions {
            conditions: Some(SpendingConditions::new_p2pk(key.public_key(), None)),
            ..SendOptions::default()
        },
    )
    .await?;
    let (status, _, body) = app
        .get("/search?q=x", &[("x-cashu", &locked.to_string())])
        .await?;
    assert_eq!((status, code(&body)), (400, 20008), "{body}");

    let mut proofs = token_proofs(&wallet, &locked).await?;
    for proof in &mut proofs {
        proof.sign_p2pk(key.clone())?;
    }
    let signed = Token::new(app.url.parse()?, proofs, None, CurrencyUnit::Sat).to_string();
    let (status, _, body) = app.get("/search?q=x", &[("x-cashu", &signed)]).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_meter_settles_a_stream_when_it_ends() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 64).await?;

    // A session: the head says the balance with the reservation held, the end settles.
    let (credential, _) = open_session(&app, &wallet, 20).await?;
    let auth = [("x-cashu-session", credential.as_str())];
    let (status, headers, body) = app.get("/metered-stream?cost=4", &auth).await?;
    assert_eq!(
        (status, body.as_str()),
        (200, "chunk 0\nchunk 1\nchunk 2\n")
    );
    assert_eq!(header(&headers, "x-cashu-balance"), "10 sat");
    let (_, _, body) = app.get("/cashu/session", &auth).await?;
    assert_eq!(
        json(&body)["balance"],
        16,
        "settled before the end reached the client"
    );

    // No charge by the end: the whole reservation is billed.
    app.get("/metered-stream", &auth).await?;
    let (_, _, body) = app.get("/cashu/session", &auth).await?;
    assert_eq!(json(&body)["balance"], 6);

    // A one-shot token: change at once, the unused part on the token's key balance.
    let t = token(&wallet, 12).await?;
    let (status, headers, _) = app
        .get("/metered-stream?cost=3", &[("x-cashu", &t)])
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        redeem_elsewhere(&app.url, &header(&headers, "x-cashu")).await?,
        2
    );
    let bearer = format!("Bearer {t}");
    let (status, _, body) = app
        .get("/cashu/balance", &[("authorization", &bearer)])
        .await?;
    assert_eq!(
        (status, json(&body)["balance"].as_u64()),
        (200, Some(7)),
        "{body}"
    );
    let (status, _, body) = app
        .send(
            reqwest::Method::DELETE,
            "/cashu/balance",
            &[("authorization", &bearer)],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let rest = json(&body)["token"].as_str().unwrap().to_string();
    assert_eq!(redeem_elsewhere(&app.url, &rest).await?, 7);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_is_a_key_with_a_balance() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 64).await?;
    let key = token(&wallet, 7).await?;
    let bearer = format!("Bearer {key}");
    let auth = [("authorization", bearer.as_str())];
    // Every request with the key is paid from its balance.
    for left in [5, 3, 1] {
        let (status, headers, body) = app.get("/search?q=k", &auth).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "x-cashu-balance"), format!("{left} sat"));
    }
    let (status, headers, body) = app.get("/search?q=k", &auth).await?;
    assert_eq!(status, 402, "{body}");
    assert_eq!(header(&headers, "x-cashu-balance"), "1 sat");
    assert!(json(&body)["detail"]
        .as_str()
        .unwrap()
        .contains("key balance is 1"));
    // Failures give the price back; the balance pays out once.
    let (status, headers, _) = app.get("/cashu/balance", &auth).await?;
    assert_eq!(
        (status, header(&headers, "x-cashu-balance").as_str()),
        (200, "1 sat")
    );
    let (status, _, body) = app
        .send(reqwest::Method::DELETE, "/cashu/balance", &auth)
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["amount"], 1);
    let (status, _, body) = app
        .send(reqwest::Method::DELETE, "/cashu/balance", &auth)
        .await?;
    assert_eq!(
        (status, json(&body)["amount"].as_u64()),
        (200, Some(1)),
        "a retried payout answers the same"
    );
    let (status, _, _) = app.get("/search?q=k", &auth).await?;
    assert_eq!(status, 401);
    // Without a key: told how to send one.
    let (status, _, body) = app.get("/cashu/balance", &[]).await?;
    assert_eq!(status, 401);
    assert!(body.contains("Authorization: Bearer"), "{body}");
    // A key that is not a token of this mint is refused as one.
    let (status, _, body) = app
        .get("/search?q=k", &[("authorization", "Bearer cashuBgarbage")])
        .await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

async fn open_session(app: &PaidApp, wallet: &Wallet, amount: u64) -> Result<(String, Value)> {
    let deposit = token(wallet, amount).await?;
    let (status, headers, body) = app
        .send(
            reqwest::Method::POST,
            "/cashu/session",
            &[("x-cashu", &deposit)],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    let credential = header(&headers, "x-cashu-session");
    assert_eq!(body["session"].as_str(), Some(credential.as_str()));
    Ok((credential, body))
}

#[tokio::test(flavor = "multi_thread")]
async fn prepaid_sessions_open_pay_top_up_and_close() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 64).await?;
    let (credential, opened) = open_session(&app, &wallet, 20).await?;
    assert_eq!(
        (opened["balance"].as_u64(), opened["unit"].as_str()),
        (Some(20), Some("sat"))
    );
    let auth = [("x-cashu-session", credential.as_str())];

    let (status, headers, body) = app.get("/search?q=s", &auth).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-cashu-balance"), "18 sat");
    assert!(json(&body)["paid"]["session"].is_string());

    let top = token(&wallet, 5).await?;
    let (status, headers, body) = app
        .send(
            reqwest::Method::POST,
            "/cashu/session/topup",
            &[("x-cashu-session", &credential), ("x-cashu", &top)],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["balance"], 23);
    assert!(!header(&headers, "x-cashu-session").is_empty());

    // A failed request gives the price back to the session; metered charges what it used.
    let (status, headers, _) = app.get("/fail", &auth).await?;
    assert_eq!(status, 500);
    assert_eq!(header(&headers, "x-cashu-balance"), "23 sat");
    let (status, headers, _) = app.get("/metered?cost=3", &auth).await?;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-cashu-balance"), "20 sat");

    let (status, _, body) = app.get("/cashu/session", &auth).await?;
    assert_eq!((status, json(&body)["balance"].as_u64()), (200, Some(20)));

    // Too little left: a 402 that says so, with the balance.
    let (_, small) = open_session(&app, &wallet, 1).await?;
    let small_auth = [("x-cashu-session", small["session"].as_str().unwrap())];
    let (status, headers, body) = app.get("/search?q=s", &small_auth).await?;
    assert_eq!(status, 402, "{body}");
    assert_eq!(header(&headers, "x-cashu-balance"), "1 sat");

    let (status, headers, body) = app
        .send(reqwest::Method::DELETE, "/cashu/session", &auth)
        .await?;
    assert_eq!(status, 200, "{body}");
    let payout = header(&headers, "x-cashu");
    assert_eq!(json(&body)["amount"], 20);
    // A retried close answers with the same payout, once.
    let (status, headers, _) = app
        .send(reqwest::Method::DELETE, "/cashu/session", &auth)
        .await?;
    assert_eq!((status, header(&headers, "x-cashu")), (200, payout.clone()));
    assert_eq!(redeem_elsewhere(&app.url, &payout).await?, 20);

    let (status, _, body) = app.get("/search?q=s", &auth).await?;
    assert_eq!(status, 401, "a closed session must not pay: {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_or_expired_credentials_get_401() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 16).await?;
    let (credential, _) = open_session(&app, &wallet, 10).await?;

    let mut tampered = credential.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    let (status, _, body) = app
        .get("/search?q=x", &[("x-cashu-session", &tampered)])
        .await?;
    assert_eq!(status, 401, "{body}");

    // An expired credential for the same session, signed with the right key.
    let keys = SessionKeys::new(&app.mint.derive_secret("session-jwt/v1"));
    let sid = {
        let claims = keys.verify(&credential, false).unwrap();
        claims.sid
    };
    let now = coinslot_mint::unix_now();
    let expired = keys.issue(&sid, "sat", now - 120, now - 60).unwrap();
    let (status, _, body) = app
        .get("/search?q=x", &[("x-cashu-session", &expired)])
        .await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");

    // It still closes its own session, so the value is never stranded.
    let (status, headers, body) = app
        .send(
            reqwest::Method::DELETE,
            "/cashu/session",
            &[("x-cashu-session", &expired)],
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        redeem_elsewhere(&app.url, &header(&headers, "x-cashu")).await?,
        10
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_sessions_balances_and_spent_tokens() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = funded(&app, 32).await?;
    let (credential, _) = open_session(&app, &wallet, 12).await?;
    let auth = [("x-cashu-session", credential.as_str())];
    let (status, _, _) = app.get("/search?q=before", &auth).await?;
    assert_eq!(status, 200);
    let paid = token(&wallet, 2).await?;
    let (status, _, _) = app.get("/search?q=paid", &[("x-cashu", &paid)]).await?;
    assert_eq!(status, 200);
    let listen = Some(app.addr);
    app.stop().await?;

    // Same data, same address (tokens name the mint's URL).
    let options = PaidAppOptions {
        listen,
        ..PaidAppOptions::default()
    };
    let app = PaidApp::start(dir.path(), options).await?;
    let (status, _, body) = app.get("/cashu/session", &auth).await?;
    assert_eq!(
        (status, json(&body)["balance"].as_u64()),
        (200, Some(10)),
        "{body}"
    );
    let (status, headers, _) = app.get("/search?q=after", &auth).await?;
    assert_eq!(
        (status, header(&headers, "x-cashu-balance")),
        (200, "8 sat".to_string())
    );
    let (status, _, body) = app.get("/search?q=again", &[("x-cashu", &paid)]).await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_dropped_mid_way_lose_nothing() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = funded(&app, 32).await?;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;

    // A session request whose client gives up while the handler runs: the debit comes back.
    let (credential, _) = open_session(&app, &wallet, 10).await?;
    let gave_up = impatient
        .get(format!("{}/gate", app.url))
        .header("x-cashu-session", &credential)
        .send()
        .await;
    assert!(gave_up.is_err(), "the gate should have held the request");
    let auth = [("x-cashu-session", credential.as_str())];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, _, body) = app.get("/cashu/session", &auth).await?;
        if json(&body)["balance"] == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "debit not returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A token whose request was dropped: the same request again is served without paying.
    let t = token(&wallet, 2).await?;
    let gave_up = impatient
        .get(format!("{}/gate", app.url))
        .header("x-cashu", &t)
        .send()
        .await;
    assert!(gave_up.is_err());
    app.open_gate(1);
    let (status, _, body) = app.get("/gate", &[("x-cashu", &t)]).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}
