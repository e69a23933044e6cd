//! Decoders of what a server or a wallet hands over as text: NUT-18/NUT-26 payment
//! requests (as the client reads a `402`), `Authorization: Payment` credentials, and
//! Cashu tokens. Errors are fine; panics are not.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = coinslot_client::decode_request(text);
    let _ = coinslot_layer::paymentauth::decode_credential(text);
    if let Ok(token) = coinslot_mint::cashu::nuts::Token::from_str(text) {
        // A token that decodes must encode again.
        let _ = token.to_string();
        let _ = token.mint_url();
        let _ = token.unit();
    }
});
