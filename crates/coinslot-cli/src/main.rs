//! `coinslot`: a command-line wallet for services that charge in Cashu ecash.
//!
//! ```text
//! coinslot topup https://search.example 100     # invoice as a QR code, waits, mints
//! coinslot get 'https://search.example/search?q=nut'   # pays the 402 by itself
//! coinslot post https://api.example/run --data '{"job": 1}'
//! coinslot balance
//! coinslot send 21 > token.txt ; coinslot receive "$(cat token.txt)"
//! PASS=$(coinslot pass https://vpn.example/pass 60)   # a time pass: 60 sat of minutes
//! ```
//!
//! The wallet lives in `~/.coinslot` (`--wallet`, `COINSLOT_WALLET`): a seed (0600), the
//! cdk wallet database, `trusted-mints` (the mints you topped up at or received from) and
//! `spent-last-hour.json` (what was paid in the last hour, so the hourly limits hold across
//! runs). A service is paid only with ecash of a trusted mint and within the budget flags.
//!
//! With a nostr identity (`--nostr-key nsec1…` and `--relay wss://…`, or `COINSLOT_NOSTR_KEY`
//! and `COINSLOT_RELAYS`), the proofs are also kept on the relays as a NIP-60 wallet: every
//! run restores from them first and publishes what changed, so the same key on another
//! machine sees the same money.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cdk::amount::SplitTarget;
use cdk::mint_url::MintUrl;
use cdk::nuts::{CurrencyUnit, MintQuoteState, PaymentMethod};
use cdk::wallet::SendOptions;
use cdk::Amount;
use clap::{Args, Parser, Subcommand};
use coinslot_client::{
    decode_request, Binding, Budget, Limits, Nip60, PassOrder, PayingClient, SpendRecord, Wallets,
    X_CASHU,
};

/// File listing the mints this wallet trusts, one URL per line.
const TRUSTED_FILE: &str = "trusted-mints";
/// File keeping the spends of the last hour (JSON), for the hourly limits.
const SPENT_FILE: &str = "spent-last-hour.json";

