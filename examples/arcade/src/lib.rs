//! An arcade-style credit site on Coinslot: its own unit (`credit`, 1 credit = 10 sat),
//! vouchers the operator prints, and two cabinets priced two ways.
//!
//! - **Pinball**, per play: `POST /games/pinball/play` costs [`ArcadeConfig::pinball_price`]
//!   credits (a fixed price). The server draws the score, so a play is worth paying for.
//! - **Racer**, per minute (metered): `POST /games/racer/run?run=<id>` reserves
//!   [`ArcadeConfig::racer_max_minutes`] minutes and stays open while the player drives; it
//!   ends with `POST /games/racer/stop?run=<id>` (free) or at the time limit, and is
//!   charged per started minute. The unused reservation comes back as change (or to the
//!   session that paid) through the layer's metered mode. If the player's connection drops,
//!   a session gets its reservation back; a token's run goes on to its end, and the same
//!   token sent again gets its result (the layer keeps the answer).
//!
//! Players pay from the wallet in their browser (plain JavaScript at `/`, proofs kept in
//! `localStorage`) or from a prepaid session. Credit comes from Lightning (the top-up page
//! at `/topup`) or from vouchers the operator prints with the admin API
//! (`POST /admin/credit` with `"form": "voucher"`), which the page redeems by swapping them
//! for fresh proofs, so a printed voucher works once.
//!
//! Routes: `/` (the arcade page), `/games` (catalogue and high scores), the two games,
//! `/topup`, the mint's Cashu API under `/v1`, sessions under `/cashu/session`, and the
//! operator's API under `/admin` (bearer tokens from `arcade admin-token`).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use coinslot::cashu::nuts::CurrencyUnit;
use coinslot::{
    Charge, EmbeddedMint, FakeBackend, FakeBackendConfig, Mint, MintConfig, Paid, PaywallLayer,
    Price, PriceTable, UnitConfig,
};
use coinslot_admin::{ActivityLog, Admin, AdminKey, ADMIN_KEY_FILE};
use coinslot_topup::{PriceLine, TopupPage};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The arcade's unit.
pub const CREDIT: &str = "credit";

/// How many high scores the board keeps.
const BOARD_SIZE: usize = 10;
/// Most runs (live, or stopped before they started) tracked at once.
const MAX_RUNS: usize = 10_000;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const ARCADE_JS: &str = include_str!("../assets/arcade.js");
const ARCADE_CSS: &str = include_str!("../assets/arcade.css");

/// Prices and clocks of the arcade.
#[derive(Debug, Clone)]
pub struct ArcadeConfig {
    /// Credits per pinball play.
    pub pinball_price: u64,
    /// Credits per started minute of racer.
    pub racer_per_minute: u64,
    /// Longest racer run, in minutes (the reservation is this many minutes).
    pub racer_max_minutes: u64,
    /// How long a minute is (shorter in tests and demos).
    pub minute: Duration,
    /// Millisatoshis per credit for Lightning top-ups.
    pub msat_per_credit: u64,
    /// How long the fake Lightning backend waits before it marks an invoice paid.
    pub pay_after: Duration,
}

impl Default for ArcadeConfig {
    fn default() -> Self {
        Self {
            pinball_price: 2,
            racer_per_minute: 1,
            racer_max_minutes: 5,
            minute: Duration::from_secs(60),
            msat_per_credit: 10_000,
            pay_after: Duration::from_secs(2),
        }
    }
}

impl ArcadeConfig {
    fn reservation(&self) -> u64 {
        self.racer_per_minute.saturating_mul(self.racer_max_minutes)
    }

    /// The mint's configuration: one unit, `credit`.
    pub fn mint_config(&self) -> MintConfig {
        let mut config = MintConfig {
            units: vec![UnitConfig {
                msat_per_unit: Some(self.msat_per_credit),
                max_order: 20,
                min_mint: 1,
                max_mint: 100_000,
                ..UnitConfig::new(CREDIT)
            }],
            invoice_description: "{name}: {amount} {unit}".into(),
            ..MintConfig::default()
        };
        config.info.name = "Coinslot Arcade".into();
        config.info.description = Some("Insert coin: credits for every cabinet".into());
        config
    }
}

/// The `credit` unit.
pub fn credit() -> CurrencyUnit {
    CurrencyUnit::Custom(CREDIT.into())
}

