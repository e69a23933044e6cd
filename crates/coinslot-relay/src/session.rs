//! One websocket connection: NIP-01 `EVENT`, `REQ`, `CLOSE`, NIP-45 `COUNT` and NIP-42
//! `AUTH`, with the write path going through the [`Cashier`](crate::Cashier).
//!
//! The relay sends an `AUTH` challenge as soon as the connection opens; authenticating is
//! only needed to pay from a prepaid balance. Messages of one connection are handled in
//! order; live events from other connections are forwarded between them.

use std::collections::{HashMap, HashSet};

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use governor::RateLimiter;
use nostr_sdk::prelude::*;
use tokio::sync::broadcast::error::RecvError;

use crate::payment::{Charged, Refused};
use crate::PaidRelay;

/// Pubkeys one connection may authenticate as.
const MAX_AUTHED: usize = 16;

/// Runs one connection until the client leaves.
pub(crate) async fn run(relay: PaidRelay, socket: WebSocket) {
    let _counted = relay.session_started();
    let mut closing = relay.closing();
    if *closing.borrow_and_update() {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let mut live = relay.subscribe_live();
    let messages = crate::per_minute(relay.config().messages_per_minute).map(RateLimiter::direct);
    let mut session = Session::new(relay);
    let hello = RelayMessage::auth(session.challenge.clone()).as_json();
    if sink.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    loop {
        let replies = tokio::select! {
            _ = closing.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(_))) if messages.as_ref().is_some_and(|m| m.check().is_err()) => {
                    let most = session.relay.config().messages_per_minute;
                    vec![RelayMessage::notice(format!(
                        "rate-limited: at most {most} messages a minute on one connection"
                    ))
                    .as_json()]
                }
                Some(Ok(Message::Text(text))) => session.handle(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => {
                    vec![RelayMessage::notice("invalid: binary messages are not supported").as_json()]
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Vec::new(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            event = live.recv() => match event {
                Ok(event) => session.matching(&event),
                Err(RecvError::Lagged(missed)) => vec![RelayMessage::notice(format!(
                    "error: this connection was too slow and missed {missed} live events"
                ))
                .as_json()],
                Err(RecvError::Closed) => break,
            },
        };
        for reply in replies {
            if sink.send(Message::Text(reply.into())).await.is_err() {
                return;
            }
        }
    }
}

/// One connection's state: its NIP-42 challenge and identities, and its subscriptions.
/// [`PaidRelay::session`] makes one to drive a connection over another transport (or a
/// fuzzer); the websocket handler uses the same.
pub struct Session {
    relay: PaidRelay,
    challenge: String,
    authed: HashSet<PublicKey>,
    subscriptions: HashMap<SubscriptionId, Vec<Filter>>,
}

impl Session {
    pub(crate) fn new(relay: PaidRelay) -> Self {
        Self {
            relay,
            challenge: crate::nip42::challenge(),
            authed: HashSet::new(),
            subscriptions: HashMap::new(),
        }
    }

    /// This connection's NIP-42 challenge (the relay sends it as `["AUTH", challenge]`).
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Answers one client message (zero or more relay messages, in order). Rates per
    /// connection are the transport's to enforce; rates per author apply here.
    pub async fn handle(&mut self, text: &str) -> Vec<String> {
        let message = match ClientMessage::from_json(text) {
            Ok(message) => message,
            Err(e) => {
                return vec![RelayMessage::notice(format!(
                    "invalid: not a nostr client message: {e}"
                ))
                .as_json()]
            }
        };
        match message {
            ClientMessage::Event(event) => vec![self.event(event.into_owned()).await.as_json()],
            ClientMessage::Req {
                subscription_id,
                filters,
            } => {
                let filters = filters.into_iter().map(|f| f.into_owned()).collect();
                self.req(subscription_id.into_owned(), filters).await
            }
            ClientMessage::Count {
                subscription_id,
                filter,
            } => vec![self
                .count(subscription_id.into_owned(), filter.into_owned())
                .await
                .as_json()],
            ClientMessage::Close(subscription_id) => {
                self.subscriptions.remove(subscription_id.as_ref());
                Vec::new()
            }
            ClientMessage::Auth(event) => vec![self.auth(event.into_owned()).await.as_json()],
            ClientMessage::NegOpen { .. }
            | ClientMessage::NegMsg { .. }
            | ClientMessage::NegClose { .. } => {
                vec![RelayMessage::notice("unsupported: negentropy (NIP-77)").as_json()]
            }
        }
    }

    async fn event(&mut self, event: Event) -> RelayMessage<'static> {
        let relay = self.relay.clone();
        let id = event.id;
        let refuse = |message: String| {
            relay.count_refused();
            RelayMessage::ok(id, false, message)
        };
        if event.verify().is_err() {
            return refuse("invalid: the event id or signature is wrong".into());
        }
        if event.kind == Kind::Authentication {
            return refuse("invalid: AUTH events go in an AUTH message".into());
        }
        let horizon = Timestamp::now().as_secs() + relay.config().max_future_secs;
        if event.created_at.as_secs() > horizon {
            return refuse("invalid: created_at is too far in the future".into());
        }
        if event.is_expired() {
            return refuse("invalid: the event has expired (NIP-40)".into());
        }
        // Known events cost nothing: checked before any payment is taken.
        match relay.database().check_id(&id).await {
            Ok(DatabaseEventStatus::Saved) => {
                return RelayMessage::ok(id, true, "duplicate: already have this event")
            }
            Ok(DatabaseEventStatus::Deleted) => {
                return refuse("blocked: this event was deleted".into())
            }
            Ok(DatabaseEventStatus::NotExistent) => {}
            Err(e) => {
                tracing::error!(target: "coinslot::relay", error = %e, "event store");
                return refuse("error: the relay cannot store events right now".into());
            }
        }
        // After the signature and duplicate checks: nobody spends another's allowance.
        if !relay.author_within_rate(&event.pubkey) {
            let most = relay.config().events_per_minute;
            return refuse(format!(
                "rate-limited: at most {most} events a minute from one author"
            ));
        }
        let Some(_writing) = relay.begin_write(id) else {
            return refuse("error: this event is being written right now; try again".into());
        };
        let authed = self.authed.get(&event.pubkey);
        let charged = match relay.cashier().charge(&event, authed).await {
            Ok(charged) => charged,
            Err(Refused(message)) => return refuse(message),
        };
        if event.kind.is_ephemeral() {
            relay.count_accepted(charged.price);
            relay.publish_live(event);
            return RelayMessage::ok(id, true, paid_message(&relay, &charged));
        }
        let refused_after_payment = match relay.database().save_event(&event).await {
            Ok(SaveEventStatus::Success) => {
                relay.count_accepted(charged.price);
                relay.publish_live(event);
                return RelayMessage::ok(id, true, paid_message(&relay, &charged));
            }
            Ok(SaveEventStatus::Rejected(RejectedReason::Duplicate)) => None,
            Ok(SaveEventStatus::Rejected(reason)) => Some(match reason {
                RejectedReason::Deleted => "blocked: this event was deleted",
                RejectedReason::Expired => "invalid: the event has expired",
                RejectedReason::Replaced => "duplicate: a newer version of this event is stored",
                RejectedReason::InvalidDelete => "invalid: only the author may delete an event",
                _ => "invalid: the relay does not keep this event",
            }),
            Err(e) => {
                tracing::error!(target: "coinslot::relay", error = %e, "event store");
                Some("error: the relay cannot store events right now")
            }
        };
        // Paid but not stored: the price goes back to the author's balance.
        let unit = &relay.cashier().prices().unit;
        let refunded = match relay
            .cashier()
            .refund(&event.pubkey, event.kind, charged.price)
            .await
        {
            Ok(()) => format!("; the {} {unit} went back to your balance", charged.price),
            Err(e) => {
                tracing::error!(target: "coinslot::relay", error = %e, price = charged.price, "cannot refund a write");
                String::new()
            }
        };
        match refused_after_payment {
            None => RelayMessage::ok(
                id,
                true,
                format!("duplicate: already have this event{refunded}"),
            ),
            Some(why) => refuse(format!("{why}{refunded}")),
        }
    }

    async fn req(&mut self, id: SubscriptionId, filters: Vec<Filter>) -> Vec<String> {
        let config = self.relay.config();
        if filters.len() > config.max_filters {
            let why = format!("invalid: at most {} filters per REQ", config.max_filters);
            return vec![RelayMessage::closed(id, why).as_json()];
        }
        if !self.subscriptions.contains_key(&id)
            && self.subscriptions.len() >= config.max_subscriptions
        {
            let why = format!(
                "blocked: at most {} subscriptions per connection",
                config.max_subscriptions
            );
            return vec![RelayMessage::closed(id, why).as_json()];
        }
        let mut replies = Vec::new();
        let mut seen = HashSet::new();
        for filter in &filters {
            let mut stored = filter.clone();
            stored.limit = Some(filter.limit.unwrap_or(usize::MAX).min(config.max_limit));
            match self.relay.database().query(stored).await {
                Ok(events) => {
                    for event in events {
                        if seen.insert(event.id) {
                            replies.push(RelayMessage::event(id.clone(), event).as_json());
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(target: "coinslot::relay", error = %e, "event store");
                    let why = "error: the relay cannot read events right now";
                    return vec![RelayMessage::closed(id, why).as_json()];
                }
            }
        }
        replies.push(RelayMessage::eose(id.clone()).as_json());
        self.subscriptions.insert(id, filters);
        replies
    }

    async fn count(&self, id: SubscriptionId, filter: Filter) -> RelayMessage<'static> {
        match self.relay.database().count(filter).await {
            Ok(count) => RelayMessage::count(id, count),
            Err(e) => {
                tracing::error!(target: "coinslot::relay", error = %e, "event store");
                RelayMessage::closed(id, "error: the relay cannot count events right now")
            }
        }
    }

    async fn auth(&mut self, event: Event) -> RelayMessage<'static> {
        let id = event.id;
        if let Err(why) = self.check_auth(&event) {
            return RelayMessage::ok(id, false, format!("invalid: {why}"));
        }
        if !self.authed.contains(&event.pubkey) && self.authed.len() >= MAX_AUTHED {
            let why = format!("blocked: at most {MAX_AUTHED} pubkeys per connection");
            return RelayMessage::ok(id, false, why);
        }
        self.authed.insert(event.pubkey);
        let cashier = self.relay.cashier();
        match cashier.balance(&event.pubkey).await {
            Ok(balance) => RelayMessage::ok(
                id,
                true,
                format!("authenticated; balance {balance} {}", cashier.prices().unit),
            ),
            Err(_) => RelayMessage::ok(id, true, "authenticated"),
        }
    }

    /// NIP-42: a signed kind 22242 event with this connection's challenge, naming this
    /// relay, made recently.
    fn check_auth(&self, event: &Event) -> Result<(), String> {
        crate::nip42::check(
            event,
            &self.challenge,
            self.relay.auth_host(),
            self.relay.config().auth_window_secs,
        )
    }

    /// `EVENT` messages for the subscriptions `event` matches.
    fn matching(&self, event: &Event) -> Vec<String> {
        self.subscriptions
            .iter()
            .filter(|(_, filters)| {
                filters
                    .iter()
                    .any(|filter| filter.match_event(event, MatchEventOptions::new()))
            })
            .map(|(id, _)| RelayMessage::event(id.clone(), event.clone()).as_json())
            .collect()
    }
}

fn paid_message(relay: &PaidRelay, charged: &Charged) -> String {
    if charged.price == 0 && charged.deposited == 0 {
        return String::new();
    }
    let unit = &relay.cashier().prices().unit;
    format!(
        "paid {} {unit}; balance {} {unit}",
        charged.price, charged.balance
    )
}
