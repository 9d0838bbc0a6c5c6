//! `demo-upstream`: an MCP mock server for tests and benchmarks.
//!
//! It speaks Streamable HTTP in both protocol eras on one endpoint:
//! 2025-11-25 with sessions ([`legacy`]) and 2026-07-28 stateless ([`modern`]).
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
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use cli::{Args, Config};

/// Serve MCP on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
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
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(http::handle(app, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
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
