//! Benchmark of `coinslotd`'s paid forward proxy on loopback, all phases in one run. Each
//! operation opens a connection, asks a byte source for `--bytes` bytes and reads them:
//!
//! - (a) straight to the source (baseline),
//! - (b) through a `CONNECT` tunnel opened by a time pass,
//! - (c) through SOCKS5 with the pass as password,
//! - (d) through a `CONNECT` tunnel paid per megabyte from a prepaid session.
//!
//! Run it twice, small (`--bytes 1000`: connection set-up and admission dominate) and bulk
//! (`--bytes 10000000`: the relay's throughput):
//!
//! ```text
//! cargo run --release -p coinslot-tests --bin forward-load -- --seconds 5 --concurrency 16 --bytes 1000
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coinslot_tests::load::{
    open_sessions, premade_tokens, print_table, run_phase, serve_in_process,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Bytes fetched per operation.
    #[arg(long, default_value_t = 1000)]
    bytes: u64,
}

/// A source that answers an 8-byte big-endian length with that many bytes, then closes.
async fn source() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut n = [0u8; 8];
                if stream.read_exact(&mut n).await.is_err() {
                    return;
                }
                let mut left = u64::from_be_bytes(n);
                let block = vec![b'x'; 64 * 1024];
                while left > 0 {
                    let take = left.min(block.len() as u64) as usize;
                    if stream.write_all(&block[..take]).await.is_err() {
                        return;
                    }
                    left -= take as u64;
                }
            });
        }
    });
    Ok(addr)
}

#[derive(Clone, Copy)]
enum Way {
    Direct,
    Connect,
    Socks,
}

/// One operation: connect (through the proxy when asked), fetch `bytes`, check the count.
async fn fetch(
    way: Way,
    proxy: SocketAddr,
    target: SocketAddr,
    credential: &str,
    bytes: u64,
) -> anyhow::Result<()> {
    let mut stream = match way {
        Way::Direct => TcpStream::connect(target).await?,
        Way::Connect => {
            let mut stream = TcpStream::connect(proxy).await?;
            let head = format!(
                "CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Bearer {credential}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let mut read = Vec::new();
            let mut byte = [0u8; 1];
            while !read.ends_with(b"\r\n\r\n") {
                anyhow::ensure!(stream.read(&mut byte).await? == 1, "proxy closed");
                read.push(byte[0]);
            }
            anyhow::ensure!(
                read.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&read)
            );
            stream
        }
        Way::Socks => {
            let mut stream = TcpStream::connect(proxy).await?;
            let mut hello = vec![5, 1, 2, 1, 4];
            hello.extend_from_slice(b"pass");
            hello.push(u8::try_from(credential.len())?);
            hello.extend_from_slice(credential.as_bytes());
            hello.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1]);
            hello.extend_from_slice(&target.port().to_be_bytes());
            stream.write_all(&hello).await?;
            let mut answers = [0u8; 14];
            stream.read_exact(&mut answers).await?;
            anyhow::ensure!(
                answers[3] == 0 && answers[5] == 0,
                "SOCKS5 refused: {answers:?}"
            );
            stream
        }
    };
    stream.write_all(&bytes.to_be_bytes()).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    anyhow::ensure!(got == bytes, "got {got} of {bytes} bytes");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let phase_time = Duration::from_secs(args.seconds);
    let dir = tempfile::tempdir()?;
    let target = source().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let forward = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy = forward.local_addr()?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut config = coinslotd::Config::with_data_dir(dir.path());
    config.public_url = Some(url.clone());
    config.limits.per_ip_per_minute = 0;
    config.limits.per_session_per_minute = 0;
    config.passes.scopes = vec![coinslotd::config::PassScopeConfig {
        name: "proxy".into(),
        price: 1,
        unit: None,
        routes: vec![],
    }];
    config.forward.listen = Some(proxy);
    config.forward.allow = vec!["127.0.0.0/8".into()];
    config.forward.max_tunnels_per_pass = 0;
    config.forward.price_per_mb = Some(1);
    config.forward.max_connections = 4096;
    let listeners = coinslotd::Listeners::new(listener).forward(forward);
    let mint = serve_in_process(listeners, config).await?.mint;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One pass for every client (no tunnel limit here), and a session each with plenty.
    let token = premade_tokens(&mint, &url, 10_000, 1).await?.remove(0);
    let bought: serde_json::Value = reqwest::Client::new()
        .post(format!("{url}/pass"))
        .header("x-cashu", token)
        .send()
        .await?
        .json()
        .await?;
    let pass: Arc<str> = bought["pass"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no pass: {bought}"))?
        .into();
    let sessions = Arc::new(open_sessions(&mint, &url, 1_000_000, args.concurrency).await?);

    let mut phases = Vec::new();
    for (name, way, per_mb) in [
        ("(a) direct (baseline)", Way::Direct, false),
        ("(b) CONNECT, time pass", Way::Connect, false),
        ("(c) SOCKS5, time pass", Way::Socks, false),
        ("(d) CONNECT, per-MB session", Way::Connect, true),
    ] {
        let (pass, sessions) = (pass.clone(), sessions.clone());
        let bytes = args.bytes;
        let phase = run_phase(name, args.concurrency, move |i| {
            let credential: String = if per_mb {
                sessions[i].clone()
            } else {
                pass.to_string()
            };
            async move {
                let mut latencies = Vec::new();
                let end = Instant::now() + phase_time;
                while Instant::now() < end {
                    let start = Instant::now();
                    fetch(way, proxy, target, &credential, bytes).await?;
                    latencies.push(start.elapsed());
                }
                Ok(latencies)
            }
        })
        .await?;
        phases.push(phase);
    }
    println!(
        "{} bytes per operation, {} clients, {} s per phase",
        args.bytes, args.concurrency, args.seconds
    );
    let refs: Vec<_> = phases.iter().collect();
    print_table(&phases[0], &refs);
    for phase in &phases {
        println!(
            "{:<34} {:>10.1} MB/s",
            phase.name,
            phase.rps * args.bytes as f64 / 1e6
        );
    }
    Ok(())
}
