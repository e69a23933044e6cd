//! The client side: find mints on nostr (NIP-87) and run mint operations over nostr
//! (NIP-74 after the draft), each request from a fresh key so relays cannot link a wallet's
//! requests to each other or to its owner.

use std::collections::HashMap;
use std::time::Duration;

use nostr_sdk::prelude::*;
use serde_json::{json, Value};

use crate::nip74::{self, Method, Response, Status};
use crate::nip87::{
    MintAnnouncement, Recommendation, CASHU_MINT_ANNOUNCEMENT, MINT_RECOMMENDATION,
};

/// How long [`MintClient::call`] waits for the mint's answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a call over nostr gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A relay URL is not valid or no relay took the request.
    #[error("relay: {0}")]
    Relay(String),
    /// No answer in time (the mint is offline, or not on these relays).
    #[error("no answer from the mint within {0:?}")]
    Timeout(Duration),
    /// The mint refused the operation, with the same code as over HTTP.
    #[error("the mint refused ({code}): {message}")]
    Mint {
        /// The Cashu error code (`"11001"`), or `http_<status>`, `bad_request`, `too_large`.
        code: String,
        /// The mint's explanation.
        message: String,
    },
    /// A request or answer that could not be encoded or decoded.
    #[error("encoding: {0}")]
    Encoding(String),
}

/// Connects to relays for one mint.
#[derive(Debug, Clone)]
pub struct MintClient {
    client: Client,
    mint: PublicKey,
    timeout: Duration,
}

impl MintClient {
    /// A client of the mint whose nostr key is `mint`, through `relays` (`ws://`/`wss://`).
    /// Waits up to a few seconds for the relays to connect; calls retry the rest.
    pub async fn connect<I, S>(relays: I, mint: PublicKey) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let client = connect(relays).await?;
        Ok(Self {
            client,
            mint,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long to wait for each answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The mint's nostr key.
    pub fn mint(&self) -> PublicKey {
        self.mint
    }

    /// Runs `method` with `data` (the HTTP route's JSON body or path parameters) and returns
    /// the mint's answer, the same JSON its HTTP route returns.
    pub async fn call(&self, method: Method, data: Value) -> Result<Value, ClientError> {
        let response = self.request(method, data).await?;
        match response.status {
            Status::Success => Ok(response.data.unwrap_or(Value::Null)),
            Status::Error => {
                let error = response.error.unwrap_or(nip74::ResultError {
                    code: "unknown".into(),
                    message: "the mint gave no reason".into(),
                });
                Err(ClientError::Mint {
                    code: error.code,
                    message: error.message,
                })
            }
        }
    }

    /// Sends one request from a fresh key and waits for its result.
    pub async fn request(&self, method: Method, data: Value) -> Result<Response, ClientError> {
        let keys = Keys::generate();
        let request_id = hex::encode(rand::random::<[u8; 16]>());
        let plain = json!({ "method": method, "request_id": request_id, "data": data }).to_string();
        if plain.len() > nip74::MAX_PLAINTEXT {
            return Err(ClientError::Encoding(format!(
                "the request is {} bytes, more than a nostr event carries (64 KiB)",
                plain.len()
            )));
        }
        let content = nip44::encrypt(keys.secret_key(), &self.mint, plain, nip44::Version::V2)
            .map_err(|e| ClientError::Encoding(e.to_string()))?;
        let event = EventBuilder::new(nip74::REQUEST, content)
            .tag(Tag::public_key(self.mint))
            .sign_with_keys(&keys)
            .map_err(|e| ClientError::Encoding(e.to_string()))?;

        let filter = Filter::new()
            .kind(nip74::RESULT)
            .author(self.mint)
            .pubkey(keys.public_key())
            .event(event.id);
        let mut notifications = self.client.notifications();
        let subscription = self
            .client
            .subscribe(filter, None)
            .await
            .map_err(|e| ClientError::Relay(e.to_string()))?
            .val;
        let answer = async {
            let sent = self
                .client
                .send_event(&event)
                .await
                .map_err(|e| ClientError::Relay(e.to_string()))?;
            if sent.success.is_empty() {
                return Err(ClientError::Relay(format!(
                    "no relay took the request: {:?}",
                    sent.failed
                )));
            }
            loop {
                let notification = match notifications.recv().await {
                    Ok(notification) => notification,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => return Err(ClientError::Relay(e.to_string())),
                };
                let RelayPoolNotification::Event {
                    subscription_id,
                    event: result,
                    ..
                } = notification
                else {
                    continue;
                };
                if subscription_id != subscription || result.pubkey != self.mint {
                    continue;
                }
                let Ok(plain) = nip44::decrypt(keys.secret_key(), &self.mint, &result.content)
                else {
                    continue;
                };
                match serde_json::from_str::<Response>(&plain) {
                    Ok(response) if response.request_id == request_id => return Ok(response),
                    _ => continue,
                }
            }
        };
        let outcome = tokio::time::timeout(self.timeout, answer).await;
        self.client.unsubscribe(&subscription).await;
        outcome.unwrap_or(Err(ClientError::Timeout(self.timeout)))
    }

    /// Closes the relay connections.
    pub async fn shutdown(&self) {
        self.client.shutdown().await;
    }
}

/// A nostr client connected to `relays` (no signer: every event is signed by its caller).
pub async fn connect<I, S>(relays: I) -> Result<Client, ClientError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let client = Client::default();
    for relay in relays {
        client
            .add_relay(relay.as_ref())
            .await
            .map_err(|e| ClientError::Relay(format!("`{}`: {e}", relay.as_ref())))?;
    }
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    Ok(client)
}

/// Which announcements [`discover`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discover {
    /// The announcements signed by this key (a mint's own).
    Author(PublicKey),
    /// The mints this key recommends (its kind 38000 events).
    RecommendedBy(PublicKey),
    /// Every Cashu mint announced on the relays.
    All,
}