#[derive(Debug, Parser)]
#[command(
    name = "coinslot",
    version,
    about = "Pay for HTTP APIs with Cashu ecash"
)]
struct Cli {
    /// Wallet directory.
    #[arg(long, env = "COINSLOT_WALLET", global = true)]
    wallet: Option<PathBuf>,
    /// Your nostr secret key (nsec1… or hex): keep the proofs on --relay as a NIP-60 wallet.
    #[arg(
        long,
        env = "COINSLOT_NOSTR_KEY",
        global = true,
        hide_env_values = true
    )]
    nostr_key: Option<String>,
    /// A relay for the NIP-60 wallet (repeat it, or comma-separate in COINSLOT_RELAYS).
    #[arg(
        long = "relay",
        env = "COINSLOT_RELAYS",
        global = true,
        value_delimiter = ','
    )]
    relays: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Top up at a mint, or at the mint a paid service names in its 402: shows the
    /// Lightning invoice (and a QR code), waits for it to be paid, mints the ecash.
    Topup {
        /// The mint's URL, or any URL of a service whose 402 names its mint.
        url: String,
        /// How much, in the unit.
        amount: u64,
        /// Unit.
        #[arg(long, default_value = "sat")]
        unit: String,
        /// How long to wait for the payment, in seconds.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// GET a URL, paying a 402 within the budget.
    Get {
        /// The URL.
        url: String,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// POST to a URL, paying a 402 within the budget.
    Post {
        /// The URL.
        url: String,
        /// The request body.
        #[arg(long, short, default_value = "")]
        data: String,
        /// Content type of the body.
        #[arg(long, default_value = "application/json")]
        content_type: String,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// Buy a time pass at a pass endpoint (e.g. `http://host/pass`) with AMOUNT of ecash:
    /// prints the pass on stdout (for `X-Cashu-Pass`, or as a forward proxy's password),
    /// its minutes and expiry on stderr. The change comes back into the wallet.
    Pass {
        /// The pass endpoint.
        url: String,
        /// How much to spend (floor(AMOUNT / price) minutes).
        amount: u64,
        /// The scope, when the server sells several.
        #[arg(long)]
        scope: Option<String>,
        /// A key for the server's hooks (e.g. your WireGuard public key).
        #[arg(long)]
        client_key: Option<String>,
        /// A pass to extend instead of buying a new one.
        #[arg(long)]
        extend: Option<String>,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    /// What the wallet holds, per mint and unit.
    Balance,
    /// Take ecash out of the wallet as a token (printed on stdout).
    Send {
        /// How much.
        amount: u64,
        /// The mint (default: the only one with enough).
        #[arg(long)]
        mint: Option<String>,
        /// Unit.
        #[arg(long, default_value = "sat")]
        unit: String,
    },
    /// Take a token into the wallet (swapping it at its mint, which becomes trusted).
    Receive {
        /// The `cashuA…`/`cashuB…` token.
        token: String,
    },
}

#[derive(Debug, Args)]
struct BudgetArgs {
    /// The unit the budget is in; a service asking another unit is refused.
    #[arg(long, default_value = "sat")]
    unit: String,
    /// Most one request may cost.
    #[arg(long, default_value_t = 100)]
    max_per_request: u64,
    /// Most one host may take per hour.
    #[arg(long, default_value_t = 1000)]
    max_per_host_hour: u64,
    /// Most all hosts may take per hour.
    #[arg(long, default_value_t = 5000)]
    max_per_hour: u64,
    /// When a 402 offers both: pay with NUT-24's X-Cashu (change comes back) or the
    /// standard `Authorization: Payment` scheme (exact amount, a receipt).
    #[arg(long, value_enum, default_value_t = Prefer::Nut24)]
    prefer: Prefer,
}

/// The payment binding to prefer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Prefer {
    /// `X-Cashu` (NUT-24).
    Nut24,
    /// `Authorization: Payment` (the HTTP Payment authentication scheme, cashu method).
    Payment,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("coinslot: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("coinslot: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn wallet_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(dir) = &cli.wallet {
        return Ok(dir.clone());
    }
    let home = std::env::var_os("HOME").context("no HOME: pass --wallet DIR")?;
    Ok(PathBuf::from(home).join(".coinslot"))
}

/// Connects the NIP-60 wallet when a nostr key is given, and restores from it.
/// Mints holding restored ecash become trusted: the NIP-60 wallet is the user's own.
async fn nostr_wallet(cli: &Cli, dir: &Path, wallets: &Wallets) -> Result<Option<Arc<Nip60>>> {
    let Some(key) = &cli.nostr_key else {
        if !cli.relays.is_empty() {
            bail!("--relay needs --nostr-key (the identity whose NIP-60 wallet it holds)");
        }
        return Ok(None);
    };
    if cli.relays.is_empty() {
        bail!("--nostr-key needs at least one --relay to keep the NIP-60 wallet on");
    }
    let keys = nostr_sdk::Keys::parse(key.trim())
        .map_err(|_| anyhow::anyhow!("--nostr-key: not an nsec1… or 64-hex secret key"))?;
    let nip60 = Nip60::connect(keys, &cli.relays)
        .await
        .context("connecting to the NIP-60 relays")?;
    let restored = nip60
        .restore(wallets)
        .await
        .context("restoring the NIP-60 wallet")?;
    if restored > 0 {
        eprintln!("restored {restored} from the NIP-60 wallet on nostr");
    }
    for (mint, _, _) in wallets.balances().await? {
        trust(dir, &mint)?;
    }
    Ok(Some(Arc::new(nip60)))
}

/// Publishes the wallet at `mint` in `unit` to the NIP-60 relays, if there are any.
async fn publish(
    nip60: &Option<Arc<Nip60>>,
    wallets: &Wallets,
    mint: &MintUrl,
    unit: &CurrencyUnit,
) -> Result<()> {
    if let Some(nip60) = nip60 {
        nip60
            .publish(wallets, mint, unit)
            .await
            .context("the ecash is in the local wallet, but publishing it to nostr failed")?;
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let dir = wallet_dir(&cli)?;
    let wallets = Wallets::open(&dir).await?;
    let nip60 = nostr_wallet(&cli, &dir, &wallets).await?;
    match cli.command {
        Command::Topup {
            url,
            amount,
            unit: unit_name,
            wait,
        } => {
            let mint = topup(
                &dir,
                &wallets,
                &url,
                amount,
                &unit_name,
                Duration::from_secs(wait),
            )
            .await?;
            publish(&nip60, &wallets, &mint, &unit(&unit_name)?).await
        }
        Command::Get { url, budget } => {
            let client = paying_client(&dir, wallets, &budget, nip60)?;
            let request = reqwest::Client::new().get(&url).build()?;
            fetch(&dir, &client, request).await
        }
        Command::Post {
            url,
            data,
            content_type,
            budget,
        } => {
            let client = paying_client(&dir, wallets, &budget, nip60)?;
            let request = reqwest::Client::new()
                .post(&url)
                .header("content-type", content_type)
                .body(data)
                .build()?;
            fetch(&dir, &client, request).await
        }
        Command::Pass {
            url,
            amount,
            scope,
            client_key,
            extend,
            budget,
        } => {
            let client = paying_client(&dir, wallets, &budget, nip60)?;
            let order = PassOrder {
                scope,
                client_key,
                extend,
            };
            let result = client.buy_pass(&url, amount, &order).await;
            save_spent(&dir, &client.spending_history())?;
            let bought = result?;
            let left = bought.expires_at.saturating_sub(unix_now());
            eprintln!(
                "{} {} minute(s) of {} (change {}): the pass runs out in {}m{:02}s (Unix {})",
                if bought.extended {
                    "extended by"
                } else {
                    "bought"
                },
                bought.minutes,
                bought.scope,
                bought.change,
                left / 60,
                left % 60,
                bought.expires_at
            );
            println!("{}", bought.pass);
            Ok(())
        }
        Command::Balance => {
            let balances = wallets.balances().await?;
            if balances.is_empty() {
                println!("empty: `coinslot topup URL AMOUNT` to fill it");
            }
            for (mint, unit, amount) in balances {
                println!("{amount} {unit}\t{mint}");
            }
            Ok(())
        }
        Command::Send {
            amount,
            mint,
            unit: unit_name,
        } => {
            let (mint, unit) = send(&wallets, amount, mint, &unit_name).await?;
            publish(&nip60, &wallets, &mint, &unit).await
        }
        Command::Receive { token } => {
            let (mint, unit, amount) = wallets.receive(&token).await?;
            trust(&dir, &mint)?;
            eprintln!("received {amount} {unit} from {mint}");
            publish(&nip60, &wallets, &mint, &unit).await
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unit(name: &str) -> Result<CurrencyUnit> {
    name.parse()
        .map_err(|_| anyhow::anyhow!("unknown unit {name:?}"))
}

fn paying_client(
    dir: &Path,
    wallets: Wallets,
    args: &BudgetArgs,
    nip60: Option<Arc<Nip60>>,
) -> Result<PayingClient> {
    let budget = Budget::new()
        .allow(
            unit(&args.unit)?,
            Limits {
                per_request: Some(args.max_per_request),
                per_host_per_hour: Some(args.max_per_host_hour),
                per_hour: Some(args.max_per_hour),
            },
        )
        .with_history(spent(dir)?);
    let binding = match args.prefer {
        Prefer::Nut24 => Binding::Nut24,
        Prefer::Payment => Binding::Payment,
    };
    let client =
        PayingClient::new(reqwest::Client::new(), wallets, budget, trusted(dir)?).prefer(binding);
    Ok(match nip60 {
        Some(nip60) => client.with_nip60(nip60),
        None => client,
    })
}

/// Sends the request (paying if asked), prints the body on stdout and what it cost on stderr.
async fn fetch(dir: &Path, client: &PayingClient, request: reqwest::Request) -> Result<()> {
    let result = client.execute(request).await;
    // What was paid counts against the next runs' hourly limits, whatever happened after.
    save_spent(dir, &client.spending_history())?;
    let paid = result?;
    let status = paid.response.status();
    if let Some(payment) = &paid.payment {
        eprintln!(
            "paid {} {} (fee {}, back {}) with ecash of {}",
            payment.price, payment.unit, payment.fee, payment.returned, payment.mint
        );
    }
    if let Some(receipt) = coinslot_client::paymentauth::receipt(paid.response.headers()) {
        eprintln!(
            "receipt: {}",
            serde_json::to_string(&receipt).unwrap_or_default()
        );
    }
    let body = paid.response.text().await?;
    println!("{body}");
    if !status.is_success() {
        bail!("the server answered {status}");
    }
    Ok(())
}

/// The spends of the last hour recorded by earlier runs.
fn spent(dir: &Path) -> Result<Vec<SpendRecord>> {
    let path = dir.join(SPENT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a list of spends; delete it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn save_spent(dir: &Path, records: &[SpendRecord]) -> Result<()> {
    let path = dir.join(SPENT_FILE);
    let temp = dir.join(format!("{SPENT_FILE}.tmp"));
    std::fs::write(&temp, serde_json::to_vec(records)?)
        .and_then(|()| std::fs::rename(&temp, &path))
        .with_context(|| format!("writing {}", path.display()))
}

/// The mint behind `url`: the first mint a 402 from it names, else `url` itself if it
/// answers as a mint (`/v1/info`).
async fn discover_mint(url: &str) -> Result<MintUrl> {
    let http = reqwest::Client::new();
    let response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if let Some(request) = response
        .headers()
        .get(X_CASHU)
        .and_then(|v| v.to_str().ok())
        .filter(|_| response.status() == reqwest::StatusCode::PAYMENT_REQUIRED)
    {
        let request = decode_request(request)?;
        return request
            .mints
            .first()
            .cloned()
            .context("the 402 names no mint");
    }
    let mint: MintUrl = url
        .parse()
        .map_err(|e| anyhow::anyhow!("not a URL: {url}: {e}"))?;
    let info = http
        .get(format!("{}/v1/info", url.trim_end_matches('/')))
        .send()
        .await?;
    if !info.status().is_success() {
        bail!("{url} is neither a mint nor a service asking for ecash");
    }
    Ok(mint)
}

async fn topup(
    dir: &Path,
    wallets: &Wallets,
    url: &str,
    amount: u64,
    unit_name: &str,
    wait: Duration,
) -> Result<MintUrl> {
    let mint = discover_mint(url).await?;
    let wallet = wallets.wallet(&mint, &unit(unit_name)?)?;
    let quote = wallet
        .mint_quote(
            PaymentMethod::BOLT11,
            Some(Amount::from(amount)),
            None,
            None,
        )
        .await
        .with_context(|| format!("{mint} refused a quote for {amount} {unit_name}"))?;
    trust(dir, &mint)?;
    println!("Pay this Lightning invoice to top up {amount} {unit_name} at {mint}:\n");
    if let Ok(code) = qrcode::QrCode::new(quote.request.to_uppercase().as_bytes()) {
        let art = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("{art}");
    }
    println!("{}\n", quote.request);
    let started = Instant::now();
    loop {
        let state = wallet.check_mint_quote_status(&quote.id).await?.state;
        if matches!(state, MintQuoteState::Paid | MintQuoteState::Issued) {
            break;
        }
        if started.elapsed() > wait {
            bail!(
                "not paid within {} s; run the same command again to see it, the quote is {}",
                wait.as_secs(),
                quote.id
            );
        }
        eprint!(".");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let proofs = wallet.mint(&quote.id, SplitTarget::default(), None).await?;
    let got: u64 = proofs.iter().map(|p| u64::from(p.amount)).sum();
    let total = u64::from(wallet.total_balance().await?);
    eprintln!("\nminted {got} {unit_name}; the wallet holds {total} {unit_name} at {mint}");
    Ok(mint)
}

async fn send(
    wallets: &Wallets,
    amount: u64,
    mint: Option<String>,
    unit_name: &str,
) -> Result<(MintUrl, CurrencyUnit)> {
    let unit = unit(unit_name)?;
    let mint: MintUrl = match mint {
        Some(mint) => mint
            .parse()
            .map_err(|e| anyhow::anyhow!("--mint {mint}: {e}"))?,
        None => {
            let holding: Vec<MintUrl> = wallets
                .balances()
                .await?
                .into_iter()
                .filter(|(_, u, a)| *u == unit && *a >= amount)
                .map(|(m, _, _)| m)
                .collect();
            match holding.as_slice() {
                [one] => one.clone(),
                [] => bail!("no mint holds {amount} {unit_name}"),
                _ => bail!("several mints hold {amount} {unit_name}: choose one with --mint"),
            }
        }
    };
    let wallet = wallets.wallet(&mint, &unit)?;
    let prepared = wallet
        .prepare_send(Amount::from(amount), SendOptions::default())
        .await?;
    let token = prepared.confirm(None).await?;
    println!("{token}");
    Ok((mint, unit))
}

/// The trusted mints (those topped up at or received from).
fn trusted(dir: &Path) -> Result<Vec<MintUrl>> {
    let text = match std::fs::read_to_string(dir.join(TRUSTED_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context("reading the trusted mints"),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.parse()
                .map_err(|e| anyhow::anyhow!("{TRUSTED_FILE}: {l:?}: {e}"))
        })
        .collect()
}

fn trust(dir: &Path, mint: &MintUrl) -> Result<()> {
    let mut mints = trusted(dir)?;
    if mints.contains(mint) {
        return Ok(());
    }
    mints.push(mint.clone());
    let text: String = mints.iter().map(|m| format!("{m}\n")).collect();
    std::fs::write(dir.join(TRUSTED_FILE), text).context("writing the trusted mints")
}
