//! End-to-end test of the top-up page in a real headless Chromium, driven over WebDriver.
//!
//! It needs `chromium` and `chromedriver` (override their paths with `COINSLOT_CHROMIUM` and
//! `COINSLOT_CHROMEDRIVER`), so it is `#[ignore]`d: a plain `cargo test` lists it as ignored,
//! and `scripts/test.sh` runs it with `--ignored` when `COINSLOT_BROWSER=1`.
//!
//! A real server (embedded mint with the fake Lightning backend, the mint API and the
//! top-up page) runs on 127.0.0.1:0. The browser tops up like a user; the token it shows is
//! then received by a cdk wallet over HTTP, which proves it is real money. The page's QR
//! codes are decoded with `rqrr`, and its crypto and QR encoder are checked against cdk and
//! `rqrr` on test vectors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use base64::Engine as _;
use cdk::dhke::{blind_message, hash_to_curve, sign_message, verify_message};
use cdk::mint_url::MintUrl;
use cdk::nuts::{BlindSignature, CurrencyUnit, Id, PublicKey, SecretKey, Token};
use cdk::wallet::{ReceiveOptions, Wallet, WalletBuilder};
use cdk::Amount;
use coinslot::{EmbeddedMint, FakeBackend, FakeBackendConfig, MintConfig, UnitConfig};
use coinslot_tests::browser::{self, js_string, save_png, screenshot_dir, Browser};
use coinslot_topup::{PriceLine, TopupPage};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

const AMOUNT: u64 = 500;

struct Server {
    base: String,
    _dir: tempfile::TempDir,
    _mint: EmbeddedMint,
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(FakeBackend::new(FakeBackendConfig {
        pay_after_ms: Some(1500),
    }));
    // Two units, as an arcade would have: sat and its own `credit` (10 msat each).
    let config = MintConfig {
        units: vec![
            UnitConfig::new("sat"),
            UnitConfig {
                msat_per_unit: Some(10),
                ..UnitConfig::new("credit")
            },
        ],
        ..MintConfig::default()
    };
    let mint = EmbeddedMint::open(dir.path(), config, backend)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = TopupPage::new()
        .title("Top up Paid Search")
        .mint_url(&format!("http://{addr}"))
        .prices(|| {
            vec![
                PriceLine::new("GET", "/search", 2, "sat").description("One search"),
                PriceLine::new("POST", "/v1/chat/{model}", 500, "sat")
                    .metered()
                    .description("Chat, charged per token used"),
            ]
        })
        .router();
    let app = Router::new()
        .merge(coinslot::mint_api(mint.mint.clone(), Default::default()))
        .merge(page);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        base: format!("http://{addr}"),
        _dir: dir,
        _mint: mint,
    }
}

async fn new_wallet(mint_url: &str, unit: CurrencyUnit) -> Wallet {
    let mut seed = [0u8; 64];
    seed.copy_from_slice(
        &[
            SecretKey::generate().to_secret_bytes(),
            SecretKey::generate().to_secret_bytes(),
        ]
        .concat(),
    );
    let db = cdk_sqlite::wallet::memory::empty().await.unwrap();
    WalletBuilder::new()
        .mint_url(MintUrl::from_str(mint_url).unwrap())
        .unit(unit)
        .localstore(Arc::new(db))
        .seed(seed)
        .without_rate_limiting()
        .build()
        .unwrap()
}

/// Runs `script` until it returns something truthy; on time-out, panics with the page's
/// status and error texts.
const DEBUG_IDS: &[&str] = &["invoice-status", "token-state", "error-text"];

async fn wait_for(client: &Client, what: &str, script: &str) -> Value {
    browser::wait_for(client, what, script, DEBUG_IDS).await
}

/// Decodes every QR code in a PNG image.
fn decode_png_qr(png_bytes: &[u8]) -> Vec<String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let (w, h) = (info.width as usize, info.height as usize);
    let line = info.line_size;
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let p = &buf[y * line + x * channels..];
        match channels {
            1 | 2 => p[0],
            _ => ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8,
        }
    });
    image
        .detect_grids()
        .into_iter()
        .map(|grid| grid.decode().unwrap().1)
        .collect()
}

