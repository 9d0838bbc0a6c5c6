//! Fewer, larger system calls on a connection: a message read with one
//! `recvfrom` and written with one `write`/`writev` where it fits.
//!
//! Measured with `strace` under 4 KB `tools/call` load, pingora's HTTP/1
//! code took three reads for a client's request (a one-byte peek for the
//! next request, then its 4 KiB head buffer, then the rest of the body) and
//! two for the upstream's answer, and wrote each answer as two segments
//! (the head, then the body; or the body in the two pieces it was read in),
//! each of which wakes the peer. nginx writes a head and its body with one
//! `writev`. Here:
//!
//! - [`Held`]: writes are held (up to [`HOLD_LIMIT`] bytes) until a flush,
//!   or until a write that would not fit, which then goes out together with
//!   them in one vectored write. pingora flushes at every message boundary
//!   (the end of a `Content-Length` body, each chunk of a chunked one), so
//!   nothing waits longer than a message; the held bytes are freed once
//!   sent, and an idle connection keeps none.
//! - [`ReadAhead`]: a read asked for less than [`READ_AHEAD`] bytes reads up
//!   to that much (into a buffer on the stack) and keeps what the caller did
//!   not take for its next read (a peek keeps all it read). Those bytes live
//!   on the heap only until they are taken, so an idle connection keeps none.
//! - [`Batched`]: both, around an upstream connection (which goes back to
//!   pingora's pool wrapped, and is not wrapped twice).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use pingora::protocols::{Peek, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held back before they are written.
pub const HOLD_LIMIT: usize = 16 * 1024;
/// Size of one read-ahead.
pub const READ_AHEAD: usize = 16 * 1024;

/// Writes not yet passed to the connection.
#[derive(Debug, Default)]
pub struct Held(Vec<u8>);

impl Held {
    /// Holds `bufs` when they fit; otherwise writes what is held and as
    /// much of `bufs` as the connection takes, in one vectored write.
    pub fn poll_write_vectored<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.0.len() + len <= HOLD_LIMIT {
            if self.0.is_empty() {
                self.0.reserve_exact(len.max(1024));
            }
            for b in bufs {
                self.0.extend_from_slice(b);
            }
            return Poll::Ready(Ok(len));
        }
        if self.0.is_empty() {
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
        // The held bytes first, then as much of `bufs` as the call takes.
        loop {
            let n = {
                let mut slices = Vec::with_capacity(bufs.len() + 1);
                slices.push(IoSlice::new(&self.0));
                slices.extend(bufs.iter().map(|b| IoSlice::new(b)));
                ready!(Pin::new(&mut *inner).poll_write_vectored(cx, &slices))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < self.0.len() {
                self.0.drain(..n);
                continue;
            }
            let taken = n - self.0.len();
            self.0 = Vec::new();
            if taken > 0 {
                return Poll::Ready(Ok(taken));
            }
            // Exactly the held bytes went: `bufs` is written on its own
            // (a zero here would read as a closed connection).
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
    }

    /// Sends everything held (not flushing `inner`).
    pub fn poll_send<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.0.is_empty() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.0))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.0.drain(..n);
        }
        self.0 = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Bytes read ahead and not yet taken.
#[derive(Debug, Default)]
pub struct ReadAhead {
    bytes: Vec<u8>,
    taken: usize,
}

impl ReadAhead {
    /// Whether bytes are waiting to be taken.
    pub fn has_bytes(&self) -> bool {
        self.taken < self.bytes.len()
    }