/// The mint and the operator's key, opened from one data directory.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The mint and its store.
    pub embedded: EmbeddedMint,
    /// Verifies admin tokens (the key file is `admin.key` in the data directory).
    pub admin_key: AdminKey,
}

/// Opens (or creates) the arcade's mint in `data_dir`, with the fake Lightning backend.
pub async fn open(data_dir: &Path, config: &ArcadeConfig) -> anyhow::Result<Opened> {
    let backend = Arc::new(FakeBackend::new(FakeBackendConfig {
        pay_after_ms: Some(config.pay_after.as_millis().try_into().unwrap_or(u64::MAX)),
    }));
    let embedded = EmbeddedMint::open(data_dir, config.mint_config(), backend).await?;
    let admin_key = AdminKey::load_or_create(&data_dir.join(ADMIN_KEY_FILE))?;
    Ok(Opened {
        embedded,
        admin_key,
    })
}

/// The arcade's router; `public_url` is where players reach it (and its mint).
pub fn app(
    mint: Mint,
    admin_key: AdminKey,
    public_url: &str,
    config: ArcadeConfig,
) -> anyhow::Result<Router> {
    let public_url = public_url.trim_end_matches('/');
    let pricing = PriceTable::new()
        .route(
            "POST",
            "/games/pinball/play",
            Price::new(config.pinball_price, credit()),
        )
        .route(
            "POST",
            "/games/racer/run",
            Price::metered(config.reservation(), credit()),
        );
    // A run may last its whole reservation; past that (plus a margin) it is a fault.
    let longest = config
        .minute
        .saturating_mul(u32::try_from(config.racer_max_minutes + 1).unwrap_or(u32::MAX));
    let paywall = PaywallLayer::new(mint.clone(), public_url, pricing)?
        .timeout(longest)
        .topup_page(&format!("{public_url}/topup"));
    let topup = TopupPage::new()
        .title("Buy arcade credit")
        .path("/topup")
        .mint_url(public_url)
        .amounts(vec![10, 50, 200])
        .prices(price_lines(&config))
        .router();
    let admin = coinslot_admin::router(Admin {
        activity: ActivityLog::follow(&mint, 256),
        mint: mint.clone(),
        mint_url: public_url
            .parse()
            .with_context(|| format!("public URL `{public_url}`"))?,
        key: admin_key,
        prices: None,
        max_credit: Some(100_000),
        nostr: None,
    });
    let arcade = Arcade {
        config,
        runs: Arc::new(Mutex::new(HashMap::new())),
        scores: Arc::new(Mutex::new(Vec::new())),
    };
    let games = Router::new()
        .route("/", get(index))
        .route("/_arcade/arcade.js", get(script))
        .route("/_arcade/arcade.css", get(style))
        .route("/games", get(catalogue))
        .route("/games/pinball/play", post(pinball))
        .route("/games/racer/run", post(racer_run))
        .route("/games/racer/stop", post(racer_stop))
        .with_state(arcade);
    Ok(Router::new()
        .merge(games)
        .merge(topup)
        .merge(admin)
        .merge(coinslot::mint_api(mint, Default::default()))
        // A fallback inside the layer, so the layer also sees /cashu/session.
        .fallback(not_found)
        .layer(paywall))
}

fn price_lines(config: &ArcadeConfig) -> impl Fn() -> Vec<PriceLine> + Send + Sync + 'static {
    let (play, minute, max) = (
        config.pinball_price,
        config.racer_per_minute,
        config.racer_max_minutes,
    );
    move || {
        vec![
            PriceLine::new("POST", "/games/pinball/play", play, CREDIT)
                .description("Pinball: one play"),
            PriceLine::new("POST", "/games/racer/run", minute * max, CREDIT)
                .metered()
                .description(format!(
                    "Racer: {minute} per started minute, up to {max} minutes"
                )),
        ]
    }
}

/// Serves [`app`] on `listener` until `shutdown` completes, then flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opened: Opened,
    public_url: &str,
    config: ArcadeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app(
        opened.embedded.mint.clone(),
        opened.admin_key,
        public_url,
        config,
    )?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    opened.embedded.store.flush().await?;
    Ok(())
}

/// A running arcade on a fresh `127.0.0.1` port (for tests and demos).
#[derive(Debug, Clone)]
pub struct Running {
    /// Its URL.
    pub url: String,
    /// Its mint and admin key.
    pub opened: Opened,
}