async fn canvas_png(client: &Client, id: &str) -> Vec<u8> {
    let url = js_string(
        client,
        &format!("return document.getElementById('{id}').toDataURL('image/png')"),
    )
    .await;
    let b64 = url.strip_prefix("data:image/png;base64,").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver: scripts/test.sh runs it when COINSLOT_BROWSER=1"]
async fn topup_in_a_real_browser() {
    let server = start_server().await;
    let driver = Browser::start().await;
    let client = driver.client.clone();
    // Run the checks in a task so that a failure still ends the browser session cleanly.
    let (c, base) = (client.clone(), server.base.clone());
    let outcome = tokio::spawn(async move {
        run_flow(&c, &base).await;
        crypto_and_qr_checks(&c).await;
    })
    .await;
    driver.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run_flow(client: &Client, base: &str) {
    let shots = screenshot_dir();
    client.goto(&format!("{base}/")).await.unwrap();

    // 1. The price table and the amount buttons.
    wait_for(
        client,
        "the price table",
        "return document.querySelectorAll('#prices tbody tr').length === 2",
    )
    .await;
    let prices = js_string(client, "return document.getElementById('prices').innerText").await;
    assert!(
        prices.contains("/search") && prices.contains("2 sat"),
        "{prices}"
    );
    assert!(
        prices.contains("up to 500 sat") && prices.contains("metered"),
        "{prices}"
    );
    assert_eq!(
        js_string(client, "return document.title").await,
        "Top up Paid Search"
    );
    let units = js_string(
        client,
        "return [...document.querySelectorAll('#units button')].map(b => b.textContent).join(',')",
    )
    .await;
    assert_eq!(units, "sat,credit", "the unit picker");
    let button = format!("#presets button[data-amount=\"{AMOUNT}\"]");
    wait_for(
        client,
        "the amount buttons",
        &format!("return !document.querySelector('{button}').disabled"),
    )
    .await;
    save_png(
        &shots.join("topup-start.png"),
        &client.screenshot().await.unwrap(),
    );
    let viewport = client
        .execute(
            "return [window.innerWidth, window.devicePixelRatio]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(viewport, json!([390, 2]), "phone-sized viewport");

    // 2. Click an amount: the invoice appears as text and as a QR code.
    client
        .find(Locator::Css(&button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let invoice = wait_for(
        client,
        "the invoice",
        "return document.getElementById('invoice-text').value",
    )
    .await;
    let invoice = invoice.as_str().unwrap().to_owned();
    assert!(invoice.starts_with("lnbcrt"), "{invoice}");
    let status = js_string(
        client,
        "return document.getElementById('invoice-status').textContent",
    )
    .await;
    assert!(status.contains("Waiting for payment"), "{status}");
    client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let shot = client.screenshot().await.unwrap();
    save_png(&shots.join("topup-invoice.png"), &shot);
    assert_eq!(
        decode_png_qr(&canvas_png(client, "invoice-qr").await),
        vec![invoice.clone()],
        "the invoice QR code (canvas) holds the invoice"
    );
    let element_shot = client
        .find(Locator::Id("invoice-qr"))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap();
    assert_eq!(
        decode_png_qr(&element_shot),
        vec![invoice.clone()],
        "the invoice QR code (screenshot) holds the invoice"
    );

    // 3. The fake backend pays after 1.5 s; the websocket tells the page.
    let via = wait_for(
        client,
        "the invoice to be paid",
        "return document.getElementById('invoice-status').dataset.paidVia",
    )
    .await;
    assert_eq!(via, json!("websocket"), "paid was noticed over NUT-17");

    // 4-5. The page mints and shows the token.
    let token_text = wait_for(
        client,
        "the token",
        "return document.getElementById('token-text').value",
    )
    .await;
    let token_text = token_text.as_str().unwrap().to_owned();
    assert!(token_text.starts_with("cashuB"), "{token_text}");
    println!("token ({} chars): {token_text}", token_text.len());
    assert!(
        js_string(
            client,
            "return document.getElementById('token-panel').hidden ? '' : 'shown'"
        )
        .await
            == "shown"
    );
    let token_qr = decode_png_qr(&canvas_png(client, "token-qr").await);
    assert_eq!(
        token_qr,
        vec![token_text.clone()],
        "the token QR code holds the token"
    );
    let element_shot = client
        .find(Locator::Id("token-qr"))
        .await
        .unwrap()
        .screenshot()
        .await
        .unwrap();
    assert_eq!(
        decode_png_qr(&element_shot),
        vec![token_text.clone()],
        "the token QR code (screenshot) holds the token"
    );
    let stored = js_string(
        client,
        "return localStorage.getItem('coinslot.topup.tokens') || ''",
    )
    .await;
    assert!(stored.contains(&token_text), "token kept in localStorage");
    client
        .execute("window.scrollTo(0, 0)", vec![])
        .await
        .unwrap();
    let shot = client.screenshot().await.unwrap();
    let token_shot = shots.join("topup-token.png");
    save_png(&token_shot, &shot);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(&token_shot, docs.join("topup.png")).unwrap();
    println!(
        "screenshot: {}",
        docs.join("topup.png").canonicalize().unwrap().display()
    );

    // It is real money: a cdk wallet receives it, once.
    let token = Token::from_str(&token_text).unwrap();
    assert_eq!(token.value().unwrap(), Amount::from(AMOUNT));
    assert_eq!(token.unit(), Some(CurrencyUnit::Sat));
    assert_eq!(token.mint_url().unwrap(), MintUrl::from_str(base).unwrap());
    let wallet = new_wallet(base, CurrencyUnit::Sat).await;
    let received = wallet
        .receive(&token_text, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(received, Amount::from(AMOUNT));
    let again = new_wallet(base, CurrencyUnit::Sat)
        .await
        .receive(&token_text, ReceiveOptions::default())
        .await;
    let err = again.expect_err("a spent token must not be received twice");
    assert!(
        matches!(err, cdk::Error::TokenAlreadySpent) || err.to_string().contains("spent"),
        "{err}"
    );

    // The page notices (NUT-07) that a wallet took it.
    wait_for(
        client,
        "the page to see the token spent",
        "return document.getElementById('token-state').dataset.spent === 'true'",
    )
    .await;

    // A reload keeps the token (it is dismissed only by the user).
    client.refresh().await.unwrap();
    let after_reload = wait_for(
        client,
        "the token after a reload",
        "return document.getElementById('token-text').value",
    )
    .await;
    assert_eq!(after_reload, json!(token_text));

    second_topup(client, base, &token_text).await;
}

/// Mint errors on the page, the polling fall-back and a second unit.
async fn second_topup(client: &Client, base: &str, first_token: &str) {
    click(client, "#token-again").await;
    wait_for(
        client,
        "the amount buttons",
        "return !document.querySelector('#presets button[data-amount=\"100\"]').disabled",
    )
    .await;

    // A mint error (`{detail, code}`) is shown as such: make the quote ask for a unit the
    // mint does not have.
    client
        .execute(
            "window._fetch = window.fetch;\
             window.fetch = (url, opts) => window._fetch(url, url === '/v1/mint/quote/bolt11'\
               ? Object.assign({}, opts, { body: JSON.stringify({ amount: 100, unit: 'nope' }) })\
               : opts);",
            vec![],
        )
        .await
        .unwrap();
    click(client, "#presets button[data-amount=\"100\"]").await;
    let error = wait_for(
        client,
        "the mint error",
        "return !document.getElementById('error').hidden && \
         document.getElementById('error-text').textContent",
    )
    .await;
    let error = error.as_str().unwrap();
    assert!(
        error.starts_with("The mint said: ") && error.contains("(code "),
        "{error}"
    );
    client
        .execute("window.fetch = window._fetch", vec![])
        .await
        .unwrap();
    click(client, "#error-close").await;

    // Without websockets the page polls; this time in the other unit, with the free field.
    client
        .execute(
            "window.WebSocket = function () { throw new Error('no websockets here'); }",
            vec![],
        )
        .await
        .unwrap();
    click(client, "#units button:nth-child(2)").await;
    client
        .find(Locator::Id("custom-amount"))
        .await
        .unwrap()
        .send_keys("42")
        .await
        .unwrap();
    click(client, "#custom-submit").await;
    let via = wait_for(
        client,
        "the second invoice to be paid",
        "return document.getElementById('invoice-status').dataset.paidVia",
    )
    .await;
    assert_eq!(via, json!("polling"), "paid was noticed by polling");
    let script = format!(
        "const t = document.getElementById('token-text').value; return t !== '{first_token}' && t"
    );
    let token_text = wait_for(client, "the second token", &script).await;
    let token_text = token_text.as_str().unwrap();
    let token = Token::from_str(token_text).unwrap();
    assert_eq!(token.value().unwrap(), Amount::from(42));
    let credit = CurrencyUnit::custom("credit");
    assert_eq!(token.unit(), Some(credit.clone()));
    let received = new_wallet(base, credit)
        .await
        .receive(token_text, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(received, Amount::from(42));
    // Both tokens are kept until dismissed; the older one is listed below.
    let kept = client
        .execute(
            "return [JSON.parse(localStorage.getItem('coinslot.topup.tokens')).length,\
                     document.querySelectorAll('#tokens li').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!([2, 1]));
    // Dismissing needs a confirmation unless a wallet already took the token.
    wait_for(
        client,
        "the page to see the second token spent",
        "return document.getElementById('token-state').dataset.spent === 'true'",
    )
    .await;
    click(client, "#token-dismiss").await;
    let kept = client
        .execute(
            "return [JSON.parse(localStorage.getItem('coinslot.topup.tokens')).length,\
                     document.getElementById('token-panel').hidden]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!([1, true]));

    lost_response(client, base).await;
}

/// The mint signs but its answer never arrives: the page keeps the blinded outputs, and a
/// reload gets the signatures back (NUT-09 restore). No paid top-up is ever lost.
async fn lost_response(client: &Client, base: &str) {
    client
        .execute(
            "window._fetch = window.fetch;\
             window.fetch = (url, opts) => url === '/v1/mint/bolt11'\
               ? window._fetch(url, opts).then(() => { throw new TypeError('connection lost'); })\
               : window._fetch(url, opts);",
            vec![],
        )
        .await
        .unwrap();
    click(client, "#units button:nth-child(1)").await;
    click(client, "#presets button[data-amount=\"100\"]").await;
    let error = wait_for(
        client,
        "the lost-response error",
        "return !document.getElementById('error').hidden && \
         document.getElementById('error-text').textContent",
    )
    .await;
    assert!(
        error.as_str().unwrap().contains("reload this page"),
        "{error}"
    );
    let pending = js_string(
        client,
        "return localStorage.getItem('coinslot.topup.pending') || ''",
    )
    .await;
    let pending: Value = serde_json::from_str(&pending).unwrap();
    assert_eq!(
        pending["outputs"].as_array().unwrap().len(),
        3,
        "100 = 4 + 32 + 64"
    );

    client.refresh().await.unwrap();
    wait_for(
        client,
        "the recovered token",
        "const t = JSON.parse(localStorage.getItem('coinslot.topup.tokens') || '[]');\
         return t.length === 2 && !localStorage.getItem('coinslot.topup.pending') &&\
           document.getElementById('token-text').value === t[1].token",
    )
    .await;
    let token_text = js_string(client, "return document.getElementById('token-text').value").await;
    let received = new_wallet(base, CurrencyUnit::Sat)
        .await
        .receive(&token_text, ReceiveOptions::default())
        .await
        .unwrap();
    assert_eq!(received, Amount::from(100));
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// The page's crypto and QR encoder against cdk and rqrr.
async fn crypto_and_qr_checks(client: &Client) {
    // NUT-00 hash_to_curve test vectors, and random messages against cdk.
    let mut messages: Vec<String> = vec![
        "0000000000000000000000000000000000000000000000000000000000000000".into(),
        "0000000000000000000000000000000000000000000000000000000000000001".into(),
        "0000000000000000000000000000000000000000000000000000000000000002".into(),
    ];
    for _ in 0..20 {
        messages.push(SecretKey::generate().to_secret_hex());
    }
    let js = client
        .execute(
            "return arguments[0].map(m => CoinslotCashu.hashToCurveHex(m))",
            vec![json!(messages)],
        )
        .await
        .unwrap();
    let js: Vec<String> = serde_json::from_value(js).unwrap();
    assert_eq!(
        js[0],
        "024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725"
    );
    assert_eq!(
        js[1],
        "022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf"
    );
    assert_eq!(
        js[2],
        "026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f"
    );
    for (message, y) in messages.iter().zip(&js) {
        let rust = hash_to_curve(&hex_bytes(message)).unwrap();
        assert_eq!(rust.to_hex(), *y, "hash_to_curve({message})");
    }

    // BDHKE round trips: the page blinds, the mint (here cdk) signs with a DLEQ proof, the
    // page checks the proof and unblinds, and cdk verifies the result.
    let keyset_id = Id::from_str("009a1f293253e41e").unwrap();
    for i in 0..5 {
        let k = SecretKey::generate();
        let secret = SecretKey::generate().to_secret_hex();
        let blinded = client
            .execute(
                "return CoinslotCashu.blind(arguments[0])",
                vec![json!(secret)],
            )
            .await
            .unwrap();
        let b = PublicKey::from_hex(blinded["B_"].as_str().unwrap()).unwrap();
        let r = SecretKey::from_hex(blinded["r"].as_str().unwrap()).unwrap();
        let (rust_b, _) = blind_message(secret.as_bytes(), Some(r.clone())).unwrap();
        assert_eq!(b, rust_b, "blinding #{i}");
        let c_ = sign_message(&k, &b).unwrap();
        let sig = BlindSignature::new(Amount::from(8), c_, keyset_id, &b, &k).unwrap();
        let dleq = sig.dleq.clone().unwrap();
        let out = client
            .execute(
                "const [b, c, e, s, K, r, bad] = arguments; return [\
                   CoinslotCashu.verifyDleq(b, c, e, s, K),\
                   CoinslotCashu.verifyDleq(b, c, bad, s, K),\
                   CoinslotCashu.unblind(c, r, K)]",
                vec![
                    json!(b.to_hex()),
                    json!(c_.to_hex()),
                    json!(dleq.e.to_secret_hex()),
                    json!(dleq.s.to_secret_hex()),
                    json!(k.public_key().to_hex()),
                    json!(r.to_secret_hex()),
                    json!(SecretKey::generate().to_secret_hex()),
                ],
            )
            .await
            .unwrap();
        assert_eq!(out[0], json!(true), "DLEQ #{i} verifies");
        assert_eq!(out[1], json!(false), "a wrong DLEQ #{i} does not");
        let c = PublicKey::from_hex(out[2].as_str().unwrap()).unwrap();
        verify_message(&k, c, secret.as_bytes()).unwrap();
    }

    // QR encoder: byte capacities from the standard, then every version 1–40 at levels L
    // and M filled to capacity (plus Q and H on small ones), decoded by rqrr.
    let caps = client
        .execute(
            "return [[1,'L'],[1,'M'],[1,'Q'],[1,'H'],[10,'M'],[10,'L'],[40,'L'],[40,'M'],[40,'H']]\
               .map(([v, l]) => CoinslotQR.capacity(v, l))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(caps, json!([17, 14, 11, 7, 213, 271, 2953, 2331, 1273]));
    let codes = client
        .execute(
            r#"const out = [];
               const cases = [];
               for (const level of ['L', 'M']) for (let v = 1; v <= 40; v++) cases.push([v, level]);
               for (let v = 1; v <= 10; v++) { cases.push([v, 'Q']); cases.push([v, 'H']); }
               for (const [v, level] of cases) {
                 const n = CoinslotQR.capacity(v, level);
                 let text = '';
                 for (let i = 0; i < n; i++) text += String.fromCharCode(33 + Math.floor(Math.random() * 94));
                 const qr = CoinslotQR.encode(text, { level });
                 out.push({ v, level, version: qr.version, text, rows: CoinslotQR.toText(qr) });
               }
               return out;"#,
            vec![],
        )
        .await
        .unwrap();
    let codes = codes.as_array().unwrap();
    assert_eq!(codes.len(), 100);
    for code in codes {
        let v = code["v"].as_u64().unwrap() as usize;
        let level = code["level"].as_str().unwrap();
        assert_eq!(code["version"].as_u64().unwrap() as usize, v, "{level}{v}");
        let rows: Vec<Vec<bool>> = code["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().chars().map(|c| c == '1').collect())
            .collect();
        assert_eq!(rows.len(), 4 * v + 17);
        let grid = rqrr::SimpleGrid::from_func(rows.len(), |x, y| rows[y][x]);
        let (meta, text) = rqrr::Grid::new(grid)
            .decode()
            .unwrap_or_else(|e| panic!("version {v} level {level}: {e:?}"));
        assert_eq!(text, code["text"].as_str().unwrap(), "{level}{v}");
        assert_eq!(meta.version.0, v);
        // rqrr reports the level as its format-information bits: L=1, M=0, Q=3, H=2.
        let bits = match level {
            "L" => 1,
            "M" => 0,
            "Q" => 3,
            _ => 2,
        };
        assert_eq!(meta.ecc_level, bits, "{level}{v}");
    }
    println!("QR encoder: {} codes decoded by rqrr", codes.len());
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
