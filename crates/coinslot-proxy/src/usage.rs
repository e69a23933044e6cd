//! Routes priced per model by the usage their answers report (`usage = "openai"`).
//!
//! Before payment, [`UsageLayer`] reads the request body (bounded), finds the model and the
//! most output it asks for, refuses what cannot be priced (`400`: not JSON, no model, an
//! unknown model, `max_tokens` over the cap) and works out the reservation: the most the
//! request can cost, with every byte of the body counted as a prompt token (no tokenizer
//! counts more tokens than bytes) and all the output it may ask for. A streamed request is
//! asked to report its usage (`stream_options.include_usage`).
//!
//! After payment, the [`Proxy`](crate::Proxy) reads the answer as it streams through
//! (`scan`): the `usage` of a JSON answer, of the last server-sent event that has one, or
//! a cost trailer; when the answer ends, the cost goes to the paywall's
//! [`Meter`], which settles: what was used is charged, the rest goes back.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use coinslot_layer::Meter;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tower_service::Service;

use crate::config::ModelPrice;
use crate::routes::{ProxyRoutes, UsageRoute};

/// Request extension set by [`UsageLayer`]: what a `usage` route's request was priced at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCharge {
    /// The model it names.
    pub model: String,
    /// That model's prices.
    pub price: ModelPrice,
    /// The most it can cost: what is reserved.
    pub reservation: u64,
}

impl UsageRoute {
    /// The most any request to this route can cost: a body of `body_bytes` prompt tokens and
    /// the most output, for the dearest model.
    pub fn most(&self, body_bytes: u64) -> u64 {
        self.models
            .values()
            .map(|price| price.cost(body_bytes, self.max_tokens))
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Prices a request body: its [`UsageCharge`] and the body to forward (rewritten when a
    /// stream must be asked for its usage). `Err` says what is wrong with it.
    pub fn price(&self, body: &[u8]) -> Result<(UsageCharge, Option<Bytes>), String> {
        let mut request: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("the request body must be a JSON object".into()),
            Err(err) => return Err(format!("the request body is not JSON: {err}")),
        };
        let model = match request.get("model") {
            Some(Value::String(model)) => model.clone(),
            Some(_) => return Err("`model` must be a string".into()),
            None => return Err("the request names no `model`".into()),
        };
        let Some(price) = self.models.get(&model).copied() else {
            let known: Vec<&str> = self.models.keys().take(20).map(String::as_str).collect();
            return Err(format!(
                "unknown model `{model}`: this service prices {}",
                known.join(", ")
            ));
        };
        let mut output = self.max_tokens;
        for name in ["max_completion_tokens", "max_tokens"] {
            match request.get(name) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    let asked = value
                        .as_u64()
                        .ok_or_else(|| format!("`{name}` must be a whole number"))?;
                    if asked > self.max_tokens {
                        return Err(format!(
                            "`{name}` is {asked}; the most this service allows is {}",
                            self.max_tokens
                        ));
                    }
                    output = output.min(asked);
                }
            }
        }
        let choices = match request.get("n") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_u64()
                .filter(|n| (1..=128).contains(n))
                .ok_or("`n` must be a whole number from 1 to 128")?,
        };
        let reservation = price
            .cost(body.len() as u64, output.saturating_mul(choices))
            .max(1);
        let streamed = request.get("stream") == Some(&Value::Bool(true));
        let reports = request
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            == Some(&Value::Bool(true));
        let rewritten = (streamed && !reports).then(|| {
            let options = request
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if !options.is_object() {
                *options = Value::Object(Map::new());
            }
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
            Bytes::from(Value::Object(request).to_string())
        });
        let charge = UsageCharge {
            model,
            price,
            reservation,
        };
        Ok((charge, rewritten))
    }
}

/// A tower layer that prices `usage` routes' requests from their bodies, before the
/// paywall (see the module docs).
#[derive(Debug, Clone)]
pub struct UsageLayer {
    routes: ProxyRoutes,
}

impl UsageLayer {
    /// The layer for `routes` (the same the paywall prices by).
    pub fn new(routes: ProxyRoutes) -> Self {
        Self { routes }
    }
}

impl<S> tower_layer::Layer<S> for UsageLayer {
    type Service = Usage<S>;

    fn layer(&self, inner: S) -> Usage<S> {
        Usage {
            inner,
            routes: self.routes.clone(),
        }
    }
}

/// The service of [`UsageLayer`].
#[derive(Debug, Clone)]
pub struct Usage<S> {
    inner: S,
    routes: ProxyRoutes,
}

