//! A Core Lightning stand-in: lightningd's JSON-RPC over a Unix socket (JSON objects
//! followed by a blank line, as cln-rpc frames them), answering the calls cdk-cln makes to
//! receive: `invoice`, `listinvoices`, `waitanyinvoice`. Any other method (paying, say)
//! is refused and recorded.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::{Held, Ledger};

/// A running Core Lightning stand-in.
#[derive(Debug)]
pub struct Cln {
    /// The `lightning-rpc` socket.
    pub socket: PathBuf,
    /// The invoices.
    pub ledger: Arc<Ledger>,
    /// Methods called that the stand-in does not serve (must stay empty).
    pub refused: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Cln {
    /// Starts listening on a socket in a fresh temporary directory.
    pub async fn start() -> Cln {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("lightning-rpc");
        let listener = UnixListener::bind(&socket).expect("bind socket");
        let ledger = Ledger::new();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (l, r) = (Arc::clone(&ledger), Arc::clone(&refused));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&l), Arc::clone(&r)));
            }
        });
        Cln {
            socket,
            ledger,
            refused,
            _dir: dir,
            task,
        }
    }

    /// Stops answering (the socket file stays, like a crashed lightningd's).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Cln {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: UnixStream, ledger: Arc<Ledger>, refused: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let frame: Vec<u8> = buffer.drain(..end + 2).collect();
        let Ok(request) = serde_json::from_slice::<Value>(&frame[..end]) else {
            return;
        };
        let id = request["id"].clone();
        let method = request["method"].as_str().unwrap_or_default().to_string();
        let answer = match answer(&ledger, &method, &request["params"]).await {
            Some(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            None => {
                refused.lock().push(method.clone());
                json!({"jsonrpc": "2.0", "id": id,
                       "error": {"code": -32601, "message": format!("Unknown command '{method}'")}})
            }
        };
        let mut bytes = serde_json::to_vec(&answer).expect("json");
        bytes.extend_from_slice(b"\n\n");
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// An amount as lightningd takes it: a number of msat, or a string like `"21000msat"`.
fn msat(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str()?.strip_suffix("msat")?.parse().ok())
}

fn invoice_json(held: &Held) -> Value {
    let mut invoice = json!({
        "label": format!("standin-{}", held.add_index),
        "bolt11": held.bolt11,
        "payment_hash": held.hash_hex(),
        "amount_msat": held.amount_msat,
        "status": if held.settle_index.is_some() { "paid" } else { "unpaid" },
        "description": held.memo,
        "expires_at": held.expires_at,
        "created_index": held.add_index,
    });
    if let Some(index) = held.settle_index {
        invoice["pay_index"] = json!(index);
        invoice["amount_received_msat"] = json!(held.amount_msat);
        invoice["paid_at"] = json!(held.settled_at);
        invoice["payment_preimage"] = json!(hex::encode(held.preimage));
    }
    invoice
}

async fn answer(ledger: &Ledger, method: &str, params: &Value) -> Option<Value> {
    Some(match method {
        "invoice" => {
            let amount = msat(&params["amount_msat"])?;
            let memo = params["description"].as_str().unwrap_or_default();
            let expiry = params["expiry"].as_u64().unwrap_or(604_800);
            let held = ledger.create(amount, memo, expiry);
            json!({
                "bolt11": held.bolt11,
                "payment_hash": held.hash_hex(),
                "payment_secret": hex::encode(rand::random::<[u8; 32]>()),
                "expires_at": held.expires_at,
                "created_index": held.add_index,
            })
        }
        "listinvoices" => {
            let wanted = params["payment_hash"].as_str();
            let invoices: Vec<Value> = ledger
                .all()
                .iter()
                .filter(|h| wanted.is_none_or(|w| w == h.hash_hex()))
                .map(invoice_json)
                .collect();
            json!({ "invoices": invoices })
        }
        // lightningd: without lastpay_index, the first paid invoice (pay_index 1).
        "waitanyinvoice" => {
            let after = params["lastpay_index"].as_u64().unwrap_or(0);
            invoice_json(&ledger.next_settled(after).await)
        }
        _ => return None,
    })
}
