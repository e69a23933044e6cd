//! The stored form of a [`ReceiptData`]: compact bytes, not JSON. Every paid request
//! writes its receipt twice (with the spend, and when its answer is given), and on sled the
//! bytes of each write are a fair share of a payment's cost (about 8% of paid-request
//! throughput for 300 bytes of JSON against under 64 of this), so the hot record gets a
//! hand-made layout. Proofs the mint made itself (change, refunds) are plain and stored as their
//! parts; any other proof falls back to its JSON.
//!
//! Layout: format `2`, kind, flags (metered, session, run, settled, refund), unit, kept,
//! fee, session, change, settled, refund, run. Numbers are LEB128, strings and byte
//! strings length-prefixed.

use std::str::FromStr;

use coinslot_mint::cashu::nuts::{Id, Proof, PublicKey};
use coinslot_mint::cashu::secret::Secret;
use coinslot_mint::cashu::Amount;

use super::{BodyBinding, PayerKind, ReceiptData, ReceiptKind, RunRecord, RunState};
use crate::Retry;

const FORMAT: u8 = 2;

const METERED: u8 = 1;
const SESSION: u8 = 2;
const RUN: u8 = 4;
const SETTLED: u8 = 8;
const REFUND: u8 = 16;

struct Writer(Vec<u8>);

