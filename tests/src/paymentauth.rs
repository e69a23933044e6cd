//! The client side of the HTTP Payment authentication scheme, as a test writes it by hand:
//! read the `WWW-Authenticate: Payment` challenge, answer it with a token.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;

/// The auth-params of the `WWW-Authenticate: Payment` challenge in `headers`.
///
/// # Panics
/// When there is no such challenge or it is not `name="value"` pairs.
pub fn challenge(headers: &reqwest::header::HeaderMap) -> HashMap<String, String> {
    let value = headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("Payment "))
        .unwrap_or_else(|| panic!("no Payment challenge in {headers:?}"));
    let mut params = HashMap::new();
    let mut rest = value.trim_start_matches("Payment ").trim();
    while !rest.is_empty() {
        let parsed = rest.split_once('=').and_then(|(name, after)| {
            let after = after.strip_prefix('"')?;
            let end = after.find('"')?;
            Some((name.trim(), &after[..end], &after[end + 1..]))
        });
        let Some((name, value, after)) = parsed else {
            panic!("not name=\"value\" pairs: {value}");
        };
        params.insert(name.to_string(), value.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    params
}

/// The `Authorization` value answering the challenge `params` with `token`.
pub fn credential(params: &HashMap<String, String>, token: &str) -> String {
    let body = json!({ "challenge": params, "payload": { "cashu_token": token } });
    format!("Payment {}", URL_SAFE_NO_PAD.encode(body.to_string()))
}
