//! What one payment and one swap cost in-process, next to the bare crypto they cannot avoid,
//! measured in the same run:
//!
//! - `crypto/verify`: `hash_to_curve(secret)` and one multiplication `k·Y`, the check of one
//!   proof (`crypto/verify_cashu_hash`: with cashu's `hash_to_curve`, which takes a square
//!   root more); `redeem/one_proof` is [`Mint::redeem`] of a one-proof token at its exact price.
//! - `crypto/swap`: the verify plus one signature `k·B_` and its DLEQ proof (NUT-12), the
//!   operations alone (`crypto/swap_cashu_dleq`: the same through cashu's
//!   `BlindSignature::new`); `swap/one_to_one` is [`Mint::swap`] of one proof for one output.
//!
//! - `record/paid`: what counting a paid request costs ([`Mint::record`] of an
//!   `Event::Paid`: the activity feed with nobody listening, and the earnings tally).
//!
//! All over a `MemoryStore`: our code and the crypto, without the disk (the load binaries
//! in `tests/` measure the durable path over HTTP).
//!
//! ```text
//! cargo bench -p coinslot-mint --bench redeem
//! ```

// A benchmark stops at its first failure, as a test does.
#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cashu::dhke::{blind_message, hash_e, sign_message};
use cashu::nuts::{
    BlindSignature, BlindedMessage, CurrencyUnit, Proof, PublicKey, SecretKey, SwapRequest,
};
use cashu::secret::Secret;
use cashu::{Amount, SECP256K1};
use coinslot_mint::dhke::hash_to_curve;
use coinslot_mint::{
    Event, FakeBackend, MemoryStore, Mint, MintConfig, MintSeed, PaidWith, Payment, Purchase,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn memory_mint(rt: &Runtime) -> Mint {
    rt.block_on(Mint::new(
        MintConfig::default(),
        MintSeed::generate(),
        Arc::new(MemoryStore::new()),
        Arc::new(FakeBackend::new(Default::default())),
    ))
    .expect("mint")
}

/// `n` fresh one-proof tokens worth 1 sat, made outside the timed part.
fn fresh_proofs(rt: &Runtime, mint: &Mint, n: u64) -> Vec<Proof> {
    rt.block_on(async {
        let mut proofs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            proofs.extend(
                mint.make_proofs(&CurrencyUnit::Sat, 1)
                    .await
                    .expect("proofs"),
            );
        }
        proofs
    })
}

fn price(amount: u64) -> Payment {
    Payment {
        unit: CurrencyUnit::Sat,
        buys: Purchase::Price(amount),
        require_lock: false,
        receipt: None,
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mint = memory_mint(&rt);
    let keyset = mint
        .active_keyset(&CurrencyUnit::Sat)
        .expect("a sat keyset")
        .id;
    let k = SecretKey::generate();
    let scalar = k.as_scalar();

    let mut crypto = c.benchmark_group("crypto");
    crypto.bench_function("verify", |b| {
        b.iter_batched(
            Secret::generate,
            |secret| {
                let y = hash_to_curve(secret.as_bytes()).expect("point");
                black_box(y.mul_tweak(&SECP256K1, &scalar).expect("k·Y"))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    crypto.bench_function("verify_cashu_hash", |b| {
        b.iter_batched(
            Secret::generate,
            |secret| {
                let y = cashu::dhke::hash_to_curve(secret.as_bytes()).expect("point");
                black_box(y.mul_tweak(&SECP256K1, &scalar).expect("k·Y"))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The operations a swap cannot avoid: the verify, `C_ = k·B_`, and the DLEQ proof's
    // `R1 = r·G`, `R2 = r·B_` and its hash (the mint's `A` is known).
    let a = k.public_key();
    crypto.bench_function("swap", |b| {
        b.iter_batched(
            || {
                let (blinded, _) = blind_message(Secret::generate().as_bytes(), None).expect("B_");
                (Secret::generate(), blinded, SecretKey::generate())
            },
            |(secret, blinded, r)| {
                let y = hash_to_curve(secret.as_bytes()).expect("point");
                black_box(y.mul_tweak(&SECP256K1, &scalar).expect("k·Y"));
                let c = sign_message(&k, &blinded).expect("C_");
                let r1 = r.public_key();
                let r2: PublicKey = blinded
                    .mul_tweak(&SECP256K1, &r.as_scalar())
                    .expect("r·B_")
                    .into();
                black_box(hash_e([r1, r2, a, c]))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The same with cashu's `BlindSignature::new` for the signature and its proof.
    crypto.bench_function("swap_cashu_dleq", |b| {
        b.iter_batched(
            || {
                let (blinded, _) = blind_message(Secret::generate().as_bytes(), None).expect("B_");
                (Secret::generate(), blinded)
            },
            |(secret, blinded)| {
                let y = hash_to_curve(secret.as_bytes()).expect("point");
                black_box(y.mul_tweak(&SECP256K1, &scalar).expect("k·Y"));
                let c = sign_message(&k, &blinded).expect("C_");
                black_box(BlindSignature::new(
                    Amount::from(1),
                    c,
                    keyset,
                    &blinded,
                    &k,
                ))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    crypto.finish();

    c.bench_function("redeem/one_proof", |b| {
        b.iter_custom(|iters| {
            let proofs = fresh_proofs(&rt, &mint, iters);
            rt.block_on(async {
                let start = Instant::now();
                for proof in proofs {
                    black_box(mint.redeem(vec![proof], price(1)).await.expect("redeem"));
                }
                start.elapsed()
            })
        })
    });

    c.bench_function("swap/one_to_one", |b| {
        b.iter_custom(|iters| {
            let requests: Vec<SwapRequest> = fresh_proofs(&rt, &mint, iters)
                .into_iter()
                .map(|proof| {
                    let (blinded, _) =
                        blind_message(Secret::generate().as_bytes(), None).expect("B_");
                    let output = BlindedMessage::new(Amount::from(1), keyset, blinded);
                    SwapRequest::new(vec![proof], vec![output])
                })
                .collect();
            rt.block_on(async {
                let start = Instant::now();
                for request in requests {
                    black_box(mint.swap(request).await.expect("swap"));
                }
                start.elapsed()
            })
        })
    });
}

fn record(c: &mut Criterion) {
    let rt = runtime();
    let mint = memory_mint(&rt);
    let route: Arc<str> = Arc::from("api: GET /search");
    c.bench_function("record/paid", |b| {
        b.iter(|| {
            mint.record(black_box(Event::Paid {
                unit: CurrencyUnit::Sat,
                amount: 2,
                fee: 0,
                with: PaidWith::Token,
                route: Some(route.clone()),
            }))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    targets = bench, record
}
criterion_main!(benches);
