//! A sample upstream API for `coinslotd`'s reverse proxy: it knows nothing about Cashu.
//!
//! - `GET /search?q=…`: results, and what coinslotd says was paid (`x-coinslot-paid-*`);
//! - `POST /v1/chat/{model}`: a metered route: it reports its cost in `x-coinslot-cost`
//!   (one unit per 10 bytes of prompt, at least 1);
//! - `GET /status`: a free health route.
//!
//! ```text
//! cargo run -p sample-upstream -- --listen 127.0.0.1:8080
//! ```

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};

/// A sample API to put coinslotd in front of.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| Value::String(v.to_string()))
}

async fn search(Query(query): Query<HashMap<String, String>>, headers: HeaderMap) -> Json<Value> {
    let q = query.get("q").cloned().unwrap_or_default();
    Json(json!({
        "query": q,
        "results": [format!("{q} — the first result"), format!("{q} — the second result")],
        "paid": {
            "amount": header(&headers, "x-coinslot-paid-amount"),
            "unit": header(&headers, "x-coinslot-paid-unit"),
            "via": header(&headers, "x-coinslot-paid-via"),
        },
    }))
}

async fn chat(Path(model): Path<String>, prompt: String) -> ([(&'static str, String); 1], String) {
    let cost = (prompt.len() / 10).max(1);
    (
        [("x-coinslot-cost", cost.to_string())],
        format!(
            "{model}: you said {} bytes; that cost {cost}\n",
            prompt.len()
        ),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Router::new()
        .route("/search", get(search))
        .route("/v1/chat/{model}", post(chat))
        .route("/status", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!(
        "sample-upstream: listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}
