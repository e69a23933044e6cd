//! Tokens as the paywall takes them: decoded, checked to be this mint's (its URL, its
//! keysets, a bounded size), turned into proofs; and the receipts a redeem writes.

use std::str::FromStr;

use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof, Token};
use coinslot_mint::{ErrorCode, ReceiptFn};

use crate::receipt::ReceiptData;
use crate::settings::Ctx;
use crate::wire::errors::Rejection;

/// Decodes a token and checks that it is this mint's: its proofs and unit.
pub(crate) fn parse_token(ctx: &Ctx, token: &str) -> Result<(Vec<Proof>, CurrencyUnit), Rejection> {
    let settings = &ctx.settings;
    if token.len() > settings.max_token_len {
        return Err(Rejection::bad_request(format!(
            "token is {} bytes long; the limit is {}",
            token.len(),
            settings.max_token_len
        )));
    }
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
