//! A lean HTTP/1.1 client connection for load generation.
//!
//! Hand-written instead of hyper's client so that the load generator spends as
//! little CPU as possible per request on a machine it shares with the system
//! under test: one `write_all` per request (head and body pre-built), one
//! reusable read buffer, `httparse` for the head, `Content-Length` and chunked
//! bodies. It also reads just a response head and then leaves the connection
//! open, which is how long-lived SSE streams are held. Connections may speak
//! TLS (rustls, as the proxy does) for the TLS cells of the throughput
//! scenario.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Largest response head accepted (bytes).
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body kept in memory; longer bodies are counted, not kept.
const MAX_KEPT_BODY: usize = 256 * 1024;

/// What the caller needs from one response.
#[derive(Debug, Default, Clone)]
pub struct Response {
    pub status: u16,
    /// `Mcp-Session-Id`, when present.
    pub session_id: Option<String>,
    /// The body (kept up to 256 KiB).
    pub body: Vec<u8>,
    /// Body length in bytes.
    pub body_len: usize,
    /// The server will close the connection after this response.
    pub close: bool,
    /// `Content-Type: text/event-stream`.
    pub sse: bool,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
    None,
}

/// How a client speaks TLS: its rustls configuration and the name it sends
/// (SNI) and verifies.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client that trusts only `ca_pem`, verifies `server_name` and never
    /// resumes a session (every connection pays a full handshake, as a new
    /// client does).
    pub fn new(ca_pem: &[u8], server_name: &str) -> io::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| bad(&e.to_string()))?;
            roots.add(cert).map_err(|e| bad(&e.to_string()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        let server_name =
            ServerName::try_from(server_name.to_owned()).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Runs the client side of a handshake over `tcp`.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens a TCP connection to `addr`, from `source` when given (a loopback
/// alias, so that more than 64K connections find ephemeral ports).
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One client connection with its read buffer.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// Valid bytes in `buf` start at `start` and end at `end`.
    start: usize,
    end: usize,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

impl Conn {
    /// Connects to `addr`, from `source` when given (see [`tcp_connect`]).
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Self> {
        let tcp = tcp_connect(addr, source).await?;
        Ok(Self::over(Stream::Plain(tcp)))
    }

    /// Connects to `addr` and completes a TLS handshake.
    pub async fn connect_tls(
        addr: SocketAddr,
        source: Option<IpAddr>,
        tls: &TlsClient,
    ) -> io::Result<Self> {
        let tcp = tcp_connect(addr, source).await?;
        let stream = tls.handshake(tcp).await?;
        Ok(Self::over(Stream::Tls(Box::new(stream))))
    }

    fn over(stream: Stream) -> Self {
        Self {
            stream,
            buf: vec![0; 8 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// Sends a whole pre-built request and reads the whole response.
    pub async fn request(&mut self, raw: &[u8]) -> io::Result<Response> {
        self.stream.write_all(raw).await?;
        let (mut resp, framing) = self.read_head().await?;
        self.read_body(&mut resp, framing).await?;
        Ok(resp)
    }

    /// Sends a request and reads only the response head; the body (a stream)
    /// is then read with [`Conn::drain`].
    pub async fn open_stream(&mut self, raw: &[u8]) -> io::Result<Response> {
        self.stream.write_all(raw).await?;
        let (resp, _) = self.read_head().await?;
        // Forget what came with the head: streams are read, not parsed.
        self.start = 0;
        self.end = 0;
        Ok(resp)
    }

    /// Reads and discards stream bytes until the peer closes or `idle` passes
    /// without any byte (then returns `Ok` with the count so far). Shrinks the
    /// read buffer first: a held stream should cost the client little memory.
    pub async fn drain(&mut self, small_buf: usize) -> io::Result<u64> {
        self.buf = vec![0; small_buf.max(64)];
        self.start = 0;
        self.end = 0;
        let mut total = 0u64;
        loop {
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    }

    /// Reads a held chunked stream until the peer closes; whether it ended
    /// cleanly, with the last chunk (`0\r\n\r\n`), rather than cut off.
    pub async fn read_to_end_clean(&mut self) -> io::Result<bool> {
        const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
        let mut tail: Vec<u8> = self.buf[self.start..self.end].to_vec();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(tail.ends_with(LAST_CHUNK));
            }
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(LAST_CHUNK.len());
            tail.drain(..keep);
        }
    }

    /// Local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.stream {
            Stream::Plain(s) => s.local_addr(),
            Stream::Tls(s) => s.get_ref().0.local_addr(),
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grow = self.buf.len();
                self.buf.resize(grow * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response ended",
            ));
        }
        self.end += n;
        Ok(())
    }

    async fn read_head(&mut self) -> io::Result<(Response, Framing)> {
        loop {
            if self.end > self.start {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = parsed.code.unwrap_or(0);
                        if (100..200).contains(&status) {
                            self.start += len;
                            continue; // 100 Continue and friends
                        }
                        let mut resp = Response {
                            status,
                            close: parsed.version == Some(0),
                            ..Response::default()
                        };
                        let mut framing = Framing::UntilClose;
                        for h in parsed.headers.iter() {
                            let v = h.value;
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let n = std::str::from_utf8(v)
                                    .ok()
                                    .and_then(|s| s.trim().parse().ok())
                                    .ok_or_else(|| bad("bad content-length"))?;
                                framing = Framing::Length(n);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                if v.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked")) {
                                    framing = Framing::Chunked;
                                }
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                if v.eq_ignore_ascii_case(b"close") {
                                    resp.close = true;
                                }
                            } else if h.name.eq_ignore_ascii_case("mcp-session-id") {
                                resp.session_id = std::str::from_utf8(v).ok().map(str::to_owned);
                            } else if h.name.eq_ignore_ascii_case("content-type") {
                                resp.sse = v.starts_with(b"text/event-stream");
                            }
                        }
                        if status == 204 || status == 304 {
                            framing = Framing::None;
                        }
                        if matches!(framing, Framing::UntilClose) {
                            resp.close = true;
                        }
                        self.start += len;
                        return Ok((resp, framing));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(bad("malformed response head")),
                }
                if self.end - self.start > MAX_HEAD {
                    return Err(bad("response head too large"));
                }
            }
            self.fill().await?;
        }
    }

    fn take(&mut self, n: usize, resp: &mut Response) {
        let room = MAX_KEPT_BODY.saturating_sub(resp.body.len());
        let keep = n.min(room);
        resp.body
            .extend_from_slice(&self.buf[self.start..self.start + keep]);
        resp.body_len += n;
        self.start += n;
    }

    async fn read_body(&mut self, resp: &mut Response, framing: Framing) -> io::Result<()> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(mut left) => {
                while left > 0 {
                    if self.start == self.end {
                        self.fill().await?;
                    }
                    let n = left.min(self.end - self.start);
                    self.take(n, resp);
                    left -= n;
                }
                Ok(())
            }
            Framing::UntilClose => loop {
                if self.start < self.end {
                    let n = self.end - self.start;
                    self.take(n, resp);
                }
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            },
            Framing::Chunked => loop {
                let size = self.chunk_size_line().await?;
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        let line = self.line().await?;
                        if line == 0 {
                            return Ok(());
                        }
                    }
                }
                let mut left = size;
                while left > 0 {
                    if self.start == self.end {
                        self.fill().await?;
                    }
                    let n = left.min(self.end - self.start);
                    self.take(n, resp);
                    left -= n;
                }
                if self.line().await? != 0 {
                    return Err(bad("chunk not followed by CRLF"));
                }
            },
        }
    }

    /// Consumes one CRLF-terminated line; returns its length without the CRLF.
    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(pos) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                self.start += pos + 2;
                return Ok(pos);
            }
            if self.end - self.start > 1024 {
                return Err(bad("line too long"));
            }
            self.fill().await?;
        }
    }

    async fn chunk_size_line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(pos) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line = &self.buf[self.start..self.start + pos];
                let hex = line.split(|&b| b == b';').next().unwrap_or(line);
                let size = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .ok_or_else(|| bad("bad chunk size"))?;
                self.start += pos + 2;
                return Ok(size);
            }
            if self.end - self.start > 1024 {
                return Err(bad("chunk size line too long"));
            }
            self.fill().await?;
        }
    }
}

/// Runs `fut` with a timeout, turning the timeout into an I/O error.
pub async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
    }
}
