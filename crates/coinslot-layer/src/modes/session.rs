//! Paying from a prepaid session: a client deposits a token once, gets a credential (a JWT,
//! HS256), and pays each request from a balance the mint keeps, with `X-Cashu-Session`.
//!
//! The credential only names the account (`sid`), its unit and an expiry; the balance lives
//! in the store, so a credential cannot be replayed into more value than was deposited. Per
//! request the layer does one HMAC check and one atomic debit. A request that carries an
//! `Idempotency-Key` is recorded like a token payment (the debit and the receipt in one
//! durable write), so its retry gets the stored answer instead of a second debit; without
//! one, every request is a new purchase.
//!
//! Endpoints, under the session path (default `/cashu/session`):
//!
//! | request                                   | answer                                      |
//! |-------------------------------------------|---------------------------------------------|
//! | `POST {path}` + `X-Cashu: <token>`        | opens a session with the token's value      |
//! | `POST {path}/topup` + credential + token  | adds the token's value, renews the credential|
//! | `GET {path}` + credential                 | the balance                                 |
//! | `DELETE {path}` + credential              | closes it: the balance back as a token      |
//!
//! An expired credential still reads, tops up and closes its session, so a balance can
//! never be stranded by a clock.

use bytes::Bytes;
use coinslot_mint::cashu::nuts::{CurrencyUnit, Proof};
use coinslot_mint::{Error, ErrorCode};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;

use crate::accounts::{self, Account, AccountKind};
use crate::body::BoxError;
use crate::proofs::{parse_token, wrong_unit};
use crate::settings::Ctx;
use crate::settle::Inner;
use crate::wire::errors::{self, attach_balance, Rejection, Reply};
use crate::wire::jwt::{CredentialError, SessionClaims};
use crate::wire::nut24::{self, HeaderError, X_CASHU_SESSION};
use crate::Price;

/// The session credential a request carries, if any.
pub(crate) fn find(headers: &HeaderMap) -> Result<Option<&str>, HeaderError> {
    nut24::find_session(headers)
}

/// A request at `price` paid from the session `credential` names.
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    credential: String,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let claims = match ctx.shared.keys.verify(&credential, false) {
        Ok(claims) => claims,
        Err(err) => return Rejection::unauthorized(err.to_string()).into_response(),
    };
    let unit_name = price.unit.to_string();
    if claims.unit != unit_name {
        return wrong_unit(&unit_name, &claims.unit).into_response();
    }
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(X_CASHU_SESSION);
    let request = Request::from_parts(parts, body);
    let account = Account {
        id: claims.sid,
        kind: AccountKind::Session,
        opens: None,
    };
    accounts::pay(ctx, inner, request, price, account).await
}

/// The session endpoints (see the module docs).
pub(crate) async fn endpoint<ReqBody, ResBody>(
    ctx: Ctx,
    request: Request<ReqBody>,
) -> Reply<ResBody> {
    let rest = request
        .uri()
        .path()
        .get(ctx.settings.session_path.len()..)
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    // Only the head is needed (and a body need not be `Sync` to be held across awaits).
    let (parts, _body) = request.into_parts();
    let headers = &parts.headers;
    let answer = match (parts.method.clone(), rest.as_str()) {
        (Method::POST, "") => open(&ctx, headers).await,
        (Method::POST, "/topup") => top_up(&ctx, headers).await,
        (Method::GET, "") => status(&ctx, headers).await,
        (Method::DELETE, "") => close(&ctx, headers).await,
        (_, "" | "/topup") => Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Generic,
            "use POST to open, POST /topup to top up, GET for the balance, DELETE to close",
        )),
        _ => Err(Rejection::new(
            StatusCode::NOT_FOUND,
            ErrorCode::Generic,
            "no such session endpoint",
        )),
    };
    answer.unwrap_or_else(Rejection::into_response)
}

fn claims(ctx: &Ctx, headers: &HeaderMap) -> Result<SessionClaims, Rejection> {
    let credential = find(headers)
        .map_err(|err| Rejection::bad_request(err.0))?
        .ok_or_else(|| {
            Rejection::unauthorized("this needs the session credential in X-Cashu-Session")
        })?;
    // An expired credential still reads, tops up and closes its own session: value is never
    // stranded by a clock.
    ctx.shared
        .keys
        .verify(credential, true)
        .map_err(|err| Rejection::unauthorized(err.to_string()))
}

