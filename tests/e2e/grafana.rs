//! The Grafana dashboard (`deploy/grafana/coinslot.json`) queries only metrics coinslotd
//! exports: a coinslotd in front of the sample upstream is put through what an operator's
//! day holds (a top-up, a swap, a paid request, a failed one given back, a refused header,
//! a request through an untrusted proxy), and every series a panel names must then be in
//! its `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::collections::BTreeSet;

use cdk::wallet::{ReceiveOptions, SendOptions};
use coinslot_tests::proxy::ProxiedApp;
use coinslot_tests::wallet::{new_wallet, random_seed, send, topup};
use serde_json::Value;

/// Every `coinslot_…` name in the dashboard's queries.
fn queried_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/coinslot.json"
    );
    let dashboard: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            let mut rest = expr;
            while let Some(at) = rest.find("coinslot_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let queried = queried_metrics();
    assert!(queried.len() >= 10, "the dashboard queries {queried:?}");

    let (app, _dir) = ProxiedApp::start_in_temp(|_| {}).await.unwrap();
    let wallet = new_wallet(app.url(), random_seed()).await.unwrap();
    topup(&wallet, 16).await.unwrap();
    let client = reqwest::Client::new();
    for (path, refunded) in [("/search", false), ("/boom", true)] {
        let token = send(&wallet, 5, SendOptions::default()).await.unwrap();
        let response = client
            .get(format!("{}{path}", app.url()))
            .header("x-cashu", token.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().is_server_error(), refunded, "{path}");
        // Change for the overpaid route, the whole token back for the failed one.
        assert!(response.headers().contains_key("x-cashu"), "{path}");
    }
    // Receiving a token swaps it at the mint.
    let token = send(&wallet, 1, SendOptions::default()).await.unwrap();
    wallet
        .receive(&token.to_string(), ReceiveOptions::default())
        .await
        .unwrap();
    let refused = client
        .get(format!("{}/status", app.url()))
        .header("x-big", "a".repeat(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 431);
    let proxied = client
        .get(format!("{}/status", app.url()))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);

    // The activity feed counts a moment after the answers.
    let mut missing = Vec::new();
    for _ in 0..50 {
        let text = reqwest::get(format!("{}/metrics", app.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let exported: BTreeSet<&str> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split(['{', ' ']).next())
            .collect();
        missing = queried
            .iter()
            .filter(|name| !exported.contains(name.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    app.stop().await.unwrap();
}
