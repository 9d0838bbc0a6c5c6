//! Checks the raw framing of a client's chunked request body as pingora
//! reads it.
//!
//! pingora decodes chunked request bodies with httparse's
//! `parse_chunk_size`, which is lenient: whitespace between a chunk size and
//! its line end, or a bare LF inside a chunk extension, are skipped over. A
//! framing that two parsers read differently is how requests are smuggled,
//! so mcpgate refuses it. pingora gives no access to the raw body bytes, so
//! the client connection is wrapped: [`Tapped`] passes every read through
//! and shows the bytes to a [`Tap`], which keeps the bytes of a request head
//! (bounded) until it is known whether the body is chunked, then checks the
//! rest incrementally with the strict [`ChunkDecoder`] and keeps nothing.
//! Bodies are read whole before any upstream contact, so a framing error
//! found here refuses the request before a byte of it is forwarded.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::protocols::{Peek, Stream};
use tokio::io::{AsyncRead, ReadBuf};

use crate::accept::batching::{impl_batched_connection, Held, ReadAhead};
use crate::accept::chunked::{ChunkDecoder, ChunkError};

/// Most bytes kept while a request head is read (pingora refuses heads over
/// 1 MiB; one more read may follow the head).
const MAX_RECORDED: usize = 1024 * 1024 + 64 * 1024;

#[derive(Debug, Default)]
enum State {
    /// Between requests, or a body that is not chunked.
    #[default]
    Off,
    /// A head is being read: its bytes (and any body bytes after them).
    Recording(Vec<u8>),
    /// A chunked body is being read.
    Checking(ChunkDecoder),
    /// The body broke the framing.
    Failed(ChunkError),
}

/// What one connection's reads showed about the current request's framing.
#[derive(Debug, Default)]
pub struct Tap(Mutex<State>);

impl Tap {
    /// A request head is about to be read; `prefix`: bytes of it that an
    /// earlier read already took (pipelining).
    pub fn begin_request(&self, prefix: &[u8]) {
        *self.0.lock() = State::Recording(prefix.to_vec());
    }

    /// The head (`head_len` bytes) was read. A chunked body is checked from
    /// here on; anything else is not watched.
    pub fn head_read(&self, head_len: usize, chunked: bool) {
        let mut state = self.0.lock();
        let recorded = match std::mem::take(&mut *state) {
            State::Recording(r) => r,
            _ => return,
        };
        if !chunked {
            return;
        }
        let mut decoder = ChunkDecoder::new();
        *state = match recorded.get(head_len..).map(|b| decoder.check(b)) {
            Some(Ok(_)) if decoder.is_done() => State::Off,
            Some(Ok(_)) => State::Checking(decoder),
            Some(Err(e)) => State::Failed(e),
            // The head itself was not all seen: refuse rather than guess.
            None => State::Failed(ChunkError::BadSize),
        };
    }

    /// The framing error the body showed, if any (and stop watching).
    pub fn take_error(&self) -> Option<ChunkError> {
        match std::mem::take(&mut *self.0.lock()) {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    fn saw(&self, bytes: &[u8]) {
        let mut state = self.0.lock();
        match &mut *state {
            State::Off | State::Failed(_) => {}
            State::Recording(r) => {
                if r.len() + bytes.len() > MAX_RECORDED {
                    *state = State::Failed(ChunkError::SizeLineTooLong);
                } else {
                    r.extend_from_slice(bytes);
                }
            }
            State::Checking(d) => match d.check(bytes) {
                Ok(_) if d.is_done() => *state = State::Off,
                Ok(_) => {}
                Err(e) => *state = State::Failed(e),
            },
        }
    }
}

/// A client connection whose reads are shown to a [`Tap`], read ahead and
/// written in batches (`accept::batching`): a request in one read and an
/// answer in one write where they fit.
pub struct Tapped {
    inner: Stream,
    tap: Arc<Tap>,
    /// Bytes read with the last read beyond what it asked for, or while
    /// waiting for the next request; handed out first by the next reads.
    ahead: ReadAhead,
    held: Held,
}

impl Tapped {
    pub fn wrap(inner: Stream, tap: Arc<Tap>) -> Stream {
        Box::new(Self {
            inner,
            tap,
            ahead: ReadAhead::default(),
            held: Held::default(),
        })
    }
}

impl fmt::Debug for Tapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tapped").field(&self.inner).finish()
    }
}

impl AsyncRead for Tapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        ready!(me.ahead.poll_read(&mut me.inner, cx, buf))?;
        // The tap sees bytes as the request's reader takes them.
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            me.tap.saw(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl_batched_connection!(Tapped);

#[async_trait]
impl Peek for Tapped {
    /// Waits for the next byte, reading what has arrived ahead (kept for
    /// the next reads; the tap sees it when they take it).
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if buf.is_empty() {
            return Ok(true);
        }
        let Self { inner, ahead, .. } = self;
        if !std::future::poll_fn(|cx| ahead.poll_fill(inner, cx)).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        // Bytes are waiting: copied, not taken (the next read takes them).
        ahead.peek_into(&mut ReadBuf::new(buf));
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
