//! Paid requests under a flood of garbage, on loopback: does an honest client still get
//! served, and how much slower?
//!
//! An honest client pays `GET /search` with a fresh token 20 times a second (well inside the
//! per-address limit) from 127.0.0.1, first alone (quiet), then while flooders on other
//! loopback addresses (127.0.0.2…) send, as fast as they can: malformed tokens, well-formed
//! tokens with forged signatures (each costs the mint a verification), unpaid requests
//! (each costs a 402 with a fresh payment request), broken JSON to `/v1/swap`, raw bytes
//! that are not HTTP, and idle connections that never send a head (slowloris). Two servers
//! in one run: coinslotd with its default limits, and with the per-address rate limit off
//! (a flood from more addresses than the limiter can tell apart). Reported: the honest
//! client's p50/p99 in each phase, the ratio of flood p99 to quiet p99 on the same server,
//! and failed honest requests (there must be none).
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin flood-load -- --seconds 15
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Token};
use coinslot_tests::load::{premade_tokens, serve_in_process, summarize, Phase};
use coinslot_tests::proxy::{upstream_app, upstream_config, Signals};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Honest paid requests per second.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Flooding HTTP workers, spread over `--addresses` loopback addresses.
    #[arg(long, default_value_t = 32)]
    flooders: usize,
    /// Loopback addresses the flood comes from (127.0.0.2 onwards).
    #[arg(long, default_value_t = 8)]
    addresses: u8,
    /// Idle connections held open during the flood (reopened when the server closes them).
    #[arg(long, default_value_t = 500)]
    idle: usize,
}

/// A running coinslotd in front of the sample upstream.
struct Target {
    url: String,
    addr: SocketAddr,
    tokens: Mutex<Vec<String>>,
    forged: Vec<String>,
}

async fn start(per_ip_per_minute: u32, honest_requests: usize) -> anyhow::Result<Target> {
    let dir = tempfile::tempdir()?.keep();
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = format!("http://{}", upstream_listener.local_addr()?);
    let app = upstream_app(Signals::default());
    tokio::spawn(async move { axum::serve(upstream_listener, app).await });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let mut config = coinslotd::Config::with_data_dir(&dir);
    config.public_url = Some(url.clone());
    config.limits.per_ip_per_minute = per_ip_per_minute;
    config.proxy.upstreams = vec![upstream_config(&upstream)];
    let mint = serve_in_process(coinslotd::Listeners::new(listener), config)
        .await?
        .mint;
    // `GET /search` costs 2: one proof of 2 per request.
    let tokens = premade_tokens(&mint, &url, 2, honest_requests).await?;
    // Two genuine proofs with their signatures swapped: well formed, never valid.
    let mut forged = Vec::new();
    let mint_url = url.parse()?;
    for _ in 0..64 {
        let mut a = mint.make_proofs(&CurrencyUnit::Sat, 2).await?;
        let mut b = mint.make_proofs(&CurrencyUnit::Sat, 2).await?;
        std::mem::swap(&mut a[0].c, &mut b[0].c);
        forged.push(Token::new(Clone::clone(&mint_url), a, None, CurrencyUnit::Sat).to_string());
    }
    Ok(Target {
        url,
        addr,
        tokens: Mutex::new(tokens),
        forged,
    })
}

/// The honest client: `rate` paid requests a second for `duration`; latencies and failures.
async fn honest(target: &Target, rate: u64, duration: Duration) -> anyhow::Result<(Phase, u64)> {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .build()?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let start = Instant::now();
    while start.elapsed() < duration {
        tick.tick().await;
        let token = target
            .tokens
            .lock()
            .pop()
            .ok_or_else(|| anyhow::anyhow!("out of tokens"))?;
        let sent = Instant::now();
        let response = client
            .get(format!("{}/search", target.url))
            .header("x-cashu", token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 200 => {
                let _ = response.bytes().await?;
                latencies.push(sent.elapsed());
            }
            Ok(response) => {
                failed += 1;
                eprintln!("honest request answered {}", response.status());
            }
            Err(err) => {
                failed += 1;
                eprintln!("honest request failed: {err}");
            }
        }
    }
    Ok((summarize("", latencies, start.elapsed()), failed))
}

/// Flood counters.
#[derive(Default)]
struct Flood {
    requests: AtomicU64,
    refused_429: AtomicU64,
    errors: AtomicU64,
    idle_opened: AtomicU64,
}

fn flood_address(i: usize, addresses: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(addresses.max(1))) as u8)
}

async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(to).await
}

