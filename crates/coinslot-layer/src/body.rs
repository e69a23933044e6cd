//! [`ResponseBody`]: the inner service's body, or one the layer wrote itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

use crate::stored::Recorder;

pin_project! {
    /// The response body of [`Paywall`](crate::Paywall): the inner body unchanged, or a body
    /// the layer wrote (a `402` challenge, a Cashu error, a session answer).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Own { #[pin] body: Full<Bytes> },
        // The inner body, copied as it goes out so the response can be sent again.
        Recorded { #[pin] body: B, recorder: Option<Recorder> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// The inner body, kept by `recorder` once it has all been sent; other bodies as they are.
    pub(crate) fn recorded(self, recorder: Recorder) -> Self
    where
        B: Body,
    {
        match self.kind {
            Kind::Inner { body } if body.is_end_stream() => {
                recorder.finish();
                Self::inner(body)
            }
            Kind::Inner { body } => Self {
                kind: Kind::Recorded {
                    body,
                    recorder: Some(recorder),
                },
            },
            kind => Self { kind },
        }
    }

    pub(crate) fn own(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Own {
                body: Full::new(bytes.into()),
            },
        }
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { body } | Kind::Recorded { body, .. } => {
                f.debug_tuple("ResponseBody::Inner").field(body).finish()
            }
            Kind::Own { .. } => f.write_str("ResponseBody::Own"),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Own { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
            KindProj::Recorded { mut body, recorder } => {
                let polled = body.as_mut().poll_frame(cx);
                match &polled {
                    Poll::Pending => {}
                    Poll::Ready(Some(Ok(frame))) => {
                        // Trailers, or a body too large: not kept.
                        let kept = match (frame.data_ref(), recorder.as_mut()) {
                            (Some(data), Some(r)) => r.push(data),
                            _ => false,
                        };
                        if !kept {
                            *recorder = None;
                        } else if body.is_end_stream() {
                            if let Some(r) = recorder.take() {
                                r.finish();
                            }
                        }
                    }
                    Poll::Ready(Some(Err(_))) => *recorder = None,
                    Poll::Ready(None) => {
                        if let Some(r) = recorder.take() {
                            r.finish();
                        }
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } | Kind::Recorded { body, .. } => body.is_end_stream(),
            Kind::Own { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } | Kind::Recorded { body, .. } => body.size_hint(),
            Kind::Own { body } => body.size_hint(),
        }
    }
}
