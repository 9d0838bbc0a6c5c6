//! The upstream MCP server: pooled connections and request rewriting.

use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;
use filters::header_values::list_elements;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{OrErr, Result};

use crate::accept::batching::Batched;
use crate::upstream::connector::Taken;
use crate::upstream::connector::{OwnPeer, PooledConnector};
use crate::upstream::credentials::{Caller, Credentials};
use crate::upstream::h1_stream::{After, H1Response};
use crate::upstream::stdio::answer::StdioAnswer;
use crate::upstream::stdio::StdioPool;

/// Headers that describe one hop, never forwarded (RFC 9110 7.6.1), plus the
/// client's credentials: token passthrough to the upstream is forbidden.
/// Headers named in the client's `Connection` header are dropped too (the
/// header guard only lets hop-by-hop names appear there). `Expect` is
/// answered by this hop: the whole body is read before the upstream is asked.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "expect",
    "host",
    "content-length",
    "authorization",
    "mcp-session-id",
    // mcpgate's own hand-over header (`CLIENT_CERT_HEADER`, sessions::owner).
    "x-mcpgate-client-cert",
];

/// How long mcpgate's own messages to an upstream (cancel, DELETE) may take.
pub(crate) const OWN_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Response headers that describe one hop.
pub const RESPONSE_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether a header value may be written on the wire: no CR, LF or NUL,
/// whatever the parser that produced it let through (pingora builds header
/// values unchecked, and accepts obsolete line folding in upstream responses).
pub fn is_safe_value(v: &[u8]) -> bool {
    !v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Whether an answer is an SSE stream (`Content-Type: text/event-stream`,
/// any case, parameters allowed).
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers.get("content-type").is_some_and(|ct| {
        let kind = b"text/event-stream";
        ct.as_bytes()
            .trim_ascii_start()
            .get(..kind.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(kind))
    })
}

/// Names of the headers never relayed to the client: the hop-by-hop ones and
/// those whose value could split the header block it is written into. Found
/// in one pass over the map (removing each hop name by its text parsed the
/// name and searched the map six times per answer).
pub fn never_relayed(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    let mut names: Vec<http::HeaderName> = Vec::new();
    for (name, value) in headers {
        let drop =
            RESPONSE_HOP_HEADERS.contains(&name.as_str()) || !is_safe_value(value.as_bytes());
        if drop && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// How mcpgate reaches one endpoint: an HTTP server, or a pool of stdio
/// worker processes answering as one ([`StdioPool`]).
// One per endpoint for the process's life: its size does not matter, and
// boxing the HTTP client would cost an indirection on every request.
#[allow(clippy::large_enum_variant)]
pub enum UpstreamClient {
    Http(HttpClient),
    Stdio(StdioPool),
}

impl UpstreamClient {
    /// The client of one endpoint of `pool`; `events` counts stdio spawns
    /// and exits.
    pub fn new(
        endpoint: &policies::Endpoint,
        pool: &policies::UpstreamPool,
        credentials: Option<Arc<Credentials>>,
        events: Option<prometheus::IntCounterVec>,
    ) -> std::io::Result<Self> {
        match &endpoint.transport {
            policies::Transport::Stdio(spec) => {
                Ok(Self::Stdio(StdioPool::new(&pool.name, spec, events)))
            }
            t => HttpClient::new(t, pool, credentials).map(Self::Http),
        }
    }

    /// The endpoint's socket address, for active health checks (`None`
    /// for stdio: its workers are watched by the pool itself).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Http(c) => Some(c.addr()),
            Self::Stdio(_) => None,
        }
    }

    /// Closes idle keep-alive connections past their time or closed by the
    /// upstream (maintenance, every second).
    pub fn sweep_idle(&self) {
        if let Self::Http(c) = self {
            c.connector.sweep();
        }
    }

    /// The stdio pool, if this endpoint is one.
    pub fn stdio(&self) -> Option<&StdioPool> {
        match self {
            Self::Stdio(p) => Some(p),
            Self::Http(_) => None,
        }
    }

    /// See [`HttpClient::request_header`]. A stdio pool gets the same head
    /// (with the caller's tenant, for its log) and no credential.
    pub fn request_header(
        &self,
        client: &http::request::Parts,
        upstream_session: Option<&str>,
        body_len: usize,
        caller: Caller<'_>,
    ) -> Result<RequestHeader> {
        match self {
            Self::Http(c) => c.request_header(client, upstream_session, body_len, caller),
            Self::Stdio(_) => {
                let mut req = RequestHeader::build(client.method.clone(), b"/mcp", None)?;
                for name in ["mcp-protocol-version", "mcp-method", "mcp-name", "accept"] {
                    if let Some(v) = client.headers.get(name) {
                        req.insert_header(name, v.as_bytes())?;
                    }
                }
                if let Some(id) = upstream_session {
                    req.insert_header("mcp-session-id", id)?;
                }
                req.insert_header(crate::upstream::stdio::TENANT_HEADER, caller.tenant)?;
                Ok(req)
            }
        }
    }

    /// See [`HttpClient::send`].
    pub async fn send(
        &self,
        req: &RequestHeader,
        body: &Bytes,
        first_byte: Duration,
        stream: bool,
    ) -> Result<Response, SendError> {
        match self {
            Self::Http(c) => c.send(req, body, first_byte, stream).await,
            Self::Stdio(p) => p
                .send(req, body, first_byte)
                .await
                .map(|a| Response::Stdio(Box::new(a))),
        }
    }

    /// See [`HttpClient::send_own`].
    pub async fn send_own(
        &self,
        method: http::Method,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: Duration,
    ) -> Option<u16> {
        match self {
            Self::Http(c) => c.send_own(method, headers, body, limit).await,
            Self::Stdio(_) => self
                .fetch_own(method, headers, body, limit, 64 * 1024)
                .await
                .ok()
                .map(|a| a.status),
        }
    }

    /// See [`HttpClient::fetch_own`].
    pub async fn fetch_own(
        &self,
        method: http::Method,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: Duration,
        max_body: usize,
    ) -> std::result::Result<OwnAnswer, String> {
        let pool = match self {
            Self::Http(c) => return c.fetch_own(method, headers, body, limit, max_body).await,
            Self::Stdio(p) => p,
        };
        let mut req = RequestHeader::build(method, b"/mcp", None).map_err(|e| e.to_string())?;
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v)
                .map_err(|e| e.to_string())?;
        }
        let read = async {
            let mut a = match pool.send(&req, &body, limit).await {
                Ok(a) => a,
                Err(_) => return Err("no answer in time".to_string()),
            };
            let mut bytes = Vec::new();
            while let Some(chunk) = a.read_body().await.map_err(|e| e.to_string())? {
                if bytes.len() + chunk.len() > max_body {
                    return Err(format!("answer over {max_body} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(OwnAnswer {
                status: a.head().status.as_u16(),
                headers: a.head().headers.clone(),
                body: bytes,
            })
        };
        tokio::time::timeout(limit, read)
            .await
            .unwrap_or_else(|_| Err(format!("no whole answer within {limit:?}")))
    }

    /// See [`HttpClient::release`].
    pub async fn release(&self, r: Response) {
        if let Self::Http(c) = self {
            c.release(r).await;
        }
    }
}

/// A whole answer to a request mcpgate made itself.
pub struct OwnAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request did not get a response head.
#[derive(Debug)]
pub enum SendError {
    /// No connection: nothing reached the endpoint.
    Connect(Box<pingora::Error>),
    /// The connection failed after the request started.
    Failed(Box<pingora::Error>),
    FirstByteTimeout,
}

/// Whether `value` is `len` in plain decimal (no sign, no leading zero), so
/// the client's `Content-Length` goes on as it came, without a new value.
fn is_length(value: &[u8], len: usize) -> bool {
    let plain = match value {
        [] => false,
        [b'0', _, ..] => false,
        digits => digits.iter().all(u8::is_ascii_digit),
    };
    plain && std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) == Some(len)
}

