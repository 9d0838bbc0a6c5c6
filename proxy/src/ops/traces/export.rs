//! The HTTP client of the OTLP exporter: one `POST` per batch over a plain
//! TCP connection, with deadlines.
//!
//! It runs on the batch span processor's own thread (the SDK drives each
//! export with a blocking executor there), never on a request's event
//! loop, so blocking I/O with a deadline is what fits: a collector that is
//! slow or down holds only that thread, and the processor's bounded queue
//! drops spans meanwhile. This avoids a second HTTP stack (reqwest, hyper)
//! and a second TLS stack for what is a loopback or in-cluster `http://`
//! POST.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Largest answer read from a collector (its body is a small protobuf).
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// The OTLP exporter, counting the spans each export carried by outcome
/// (`exported`, `failed`) in `mcpgate_trace_spans_total`; with the spans
/// `recorded`, the difference is what the queue dropped or still holds.
#[derive(Debug)]
pub(crate) struct Counted<E> {
    pub(crate) inner: E,
    pub(crate) spans: prometheus::IntCounterVec,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Counted<E>
{
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let outcome = if result.is_ok() { "exported" } else { "failed" };
        self.spans.with_label_values(&[outcome]).inc_by(n);
        if let Err(e) = &result {
            tracing::warn!("traces: {n} spans not exported: {e}");
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Plain `http://` POSTs, each on its own connection.
#[derive(Debug)]
pub(crate) struct TcpHttpClient {
    /// Connect, write and read, each.
    pub(crate) timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for TcpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        post(&request, self.timeout)
    }
}

fn post(request: &Request<Bytes>, timeout: Duration) -> Result<Response<Bytes>, HttpError> {
    let uri = request.uri();
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// collectors are supported, not {uri}").into());
    }
    let host = uri.host().ok_or("the collector URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let deadline = Instant::now() + timeout;
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_nodelay(true)?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    tcp.set_write_timeout(Some(left()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        uri.authority().map_or(host, |a| a.as_str()),
        request.body().len()
    );
    for (name, value) in request.headers() {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())?;
    tcp.write_all(request.body())?;
    tcp.set_read_timeout(Some(left()))?;
    let mut raw = Vec::new();
    tcp.take(MAX_ANSWER_BYTES).read_to_end(&mut raw)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let body_at = match parsed.parse(&raw)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err("the collector's answer was cut off".into()),
    };
    let status = parsed.code.ok_or("the collector's answer has no status")?;
    Ok(Response::builder()
        .status(status)
        .body(Bytes::copy_from_slice(&raw[body_at..]))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn posts_the_body_and_reads_the_status() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).expect("read");
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .expect("write");
            String::from_utf8_lossy(&got[..n]).into_owned()
        });
        let request = Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1:{port}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(Bytes::from_static(b"\x0a\x00"))
            .expect("request");
        let answer = post(&request, Duration::from_secs(5)).expect("answer");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body().as_ref(), b"ok");
        let sent = server.join().expect("server");
        assert!(sent.starts_with("POST /v1/traces HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("content-type: application/x-protobuf\r\n"));
        assert!(sent.contains("Content-Length: 2\r\n"));
    }

    #[test]
    fn a_silent_collector_costs_the_timeout_and_no_more() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let request = Request::builder()
            .method("POST")
            .uri(format!("http://127.0.0.1:{port}/v1/traces"))
            .body(Bytes::from_static(b""))
            .expect("request");
        // Accepted by the kernel, never answered: the read deadline ends it.
        let err = post(&request, Duration::from_millis(200)).expect_err("no answer");
        let kind = err
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        assert!(
            matches!(
                kind,
                Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            ),
            "{err}"
        );
        drop(listener);
    }
}
