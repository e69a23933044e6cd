//! A paid front for a relay someone already runs (any NIP-01 relay, in any language):
//! clients connect here, and every connection is joined to one of its own to the relay
//! behind. Writes are charged with the paid relay's rules ([`Cashier`]: a `cashu` tag, or
//! the prepaid balance of an author this connection authenticated with NIP-42) and only
//! then passed on; an unpaid write is answered `OK false` with the price and a payment
//! request, and the relay never sees it. Reads and everything else pass through untouched.
//!
//! The relay's verdict settles each paid write: `OK false` (refused) or `OK true
//! "duplicate: …"` (it had the event already) gives the price back to the author's
//! balance, as does a write the relay had not answered when the connection closed.
//!
//! The front answers `AUTH` events for its own challenge (sent on connect) and passes the
//! others on, so a relay that asks for NIP-42 itself still gets its answer. Limits on
//! subscriptions and filters are the relay's own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::Mint;
use futures::{SinkExt, StreamExt};
use nostr_sdk::prelude::*;
use tokio_tungstenite::tungstenite::Message as UpstreamMessage;

use crate::payment::{Cashier, Refused};
use crate::RelayConfig;

/// The relay behind the front could not be used; the message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrontError(pub String);

/// A paid front for the relay at a `ws://` URL. Cheap to clone.
#[derive(Clone)]
pub struct RelayFront {
    inner: Arc<Inner>,
}

struct Inner {
    cashier: Cashier,
    config: RelayConfig,
    upstream: String,
    auth_host: Option<String>,
    operator: Option<PublicKey>,
}

impl RelayFront {
    /// A front for the relay at `upstream` (`ws://…`), charging writes by `config` (its
    /// prices, `require_lock`, `url` for NIP-42, `auth_window_secs`, `max_message_bytes`
    /// and the NIP-11 name and description; the rest is the relay's business) in ecash of
    /// `mint`, reached at `mint_url`.
    pub fn new(
        mint: Mint,
        mint_url: MintUrl,
        config: RelayConfig,
        upstream: &str,
    ) -> Result<Self, FrontError> {
        let url = RelayUrl::parse(upstream)
            .map_err(|e| FrontError(format!("the relay URL `{upstream}`: {e}")))?;
        if upstream.starts_with("wss://") {
            return Err(FrontError(format!(
                "the relay URL `{upstream}`: use ws:// to a relay on this host or network (the front itself is where TLS ends)"
            )));
        }
        let auth_host = config.auth_host();
        let operator = crate::operator(&mint);
        Ok(Self {
            inner: Arc::new(Inner {
                cashier: Cashier::new(mint, mint_url, config.prices.clone())
                    .require_lock(config.require_lock),
                config,
                upstream: url.to_string(),
                auth_host,
                operator,
            }),
        })
    }

    /// The cashier that takes payment for writes.
    pub fn cashier(&self) -> &Cashier {
        &self.inner.cashier
    }

    /// `GET path`: a websocket (the front), or the NIP-11 document.
    pub fn router(&self, path: &str) -> Router {
        Router::new()
            .route(path, get(connect))
            .with_state(self.clone())
    }

    /// This front's NIP-11 document (the paid relay's, with NIP-42 for the front's AUTH).
    pub fn information(&self) -> serde_json::Value {
        crate::nip11::document(
            &self.inner.config,
            self.inner.cashier.mint_url(),
            self.inner.operator.as_ref(),
        )
    }
}

async fn connect(
    State(front): State<RelayFront>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let wants_nip11 = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(crate::nip11::CONTENT_TYPE));
        if wants_nip11 {
            return (
                [(header::CONTENT_TYPE, crate::nip11::CONTENT_TYPE)],
                front.information().to_string(),
            )
                .into_response();
        }
        return (
            axum::http::StatusCode::UPGRADE_REQUIRED,
            "a nostr relay: connect with a websocket",
        )
            .into_response();
    };
    let max = front.inner.config.max_message_bytes;
    upgrade
        .max_message_size(max)
        .on_upgrade(move |socket| serve(front, socket))
}

/// What to do with a client's message.
enum Step {
    /// Pass it to the relay as it is.
    Forward,
    /// Answer the client; the relay does not see it.
    Answer(String),
}

/// One client connection's state.
struct Connection {
    front: RelayFront,
    challenge: String,
    authed: HashSet<PublicKey>,
    /// Paid writes the relay has not answered: event → (author, price).
    unsettled: HashMap<EventId, (PublicKey, Kind, u64)>,
}

impl Connection {
    async fn client_said(&mut self, text: &str) -> Step {
        match ClientMessage::from_json(text) {
            Ok(ClientMessage::Event(event)) => self.event(event.into_owned()).await,
            Ok(ClientMessage::Auth(event)) => self.auth(event.into_owned()).await,
            // REQ, CLOSE, COUNT, and what the front does not read: the relay's to answer.
            _ => Step::Forward,
        }
    }

