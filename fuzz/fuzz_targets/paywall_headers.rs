//! Whatever a stranger puts in the payment headers of a priced request (`X-Cashu`,
//! `Authorization: Cashu|Bearer|Payment`, `X-Cashu-Session`, `X-Cashu-Pass`) goes through
//! the real layer and its embedded mint (in memory): the answer is a refusal (400, 401,
//! 402), never a panic and never a 200, since random bytes pay nothing.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::Bytes;
use coinslot_layer::{PassScope, PaywallLayer, Price, PriceTable, RequestBody};
use http::{Request, Response};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, ServiceExt};

struct World {
    runtime: tokio::runtime::Runtime,
    layer: PaywallLayer,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (runtime, layer) = coinslot_fuzz::with_mint(|mint| async move {
            let pricing = PriceTable::new().route("*", "/paid", Price::sat(2));
            PaywallLayer::new(mint, "http://127.0.0.1:3338", pricing)
                .expect("layer")
                .pass_scope(PassScope::new("vpn", Price::sat(1)).route("*", "/vpn/*"))
        });
        World { runtime, layer }
    })
}

const HEADERS: [&str; 5] = [
    "x-cashu",
    "authorization",
    "x-cashu-session",
    "x-cashu-pass",
    "idempotency-key",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let world = world();
    let name = HEADERS[usize::from(choice) % HEADERS.len()];
    let path = if choice & 0x80 == 0 {
        "/paid"
    } else {
        "/vpn/x"
    };
    // Header values are bytes; http refuses some (e.g. newlines), as a server would.
    let Ok(value) = http::HeaderValue::from_bytes(rest) else {
        return;
    };
    let mut request = Request::post(path)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    request.headers_mut().insert(name, value);
    let service = world.layer.clone().layer(tower::service_fn(
        |_: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"served"))))
        },
    ));
    let response = world
        .runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    let status = response.status().as_u16();
    assert!(
        matches!(status, 400 | 401 | 402),
        "random bytes in {name} got {status}"
    );
});