impl Writer {
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    fn num(&mut self, mut n: u64) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.num(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn proofs(&mut self, proofs: &[Proof]) {
        self.num(proofs.len() as u64);
        for proof in proofs {
            let plain = proof.witness.is_none() && proof.dleq.is_none() && proof.p2pk_e.is_none();
            if plain {
                self.byte(0);
                self.num(u64::from(proof.amount));
                self.bytes(&proof.keyset_id.to_bytes());
                self.bytes(proof.secret.as_bytes());
                self.0.extend_from_slice(&proof.c.to_bytes());
            } else {
                self.byte(1);
                self.bytes(&serde_json::to_vec(proof).unwrap_or_default());
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn num(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.num()?).ok()?;
        self.take(len)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn proofs(&mut self) -> Option<Vec<Proof>> {
        let count = usize::try_from(self.num()?).ok()?;
        let mut proofs = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let proof = match self.byte()? {
                0 => {
                    let amount = Amount::from(self.num()?);
                    let keyset = Id::from_bytes(self.bytes()?).ok()?;
                    let secret = Secret::from_str(std::str::from_utf8(self.bytes()?).ok()?).ok()?;
                    let c = PublicKey::from_slice(self.take(33)?).ok()?;
                    Proof::new(amount, keyset, secret, c)
                }
                1 => serde_json::from_slice(self.bytes()?).ok()?,
                _ => return None,
            };
            proofs.push(proof);
        }
        Some(proofs)
    }
}

fn kind_tag(kind: ReceiptKind) -> u8 {
    match kind {
        ReceiptKind::Request => 0,
        ReceiptKind::Deposit => 1,
        ReceiptKind::Close => 2,
        ReceiptKind::Pass => 3,
    }
}

fn kind_of(tag: u8) -> Option<ReceiptKind> {
    Some(match tag {
        0 => ReceiptKind::Request,
        1 => ReceiptKind::Deposit,
        2 => ReceiptKind::Close,
        3 => ReceiptKind::Pass,
        _ => return None,
    })
}

fn retry_tag(retry: Retry) -> u8 {
    match retry {
        Retry::Stored => 0,
        Retry::Rerun => 1,
        Retry::Never => 2,
    }
}

fn retry_of(tag: u8) -> Option<Retry> {
    Some(match tag {
        0 => Retry::Stored,
        1 => Retry::Rerun,
        2 => Retry::Never,
        _ => return None,
    })
}

fn payer_tag(payer: PayerKind) -> u8 {
    match payer {
        PayerKind::Token => 0,
        PayerKind::Session => 1,
        PayerKind::Pass => 2,
    }
}

fn payer_of(tag: u8) -> Option<PayerKind> {
    Some(match tag {
        0 => PayerKind::Token,
        1 => PayerKind::Session,
        2 => PayerKind::Pass,
        _ => return None,
    })
}

/// The stored bytes of a receipt.
pub(super) fn encode(data: &ReceiptData) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(96));
    w.byte(FORMAT);
    w.byte(kind_tag(data.kind));
    let mut flags = 0;
    for (set, flag) in [
        (data.metered, METERED),
        (data.session.is_some(), SESSION),
        (data.run.is_some(), RUN),
        (data.settled.is_some(), SETTLED),
        (data.refund.is_some(), REFUND),
    ] {
        if set {
            flags |= flag;
        }
    }
    w.byte(flags);
    w.bytes(data.unit.as_bytes());
    w.num(data.kept);
    w.num(data.fee);
    if let Some(session) = &data.session {
        w.bytes(session.as_bytes());
    }
    w.proofs(&data.change);
    if let Some(settled) = &data.settled {
        w.proofs(settled);
    }
    if let Some(refund) = &data.refund {
        w.proofs(refund);
    }
    if let Some(run) = &data.run {
        w.0.extend_from_slice(&run.request);
        match run.body {
            BodyBinding::Pending => w.byte(0),
            BodyBinding::Digest { sha256, len } => {
                w.byte(1);
                w.0.extend_from_slice(&sha256);
                w.num(len);
            }
            BodyBinding::Unread { length } => {
                w.byte(2 + u8::from(length.is_some()));
                if let Some(length) = length {
                    w.num(length);
                }
            }
        }
        w.byte(retry_tag(run.retry));
        w.byte(payer_tag(run.payer));
        match run.state {
            RunState::Running { until, owner } => {
                w.byte(0);
                w.num(until);
                w.0.extend_from_slice(&owner.to_be_bytes());
            }
            RunState::Answered { at, stored } => {
                w.byte(1 + u8::from(stored));
                w.num(at);
            }
            RunState::Failed => w.byte(3),
            RunState::Broken { at } => {
                w.byte(4);
                w.num(at);
            }
        }
        w.num(u64::from(run.reruns));
        w.byte(u8::from(run.served));
    }
    w.0
}

/// A receipt from its stored bytes; `None` for bytes of another format or cut short.
pub(super) fn decode(bytes: &[u8]) -> Option<ReceiptData> {
    let mut r = Reader(bytes);
    if r.byte()? != FORMAT {
        return None;
    }
    let kind = kind_of(r.byte()?)?;
    let flags = r.byte()?;
    let unit = r.text()?;
    let kept = r.num()?;
    let fee = r.num()?;
    let session = if flags & SESSION != 0 {
        Some(r.text()?)
    } else {
        None
    };
    let change = r.proofs()?;
    let settled = if flags & SETTLED != 0 {
        Some(r.proofs()?)
    } else {
        None
    };
    let refund = if flags & REFUND != 0 {
        Some(r.proofs()?)
    } else {
        None
    };
    let run = if flags & RUN != 0 {
        let request: [u8; 32] = r.take(32)?.try_into().ok()?;
        let body = match r.byte()? {
            0 => BodyBinding::Pending,
            1 => BodyBinding::Digest {
                sha256: r.take(32)?.try_into().ok()?,
                len: r.num()?,
            },
            2 => BodyBinding::Unread { length: None },
            3 => BodyBinding::Unread {
                length: Some(r.num()?),
            },
            _ => return None,
        };
        let retry = retry_of(r.byte()?)?;
        let payer = payer_of(r.byte()?)?;
        let state = match r.byte()? {
            0 => RunState::Running {
                until: r.num()?,
                owner: u64::from_be_bytes(r.take(8)?.try_into().ok()?),
            },
            1 => RunState::Answered {
                at: r.num()?,
                stored: false,
            },
            2 => RunState::Answered {
                at: r.num()?,
                stored: true,
            },
            3 => RunState::Failed,
            4 => RunState::Broken { at: r.num()? },
            _ => return None,
        };
        let reruns = u32::try_from(r.num()?).ok()?;
        let served = r.byte()? != 0;
        Some(RunRecord {
            request,
            body,
            retry,
            payer,
            state,
            reruns,
            served,
        })
    } else {
        None
    };
    r.0.is_empty().then_some(ReceiptData {
        kind,
        session,
        unit,
        kept,
        fee,
        metered: flags & METERED != 0,
        change,
        settled,
        refund,
        run,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use coinslot_mint::cashu::nuts::SecretKey;

    fn proof(amount: u64) -> Proof {
        let keyset = Id::from_str("009a1f293253e41e").unwrap();
        Proof::new(
            Amount::from(amount),
            keyset,
            Secret::generate(),
            SecretKey::generate().public_key(),
        )
    }

    fn same(a: &ReceiptData, b: &ReceiptData) {
        assert_eq!(a, b);
    }

    #[test]
    fn every_receipt_round_trips_and_stays_small() {
        let mut data = ReceiptData::new(ReceiptKind::Request, "sat".into());
        data.kept = 2;
        data.run = Some(RunRecord {
            request: [7; 32],
            body: BodyBinding::Pending,
            retry: Retry::Stored,
            payer: PayerKind::Token,
            state: RunState::Running {
                until: 1_800_000_000,
                owner: u64::MAX,
            },
            reruns: 0,
            served: false,
        });
        let bytes = encode(&data);
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        same(&decode(&bytes).unwrap(), &data);

        // Everything set, a proof with a witness among them.
        let mut locked = proof(4);
        locked.witness = serde_json::from_str(r#"{"signatures":["ab"]}"#).ok();
        data.change = vec![proof(1), proof(8), locked];
        data.settled = Some(vec![proof(2)]);
        data.refund = Some(Vec::new());
        data.session = Some("session id".into());
        data.metered = true;
        data.fee = 300;
        for (body, state) in [
            (
                BodyBinding::Digest {
                    sha256: [9; 32],
                    len: 1 << 40,
                },
                RunState::Answered {
                    at: 5,
                    stored: true,
                },
            ),
            (BodyBinding::Unread { length: Some(3) }, RunState::Failed),
            (
                BodyBinding::Unread { length: None },
                RunState::Broken { at: 7 },
            ),
        ] {
            let run = data.run.as_mut().unwrap();
            run.body = body;
            run.state = state;
            run.reruns = 2;
            run.served = true;
            same(&decode(&encode(&data)).unwrap(), &data);
        }
        let bytes = encode(&data);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none(), "cut short");
        assert!(
            decode(b"{\"kind\":\"request\"}").is_none(),
            "another format"
        );
    }
}