    async fn event(&mut self, event: Event) -> Step {
        let id = event.id;
        let refuse = |message: String| Step::Answer(RelayMessage::ok(id, false, message).as_json());
        if event.verify().is_err() {
            return refuse("invalid: the event id or signature is wrong".into());
        }
        if event.kind == Kind::Authentication {
            return refuse("invalid: AUTH events go in an AUTH message".into());
        }
        if self.unsettled.contains_key(&id) {
            return refuse("duplicate: this event is being written already".into());
        }
        let authed = self.authed.get(&event.pubkey);
        match self.front.inner.cashier.charge(&event, authed).await {
            Ok(charged) => {
                if charged.price > 0 {
                    self.unsettled
                        .insert(id, (event.pubkey, event.kind, charged.price));
                }
                tracing::debug!(target: "coinslot::relay", kind = event.kind.as_u16(), price = charged.price, "write paid; passed to the relay");
                Step::Forward
            }
            Err(Refused(message)) => refuse(message),
        }
    }

    async fn auth(&mut self, event: Event) -> Step {
        let config = &self.front.inner.config;
        let checked = crate::nip42::check(
            &event,
            &self.challenge,
            self.front.inner.auth_host.as_deref(),
            config.auth_window_secs,
        );
        // Not an answer to our challenge: perhaps to the relay's own.
        if checked.is_err() && !crate::nip42::names(&event, &self.challenge) {
            return Step::Forward;
        }
        let id = event.id;
        if let Err(why) = checked {
            return Step::Answer(RelayMessage::ok(id, false, format!("invalid: {why}")).as_json());
        }
        self.authed.insert(event.pubkey);
        let cashier = &self.front.inner.cashier;
        let balance = cashier.balance(&event.pubkey).await.unwrap_or(0);
        let message = format!("authenticated; balance {balance} {}", cashier.prices().unit);
        Step::Answer(RelayMessage::ok(id, true, message).as_json())
    }

    /// Reads the relay's answer to a paid write: refused or known already, its price goes
    /// back to the author.
    async fn relay_said(&mut self, text: &str) {
        let Ok(RelayMessage::Ok {
            event_id,
            status,
            message,
        }) = RelayMessage::from_json(text)
        else {
            return;
        };
        let Some((author, kind, price)) = self.unsettled.remove(&event_id) else {
            return;
        };
        let duplicate = message.starts_with("duplicate:");
        if status && !duplicate {
            return;
        }
        tracing::info!(target: "coinslot::relay", price, duplicate, "the relay did not take a paid write; its price goes back");
        self.give_back(&author, kind, price).await;
    }

    async fn give_back(&self, author: &PublicKey, kind: Kind, price: u64) {
        if let Err(err) = self.front.inner.cashier.refund(author, kind, price).await {
            tracing::error!(target: "coinslot::relay", error = %err, price, "could not give a write's price back");
        }
    }

    /// The connection closed: writes the relay never answered are given back.
    async fn close(mut self) {
        for (_, (author, kind, price)) in std::mem::take(&mut self.unsettled) {
            tracing::info!(target: "coinslot::relay", price, "a paid write was not answered before the connection closed; its price goes back");
            self.give_back(&author, kind, price).await;
        }
    }
}

async fn serve(front: RelayFront, client: WebSocket) {
    let (mut to_client, mut from_client) = client.split();
    let upstream = match tokio_tungstenite::connect_async(front.inner.upstream.as_str()).await {
        Ok((upstream, _)) => upstream,
        Err(err) => {
            tracing::warn!(target: "coinslot::relay", upstream = %front.inner.upstream, error = %err, "the relay behind the front cannot be reached");
            let notice = RelayMessage::notice("error: the relay cannot be reached; try later");
            let _ = to_client.send(Message::Text(notice.as_json().into())).await;
            return;
        }
    };
    let (mut to_relay, mut from_relay) = upstream.split();
    let mut connection = Connection {
        challenge: crate::nip42::challenge(),
        front,
        authed: HashSet::new(),
        unsettled: HashMap::new(),
    };
    let hello = RelayMessage::auth(connection.challenge.clone()).as_json();
    if to_client.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            message = from_client.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let sent = match connection.client_said(text.as_str()).await {
                    Step::Forward => to_relay
                        .send(UpstreamMessage::text(text.as_str()))
                        .await
                        .is_ok(),
                    Step::Answer(reply) => to_client.send(Message::Text(reply.into())).await.is_ok(),
                };
                if !sent {
                    break;
                }
            }
            message = from_relay.next() => {
                let text = match message {
                    Some(Ok(UpstreamMessage::Text(text))) => text,
                    Some(Ok(UpstreamMessage::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                connection.relay_said(text.as_str()).await;
                if to_client.send(Message::Text(text.as_str().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_relay.close().await;
    connection.close().await;
}
