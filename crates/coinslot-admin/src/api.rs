//! The `/admin` routes.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coinslot_mint::cashu::mint_url::MintUrl;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Token};
use coinslot_mint::{Event, Mint};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::activity::ActivityLog;
use crate::auth::{AdminKey, Claims, Scope};
use crate::voucher::Voucher;

/// What a [`PriceBook`] change returns: the prices in force after it, or why it was refused.
pub type PriceChange<'a> = Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>>;

/// Prices the admin API can read and change (implemented by `coinslotd` over its proxy and
/// its store, which every instance on it shares).
pub trait PriceBook: Send + Sync + 'static {
    /// The prices in force, as JSON.
    fn prices(&self) -> Value;
    /// Replaces the prices, durably; returns the new ones, or why `prices` was refused
    /// (nothing changes then).
    fn set_prices(&self, prices: Value) -> PriceChange<'_>;
    /// Goes back to the prices of the configuration, durably.
    fn reset_prices(&self) -> PriceChange<'_>;
}

/// The mint's state on nostr, for `GET /admin/nostr` (implemented by `coinslotd` over its
/// nostr service, so this crate does not depend on nostr).
pub trait NostrStatus: Send + Sync + 'static {
    /// The report as JSON: relays, the announcement, recommendations of this mint.
    fn report(&self) -> Pin<Box<dyn Future<Output = Value> + Send + '_>>;
}

/// What the admin routes work on.
pub struct Admin {
    /// The mint.
    pub mint: Mint,
    /// The mint's public URL (written into tokens and vouchers).
    pub mint_url: MintUrl,
    /// Verifies admin tokens.
    pub key: AdminKey,
    /// Recent activity.
    pub activity: ActivityLog,
    /// Prices, if this server has any to change.
    pub prices: Option<Arc<dyn PriceBook>>,
    /// The largest credit one call may issue, per unit (`None`: no limit).
    pub max_credit: Option<u64>,
    /// The nostr service, when the mint is on nostr.
    pub nostr: Option<Arc<dyn NostrStatus>>,
}

/// The admin API, to be merged at the root (its routes start with `/admin`).
pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/admin/whoami", get(whoami))
        .route("/admin/liabilities", get(liabilities))
        .route("/admin/audit", get(audit))
        .route("/admin/earnings", get(earnings))
        .route("/admin/activity", get(activity))
        .route("/admin/keysets", get(keysets))
        .route("/admin/keysets/rotate", post(rotate))
        .route("/admin/credit", post(credit))
        .route(
            "/admin/prices",
            get(prices).put(set_prices).delete(reset_prices),
        )
        .route("/admin/nostr", get(nostr))
        .route("/admin/passes", get(passes))
        .route("/admin/passes/{id}/revoke", post(revoke_pass))
        .merge(crate::dashboard::routes())
        .with_state(Arc::new(admin))
}

type Shared = State<Arc<Admin>>;

/// An admin API answer that is not a success.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl Refusal {
    fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
        }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    fn mint(err: &coinslot_mint::Error) -> Self {
        if err.is_internal() {
            tracing::error!(error = %err, "admin action failed");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                err.to_string(),
            )
        } else {
            Self::bad_request(err.to_string())
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.error, "detail": self.detail })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coinslot-admin\""),
            );
        }
        response
    }
}

/// The bearer token's claims, if it is valid and grants `scope`.
fn authorize(admin: &Admin, headers: &HeaderMap, scope: Scope) -> Result<Claims, Refusal> {
    let unauthorized =
        |detail: String| Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("an admin token is required: Authorization: Bearer <token> (make one with `coinslotd admin token`)".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
    let claims = admin
        .key
        .verify(token)
        .map_err(|e| unauthorized(e.to_string()))?;
    if !claims.allows(scope) {
        tracing::warn!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, needed = %scope, "admin action refused: missing scope");
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the `{scope}` scope"),
        ));
    }
    Ok(claims)
}

async fn whoami(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Read)?;
    Ok(Json(json!({
        "sub": claims.sub,
        "scopes": claims.scope.split_whitespace().collect::<Vec<_>>(),
        "expires_at": claims.exp,
    })))
}

