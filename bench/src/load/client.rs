//! A lean HTTP/1.1 client connection for load generation.
//!
//! Hand-written instead of hyper's client so that the load generator spends as
//! little CPU as possible per request on a machine it shares with the system
//! under test: one `write_all` per request (head and body pre-built), one
//! reusable read buffer, `httparse` for the head, `Content-Length` and chunked
//! bodies. It also reads just a response head and then leaves the connection
//! open, which is how long-lived SSE streams are held.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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

/// One client connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Valid bytes in `buf` start at `start` and end at `end`.
    start: usize,
    end: usize,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

impl Conn {
    /// Connects to `addr`, from `source` when given (a loopback alias, so that
    /// more than 64K connections find ephemeral ports).
    pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Self> {
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
        Ok(Self {
            stream,
            buf: vec![0; 8 * 1024],
            start: 0,
            end: 0,
        })
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

    /// Local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
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
