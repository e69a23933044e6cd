//! Benchmark of `coinslotd` as a paid reverse proxy on loopback, all phases in one run:
//!
//! - (a) the sample upstream called directly (baseline),
//! - (b) through coinslotd on a free route (routing, limits, metrics, forwarding),
//! - (c) through coinslotd, paid from a prepaid session,
//! - (d) through coinslotd, paid with a fresh one-proof token (verify + one durable write);
//! - (e) a streamed answer (server-sent events: 100 events of ~50 bytes, then the usage)
//!   through a free route, and (f) the same stream on a `usage` route paid from a session:
//!   priced by model before it starts, read for its usage as it passes, settled at its end.
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin proxy-load -- --seconds 5 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use clap::Parser;
use coinslot_proxy::{ModelPrice, RouteConfig, UpstreamConfig, UsageFormat};
use coinslot_tests::load::{
    hammer, open_sessions, premade_tokens, print_table, run_phase, serve_in_process, Phase,
};
use coinslot_tests::proxy::{upstream_app, upstream_config, Signals};
use parking_lot::Mutex;

/// Events in a streamed answer before its usage.
const EVENTS: usize = 100;

/// A chat-completion-like stream: [`EVENTS`] deltas of about 50 bytes, the usage, `[DONE]`.
async fn stream() -> axum::response::Response {
    let events = (0..EVENTS)
        .map(|i| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"w{i:03}\"}}}}]}}\n\n"))
        .chain([
            format!(
                "data: {{\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{EVENTS}}}}}\n\n"
            ),
            "data: [DONE]\n\n".to_string(),
        ])
        .map(|event| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(event)));
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(futures::stream::iter(events)))
        .unwrap_or_default()
}

/// The streaming upstream under `/llm`: the same stream free (`/llm/sse`) and on a `usage`
/// route (`/llm/v1/chat/completions`, model `bench` at 1 per 1,000 tokens).
fn streaming_upstream(url: &str) -> UpstreamConfig {
    UpstreamConfig {
        name: "llm".into(),
        url: url.into(),
        hosts: Vec::new(),
        prefix: "/llm".into(),
        strip_prefix: true,
        unlisted: coinslot_proxy::Unlisted::Deny,
        retry: None,
        models: [(
            "bench".to_string(),
            ModelPrice {
                prompt: 1,
                completion: 1,
            },
        )]
        .into(),
        max_tokens: 1000,
        routes: vec![
            RouteConfig::free("POST", "/llm/sse"),
            RouteConfig::usage("POST", "/llm/v1/chat/completions", UsageFormat::Openai),
        ],
    }
}

/// `concurrency` workers POST a chat request to `url` for `duration` and read each streamed
/// answer to its end (`session`: paid from worker's session).
async fn streams(
    name: &str,
    duration: Duration,
    url: String,
    sessions: Option<Arc<Vec<String>>>,
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let client = reqwest::Client::new();
    let body = r#"{"model":"bench","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"hi"}]}"#;
    run_phase(name, concurrency, |worker| {
        let (client, url, sessions) = (client.clone(), url.clone(), sessions.clone());
        async move {
            let mut latencies = Vec::new();
            let end = std::time::Instant::now() + duration;
            while std::time::Instant::now() < end {
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(sessions) = &sessions {
                    request = request.header("x-cashu-session", sessions[worker].clone());
                }
                let t = std::time::Instant::now();
                let response = request.send().await?;
                let status = response.status();
                let text = response.text().await?;
                anyhow::ensure!(status == 200, "{status}: {text}");
                anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "cut short: {text}");
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }
    })
    .await
}

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phase_time = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir()?;

    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = format!("http://{}", upstream_listener.local_addr()?);
    let app = upstream_app(Signals::default());
    tokio::spawn(async move { axum::serve(upstream_listener, app).await });
    let llm_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let llm = format!("http://{}", llm_listener.local_addr()?);
    let llm_app = axum::Router::new()
        .route("/sse", axum::routing::post(stream))
        .route("/v1/chat/completions", axum::routing::post(stream));
    tokio::spawn(async move { axum::serve(llm_listener, llm_app).await });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.public_url = Some(url.clone());
    // One load generator is one client address: a per-IP limit would measure the limiter.
    config.limits.per_ip_per_minute = 0;
    config.limits.per_session_per_minute = 0;
    config.proxy.upstreams = vec![streaming_upstream(&llm), upstream_config(&upstream)];
    let server = serve_in_process(coinslotd::Listeners::new(listener), config).await?;
    let mint = server.mint.clone();

    let sessions = Arc::new(open_sessions(&mint, &url, 1_000_000, args.concurrency).await?);
    // The route costs 2: one proof of 2 per request.
    let wanted = (args.seconds as usize * 4000).max(1000);
    let tokens = Arc::new(Mutex::new(premade_tokens(&mint, &url, 2, wanted).await?));

    let a = hammer(
        "(a) upstream, direct",
        phase_time,
        args.concurrency,
        format!("{upstream}/status"),
        |_| Ok(None),
    )
    .await?;
    let b = hammer(
        "(b) proxy, free route",
        phase_time,
        args.concurrency,
        format!("{url}/status"),
        |_| Ok(None),
    )
    .await?;
    let c = hammer(
        "(c) proxy, paid from a session",
        phase_time,
        args.concurrency,
        format!("{url}/search"),
        {
            let sessions = Arc::clone(&sessions);
            move |worker| Ok(Some(("x-cashu-session", sessions[worker].clone())))
        },
    )
    .await?;
    let d = hammer(
        "(d) proxy, paid with a token",
        phase_time,
        args.concurrency,
        format!("{url}/search"),
        move |_| tokens.lock().pop().map(|t| Some(("x-cashu", t))).ok_or(()),
    )
    .await?;

    let e = streams(
        "(e) proxy, stream, free route",
        phase_time,
        format!("{url}/llm/sse"),
        None,
        args.concurrency,
    )
    .await?;
    let f = streams(
        "(f) proxy, stream, usage, session",
        phase_time,
        format!("{url}/llm/v1/chat/completions"),
        Some(Arc::clone(&sessions)),
        args.concurrency,
    )
    .await?;

    println!(
        "proxy-load: {} clients, {} s per phase, sled store, loopback, upstream on the same cores",
        args.concurrency, args.seconds
    );
    print_table(&a, &[&a, &b, &c, &d]);
    println!(
        "ratios: (b)/(a) = {:.3}  (c)/(a) = {:.3}  (d)/(a) = {:.3}",
        b.rps / a.rps,
        c.rps / a.rps,
        d.rps / a.rps
    );
    println!("streams ({EVENTS} events of ~50 bytes, then the usage):");
    print_table(&e, &[&e, &f]);
    println!("ratio: (f)/(e) = {:.3}", f.rps / e.rps);
    server.stop().await?;
    Ok(())
}
