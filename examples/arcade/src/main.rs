//! `arcade`: run the example arcade, or print an operator token for its admin API.
//!
//! ```text
//! cargo run --release -p arcade -- --listen 127.0.0.1:8090 --data-dir ./arcade-data
//! cargo run --release -p arcade -- --data-dir ./arcade-data admin-token --expires 1h
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arcade::ArcadeConfig;
use clap::{Parser, Subcommand};
use coinslot_admin::{AdminKey, Scope, ADMIN_KEY_FILE};

/// An arcade that sells credit in Cashu ecash: pinball per play, racer per minute.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where the mint keeps its seed, store and admin key.
    #[arg(long, default_value = "arcade-data")]
    data_dir: PathBuf,
    /// The URL players use to reach this server (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,
    /// Length of a racer "minute" in seconds (shorter for a quick demo).
    #[arg(long, default_value_t = 60)]
    minute_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a token for the admin API (scopes read and issue), e.g. to print vouchers.
    AdminToken {
        /// How long the token is valid: 30m, 12h, 7d.
        #[arg(long, default_value = "1h")]
        expires: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::AdminToken { expires }) = &args.command {
        let ttl = coinslot_admin::parse_ttl(expires).map_err(anyhow::Error::msg)?;
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
        let key = AdminKey::load_or_create(&args.data_dir.join(ADMIN_KEY_FILE))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        println!(
            "{}",
            key.issue("arcade-operator", &[Scope::Read, Scope::Issue], ttl, now)?
        );
        return Ok(());
    }
    if args.minute_secs == 0 {
        anyhow::bail!("--minute-secs: must be at least 1");
    }
    let config = ArcadeConfig {
        minute: Duration::from_secs(args.minute_secs),
        ..ArcadeConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let opened = arcade::open(&args.data_dir, &config)
        .await
        .with_context(|| format!("cannot open the arcade in {}", args.data_dir.display()))?;
    println!("arcade: open at {public_url} (buy credit at {public_url}/topup)");
    arcade::serve(listener, opened, &public_url, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
