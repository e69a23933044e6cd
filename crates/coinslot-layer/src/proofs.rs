//! Tokens as the paywall takes them: decoded, checked to be this mint's (its URL, its
//! keysets, a bounded size), turned into proofs; and the receipts a redeem writes.

use std::str::FromStr;

use coinslot_mint::cashu::nuts::nut02::ShortKeysetId;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Id, Proof, ProofDleq, SecretKey, Token};
use coinslot_mint::cashu::secret::Secret;
use coinslot_mint::{EncodedProof, ErrorCode, Inputs, ReceiptFn};

use crate::receipt::ReceiptData;
use crate::settings::Ctx;
use crate::wire::errors::Rejection;
use crate::wire::nut00;

/// Decodes a token and checks that it is this mint's: its proofs and unit.
pub(crate) fn parse_token(ctx: &Ctx, token: &str) -> Result<(Vec<Proof>, CurrencyUnit), Rejection> {
    check_len(ctx, token)?;
    if let Some((encoded, unit)) = plain_token(ctx, token) {
        let decoded: Option<Vec<Proof>> = encoded.into_iter().map(EncodedProof::decode).collect();
        if let Some(proofs) = decoded {
            return Ok((proofs, unit));
        }
    }
    decode_token(ctx, token)
}

/// [`parse_token`] for a payment: a plain token's proofs keep their `C` encoded, which the
/// mint checks without decoding it (see [`EncodedProof`]).
pub(crate) fn parse_inputs(ctx: &Ctx, token: &str) -> Result<(Inputs, CurrencyUnit), Rejection> {
    check_len(ctx, token)?;
    if let Some((encoded, unit)) = plain_token(ctx, token) {
        return Ok((Inputs::Encoded(encoded), unit));
    }
    let (proofs, unit) = decode_token(ctx, token)?;
    Ok((Inputs::Proofs(proofs), unit))
}

fn check_len(ctx: &Ctx, token: &str) -> Result<(), Rejection> {
    let limit = ctx.settings.max_token_len;
    if token.len() > limit {
        return Err(Rejection::bad_request(format!(
            "token is {} bytes long; the limit is {limit}",
            token.len(),
        )));
    }
    Ok(())
}

/// A token through cashu's decoder, which words what is wrong with it.
fn decode_token(ctx: &Ctx, token: &str) -> Result<(Vec<Proof>, CurrencyUnit), Rejection> {
    let settings = &ctx.settings;
    let token = Token::from_str(token)
        .map_err(|e| Rejection::bad_request(format!("malformed token: {e}")))?;
    let url = token
        .mint_url()
        .map_err(|e| Rejection::bad_request(format!("malformed token: {e}")))?;
    if !settings.accepted_mints.contains(&url) {
        return Err(Rejection::bad_request(format!(
            "token is from mint {url}; this service only accepts tokens of {}",
            settings.mint_url
        )));
    }
    let keysets = ctx.mint().keysets().keysets;
    let proofs = token.proofs(&keysets).map_err(|e| {
        Rejection::cashu(
            ErrorCode::KeysetNotFound,
            format!("token names a keyset this mint does not know: {e}"),
        )
    })?;
    let unit = token.unit().or_else(|| {
        let first = proofs.first()?;
        keysets
            .iter()
            .find(|k| k.id == first.keyset_id)
            .map(|k| k.unit.clone())
    });
    match unit {
        Some(unit) if !proofs.is_empty() => Ok((proofs, unit)),
        _ => Err(Rejection::bad_request("token holds no proofs")),
    }
}

/// The proofs and unit of a plain `cashuB` token of this mint (see [`nut00`]); `None` for
/// anything [`parse_token`] must look at more closely, which also words any error.
fn plain_token(ctx: &Ctx, token: &str) -> Option<(Vec<EncodedProof>, CurrencyUnit)> {
    let plain = nut00::decode_plain(token)?;
    // The mint's URL exactly as this service writes it; other spellings are normalized by
    // cashu's decoder.
    let mut ours = ctx.settings.accepted_mints.iter();
    if !ours.any(|url| displays_as(url, &plain.mint)) {
        return None;
    }
    let unit = CurrencyUnit::from_str(&plain.unit).ok()?;
    let mut keysets = None;
    let mut proofs = Vec::new();
    for (short, list) in plain.keysets {
        let short = ShortKeysetId::from_bytes(&short).ok()?;
        // A version 00 id is whole in the token; only newer short ids need the list.
        let id = match Id::from_short_keyset_id(&short, &[]) {
            Ok(id) => id,
            Err(_) => {
                let keysets = keysets.get_or_insert_with(|| ctx.mint().keysets().keysets);
                Id::from_short_keyset_id(&short, keysets).ok()?
            }
        };
        for proof in list {
            let dleq = match proof.dleq {
                Some([e, s, r]) => {
                    let key = |bytes: Vec<u8>| SecretKey::from_slice(&bytes).ok();
                    Some(ProofDleq::new(key(e)?, key(s)?, key(r)?))
                }
                None => None,
            };
            proofs.push(EncodedProof {
                amount: proof.amount,
                keyset_id: id,
                secret: Secret::new(proof.secret),
                c: proof.c.try_into().ok()?,
                dleq,
            });
        }
    }
    (!proofs.is_empty()).then_some((proofs, unit))
}

/// Whether `value` is written exactly as `text`, without writing it anywhere.
fn displays_as(value: &impl std::fmt::Display, text: &str) -> bool {
    struct Rest<'a>(&'a str);
    impl std::fmt::Write for Rest<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 = self.0.strip_prefix(s).ok_or(std::fmt::Error)?;
            Ok(())
        }
    }
    let mut rest = Rest(text);
    std::fmt::write(&mut rest, format_args!("{value}")).is_ok() && rest.0.is_empty()
}

/// `400` `11010`: the token is in another unit than the price.
pub(crate) fn wrong_unit(expected: &str, found: &str) -> Rejection {
    Rejection::cashu(
        ErrorCode::UnitMismatch,
        format!("wrong unit: the price is in {expected}, the token is in {found}"),
    )
}

/// A receipt builder for a redeem: `template` with the change and fee filled in.
pub(crate) fn receipt_fn(template: ReceiptData) -> ReceiptFn {
    Box::new(move |proofs: &[Proof], fee: u64| {
        let mut data = template.clone();
        data.change = proofs.to_vec();
        data.fee = fee;
        data.encode()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_compares_the_whole_text() {
        let url =
            coinslot_mint::cashu::mint_url::MintUrl::from_str("http://127.0.0.1:3338/").unwrap();
        assert!(displays_as(&url, "http://127.0.0.1:3338"));
        assert!(!displays_as(&url, "http://127.0.0.1:3338/"));
        assert!(!displays_as(&url, "http://127.0.0.1:333"));
        assert!(!displays_as(&url, "http://127.0.0.1:33389"));
        assert!(!displays_as(&url, ""));
    }
}
