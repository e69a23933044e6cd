//! [`Paywall`]: the middleware service. It prices the request, finds the way it pays, and
//! hands it to that mode; free requests go straight to the inner service.

use std::task::{Context, Poll};

use bytes::Bytes;
use coinslot_mint::Event;
use http::{HeaderMap, Method, Request, Response};
use tower_service::Service;

use crate::body::{BoxError, RequestBody};
use crate::challenge;
use crate::future::ResponseFuture;
use crate::modes::{credential, key, pass, session, token};
use crate::settings::Ctx;
use crate::settle::Inner;
use crate::wire::errors::{refusal, Rejection, Reply};
use crate::wire::nut24::TokenSource;
use crate::wire::payment::{PaymentCredential as Credential, Problem};
use crate::{PassScope, Price, ResponseBody};

/// Middleware that charges for requests; built by [`PaywallLayer`](crate::PaywallLayer).
pub struct Paywall<S> {
    pub(crate) inner: S,
    pub(crate) ctx: Ctx,
}

impl<S: Clone> Clone for Paywall<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            ctx: self.ctx.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Paywall<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paywall")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What a request that costs something asks for.
enum Charge {
    /// A price per request.
    Price(Price),
    /// A pass of this scope (time).
    Scope(PassScope),
    /// The session endpoints.
    Sessions,
    /// The key balance endpoint.
    Keys,
}

/// The payment a request carries.
enum Carried {
    Pass(String),
    Credential(Box<Result<Credential, Problem>>),
    Token(String, TokenSource),
    /// A token used as an API key.
    Key(String),
    Session(String),
    Nothing,
    /// A payment header that cannot be read.
    Unreadable(Rejection),
}

/// Finds the payment in `headers`, in order of precedence: a pass (only on a pass scope's
/// routes), a `Payment` credential, a token (a key, when `keys` are kept and it came as
/// `Bearer`), a session credential. A header that is there but cannot be read is refused.
fn carried(headers: &HeaderMap, passes: bool, keys: bool) -> Carried {
    find(headers, passes, keys).unwrap_or_else(Carried::Unreadable)
}

fn find(headers: &HeaderMap, passes: bool, keys: bool) -> Result<Carried, Rejection> {
    let malformed = |err: crate::wire::nut24::HeaderError| Rejection::bad_request(err.0);
    if passes {
        if let Some(found) = pass::find(headers).map_err(malformed)? {
            return Ok(Carried::Pass(found.to_string()));
        }
    }
    if let Some(found) = credential::find(headers) {
        return Ok(Carried::Credential(Box::new(found)));
    }
    if let Some((found, source)) = token::find(headers).map_err(malformed)? {
        if keys && source == TokenSource::Bearer {
            return Ok(Carried::Key(found));
        }
        return Ok(Carried::Token(found, source));
    }
    if let Some(found) = session::find(headers).map_err(malformed)? {
        return Ok(Carried::Session(found.to_string()));
    }
    Ok(Carried::Nothing)
}

impl<S> Paywall<S> {
    /// What the request costs; `None` when it is free.
    fn charge(&self, parts: &http::request::Parts) -> Option<Charge> {
        let settings = &self.ctx.settings;
        // CORS preflights never carry payment and must not be refused, whatever the table says.
        if parts.method == Method::OPTIONS {
            return None;
        }
        let path = parts.uri.path();
        if let Some(scope) = settings.pass_scope(&parts.method, path) {
            return Some(Charge::Scope(scope.clone()));
        }
        if settings.is_session_path(path) {
            return Some(Charge::Sessions);
        }
        if settings.is_key_path(path) {
            return Some(Charge::Keys);
        }
        settings
            .pricing
            .price(parts)
            .filter(|price| price.amount > 0)
            .map(Charge::Price)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Paywall<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let charge = self.charge(&parts);
        let request = Request::from_parts(parts, body);
        let Some(charge) = charge else {
            return ResponseFuture::free(self.inner.call(request.map(RequestBody::plain)));
        };
        // The clone takes the place of the service that was polled ready (tower's rule).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let ctx = self.ctx.clone();
        ResponseFuture::paid(Box::pin(async move {
            Ok(dispatch(ctx, inner, request, charge).await)
        }))
    }
}

/// Hands a request that costs something to the mode of the payment it carries (one line
/// per mode); a request that carries none gets a `402`. Refusals go to the activity feed.
async fn dispatch<S, ReqBody, ResBody>(
    ctx: Ctx,
    inner: S,
    request: Request<ReqBody>,
    charge: Charge,
) -> Reply<ResBody>
where
    S: Inner<ReqBody, ResBody>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    let mint = ctx.mint().clone();
    let passes = matches!(charge, Charge::Scope(_));
    let keys = ctx.settings.key_path.is_some();
    let carried = carried(request.headers(), passes, keys);
    let reply = match (charge, carried) {
        (Charge::Sessions, _) => return session::endpoint(ctx, request).await,
        (Charge::Keys, _) => return key::endpoint(ctx, request).await,
        (_, Carried::Unreadable(rejection)) => rejection.into_response(),
        (Charge::Price(price), Carried::Credential(found)) => match *found {
            Ok(found) => credential::pay(ctx, inner, request, price, found).await,
            Err(problem) => credential::unreadable(&ctx, request, &price, problem).await,
        },
        (Charge::Price(price), Carried::Token(found, source)) => {
            token::pay(ctx, inner, request, price, found, source).await
        }
        (Charge::Price(price), Carried::Key(found)) => {
            key::pay(ctx, inner, request, price, found).await
        }
        (Charge::Price(price), Carried::Session(found)) => {
            session::pay(ctx, inner, request, price, found).await
        }
        (Charge::Price(price), Carried::Pass(_) | Carried::Nothing) => {
            let (parts, body) = request.into_parts();
            challenge::payment_required(&ctx, &price, &parts, body, None).await
        }
        (Charge::Scope(scope), Carried::Pass(found)) => {
            pass::open(ctx, inner, request, scope, found).await
        }
        (Charge::Scope(scope), Carried::Credential(found)) => match *found {
            Ok(found) => credential::buy_pass(ctx, inner, request, scope, found).await,
            Err(problem) => credential::unreadable(&ctx, request, scope.price(), problem).await,
        },
        (Charge::Scope(scope), Carried::Token(found, source)) => {
            token::buy_pass(ctx, inner, request, scope, found, source).await
        }
        (Charge::Scope(scope), Carried::Key(found)) => {
            token::buy_pass(ctx, inner, request, scope, found, TokenSource::Bearer).await
        }
        (Charge::Scope(scope), Carried::Session(_) | Carried::Nothing) => {
            pass::payment_required(&ctx, request, &scope).await
        }
    };
    if let Some(reason) = refusal(&reply) {
        mint.record(Event::Refused { reason });
    }
    reply
}
