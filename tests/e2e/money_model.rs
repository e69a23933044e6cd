//! Model-based tests of the money (proptest): random sequences of top-ups, paid requests
//! (exact, overpaid, failing, metered; metered streams settled when they end, from a
//! session or with a one-shot token whose rest is paid out from its key balance), replays
//! of spent tokens, concurrent duplicates, session deposits, debits and closes, pass
//! purchases and restarts, run against
//! `PaidApp` (the layer over the sled store) with a real cdk wallet over HTTP. After every
//! step the books are checked against a simple model:
//! - no value created or lost: what the wallet holds (plus open session balances) is
//!   exactly what came in minus what was charged, and the mint's audit agrees (issued =
//!   redeemed + outstanding; retained = charged);
//! - every change and refund token is spendable (the wallet swaps it in);
//! - a spent token is never accepted again (a replay on another route is refused and
//!   charges nothing; concurrent duplicates charge once).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::time::Duration;

use cdk::wallet::{ReceiveOptions, Wallet};
use coinslot_tests::paywall::{header, PaidApp, PaidAppOptions};
use coinslot_tests::wallet::{self, token};
use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Op {
    TopUp(u64),
    /// GET /search (2 sat) with a token worth 2 + `over`.
    Search {
        over: u64,
    },
    /// GET /fail (2 sat, answers 500): refunded.
    Fail,
    /// GET /metered?cost=N (reserves 10): charged N.
    Metered {
        cost: u64,
    },
    /// The last token that paid, on another route: refused.
    ReplaySpent,
    /// One token sent `n` times at once to /search: charged once.
    Duplicates(usize),
    SessionOpen(u64),
    SessionPay,
    /// GET /metered-stream (reserves 10) from the session: settled when the stream ends,
    /// charged `cost` (the whole reservation when the stream reports none).
    SessionStream {
        cost: Option<u64>,
    },
    /// The same with a one-shot token worth 10 + `over`: the change comes at once, the
    /// unused reservation waits on the token's key balance and is paid out.
    TokenStream {
        cost: Option<u64>,
        over: u64,
    },
    SessionClose,
    /// A pass of scope vpn (2 sat a minute) for `minutes`.
    Pass {
        minutes: u64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u64..40).prop_map(Op::TopUp),
        3 => (0u64..4).prop_map(|over| Op::Search { over }),
        1 => Just(Op::Fail),
        1 => (0u64..=10).prop_map(|cost| Op::Metered { cost }),
        1 => Just(Op::ReplaySpent),
        1 => (2usize..6).prop_map(Op::Duplicates),
        1 => (1u64..12).prop_map(Op::SessionOpen),
        2 => Just(Op::SessionPay),
        1 => proptest::option::of(0u64..=10).prop_map(|cost| Op::SessionStream { cost }),
        1 => (proptest::option::of(0u64..=10), 0u64..3)
            .prop_map(|(cost, over)| Op::TokenStream { cost, over }),
        1 => Just(Op::SessionClose),
        1 => (1u64..3).prop_map(|minutes| Op::Pass { minutes }),
        1 => Just(Op::Restart),
    ]
}

struct Model {
    came_in: u64,
    charged: u64,
    session: Option<(String, u64)>,
    last_spent: Option<String>,
}

/// Takes a token worth `amount` if the wallet holds that much.
async fn take(wallet: &Wallet, amount: u64) -> Option<String> {
    if wallet::balance(wallet).await.unwrap() < amount {
        return None;
    }
    Some(token(wallet, amount).await.unwrap())
}

/// Swaps a change or refund token into the wallet: it must be spendable.
async fn keep(wallet: &Wallet, back: &str) -> u64 {
    if back.is_empty() {
        return 0;
    }
    let amount = wallet
        .receive(back, ReceiveOptions::default())
        .await
        .expect("change and refunds are spendable");
    u64::from(amount)
}

async fn get(app: &PaidApp, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let (status, headers, body) = app.get(path, headers).await.unwrap();
    (status, header(&headers, "x-cashu"), body)
}

