//! NIP-87, ecash mint discoverability: the mint's kind 38172 announcement and the kind 38000
//! recommendations people publish about mints.
//!
//! A Cashu mint announcement is addressable: `d` is the mint's NUT-06 `pubkey`, so a newer
//! event from the same author replaces the older one on every relay. A recommendation points
//! at it with `k` = `38172`, the same `d`, and an `a` coordinate `38172:<author>:<d>`.

use nostr_sdk::prelude::*;
use serde_json::Value;

/// Kind 38172: a Cashu mint announces itself.
pub const CASHU_MINT_ANNOUNCEMENT: Kind = Kind::Custom(38172);
/// Kind 38000: a user recommends an ecash mint.
pub const MINT_RECOMMENDATION: Kind = Kind::Custom(38000);

/// An event that is not what it claims to be; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NIP-87: {0}")]
pub struct Nip87Error(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, Nip87Error> {
    Err(Nip87Error(message.into()))
}

/// What a kind 38172 event says about a Cashu mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintAnnouncement {
    /// The mint's NUT-06 `pubkey` (compressed, hex): the `d` tag.
    pub mint_pubkey: String,
    /// Where wallets reach it over HTTP: the `u` tags.
    pub urls: Vec<String>,
    /// The NUTs it supports, ascending: the `nuts` tag.
    pub nuts: Vec<u16>,
    /// `mainnet`, `testnet`, `signet` or `regtest`: the `n` tag.
    pub network: String,
    /// Optional kind-0 style metadata (`name`, `about`, ...): the content.
    pub metadata: Option<Value>,
}

impl MintAnnouncement {
    /// The unsigned event; sign it with the mint's identity key.
    pub fn to_builder(&self) -> EventBuilder {
        let content = self
            .metadata
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let nuts = self
            .nuts
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut tags = vec![Tag::identifier(&self.mint_pubkey)];
        tags.extend(self.urls.iter().map(|url| letter_tag(Alphabet::U, url)));
        tags.push(Tag::custom(TagKind::custom("nuts"), [nuts]));
        tags.push(letter_tag(Alphabet::N, &self.network));
        EventBuilder::new(CASHU_MINT_ANNOUNCEMENT, content).tags(tags)
    }

    /// Reads a kind 38172 event; the signature is not checked here.
    pub fn from_event(event: &Event) -> Result<Self, Nip87Error> {
        if event.kind != CASHU_MINT_ANNOUNCEMENT {
            return fail(format!(
                "kind {} is not a Cashu mint announcement",
                event.kind
            ));
        }
        let Some(mint_pubkey) = event.tags.identifier() else {
            return fail("the announcement has no `d` tag (the mint pubkey)");
        };
        let urls = tag_values(event, "u");
        let nuts = match first_value(event, "nuts") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|nut| !nut.trim().is_empty())
                .map(|nut| {
                    nut.trim()
                        .parse::<u16>()
                        .map_err(|_| Nip87Error(format!("`nuts` lists `{nut}`, not a number")))
                })
                .collect::<Result<_, _>>()?,
        };
        let network = first_value(event, "n").unwrap_or("mainnet").to_string();
        let metadata = match event.content.trim() {
            "" => None,
            text => Some(
                serde_json::from_str(text)
                    .map_err(|e| Nip87Error(format!("content is not JSON metadata: {e}")))?,
            ),
        };
        Ok(Self {
            mint_pubkey: mint_pubkey.to_string(),
            urls,
            nuts,
            network,
            metadata,
        })
    }

    /// The coordinate (`38172:<author>:<d>`) recommendations point at.
    pub fn coordinate(&self, author: PublicKey) -> Coordinate {
        Coordinate::new(CASHU_MINT_ANNOUNCEMENT, author).identifier(&self.mint_pubkey)
    }
}

/// What a kind 38000 event says about a Cashu mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendation {
    /// The recommended mint's NUT-06 `pubkey`: the `d` tag.
    pub mint_pubkey: String,
    /// Ways to reach the mint the recommender suggests: the `u` tags.
    pub urls: Vec<String>,
    /// The mint's announcement, when the recommender names it: the `a` tag.
    pub announcement: Option<Coordinate>,
    /// A relay where that announcement can be found (the `a` tag's hint).
    pub relay_hint: Option<String>,
    /// Free text ("I trust this mint with my life").
    pub comment: String,
}

impl Recommendation {
    /// The unsigned event; the recommender signs it.
    pub fn to_builder(&self) -> EventBuilder {
        let mut tags = vec![
            letter_tag(Alphabet::K, &CASHU_MINT_ANNOUNCEMENT.as_u16().to_string()),
            Tag::identifier(&self.mint_pubkey),
        ];
        tags.extend(self.urls.iter().map(|url| letter_tag(Alphabet::U, url)));
        if let Some(coordinate) = &self.announcement {
            let mut values = vec!["a".to_string(), coordinate.to_string()];
            values.extend(self.relay_hint.clone());
            if let Ok(tag) = Tag::parse(values) {
                tags.push(tag);
            }
        }
        EventBuilder::new(MINT_RECOMMENDATION, &self.comment).tags(tags)
    }

