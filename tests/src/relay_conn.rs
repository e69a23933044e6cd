//! A raw nostr client for the relay tests: one websocket, read message by message, speaking
//! NIP-01 and NIP-42 as a nostr client does (JSON arrays on the wire).
#![allow(clippy::unwrap_used)] // test support: a failure is the test's

use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use nostr_sdk::prelude::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A nostr client connection, read message by message.
pub struct Conn {
    socket: Socket,
    /// The relay's NIP-42 challenge (empty for a relay that sent none).
    pub challenge: String,
}

impl Conn {
    /// Connects to a relay that greets with a NIP-42 challenge.
    ///
    /// # Errors
    /// When it cannot connect or the first message is not `AUTH`.
    pub async fn open(url: &str) -> Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        let mut conn = Self {
            socket,
            challenge: String::new(),
        };
        // The relay greets with its NIP-42 challenge.
        let hello = conn.next().await?;
        if hello[0] != "AUTH" {
            bail!("expected an AUTH challenge first, got {hello}");
        }
        conn.challenge = hello[1].as_str().context("challenge")?.to_string();
        Ok(conn)
    }

    /// Connects to a relay that sends nothing first (no NIP-42 challenge).
    ///
    /// # Errors
    /// When it cannot connect.
    pub async fn open_plain(url: &str) -> Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self {
            socket,
            challenge: String::new(),
        })
    }

    /// Sends one message.
    ///
    /// # Errors
    /// When the connection is gone.
    pub async fn send(&mut self, message: Value) -> Result<()> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await?;
        Ok(())
    }

    /// The next text message (at most 15 s away).
    ///
    /// # Errors
    /// When none comes, the connection closes, or it is not JSON.
    pub async fn next(&mut self) -> Result<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.socket.next())
                .await
                .context("no message from the relay in 15 s")?
                .context("the relay closed the connection")??;
            if let Message::Text(text) = message {
                return Ok(serde_json::from_str(&text)?);
            }
        }
    }

    /// Sends `message` and waits for the `OK` about `id`: (accepted, message).
    ///
    /// # Errors
    /// As [`Conn::next`].
    pub async fn ok_for(&mut self, message: Value, id: EventId) -> Result<(bool, String)> {
        self.send(message).await?;
        loop {
            let reply = self.next().await?;
            if reply[0] == "OK" && reply[1] == id.to_hex() {
                return Ok((
                    reply[2].as_bool().context("OK status")?,
                    reply[3].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }

    /// Sends `event`; its `OK`: (accepted, message).
    ///
    /// # Errors
    /// As [`Conn::next`].
    pub async fn publish(&mut self, event: &Event) -> Result<(bool, String)> {
        self.ok_for(json!(["EVENT", event]), event.id).await
    }

    /// Answers the challenge as `keys` for the relay at `relay`; its `OK`.
    ///
    /// # Errors
    /// As [`Conn::next`], or when `relay` is not a relay URL.
    pub async fn auth(&mut self, keys: &Keys, relay: &str) -> Result<(bool, String)> {
        let event = EventBuilder::auth(self.challenge.clone(), RelayUrl::parse(relay)?)
            .sign_with_keys(keys)?;
        self.ok_for(json!(["AUTH", event]), event.id).await
    }

    /// Stored events for `filter` (until EOSE); the subscription stays open.
    ///
    /// # Errors
    /// As [`Conn::next`], or when the relay closes the subscription.
    pub async fn req(&mut self, sub: &str, filter: Value) -> Result<Vec<Event>> {
        self.send(json!(["REQ", sub, filter])).await?;
        let mut events = Vec::new();
        loop {
            let reply = self.next().await?;
            match reply[0].as_str() {
                Some("EVENT") if reply[1] == sub => {
                    events.push(Event::from_json(reply[2].to_string())?)
                }
                Some("EOSE") if reply[1] == sub => return Ok(events),
                Some("CLOSED") if reply[1] == sub => bail!("subscription closed: {reply}"),
                _ => {}
            }
        }
    }
}

/// A kind-1 note by `keys`, paying with `token` in a `cashu` tag if given.
///
/// # Panics
/// When the note cannot be signed.
pub fn note(keys: &Keys, text: &str, token: Option<&str>) -> Event {
    let mut builder = EventBuilder::text_note(text);
    if let Some(token) = token {
        builder = builder.tag(Tag::parse(["cashu", token]).unwrap());
    }
    builder.sign_with_keys(keys).unwrap()
}
