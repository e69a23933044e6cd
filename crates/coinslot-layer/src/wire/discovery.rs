//! The discovery document agents read before paying: OpenAPI 3.1 at `/openapi.json`, each
//! paid operation with its price in `x-payment-info` (the `Payment` scheme's discovery
//! extension: method `cashu`, intent `charge`, amount and currency) and a `402` response,
//! free operations without. `mppx validate` reads it to find what to test.
//!
//! [`PriceTable::operations`](crate::PriceTable::operations) lists a table's routes;
//! anything else (a proxy's routes, prices per model) builds [`Operation`]s itself.

use serde_json::{json, Map, Value};

use crate::wire::payment::{INTENT, METHOD};
use crate::Price;

/// One route as the discovery document shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// An HTTP method, or `*` (shown as `get` and `post`).
    pub method: String,
    /// The path pattern: `{name}` or `:name` for a segment, a trailing `*` or `{*name}`
    /// for the rest (shown as OpenAPI path parameters).
    pub path: String,
    /// What it costs; `None`: free.
    pub offer: Option<Offer>,
    /// A short summary.
    pub summary: Option<String>,
    /// An example JSON request body (a route that prices its body, such as one priced per
    /// model, refuses an empty one before it would ask for payment).
    pub example: Option<Value>,
}

/// The price of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The amount; `None` when it depends on the request (priced per model, say).
    pub amount: Option<u64>,
    /// The unit (`sat`, or any the mint issues).
    pub currency: String,
    /// How the amount is charged, for people and agents.
    pub description: Option<String>,
}

impl Offer {
    /// The offer of a [`Price`]: its amount, or for a metered price the most it may cost.
    pub fn of(price: &Price) -> Self {
        let description = price.is_metered().then(|| {
            format!(
                "at most {} {}, reserved; the unused part comes back",
                price.amount, price.unit
            )
        });
        Self {
            amount: Some(price.amount),
            currency: price.unit.to_string(),
            description,
        }
    }
}

/// The OpenAPI path of a route pattern, and its path parameters.
fn openapi_path(pattern: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let mut path = String::new();
    for segment in pattern.split('/').filter(|s| !s.is_empty()) {
        let name = if segment == "*" {
            Some("rest".to_string())
        } else if let Some(name) = segment.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
            Some(name.to_string())
        } else if let Some(name) = segment.strip_prefix(':') {
            Some(name.to_string())
        } else {
            segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(str::to_string)
        };
        path.push('/');
        match name {
            Some(name) => {
                path.push_str(&format!("{{{name}}}"));
                names.push(name);
            }
            None => path.push_str(segment),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    (path, names)
}

/// The discovery document of `operations`, titled `title`; `llms` is where a text
/// description of the service is served (its `x-service-info.docs.llms`).
pub fn openapi(title: &str, version: &str, operations: &[Operation], llms: Option<&str>) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for operation in operations {
        let (path, names) = openapi_path(&operation.path);
        let methods: Vec<String> = match operation.method.as_str() {
            "*" | "" => vec!["get".into(), "post".into()],
            method => vec![method.to_ascii_lowercase()],
        };
        let item = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in methods {
            // The first route for a method and path wins, as it does in a price table.
            if item.contains_key(&method) {
                continue;
            }
            let mut op = Map::new();
            let mut responses = Map::new();
            responses.insert(
                "200".into(),
                json!({ "description": "Successful response" }),
            );
            if let Some(offer) = &operation.offer {
                let mut info = Map::new();
                info.insert(
                    "amount".into(),
                    offer
                        .amount
                        .map_or(Value::Null, |a| Value::String(a.to_string())),
                );
                info.insert("currency".into(), Value::String(offer.currency.clone()));
                info.insert("intent".into(), Value::String(INTENT.into()));
                info.insert("method".into(), Value::String(METHOD.into()));
                if let Some(description) = &offer.description {
                    info.insert("description".into(), Value::String(description.clone()));
                }
                op.insert("x-payment-info".into(), Value::Object(info));
                responses.insert(
                    "402".into(),
                    json!({ "description": "Payment Required: a `Payment` challenge (method cashu) and a NUT-24 `X-Cashu` request" }),
                );
            }
            if matches!(method.as_str(), "post" | "put" | "patch") {
                let mut content = json!({ "schema": { "type": "object" } });
                if let Some(example) = &operation.example {
                    content["example"] = example.clone();
                }
                op.insert(
                    "requestBody".into(),
                    json!({
                        "required": operation.example.is_some(),
                        "content": { "application/json": content },
                    }),
                );
            }
            if let Some(summary) = &operation.summary {
                op.insert("summary".into(), Value::String(summary.clone()));
            }
            if !names.is_empty() {
                let parameters: Vec<Value> = names
                    .iter()
                    .map(|name| {
                        json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
                    })
                    .collect();
                op.insert("parameters".into(), Value::Array(parameters));
            }
            op.insert("responses".into(), Value::Object(responses));
            item.insert(method, Value::Object(op));
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": version },
        "paths": paths,
    });
    if let Some(llms) = llms {
        doc["x-service-info"] = json!({ "docs": { "llms": llms } });
    }
    doc
}