    /// Reads a kind 38000 event about a Cashu mint (`k` = 38172); the signature is not
    /// checked here.
    pub fn from_event(event: &Event) -> Result<Self, Nip87Error> {
        if event.kind != MINT_RECOMMENDATION {
            return fail(format!("kind {} is not a recommendation", event.kind));
        }
        let recommended = CASHU_MINT_ANNOUNCEMENT.as_u16().to_string();
        if first_value(event, "k") != Some(recommended.as_str()) {
            return fail("the recommendation is not about a Cashu mint (`k` is not 38172)");
        }
        let Some(mint_pubkey) = event.tags.identifier() else {
            return fail("the recommendation has no `d` tag (the mint pubkey)");
        };
        let a_tag = event
            .tags
            .iter()
            .find(|tag| tag.as_slice().first().map(String::as_str) == Some("a"));
        let (announcement, relay_hint) = match a_tag.map(Tag::as_slice) {
            Some([_, coordinate, rest @ ..]) => (
                Some(
                    Coordinate::parse(coordinate)
                        .map_err(|e| Nip87Error(format!("`a` tag `{coordinate}`: {e}")))?,
                ),
                rest.first().cloned(),
            ),
            _ => (None, None),
        };
        Ok(Self {
            mint_pubkey: mint_pubkey.to_string(),
            urls: tag_values(event, "u"),
            announcement,
            relay_hint,
            comment: event.content.clone(),
        })
    }

    /// Whether this recommends the mint whose announcement is `coordinate`.
    pub fn is_about(&self, coordinate: &Coordinate) -> bool {
        match &self.announcement {
            Some(named) => named == coordinate,
            None => self.mint_pubkey == coordinate.identifier,
        }
    }
}

/// Filters for the recommendations of the mint announced at `coordinate`: those naming its
/// `d` and those pointing at its announcement.
pub fn recommendation_filters(coordinate: &Coordinate) -> Vec<Filter> {
    let base = Filter::new().kind(MINT_RECOMMENDATION).custom_tag(
        SingleLetterTag::lowercase(Alphabet::K),
        CASHU_MINT_ANNOUNCEMENT.as_u16().to_string(),
    );
    vec![
        base.clone().identifier(&coordinate.identifier),
        base.coordinate(coordinate),
    ]
}

fn letter_tag(letter: Alphabet, value: &str) -> Tag {
    Tag::custom(
        TagKind::SingleLetter(SingleLetterTag::lowercase(letter)),
        [value],
    )
}

fn tag_values(event: &Event, name: &str) -> Vec<String> {
    event
        .tags
        .iter()
        .filter_map(|tag| match tag.as_slice() {
            [kind, value, ..] if kind == name => Some(value.clone()),
            _ => None,
        })
        .collect()
}

fn first_value<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.tags.iter().find_map(|tag| match tag.as_slice() {
        [kind, value, ..] if kind == name => Some(value.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn announcement(keys: &Keys) -> MintAnnouncement {
        MintAnnouncement {
            mint_pubkey: format!("02{}", keys.public_key().to_hex()),
            urls: vec!["https://mint.example".into(), "http://x.onion".into()],
            nuts: vec![1, 2, 3, 4, 6, 7],
            network: "regtest".into(),
            metadata: Some(serde_json::json!({ "name": "Arcade" })),
        }
    }

    #[test]
    fn an_announcement_has_the_nip87_tags_and_reads_back() {
        let keys = Keys::generate();
        let sent = announcement(&keys);
        let event = sent.to_builder().sign_with_keys(&keys).unwrap();
        assert_eq!(event.kind.as_u16(), 38172);
        let tags: Vec<Vec<String>> = event.tags.iter().map(|t| t.clone().to_vec()).collect();
        assert!(tags.contains(&vec!["d".into(), sent.mint_pubkey.clone()]));
        assert!(tags.contains(&vec!["u".into(), "https://mint.example".into()]));
        assert!(tags.contains(&vec!["nuts".into(), "1,2,3,4,6,7".into()]));
        assert!(tags.contains(&vec!["n".into(), "regtest".into()]));
        assert_eq!(MintAnnouncement::from_event(&event).unwrap(), sent);
    }

    #[test]
    fn a_recommendation_points_at_the_announcement() {
        let mint = Keys::generate();
        let coordinate = announcement(&mint).coordinate(mint.public_key());
        let fan = Keys::generate();
        let sent = Recommendation {
            mint_pubkey: coordinate.identifier.clone(),
            urls: vec!["https://mint.example".into()],
            announcement: Some(coordinate.clone()),
            relay_hint: Some("wss://relay.example".into()),
            comment: "fast and fair".into(),
        };
        let event = sent.to_builder().sign_with_keys(&fan).unwrap();
        let read = Recommendation::from_event(&event).unwrap();
        assert_eq!(read, sent);
        assert!(read.is_about(&coordinate));
        let other = announcement(&Keys::generate()).coordinate(fan.public_key());
        assert!(!read.is_about(&other));
        for filter in recommendation_filters(&coordinate) {
            assert!(filter.match_event(&event, Default::default()));
        }
    }

    #[test]
    fn malformed_events_name_the_problem() {
        let keys = Keys::generate();
        let no_d = EventBuilder::new(CASHU_MINT_ANNOUNCEMENT, "")
            .sign_with_keys(&keys)
            .unwrap();
        let err = MintAnnouncement::from_event(&no_d).unwrap_err();
        assert!(err.0.contains("`d` tag"), "{err}");
        let bad_nuts = EventBuilder::new(CASHU_MINT_ANNOUNCEMENT, "")
            .tags([
                Tag::identifier("02ab"),
                Tag::custom(TagKind::custom("nuts"), ["1,x"]),
            ])
            .sign_with_keys(&keys)
            .unwrap();
        let err = MintAnnouncement::from_event(&bad_nuts).unwrap_err();
        assert!(err.0.contains("`x`"), "{err}");
        let fedimint = EventBuilder::new(MINT_RECOMMENDATION, "")
            .tags([letter_tag(Alphabet::K, "38173"), Tag::identifier("fed")])
            .sign_with_keys(&keys)
            .unwrap();
        assert!(Recommendation::from_event(&fedimint).is_err());
    }
}
