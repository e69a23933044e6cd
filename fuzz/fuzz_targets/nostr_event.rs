//! What nostr strangers send: relay messages to the paid relay's connection handler, and
//! mint requests to the mint-over-nostr responder.
//!
//! The first byte picks how the rest is used:
//! - `0`: a raw client message (`["EVENT", …]`, `["REQ", …]`, `["AUTH", …]`, garbage) to a
//!   relay connection;
//! - `1`: an event signed by a fixed key, kind and content from the input, with a
//!   `["cashu", …]` payment tag from the input, sent as `EVENT` (the payment path: random
//!   tokens never pay, so the event is never accepted);
//! - `2`: the input as the plaintext of a NIP-44 encrypted kind 27401 request to the mint
//!   (the request decoder and the mint API behind it);
//! - otherwise: the input as a raw event JSON, to the responder.
//!
//! Never a panic; the relay answers every message it understands; random payments are
//! refused.
#![no_main]

use std::sync::OnceLock;

use coinslot_nostr::nostr_sdk::prelude::*;
use coinslot_nostr::{Responder, ResponderLimits};
use coinslot_relay::{PaidRelay, RelayConfig};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    relay: PaidRelay,
    responder: Responder,
    mint_key: PublicKey,
    author: Keys,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (runtime, (relay, responder)) = coinslot_fuzz::with_mint(|mint| async move {
            let limits = RelayConfig {
                events_per_minute: 0,
                ..RelayConfig::default()
            };
            let url = "http://127.0.0.1:3338".parse().expect("url");
            let relay = PaidRelay::new(mint.clone(), url, limits);
            let keys = Keys::new(
                SecretKey::from_slice(&mint.identity_key().to_secret_bytes()).expect("key"),
            );
            let responder = Responder::new(
                keys,
                coinslot_http::router(mint, Default::default()),
                ResponderLimits {
                    per_pubkey_per_minute: 0,
                    per_minute: 0,
                    ..ResponderLimits::default()
                },
            );
            (relay, responder)
        });
        let mint_key = responder.public_key();
        World {
            runtime,
            relay,
            responder,
            mint_key,
            author: Keys::new(SecretKey::from_slice(&[9; 32]).expect("key")),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let text = String::from_utf8_lossy(rest);
    world.runtime.block_on(async {
        match choice {
            0 => {
                let mut session = world.relay.session();
                let replies = session.handle(&text).await;
                for reply in replies {
                    RelayMessage::from_json(&reply).expect("the relay speaks NIP-01");
                }
            }
            1 => {
                let (head, body) = rest.split_at(rest.len().min(2));
                let kind = u16::from_le_bytes([
                    head.first().copied().unwrap_or(1),
                    head.get(1).copied().unwrap_or(0),
                ]);
                let body = String::from_utf8_lossy(body);
                let (content, token) = body.split_once('\u{0}').unwrap_or((&body, ""));
                let Ok(event) = EventBuilder::new(Kind::from(kind), content)
                    .tag(Tag::custom(TagKind::custom("cashu"), [token]))
                    .sign_with_keys(&world.author)
                else {
                    return;
                };
                let message = ClientMessage::event(event).as_json();
                let replies = world.relay.session().handle(&message).await;
                let [reply] = replies.as_slice() else {
                    panic!("one OK per EVENT, got {replies:?}");
                };
                let accepted = matches!(
                    RelayMessage::from_json(reply).expect("NIP-01"),
                    RelayMessage::Ok { status: true, .. }
                );
                let free = world.relay.cashier().prices().of(Kind::from(kind)) == 0;
                assert!(!accepted || free, "a random token paid: {reply}");
            }
            2 => {
                let Ok(content) = nip44::encrypt(
                    world.author.secret_key(),
                    &world.mint_key,
                    text.as_bytes(),
                    nip44::Version::V2,
                ) else {
                    return;
                };
                let Ok(event) = EventBuilder::new(Kind::from(27401), content)
                    .tag(Tag::public_key(world.mint_key))
                    .sign_with_keys(&world.author)
                else {
                    return;
                };
                let _ = world.responder.answer(&event).await;
            }
            _ => {
                if let Ok(event) = Event::from_json(text.as_bytes()) {
                    let _ = world.responder.answer(&event).await;
                }
            }
        }
    });
});
