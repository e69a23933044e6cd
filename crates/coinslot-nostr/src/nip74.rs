//! The mint over nostr, after the public draft NIP-74: kind 37400 (mint info, addressable),
//! 27401 (an operation request to the mint) and 27402 (the mint's result), with request and
//! result contents NIP-44 encrypted between the client's key and the mint's.
//!
//! Where this follows the draft and where it does not:
//! - the envelope is the draft's: `{"method", "request_id", "data"}` for requests and
//!   `{"status": "success"|"error", "request_id", "data"|"error": {"code", "message"}}` for
//!   results, and a result carries `p` = the client and `e` = the request;
//! - the draft's `mint` method means both "ask for a quote" and "mint"; here every NUT
//!   operation has its own method ([`Method`]), each the exact body of its HTTP route, so
//!   one request maps to one HTTP route and its answer is that route's answer;
//! - an error's `code` is the Cashu error code (`"11001"`) when the mint gave one, so a
//!   wallet sees the same errors as over HTTP.

use http::Method as HttpMethod;
use nostr_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kind 37400: the mint's info (addressable, `d` = the NUT-06 pubkey).
pub const MINT_INFO: Kind = Kind::Custom(37400);
/// Kind 27401: a client's operation request (ephemeral).
pub const REQUEST: Kind = Kind::Custom(27401);
/// Kind 27402: the mint's result (ephemeral).
pub const RESULT: Kind = Kind::Custom(27402);

/// NIP-44 v2 encrypts at most 65535 bytes of plaintext: the upper bound of a request or a
/// result over nostr. Larger answers (a restore of thousands of outputs) need HTTP.
pub const MAX_PLAINTEXT: usize = 65_535;

/// A mint operation, named after the NUT it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// NUT-06 info (`GET /v1/info`).
    Info,
    /// NUT-01 active keys, or one keyset's keys with `{"keyset_id"}` (`GET /v1/keys[/{id}]`).
    Keys,
    /// NUT-02 keysets (`GET /v1/keysets`).
    Keysets,
    /// NUT-04/23 mint quote (`POST /v1/mint/quote/bolt11`).
    MintQuote,
    /// NUT-04/23 quote state, `{"quote"}` (`GET /v1/mint/quote/bolt11/{quote}`).
    MintQuoteState,
    /// NUT-04 mint (`POST /v1/mint/bolt11`).
    Mint,
    /// NUT-03 swap (`POST /v1/swap`).
    Swap,
    /// NUT-07 check state (`POST /v1/checkstate`); `checkstate` is accepted too.
    #[serde(alias = "checkstate")]
    Check,
    /// NUT-09 restore (`POST /v1/restore`).
    Restore,
    /// NUT-05 melt quote: refused, as over HTTP (this mint never melts).
    MeltQuote,
    /// NUT-05 melt: refused, as over HTTP.
    Melt,
}

/// The decrypted content of a kind 27401 event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The operation.
    pub method: Method,
    /// The client's id for this request, echoed in the result.
    pub request_id: String,
    /// The operation's input: the HTTP route's JSON body, or its path parameters.
    #[serde(default)]
    pub data: Value,
}

/// A request that names no known operation or lacks a parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// The HTTP request a [`Request`] stands for: method, path and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// GET or POST.
    pub method: HttpMethod,
    /// The path under the mint's URL.
    pub path: String,
    /// The JSON body, for POST.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// The HTTP route this request is answered by.
    pub fn route(&self) -> Result<Route, BadRequest> {
        let get = |path: String| Route {
            method: HttpMethod::GET,
            path,
            body: None,
        };
        let post = |path: &str| Route {
            method: HttpMethod::POST,
            path: path.to_string(),
            body: Some(self.data.to_string().into_bytes()),
        };
        Ok(match self.method {
            Method::Info => get("/v1/info".into()),
            Method::Keysets => get("/v1/keysets".into()),
            Method::Keys => match self.data.get("keyset_id") {
                None | Some(Value::Null) => get("/v1/keys".into()),
                Some(id) => get(format!("/v1/keys/{}", self.path_param(id, "keyset_id")?)),
            },
            Method::MintQuoteState => match self.data.get("quote") {
                Some(quote) => get(format!(
                    "/v1/mint/quote/bolt11/{}",
                    self.path_param(quote, "quote")?
                )),
                None => return Err(BadRequest("mint_quote_state needs `data.quote`".into())),
            },
            Method::MintQuote => post("/v1/mint/quote/bolt11"),
            Method::Mint => post("/v1/mint/bolt11"),
            Method::Swap => post("/v1/swap"),
            Method::Check => post("/v1/checkstate"),
            Method::Restore => post("/v1/restore"),
            Method::MeltQuote => post("/v1/melt/quote/bolt11"),
            Method::Melt => post("/v1/melt/bolt11"),
        })
    }

    /// A path segment from `data`: a string of URL-safe characters, so a request can never
    /// reach another route than its method's.
    fn path_param(&self, value: &Value, name: &str) -> Result<String, BadRequest> {
        match value.as_str() {
            Some(text)
                if !text.is_empty()
                    && text.len() <= 128
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(text.to_string())
            }
            _ => Err(BadRequest(format!(
                "`data.{name}` must be a non-empty string of letters, digits, `-` and `_`"
            ))),
        }
    }
}

/// `success` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The operation succeeded; `data` is its answer.
    Success,
    /// The operation was refused; `error` says why.
    Error,
}

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultError {
    /// The Cashu error code as a string (`"11001"`), or `http_<status>` when the mint's
    /// answer had none, or `bad_request` for a request that named no operation.
    pub code: String,
    /// The mint's `detail`.
    pub message: String,
}

