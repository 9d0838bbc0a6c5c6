//! A long-lived stream once its response head has been relayed.
//!
//! A legacy GET stream or a `subscriptions/listen` stream is, after its head,
//! a pass-through of events that the relay no longer inspects (no deadline,
//! no session being created). Keeping the whole request handler alive for
//! it would hold its state (about 13 KiB of future, the parsed request, the
//! pingora session and their buffers) for hours. Instead the handler
//! returns a [`HeldStream`]: the upstream body, the admission slot and what
//! the breaker must be told at the end. The accept layer then runs it on the
//! client's bare stream, writing the chunked framing itself, in a future of
//! a few hundred bytes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use filters::header_values::list_elements;
use filters::RequestId;
use pingora::http::ResponseHeader;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;

use crate::admission::caps::Held;
use crate::exchange::respond::failure_event;
use crate::gate::until_stopped;
use crate::ops::metrics::Metrics;
use crate::upstream::breaker::Ticket;
use crate::upstream::client::Response;
use crate::upstream::pool::{Endpoint, Outcome, Pool};

/// How a request was served.
pub(crate) enum Served {
    /// Answered; whether the client connection can be reused.
    Done(bool),
    /// The response head of a long-lived stream was written (not flushed);
    /// the caller relays the rest with [`HeldStream::run`].
    Stream(Box<HeldStream>),
}

impl From<bool> for Served {
    fn from(reusable: bool) -> Self {
        Served::Done(reusable)
    }
}

/// Where a held stream's outcome is reported: its endpoint's breaker.
pub(crate) struct Report {
    pub(crate) pool: Arc<Pool>,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) ticket: Ticket,
}

pub(crate) struct HeldStream {
    pub(crate) upstream: Response,
    /// `None` for a stream relayed from the owner worker (which reports).
    pub(crate) report: Option<Report>,
    pub(crate) _slot: Option<Held>,
    /// The stream request's id (for the error event if the upstream fails).
    pub(crate) request_id: Option<RequestId>,
    pub(crate) slow_client_timeout: Duration,
}

/// Whether the rest of a response whose head `out` is about to be written
/// can be relayed as a held stream: a success (to an HTTP/1 client, the
/// only kind), framed by chunked as the last transfer coding (the held stream writes
/// that framing itself) and not already complete.
pub(crate) fn can_hold(out: &ResponseHeader, up: &mut Response) -> bool {
    let chunked_last = list_elements(&out.headers, "transfer-encoding")
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case("chunked"));
    out.status.is_success() && chunked_last && !up.response_done()
}

impl HeldStream {
    /// Relays the stream's body to `client` as chunked HTTP/1.1 until
    /// either side ends it; returns whether the client connection can be
    /// reused (the upstream ended the stream cleanly).
    /// On `shutdown` (a drain) the stream is ended cleanly: its last chunk
    /// is written, and a legacy client resumes through its sealed session id.
    pub(crate) async fn run(
        mut self,
        metrics: &Metrics,
        client: &mut Stream,
        shutdown: &ShutdownWatch,
    ) -> bool {
        let (outcome, reusable) = self.relay(metrics, client, shutdown.clone()).await;
        if let Some(r) = &self.report {
            r.pool.report(&r.endpoint, r.ticket, outcome);
        }
        reusable
    }

    async fn relay(
        &mut self,
        metrics: &Metrics,
        client: &mut Stream,
        mut shutdown: ShutdownWatch,
    ) -> (Outcome, bool) {
        if !self.write(metrics, client, Bytes::new()).await {
            return (Outcome::Neutral, false);
        }
        loop {
            let mut probe = [0u8; 1];
            let chunk = tokio::select! {
                biased;
                chunk = self.upstream.read_response_body() => chunk,
                // Any byte or EOF from the client: it left (or broke the
                // protocol by sending while its stream is open).
                _ = client.try_peek(&mut probe) => {
                    tracing::debug!("client went away during a held stream");
                    return (Outcome::Neutral, false);
                }
                _ = until_stopped(&mut shutdown) => {
                    self.write_last(metrics, client).await;
                    return (Outcome::Neutral, false);
                }
            };
            match chunk {
                Ok(Some(data)) => {
                    if !self.write(metrics, client, data).await {
                        return (Outcome::Neutral, false);
                    }
                }
                Ok(None) => {
                    let ended = self.write_last(metrics, client).await;
                    return (Outcome::Success, ended);
                }
                Err(e) => {
                    tracing::info!("upstream failed during a held stream: {e}");
                    metrics
                        .upstream_errors
                        .with_label_values(&["response"])
                        .inc();
                    let event = failure_event(self.request_id.as_ref());
                    if self.write(metrics, client, event).await {
                        self.write_last(metrics, client).await;
                    }
                    return (Outcome::Failure, false);
                }
            }
        }
    }

    /// Writes one chunk (or, for empty `data`, only flushes what is
    /// buffered, such as the head) within the slow-client timeout.
    async fn write(&self, metrics: &Metrics, client: &mut Stream, data: Bytes) -> bool {
        let mut frame = BytesMut::new();
        if !data.is_empty() {
            frame.reserve(data.len() + 20);
            frame.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
            frame.put_slice(&data);
            frame.put_slice(b"\r\n");
        }
        self.send(metrics, client, &frame).await
    }

    /// Writes the last chunk: the body ends, the connection may be reused.
    async fn write_last(&self, metrics: &Metrics, client: &mut Stream) -> bool {
        self.send(metrics, client, b"0\r\n\r\n").await
    }

    /// Writes `bytes` and flushes, within the slow-client timeout.
    async fn send(&self, metrics: &Metrics, client: &mut Stream, bytes: &[u8]) -> bool {
        let written = tokio::time::timeout(self.slow_client_timeout, async {
            client.write_all(bytes).await?;
            client.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!("writing a held stream downstream: {e}");
                false
            }
            Err(_) => {
                metrics.slow_clients.inc();
                tracing::info!("client too slow to read the stream; closed");
                false
            }
        }
    }
}
