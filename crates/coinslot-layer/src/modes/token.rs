//! Paying with a token (NUT-24): `X-Cashu: cashuB…`, `Authorization: Cashu <token>` or
//! `Authorization: Bearer cashu…` where the paywall keeps no key balances (else that is a
//! key: see the key mode).
//!
//! The token is checked (this mint, the price's unit, known keysets), then spent by one
//! durable write that also records the receipt of the run it buys; only then does the
//! handler run. Overpayment comes back as change in `X-Cashu`. A token that is spent
//! already is a retry, answered by its receipt. On a pass scope's routes the token buys a
//! pass instead (as many minutes as it pays for) and the request goes through on it.

use bytes::Bytes;
use coinslot_mint::Error;
use http::{HeaderMap, Request};

use crate::accounts::key_account;
use crate::body::{BoxError, RequestBody};
use crate::passes::{Passes, Sale};
use crate::proofs::{parse_inputs, wrong_unit};
use crate::receipt::{content_length, hash_body, request_head, running, PayerKind};
use crate::settings::Ctx;
use crate::settle::{self, Inner};
use crate::wire::errors::{Rejection, Reply};
use crate::wire::nut24::{self, HeaderError, TokenSource};
use crate::{PassScope, Price, Retry};

/// The token a request carries, if any.
pub(crate) fn find(headers: &HeaderMap) -> Result<Option<(String, TokenSource)>, HeaderError> {
    nut24::find_token(headers)
}

/// A request at `price` paid with `token`.
pub(crate) async fn pay<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    price: Price,
    token: String,
    source: TokenSource,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (proofs, unit) = match parse_inputs(&ctx, &token) {
        Ok(parsed) => parsed,
        Err(rejection) => return rejection.into_response(),
    };
    if unit != price.unit {
        return wrong_unit(&price.unit.to_string(), &unit.to_string()).into_response();
    }
    let key = proofs.receipt_key();
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(source.header());
    let taken = settle::take_price(&ctx, &parts, proofs, &price, key).await;
    let request = Request::from_parts(parts, body);
    match taken {
        Ok(run) => {
            let content_length = content_length(request.headers());
            let (request, seen) = hash_body(request);
            let key_account = ctx.settings.key_path.as_ref().map(|_| key_account(&token));
            let ticket = run.ticket(HeaderMap::new(), seen, content_length, key_account);
            settle::run(ctx, inner, request, ticket).await
        }
        Err(Error::TokenAlreadySpent) => {
            let request = request.map(RequestBody::plain);
            settle::retry(&ctx, inner, request, key, HeaderMap::new())
                .await
                .into_response(&ctx)
        }
        Err(err) => Rejection::mint(&err).into_response(),
    }
}

/// A request on a pass scope's routes paid with `token`: it buys a pass (the credential
/// comes back in `X-Cashu-Pass`), which opens this request.
pub(crate) async fn buy_pass<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    scope: PassScope,
    token: String,
    source: TokenSource,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(source.header());
    let run = running(
        request_head(&parts),
        Retry::Stored,
        PayerKind::Pass,
        &ctx.settings,
        ctx.shared.instance,
    );
    let request = Request::from_parts(parts, body);
    let passes = Passes { ctx: ctx.clone() };
    match passes.sell(&token, &scope, None, None, Some(run)).await {
        Ok(Sale::Bought(bought, record)) => {
            let length = content_length(request.headers());
            let (request, seen) = hash_body(request);
            let ticket = bought.ticket(&ctx, record, HeaderMap::new(), seen, length);
            settle::run(ctx, inner, request, ticket).await
        }
        Ok(Sale::Retry(key)) => {
            let request = request.map(RequestBody::plain);
            settle::retry(&ctx, inner, request, key, HeaderMap::new())
                .await
                .into_response(&ctx)
        }
        Err(refusal) => refusal.into_response(&ctx),
    }
}
