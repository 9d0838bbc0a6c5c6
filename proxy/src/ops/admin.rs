//! The admin listener (worker 0): Prometheus metrics for the whole
//! instance, liveness and readiness, kept off the MCP listener so the MCP
//! endpoint answers nothing but MCP.
//!
//! - `/metrics`: every worker's metrics, each sample labelled with its
//!   `worker`; the other workers' are fetched over their private sockets
//!   ([`INTERNAL_METRICS_PATH`]) at scrape time, so the numbers are the
//!   instance's, not worker 0's.
//! - `/livez`: the process serves (also `/healthz`, its older name).
//! - `/readyz`: not draining, and every upstream pool has at least one
//!   healthy endpoint; 503 with the reason otherwise.
//! - `POST /reload`: reload the policy in every worker
//!   ([`crate::ops::reload`]); only from this host: a loopback address, or
//!   the address the listener was reached on (403 otherwise).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

use std::net::{IpAddr, SocketAddr};

use crate::accept::downstream::Downstream;
use crate::gate::{Live, McpGate};

/// Path on a worker's private socket that answers its own metrics.
pub const INTERNAL_METRICS_PATH: &str = "/_mcpgate/metrics";

/// How long a sibling worker may take to give its metrics.
const SIBLING_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest metrics text read from a sibling.
const SIBLING_MAX: usize = 8 * 1024 * 1024;
/// How long an admin client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin listener until the process exits (it keeps answering
/// during a drain, so `/readyz` can say so).
pub async fn serve(live: Arc<Live>, listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("admin listener: {e}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let live = live.clone();
                let local = tcp
                    .local_addr()
                    .is_ok_and(|l| from_this_host(peer.ip(), l.ip()));
                tokio::spawn(async move {
                    let stream: Stream =
                        Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
                    serve_one(&live, stream, peer, local).await;
                });
            }
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// One request per connection: scrapes and probes are rare.
async fn serve_one(live: &Live, stream: Stream, peer: SocketAddr, local: bool) {
    let mut ds = Downstream::new(stream, None);
    match tokio::time::timeout(READ_TIMEOUT, ds.read_request()).await {
        Ok(Ok(true)) => {}
        _ => return,
    }
    ds.set_keepalive(false);
    let gate = &live.load();
    let path = ds.req_header().uri.path().to_string();
    let post = ds.req_header().method == http::Method::POST;
    let (status, ctype, body) = match path.as_str() {
        "/reload" if !post => (405, "text/plain", "use POST\n".to_string()),
        "/reload" if !local => {
            tracing::warn!(%peer, "admin: POST /reload refused: not from a loopback address");
            (
                403,
                "text/plain",
                "reload is allowed from loopback only\n".to_string(),
            )
        }
        "/reload" if gate.draining.load(std::sync::atomic::Ordering::Acquire) => {
            (503, "text/plain", "draining: not reloading\n".to_string())
        }
        "/reload" => {
            let (status, body) = crate::ops::reload::everywhere(live).await;
            (status, "application/json", body)
        }
        "/metrics" => (
            200,
            "text/plain; version=0.0.4",
            instance_metrics(gate).await,
        ),
        "/livez" | "/healthz" => (200, "text/plain", "ok\n".to_string()),
        // The public keys of the tokens mcpgate mints for upstreams.
        "/.well-known/jwks.json" => (200, "application/json", jwks(gate)),
        "/readyz" => match gate.not_ready() {
            None => (200, "text/plain", "ready\n".to_string()),
            Some(why) => (503, "text/plain", format!("not ready: {why}\n")),
        },
        _ => (404, "text/plain", "not found\n".to_string()),
    };
    write_plain(&mut ds, status, ctype, body).await;
}

/// Whether a client at `peer` that reached the listener at `local` runs on
/// this host: a loopback address (IPv4-mapped included), or the very
/// address it connected to (a listener bound to one interface's address,
/// asked from this host, sees its own address as the peer's).
fn from_this_host(peer: IpAddr, local: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback() || peer == local.to_canonical()
}

/// Writes a whole response with a known length.
pub async fn write_plain(ds: &mut Downstream, status: u16, ctype: &str, body: String) {
    let Ok(mut h) = ResponseHeader::build(status, Some(2)) else {
        return;
    };
    let _ = h.insert_header("content-type", ctype);
    let _ = h.insert_header("content-length", body.len().to_string());
    if ds.write_response_header(Box::new(h)).await.is_ok() {
        let _ = ds.write_response_body(Bytes::from(body), true).await;
    }
    let _ = ds.finish_body().await;
}

/// `{"keys": [...]}`: the public key of every pool's minted credentials.
fn jwks(gate: &McpGate) -> String {
    let keys: Vec<&serde_json::Value> = gate
        .pools
        .values()
        .filter_map(|p| p.credentials.as_ref()?.jwk())
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// This worker's metrics merged with every sibling's.
async fn instance_metrics(gate: &McpGate) -> String {
    let mut texts = vec![gate.render_metrics()];
    let mut unreachable = 0;
    for i in (0..gate.identity.workers).filter(|&i| i != gate.identity.index) {
        match sibling_metrics(gate, i).await {
            Some(t) => texts.push(t),
            None => unreachable += 1,
        }
    }
    let mut out = crate::ops::metrics::merge_expositions(&texts);
    out.push_str(
        "# HELP mcpgate_workers_unreachable Workers whose metrics this scrape could not read\n\
         # TYPE mcpgate_workers_unreachable gauge\n",
    );
    out.push_str(&format!("mcpgate_workers_unreachable {unreachable}\n"));
    out
}

async fn sibling_metrics(gate: &McpGate, index: usize) -> Option<String> {
    let text = ask_sibling(gate, index, "GET", INTERNAL_METRICS_PATH, SIBLING_TIMEOUT).await;
    if text.is_none() {
        tracing::warn!(worker = index, "metrics of a worker could not be read");
    }
    text
}

/// One request to a sibling worker's private socket: the body of its 200
/// answer, `None` when it gave none within `limit`.
pub(crate) async fn ask_sibling(
    gate: &McpGate,
    index: usize,
    method: &str,
    target: &str,
    limit: Duration,
) -> Option<String> {
    let path = gate.identity.socket_of(index);
    let fetch = async {
        let mut s = UnixStream::connect(&path).await.ok()?;
        s.write_all(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: worker\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .ok()?;
        let mut raw = Vec::new();
        s.take(SIBLING_MAX as u64)
            .read_to_end(&mut raw)
            .await
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(limit, fetch).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::from_this_host;

    #[test]
    fn only_this_host_may_reload() {
        let ip = |s: &str| s.parse().expect("an address");
        assert!(from_this_host(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(from_this_host(ip("127.0.0.2"), ip("0.0.0.0")));
        assert!(from_this_host(ip("::1"), ip("::")));
        assert!(from_this_host(ip("::ffff:127.0.0.1"), ip("::")));
        assert!(from_this_host(ip("192.0.2.2"), ip("192.0.2.2")));
        assert!(from_this_host(
            ip("::ffff:192.0.2.2"),
            ip("::ffff:192.0.2.2")
        ));
        assert!(!from_this_host(ip("192.0.2.9"), ip("192.0.2.2")));
        assert!(!from_this_host(ip("10.1.2.3"), ip("0.0.0.0")));
        assert!(!from_this_host(ip("::ffff:10.1.2.3"), ip("::")));
    }
}
