//! NUT-00 `cashuB` tokens (V4) in the form wallets send them, read straight from their CBOR.
//!
//! cashu's own decoder goes through serde and ciborium, and normalizes the mint URL with
//! several allocations: about 4% of a paid request's server CPU under load (the profile in
//! BENCHMARKS.md). The plain token (mint URL, unit, an optional memo, then per keyset
//! its id and proofs of amount, secret, `C` and optionally their DLEQ proof, as cdk,
//! Nutshell and cashu-ts wallets send them) is read here without either. Anything else (a
//! witness, NUT-28 keys, unknown fields, indefinite lengths, bad bytes) gives `None`, and the
//! caller decodes it with cashu, which also words the error. The tests compare both on
//! tokens cashu writes.

use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::{alphabet, Engine};

/// Base64url with or without padding, as cashu reads tokens.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A plain V4 token, its fields still as they were sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainToken {
    /// `m`, not normalized.
    pub mint: String,
    /// `u`.
    pub unit: String,
    /// `t`: per keyset (its short id, as sent), its proofs.
    pub keysets: Vec<(Vec<u8>, Vec<PlainProof>)>,
}

/// One proof of a [`PlainToken`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainProof {
    /// `a`.
    pub amount: u64,
    /// `s`.
    pub secret: String,
    /// `c`: the compressed point, not yet parsed.
    pub c: Vec<u8>,
    /// `d`: the DLEQ proof's `e`, `s` and `r`, not yet parsed.
    pub dleq: Option<[Vec<u8>; 3]>,
}

/// The token, if it is a `cashuB` token of the plain form.
pub(crate) fn decode_plain(token: &str) -> Option<PlainToken> {
    let bytes = BASE64.decode(token.strip_prefix("cashuB")?).ok()?;
    let mut cbor = Cbor { bytes: &bytes };
    let token = cbor.token()?;
    cbor.bytes.is_empty().then_some(token)
}

/// A reader of the CBOR subset a plain token uses.
struct Cbor<'a> {
    bytes: &'a [u8],
}

/// CBOR major types.
const UINT: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
/// The one-byte encoding of `null`.
const NULL: u8 = 0xf6;

impl<'a> Cbor<'a> {
    fn token(&mut self) -> Option<PlainToken> {
        let (mut mint, mut unit, mut keysets) = (None, None, None);
        for _ in 0..self.head(MAP)? {
            match self.text()? {
                "m" if mint.is_none() => mint = Some(self.text()?.to_owned()),
                "u" if unit.is_none() => unit = Some(self.text()?.to_owned()),
                "d" => {
                    self.text()?; // the memo: nothing to do with it here
                }
                "t" if keysets.is_none() => keysets = Some(self.list(Self::keyset)?),
                _ => return None,
            }
        }
        Some(PlainToken {
            mint: mint?,
            unit: unit?,
            keysets: keysets?,
        })
    }

    fn keyset(&mut self) -> Option<(Vec<u8>, Vec<PlainProof>)> {
        let (mut id, mut proofs) = (None, None);
        for _ in 0..self.head(MAP)? {
            match self.text()? {
                "i" if id.is_none() => id = Some(self.bytes()?.to_vec()),
                "p" if proofs.is_none() => proofs = Some(self.list(Self::proof)?),
                _ => return None,
            }
        }
        Some((id?, proofs?))
    }

    fn proof(&mut self) -> Option<PlainProof> {
        let (mut amount, mut secret, mut c, mut dleq) = (None, None, None, None);
        for _ in 0..self.head(MAP)? {
            match self.text()? {
                "a" if amount.is_none() => amount = Some(self.head(UINT)?),
                "s" if secret.is_none() => secret = Some(self.text()?.to_owned()),
                "c" if c.is_none() => c = Some(self.bytes()?.to_vec()),
                "d" if dleq.is_none() => dleq = Some(self.dleq()?),
                _ => return None,
            }
        }
        Some(PlainProof {
            amount: amount?,
            secret: secret?,
            c: c?,
            dleq: dleq.flatten(),
        })
    }