impl<S, B> Service<Request<Body>> for Usage<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let routes = self.routes.load();
        let usage = routes
            .resolve(request.headers(), request.uri(), request.method())
            .and_then(|resolved| resolved.usage);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(usage) = usage else {
            let answer = inner.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
        };
        let limit = routes.config().usage_body_bytes;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let read =
                http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
                    .collect()
                    .await;
            let bytes = match read {
                Ok(collected) => collected.to_bytes(),
                Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                    let detail = format!("the request body is over {limit} bytes");
                    return Ok(refusal(StatusCode::PAYLOAD_TOO_LARGE, detail));
                }
                Err(_) => {
                    let detail = "the request body could not be read".to_string();
                    return Ok(refusal(StatusCode::BAD_REQUEST, detail));
                }
            };
            let (charge, rewritten) = match usage.price(&bytes) {
                Ok(priced) => priced,
                Err(detail) => return Ok(refusal(StatusCode::BAD_REQUEST, detail)),
            };
            let body = rewritten.unwrap_or(bytes);
            // The body may have been rewritten: its length as it now is (upstreams that
            // want one get it; the paywall binds retries to it).
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            parts.extensions.insert(charge);
            let answer = inner
                .call(Request::from_parts(parts, Body::from(body)))
                .await?;
            Ok(answer.map(Body::new))
        })
    }
}

/// A `4xx` answer before any payment was taken: the Cashu error shape (`detail`, `code`)
/// and OpenAI's (`error.message`), so that both kinds of client show what is wrong.
fn refusal(status: StatusCode, detail: String) -> Response<Body> {
    let body = json!({
        "detail": detail,
        "code": 10000,
        "error": { "message": detail, "type": "invalid_request_error", "code": null },
    })
    .to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The largest server-sent event line, or JSON answer, read for its usage.
const MAX_SCANNED: usize = 8 << 20;

/// How an answer reports what it cost.
enum Reading {
    /// Server-sent events: the last `data:` event with a `usage`.
    Events { line: Vec<u8>, skipping: bool },
    /// One JSON document.
    Json(Vec<u8>),
    /// Only a cost trailer (a metered route that is not priced by usage).
    Trailer,
}

/// Reads an answer as it streams through for what it cost, and charges `meter` at its end.
struct Scanner {
    reading: Reading,
    price: Option<ModelPrice>,
    cost_header: Arc<str>,
    meter: Meter,
    usage: Option<(u64, u64)>,
    length: Option<u64>,
    seen: u64,
    done: bool,
}

impl Scanner {
    fn data(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        match &mut self.reading {
            Reading::Events { line, skipping } => {
                for piece in data.split_inclusive(|b| *b == b'\n') {
                    let ends = piece.last() == Some(&b'\n');
                    if !*skipping {
                        if line.len() + piece.len() > MAX_SCANNED {
                            *skipping = true;
                            line.clear();
                        } else {
                            line.extend_from_slice(piece);
                        }
                    }
                    if ends {
                        if !*skipping {
                            if let Some(found) = event_usage(line) {
                                self.usage = Some(found);
                            }
                        }
                        line.clear();
                        *skipping = false;
                    }
                }
            }
            Reading::Json(buffer) => {
                if buffer.len() + data.len() > MAX_SCANNED {
                    tracing::warn!("a metered answer is too long to read for its usage");
                    self.reading = Reading::Trailer;
                } else {
                    buffer.extend_from_slice(data);
                }
            }
            Reading::Trailer => {}
        }
        if self.length == Some(self.seen) {
            self.finish();
        }
    }

    fn trailers(&mut self, trailers: &http::HeaderMap) {
        let cost = trailers
            .get(self.cost_header.as_ref())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(cost) = cost {
            self.meter.charge(cost);
        }
    }

    /// The answer is over (or failed): what it reported is charged.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Reading::Json(buffer) = &self.reading {
            self.usage = serde_json::from_slice::<Value>(buffer)
                .ok()
                .and_then(|answer| usage_of(&answer));
        }
        if let (Some(price), Some((prompt, completion))) = (self.price, self.usage) {
            let cost = price.cost(prompt, completion);
            tracing::debug!(prompt, completion, cost, "usage reported");
            self.meter.charge(cost);
        }
    }
}

/// The usage a server-sent event line reports, if it is a `data:` line that has one.
fn event_usage(line: &[u8]) -> Option<(u64, u64)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let data = line.strip_prefix(b"data:")?;
    if !data.windows(7).any(|w| w == b"\"usage\"") {
        return None;
    }
    let event: Value = serde_json::from_slice(data).ok()?;
    usage_of(&event)
}

/// `usage.prompt_tokens`/`completion_tokens` (or `input_tokens`/`output_tokens`).
fn usage_of(answer: &Value) -> Option<(u64, u64)> {
    let usage = answer.get("usage")?.as_object()?;
    let count = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| usage.get(*name).and_then(Value::as_u64))
    };
    let prompt = count(["prompt_tokens", "input_tokens"]);
    let completion = count(["completion_tokens", "output_tokens"]);
    match (prompt, completion) {
        (None, None) => None,
        (prompt, completion) => Some((prompt.unwrap_or(0), completion.unwrap_or(0))),
    }
}

