//! One payment buys one run, through the layer in a plain axum app (`PaidApp`: a real
//! server on `127.0.0.1:0`, sled store, real cdk wallets): a retry of the same paid request
//! gets the stored answer and runs nothing; a retry with another body is refused as spent;
//! concurrent copies run once; a lost answer (the client gone before it) is recovered, after
//! a restart too; answers too big to keep, `retry = never | rerun`, expiry and pruning.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use cdk::nuts::Token;
use cdk::wallet::Wallet;
use coinslot_tests::paymentauth::{challenge, credential};
use coinslot_tests::paywall::{code, header, json, paid_app as app, PaidApp, PaidAppOptions};
use coinslot_tests::wallet::{self, redeem_elsewhere, token, token_proofs};

/// The issue's leak, through the layer: one 2-sat token, a POST that counts its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_buys_one_run_whatever_the_body() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let t = token(&wallet, 2).await?;
    let paid = [("x-cashu", t.as_str())];
    let (status, first_headers, first) = app.post("/echo", &paid, "body-aaaa").await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(json(&first)["runs"], 1);
    assert_eq!(app.runs(), 1);

    // The identical request: the stored answer, byte for byte; the handler did not run.
    let (status, headers, body) = app.post("/echo", &paid, "body-aaaa").await?;
    assert_eq!((status, body.as_str()), (200, first.as_str()));
    assert_eq!(
        header(&headers, "content-type"),
        header(&first_headers, "content-type")
    );
    assert_eq!(app.runs(), 1, "a retry ran the handler");

    // Three other bodies of the same length: each refused as spent, nothing runs.
    for other in ["body-bbbb", "body-cccc", "body-dddd"] {
        let (status, _, body) = app.post("/echo", &paid, other).await?;
        assert_eq!((status, code(&body)), (400, 11001), "{body}");
        assert!(body.contains("another body"), "{body}");
    }
    // Another length, and no body at all: the same.
    let (status, _, body) = app.post("/echo", &paid, "body-aaaaa").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    let (status, _, body) = app.post("/echo", &paid, "").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert_eq!(app.runs(), 1, "one payment bought more than one run");
    assert_eq!(wallet::balance(&wallet).await?, 8, "paid once");
    Ok(())
}

/// The same leak through the `Payment` scheme: a credential with an `Idempotency-Key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_buys_one_run_whatever_the_body() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let (status, headers, _) = app.post("/echo", &[], "body-aaaa").await?;
    assert_eq!(status, 402);
    let paying = token(&wallet, 2).await?;
    let authorization = credential(&challenge(&headers), &paying);
    let with_key = [
        ("authorization", authorization.as_str()),
        ("idempotency-key", "op-1"),
    ];
    let (status, _, first) = app.post("/echo", &with_key, "body-aaaa").await?;
    assert_eq!(status, 200, "{first}");
    let (status, _, again) = app.post("/echo", &with_key, "body-aaaa").await?;
    assert_eq!((status, again.as_str()), (200, first.as_str()));
    for other in ["body-bbbb", "body-cccc", "body-dddd"] {
        let (status, _, body) = app.post("/echo", &with_key, other).await?;
        assert_eq!(status, 402, "{body}");
        assert!(body.contains("paymentauth.org/problems/"), "{body}");
    }
    assert_eq!(app.runs(), 1, "one credential bought more than one run");
    assert_eq!(wallet::balance(&wallet).await?, 8, "paid once");
    Ok(())
}