    /// A proof's DLEQ: `null`, or `e`, `s` and `r`, each once.
    fn dleq(&mut self) -> Option<Option<[Vec<u8>; 3]>> {
        if self.null().is_some() {
            return Some(None);
        }
        let [mut e, mut s, mut r] = [None, None, None];
        for _ in 0..self.head(MAP)? {
            let slot = match self.text()? {
                "e" => &mut e,
                "s" => &mut s,
                "r" => &mut r,
                _ => return None,
            };
            if slot.replace(self.bytes()?.to_vec()).is_some() {
                return None;
            }
        }
        Some(Some([e?, s?, r?]))
    }

    /// The argument of the next item, which must be of `major` type, with a definite length.
    fn head(&mut self, major: u8) -> Option<u64> {
        let (&first, rest) = self.bytes.split_first()?;
        if first >> 5 != major {
            return None;
        }
        let (arg, rest) = match first & 0x1f {
            short @ 0..=23 => (u64::from(short), rest),
            24 => {
                let (&b, rest) = rest.split_first()?;
                (u64::from(b), rest)
            }
            25 => {
                let (b, rest) = rest.split_first_chunk::<2>()?;
                (u64::from(u16::from_be_bytes(*b)), rest)
            }
            26 => {
                let (b, rest) = rest.split_first_chunk::<4>()?;
                (u64::from(u32::from_be_bytes(*b)), rest)
            }
            27 => {
                let (b, rest) = rest.split_first_chunk::<8>()?;
                (u64::from_be_bytes(*b), rest)
            }
            _ => return None, // indefinite lengths and reserved values
        };
        self.bytes = rest;
        Some(arg)
    }