/// Opens the arcade in `data_dir` and serves it on `127.0.0.1:0` in a background task.
pub async fn spawn_on_loopback(data_dir: &Path, config: ArcadeConfig) -> anyhow::Result<Running> {
    let opened = open(data_dir, &config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = app(
        opened.embedded.mint.clone(),
        opened.admin_key.clone(),
        &url,
        config,
    )?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "arcade stopped");
        }
    });
    Ok(Running { url, opened })
}

#[derive(Clone)]
struct Arcade {
    config: ArcadeConfig,
    runs: Arc<Mutex<HashMap<String, RunSlot>>>,
    scores: Arc<Mutex<Vec<Score>>>,
}

/// A racer run the server knows of.
enum RunSlot {
    /// Driving; sending ends it.
    Live(oneshot::Sender<()>),
    /// Stopped before its run request arrived (the stop overtook it).
    Stopped(Instant),
}

#[derive(Debug, Clone, serde::Serialize)]
struct Score {
    player: String,
    score: u64,
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (
                CONTENT_SECURITY_POLICY,
                coinslot_topup::CONTENT_SECURITY_POLICY_VALUE,
            ),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", ARCADE_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", ARCADE_CSS)
}

async fn catalogue(State(arcade): State<Arcade>) -> Json<Value> {
    let c = &arcade.config;
    let scores = arcade.scores.lock().clone();
    Json(json!({
        "unit": CREDIT,
        "games": [
            {
                "id": "pinball", "name": "Pinball", "per": "play",
                "price": c.pinball_price, "path": "/games/pinball/play",
            },
            {
                "id": "racer", "name": "Racer", "per": "minute",
                "price": c.racer_per_minute, "max_minutes": c.racer_max_minutes,
                "reserve": c.reservation(), "minute_secs": c.minute.as_secs_f64(),
                "path": "/games/racer/run", "stop": "/games/racer/stop",
            },
        ],
        "scores": scores,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct PlayBody {
    player: Option<String>,
}

/// A player's name as shown on the board: printable, at most 16 characters.
fn player_name(body: &[u8]) -> String {
    let name: String = serde_json::from_slice::<PlayBody>(body)
        .unwrap_or_default()
        .player
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(16)
        .collect();
    let name = name.trim();
    if name.is_empty() {
        "anonymous".into()
    } else {
        name.to_string()
    }
}

/// One pinball play. Never fails: the play is paid before this runs, and any answer
/// under 500 keeps the payment.
async fn pinball(
    State(arcade): State<Arcade>,
    Extension(paid): Extension<Paid>,
    body: Bytes,
) -> Json<Value> {
    let player = player_name(&body);
    let score = rand::random::<u64>() % 99_000 / 10 * 10 + 1_000;
    let rank = {
        let mut board = arcade.scores.lock();
        board.push(Score {
            player: player.clone(),
            score,
        });
        board.sort_by_key(|s| std::cmp::Reverse(s.score));
        board.truncate(BOARD_SIZE);
        board
            .iter()
            .position(|s| s.score == score && s.player == player)
            .map(|i| i + 1)
    };
    tracing::info!(score, session = paid.session.is_some(), "pinball played");
    Json(json!({
        "game": "pinball",
        "player": player,
        "score": score,
        "rank": rank,
        "paid": { "amount": paid.amount, "unit": paid.unit.to_string(), "session": paid.session.is_some() },
    }))
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    run: Option<String>,
}

/// A run id from the client: 8 to 64 of `[A-Za-z0-9_-]`.
fn run_id(query: &RunQuery) -> Option<&str> {
    let id = query.run.as_deref()?;
    let ok = (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

/// Removes a live run when its request ends, however it ends.
struct RunGuard {
    runs: Arc<Mutex<HashMap<String, RunSlot>>>,
    id: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.id);
    }
}

/// A metered answer that charges `credits` (every answer of a metered route must say what
/// it charges, or the layer keeps the whole reservation).
fn charged(status: StatusCode, credits: u64, body: Value) -> Response {
    (status, Extension(Charge(credits)), Json(body)).into_response()
}

async fn racer_run(
    State(arcade): State<Arcade>,
    Query(query): Query<RunQuery>,
    Extension(paid): Extension<Paid>,
) -> Response {
    let Some(id) = run_id(&query).map(str::to_owned) else {
        return charged(
            StatusCode::BAD_REQUEST,
            0,
            json!({"error": "run: give ?run=<8 to 64 letters, digits, - or _>; nothing was charged"}),
        );
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    let stopped_early = {
        let mut runs = arcade.runs.lock();
        match runs.get(&id).map(|slot| matches!(slot, RunSlot::Live(_))) {
            Some(true) => {
                return charged(
                    StatusCode::CONFLICT,
                    0,
                    json!({"error": "this run is already driving; nothing was charged"}),
                )
            }
            Some(false) => {
                runs.remove(&id);
                true
            }
            None if runs.len() >= MAX_RUNS => {
                return charged(
                    StatusCode::SERVICE_UNAVAILABLE,
                    0,
                    json!({"error": "every track is busy, try again soon"}),
                )
            }
            None => {
                runs.insert(id.clone(), RunSlot::Live(stop_tx));
                false
            }
        }
    };
    let _guard = RunGuard {
        runs: Arc::clone(&arcade.runs),
        id: id.clone(),
    };
    let c = &arcade.config;
    let limit = c
        .minute
        .saturating_mul(u32::try_from(c.racer_max_minutes).unwrap_or(u32::MAX));
    let started = Instant::now();
    let ended = if stopped_early {
        "stopped"
    } else {
        tokio::select! {
            _ = stop_rx => "stopped",
            _ = tokio::time::sleep(limit) => "time limit",
        }
    };
    let elapsed = started.elapsed();
    let minute = c.minute.as_secs_f64().max(f64::EPSILON);
    let minutes = ((elapsed.as_secs_f64() / minute).ceil() as u64).clamp(1, c.racer_max_minutes);
    let credits = minutes.saturating_mul(c.racer_per_minute).min(paid.amount);
    tracing::info!(minutes, credits, ended, "racer run ended");
    charged(
        StatusCode::OK,
        credits,
        json!({
            "game": "racer",
            "run": id,
            "ended": ended,
            "minutes": minutes,
            "seconds": elapsed.as_secs_f64(),
            "charged": credits,
            "reserved": paid.amount,
            "unit": paid.unit.to_string(),
            "session": paid.session.is_some(),
        }),
    )
}

async fn racer_stop(State(arcade): State<Arcade>, Query(query): Query<RunQuery>) -> Response {
    let Some(id) = run_id(&query) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "run: give ?run=<the id the run was started with>"})),
        )
            .into_response();
    };
    let mut runs = arcade.runs.lock();
    match runs.remove(id) {
        Some(RunSlot::Live(stop)) => {
            let _ = stop.send(());
            Json(json!({"run": id, "stopped": true})).into_response()
        }
        Some(RunSlot::Stopped(at)) => {
            runs.insert(id.to_owned(), RunSlot::Stopped(at));
            Json(json!({"run": id, "stopped": true})).into_response()
        }
        None => {
            // The stop overtook its run request: remember it for a while.
            let now = Instant::now();
            runs.retain(|_, slot| match slot {
                RunSlot::Stopped(at) => now.duration_since(*at) < Duration::from_secs(600),
                RunSlot::Live(_) => true,
            });
            if runs.len() >= MAX_RUNS {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "every track is busy, try again soon"})),
                )
                    .into_response();
            }
            runs.insert(id.to_owned(), RunSlot::Stopped(now));
            (
                StatusCode::ACCEPTED,
                Json(json!({"run": id, "stopped": true, "pending": true})),
            )
                .into_response()
        }
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_names_are_cleaned() {
        assert_eq!(player_name(br#"{"player":"  Ada\n"}"#), "Ada");
        assert_eq!(player_name(b"not json"), "anonymous");
        assert_eq!(
            player_name(br#"{"player":"abcdefghijklmnopqrstuvwxyz"}"#).len(),
            16
        );
    }

    #[test]
    fn run_ids_are_checked() {
        let id = |s: &str| {
            run_id(&RunQuery {
                run: Some(s.into()),
            })
            .map(str::to_owned)
        };
        assert_eq!(id("abcd-1234"), Some("abcd-1234".into()));
        assert_eq!(id("short"), None);
        assert_eq!(id("has space in it"), None);
        assert_eq!(run_id(&RunQuery { run: None }), None);
    }
}
