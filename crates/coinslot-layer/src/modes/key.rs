//! The token as an API key: `Authorization: Bearer cashuB…` (what OpenAI-style SDKs send
//! as their key) opens a balance keyed by the token itself on its first use (one atomic
//! deposit of the whole token), and every request with the same key is paid from it, like
//! a prepaid session, its answer carrying the balance (`X-Cashu-Balance`). Two requests on
//! one key never overdraw it: each debit is atomic, and a metered reservation is held until
//! its answer ends.
//!
//! Endpoints, at the key path (default `/cashu/balance`), with the same key in
//! `Authorization: Bearer` (or `X-Cashu`):
//!
//! | request          | answer                                                   |
//! |------------------|----------------------------------------------------------|
//! | `GET {path}`     | `{"balance", "unit"}` (opening the key if it is new)     |
//! | `DELETE {path}`  | `{"token", "amount", "unit"}`: the rest, paid out once   |
//!
//! The balance lives in the mint's store under a hash of the key, so instances on one store
//! share it; a key paid out is spent for good.

use bytes::Bytes;
use coinslot_mint::ErrorCode;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;

use crate::accounts::{self, key_account, Account, AccountKind};
use crate::body::BoxError;
use crate::settings::Ctx;
use crate::settle::Inner;
use crate::wire::errors::{self, attach_balance, Rejection, Reply};
use crate::wire::nut24;
use crate::Price;

/// A request at `price` paid from the balance of the key `token` (opened by this request
/// when it is new).
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    token: String,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(http::header::AUTHORIZATION);
    let request = Request::from_parts(parts, body);
    let account = Account {
        id: key_account(&token),
        kind: AccountKind::Key,
        opens: Some(token),
    };
    accounts::pay(ctx, inner, request, price, account).await
}

/// The key endpoint (see the module docs).
pub(crate) async fn endpoint<ReqBody, ResBody>(
    ctx: Ctx,
    request: Request<ReqBody>,
) -> Reply<ResBody> {
    let (parts, _body) = request.into_parts();
    let answer = match parts.method {
        Method::GET => status(&ctx, &parts.headers).await,
        Method::DELETE => match key_of(&parts.headers) {
            Ok(token) => accounts::pay_out(&ctx, &key_account(&token), AccountKind::Key).await,
            Err(rejection) => Err(rejection),
        },
        _ => Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Generic,
            "use GET for the balance of the key in Authorization: Bearer, DELETE to take it back as a token",
        )),
    };
    answer.unwrap_or_else(Rejection::into_response)
}

fn key_of(headers: &HeaderMap) -> Result<String, Rejection> {
    match nut24::find_token(headers) {
        Err(err) => Err(Rejection::bad_request(err.0)),
        Ok(Some((token, _))) => Ok(token),
        Ok(None) => Err(Rejection::unauthorized(
            "this needs the key (a cashuA or cashuB token) in Authorization: Bearer",
        )),
    }
}

async fn status<B>(ctx: &Ctx, headers: &HeaderMap) -> Result<Reply<B>, Rejection> {
    let token = key_of(headers)?;
    let id = key_account(&token);
    let account = match read(ctx, &id).await? {
        Some(account) => account,
        // A new key: opening it moves the token's value into its balance.
        None => {
            accounts::open_key(ctx, &token, &id, None).await?;
            read(ctx, &id)
                .await?
                .ok_or_else(|| Rejection::unauthorized(AccountKind::Key.gone()))?
        }
    };
    let unit = account.unit.to_string();
    let mut response = errors::json(
        StatusCode::OK,
        &json!({ "balance": account.balance, "unit": unit }),
    );
    attach_balance(&mut response, account.balance, &unit);
    Ok(response)
}

async fn read(ctx: &Ctx, id: &str) -> Result<Option<coinslot_mint::AccountRecord>, Rejection> {
    ctx.mint()
        .account(id)
        .await
        .map_err(|e| Rejection::mint(&e))
}
