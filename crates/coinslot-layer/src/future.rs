//! [`ResponseFuture`] of [`Paywall`](crate::Paywall).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

use crate::ResponseBody;

pin_project! {
    /// Response future of [`Paywall`](crate::Paywall). Free requests poll the inner future
    /// directly (no allocation); paid requests run the payment, the handler and the
    /// settlement in one boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Free { #[pin] future: F },
        Paid { future: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn free(future: F) -> Self {
        Self {
            kind: Kind::Free { future },
        }
    }

    pub(crate) fn paid(future: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>>) -> Self {
        Self {
            kind: Kind::Paid { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Free { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(ResponseBody::inner))),
            KindProj::Paid { future } => future.as_mut().poll(cx),
        }
    }
}