/// An upstream response being relayed: over HTTP/1 read by [`H1Response`],
/// else on a pingora session (HTTP/2, and the hand-over to another worker).
pub enum Response {
    /// Boxed: a held stream keeps this enum for hours, mostly the small variant.
    Pooled(Box<HttpSession>),
    H1(H1Response),
    /// A stdio worker's answer.
    Stdio(Box<StdioAnswer>),
}

impl Response {
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            Response::Pooled(s) => s.response_header(),
            Response::H1(s) => s.head(),
            Response::Stdio(a) => Some(a.head()),
        }
    }

    /// The response head, to be relayed: taken over HTTP/1 (where nothing
    /// reads it again), copied from a pingora session or a stdio answer.
    pub fn take_response_header(&mut self) -> Option<Box<ResponseHeader>> {
        match self {
            Response::Pooled(s) => s.response_header().map(|h| Box::new(h.clone())),
            Response::H1(s) => s.take_head(),
            Response::Stdio(a) => Some(Box::new(a.head().clone())),
        }
    }

    pub fn response_done(&mut self) -> bool {
        match self {
            Response::Pooled(s) => s.response_done(),
            Response::H1(s) => s.is_done(),
            Response::Stdio(a) => a.is_done(),
        }
    }

    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Response::Pooled(s) => s.read_response_body().await,
            Response::H1(s) => s.read_body().await,
            Response::Stdio(a) => a.read_body().await,
        }
    }
}

