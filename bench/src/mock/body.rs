//! The one response body type: a fixed buffer, or an SSE stream fed by a channel.
//!
//! A hand-written `http_body::Body` keeps the hot JSON path allocation-light
//! (one `Bytes`, no boxing) while letting SSE responses start with replayed
//! events and then follow a bounded channel until every sender is gone.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Capacity of an SSE channel: producers wait (backpressure) once it is full.
pub const STREAM_CAPACITY: usize = 64;

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// A complete body, sent in one frame (`None` once sent).
    Full(Option<Bytes>),
    /// Queued chunks first, then whatever arrives on `rx` until it closes.
    Stream {
        queued: VecDeque<Bytes>,
        rx: Option<mpsc::Receiver<Bytes>>,
    },
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Body::Full(Some(bytes.into()))
    }

    /// A streaming body that first yields `queued`, then follows `rx` if given.
    pub fn stream(queued: VecDeque<Bytes>, rx: Option<mpsc::Receiver<Bytes>>) -> Self {
        Body::Stream { queued, rx }
    }

    /// A fresh bounded channel and the body that drains it.
    pub fn channel() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        (tx, Body::stream(VecDeque::new(), Some(rx)))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream { queued, rx } => {
                if let Some(b) = queued.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                let Some(recv) = rx else {
                    return Poll::Ready(None);
                };
                match recv.poll_recv(cx) {
                    Poll::Ready(Some(b)) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    Poll::Ready(None) => {
                        *rx = None;
                        Poll::Ready(None)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream { queued, rx } => queued.is_empty() && rx.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream { .. } => SizeHint::default(),
        }
    }
}
