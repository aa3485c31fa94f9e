//! A request body: nothing, bytes in memory (which a request may sign), or a stream of known
//! length handed to the connection frame by frame, so that a large object is never held whole.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

pub struct Body(Inner);

enum Inner {
    Full(Option<Bytes>),
    Stream {
        left: u64,
        body: BoxBody<Bytes, Infallible>,
    },
}

impl Body {
    pub fn empty() -> Body {
        Body(Inner::Full(None))
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Inner::Full(Some(bytes.into())))
    }

    /// A body of exactly `len` bytes (its `Content-Length`) that `body` produces as the
    /// connection asks for them.
    pub fn stream<B>(len: u64, body: B) -> Body
    where
        B: http_body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static,
    {
        Body(Inner::Stream {
            left: len,
            body: body.boxed(),
        })
    }

    pub fn len(&self) -> u64 {
        match &self.0 {
            Inner::Full(bytes) => bytes.as_ref().map_or(0, |b| b.len() as u64),
            Inner::Stream { left, .. } => *left,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in memory (a streamed body cannot be hashed ahead).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Inner::Full(bytes) => Some(bytes.as_deref().unwrap_or_default()),
            Inner::Stream { .. } => None,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Full(_) => write!(f, "Body::Full({} bytes)", self.len()),
            Inner::Stream { left, .. } => write!(f, "Body::Stream({left} bytes left)"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::full(bytes)
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::full(bytes)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Inner::Full(bytes) => {
                let data = bytes.take().filter(|b| !b.is_empty());
                Poll::Ready(data.map(|data| Ok(Frame::data(data))))
            }
            Inner::Stream { left, body } => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    *left = left.saturating_sub(data.len() as u64);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}
