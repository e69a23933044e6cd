//! An LNbits stand-in for the plain test run (the real LNbits runs in `tests/e2e/lnbits.rs`
//! when Python is there): the parts of LNbits 1.x's API coinslot-backend-lnbits uses, with
//! LNbits' own answers.
//!
//! `GET /api/v1/wallet` (`id` shown to the admin key only), `POST /api/v1/payments`
//! (create an invoice; `out: true`, paying, is refused and counted),
//! `GET /api/v1/payments/{hash}` (as LNbits: `paid` for any key or none, `details` only to
//! the wallet's keys), and `GET /api/v1/ws/{key}`, which sends `{"payment": {...}}` for
//! each settled invoice.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{Held, Ledger};

/// A running LNbits stand-in.
#[derive(Debug)]
pub struct Lnbits {
    /// Base URL (`http://127.0.0.1:port`).
    pub url: String,
    /// The wallet's invoice key.
    pub key: String,
    /// The wallet's admin key (which Coinslot must refuse).
    pub admin_key: String,
    /// The invoices.
    pub ledger: Arc<Ledger>,
    /// Requests that tried to pay (must stay 0: Coinslot never pays).
    pub pay_attempts: Arc<AtomicUsize>,
    /// Websocket connections accepted so far.
    pub websockets: Arc<AtomicUsize>,
    revoked: Arc<AtomicBool>,
    kick: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    key: String,
    admin_key: String,
    ledger: Arc<Ledger>,
    pay_attempts: Arc<AtomicUsize>,
    websockets: Arc<AtomicUsize>,
    revoked: Arc<AtomicBool>,
    kick: watch::Receiver<u64>,
}

impl Lnbits {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> Lnbits {
        let key = hex::encode(rand::random::<[u8; 16]>());
        let admin_key = hex::encode(rand::random::<[u8; 16]>());
        let ledger = Ledger::new();
        let pay_attempts = Arc::new(AtomicUsize::new(0));
        let websockets = Arc::new(AtomicUsize::new(0));
        let revoked = Arc::new(AtomicBool::new(false));
        let (kick, kicked) = watch::channel(0);
        let shared = Shared {
            key: key.clone(),
            admin_key: admin_key.clone(),
            ledger: Arc::clone(&ledger),
            pay_attempts: Arc::clone(&pay_attempts),
            websockets: Arc::clone(&websockets),
            revoked: Arc::clone(&revoked),
            kick: kicked,
        };
        let app = Router::new()
            .route("/api/v1/wallet", get(wallet))
            .route("/api/v1/payments", post(create))
            .route("/api/v1/payments/{hash}", get(payment))
            .route("/api/v1/ws/{key}", get(websocket))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Lnbits {
            url,
            key,
            admin_key,
            ledger,
            pay_attempts,
            websockets,
            revoked,
            kick,
            task,
        }
    }

    /// Stops accepting the wallet's keys (as an operator resetting them in LNbits would).
    pub fn revoke_keys(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// Stops serving (as LNbits going down would).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Closes every open websocket (as a restart of LNbits or a proxy would).
    pub fn drop_websockets(&self) {
        self.kick.send_modify(|n| *n += 1);
    }
}

impl Drop for Lnbits {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    !shared.revoked.load(Ordering::SeqCst)
        && headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k == shared.key || k == shared.admin_key)
}

fn unauthorized() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": "Wallet not found."})),
    )
        .into_response()
}

async fn wallet(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let admin = headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(&shared.admin_key);
    let mut answer = json!({"name": "shop", "balance": 0});
    if admin {
        answer["id"] = json!("standin");
    }
    Json(answer).into_response()
}

async fn create(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !authorized(&shared, &headers) {
        return unauthorized();
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"detail": "bad json"}))).into_response();
    };
    if request["out"].as_bool() != Some(false) {
        shared.pay_attempts.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"detail": "an invoice key cannot pay"})),
        )
            .into_response();
    }
    let (Some(amount), Some("sat")) = (request["amount"].as_u64(), request["unit"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"detail": "amount in sat required"})),
        )
            .into_response();
    };
    let memo = request["memo"].as_str().unwrap_or_default();
    let expiry = request["expiry"].as_u64().unwrap_or(3600);
    let held = shared.ledger.create(amount * 1000, memo, expiry);
    (
        StatusCode::CREATED,
        Json(json!({
            "payment_hash": held.hash_hex(),
            "payment_request": held.bolt11,
            "bolt11": held.bolt11,
            "checking_id": held.hash_hex(),
        })),
    )
        .into_response()
}

fn details(held: &Held, ours: bool) -> Value {
    let mut answer = json!({
        "paid": held.settle_index.is_some(),
        "preimage": held.settle_index.map(|_| hex::encode(held.preimage)),
    });
    if ours {
        answer["details"] = json!({
            "status": if held.settle_index.is_some() { "success" } else { "pending" },
            "checking_id": held.hash_hex(),
            "amount": held.amount_msat,
            "fee": 0,
            "memo": held.memo,
            "time": held.created_at,
            "created_at": held.created_at,
            "updated_at": held.settled_at.unwrap_or(held.created_at),
            "bolt11": held.bolt11,
            "preimage": null,
            "payment_hash": held.hash_hex(),
            "expiry": held.expires_at,
            "extra": {},
            "wallet_id": "standin",
        });
    }
    answer
}

async fn payment(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(hash): Path<String>,
) -> Response {
    // As LNbits: anyone learns whether a payment hash was paid; its details only with a key.
    let ours = authorized(&shared, &headers);
    let mut bytes = [0u8; 32];
    let held = hex::decode_to_slice(&hash, &mut bytes)
        .ok()
        .and_then(|()| shared.ledger.get(&bytes));
    match held {
        Some(held) => Json(details(&held, ours)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "Payment does not exist."})),
        )
            .into_response(),
    }
}

async fn websocket(
    State(shared): State<Shared>,
    Path(key): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if key != shared.key {
        return unauthorized();
    }
    upgrade.on_upgrade(move |socket| notify(shared, socket))
}

async fn notify(mut shared: Shared, mut socket: WebSocket) {
    let mut settled = shared.ledger.subscribe();
    shared.kick.mark_unchanged();
    shared.websockets.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            held = settled.recv() => {
                let Ok(held) = held else { return };
                let message = json!({
                    "wallet_balance": 0,
                    "payment": {
                        "payment_hash": held.hash_hex(),
                        "amount": held.amount_msat,
                        "memo": held.memo,
                        "status": "success",
                    },
                });
                if socket.send(Message::Text(message.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = shared.kick.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => {
                if incoming.is_none() {
                    return;
                }
            }
        }
    }
}