/// 64 copies of one paid request at once: one run; every other copy is told to wait
/// (11002) or gets that run's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_copies_of_one_paid_request_run_once() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let t = token(&wallet, 2).await?;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            app.post("/echo?wait_ms=300", &[("x-cashu", &t)], "same job")
                .await
                .unwrap()
        }));
    }
    let (mut answered, mut pending) = (Vec::new(), 0);
    for task in tasks {
        let (status, _, body) = task.await?;
        match status {
            200 => answered.push(body),
            400 => {
                assert_eq!(code(&body), 11002, "{body}");
                pending += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        app.runs(),
        1,
        "concurrent copies ran the handler more than once"
    );
    assert!(!answered.is_empty());
    assert!(
        answered.iter().all(|b| json(b)["runs"] == 1),
        "{answered:?}"
    );
    assert_eq!(answered.len() + pending, 64);
    // Once it is done, a copy gets the answer.
    let (status, _, body) = app
        .post("/echo?wait_ms=300", &[("x-cashu", &t)], "same job")
        .await?;
    assert_eq!((status, json(&body)["runs"].as_u64()), (200, Some(1)));
    assert_eq!(app.runs(), 1);
    Ok(())
}

/// The client gives up before the answer (the payment was committed): the run goes on, its
/// answer is kept, and a retry gets it with the change, also after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_recovered_with_its_change_after_a_restart_too() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let app = PaidApp::start(dir.path(), PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let t = token(&wallet, 5).await?;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()?;
    let gave_up = impatient
        .post(format!("{}/echo?wait_ms=600", app.url))
        .header("x-cashu", &t)
        .body("lost job")
        .send()
        .await;
    assert!(gave_up.is_err(), "the client was meant to give up first");
    // The run was not cancelled with the connection.
    coinslot_tests::eventually("the run to finish", || async {
        (app.runs() == 1).then_some(())
    })
    .await;

    let paid = [("x-cashu", t.as_str())];
    let again = || app.post("/echo?wait_ms=600", &paid, "lost job");
    let answer = coinslot_tests::eventually("the stored answer", || async {
        match again().await {
            Ok((200, headers, body)) => Some((headers, body)),
            _ => None,
        }
    })
    .await;
    let (headers, body) = answer;
    assert_eq!(json(&body)["body"], "lost job");
    let change = header(&headers, "x-cashu");
    assert!(
        change.starts_with("cashuB"),
        "the change is in the stored answer"
    );
    assert_eq!(app.runs(), 1);

    let addr = app.addr;
    app.stop().await?;
    let app = PaidApp::start(
        dir.path(),
        PaidAppOptions {
            listen: Some(addr),
            ..PaidAppOptions::default()
        },
    )
    .await?;
    let (status, headers, after) = app.post("/echo?wait_ms=600", &paid, "lost job").await?;
    assert_eq!((status, after.as_str()), (200, body.as_str()));
    assert_eq!(header(&headers, "x-cashu"), change);
    assert_eq!(app.runs(), 0, "the restarted server ran the handler");
    assert_eq!(redeem_elsewhere(&app.url, &change).await?, 3);
    Ok(())
}

/// An answer over the size kept: a GET runs again on its retry, a POST is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_too_big_to_keep_rerun_a_get_and_refuse_a_post() -> Result<()> {
    let options = PaidAppOptions {
        max_stored_answer: Some(1000),
        ..PaidAppOptions::default()
    };
    let (app, _dir) = app(options).await?;
    let wallet = wallet::funded(&app.url, 10).await?;

    let get = token(&wallet, 2).await?;
    let (status, _, body) = app.get("/big?bytes=5000", &[("x-cashu", &get)]).await?;
    assert_eq!((status, body.len()), (200, 5000));
    let (status, _, again) = app.get("/big?bytes=5000", &[("x-cashu", &get)]).await?;
    assert_eq!((status, again.len()), (200, 5000));
    assert_eq!(app.runs(), 2, "a GET too big to keep runs again");
    // Small enough: kept, and not run again.
    let (status, _, _) = app.get("/big?bytes=10", &[("x-cashu", &get)]).await?;
    assert_eq!(status, 400, "another request with the same token");

    let post = token(&wallet, 2).await?;
    let big = "y".repeat(2000);
    let (status, _, body) = app
        .post("/echo", &[("x-cashu", &post)], big.clone())
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.runs(), 3);
    let (status, _, body) = app.post("/echo", &[("x-cashu", &post)], big).await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert!(body.contains("not kept"), "{body}");
    assert_eq!(app.runs(), 3, "a POST too big to keep ran again");
    Ok(())
}

/// `retry = never` refuses every retry; `retry = rerun` runs again, within the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_choose_never_or_rerun() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let never = token(&wallet, 2).await?;
    let (status, _, _) = app.post("/echo-never", &[("x-cashu", &never)], "n").await?;
    assert_eq!(status, 200);
    let (status, _, body) = app.post("/echo-never", &[("x-cashu", &never)], "n").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert_eq!(app.runs(), 1);

    let rerun = token(&wallet, 2).await?;
    for run in 2..=4 {
        let (status, _, body) = app.post("/echo-rerun", &[("x-cashu", &rerun)], "r").await?;
        assert_eq!((status, json(&body)["runs"].as_u64()), (200, Some(run)));
    }
    // Two reruns by default, then spent.
    let (status, _, body) = app.post("/echo-rerun", &[("x-cashu", &rerun)], "r").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    // A rerun is for the same request only.
    let (status, _, body) = app.post("/echo-rerun", &[("x-cashu", &rerun)], "x").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert_eq!(app.runs(), 4);
    assert_eq!(wallet::balance(&wallet).await?, 6, "two payments");

    // A rerun that fails after the first run answered refunds nothing: the payment stands
    // for that answer.
    let flaky = token(&wallet, 2).await?;
    let path = "/echo-rerun?fail_after=5";
    let (status, _, _) = app.post(path, &[("x-cashu", &flaky)], "f").await?;
    assert_eq!(status, 200);
    let (status, headers, body) = app.post(path, &[("x-cashu", &flaky)], "f").await?;
    assert_eq!(status, 500, "{body}");
    assert!(
        headers.get("x-cashu").is_none(),
        "a failed rerun was refunded"
    );
    assert_eq!(wallet::balance(&wallet).await?, 4, "three payments");
    Ok(())
}

