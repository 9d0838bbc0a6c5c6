use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::*;

/// A connection that records each write call, taking at most `per_call`
/// bytes of it, and answers every other call with `Pending` when `stutter`.
#[derive(Default)]
struct Recorder {
    calls: Vec<Vec<u8>>,
    per_call: Option<usize>,
    stutter: bool,
    flushes: usize,
    turn: bool,
}

impl Recorder {
    fn take(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if self.stutter {
            self.turn = !self.turn;
            if self.turn {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        let mut call = Vec::new();
        for b in bufs {
            call.extend_from_slice(b);
        }
        if let Some(max) = self.per_call {
            call.truncate(max);
        }
        let n = call.len();
        self.calls.push(call);
        Poll::Ready(Ok(n))
    }

    fn written(&self) -> Vec<u8> {
        self.calls.concat()
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.take(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The recorder behind a [`Held`], as the client connection wraps it.
struct Coalescing {
    inner: Recorder,
    held: Held,
}

impl AsyncWrite for Coalescing {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.held
            .poll_write_vectored(&mut me.inner, cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.held.poll_write_vectored(&mut me.inner, cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.held.poll_send(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        ready!(me.held.poll_send(&mut me.inner, cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

fn coalescing(inner: Recorder) -> Coalescing {
    Coalescing {
        inner,
        held: Held::default(),
    }
}

fn message(head: usize, body: usize) -> (Vec<u8>, Vec<u8>) {
    let head = (0..head).map(|i| b'a' + (i % 26) as u8).collect();
    let body = (0..body).map(|i| (i % 251) as u8).collect();
    (head, body)
}

#[tokio::test]
async fn a_head_and_a_larger_body_leave_in_one_write() {
    let (head, body) = message(240, 4096);
    let mut w = coalescing(Recorder::default());
    w.write_all(&head).await.expect("head");
    assert!(w.inner.calls.is_empty(), "the head alone is not sent");
    w.write_all(&body).await.expect("body");
    w.flush().await.expect("flush");
    assert_eq!(w.inner.calls.len(), 1, "one write call for head and body");
    assert_eq!(w.inner.written(), [head, body].concat());
    assert_eq!(w.held.len(), 0);
}

#[tokio::test]
async fn small_writes_wait_for_the_flush_and_leave_together() {
    let (head, body) = message(200, 300);
    let mut w = coalescing(Recorder::default());
    w.write_all(&head).await.expect("head");
    w.write_all(&body).await.expect("body");
    assert!(w.inner.calls.is_empty());
    w.flush().await.expect("flush");
    assert_eq!(w.inner.calls.len(), 1);
    assert_eq!(w.inner.written(), [head, body].concat());
    assert_eq!(w.inner.flushes, 1, "the connection itself is flushed too");
}

#[tokio::test]
async fn a_shutdown_sends_what_is_held() {
    let (head, _) = message(100, 0);
    let mut w = coalescing(Recorder::default());
    w.write_all(&head).await.expect("head");
    w.shutdown().await.expect("shutdown");
    assert_eq!(w.inner.written(), head);
}

#[tokio::test]
async fn short_writes_and_pending_lose_and_reorder_nothing() {
    for per_call in [1, 7, 100, 240, 241, 1000] {
        let (head, body) = message(240, 5000);
        let (more, tail) = message(50, 20_000);
        let mut w = coalescing(Recorder {
            per_call: Some(per_call),
            stutter: true,
            ..Recorder::default()
        });
        for part in [&head, &body, &more, &tail] {
            w.write_all(part).await.expect("write");
        }
        w.flush().await.expect("flush");
        assert_eq!(
            w.inner.written(),
            [head, body, more, tail].concat(),
            "{per_call} bytes per call"
        );
        assert_eq!(w.held.len(), 0);
    }
}

#[tokio::test]
async fn writes_past_the_limit_go_out_with_what_is_held() {
    let mut w = coalescing(Recorder::default());
    let chunk = vec![b'x'; 3000];
    for _ in 0..(HOLD_LIMIT / chunk.len() + 2) {
        w.write_all(&chunk).await.expect("write");
        assert!(w.held.len() <= HOLD_LIMIT);
    }
    assert_eq!(
        w.inner.calls.len(),
        1,
        "the held bytes went out with the write that did not fit"
    );
    w.flush().await.expect("flush");
    assert_eq!(
        w.inner.written().len(),
        chunk.len() * (HOLD_LIMIT / chunk.len() + 2)
    );
}

#[tokio::test]
async fn a_large_body_is_not_copied_but_written_with_the_head() {
    let (head, body) = message(300, 64 * 1024);
    let mut w = coalescing(Recorder::default());
    w.write_all(&head).await.expect("head");
    w.write_all(&body).await.expect("body");
    w.flush().await.expect("flush");
    assert_eq!(w.inner.calls.len(), 1);
    assert_eq!(w.inner.written(), [head, body].concat());
}

/// A connection whose bytes arrive in the given pieces (one per read, as
/// a socket gives what has arrived), counting the reads it was asked for.
struct Arrivals {
    pieces: std::collections::VecDeque<Vec<u8>>,
    reads: usize,
}

impl AsyncRead for Arrivals {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        if let Some(mut p) = self.pieces.pop_front() {
            let n = p.len().min(buf.remaining());
            buf.put_slice(&p[..n]);
            if n < p.len() {
                self.pieces.push_front(p.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads through a [`ReadAhead`] as pingora does: a small first buffer,
/// then larger ones.
async fn read_all(conn: &mut Arrivals, ahead: &mut ReadAhead, sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for size in sizes {
        let mut space = vec![0u8; *size];
        let mut buf = ReadBuf::new(&mut space);
        std::future::poll_fn(|cx| ahead.poll_read(conn, cx, &mut buf))
            .await
            .expect("read");
        out.extend_from_slice(buf.filled());
    }
    out
}

#[tokio::test]
async fn a_request_that_arrived_whole_is_read_with_one_call() {
    let (head, body) = message(400, 4100);
    let request = [head, body].concat();
    let mut conn = Arrivals {
        pieces: [request.clone()].into(),
        reads: 0,
    };
    let mut ahead = ReadAhead::default();
    // A peek for the next request, then pingora's 4 KiB head buffer, then
    // the body.
    assert!(std::future::poll_fn(|cx| ahead.poll_fill(&mut conn, cx))
        .await
        .expect("fill"));
    let mut first = [0u8; 1];
    ahead.peek_into(&mut ReadBuf::new(&mut first));
    assert_eq!(first[0], request[0], "a peek takes nothing");
    let got = read_all(&mut conn, &mut ahead, &[4096, 65536]).await;
    assert_eq!(got, request);
    assert_eq!(conn.reads, 1, "one read of the connection");
    assert!(!ahead.has_bytes(), "nothing kept once taken");
}

#[tokio::test]
async fn bytes_read_ahead_come_out_in_order_across_pieces() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let pieces: std::collections::VecDeque<Vec<u8>> =
        data.chunks(7_000).map(<[u8]>::to_vec).collect();
    let mut conn = Arrivals { pieces, reads: 0 };
    let mut ahead = ReadAhead::default();
    let got = read_all(
        &mut conn,
        &mut ahead,
        &[
            1, 10, 4096, 3000, 20_000, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
        ],
    )
    .await;
    assert_eq!(got, data[..got.len()]);
    assert!(got.len() > 30_000, "{} bytes", got.len());
}

#[tokio::test]
async fn a_closed_connection_ends_the_wait_for_bytes() {
    let mut conn = Arrivals {
        pieces: Default::default(),
        reads: 0,
    };
    let mut ahead = ReadAhead::default();
    let filled = std::future::poll_fn(|cx| ahead.poll_fill(&mut conn, cx))
        .await
        .expect("fill");
    assert!(!filled);
}
