//! NIP-42: a connection's challenge and the check of the `AUTH` event that answers it.

use nostr_sdk::prelude::*;
use rand::RngCore;

/// A fresh challenge for a connection.
pub(crate) fn challenge() -> String {
    let mut challenge = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut challenge);
    hex::encode(challenge)
}

/// Whether `event` answers `challenge`: signed, kind 22242, with the challenge and a relay
/// tag (naming `host`, when one is set), made within `window_secs` of now.
pub(crate) fn check(
    event: &Event,
    challenge: &str,
    host: Option<&str>,
    window_secs: u64,
) -> Result<(), String> {
    event
        .verify()
        .map_err(|_| "the event id or signature is wrong".to_string())?;
    if event.kind != Kind::Authentication {
        return Err("an AUTH event has kind 22242".into());
    }
    if !names(event, challenge) {
        return Err("the challenge tag does not match this connection's".into());
    }
    let relay = match event.tags.find_standardized(TagKind::Relay) {
        Some(TagStandard::Relay(url)) => url,
        _ => return Err("the relay tag is missing".into()),
    };
    if let Some(host) = host {
        if relay.host().map(|h| h.to_string()).as_deref() != Some(host) {
            return Err(format!("the relay tag names another relay than {host}"));
        }
    }
    let now = Timestamp::now().as_secs();
    if event.created_at.as_secs().abs_diff(now) > window_secs {
        return Err(format!(
            "created_at is more than {window_secs} s away from now"
        ));
    }
    Ok(())
}

/// Whether `event`'s challenge tag is `challenge` (the event answers it, rightly or not).
pub(crate) fn names(event: &Event, challenge: &str) -> bool {
    matches!(
        event.tags.find_standardized(TagKind::Challenge),
        Some(TagStandard::Challenge(answered)) if answered == challenge
    )
}