    /// Fills `buf` from the bytes read ahead, else from `inner`, reading up
    /// to [`READ_AHEAD`] bytes at once. Returns the bytes put in `buf`.
    pub fn poll_read<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.has_bytes() {
            let n = (self.bytes.len() - self.taken).min(buf.remaining());
            buf.put_slice(&self.bytes[self.taken..self.taken + n]);
            self.taken += n;
            if !self.has_bytes() {
                *self = Self::default();
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD {
            return Pin::new(inner).poll_read(cx, buf);
        }
        let mut ahead = [std::mem::MaybeUninit::<u8>::uninit(); READ_AHEAD];
        let mut ahead_buf = ReadBuf::uninit(&mut ahead);
        ready!(Pin::new(inner).poll_read(cx, &mut ahead_buf))?;
        let got = ahead_buf.filled();
        let n = got.len().min(buf.remaining());
        buf.put_slice(&got[..n]);
        if n < got.len() {
            self.bytes = got[n..].to_vec();
            self.taken = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Copies the first waiting bytes into `buf` without taking them.
    pub fn peek_into(&self, buf: &mut ReadBuf<'_>) {
        let waiting = &self.bytes[self.taken..];
        buf.put_slice(&waiting[..waiting.len().min(buf.remaining())]);
    }

    /// Waits until bytes can be read (reading them ahead); `false` when the
    /// connection ended first.
    pub fn poll_fill<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        inner: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<bool>> {
        if self.has_bytes() {
            return Poll::Ready(Ok(true));
        }
        let mut ahead = [std::mem::MaybeUninit::<u8>::uninit(); READ_AHEAD];
        let mut ahead_buf = ReadBuf::uninit(&mut ahead);
        ready!(Pin::new(inner).poll_read(cx, &mut ahead_buf))?;
        let got = ahead_buf.filled();
        if got.is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.bytes = got.to_vec();
        self.taken = 0;
        Poll::Ready(Ok(true))
    }
}

/// Implements, for a connection wrapper with fields `inner: Stream` and
/// `held: Held`, writing through [`Held`] (a shutdown sends what is held
/// first) and pingora's connection traits by handing them to `inner`. The
/// wrapper implements reading and peeking itself.
macro_rules! impl_batched_connection {
    ($wrapper:ty) => {
        impl tokio::io::AsyncWrite for $wrapper {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let me = self.get_mut();
                me.held
                    .poll_write_vectored(&mut me.inner, cx, &[std::io::IoSlice::new(buf)])
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let me = self.get_mut();
                me.held.poll_write_vectored(&mut me.inner, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let me = self.get_mut();
                std::task::ready!(me.held.poll_send(&mut me.inner, cx))?;
                std::pin::Pin::new(&mut me.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let me = self.get_mut();
                std::task::ready!(me.held.poll_send(&mut me.inner, cx))?;
                std::pin::Pin::new(&mut me.inner).poll_shutdown(cx)
            }
        }

        #[async_trait::async_trait]
        impl pingora::protocols::Shutdown for $wrapper {
            async fn shutdown(&mut self) {
                let Self { inner, held, .. } = self;
                let _ = std::future::poll_fn(|cx| held.poll_send(inner, cx)).await;
                inner.shutdown().await
            }
        }

        impl pingora::protocols::UniqueID for $wrapper {
            fn id(&self) -> pingora::protocols::UniqueIDType {
                self.inner.id()
            }
        }

        impl pingora::protocols::Ssl for $wrapper {
            fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
                self.inner.get_ssl()
            }

            fn get_ssl_digest(&self) -> Option<std::sync::Arc<pingora::protocols::tls::SslDigest>> {
                self.inner.get_ssl_digest()
            }

            fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
                self.inner.selected_alpn_proto()
            }
        }

        impl pingora::protocols::GetTimingDigest for $wrapper {
            fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
                self.inner.get_timing_digest()
            }

            fn get_read_pending_time(&self) -> std::time::Duration {
                self.inner.get_read_pending_time()
            }

            fn get_write_pending_time(&self) -> std::time::Duration {
                self.inner.get_write_pending_time()
            }
        }

        impl pingora::protocols::GetProxyDigest for $wrapper {
            fn get_proxy_digest(
                &self,
            ) -> Option<std::sync::Arc<pingora::protocols::raw_connect::ProxyDigest>> {
                self.inner.get_proxy_digest()
            }
        }

        impl pingora::protocols::GetSocketDigest for $wrapper {
            fn get_socket_digest(
                &self,
            ) -> Option<std::sync::Arc<pingora::protocols::SocketDigest>> {
                self.inner.get_socket_digest()
            }
        }
    };
}

/// An upstream connection read ahead and written in batches.
pub struct Batched {
    inner: Stream,
    ahead: ReadAhead,
    held: Held,
}

impl Batched {
    /// `stream` batched (as it was, when it already is).
    pub fn wrap(stream: Stream) -> Stream {
        if stream.as_ref().as_any().is::<Batched>() {
            return stream;
        }
        Box::new(Self::around(stream))
    }

    /// `stream` batched, unboxed: the transport of a layer generic over its
    /// own (TLS), which needs the concrete type.
    pub fn around(stream: Stream) -> Self {
        Self {
            inner: stream,
            ahead: ReadAhead::default(),
            held: Held::default(),
        }
    }
}

impl std::fmt::Debug for Batched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Batched").field(&self.inner).finish()
    }
}

impl AsyncRead for Batched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        me.ahead.poll_read(&mut me.inner, cx, buf)
    }
}

impl_batched_connection!(Batched);

#[async_trait]
impl Peek for Batched {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if buf.is_empty() {
            return Ok(true);
        }
        let Self { inner, ahead, .. } = self;
        if !std::future::poll_fn(|cx| ahead.poll_fill(inner, cx)).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        ahead.peek_into(&mut ReadBuf::new(buf));
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
