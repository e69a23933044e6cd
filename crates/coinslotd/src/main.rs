//! `coinslotd`: run the Coinslot mint. `coinslotd --help` lists the flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use coinslotd::{Config, ConfigError};
use tracing_subscriber::EnvFilter;

/// Coinslot: an embedded, closed-loop Cashu mint (mint and swap only, never melt).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "COINSLOT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3338].
    #[arg(long, env = "COINSLOT_LISTEN")]
    listen: Option<String>,
    /// Directory for the seed and the store [default: ./coinslot-data].
    #[arg(long, env = "COINSLOT_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Logs go to stderr; stdout carries only the URL line, for scripts.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match configure(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("coinslotd: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("coinslotd: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("coinslotd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn configure(args: &Args) -> Result<Config, ConfigError> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = &args.listen {
        config.listen = listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError(format!(
                "--listen / COINSLOT_LISTEN: `{listen}` is not an address: {e}"
            ))
        })?;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let opened = coinslotd::open(&config).await?;
    println!("coinslotd: mint listening on http://{addr}");
    coinslotd::serve(listener, opened, &config, shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
