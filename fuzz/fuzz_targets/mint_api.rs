//! Every JSON body of the mint API (swap, mint, checkstate, restore, quotes) and its path
//! parameters, through the real router over an in-memory mint: the answer is never a
//! panic or a 5xx; a 400 is a Cashu error (`{"detail": …, "code": N}`); and a swap or a
//! mint of random bytes never succeeds.
//!
//! The first byte picks the endpoint, the rest is the body (or the path parameter).
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::Router;
use http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    api: Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (runtime, api) = coinslot_fuzz::with_mint(|mint| async move {
            coinslot_http::router(mint, Default::default())
        });
        World { runtime, api }
    })
}

/// (method, path; `{}` is replaced by the input for path parameters).
const ENDPOINTS: [(&str, &str); 9] = [
    ("POST", "/v1/swap"),
    ("POST", "/v1/mint/bolt11"),
    ("POST", "/v1/checkstate"),
    ("POST", "/v1/restore"),
    ("POST", "/v1/mint/quote/bolt11"),
    ("GET", "/v1/mint/quote/bolt11/{}"),
    ("GET", "/v1/keys/{}"),
    ("POST", "/v1/melt/quote/bolt11"),
    ("POST", "/v1/melt/bolt11"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let (method, path) = ENDPOINTS[usize::from(choice) % ENDPOINTS.len()];
    let request = if path.contains("{}") {
        // A path segment: what a URL can carry, percent-encoded as a client would.
        let segment: String = rest
            .iter()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(*b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        Request::builder()
            .method(method)
            .uri(path.replace("{}", &segment))
            .body(Body::empty())
    } else {
        Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(rest.to_vec()))
    };
    let Ok(request) = request else {
        return;
    };
    let world = world();
    let (status, body) = world.runtime.block_on(async {
        let response = world
            .api
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body)
    });
    assert!(status < 500, "{method} {path} answered {status}");
    if matches!(path, "/v1/swap" | "/v1/mint/bolt11") {
        assert_ne!(status, 200, "random bytes were accepted by {path}");
    }
    if status == 400 {
        let error: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(
            error["detail"].is_string() && error["code"].is_u64(),
            "not a Cashu error: {error}"
        );
    }
});
