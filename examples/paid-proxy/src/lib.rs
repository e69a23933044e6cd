//! A forward proxy sold by the minute: `coinslotd` with one pass scope, `proxy`, and its
//! forward proxy (HTTP `CONNECT`, absolute-form and SOCKS5 on one port) opened by those
//! passes. The fake Lightning backend pays every invoice at once; loopback destinations
//! are allowed so the demo works on one machine.
//!
//! [`config`] is the whole product: the binary only binds the listeners, prints where they
//! are and serves. [`demo_site`] is a tiny site to browse through the proxy (`/clock`
//! streams a line a second, to watch the proxy cut the tunnel when the pass runs out).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The pass scope sold.
pub const SCOPE: &str = "proxy";

/// How the example runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the mint's API and `POST /pass` listen.
    pub listen: SocketAddr,
    /// Where the forward proxy listens.
    pub proxy_listen: SocketAddr,
    /// Seed and store.
    pub data_dir: PathBuf,
    /// Price of a minute, in sat.
    pub price: u64,
    /// Seconds in a minute (60; shorter to watch a pass run out quickly).
    pub minute_secs: u64,
}

/// The `coinslotd` configuration: a sat mint on the fake backend, passes of [`SCOPE`] at
/// `price` a minute sold at `/pass`, the forward proxy on `proxy_listen` allowing loopback.
pub fn config(options: &Options, public_url: &str) -> coinslotd::Config {
    let mut config = coinslotd::Config::with_data_dir(&options.data_dir);
    config.listen = options.listen;
    config.public_url = Some(public_url.to_string());
    config.mint.info.name = "paid-proxy".into();
    config.passes.minute_secs = options.minute_secs;
    config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
        name: SCOPE.into(),
        price: options.price,
        unit: Some("sat".into()),
        routes: Vec::new(),
    }];
    config.forward.listen = Some(options.proxy_listen);
    config.forward.scope = SCOPE.into();
    config.forward.allow = vec!["127.0.0.0/8".into(), "::1".into()];
    // No paid routes: the top-up page would have nothing to sell; the CLI tops up instead.
    config.topup.enabled = false;
    config
}

/// A site to browse through the proxy: `/` says hello, `/clock` sends the time every second
/// for as long as the connection lasts.
pub fn demo_site() -> Router {
    Router::new()
        .route("/", get(|| async { "hello through the paid proxy\n" }))
        .route("/clock", get(clock))
}

async fn clock() -> impl IntoResponse {
    let ticks = futures::stream::unfold(0u64, |n| async move {
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let line = format!("tick {n}: the tunnel is open\n");
        Some((Ok::<_, std::convert::Infallible>(line), n + 1))
    });
    axum::body::Body::from_stream(ticks)
}

/// The example on loopback ports, in this process: the server's URL, the proxy's and the
/// demo site's addresses. For tests.
pub async fn spawn_on_loopback(
    data_dir: &Path,
    minute_secs: u64,
) -> anyhow::Result<(String, SocketAddr, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let options = Options {
        listen: listener.local_addr()?,
        proxy_listen: proxy.local_addr()?,
        data_dir: data_dir.to_path_buf(),
        price: 1,
        minute_secs,
    };
    let config = config(&options, &url);
    let (proxy_addr, site_addr) = (proxy.local_addr()?, site.local_addr()?);
    let (ready, opened) = tokio::sync::oneshot::channel();
    let listeners = coinslotd::Listeners::new(listener)
        .forward(proxy)
        .on_ready(move |_| {
            let _ = ready.send(());
        });
    let server = tokio::spawn(async move {
        let served = coinslotd::run(listeners, config, std::future::pending()).await;
        if let Err(err) = &served {
            tracing::error!(error = %err, "paid-proxy stopped");
        }
        served
    });
    if opened.await.is_err() {
        // The hook was dropped unused: the server stopped before its mint was open.
        return Err(match server.await {
            Ok(Err(err)) => err,
            Ok(Ok(())) => anyhow::anyhow!("paid-proxy stopped before its mint was open"),
            Err(err) => anyhow::anyhow!("paid-proxy panicked while starting: {err}"),
        });
    }
    tokio::spawn(async move {
        let _ = axum::serve(site, demo_site()).await;
    });
    Ok((url, proxy_addr, site_addr))
}