/// The decrypted content of a kind 27402 event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Success or error.
    pub status: Status,
    /// The request's id.
    pub request_id: String,
    /// The answer, on success: the HTTP route's JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The reason, on error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResultError>,
}

impl Response {
    /// A success carrying `data`.
    pub fn success(request_id: &str, data: Value) -> Self {
        Self {
            status: Status::Success,
            request_id: request_id.to_string(),
            data: Some(data),
            error: None,
        }
    }

    /// A refusal with `code` and `message`.
    pub fn error(request_id: &str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: Status::Error,
            request_id: request_id.to_string(),
            data: None,
            error: Some(ResultError {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    /// The answer of an HTTP route: 2xx is a success with the body, anything else an error
    /// with the body's Cashu `code` and `detail`.
    pub fn from_http(request_id: &str, status: http::StatusCode, body: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if status.is_success() {
            return Self::success(request_id, json);
        }
        let code = match json.get("code").and_then(Value::as_u64) {
            Some(code) => code.to_string(),
            None => format!("http_{}", status.as_u16()),
        };
        let message = json
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
        Self::error(request_id, code, message)
    }
}

/// The mint's info as a kind 37400 event builder (tags after the draft: `d`, `name`,
/// `description`, `version`, `unit`, `nuts`, `url`, `relays`, `status`).
pub fn info_event(
    mint_pubkey: &str,
    info: &Value,
    units: &[String],
    nuts: &[u16],
    urls: &[String],
    relays: &[String],
) -> EventBuilder {
    let text = |key: &str| info.get(key).and_then(Value::as_str).unwrap_or_default();
    let custom = |name: &str, values: Vec<String>| Tag::custom(TagKind::custom(name), values);
    let mut tags = vec![
        Tag::identifier(mint_pubkey),
        custom("name", vec![text("name").to_string()]),
        custom("description", vec![text("description").to_string()]),
        custom("version", vec![text("version").to_string()]),
        custom("unit", units.to_vec()),
        custom("nuts", nuts.iter().map(u16::to_string).collect()),
        custom("relays", relays.to_vec()),
        custom("status", vec!["running".to_string()]),
    ];
    tags.extend(urls.iter().map(|url| custom("url", vec![url.clone()])));
    EventBuilder::new(MINT_INFO, "").tags(tags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn request(method: &str, data: Value) -> Result<Request, serde_json::Error> {
        serde_json::from_value(json!({ "method": method, "request_id": "r1", "data": data }))
    }

    #[test]
    fn each_method_maps_to_its_http_route() {
        let cases = [
            ("info", json!(null), "GET", "/v1/info"),
            ("keys", json!({}), "GET", "/v1/keys"),
            (
                "keys",
                json!({ "keyset_id": "00ab12" }),
                "GET",
                "/v1/keys/00ab12",
            ),
            ("keysets", json!(null), "GET", "/v1/keysets"),
            (
                "mint_quote",
                json!({ "amount": 1 }),
                "POST",
                "/v1/mint/quote/bolt11",
            ),
            (
                "mint_quote_state",
                json!({ "quote": "q-1" }),
                "GET",
                "/v1/mint/quote/bolt11/q-1",
            ),
            ("mint", json!({}), "POST", "/v1/mint/bolt11"),
            ("swap", json!({}), "POST", "/v1/swap"),
            ("check", json!({}), "POST", "/v1/checkstate"),
            ("checkstate", json!({}), "POST", "/v1/checkstate"),
            ("restore", json!({}), "POST", "/v1/restore"),
            ("melt", json!({}), "POST", "/v1/melt/bolt11"),
        ];
        for (method, data, verb, path) in cases {
            let route = request(method, data.clone()).unwrap().route().unwrap();
            assert_eq!(
                (route.method.as_str(), route.path.as_str()),
                (verb, path),
                "{method}"
            );
            if verb == "POST" {
                assert_eq!(route.body.unwrap(), data.to_string().into_bytes());
            }
        }
    }

    #[test]
    fn path_parameters_cannot_leave_their_route() {
        for bad in [
            json!("../swap"),
            json!("a/b"),
            json!(""),
            json!(7),
            json!("a?b"),
        ] {
            let err = request("mint_quote_state", json!({ "quote": bad }))
                .unwrap()
                .route()
                .unwrap_err();
            assert!(err.0.contains("data.quote"), "{err}");
        }
        assert!(request("mint_quote_state", json!({}))
            .unwrap()
            .route()
            .is_err());
        assert!(request("teleport", json!({})).is_err());
    }

    #[test]
    fn http_answers_become_results_with_the_cashu_code() {
        let ok = Response::from_http("r", http::StatusCode::OK, br#"{"states":[]}"#);
        assert_eq!(ok.status, Status::Success);
        assert_eq!(ok.data, Some(json!({ "states": [] })));
        let refused = Response::from_http(
            "r",
            http::StatusCode::BAD_REQUEST,
            br#"{"detail":"Token already spent","code":11001}"#,
        );
        assert_eq!(refused.status, Status::Error);
        let error = refused.error.unwrap();
        assert_eq!(
            (error.code.as_str(), error.message.as_str()),
            ("11001", "Token already spent")
        );
        let plain = Response::from_http("r", http::StatusCode::NOT_FOUND, b"nope");
        assert_eq!(plain.error.unwrap().code, "http_404");
    }
}
