//! `coinslotd`: run the Coinslot server. `coinslotd --help` lists the commands and flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use coinslot_admin::{parse_ttl, AdminKey, Scope, ADMIN_KEY_FILE};
use coinslotd::config::LogFormat;
use coinslotd::{Config, ConfigError};
use tracing_subscriber::EnvFilter;

// glibc's malloc and free were 11.6% of the server's CPU on a paid request, spread over many
// small allocations (BENCHMARKS.md, cut 8); mimalloc took 8 to 17% off the whole request.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Coinslot: charge for any HTTP API in Cashu ecash, with an embedded closed-loop mint
/// (mint and swap only, never melt).
///
/// With no command, `coinslotd` serves (the same as `coinslotd serve`).
#[derive(Debug, Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mint, the paid proxy, the admin API and the top-up page.
    Serve(ServeArgs),
    /// Operator tools.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Find mints on nostr and talk to a mint over nostr (NIP-87, draft NIP-74).
    #[command(subcommand)]
    Nostr(NostrCommand),
}

#[derive(Debug, Subcommand)]
enum NostrCommand {
    /// Print the Cashu mints announced (kind 38172) on the relays, one JSON object a line.
    Discover {
        /// Relays to ask (repeat, or comma-separated).
        #[arg(long = "relay", required = true, value_delimiter = ',')]
        relays: Vec<String>,
        /// Only the announcements signed by this key (npub or hex): a mint's own.
        #[arg(long, conflicts_with = "recommended_by")]
        author: Option<String>,
        /// Only the mints this key recommends (its kind 38000 events).
        #[arg(long)]
        recommended_by: Option<String>,
        /// How long to wait for the relays, in seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Run one mint operation over nostr and print the mint's JSON answer.
    Call {
        /// Relays the mint listens on (repeat, or comma-separated).
        #[arg(long = "relay", required = true, value_delimiter = ',')]
        relays: Vec<String>,
        /// The mint's key: npub, x-only hex, or its NUT-06 pubkey (02…/03…).
        #[arg(long)]
        mint: String,
        /// info, keys, keysets, mint_quote, mint_quote_state, mint, swap, check, restore.
        method: String,
        /// The operation's JSON input (the HTTP body, or `{"quote": …}` and the like).
        #[arg(default_value = "{}")]
        data: String,
        /// How long to wait for the answer, in seconds.
        #[arg(long, default_value_t = 15)]
        timeout: u64,
    },
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "COINSLOT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:3338].
    #[arg(long, env = "COINSLOT_LISTEN")]
    listen: Option<String>,
    /// Directory for the seed, the store and the admin key [default: ./coinslot-data].
    #[arg(long, env = "COINSLOT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URL clients reach this server at [default: http://<listen>].
    #[arg(long, env = "COINSLOT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "COINSLOT_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Nostr relays to announce the mint on and answer from, comma-separated
    /// (replaces `[nostr] relays`).
    #[arg(long, env = "COINSLOT_NOSTR_RELAYS", value_delimiter = ',')]
    nostr_relays: Option<Vec<String>>,
    /// PostgreSQL database for the mint's state, shared by several instances
    /// (postgres://user:password@host/db; replaces `[store] url`; default: sled in the data
    /// directory).
    #[arg(long, env = "COINSLOT_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print an admin API token (a JWT signed with the key in the data directory).
    Token {
        /// How long it is valid: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        expires: std::time::Duration,
        /// Comma-separated scopes: read, issue, prices, keys (or all).
        #[arg(long, default_value = "read")]
        scope: String,
        /// Who the token is for (logged with every action it takes).
        #[arg(long, default_value = "operator")]
        subject: String,
        /// TOML configuration file (for its data_dir).
        #[arg(long, env = "COINSLOT_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory holding admin.key [default: the config's, or ./coinslot-data].
        #[arg(long, env = "COINSLOT_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Replace the admin key (admin.key) with a new one: every admin token issued before
    /// stops working, on a running coinslotd too (it reads the file again when it changes).
    /// Issue new tokens afterwards.
    RotateKey {
        /// TOML configuration file (for its data_dir).
        #[arg(long, env = "COINSLOT_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory holding admin.key [default: the config's, or ./coinslot-data].
        #[arg(long, env = "COINSLOT_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check the books on the store and print them as JSON: value in through quotes against
    /// ecash and balances owed, per unit and keyset. Exits 1 if they do not add up. On sled,
    /// stop the server first (or ask it: GET /admin/audit).
    Audit {
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the effective configuration, secrets hidden.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Also connect to the Lightning backend and create and look up a 1-sat test
        /// invoice (never paid; it expires in a minute).
        #[arg(long)]
        connect: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve_command(&cli.serve),
        Some(Command::Serve(args)) => serve_command(&args),
        Some(Command::Admin(AdminCommand::Token {
            expires,
            scope,
            subject,
            config,
            data_dir,
        })) => admin_token(expires, &scope, &subject, config, data_dir),
        Some(Command::Admin(AdminCommand::Audit { serve })) => audit_command(&serve),
        Some(Command::Admin(AdminCommand::RotateKey { config, data_dir })) => {
            rotate_admin_key(config, data_dir)
        }
        Some(Command::Config(ConfigCommand::Check { file, connect })) => {
            config_check(file, connect)
        }
        Some(Command::Nostr(command)) => nostr_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("coinslotd: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(err)) => {
            eprintln!("coinslotd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exit 2 for what the user must fix in flags or config, 1 for everything else.
enum Failure {
    Usage(String),
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::Usage(err.to_string())
    }
}

fn serve_command(args: &ServeArgs) -> Result<(), Failure> {
    let config = configure(args)?;
    // Logs go to stderr; stdout carries only the URL line, for scripts.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the runtime: {e}")))?;
    runtime.block_on(serve(config)).map_err(Failure::Runtime)
}

fn configure(args: &ServeArgs) -> Result<Config, ConfigError> {
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
    if let Some(url) = &args.public_url {
        config.public_url = Some(url.clone());
    }
    if let Some(format) = &args.log_format {
        config.log.format = if format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
    if let Some(relays) = &args.nostr_relays {
        config.nostr.relays = relays
            .iter()
            .map(|relay| relay.trim().to_string())
            .filter(|relay| !relay.is_empty())
            .collect();
    }
    if let Some(url) = &args.database_url {
        config.store.url = Some(url.clone());
    }
    config.validate()?;
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    // Printed only once the store is open: scripts and tests wait for this line.
    let listeners = coinslotd::Listeners::new(listener)
        .on_ready(|ready| println!("coinslotd: mint listening on http://{}", ready.addr));
    coinslotd::run(listeners, config, shutdown_signal()).await
}

fn admin_token(
    expires: std::time::Duration,
    scope: &str,
    subject: &str,
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> Result<(), Failure> {
    let scopes: Vec<Scope> = if scope.trim() == "all" {
        Scope::ALL.to_vec()
    } else {
        scope
            .split(',')
            .map(|s| {
                s.parse::<Scope>()
                    .map_err(|e| Failure::Usage(format!("--scope: {e}")))
            })
            .collect::<Result<_, _>>()?
    };
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => Config::load(config.as_deref())?.data_dir,
    };
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        Failure::Runtime(anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))
    })?;
    let key = AdminKey::load_or_create(&data_dir.join(ADMIN_KEY_FILE))
        .map_err(|e| Failure::Runtime(e.into()))?;
    let token = key
        .issue(subject, &scopes, expires, coinslot_mint::unix_now())
        .map_err(|e| Failure::Runtime(e.into()))?;
    println!("{token}");
    Ok(())
}

fn rotate_admin_key(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => Config::load(config.as_deref())?.data_dir,
    };
    let path = data_dir.join(ADMIN_KEY_FILE);
    AdminKey::rotate(&path).map_err(|e| Failure::Runtime(e.into()))?;
    eprintln!(
        "rotated the admin key in {}: tokens issued before no longer work (a running coinslotd refuses them from its next admin call); issue new ones with `coinslotd admin token`",
        path.display()
    );
    Ok(())
}

fn audit_command(args: &ServeArgs) -> Result<(), Failure> {
    let config = configure(args)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the runtime: {e}")))?;
    let audit = runtime
        .block_on(async {
            let opened = coinslotd::open(&config).await?;
            let audit = opened.mint.audit().await?;
            opened.store.flush().await?;
            anyhow::Ok(audit)
        })
        .map_err(Failure::Runtime)?;
    let text = serde_json::to_string_pretty(&audit)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot print the audit: {e}")))?;
    println!("{text}");
    if audit.ok {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(
            "the books do not add up: {}",
            audit.violations.join("; ")
        )))
    }
}

fn config_check(file: PathBuf, connect: bool) -> Result<(), Failure> {
    let config = Config::load(Some(&file))?;
    let text = config
        .to_redacted_toml()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot print the config: {e}")))?;
    println!(
        "# {}: valid. Effective configuration (secrets hidden):",
        file.display()
    );
    print!("{text}");
    if connect {
        let kind = config.backend.kind();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Runtime(e.into()))?;
        runtime
            .block_on(async {
                let backend = coinslotd::backend(&config.backend).await?;
                coinslotd::probe_backend(backend.as_ref()).await
            })
            .map_err(|e| {
                Failure::Runtime(e.context(format!("backend {kind}: connection check failed")))
            })?;
        println!("# backend {kind}: connected; created and looked up a 1-sat test invoice");
    }
    Ok(())
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

fn nostr_command(command: NostrCommand) -> Result<(), Failure> {
    use coinslot_nostr::nip74::Method;
    use coinslot_nostr::nostr_sdk::prelude::PublicKey;
    use std::time::Duration;

    let key = |what: &str, text: &str| -> Result<PublicKey, Failure> {
        let text = text.trim();
        // A NUT-06 pubkey is the x-only key with a parity byte in front.
        let x_only = match text.len() {
            66 if text.starts_with("02") || text.starts_with("03") => &text[2..],
            _ => text,
        };
        PublicKey::parse(x_only)
            .map_err(|e| Failure::Usage(format!("{what} `{text}` is not a nostr key: {e}")))
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the runtime: {e}")))?;
    match command {
        NostrCommand::Discover {
            relays,
            author,
            recommended_by,
            timeout,
        } => {
            let query = match (author, recommended_by) {
                (Some(author), _) => coinslot_nostr::Discover::Author(key("--author", &author)?),
                (None, Some(by)) => {
                    coinslot_nostr::Discover::RecommendedBy(key("--recommended-by", &by)?)
                }
                (None, None) => coinslot_nostr::Discover::All,
            };
            runtime.block_on(async {
                let client = coinslot_nostr::connect(&relays)
                    .await
                    .map_err(runtime_error)?;
                let found =
                    coinslot_nostr::discover(&client, query, Duration::from_secs(timeout)).await;
                client.shutdown().await;
                for mint in found.map_err(runtime_error)? {
                    let line = serde_json::json!({
                        "author": mint.author.to_hex(),
                        "self_signed": mint.self_signed,
                        "event_id": mint.event_id.to_hex(),
                        "created_at": mint.created_at.as_secs(),
                        "mint_pubkey": mint.announcement.mint_pubkey,
                        "urls": mint.announcement.urls,
                        "nuts": mint.announcement.nuts,
                        "network": mint.announcement.network,
                    });
                    println!("{line}");
                }
                Ok(())
            })
        }
        NostrCommand::Call {
            relays,
            mint,
            method,
            data,
            timeout,
        } => {
            let mint = key("--mint", &mint)?;
            let method: Method = serde_json::from_value(serde_json::Value::String(method.clone()))
                .map_err(|_| Failure::Usage(format!("`{method}` is not a mint operation")))?;
            let data: serde_json::Value = serde_json::from_str(&data)
                .map_err(|e| Failure::Usage(format!("the data is not JSON: {e}")))?;
            runtime.block_on(async {
                let client = coinslot_nostr::MintClient::connect(&relays, mint)
                    .await
                    .map_err(runtime_error)?
                    .timeout(Duration::from_secs(timeout));
                let answer = client.call(method, data).await;
                client.shutdown().await;
                let answer = answer.map_err(runtime_error)?;
                println!("{answer}");
                Ok(())
            })
        }
    }
}

fn runtime_error(err: impl std::fmt::Display) -> Failure {
    Failure::Runtime(anyhow::anyhow!("{err}"))
}