/// Stored answers are given within the retry window only, and pruned once expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_answers_expire_and_are_pruned() -> Result<()> {
    let options = PaidAppOptions {
        retry_window: Some(Duration::from_secs(2)),
        ..PaidAppOptions::default()
    };
    let (app, _dir) = app(options).await?;
    let wallet = wallet::funded(&app.url, 10).await?;
    let t = token(&wallet, 2).await?;
    let proofs = token_proofs(&wallet, &Token::from_str(&t)?).await?;
    let key = coinslot::crates::mint::receipt_key(&proofs);
    let (status, _, _) = app.post("/echo", &[("x-cashu", &t)], "soon gone").await?;
    assert_eq!(status, 200);
    let (status, _, _) = app.post("/echo", &[("x-cashu", &t)], "soon gone").await?;
    assert_eq!(status, 200, "within the window");
    assert!(
        app.mint.answer(&key, 0).await?.is_some(),
        "the answer is kept"
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _, body) = app.post("/echo", &[("x-cashu", &t)], "soon gone").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert!(body.contains("window"), "{body}");
    coinslot_tests::eventually("the expired answer to be pruned", || async {
        app.mint
            .answer(&key, 0)
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(app.runs(), 1);
    Ok(())
}

/// A session payment with an `Idempotency-Key` is recorded like a token payment: its retry
/// gets the stored answer and no second debit; without a key each request is a purchase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_payment_with_an_idempotency_key_runs_once() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet = wallet::funded(&app.url, 20).await?;
    let deposit = token(&wallet, 10).await?;
    let (status, _, body) = app
        .post("/cashu/session", &[("x-cashu", &deposit)], "")
        .await?;
    assert_eq!(status, 200, "{body}");
    let session = json(&body)["session"].as_str().unwrap().to_string();
    let keyed = [
        ("x-cashu-session", session.as_str()),
        ("idempotency-key", "job-7"),
    ];
    let (status, headers, first) = app.post("/echo", &keyed, "keyed").await?;
    assert_eq!(status, 200, "{first}");
    assert_eq!(header(&headers, "x-cashu-balance"), "8 sat");
    let (status, headers, again) = app.post("/echo", &keyed, "keyed").await?;
    assert_eq!((status, again.as_str()), (200, first.as_str()));
    assert_eq!(
        header(&headers, "x-cashu-balance"),
        "8 sat",
        "the stored answer"
    );
    let (status, _, body) = app.post("/echo", &keyed, "other").await?;
    assert_eq!((status, code(&body)), (400, 11001), "{body}");
    assert_eq!(app.runs(), 1);
    // Without a key: a new purchase each time.
    let plain = [("x-cashu-session", session.as_str())];
    let (_, headers, _) = app.post("/echo", &plain, "keyed").await?;
    assert_eq!(header(&headers, "x-cashu-balance"), "6 sat");
    assert_eq!(app.runs(), 2);
    Ok(())
}

/// A pass bought with a token on a scope's route: the retry gets the stored answer (the
/// pass in it), and the token buys nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_bought_on_a_route_answers_its_retry_from_the_store() -> Result<()> {
    let (app, _dir) = app(PaidAppOptions::default()).await?;
    let wallet: Wallet = wallet::funded(&app.url, 10).await?;
    let t = token(&wallet, 4).await?;
    let (status, headers, first) = app.get("/vpn/connect", &[("x-cashu", &t)]).await?;
    assert_eq!(status, 200, "{first}");
    let pass = header(&headers, "x-cashu-pass");
    assert!(!pass.is_empty());
    let (status, headers, again) = app.get("/vpn/connect", &[("x-cashu", &t)]).await?;
    assert_eq!((status, again.as_str()), (200, first.as_str()));
    assert_eq!(header(&headers, "x-cashu-pass"), pass);
    // The pass itself keeps opening the scope.
    let (status, _, _) = app.get("/vpn/other", &[("x-cashu-pass", &pass)]).await?;
    assert_eq!(status, 200);
    assert_eq!(wallet::balance(&wallet).await?, 6, "bought once");
    Ok(())
}