/// Wraps a metered answer's `body` so that its cost reaches `meter` when it ends: from its
/// usage when `price` is set (a `usage` route), else from a cost trailer only.
pub(crate) fn scan(
    body: Body,
    headers: &http::HeaderMap,
    price: Option<ModelPrice>,
    cost_header: &str,
    meter: Meter,
) -> Body {
    let events = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let reading = match (price, events) {
        (None, _) => Reading::Trailer,
        (Some(_), true) => Reading::Events {
            line: Vec::new(),
            skipping: false,
        },
        (Some(_), false) => Reading::Json(Vec::new()),
    };
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let scanner = Scanner {
        reading,
        price,
        cost_header: Arc::from(cost_header),
        meter,
        usage: None,
        length,
        seen: 0,
        done: false,
    };
    Body::new(Scanned {
        inner: body,
        scanner,
    })
}

/// A body read by a [`Scanner`] on its way out.
struct Scanned {
    inner: Body,
    scanner: Scanner,
}

impl http_body::Body for Scanned {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.scanner.data(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.scanner.trailers(trailers);
                }
                // Trailers are the last frame, whatever the body says.
                if frame.is_trailers() || this.inner.is_end_stream() {
                    this.scanner.finish();
                }
            }
            // What was reported before a failure still counts.
            Some(Err(_)) | None => this.scanner.finish(),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use coinslot_layer::cashu::nuts::CurrencyUnit;

    use super::*;

    fn route() -> UsageRoute {
        let mut models = BTreeMap::new();
        models.insert(
            "m".to_string(),
            ModelPrice {
                prompt: 100,
                completion: 400,
            },
        );
        UsageRoute {
            unit: CurrencyUnit::Sat,
            models: Arc::new(models),
            max_tokens: 100,
        }
    }

    #[test]
    fn a_request_reserves_its_bytes_and_all_its_output() {
        let body = br#"{"model":"m","messages":[],"max_tokens":50,"n":2}"#;
        let (charge, rewritten) = route().price(body).unwrap();
        // 48 bytes × 100 + 50 × 2 × 400, per 1,000, rounded up.
        assert_eq!(charge.reservation, (48 * 100 + 100 * 400u64).div_ceil(1000));
        assert_eq!(charge.model, "m");
        assert!(rewritten.is_none(), "not streamed: forwarded as it came");

        let (charge, _) = route().price(br#"{"model":"m"}"#).unwrap();
        assert_eq!(
            charge.reservation,
            (13 * 100 + 100 * 400u64).div_ceil(1000),
            "no max_tokens: the cap"
        );
    }

    #[test]
    fn a_streamed_request_is_asked_for_its_usage() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#;
        let (_, rewritten) = route().price(body).unwrap();
        let sent: Value = serde_json::from_slice(&rewritten.unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["model"], "m");
        let asked = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        assert!(route().price(asked).unwrap().1.is_none());
    }

    #[test]
    fn what_cannot_be_priced_says_why() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not JSON"),
            (b"[1]", "JSON object"),
            (br#"{"model":7}"#, "`model` must be a string"),
            (
                br#"{"model":"x"}"#,
                "unknown model `x`: this service prices m",
            ),
            (
                br#"{"model":"m","max_tokens":101}"#,
                "the most this service allows is 100",
            ),
            (br#"{"model":"m","n":0}"#, "`n`"),
        ];
        for (body, why) in cases {
            let err = route().price(body).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    fn scanning(events: bool, length: Option<u64>) -> (Scanner, Meter) {
        let meter = Meter::new();
        let reading = if events {
            Reading::Events {
                line: Vec::new(),
                skipping: false,
            }
        } else {
            Reading::Json(Vec::new())
        };
        let scanner = Scanner {
            reading,
            price: Some(ModelPrice {
                prompt: 100,
                completion: 400,
            }),
            cost_header: Arc::from("x-coinslot-cost"),
            meter: meter.clone(),
            usage: None,
            length,
            seen: 0,
            done: false,
        };
        (scanner, meter)
    }

    #[test]
    fn the_last_event_with_a_usage_is_charged_even_split_across_chunks() {
        let (mut scanner, meter) = scanning(true, None);
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":20}}\r\n\r\n\
            data: [DONE]\n\n";
        for piece in stream.chunks(7) {
            scanner.data(piece);
        }
        assert_eq!(meter.cost(), None, "not before the end");
        scanner.finish();
        assert_eq!(meter.cost(), Some((10 * 100 + 20 * 400u64).div_ceil(1000)));
    }

    #[test]
    fn a_json_answer_is_charged_at_its_declared_length() {
        let answer = br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#;
        let (mut scanner, meter) = scanning(false, Some(answer.len() as u64));
        scanner.data(&answer[..10]);
        assert_eq!(meter.cost(), None);
        scanner.data(&answer[10..]);
        assert_eq!(meter.cost(), Some((3 * 100 + 4 * 400u64).div_ceil(1000)));
    }

    #[test]
    fn no_usage_leaves_the_meter_uncharged_and_a_trailer_charges_it() {
        let (mut scanner, meter) = scanning(false, None);
        scanner.data(br#"{"choices":[]}"#);
        scanner.finish();
        assert_eq!(meter.cost(), None);
        let (mut scanner, meter) = scanning(true, None);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-coinslot-cost", HeaderValue::from_static("9"));
        scanner.trailers(&trailers);
        assert_eq!(meter.cost(), Some(9));
    }
}
