//! A paid LLM API: `coinslotd` in front of an OpenAI-compatible chat API, priced per model
//! by the tokens each answer reports, paid with a Cashu token used as the API key.
//!
//! - [`upstream`]: the chat API, a deterministic stand-in written for the example (no
//!   model weights): `GET /v1/models`, `POST /v1/chat/completions`, streamed or not;
//! - [`config`]: the whole product, a `coinslotd` configuration: the mint (fake Lightning
//!   backend), `/v1/chat/completions` priced by `usage = "openai"` per model, `/v1/models`
//!   free, and key balances at `/cashu/balance`.
//!
//! The binary binds the listeners, starts the stand-in on a loopback port of its own and
//! serves; [`spawn_on_loopback`] does the same inside a test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coinslotd::proxy::{ModelPrice, RouteConfig, Unlisted, UpstreamConfig, UsageFormat};

pub mod upstream;

/// The most output tokens one request may ask for (and what is reserved when it names none).
pub const MAX_TOKENS: u64 = 256;

/// How the example runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the mint and the paid API listen.
    pub listen: SocketAddr,
    /// Seed and store.
    pub data_dir: PathBuf,
    /// The pause before each streamed word of the stand-in.
    pub delay: Duration,
}

/// The prices, in sat per 1,000 tokens: `(model, prompt, completion)`.
pub const PRICES: [(&str, u64, u64); 4] = [
    ("echo-small", 100, 400),
    ("echo-large", 300, 1200),
    ("echo-silent", 100, 400),
    ("echo-broken", 100, 400),
];

/// What `prompt` and `completion` tokens of `model` cost, in sat (rounded up, as coinslotd
/// charges).
pub fn cost(model: &str, prompt: u64, completion: u64) -> Option<u64> {
    let (_, p, c) = PRICES.iter().find(|(name, _, _)| *name == model)?;
    Some((prompt * p + completion * c).div_ceil(1000))
}

/// The `coinslotd` configuration: a sat mint on the fake backend and the chat API at
/// `upstream_url` behind the paywall.
pub fn config(options: &Options, public_url: &str, upstream_url: &str) -> coinslotd::Config {
    let mut config = coinslotd::Config::with_data_dir(&options.data_dir);
    config.listen = options.listen;
    config.public_url = Some(public_url.to_string());
    config.mint.info.name = "paid-llm".into();
    let models: BTreeMap<String, ModelPrice> = PRICES
        .iter()
        .map(|(name, prompt, completion)| {
            let price = ModelPrice {
                prompt: *prompt,
                completion: *completion,
            };
            (name.to_string(), price)
        })
        .collect();
    config.proxy.upstreams = vec![UpstreamConfig {
        name: "llm".into(),
        url: upstream_url.into(),
        hosts: Vec::new(),
        prefix: "/v1".into(),
        strip_prefix: false,
        unlisted: Unlisted::Deny,
        retry: None,
        routes: vec![
            RouteConfig {
                description: Some("chat completions, per model and token".into()),
                ..RouteConfig::usage("POST", "/v1/chat/completions", UsageFormat::Openai)
            },
            RouteConfig::free("GET", "/v1/models"),
        ],
        models,
        max_tokens: MAX_TOKENS,
    }];
    config
}

/// Serves the stand-in chat API on a loopback port of its own: its URL.
pub async fn spawn_upstream(delay: Duration) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, upstream::router(delay)).await {
            tracing::error!(error = %err, "the chat API stand-in stopped");
        }
    });
    Ok(url)
}

/// The example on a loopback port, in this process, with `adjust` applied to its
/// configuration: the server's URL. For tests.
pub async fn spawn_on_loopback(
    data_dir: &Path,
    delay: Duration,
    adjust: impl FnOnce(&mut coinslotd::Config),
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let options = Options {
        listen: listener.local_addr()?,
        data_dir: data_dir.to_path_buf(),
        delay,
    };
    let upstream = spawn_upstream(delay).await?;
    let mut config = config(&options, &url, &upstream);
    adjust(&mut config);
    let (ready, opened) = tokio::sync::oneshot::channel();
    let listeners = coinslotd::Listeners::new(listener).on_ready(move |_| {
        let _ = ready.send(());
    });
    let server = tokio::spawn(async move {
        let served = coinslotd::run(listeners, config, std::future::pending()).await;
        if let Err(err) = &served {
            tracing::error!(error = %err, "paid-llm stopped");
        }
        served
    });
    if opened.await.is_err() {
        return Err(match server.await {
            Ok(Err(err)) => err,
            Ok(Ok(())) => anyhow::anyhow!("paid-llm stopped before its mint was open"),
            Err(err) => anyhow::anyhow!("paid-llm panicked while starting: {err}"),
        });
    }
    Ok(url)
}
