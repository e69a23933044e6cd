//! NUT-17 websockets at `/v1/ws`: JSON-RPC `subscribe` / `unsubscribe` for
//! `bolt11_mint_quote` (filters: quote ids) and `proof_state` (filters: Ys). On subscribing, the
//! current state of each filter is sent at once; after that, every change. A connection holds
//! only a weak handle to the mint, so it ends when the server drops the mint at shutdown.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use coinslot_mint::cashu::nuts::nut17::Kind;
use coinslot_mint::cashu::nuts::{CheckStateRequest, PublicKey};
use coinslot_mint::{MintEvent, WeakMint};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;

/// Most filters one subscription may name.
const MAX_FILTERS: usize = 1000;
/// Largest websocket message accepted: 1000 filters of 66-character Ys fit with room to spare.
const MAX_MESSAGE_BYTES: usize = 128 * 1024;

pub(crate) async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let max_subs = state.options.max_ws_subscriptions;
    let mint = state.mint.downgrade();
    let events = state.mint.subscribe();
    drop(state);
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, mint, events, max_subs))
}

enum Filters {
    Quotes(HashSet<String>),
    Proofs(HashSet<[u8; 33]>),
}

struct Connection {
    mint: WeakMint,
    subs: HashMap<String, Filters>,
    max_subs: usize,
}

async fn serve(
    mut socket: WebSocket,
    mint: WeakMint,
    mut events: tokio::sync::broadcast::Receiver<MintEvent>,
    max_subs: usize,
) {
    let mut conn = Connection {
        mint,
        subs: HashMap::new(),
        max_subs,
    };
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let replies = conn.handle(text.as_str()).await;
                for reply in replies {
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "websocket subscriber lagged; events dropped");
                        continue;
                    }
                    Err(RecvError::Closed) => break,
                };
                for note in conn.notifications(&event) {
                    if socket.send(Message::Text(note.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn notification(sub_id: &str, payload: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "subscribe",
        "params": { "subId": sub_id, "payload": payload },
    })
}

fn error_reply(id: Value, code: i32, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "error": { "code": code, "message": message }, "id": id })
}

fn ok_reply(id: Value, sub_id: &str) -> Value {
    json!({ "jsonrpc": "2.0", "result": { "status": "OK", "subId": sub_id }, "id": id })
}

impl Connection {
    /// Answers one JSON-RPC message: the reply first, then any current-state notifications.
    async fn handle(&mut self, text: &str) -> Vec<Value> {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return vec![error_reply(Value::Null, -32700, "parse error")];
        };
        let id = message.get("id").cloned().unwrap_or(Value::Null);
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let Some(sub_id) = params
            .get("subId")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return vec![error_reply(id, -32602, "params.subId is required")];
        };
        match method {
            "subscribe" => self.subscribe(id, sub_id, &params).await,
            "unsubscribe" => {
                self.subs.remove(&sub_id);
                vec![ok_reply(id, &sub_id)]
            }
            _ => vec![error_reply(id, -32601, "method not found")],
        }
    }

    async fn subscribe(&mut self, id: Value, sub_id: String, params: &Value) -> Vec<Value> {
        let Some(mint) = self.mint.upgrade() else {
            return vec![error_reply(id, -32000, "mint is shutting down")];
        };
        if self.subs.len() >= self.max_subs && !self.subs.contains_key(&sub_id) {
            return vec![error_reply(id, -32000, "too many subscriptions")];
        }
        let kind: Option<Kind> = params
            .get("kind")
            .and_then(|k| serde_json::from_value(k.clone()).ok());
        let filters: Vec<String> = params
            .get("filters")
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default();
        if filters.len() > MAX_FILTERS {
            return vec![error_reply(id, -32602, "too many filters")];
        }
        let mut out = Vec::new();
        match kind {
            Some(Kind::Bolt11MintQuote) => {
                out.push(ok_reply(id, &sub_id));
                for quote_id in &filters {
                    if let Ok(quote) = mint.mint_quote(quote_id).await {
                        out.push(notification(&sub_id, json!(quote)));
                    }
                }
                self.subs
                    .insert(sub_id, Filters::Quotes(filters.into_iter().collect()));
            }
            Some(Kind::ProofState) => {
                let mut ys = Vec::with_capacity(filters.len());
                for filter in &filters {
                    match PublicKey::from_hex(filter) {
                        Ok(y) => ys.push(y),
                        Err(_) => return vec![error_reply(id, -32602, "filter is not a Y point")],
                    }
                }
                out.push(ok_reply(id, &sub_id));
                if let Ok(states) = mint.check_state(CheckStateRequest { ys: ys.clone() }).await {
                    for state in states.states {
                        out.push(notification(&sub_id, json!(state)));
                    }
                }
                self.subs.insert(
                    sub_id,
                    Filters::Proofs(ys.iter().map(PublicKey::to_bytes).collect()),
                );
            }
            _ => out.push(error_reply(id, -32602, "unsupported subscription kind")),
        }
        out
    }

    fn notifications(&self, event: &MintEvent) -> Vec<Value> {
        let mut out = Vec::new();
        for (sub_id, filters) in &self.subs {
            match (event, filters) {
                (MintEvent::MintQuote(quote), Filters::Quotes(ids))
                    if ids.contains(&quote.quote) =>
                {
                    out.push(notification(sub_id, json!(quote)));
                }
                (MintEvent::ProofState(state), Filters::Proofs(ys))
                    if ys.contains(&state.y.to_bytes()) =>
                {
                    out.push(notification(sub_id, json!(state)));
                }
                _ => {}
            }
        }
        out
    }
}