/// Starts the flood; it runs until `stop` is set.
fn flood(target: &Arc<Target>, args: &Args, stop: &Arc<AtomicBool>, counts: &Arc<Flood>) {
    for i in 0..args.flooders {
        let (target, stop, counts) = (target.clone(), stop.clone(), counts.clone());
        let from = flood_address(i, args.addresses);
        tokio::spawn(async move {
            let Ok(client) = reqwest::Client::builder()
                .local_address(IpAddr::V4(from))
                .build()
            else {
                return;
            };
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request = match n % 5 {
                    0 => client.get(format!("{}/search", target.url)).header(
                        "x-cashu",
                        format!("cashuB{}", "o2F0gaJha".repeat(n % 7 + 1)),
                    ),
                    1 => client
                        .get(format!("{}/search", target.url))
                        .header("x-cashu", &target.forged[n % target.forged.len()]),
                    2 => client.get(format!("{}/search", target.url)),
                    3 => client
                        .post(format!("{}/v1/swap", target.url))
                        .header("content-type", "application/json")
                        .body("{\"inputs\": [{\"amount\": 1, \"id\": \"00"),
                    _ => {
                        // Bytes that are not HTTP on a fresh connection.
                        if let Ok(mut stream) = connect_from(from, target.addr).await {
                            let _ = stream.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n").await;
                        }
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                counts.requests.fetch_add(1, Ordering::Relaxed);
                match request.timeout(Duration::from_secs(10)).send().await {
                    Ok(response) => {
                        if response.status() == 429 {
                            counts.refused_429.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = response.bytes().await;
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    for i in 0..args.idle {
        let (target, stop, counts) = (target.clone(), stop.clone(), counts.clone());
        let from = flood_address(i, args.addresses);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(stream) = connect_from(from, target.addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                counts.idle_opened.fetch_add(1, Ordering::Relaxed);
                // Held until the server's header timeout closes it.
                let _ = stream.readable().await;
                let mut probe = [0u8; 1];
                let _ = stream.try_read(&mut probe);
            }
        });
    }
}

struct Run {
    name: &'static str,
    quiet: (Phase, u64),
    flooded: (Phase, u64),
    flood_rps: f64,
    refused_429: u64,
    idle_opened: u64,
}

async fn run(name: &'static str, per_ip_per_minute: u32, args: &Args) -> anyhow::Result<Run> {
    let phase = Duration::from_secs(args.seconds);
    let honest_requests = (args.rate * args.seconds * 2 + 100) as usize;
    let target = Arc::new(start(per_ip_per_minute, honest_requests).await?);
    // Warm up: connections, caches, the first fsyncs.
    honest(&target, args.rate, Duration::from_secs(2)).await?;
    let quiet = honest(&target, args.rate, phase).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Flood::default());
    flood(&target, args, &stop, &counts);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = (counts.requests.load(Ordering::Relaxed), Instant::now());
    let flooded = honest(&target, args.rate, phase).await?;
    let flood_rps = (counts.requests.load(Ordering::Relaxed) - started.0) as f64
        / started.1.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    Ok(Run {
        name,
        quiet,
        flooded,
        flood_rps,
        refused_429: counts.refused_429.load(Ordering::Relaxed),
        idle_opened: counts.idle_opened.load(Ordering::Relaxed),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runs = [
        run("default limits", 3000, &args).await?,
        run("per-address limit off", 0, &args).await?,
    ];
    println!(
        "flood-load: honest client {} paid req/s from 127.0.0.1; flood: {} HTTP workers and {} idle \
         connections from {} other loopback addresses; {} s per phase; sled store; all on the same cores",
        args.rate, args.flooders, args.idle, args.addresses, args.seconds
    );
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>8} {:>7} {:>11} {:>9} {:>9}",
        "server",
        "quiet p50",
        "quiet p99",
        "flood p50",
        "flood p99",
        "p99 x",
        "failed",
        "flood req/s",
        "429s",
        "idle opened"
    );
    let mut failed = 0;
    for run in &runs {
        let (quiet, flooded) = (&run.quiet.0, &run.flooded.0);
        failed += run.quiet.1 + run.flooded.1;
        println!(
            "{:<24} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>8.2} {:>7} {:>11.0} {:>9} {:>9}",
            run.name,
            ms(quiet.p50),
            ms(quiet.p99),
            ms(flooded.p50),
            ms(flooded.p99),
            flooded.p99.as_secs_f64() / quiet.p99.as_secs_f64(),
            run.quiet.1 + run.flooded.1,
            run.flood_rps,
            run.refused_429,
            run.idle_opened,
        );
    }
    anyhow::ensure!(failed == 0, "{failed} honest paid requests failed");
    Ok(())
}