async fn liabilities(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let report = admin
        .mint
        .liabilities()
        .await
        .map_err(|e| Refusal::mint(&e))?;
    Ok(Json(json!(report)))
}

/// `GET /admin/audit`: the books checked (200 either way; `ok` says whether they add up).
async fn audit(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let audit = admin.mint.audit().await.map_err(|e| Refusal::mint(&e))?;
    if !audit.ok {
        tracing::error!(violations = ?audit.violations, "the audit found books that do not add up");
    }
    Ok(Json(json!(audit)))
}

/// The longest period `GET /admin/earnings` reads: 90 days.
const MAX_EARNINGS_HOURS: u64 = 90 * 24;

#[derive(Debug, Deserialize)]
struct EarningsQuery {
    hours: Option<u64>,
}

/// `GET /admin/earnings?hours=N`: the ledger of the last `N` hours (24 by default, this
/// hour included), per hour and summed per route, every instance's on a shared store.
async fn earnings(
    State(admin): Shared,
    headers: HeaderMap,
    query: Result<Query<EarningsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let Query(query) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let hours = query.hours.unwrap_or(24);
    if !(1..=MAX_EARNINGS_HOURS).contains(&hours) {
        return Err(Refusal::bad_request(format!(
            "hours: {hours} is not between 1 and {MAX_EARNINGS_HOURS}"
        )));
    }
    let now = coinslot_mint::unix_now();
    let since = now.saturating_sub((hours - 1) * coinslot_mint::earnings::HOUR);
    let earnings = admin
        .mint
        .earnings(since)
        .await
        .map_err(|e| Refusal::mint(&e))?;
    let mut body = json!(earnings);
    body["now"] = json!(now);
    Ok(Json(body))
}

/// `GET /admin/nostr`: relays, the announcement, and who recommends this mint.
async fn nostr(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    match &admin.nostr {
        Some(nostr) => Ok(Json(nostr.report().await)),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the mint is not on nostr: set `[nostr] relays` or COINSLOT_NOSTR_RELAYS",
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ActivityQuery {
    limit: Option<usize>,
}

async fn activity(
    State(admin): Shared,
    headers: HeaderMap,
    Query(query): Query<ActivityQuery>,
) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    Ok(Json(json!({ "activity": admin.activity.recent(limit) })))
}

async fn keysets(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    Ok(Json(json!(admin.mint.keysets())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    unit: String,
}

fn unit_of(name: &str) -> Result<CurrencyUnit, Refusal> {
    CurrencyUnit::from_str(name).map_err(|e| Refusal::bad_request(format!("unit `{name}`: {e}")))
}

async fn rotate(
    State(admin): Shared,
    headers: HeaderMap,
    body: Result<Json<RotateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Keys)?;
    let Json(request) = body.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let unit = unit_of(&request.unit)?;
    let keyset = admin
        .mint
        .rotate_keyset(&unit)
        .await
        .map_err(|e| Refusal::mint(&e))?;
    tracing::info!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, action = "rotate_keyset", unit = %unit, keyset = %keyset.id, "admin action");
    admin.mint.record(Event::KeysetRotated {
        unit: unit.clone(),
        keyset: keyset.id.to_string(),
        by: claims.sub.clone(),
    });
    Ok(Json(json!({ "unit": unit.to_string(), "keyset": keyset })))
}

async fn passes(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let now = coinslot_mint::unix_now();
    let mut live = admin
        .mint
        .passes(now)
        .await
        .map_err(|e| Refusal::mint(&e))?;
    live.sort_by_key(|p| p.expires_at);
    Ok(Json(json!({ "now": now, "passes": live })))
}

async fn revoke_pass(
    State(admin): Shared,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Value>, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Issue)?;
    let pass = admin
        .mint
        .revoke_pass(&id)
        .await
        .map_err(|e| Refusal::mint(&e))?
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not_found", format!("no pass {id}")))?;
    tracing::info!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, action = "revoke_pass", pass = %id, scope = %pass.scope, "admin action");
    Ok(Json(json!({ "pass": pass })))
}

