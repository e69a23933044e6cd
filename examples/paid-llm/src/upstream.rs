//! An OpenAI-compatible chat API written for the example: deterministic, no model weights.
//! Its "models" answer `echo:` followed by the words of the last user message, one word per
//! token; the prompt counts one token per word of every message. It streams server-sent
//! events like OpenAI does (a chunk per word, the usage last when asked with
//! `stream_options.include_usage`), and two models misbehave on purpose, to show what
//! coinslotd bills when an upstream does: `echo-silent` never reports its usage, and
//! `echo-broken` fails before its first byte.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The models the stand-in answers as.
pub const MODELS: [&str; 4] = ["echo-small", "echo-large", "echo-silent", "echo-broken"];

/// The stand-in's router: `GET /v1/models`, `POST /v1/chat/completions`. `delay` is the
/// pause before each streamed word (tokens trickle in, as from a real model).
pub fn router(delay: Duration) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(complete))
        .with_state(delay)
}

async fn models() -> Json<Value> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "paid-llm" }))
        .collect();
    Json(json!({ "object": "list", "data": data }))
}

/// The words of a message's content (a string, or OpenAI's list of parts).
fn words(content: &Value) -> Vec<String> {
    match content {
        Value::String(text) => text.split_whitespace().map(str::to_string).collect(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

async fn complete(State(delay): State<Duration>, Json(request): Json<Value>) -> Response {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !MODELS.contains(&model.as_str()) {
        let error = json!({ "error": { "message": format!("no model `{model}`"), "type": "invalid_request_error" } });
        return (StatusCode::NOT_FOUND, Json(error)).into_response();
    }
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let prompt: usize = messages
        .iter()
        .map(|m| words(m.get("content").unwrap_or(&Value::Null)).len())
        .sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| words(m.get("content").unwrap_or(&Value::Null)))
        .unwrap_or_default();
    let limit = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|name| request.get(*name).and_then(Value::as_u64))
        .unwrap_or(u64::MAX);
    let mut reply = vec!["echo:".to_string()];
    reply.extend(last_user);
    let cut = usize::try_from(limit).unwrap_or(usize::MAX) < reply.len();
    reply.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let finish = if cut { "length" } else { "stop" };
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": reply.len(),
        "total_tokens": prompt + reply.len(),
    });
    let streamed = request.get("stream") == Some(&Value::Bool(true));
    let include_usage = request
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        == Some(&Value::Bool(true));
    let silent = model == "echo-silent";
    if model == "echo-broken" {
        if !streamed {
            let error =
                json!({ "error": { "message": "the model fell over", "type": "server_error" } });
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(error)).into_response();
        }
        // The head goes out, then the body fails before its first byte.
        let failing = futures::stream::once(async move {
            tokio::time::sleep(delay.max(Duration::from_millis(50))).await;
            Err::<Bytes, std::io::Error>(std::io::Error::other("the model fell over"))
        });
        return sse(Body::from_stream(failing));
    }
    if !streamed {
        let mut answer = json!({
            "id": "chatcmpl-paid-llm",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": reply.join(" ") },
                "finish_reason": finish,
            }],
        });
        if !silent {
            answer["usage"] = usage;
        }
        return Json(answer).into_response();
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": "chatcmpl-paid-llm",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut events = vec![chunk(json!({ "role": "assistant", "content": "" }), None)];
    let count = reply.len();
    for (i, word) in reply.into_iter().enumerate() {
        let text = if i + 1 < count {
            format!("{word} ")
        } else {
            word
        };
        events.push(chunk(json!({ "content": text }), None));
    }
    events.push(chunk(json!({}), Some(finish)));
    if include_usage && !silent {
        events.push(json!({
            "id": "chatcmpl-paid-llm",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        }));
    }
    let lines: Vec<String> = events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .chain(std::iter::once("data: [DONE]\n\n".to_string()))
        .collect();
    let stream = futures::stream::unfold(lines.into_iter(), move |mut lines| async move {
        let line = lines.next()?;
        tokio::time::sleep(delay).await;
        Some((Ok::<_, Infallible>(line), lines))
    });
    sse(Body::from_stream(stream))
}

fn sse(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