/// A mint found on nostr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredMint {
    /// Who signed the announcement.
    pub author: PublicKey,
    /// The announcement's event id.
    pub event_id: EventId,
    /// When it was made.
    pub created_at: Timestamp,
    /// What it says.
    pub announcement: MintAnnouncement,
    /// Whether it was signed by the mint's own key (`d` is `02`/`03` + the author): the
    /// announcement is then the mint's word, not a third party's claim about it.
    pub self_signed: bool,
}

/// Finds Cashu mint announcements (kind 38172) on `client`'s relays; the newest per author
/// and mint, newest first. Malformed or badly signed events are skipped.
pub async fn discover(
    client: &Client,
    query: Discover,
    timeout: Duration,
) -> Result<Vec<DiscoveredMint>, ClientError> {
    let fetch = |filter: Filter| async move {
        client
            .fetch_events(filter, timeout)
            .await
            .map_err(|e| ClientError::Relay(e.to_string()))
    };
    let base = Filter::new().kind(CASHU_MINT_ANNOUNCEMENT);
    let events: Vec<Event> = match query {
        Discover::Author(author) => fetch(base.author(author)).await?.into_iter().collect(),
        Discover::All => fetch(base).await?.into_iter().collect(),
        Discover::RecommendedBy(recommender) => {
            let recommendations =
                fetch(Filter::new().kind(MINT_RECOMMENDATION).author(recommender)).await?;
            let recommended: Vec<Recommendation> = recommendations
                .iter()
                .filter(|event| event.verify().is_ok())
                .filter_map(|event| Recommendation::from_event(event).ok())
                .collect();
            if recommended.is_empty() {
                return Ok(Vec::new());
            }
            let filter = base.identifiers(recommended.iter().map(|r| r.mint_pubkey.clone()));
            fetch(filter)
                .await?
                .into_iter()
                .filter(|event| {
                    recommended.iter().any(|r| match &r.announcement {
                        Some(coordinate) => coordinate.public_key == event.pubkey,
                        None => true,
                    })
                })
                .collect()
        }
    };
    let mut newest: HashMap<(PublicKey, String), DiscoveredMint> = HashMap::new();
    for event in events {
        if event.verify().is_err() {
            continue;
        }
        let Ok(announcement) = MintAnnouncement::from_event(&event) else {
            continue;
        };
        let x_only = event.pubkey.to_hex();
        let self_signed = announcement.mint_pubkey.len() == 66
            && (announcement.mint_pubkey.starts_with("02")
                || announcement.mint_pubkey.starts_with("03"))
            && announcement.mint_pubkey[2..].eq_ignore_ascii_case(&x_only);
        let found = DiscoveredMint {
            author: event.pubkey,
            event_id: event.id,
            created_at: event.created_at,
            announcement,
            self_signed,
        };
        let key = (found.author, found.announcement.mint_pubkey.clone());
        match newest.get(&key) {
            Some(known) if known.created_at >= found.created_at => {}
            _ => {
                newest.insert(key, found);
            }
        }
    }
    let mut found: Vec<DiscoveredMint> = newest.into_values().collect();
    found.sort_by_key(|mint| std::cmp::Reverse(mint.created_at));
    Ok(found)
}