/// The forms credit can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Form {
    /// A paid mint quote: the user mints it with any wallet.
    Quote,
    /// A ready token.
    Token,
    /// A printable page with the token as a QR code.
    Voucher,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Quote => "quote",
            Form::Token => "token",
            Form::Voucher => "voucher",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditRequest {
    amount: u64,
    unit: String,
    form: Form,
    #[serde(default)]
    memo: Option<String>,
}

async fn credit(
    State(admin): Shared,
    headers: HeaderMap,
    body: Result<Json<CreditRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Issue)?;
    let Json(request) = body.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let unit = unit_of(&request.unit)?;
    if request.amount == 0 {
        return Err(Refusal::bad_request("amount: must be at least 1"));
    }
    if let Some(max) = admin.max_credit.filter(|max| request.amount > *max) {
        return Err(Refusal::bad_request(format!(
            "amount: {} is above this server's limit of {max} per credit",
            request.amount
        )));
    }
    let memo = request.memo.unwrap_or_default();
    let response = match request.form {
        Form::Quote => {
            let description = if memo.is_empty() {
                "operator credit".to_string()
            } else {
                memo.clone()
            };
            let quote = admin
                .mint
                .issue_credit_quote(&unit, request.amount, &description)
                .await
                .map_err(|e| Refusal::mint(&e))?;
            (
                StatusCode::CREATED,
                Json(json!({
                    "form": "quote",
                    "quote": quote.quote,
                    "amount": request.amount,
                    "unit": unit.to_string(),
                    "mint": admin.mint_url.to_string(),
                    "state": quote.state,
                })),
            )
                .into_response()
        }
        Form::Token | Form::Voucher => {
            let proofs = admin
                .mint
                .issue_proofs(&unit, request.amount)
                .await
                .map_err(|e| Refusal::mint(&e))?;
            let memo_field = (!memo.is_empty()).then(|| memo.clone());
            let token =
                Token::new(admin.mint_url.clone(), proofs, memo_field, unit.clone()).to_string();
            if request.form == Form::Token {
                (
                    StatusCode::CREATED,
                    Json(json!({
                        "form": "token",
                        "token": token,
                        "amount": request.amount,
                        "unit": unit.to_string(),
                    })),
                )
                    .into_response()
            } else {
                let unit_name = unit.to_string();
                let mint_url = admin.mint_url.to_string();
                let voucher = Voucher {
                    token: &token,
                    amount: request.amount,
                    unit: &unit_name,
                    mint_url: &mint_url,
                    memo: &memo,
                };
                // The proofs exist now: a page that cannot be drawn still hands the token over.
                let page = voucher.html().unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "voucher without QR code");
                    format!("<pre>{token}</pre>")
                });
                (
                    StatusCode::CREATED,
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    page,
                )
                    .into_response()
            }
        }
    };
    tracing::info!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, action = "credit", form = request.form.name(), amount = request.amount, unit = %unit, "admin action");
    admin.mint.record(Event::CreditIssued {
        unit,
        amount: request.amount,
        form: request.form.name().into(),
        by: claims.sub,
    });
    Ok(response)
}

async fn prices(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    authorize(&admin, &headers, Scope::Read)?;
    let book = admin.prices.as_ref().ok_or_else(no_prices)?;
    Ok(Json(book.prices()))
}

fn no_prices() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this server has no price table (no [proxy] upstreams configured)",
    )
}

async fn set_prices(
    State(admin): Shared,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Prices)?;
    let Json(prices) = body.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let book = admin.prices.as_ref().ok_or_else(no_prices)?;
    let updated = book
        .set_prices(prices)
        .await
        .map_err(Refusal::bad_request)?;
    tracing::info!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, action = "set_prices", "admin action");
    admin.mint.record(Event::PricesChanged { by: claims.sub });
    Ok(Json(updated))
}

async fn reset_prices(State(admin): Shared, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    let claims = authorize(&admin, &headers, Scope::Prices)?;
    let book = admin.prices.as_ref().ok_or_else(no_prices)?;
    let updated = book.reset_prices().await.map_err(Refusal::bad_request)?;
    tracing::info!(target: "coinslot::admin", who = %claims.sub, token_id = %claims.jti, action = "reset_prices", "admin action");
    admin.mint.record(Event::PricesChanged { by: claims.sub });
    Ok(Json(updated))
}