pub struct HttpClient {
    connector: PooledConnector,
    /// mcpgate's own credential for this upstream (`[upstream.auth]`).
    credentials: Option<Arc<Credentials>>,
    peer: OwnPeer,
    authority: String,
    /// `Host` of every forwarded request (the authority, validated once).
    host: http::HeaderValue,
    path: String,
    /// The path as the target of every forwarded request (parsed once).
    target: http::Uri,
    addr: std::net::SocketAddr,
}

impl HttpClient {
    /// A client for one endpoint of `pool`, with its own keep-alive pool.
    pub fn new(
        transport: &policies::Transport,
        pool: &policies::UpstreamPool,
        credentials: Option<Arc<Credentials>>,
    ) -> std::io::Result<Self> {
        use std::net::ToSocketAddrs;
        let policies::Transport::Http {
            tls,
            host,
            port,
            path,
        } = transport
        else {
            return Err(std::io::Error::other("not an HTTP endpoint"));
        };
        let addr = (host.as_str(), *port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
        let mut peer = HttpPeer::new(addr, *tls, host.clone());
        peer.options.connection_timeout = Some(Duration::from_millis(pool.timeouts.connect_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(pool.pool_idle_secs.max(1)));
        if pool.http2 {
            // HTTP/2 only: over plain TCP pingora then speaks h2c with prior
            // knowledge; over TLS it offers only `h2` in ALPN.
            peer.options.set_http_version(2, 2);
            peer.options.max_h2_streams = pool.http2_max_streams;
            // Long-lived streams keep the connection busy, never idle: a
            // ping notices a dead upstream that sends nothing.
            peer.options.h2_ping_interval = Some(Duration::from_secs(30));
        }
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let peer = OwnPeer(peer);
        let host = http::HeaderValue::from_str(&authority)
            .map_err(|e| std::io::Error::other(format!("{authority} as Host: {e}")))?;
        let target = http::Uri::try_from(path.as_str())
            .map_err(|e| std::io::Error::other(format!("{path} as a request target: {e}")))?;
        Ok(Self {
            credentials,
            connector: PooledConnector::new(
                &peer,
                pool.pool_size,
                Duration::from_secs(pool.pool_idle_secs),
            ),
            peer,
            authority,
            host,
            path: path.clone(),
            target,
            addr,
        })
    }

    /// The endpoint's socket address (for active health checks).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The request head sent upstream for a client request head.
    ///
    /// The path becomes the upstream's, `Host` its authority, the session id
    /// the upstream's own, and the body length the buffered body's.
    ///
    /// Built as `http` parts, without pingora's header-case map: pingora's
    /// `append_header` turns each name into a title-cased copy and parses
    /// it back (two allocations per header, with the map's own), about 2 %
    /// of a worker's CPU in the profile of 4 KB `tools/call`. Names go out
    /// in lower case (HTTP field names are case-insensitive).
    pub fn request_header(
        &self,
        client: &http::request::Parts,
        upstream_session: Option<&str>,
        body_len: usize,
        caller: Caller<'_>,
    ) -> Result<RequestHeader> {
        let named_by_connection: Vec<String> = list_elements(&client.headers, "connection")
            .map(str::to_ascii_lowercase)
            .collect();
        // Shared with the client's head for HTTP/1, whose request head is
        // written and dropped at once. Copied for HTTP/2: pingora's parsed
        // values are slices of the client's 4 KiB read buffer, which a held
        // HTTP/2 stream would otherwise keep alive through its request head.
        let share = matches!(self.connector, PooledConnector::Http1 { .. });
        let mut headers = http::HeaderMap::with_capacity(client.headers.len() + 4);
        for (name, value) in client.headers.iter() {
            let n = name.as_str();
            if NOT_FORWARDED.contains(&n) || named_by_connection.iter().any(|c| c == n) {
                continue;
            }
            if !is_safe_value(value.as_bytes()) {
                return Err(pingora::Error::explain(
                    pingora::InvalidHTTPHeader,
                    format!("line break or NUL in the value of {n}; not forwarded"),
                ));
            }
            // The bytes `http` accepts in a value (pingora's parser lets
            // others through), checked without copying when shared.
            let value = if share
                && value
                    .as_bytes()
                    .iter()
                    .all(|&b| b >= 32 && b != 127 || b == b'\t')
            {
                value.clone()
            } else {
                http::HeaderValue::from_bytes(value.as_bytes())
                    .or_err_with(pingora::InvalidHTTPHeader, || {
                        format!("control byte in the value of {n}; not forwarded")
                    })?
            };
            headers.append(name.clone(), value);
        }
        headers.insert(http::header::HOST, self.host.clone());
        if let Some(id) = upstream_session.filter(|id| is_safe_value(id.as_bytes())) {
            let id = http::HeaderValue::from_str(id).or_err(
                pingora::InvalidHTTPHeader,
                "upstream session id not forwardable",
            )?;
            headers.insert(filters::header_values::MCP_SESSION_ID.clone(), id);
        }
        let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
        let length_as_sent = matches!(
            (lengths.next(), lengths.next()),
            (Some(v), None) if is_length(v.as_bytes(), body_len)
        );
        if (client.method == http::Method::POST || body_len > 0) && !length_as_sent {
            headers.insert(http::header::CONTENT_LENGTH, body_len.into());
        }
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = client.method.clone();
        parts.uri = self.target.clone();
        parts.headers = headers;
        let mut req = RequestHeader::from(parts);
        self.authenticate(&mut req, caller)?;
        Ok(req)
    }

    /// Adds mcpgate's own credential for this upstream, if it has one.
    fn authenticate(&self, req: &mut RequestHeader, caller: Caller<'_>) -> Result<()> {
        if let Some(c) = &self.credentials {
            c.apply(req, caller)
                .map_err(|e| pingora::Error::explain(pingora::InternalError, e))?;
        }
        Ok(())
    }

    /// Sends a whole request and reads the response head within `first_byte`.
    /// Retries once on a fresh connection when a pooled one turns out to be
    /// dead before any response byte arrived. `stream`: the answer is a
    /// long-lived stream (see [`exchange`]).
    pub async fn send(
        &self,
        req: &RequestHeader,
        body: &Bytes,
        first_byte: Duration,
        stream: bool,
    ) -> Result<Response, SendError> {
        let (s, reused) = self
            .connector
            .session(&self.peer)
            .await
            .map_err(SendError::Connect)?;
        match Self::attempt(s, req, body, first_byte, stream).await {
            Err(SendError::Failed(e)) if reused => {
                tracing::debug!("pooled upstream connection failed ({e}); retrying on a new one");
                let (fresh, _) = self
                    .connector
                    .session(&self.peer)
                    .await
                    .map_err(SendError::Connect)?;
                Self::attempt(fresh, req, body, first_byte, stream).await
            }
            other => other,
        }
    }

    async fn attempt(
        s: Taken,
        req: &RequestHeader,
        body: &Bytes,
        first_byte: Duration,
        stream: bool,
    ) -> Result<Response, SendError> {
        let exchanged = async {
            match s {
                // An answer's connection is batched (its request written
                // with one call, its answer read with one where it fits) and
                // goes back to the pool so; a stream's new connection is
                // not, sparing the wrapper for the stream's life.
                Taken::H1(io) if stream => H1Response::exchange(io, req, body, After::Close)
                    .await
                    .map(Response::H1),
                Taken::H1(io) => H1Response::exchange(Batched::wrap(io), req, body, After::Reuse)
                    .await
                    .map(Response::H1),
                Taken::H2(s) => exchange(HttpSession::H2(s), req, body, stream).await,
            }
        };
        match tokio::time::timeout(first_byte, exchanged).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(SendError::Failed(e)),
            Err(_) => Err(SendError::FirstByteTimeout),
        }
    }

    /// Sends a small mcpgate-originated message (cancel, DELETE) and drains
    /// the answer; the status is returned for logging.
    pub async fn send_own(
        &self,
        method: http::Method,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: Duration,
    ) -> Option<u16> {
        let mut req =
            RequestHeader::build(method, self.path.as_bytes(), Some(headers.len() + 2)).ok()?;
        req.insert_header("host", &self.authority).ok()?;
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v).ok()?;
        }
        req.insert_header("content-length", body.len().to_string())
            .ok()?;
        self.authenticate(
            &mut req,
            Caller {
                tenant: "mcpgate",
                subject: None,
            },
        )
        .ok()?;
        let mut s = self.send(&req, &body, limit, false).await.ok()?;
        let status = s.response_header().map(|h| h.status.as_u16());
        let drained = tokio::time::timeout(limit, async {
            while let Ok(Some(_)) = s.read_response_body().await {}
        })
        .await;
        if drained.is_ok() && s.response_done() {
            self.release(s).await;
        }
        status
    }

    /// Sends an mcpgate-originated request (`mcpgate pin`) and reads the
    /// whole answer, at most `max_body` bytes, within `limit`.
    pub async fn fetch_own(
        &self,
        method: http::Method,
        headers: &[(&str, &str)],
        body: Bytes,
        limit: Duration,
        max_body: usize,
    ) -> std::result::Result<OwnAnswer, String> {
        let mut req = RequestHeader::build(method, self.path.as_bytes(), Some(headers.len() + 2))
            .map_err(|e| e.to_string())?;
        req.insert_header("host", &self.authority)
            .map_err(|e| e.to_string())?;
        for (k, v) in headers {
            req.insert_header(k.to_string(), *v)
                .map_err(|e| e.to_string())?;
        }
        req.insert_header("content-length", body.len().to_string())
            .map_err(|e| e.to_string())?;
        self.authenticate(
            &mut req,
            Caller {
                tenant: "mcpgate",
                subject: None,
            },
        )
        .map_err(|e| e.to_string())?;
        let fetched = tokio::time::timeout(limit, async {
            let mut s = match self.send(&req, &body, limit, false).await {
                Ok(s) => s,
                Err(SendError::Connect(e)) => return Err(format!("cannot connect: {e}")),
                Err(SendError::Failed(e)) => return Err(e.to_string()),
                Err(SendError::FirstByteTimeout) => return Err("no answer in time".into()),
            };
            let head = s.response_header().cloned().ok_or("no response head")?;
            let mut bytes = Vec::new();
            while let Some(chunk) = s.read_response_body().await.map_err(|e| e.to_string())? {
                if bytes.len() + chunk.len() > max_body {
                    return Err(format!("answer over {max_body} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            self.release(s).await;
            Ok(OwnAnswer {
                status: head.status.as_u16(),
                headers: head.headers.clone(),
                body: bytes,
            })
        })
        .await;
        fetched.unwrap_or_else(|_| Err(format!("no whole answer within {limit:?}")))
    }

    /// Returns a finished connection to the pool (a stream's connection,
    /// or one whose answer did not end cleanly, is closed instead).
    pub async fn release(&self, r: Response) {
        match r {
            Response::Pooled(s) => self.connector.release(s, &self.peer).await,
            Response::H1(a) => {
                if let Some(io) = a.into_reusable() {
                    self.connector.release_h1(io);
                }
            }
            Response::Stdio(_) => {}
        }
    }
}

/// Writes a whole request on a pingora session `s` (the hand-over to the
/// worker owning a session) and reads the response head. The answer to a
/// `stream` request over HTTP/1 is read by [`H1Response`] (no pingora body
/// buffer kept for the stream's life); anything else by pingora's session.
pub async fn exchange(
    s: HttpSession,
    req: &RequestHeader,
    body: &Bytes,
    stream: bool,
) -> Result<Response> {
    match s {
        HttpSession::H1(h1) if stream => {
            H1Response::exchange(h1.into_inner(), req, body, After::Close)
                .await
                .map(Response::H1)
        }
        HttpSession::H1(h1) => {
            // Head and body in one write; pingora's session then reads the
            // answer (it needs the request only for HEAD, upgrades and
            // `Connection: close`, which mcpgate never forwards).
            // Batched: the answer is read with one call where it fits (a
            // connection taken from the pool already is).
            let mut io = Batched::wrap(h1.into_inner());
            crate::upstream::h1_stream::write_request(&mut io, req, body).await?;
            let mut s = HttpSession::H1(pingora::protocols::http::v1::client::HttpSession::new(io));
            s.read_response_header().await?;
            Ok(Response::Pooled(Box::new(s)))
        }
        mut s => {
            s.write_request_header(Box::new(req.clone())).await?;
            if !body.is_empty() {
                s.write_request_body(body.clone(), true).await?;
            }
            s.finish_request_body().await?;
            s.read_response_header().await?;
            Ok(Response::Pooled(Box::new(s)))
        }
    }
}

#[cfg(test)]
mod tests;
