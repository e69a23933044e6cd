//! [`Paywall`]: the middleware service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::{Settings, Shared};
use crate::{paywall, ResponseBody};

/// Middleware that charges for requests; built by [`PaywallLayer`](crate::PaywallLayer).
pub struct Paywall<S> {
    pub(crate) inner: S,
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Arc<Shared>,
}

impl<S: Clone> Clone for Paywall<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Paywall<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display + Send + 'static,
    ReqBody: http_body::Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let settings = &self.settings;
        if request.method() != http::Method::OPTIONS {
            let scope = settings.pass_scope(request.method(), request.uri().path());
            if let Some(scope) = scope.cloned() {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let (settings, shared) = (Arc::clone(&self.settings), Arc::clone(&self.shared));
                return ResponseFuture::paid(Box::pin(paywall::passed(
                    settings, shared, inner, request, scope,
                )));
            }
        }
        let session_endpoint = paywall::is_session_path(settings, request.uri().path());
        let (parts, body) = request.into_parts();
        // CORS preflights never carry payment and must not be refused, whatever the table says.
        let price = if session_endpoint || parts.method == http::Method::OPTIONS {
            None
        } else {
            settings.pricing.price(&parts).filter(|p| p.amount > 0)
        };
        let request = Request::from_parts(parts, body);
        if !session_endpoint && price.is_none() {
            return ResponseFuture::free(self.inner.call(request));
        }
        // The clone takes the place of the service that was polled ready (tower's rule).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        let shared = Arc::clone(&self.shared);
        let future = match price {
            Some(price) => Box::pin(paywall::paid(settings, shared, inner, request, price))
                as futures::future::BoxFuture<'static, _>,
            None => Box::pin(paywall::session_endpoint(settings, shared, request)),
        };
        ResponseFuture::paid(future)
    }
}
