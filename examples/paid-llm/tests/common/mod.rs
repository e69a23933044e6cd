//! What the paid-llm tests share: the example on a loopback port, and its client (a chat
//! with a key, the key's balance, its payout).
// Each test binary uses a part of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;

/// The example running on a loopback port, and a client for it.
pub struct Llm {
    pub url: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts the example (its stand-in streaming a word every `delay`), `adjust`ed.
pub async fn start(delay: Duration, adjust: impl FnOnce(&mut coinslotd::Config)) -> Llm {
    let dir = tempfile::tempdir().unwrap();
    let url = paid_llm::spawn_on_loopback(dir.path(), delay, adjust)
        .await
        .unwrap();
    Llm {
        url,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Llm {
    pub async fn chat(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    pub async fn balance(&self, key: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/cashu/balance", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// The key's balance once it is `expected` (settlements end as the stream does, but a
    /// client that went away leaves it to the server), waiting up to 15 s.
    pub async fn balance_becomes(&self, key: &str, expected: u64) -> u64 {
        let mut last = 0;
        for _ in 0..150 {
            last = self.balance(key).await.1["balance"].as_u64().unwrap();
            if last == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }

    /// `DELETE` on the key's balance: the payout (`token`, `amount`, `unit`).
    pub async fn pay_out(&self, key: &str) -> Value {
        self.client
            .delete(format!("{}/cashu/balance", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
