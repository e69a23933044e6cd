//! The paid LLM API as its users meet it: a cdk wallet tops up, a token becomes the API key
//! (`Authorization: Bearer cashuB…`), completions (streamed or not) are paid from its balance
//! by exactly the usage they report times the model's price, and the rest comes back as a
//! token the wallet receives. Also: what cannot be priced is refused before payment, streams
//! on one key never overdraw it, and streams that end badly are billed as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use coinslot_tests::wallet;
use common::start;
use futures::StreamExt;
use serde_json::{json, Value};

mod common;

const DEPOSIT: u64 = 500;

fn ask(model: &str, text: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{ "role": "user", "content": text }],
        "stream": stream,
    })
}

/// What a request body reserves: every byte a prompt token, all the output allowed.
fn reservation(model: &str, body: &Value) -> u64 {
    let bytes = serde_json::to_vec(body).unwrap().len() as u64;
    paid_llm::cost(model, bytes, paid_llm::MAX_TOKENS).unwrap()
}

/// The usage a completion (its JSON, or its streamed events) reports.
fn usage(answer: &str) -> (u64, u64) {
    let found = answer
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .chain(std::iter::once(answer))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|event| event.get("usage").cloned())
        .find(|usage| usage.is_object())
        .expect("the answer reports its usage");
    (
        found["prompt_tokens"].as_u64().unwrap(),
        found["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_the_api_key_and_the_balance_falls_by_the_usage() {
    let llm = start(Duration::ZERO, |_| {}).await;
    let wallet = wallet::funded(&llm.url, 2 * DEPOSIT).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();

    // The model list is free and needs no key.
    let models: Value = llm
        .client
        .get(format!("{}/v1/models", llm.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 4, "{models}");
    // Agents find the prices before paying: per model, with a body that can be priced.
    let doc: Value = llm
        .client
        .get(format!("{}/openapi.json", llm.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = &doc["paths"]["/v1/chat/completions"]["post"];
    assert_eq!(chat["x-payment-info"]["amount"], Value::Null, "{doc}");
    assert_eq!(chat["x-payment-info"]["method"], "cashu");
    let described = chat["x-payment-info"]["description"].as_str().unwrap();
    assert!(
        described.contains("echo-small (prompt 100, completion 400)"),
        "{described}"
    );
    let example = &chat["requestBody"]["content"]["application/json"]["example"];
    let model = example["model"].as_str().unwrap();
    assert!(
        paid_llm::cost(model, 1, 1).is_some(),
        "a priced model: {doc}"
    );
    assert!(doc["paths"]["/v1/models"]["get"]["x-payment-info"].is_null());

    // Not streamed: the balance in the answer is already the settled one.
    let answer = llm
        .chat(&key, &ask("echo-small", "hello there paid world", false))
        .await;
    assert_eq!(answer.status(), 200);
    let header = answer.headers()["x-cashu-balance"]
        .to_str()
        .unwrap()
        .to_string();
    let text = answer.text().await.unwrap();
    let (prompt, completion) = usage(&text);
    assert_eq!((prompt, completion), (4, 5), "{text}");
    let first = paid_llm::cost("echo-small", prompt, completion).unwrap();
    assert_eq!(header, format!("{} sat", DEPOSIT - first));
    assert_eq!(llm.balance(&key).await.1["balance"], DEPOSIT - first);

    // Streamed (the client did not ask for the usage; coinslotd asked the upstream for it).
    let answer = llm
        .chat(
            &key,
            &ask("echo-large", "stream me a few words please", true),
        )
        .await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = answer.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let (prompt, completion) = usage(&text);
    let second = paid_llm::cost("echo-large", prompt, completion).unwrap();
    let left = DEPOSIT - first - second;
    // Settled before the stream's end reached the client.
    assert_eq!(llm.balance(&key).await.1["balance"], left);

    // The rest comes back once, as a token the wallet takes.
    let before = wallet::balance(&wallet).await.unwrap();
    let paid_out = llm.pay_out(&key).await;
    assert_eq!(paid_out["amount"], left);
    let rest = paid_out["token"].as_str().unwrap();
    let received = wallet
        .receive(rest, Default::default())
        .await
        .unwrap()
        .to_u64();
    assert_eq!(received, left);
    assert_eq!(wallet::balance(&wallet).await.unwrap(), before + left);

    // The key is spent for good.
    let again = llm.chat(&key, &ask("echo-small", "once more", false)).await;
    assert_eq!(again.status(), 401);
    let refusal: Value = again.json().await.unwrap();
    assert_eq!(
        refusal["error"]["type"], "authentication_error",
        "{refusal}"
    );
    assert!(refusal["error"]["message"]
        .as_str()
        .unwrap()
        .contains("paid out"));
    assert_eq!(llm.balance(&key).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_priced_is_refused_before_payment() {
    let llm = start(Duration::ZERO, |_| {}).await;
    let wallet = wallet::funded(&llm.url, 100).await.unwrap();
    let key = wallet::token(&wallet, 50).await.unwrap();
    let refusals = [
        (
            ask("gpt-unknown", "hi", false),
            "unknown model `gpt-unknown`",
        ),
        (json!({ "messages": [] }), "no `model`"),
        (
            json!({ "model": "echo-small", "messages": [], "max_tokens": paid_llm::MAX_TOKENS + 1 }),
            "`max_tokens` is 257",
        ),
        (json!(["not", "an", "object"]), "JSON object"),
    ];
    for (body, why) in refusals {
        let answer = llm.chat(&key, &body).await;
        assert_eq!(answer.status(), 400);
        let error: Value = answer.json().await.unwrap();
        assert!(error["detail"].as_str().unwrap().contains(why), "{error}");
        assert_eq!(error["code"], 10000);
    }
    let not_json = llm
        .client
        .post(format!("{}/v1/chat/completions", llm.url))
        .bearer_auth(&key)
        .body("model=echo-small")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let error: Value = not_json.json().await.unwrap();
    assert!(
        error["detail"].as_str().unwrap().contains("not JSON"),
        "{error}"
    );
    // Nothing was taken: the token is unspent, and not even opened as a key.
    assert!(wallet::unspent(&wallet, &key).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_on_one_key_never_overdraw_it() {
    let llm = start(Duration::from_millis(20), |_| {}).await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let body = ask("echo-small", "one two three four five six", true);
    // Room for two reservations at once, not three.
    let deposit = 2 * reservation("echo-small", &body) + 10;
    let key = wallet::token(&wallet, deposit).await.unwrap();
    // Opened first, so the streams race for its balance and not for its deposit.
    assert_eq!(llm.balance(&key).await.1["balance"], deposit);

    let streams = (0..6).map(|_| async {
        let answer = llm.chat(&key, &body).await;
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap())
    });
    let done = futures::future::join_all(streams).await;
    let mut spent = 0;
    for (status, text) in &done {
        match status {
            200 => {
                let (prompt, completion) = usage(text);
                spent += paid_llm::cost("echo-small", prompt, completion).unwrap();
            }
            402 => {
                // Both shapes: Cashu's `detail` and OpenAI's `error.message` (what SDKs show).
                let refusal: Value = serde_json::from_str(text).unwrap();
                let detail = refusal["detail"].as_str().unwrap();
                assert!(detail.contains("key balance is"), "{text}");
                assert_eq!(refusal["error"]["message"], detail, "{text}");
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    let served = done.iter().filter(|(status, _)| *status == 200).count();
    assert!(served >= 2, "{served} of 6 streams were served");
    assert!(
        served < 6,
        "every stream was served: reservations did not hold"
    );
    assert_eq!(llm.balance(&key).await.1["balance"], deposit - spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_of_a_key_open_one_balance() {
    let llm = start(Duration::ZERO, |_| {}).await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();
    let body = ask("echo-small", "first use at once", false);
    let uses = (0..4).map(|_| async {
        let answer = llm.chat(&key, &body).await;
        (answer.status().as_u16(), answer.text().await.unwrap())
    });
    let mut spent = 0;
    for (status, text) in futures::future::join_all(uses).await {
        assert_eq!(status, 200, "{text}");
        let (prompt, completion) = usage(&text);
        spent += paid_llm::cost("echo-small", prompt, completion).unwrap();
    }
    assert_eq!(llm.balance(&key).await.1["balance"], DEPOSIT - spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_cuts_is_billed_by_the_usage_the_upstream_reports() {
    let llm = start(Duration::from_millis(30), |_| {}).await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let body = ask("echo-small", &words.join(" "), true);
    let answer = llm.chat(&key, &body).await;
    assert_eq!(answer.status(), 200);
    let mut chunks = answer.bytes_stream();
    for _ in 0..3 {
        chunks.next().await.unwrap().unwrap();
    }
    drop(chunks); // the client goes away after three chunks

    // The upstream goes on to the end (41 words: `echo:` and the 40), and that is billed.
    let cost = paid_llm::cost("echo-small", 40, 41).unwrap();
    assert_eq!(
        llm.balance_becomes(&key, DEPOSIT - cost).await,
        DEPOSIT - cost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_end_badly_are_billed_the_fallback_or_nothing() {
    let llm = start(Duration::ZERO, |_| {}).await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();

    // An upstream that never reports its usage: the reservation is billed.
    let body = ask("echo-silent", "say nothing of cost", true);
    let answer = llm.chat(&key, &body).await;
    assert_eq!(answer.status(), 200);
    answer.text().await.unwrap();
    let mut left = DEPOSIT - reservation("echo-silent", &body);
    assert_eq!(llm.balance(&key).await.1["balance"], left);

    // One that fails before its first byte: nothing is billed, streamed or not.
    let answer = llm.chat(&key, &ask("echo-broken", "fall over", true)).await;
    assert_eq!(answer.status(), 200, "the head went out before the failure");
    assert!(answer.text().await.is_err(), "the stream should fail");
    assert_eq!(llm.balance_becomes(&key, left).await, left);
    let answer = llm
        .chat(&key, &ask("echo-broken", "fall over", false))
        .await;
    assert_eq!(answer.status(), 500);
    assert_eq!(llm.balance(&key).await.1["balance"], left);

    // And a normal one still settles exactly afterwards.
    let answer = llm.chat(&key, &ask("echo-small", "all good", true)).await;
    let (prompt, completion) = usage(&answer.text().await.unwrap());
    left -= paid_llm::cost("echo-small", prompt, completion).unwrap();
    assert_eq!(llm.balance(&key).await.1["balance"], left);
}

/// `fallback` on the route: an answer without usage is billed that, not the reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_fallback_bills_an_answer_that_never_says_its_usage() {
    let llm = start(Duration::ZERO, |config| {
        config.proxy.upstreams[0].routes[0].fallback = Some(3);
    })
    .await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();
    for stream in [true, false] {
        let before = llm.balance(&key).await.1["balance"]
            .as_u64()
            .unwrap_or(DEPOSIT);
        let answer = llm
            .chat(&key, &ask("echo-silent", "say nothing", stream))
            .await;
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap();
        assert_eq!(llm.balance_becomes(&key, before - 3).await, before - 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_keeps_its_reservation_and_settles_once() {
    // A lease of 2 s against a stream of about 5 s (the "10 minutes" of a real stream, on a
    // short clock): the run is renewed while it streams.
    let llm = start(Duration::from_millis(100), |config| {
        config.paywall.run_lease_secs = 2;
    })
    .await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let key = wallet::token(&wallet, DEPOSIT).await.unwrap();
    let words: Vec<String> = (0..45).map(|i| format!("w{i}")).collect();
    let body = ask("echo-small", &words.join(" "), true);
    let send = || {
        llm.client
            .post(format!("{}/v1/chat/completions", llm.url))
            .bearer_auth(&key)
            .header("idempotency-key", "long-stream-1")
            .json(&body)
            .send()
    };
    let answer = send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let reading = tokio::spawn(answer.text());
    // Past the lease, a retry of the same operation finds the run alive: not run again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 400);
    let error: Value = retry.json().await.unwrap();
    assert_eq!(error["code"], 11002, "{error}");
    assert_eq!(
        llm.balance(&key).await.1["balance"],
        DEPOSIT - reservation("echo-small", &body),
        "the reservation is held while the stream runs"
    );
    let text = reading.await.unwrap().unwrap();
    let (prompt, completion) = usage(&text);
    assert_eq!((prompt, completion), (45, 46));
    let cost = paid_llm::cost("echo-small", prompt, completion).unwrap();
    assert_eq!(llm.balance(&key).await.1["balance"], DEPOSIT - cost);
    // Settled once: later retries change nothing.
    let _ = send().await.unwrap().text().await;
    assert_eq!(llm.balance(&key).await.1["balance"], DEPOSIT - cost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_token_leaves_the_rest_of_a_stream_on_its_key() {
    let llm = start(Duration::ZERO, |_| {}).await;
    let wallet = wallet::funded(&llm.url, 1000).await.unwrap();
    let body = ask("echo-small", "pay once with x-cashu", true);
    let paid = reservation("echo-small", &body) + 7;
    let token = wallet::token(&wallet, paid).await.unwrap();
    let answer = llm
        .client
        .post(format!("{}/v1/chat/completions", llm.url))
        .header("x-cashu", &token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The change from the head (what the token held beyond the reservation) comes at once.
    let change = answer.headers()["x-cashu"].to_str().unwrap().to_string();
    assert_eq!(
        wallet::redeem_elsewhere(&llm.url, &change).await.unwrap(),
        7
    );
    let (prompt, completion) = usage(&answer.text().await.unwrap());
    let cost = paid_llm::cost("echo-small", prompt, completion).unwrap();
    // The unused reservation waits on the token's key.
    let rest = reservation("echo-small", &body) - cost;
    assert_eq!(llm.balance(&token).await.1["balance"], rest);
}
