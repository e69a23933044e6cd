//! Benchmark of the paid relay on loopback, all phases in one run on the same machine, each
//! with `--concurrency` websocket clients publishing kind 1 notes one after another (waiting
//! for each `OK`):
//!
//! - (a) the relay with writes free (baseline: verify, store, fan out),
//! - (b) paid from a NIP-42 balance (an atomic debit per event),
//! - (c) paid with a one-proof token in a `cashu` tag (verify + one durable write).
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin relay-load -- --seconds 5 --concurrency 8
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use coinslot::EmbeddedMint;
use coinslot_mint::cashu::nuts::CurrencyUnit;
use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_relay::{PaidRelay, Prices, RelayConfig};
use coinslot_tests::load::{premade_tokens, print_table, run_phase};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent websocket clients.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// One-proof tokens made for phase (c) (it ends early when they run out).
    #[arg(long, default_value_t = 20_000)]
    tokens: usize,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(relay: &PaidRelay) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let router = relay.router();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            eprintln!("relay failed: {err}");
        }
    });
    Ok(url)
}

async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await.context("the relay closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            _ => continue,
        }
    }
}

/// Sends `message` and waits for the `OK` about `id`; fails when it is not accepted.
async fn accepted(socket: &mut Socket, message: Value, id: EventId) -> anyhow::Result<()> {
    socket
        .send(Message::Text(message.to_string().into()))
        .await?;
    loop {
        let reply = next_json(socket).await?;
        if reply[0] == "OK" && reply[1] == id.to_hex() {
            if reply[2] != true {
                bail!("refused: {}", reply[3]);
            }
            return Ok(());
        }
    }
}

/// One client: connects, optionally authenticates, then publishes until `until`.
async fn client(
    url: String,
    keys: Keys,
    auth: bool,
    tokens: Option<Arc<Mutex<Vec<String>>>>,
    until: Instant,
) -> anyhow::Result<Vec<Duration>> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let hello = next_json(&mut socket).await?;
    let challenge = hello[1].as_str().context("no AUTH challenge")?.to_string();
    if auth {
        let event = EventBuilder::auth(challenge, RelayUrl::parse(&url)?).sign_with_keys(&keys)?;
        accepted(&mut socket, json!(["AUTH", event]), event.id).await?;
    }
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < until {
        let mut builder = EventBuilder::text_note(format!("note {n}"));
        if let Some(tokens) = &tokens {
            let Some(token) = tokens.lock().pop() else {
                break;
            };
            builder = builder.tag(Tag::parse(["cashu", token.as_str()])?);
        }
        let event = builder.sign_with_keys(&keys)?;
        let start = Instant::now();
        accepted(&mut socket, json!(["EVENT", event]), event.id).await?;
        latencies.push(start.elapsed());
        n += 1;
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let embedded = EmbeddedMint::open_dev(dir.path()).await?;
    let mint = embedded.mint.clone();
    let mint_url = "http://127.0.0.1:1".to_string();
    let parsed_url: coinslot_mint::cashu::mint_url::MintUrl = mint_url.parse()?;
    let relay_with = |default: u64| {
        let config = RelayConfig {
            prices: Prices {
                default,
                ..Prices::default()
            },
            max_events: 1_000_000,
            ..RelayConfig::default()
        };
        PaidRelay::new(mint.clone(), parsed_url.clone(), config)
    };
    let free = serve(&relay_with(0)).await?;
    let paid = serve(&relay_with(1)).await?;
    let phase = Duration::from_secs(args.seconds);
    let keys: Vec<Keys> = (0..args.concurrency).map(|_| Keys::generate()).collect();

    let run =
        |name: &'static str, url: String, auth: bool, tokens: Option<Arc<Mutex<Vec<String>>>>| {
            let keys = keys.clone();
            async move {
                let until = Instant::now() + phase;
                run_phase(name, keys.len(), move |i| {
                    client(url.clone(), keys[i].clone(), auth, tokens.clone(), until)
                })
                .await
            }
        };

    let a = run("(a) free writes", free, false, None).await?;
    // Balances credited by the operator, as after a deposit.
    for key in &keys {
        let account = coinslot_relay::payment::account_id(&key.public_key());
        mint.credit_account(&account, &CurrencyUnit::Sat, 10_000_000, None)
            .await?;
    }
    let b = run("(b) paid from a NIP-42 balance", paid.clone(), true, None).await?;
    eprintln!("making {} one-proof tokens…", args.tokens);
    let tokens = premade_tokens(&mint, &mint_url, 1, args.tokens).await?;
    let tokens = Arc::new(Mutex::new(tokens));
    let c = run("(c) paid, one-proof token", paid, false, Some(tokens)).await?;
    print_table(&a, &[&a, &b, &c]);
    embedded.store.flush().await?;
    Ok(())
}