async fn step(app: &PaidApp, wallet: &Wallet, model: &mut Model, op: &Op) {
    match op {
        Op::TopUp(amount) => {
            wallet::topup(wallet, *amount).await.unwrap();
            model.came_in += amount;
        }
        Op::Search { over } => {
            let Some(paying) = take(wallet, 2 + over).await else {
                return;
            };
            let (status, back, body) = get(app, "/search?q=m", &[("x-cashu", &paying)]).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(keep(wallet, &back).await, *over, "change");
            model.charged += 2;
            model.last_spent = Some(paying);
        }
        Op::Fail => {
            let Some(paying) = take(wallet, 2).await else {
                return;
            };
            let (status, back, _) = get(app, "/fail", &[("x-cashu", &paying)]).await;
            assert_eq!(status, 500);
            assert_eq!(keep(wallet, &back).await, 2, "refund");
            model.last_spent = Some(paying);
        }
        Op::Metered { cost } => {
            let Some(paying) = take(wallet, 10).await else {
                return;
            };
            let path = format!("/metered?cost={cost}");
            let (status, back, body) = get(app, &path, &[("x-cashu", &paying)]).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(keep(wallet, &back).await, 10 - cost, "unused reservation");
            model.charged += cost;
            model.last_spent = Some(paying);
        }
        Op::ReplaySpent => {
            let Some(spent) = model.last_spent.clone() else {
                return;
            };
            let (status, back, body) = get(app, "/search?q=replay", &[("x-cashu", &spent)]).await;
            assert_eq!(status, 400, "a spent token was accepted: {body}");
            assert!(back.is_empty());
        }
        Op::Duplicates(n) => {
            let Some(paying) = take(wallet, 2).await else {
                return;
            };
            let with = [("x-cashu", paying.as_str())];
            let sends = (0..*n).map(|_| get(app, "/search?q=dup", &with));
            let answers = futures::future::join_all(sends).await;
            let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
            assert!(ok >= 1, "{answers:?}");
            for (status, _, body) in &answers {
                assert!(matches!(status, 200 | 400), "{status} {body}");
            }
            model.charged += 2;
            model.last_spent = Some(paying);
        }
        Op::SessionOpen(deposit) => {
            if model.session.is_some() {
                return;
            }
            let Some(paying) = take(wallet, *deposit).await else {
                return;
            };
            let (status, _, body) = app
                .send(
                    reqwest::Method::POST,
                    "/cashu/session",
                    &[("x-cashu", &paying)],
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            let opened: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(opened["balance"], *deposit);
            let credential = opened["session"].as_str().unwrap().to_string();
            model.session = Some((credential, *deposit));
            model.last_spent = Some(paying);
        }
        Op::SessionPay => {
            let Some((credential, balance)) = model.session.clone() else {
                return;
            };
            let (status, back, body) =
                get(app, "/search?q=s", &[("x-cashu-session", &credential)]).await;
            if balance >= 2 {
                assert_eq!(status, 200, "{body}");
                model.session = Some((credential, balance - 2));
                model.charged += 2;
            } else {
                assert!(matches!(status, 400 | 402), "{status} {body}");
            }
            assert!(!back.starts_with("cashu"), "no token comes back");
        }
        Op::SessionStream { cost } => {
            let Some((credential, balance)) = model.session.clone() else {
                return;
            };
            let path = match cost {
                Some(cost) => format!("/metered-stream?cost={cost}"),
                None => "/metered-stream".to_string(),
            };
            let (status, _, body) = get(app, &path, &[("x-cashu-session", &credential)]).await;
            if balance >= 10 {
                assert_eq!(status, 200, "{body}");
                let charged = cost.unwrap_or(10);
                model.session = Some((credential, balance - charged));
                model.charged += charged;
            } else {
                assert_eq!(status, 402, "{body}");
            }
        }
        Op::TokenStream { cost, over } => {
            let Some(paying) = take(wallet, 10 + over).await else {
                return;
            };
            let path = match cost {
                Some(cost) => format!("/metered-stream?cost={cost}"),
                None => "/metered-stream".to_string(),
            };
            let (status, back, body) = get(app, &path, &[("x-cashu", &paying)]).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(keep(wallet, &back).await, *over, "change at once");
            let charged = cost.unwrap_or(10);
            let bearer = format!("Bearer {paying}");
            let (status, _, body) = app
                .send(
                    reqwest::Method::DELETE,
                    "/cashu/balance",
                    &[("authorization", &bearer)],
                )
                .await
                .unwrap();
            if charged < 10 {
                assert_eq!(status, 200, "{body}");
                let rest: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(rest["amount"], 10 - charged, "{body}");
                let token = rest["token"].as_str().unwrap();
                assert_eq!(keep(wallet, token).await, 10 - charged, "the rest");
            } else {
                assert_eq!(status, 401, "nothing was left on the key: {body}");
            }
            model.charged += charged;
            model.last_spent = Some(paying);
        }
        Op::SessionClose => {
            let Some((credential, balance)) = model.session.take() else {
                return;
            };
            let (status, headers, body) = app
                .send(
                    reqwest::Method::DELETE,
                    "/cashu/session",
                    &[("x-cashu-session", &credential)],
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(keep(wallet, &header(&headers, "x-cashu")).await, balance);
        }
        Op::Pass { minutes } => {
            let Some(paying) = take(wallet, 2 * minutes).await else {
                return;
            };
            let (status, headers, body) = app
                .send(reqwest::Method::POST, "/pass", &[("x-cashu", &paying)])
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            let bought: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(bought["minutes"], *minutes);
            assert_eq!(keep(wallet, &header(&headers, "x-cashu")).await, 0);
            model.charged += 2 * minutes;
            model.last_spent = Some(paying);
        }
        // Done by `run`, which owns the app.
        Op::Restart => {}
    }
}

async fn start(dir: &std::path::Path, listen: Option<std::net::SocketAddr>) -> PaidApp {
    let options = PaidAppOptions {
        listen,
        ..PaidAppOptions::default()
    };
    PaidApp::start(dir, options).await.unwrap()
}

async fn check(app: &PaidApp, wallet: &Wallet, model: &Model, after: &Op) {
    let held = wallet::balance(wallet).await.unwrap();
    let in_session = model.session.as_ref().map_or(0, |(_, b)| *b);
    assert_eq!(
        held + in_session,
        model.came_in - model.charged,
        "after {after:?}: the client holds what came in less what was charged"
    );
    let audit = app.mint.audit().await.unwrap();
    assert!(audit.ok, "after {after:?}: {:?}", audit.violations);
    let sat = audit
        .units
        .iter()
        .find(|u| u.unit.to_string() == "sat")
        .unwrap();
    assert_eq!(sat.came_in, model.came_in, "after {after:?}");
    assert_eq!(sat.account_balance, in_session, "after {after:?}");
    assert_eq!(
        sat.retained, model.charged,
        "after {after:?}: retained = charged"
    );
    assert_eq!(sat.outstanding, sat.issued - sat.redeemed);
}

fn run(ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut app = start(dir.path(), None).await;
        let wallet = wallet::new_wallet(&app.url, wallet::random_seed())
            .await
            .unwrap();
        wallet::topup(&wallet, 60).await.unwrap();
        let mut model = Model {
            came_in: 60,
            charged: 0,
            session: None,
            last_spent: None,
        };
        for op in &ops {
            if let Op::Restart = op {
                let addr = app.addr;
                app.stop().await.unwrap();
                app = start(dir.path(), Some(addr)).await;
            } else {
                step(&app, &wallet, &mut model, op).await;
            }
            check(&app, &wallet, &model, op).await;
        }
        tokio::time::timeout(Duration::from_secs(10), app.stop())
            .await
            .unwrap()
            .unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_books_balance_after_every_step(ops in prop::collection::vec(op(), 1..16)) {
        run(ops);
    }
}
