//! An LND stand-in: the `lnrpc.Lightning` gRPC calls cdk-lnd makes to receive
//! (`AddInvoice`, `LookupInvoice`, `SubscribeInvoices`), over TLS with a self-signed
//! certificate, checking the macaroon LND-style (hex in the `macaroon` metadata).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::{Held, Ledger};

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod lnrpc {
    tonic::include_proto!("lnrpc");
}

use lnrpc::invoice::InvoiceState;
use lnrpc::lightning_server::{Lightning, LightningServer};

/// A running LND stand-in.
#[derive(Debug)]
pub struct Lnd {
    /// `127.0.0.1:port`.
    pub address: String,
    /// The node's `tls.cert` (PEM).
    pub cert_file: PathBuf,
    /// A macaroon the node accepts.
    pub macaroon_file: PathBuf,
    /// The invoices.
    pub ledger: Arc<Ledger>,
    /// Every gRPC method called, in order (to show nothing but receiving was asked).
    pub calls: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Node {
    ledger: Arc<Ledger>,
    macaroon: String,
}

impl Lnd {
    /// Starts on `127.0.0.1:0` with a fresh certificate and macaroon.
    pub async fn start() -> Lnd {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("certificate");
        let cert_pem = cert.cert.pem();
        let key_pem = cert.key_pair.serialize_pem();
        let cert_file = dir.path().join("tls.cert");
        std::fs::write(&cert_file, &cert_pem).expect("write cert");
        let macaroon: [u8; 32] = rand::random();
        let macaroon_file = dir.path().join("invoice.macaroon");
        std::fs::write(&macaroon_file, macaroon).expect("write macaroon");

        let ledger = Ledger::new();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let node = Node {
            ledger: Arc::clone(&ledger),
            macaroon: hex::encode(macaroon),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let recorded = Arc::clone(&calls);
        let record = tower::util::MapRequestLayer::new(move |request: http::Request<_>| {
            recorded.lock().push(request.uri().path().to_string());
            request
        });
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
        let server = Server::builder()
            .tls_config(tls)
            .expect("tls")
            .layer(record)
            .add_service(LightningServer::new(node));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = server.serve_with_incoming(incoming).await;
        });
        Lnd {
            address,
            cert_file,
            macaroon_file,
            ledger,
            calls,
            _dir: dir,
            task,
        }
    }
}

impl Drop for Lnd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Node {
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let given = request
            .metadata()
            .get("macaroon")
            .and_then(|v| v.to_str().ok());
        if given == Some(self.macaroon.as_str()) {
            Ok(())
        } else {
            Err(Status::unknown(
                "verification failed: signature mismatch after caveat verification",
            ))
        }
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).expect("fits")
}

fn invoice(held: &Held) -> lnrpc::Invoice {
    let settled = held.settle_index.is_some();
    let paid = if settled { held.amount_msat } else { 0 };
    let mut invoice = lnrpc::Invoice {
        memo: held.memo.clone(),
        r_hash: held.hash.to_vec(),
        value: as_i64(held.amount_msat / 1000),
        value_msat: as_i64(held.amount_msat),
        settled,
        creation_date: as_i64(held.created_at),
        settle_date: as_i64(held.settled_at.unwrap_or(0)),
        payment_request: held.bolt11.clone(),
        expiry: as_i64(held.expires_at - held.created_at),
        add_index: held.add_index,
        settle_index: held.settle_index.unwrap_or(0),
        amt_paid_sat: as_i64(paid / 1000),
        amt_paid_msat: as_i64(paid),
        ..Default::default()
    };
    if settled {
        invoice.r_preimage = held.preimage.to_vec();
        invoice.set_state(InvoiceState::Settled);
    }
    invoice
}

type InvoiceStream = Pin<Box<dyn Stream<Item = Result<lnrpc::Invoice, Status>> + Send>>;

#[tonic::async_trait]
impl Lightning for Node {
    async fn add_invoice(
        &self,
        request: Request<lnrpc::Invoice>,
    ) -> Result<Response<lnrpc::AddInvoiceResponse>, Status> {
        self.check(&request)?;
        let asked = request.into_inner();
        let msat = if asked.value_msat > 0 {
            asked.value_msat
        } else {
            asked.value * 1000
        };
        let msat = u64::try_from(msat).map_err(|_| Status::invalid_argument("negative amount"))?;
        let expiry = u64::try_from(asked.expiry).unwrap_or(0);
        let held = self
            .ledger
            .create(msat, &asked.memo, if expiry == 0 { 86_400 } else { expiry });
        Ok(Response::new(lnrpc::AddInvoiceResponse {
            r_hash: held.hash.to_vec(),
            payment_request: held.bolt11,
            add_index: held.add_index,
            payment_addr: rand::random::<[u8; 32]>().to_vec(),
        }))
    }

    async fn lookup_invoice(
        &self,
        request: Request<lnrpc::PaymentHash>,
    ) -> Result<Response<lnrpc::Invoice>, Status> {
        self.check(&request)?;
        let hash: [u8; 32] = request
            .into_inner()
            .r_hash
            .try_into()
            .map_err(|_| Status::invalid_argument("payment hash must be 32 bytes"))?;
        match self.ledger.get(&hash) {
            Some(held) => Ok(Response::new(invoice(&held))),
            None => Err(Status::not_found("unable to locate invoice")),
        }
    }

    type SubscribeInvoicesStream = InvoiceStream;

    async fn subscribe_invoices(
        &self,
        request: Request<lnrpc::InvoiceSubscription>,
    ) -> Result<Response<InvoiceStream>, Status> {
        self.check(&request)?;
        let after = request.into_inner().settle_index;
        // LND: settle_index > 0 replays the invoices settled after it, then goes live.
        let live = tokio_stream::wrappers::BroadcastStream::new(self.ledger.subscribe())
            .filter_map(|held| async move { held.ok() });
        let backlog: Vec<Held> = if after > 0 {
            self.ledger
                .all()
                .into_iter()
                .filter(|h| h.settle_index.is_some_and(|i| i > after))
                .collect()
        } else {
            Vec::new()
        };
        let stream = futures::stream::iter(backlog)
            .chain(live)
            .map(|held| Ok(invoice(&held)));
        Ok(Response::new(Box::pin(stream)))
    }
}
