//! `demo-upstream`: an MCP mock server for tests and benchmarks.
//!
//! It speaks Streamable HTTP in both protocol eras on one endpoint:
//! 2025-11-25 with sessions ([`legacy`]) and 2026-07-28 stateless ([`modern`]),
//! over HTTP/1.1 or HTTP/2 cleartext with prior knowledge (h2c, detected per
//! connection from the client's first bytes; see [`conn_builder`]).
//! It doubles as a recording upstream (`--record`) for the proxy's tests and
//! as the backend of the benchmarks, so the hot path (a `tools/call` in either
//! era) takes no global lock and every buffer is bounded.
//!
//! Module map: [`cli`] options, [`http`] front door and era routing,
//! [`legacy`] / [`legacy_tools`] and [`modern`] / [`subscriptions`] the two eras,
//! [`store`] / [`session`] legacy sessions and resumable streams, [`tools`] /
//! [`catalog`] what is served, [`jsonrpc`] / [`reply`] / [`sse`] / [`body`]
//! wire formats, [`record`] the request log.

pub mod body;
pub mod cancel;
pub mod catalog;
pub mod cli;
pub mod http;
pub mod jsonrpc;
pub mod legacy;
pub mod legacy_tools;
pub mod modern;
pub mod record;
pub mod reply;
pub mod session;
pub mod sse;
pub mod store;
pub mod subscriptions;
pub mod tools;

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use cli::{Args, Config};

/// Fewest concurrent HTTP/2 streams allowed per connection.
pub const H2_MIN_CONCURRENT_STREAMS: u32 = 10_000;
/// HTTP/2 streams allowed per connection beyond `--max-streams`, for the
/// ordinary requests multiplexed next to the long-lived streams.
const H2_REQUEST_HEADROOM: usize = 1024;
/// HTTP/2 receive window of one stream (request bodies).
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
/// HTTP/2 receive window of a whole connection (request bodies).
const H2_CONN_WINDOW: u32 = 16 * 1024 * 1024;
/// Largest HTTP/2 header list accepted, about what an HTTP/1 head may hold.
const H2_MAX_HEADER_LIST: u32 = 400 * 1024;
/// Streams a client may reset before the server accepts them (rapid-reset
/// guard); raised so a proxy cancelling a burst of streams is not cut off.
const H2_MAX_PENDING_RESETS: usize = 1024;

/// The per-connection server: HTTP/1.1, or HTTP/2 when the client opens with
/// the h2 connection preface (h2c prior knowledge), detected per connection.
pub fn conn_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    let streams = config
        .max_streams
        .saturating_add(H2_REQUEST_HEADROOM)
        .try_into()
        .unwrap_or(u32::MAX)
        .max(H2_MIN_CONCURRENT_STREAMS);
    builder
        .http2()
        .max_concurrent_streams(streams)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS);
    builder
}

/// Serve MCP on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    let builder = Arc::new(conn_builder(&config));
    let app = Arc::new(http::App::new(config)?);
    tokio::spawn(sweep(app.clone()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: back off, keep serving.
                eprintln!("demo-upstream: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(http::handle(app, req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Expire idle sessions periodically.
async fn sweep(app: Arc<http::App>) {
    let period =
        (app.config.session_idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        tokio::time::sleep(period).await;
        app.sessions.sweep();
    }
}
