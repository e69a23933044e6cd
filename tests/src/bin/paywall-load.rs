//! Benchmark of the paywall layer on loopback, all phases in one run on the same machine:
//!
//! - (a) the handler without the layer (baseline),
//! - (b) the same handler behind the layer on a free route,
//! - (c) paid per request with a fresh one-proof token (verify + one durable write),
//! - (d) paid from a prepaid session (credential check + atomic debit),
//! - (e) opened by a time pass (credential check + one store read),
//!
//! then the cost of one redeem in-process (memory store: our code + crypto, no fsync) next to
//! the crypto alone (hash_to_curve + one point multiplication).
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin paywall-load -- --seconds 5 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use clap::Parser;
use coinslot::cashu::nuts::CurrencyUnit;
use coinslot::{EmbeddedMint, PassScope, PaywallLayer, Price, PriceTable};
use coinslot_mint::Payment;
use coinslot_tests::load::{
    hammer, memory_mint, open_sessions, premade_tokens, print_table, verify_crypto_us, HashToCurve,
};
use parking_lot::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// In-process redeems for the per-proof cost.
    #[arg(long, default_value_t = 3000)]
    redeems: usize,
    /// Only run phase (d), the session phase, for as long as `--seconds` (for profiling).
    #[arg(long)]
    sessions_only: bool,
    /// Only run phase (c), paid with tokens, for as long as `--seconds` (for profiling).
    #[arg(long)]
    tokens_only: bool,
}

async fn handler() -> &'static str {
    "results"
}

async fn serve(app: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("server failed: {err}");
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phase_time = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir()?;
    let embedded = EmbeddedMint::open_dev(dir.path()).await?;
    let mint = embedded.mint.clone();

    let plain = serve(Router::new().route("/search", get(handler))).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let paid_url = format!("http://{}", listener.local_addr()?);
    let pricing = PriceTable::new()
        .free("GET", "/free")
        .route("GET", "/search", Price::sat(1));
    let scope = PassScope::new("vpn", Price::sat(1)).route("GET", "/vpn");
    let layer = PaywallLayer::new(mint.clone(), &paid_url, pricing)?.pass_scope(scope.clone());
    let passes = layer.passes();
    let app = Router::new()
        .route("/free", get(handler))
        .route("/search", get(handler))
        .route("/vpn", get(handler))
        .fallback(|| async { "not found" })
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut pass_credentials = Vec::new();
    for token in premade_tokens(&mint, &paid_url, 1000, args.concurrency).await? {
        let bought = passes
            .buy(&token, &scope, None, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        pass_credentials.push(bought.credential);
    }
    let pass_credentials = Arc::new(pass_credentials);

    let sessions = Arc::new(open_sessions(&mint, &paid_url, 1_000_000, args.concurrency).await?);

    let session_phase = || {
        let sessions = Arc::clone(&sessions);
        hammer(
            "(d) paid from a session",
            phase_time,
            args.concurrency,
            format!("{paid_url}/search"),
            move |worker| Ok(Some(("x-cashu-session", sessions[worker].clone()))),
        )
    };
    if args.sessions_only {
        let d = session_phase().await?;
        print_table(&d, &[&d]);
        return Ok(());
    }
    // More than the fastest run here pays for (~16k/s), so the phase ends by the clock.
    let wanted = (args.seconds as usize * 20_000).max(1000);
    let tokens = Arc::new(Mutex::new(
        premade_tokens(&mint, &paid_url, 1, wanted).await?,
    ));
    let token_phase = |tokens: Arc<Mutex<Vec<String>>>| {
        hammer(
            "(c) paid, one-proof token",
            phase_time,
            args.concurrency,
            format!("{paid_url}/search"),
            move |_| tokens.lock().pop().map(|t| Some(("x-cashu", t))).ok_or(()),
        )
    };
    if args.tokens_only {
        eprintln!("tokens ready: server pid {}", std::process::id());
        let c = token_phase(tokens).await?;
        print_table(&c, &[&c]);
        return Ok(());
    }
    let a = hammer(
        "(a) handler, no layer",
        phase_time,
        args.concurrency,
        format!("{plain}/search"),
        |_| Ok(None),
    )
    .await?;
    let b = hammer(
        "(b) layer, free route",
        phase_time,
        args.concurrency,
        format!("{paid_url}/free"),
        |_| Ok(None),
    )
    .await?;
    let c = token_phase(tokens).await?;
    let d = session_phase().await?;
    let e = hammer(
        "(e) opened by a time pass",
        phase_time,
        args.concurrency,
        format!("{paid_url}/vpn"),
        move |worker| Ok(Some(("x-cashu-pass", pass_credentials[worker].clone()))),
    )
    .await?;

    println!(
        "paywall-load: {} clients, {} s per phase, sled store, loopback",
        args.concurrency, args.seconds
    );
    print_table(&a, &[&a, &b, &c, &d, &e]);
    println!(
        "ratios: (b)/(a) = {:.3}  (c)/(a) = {:.3}  (d)/(a) = {:.3}  (e)/(a) = {:.3}",
        b.rps / a.rps,
        c.rps / a.rps,
        d.rps / a.rps,
        e.rps / a.rps
    );

    let (redeem_us, crypto_us) = per_proof_costs(args.redeems).await?;
    let cashu_us = verify_crypto_us(args.redeems, HashToCurve::Cashu)?;
    println!(
        "per proof, in-process, one core: redeem (memory store) {redeem_us:.1} µs; crypto alone (hash_to_curve + k·Y) {crypto_us:.1} µs ({cashu_us:.1} µs with cashu's hash_to_curve); our code {:.1} µs",
        redeem_us - crypto_us
    );
    if let (Some(paid), Some(free)) = (c.server_cpu_per_op, b.server_cpu_per_op) {
        let beyond = paid.as_secs_f64() * 1e6 - free.as_secs_f64() * 1e6;
        println!(
            "server CPU of a paid request beyond a free one: {beyond:.0} µs = {:.2}× the crypto alone ({:.2}× cashu's)",
            beyond / crypto_us,
            beyond / cashu_us
        );
    }
    embedded.store.flush().await?;
    Ok(())
}

/// Average µs of `Mint::redeem` of a one-proof token on an in-memory mint, and the floor of the
/// verification crypto alone.
async fn per_proof_costs(n: usize) -> anyhow::Result<(f64, f64)> {
    let mint = memory_mint().await?;
    let sat = CurrencyUnit::Sat;
    let mut proofs = Vec::with_capacity(n);
    for _ in 0..n {
        proofs.push(mint.make_proofs(&sat, 1).await?);
    }
    let start = Instant::now();
    for proof in proofs {
        let key = coinslot::crates::mint::receipt_key(&proof);
        let payment = Payment {
            unit: sat.clone(),
            buys: coinslot::crates::mint::Purchase::Price(1),
            require_lock: false,
            receipt: Some((key, Box::new(|_, _| b"receipt".to_vec()))),
        };
        mint.redeem(proof, payment).await?;
    }
    let redeem = start.elapsed().as_secs_f64() * 1e6 / n as f64;

    let crypto = verify_crypto_us(n, HashToCurve::Coinslot)?;
    Ok((redeem, crypto))
}