    /// An array of what `item` reads. Its length is bounded by the bytes left (each item
    /// takes one at least) before anything is allocated for it.
    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let count = usize::try_from(self.head(ARRAY)?).ok()?;
        if count > self.bytes.len() {
            return None;
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(item(self)?);
        }
        Some(items)
    }

    fn slice(&mut self, major: u8) -> Option<&'a [u8]> {
        let len = usize::try_from(self.head(major)?).ok()?;
        let (slice, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        Some(slice)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        self.slice(BYTES)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.slice(TEXT)?).ok()
    }

    fn null(&mut self) -> Option<()> {
        let (&first, rest) = self.bytes.split_first()?;
        (first == NULL).then(|| self.bytes = rest)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use coinslot_mint::cashu::nuts::{
        CurrencyUnit, Id, Proof, ProofDleq, PublicKey, SecretKey, Token,
    };
    use coinslot_mint::cashu::secret::Secret;
    use coinslot_mint::cashu::{Amount, MintUrl};

    use super::*;

    fn proof(keyset: Id, amount: u64) -> Proof {
        Proof::new(
            Amount::from(amount),
            keyset,
            Secret::generate(),
            SecretKey::generate().public_key(),
        )
    }

    fn keyset() -> Id {
        "009a1f293253e41e".parse().unwrap()
    }

    fn encode(mint: &str, unit: CurrencyUnit, memo: Option<&str>, proofs: Vec<Proof>) -> String {
        let token = Token::new(
            MintUrl::from_str(mint).unwrap(),
            proofs,
            memo.map(str::to_owned),
            unit,
        );
        token.to_string()
    }

    fn with_dleq(mut proof: Proof) -> Proof {
        proof.dleq = Some(ProofDleq::new(
            SecretKey::generate(),
            SecretKey::generate(),
            SecretKey::generate(),
        ));
        proof
    }

    /// Keyset id, amount, secret, `C`, DLEQ.
    type Row = (Vec<u8>, u64, String, PublicKey, Option<ProofDleq>);

    #[test]
    fn reads_what_cashu_writes_and_agrees_with_cashu() {
        let second: Id = "00ad268c4d1f5826".parse().unwrap();
        for (unit, memo, proofs) in [
            (CurrencyUnit::Sat, None, vec![proof(keyset(), 2)]),
            (
                CurrencyUnit::Usd,
                Some("thanks"),
                vec![
                    proof(keyset(), 1),
                    proof(keyset(), 1 << 40),
                    proof(second, 64),
                ],
            ),
            (CurrencyUnit::custom("credit"), None, vec![proof(second, 8)]),
            (
                CurrencyUnit::Sat,
                None,
                vec![with_dleq(proof(keyset(), 4)), proof(keyset(), 1)],
            ),
        ] {
            let encoded = encode("http://127.0.0.1:3338", unit.clone(), memo, proofs.clone());
            let plain = decode_plain(&encoded).expect("the plain form is read");
            assert_eq!(plain.mint, "http://127.0.0.1:3338");
            assert_eq!(CurrencyUnit::from_str(&plain.unit).unwrap(), unit);
            let ours: Vec<Row> = plain
                .keysets
                .iter()
                .flat_map(|(id, proofs)| {
                    proofs.iter().map(move |p| {
                        (
                            id.clone(),
                            p.amount,
                            p.secret.clone(),
                            PublicKey::from_slice(&p.c).unwrap(),
                            p.dleq.as_ref().map(|[e, s, r]| {
                                ProofDleq::new(
                                    SecretKey::from_slice(e).unwrap(),
                                    SecretKey::from_slice(s).unwrap(),
                                    SecretKey::from_slice(r).unwrap(),
                                )
                            }),
                        )
                    })
                })
                .collect();
            let Token::TokenV4(theirs) = Token::from_str(&encoded).unwrap() else {
                panic!("a V4 token");
            };
            let theirs: Vec<Row> = theirs
                .token
                .iter()
                .flat_map(|t| {
                    t.proofs.iter().map(move |p| {
                        (
                            t.keyset_id.to_bytes(),
                            u64::from(p.amount),
                            p.secret.to_string(),
                            p.c,
                            p.dleq.clone(),
                        )
                    })
                })
                .collect();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn anything_but_the_plain_form_is_left_to_cashu() {
        let mut with_witness = proof(keyset(), 4);
        with_witness.witness = Some(coinslot_mint::cashu::nuts::Witness::P2PKWitness(
            coinslot_mint::cashu::nuts::nut11::P2PKWitness {
                signatures: vec!["00".into()],
            },
        ));
        let encoded = encode("http://m", CurrencyUnit::Sat, None, vec![with_witness]);
        assert!(Token::from_str(&encoded).is_ok());
        assert_eq!(decode_plain(&encoded), None);

        // cashuA (JSON), garbage, a cut token, trailing bytes.
        let plain = encode(
            "http://m",
            CurrencyUnit::Sat,
            None,
            vec![proof(keyset(), 1)],
        );
        assert!(decode_plain(&plain).is_some());
        for bad in [
            "cashuAeyJ0b2tlbiI6W119".to_owned(),
            "cashuB!!!".to_owned(),
            plain[..plain.len() - 8].to_owned(),
            format!("{plain}AAAA"),
        ] {
            assert_eq!(decode_plain(&bad), None, "{bad}");
        }
    }

    #[test]
    fn lengths_past_the_end_are_refused_not_allocated() {
        // A map of one entry "t" whose array claims 2^32 items.
        let bytes = [0xa1, 0x61, b't', 0x9a, 0xff, 0xff, 0xff, 0xff];
        let token = format!("cashuB{}", BASE64.encode(bytes));
        assert_eq!(decode_plain(&token), None);
        // A text claiming 2^63 bytes.
        let bytes = [0xa1, 0x61, b'm', 0x7b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let token = format!("cashuB{}", BASE64.encode(bytes));
        assert_eq!(decode_plain(&token), None);
    }
}