/// A plain-text description of the same operations, for `/llms.txt`.
pub fn llms_txt(title: &str, mint_url: &str, operations: &[Operation]) -> String {
    let mut text = format!(
        "# {title}\n\nPaid with Cashu ecash of the mint at {mint_url} (no account). A paid route answers \
         `402 Payment Required` with a `WWW-Authenticate: Payment` challenge (method `cashu`) and a \
         NUT-24 payment request in `X-Cashu`; pay with `X-Cashu: cashuB…` or `Authorization: Payment …`. \
         A token sent as `Authorization: Bearer cashuB…` is an API key with a balance.\n\n## Routes\n\n"
    );
    for operation in operations {
        let price = match &operation.offer {
            None => "free".to_string(),
            Some(Offer {
                amount: Some(amount),
                currency,
                description,
            }) => match description {
                Some(description) => format!("{amount} {currency} ({description})"),
                None => format!("{amount} {currency}"),
            },
            Some(Offer {
                amount: None,
                currency,
                description,
            }) => format!(
                "priced per request in {currency}{}",
                description
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        };
        let summary = operation
            .summary
            .as_ref()
            .map(|s| format!(" — {s}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "- `{} {}`: {price}{summary}\n",
            operation.method, operation.path
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn patterns_become_openapi_paths_with_parameters() {
        assert_eq!(openapi_path("/search"), ("/search".into(), vec![]));
        assert_eq!(
            openapi_path("/v1/chat/{model}"),
            ("/v1/chat/{model}".into(), vec!["model".into()])
        );
        assert_eq!(
            openapi_path("/files/:id/*"),
            (
                "/files/{id}/{rest}".into(),
                vec!["id".into(), "rest".into()]
            )
        );
        assert_eq!(openapi_path("/"), ("/".into(), vec![]));
    }

    #[test]
    fn paid_operations_carry_their_price_and_a_402() {
        let operations = [
            Operation {
                method: "GET".into(),
                path: "/search".into(),
                offer: Some(Offer::of(&Price::sat(2))),
                summary: Some("one search".into()),
                example: None,
            },
            Operation {
                method: "GET".into(),
                path: "/search".into(),
                offer: None,
                summary: None,
                example: None,
            },
            Operation {
                method: "*".into(),
                path: "/".into(),
                offer: None,
                summary: None,
                example: None,
            },
        ];
        let doc = openapi("t", "1", &operations, Some("/llms.txt"));
        let search = &doc["paths"]["/search"]["get"];
        assert_eq!(search["x-payment-info"]["amount"], "2");
        assert_eq!(search["x-payment-info"]["currency"], "sat");
        assert_eq!(search["x-payment-info"]["method"], "cashu");
        assert_eq!(search["x-payment-info"]["intent"], "charge");
        assert!(search["responses"]["402"].is_object());
        assert_eq!(search["summary"], "one search", "the first route wins");
        let root = &doc["paths"]["/"];
        assert!(root["get"]["x-payment-info"].is_null() && root["post"].is_object());
        assert_eq!(doc["x-service-info"]["docs"]["llms"], "/llms.txt");
        let text = llms_txt("t", "http://m", &operations);
        assert!(text.contains("`GET /search`: 2 sat — one search"), "{text}");
    }
}