fn token_from(headers: &HeaderMap, what: &str) -> Result<String, Rejection> {
    match nut24::find_token(headers) {
        Err(err) => Err(Rejection::bad_request(err.0)),
        Ok(None) => Err(Rejection::bad_request(format!(
            "{what} needs a token in the X-Cashu header"
        ))),
        Ok(Some((token, _))) => Ok(token),
    }
}

async fn open<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let token = token_from(headers, "opening a session")?;
    let (proofs, unit) = parse_token(ctx, &token)?;
    deposit(ctx, proofs, unit, None).await
}

async fn top_up<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    let token = token_from(headers, "a top-up")?;
    let (proofs, unit) = parse_token(ctx, &token)?;
    if unit.to_string() != claims.unit {
        return Err(wrong_unit(&claims.unit, &unit.to_string()));
    }
    deposit(ctx, proofs, unit, Some(claims.sid)).await
}

/// Spends `proofs` into a session (a new one when `sid` is `None`) and answers with a fresh
/// credential and the balance. A retried deposit finds its receipt and answers the same.
async fn deposit<B>(
    ctx: &Ctx,
    proofs: Vec<Proof>,
    unit: CurrencyUnit,
    sid: Option<String>,
) -> Result<Reply<B>, Rejection> {
    let topping_up = sid.is_some();
    let id = sid.unwrap_or_else(crate::wire::jwt::new_id);
    let min = ctx.settings.min_deposit;
    let same = id.clone();
    let earlier = move |earlier: &str| !topping_up || earlier == same;
    let sid = accounts::deposit(ctx, proofs, &unit, id, min, earlier).await?;
    answer(ctx, &sid, &unit).await
}

/// A session's credential (fresh) and balance.
async fn answer<B>(ctx: &Ctx, sid: &str, unit: &CurrencyUnit) -> Result<Reply<B>, Rejection> {
    let balance = ctx
        .mint()
        .account(sid)
        .await
        .map_err(|e| Rejection::mint(&e))?
        .map_or(0, |a| a.balance);
    let now = coinslot_mint::unix_now();
    let expires_at = now.saturating_add(ctx.settings.session_ttl.as_secs());
    let unit_name = unit.to_string();
    let credential = ctx
        .shared
        .keys
        .issue(sid, &unit_name, now, expires_at)
        .map_err(|err| {
            tracing::error!(error = %err, "could not sign a session credential");
            Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Generic,
                "could not sign the session credential; the deposit is kept, retry the same request",
            )
        })?;
    let mut response = errors::json(
        StatusCode::OK,
        &json!({
            "session": credential,
            "balance": balance,
            "unit": unit_name,
            "expires_at": expires_at,
        }),
    );
    if let Ok(value) = http::HeaderValue::from_str(&credential) {
        response.headers_mut().insert(X_CASHU_SESSION, value);
    }
    attach_balance(&mut response, balance, &unit_name);
    Ok(response)
}

async fn status<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    let account = ctx
        .mint()
        .account(&claims.sid)
        .await
        .map_err(|e| Rejection::mint(&e))?
        .ok_or_else(|| Rejection::unauthorized("session is closed or unknown"))?;
    let mut response = errors::json(
        StatusCode::OK,
        &json!({
            "balance": account.balance,
            "unit": account.unit.to_string(),
            "expires_at": claims.exp,
        }),
    );
    attach_balance(&mut response, account.balance, &claims.unit);
    Ok(response)
}

async fn close<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let claims = claims(ctx, headers)?;
    accounts::pay_out(ctx, &claims.sid, AccountKind::Session).await
}

/// The prepaid sessions of a paywall, for services outside its HTTP routes (a forward
/// proxy charging per megabyte): check a credential, take from its balance. From
/// [`PaywallLayer::sessions`](crate::PaywallLayer::sessions); cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) ctx: Ctx,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    /// Checks a credential's signature, audience and expiry (not the balance).
    pub fn verify(&self, credential: &str) -> Result<SessionClaims, CredentialError> {
        self.ctx.shared.keys.verify(credential.trim(), false)
    }

    /// Takes `amount` from the session's balance, atomically; the balance left. Fails with
    /// [`Error::InsufficientBalance`] (nothing taken) or [`Error::AccountNotFound`]
    /// (closed).
    pub async fn debit(&self, claims: &SessionClaims, amount: u64) -> Result<u64, Error> {
        let unit = claims
            .unit
            .parse()
            .map_err(|_| Error::UnsupportedUnit(claims.unit.clone()))?;
        self.ctx
            .mint()
            .debit_account(&claims.sid, &unit, amount)
            .await
    }
}
