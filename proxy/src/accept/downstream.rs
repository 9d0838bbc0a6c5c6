//! The HTTP/1.1 server side of one request on a client connection: its head
//! read and checked, its body read, and its answer written.
//!
//! This replaces pingora's HTTP/1 server session, which the profile showed
//! at about 13 % of a worker's CPU under 4 KB `tools/call` load: a
//! request head built into pingora's header-case map (a title-cased copy of
//! every name beside the map), a 4 KiB head buffer then another read for the
//! body, a boxed digest and request head per request, and its teardown.
//! Here the head and the body that came with it are read with one call into
//! one buffer; the parsed head is an `http::request::Parts` whose values are
//! slices of that buffer; the body is sliced from it too.
//!
//! What stays pingora's, so that the wire is read as before:
//! - the parser: httparse with pingora's settings and limits (256 header
//!   lines, a head of at most 1 MiB), and pingora's rewrite of a request
//!   line whose target holds bytes httparse refuses (percent-encoded, then
//!   parsed again);
//! - the framing and authority checks of a head (ported from pingora's
//!   `validate_request`: Content-Length values reconciled or refused,
//!   Transfer-Encoding only on HTTP/1.1 with chunked last, Content-Length
//!   dropped beside Transfer-Encoding and the connection closed after; one
//!   Host, no userinfo), with pingora's own `validate_request_authority` for
//!   any target that is not origin-form;
//! - the answer's head serialization (`header_to_h1_wire`), its `Date` and
//!   `Connection` headers, and its body framing (Content-Length, chunked, or
//!   until close).
//!
//! A chunked request body is decoded by mcpgate's strict decoder
//! ([`super::chunked`]), so a framing that two parsers would read
//! differently is refused (before, a tap checked the raw bytes beside
//! pingora's lenient decoder).

use std::mem::MaybeUninit;
use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accept::chunked::{ChunkDecoder, ChunkError};

/// Most header lines in a request head (pingora's limit).
const MAX_HEADERS: usize = 256;
/// Largest request head read (pingora's limit).
const MAX_HEAD_BYTES: usize = 1_048_575;
/// Room for one read: a request's head and a body of a few KB in one call
/// (the read-ahead beneath reads directly into a buffer this large).
const READ_ROOM: usize = 16 * 1024;
/// A request head must arrive whole within this time once it has begun.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of an unread request body drained so the connection can be
/// reused (beyond this it is closed).
const MAX_DRAIN: usize = 64 * 1024;

/// How the request body is framed, and how much of it is left.
#[derive(Debug)]
enum BodyReader {
    /// Not looked at yet.
    Unread,
    Length(usize),
    Chunked(Box<ChunkDecoder>),
    Done,
}

/// How the answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyWriter {
    /// No final head written yet.
    NoHead,
    Length {
        left: usize,
    },
    Chunked,
    UntilClose,
    Done,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The chunked framing broke mcpgate's grammar.
    Framing(ChunkError),
    Io(Box<Error>),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Framing(e) => write!(f, "chunked framing: {e}"),
            BodyError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// One request's server side on a client connection.
pub(crate) struct Downstream {
    io: Stream,
    /// Bytes read and not yet taken: the head while it is parsed, then the
    /// body's, then the next request's (pipelining).
    buf: BytesMut,
    head: Option<Box<Head>>,
    body: BodyReader,
    writer: BodyWriter,
    /// The connection may serve another request after this one.
    keepalive: bool,
    /// The final status written, once written.
    status: Option<StatusCode>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The client closed its side while the answer was being written.
    half_closed: bool,
    /// The next request's first bytes arrived while this one was answered.
    next_started: bool,
}

struct Head {
    parts: http::request::Parts,
    /// The head's bytes as received (after pingora's target rewrite, if
    /// one was needed), for the header guard.
    raw: Bytes,
    /// What the client's `Connection` header asked: `Some(true)`
    /// keep-alive, `Some(false)` close (read once, see [`connection_asks`]).
    connection: Option<bool>,
    /// The head named both Content-Length and Transfer-Encoding (the
    /// former was dropped): the connection closes after this request.
    both_framings: bool,
}

impl Downstream {
    /// A connection's next request; `prefix`: its bytes already read (the
    /// end of the previous request's read).
    pub(crate) fn new(io: Stream, prefix: Option<BytesMut>) -> Self {
        Self {
            io,
            buf: prefix.unwrap_or_default(),
            head: None,
            body: BodyReader::Unread,
            writer: BodyWriter::NoHead,
            keepalive: false,
            status: None,
            read_timeout: None,
            write_timeout: None,
            half_closed: false,
            next_started: false,
        }
    }

    /// Reads and checks the request head: `Ok(false)` when the client
    /// closed before sending a byte.
    pub(crate) async fn read_request(&mut self) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
        let mut escaped = false;
        loop {
            if !self.buf.is_empty() {
                match parse_head(&self.buf) {
                    Parsed::Complete(layout) => {
                        let raw = self.buf.split_to(layout.len).freeze();
                        self.head = Some(Box::new(build_head(raw, &layout)?));
                        self.respect_keepalive();
                        return Ok(true);
                    }
                    Parsed::Partial => {}
                    Parsed::Invalid(e @ (httparse::Error::Token | httparse::Error::Version))
                        if !escaped =>
                    {
                        // pingora's rewrite of an illegal target: once.
                        match escape_illegal_request_line(&self.buf) {
                            Some(b) => {
                                self.buf = b;
                                escaped = true;
                                continue;
                            }
                            None => return invalid_head(e, &self.buf),
                        }
                    }
                    Parsed::Invalid(e) => return invalid_head(e, &self.buf),
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    format!("Request header larger than {MAX_HEAD_BYTES}"),
                );
            }
            let already = self.buf.len();
            self.buf.reserve(READ_ROOM);
            let read = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(0)) if already == 0 => return Ok(false),
                Ok(Ok(0)) => {
                    return Error::e_explain(
                        ErrorType::ConnectionClosed,
                        format!("while reading request headers, bytes already read: {already}"),
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) if already == 0 => return Ok(false),
                Ok(Err(e)) => {
                    return Error::e_because(
                        ErrorType::ReadError,
                        "while reading request headers",
                        e,
                    )
                }
                Err(_) => {
                    return Error::e_explain(
                        ErrorType::ReadTimedout,
                        format!("request head not complete within {HEAD_TIMEOUT:?}"),
                    )
                }
            }
        }
    }

    fn head(&self) -> &Head {
        self.head
            .as_deref()
            .expect("the request head is read before it is used")
    }

    /// The request's head (after [`Self::read_request`]).
    pub(crate) fn req_header(&self) -> &http::request::Parts {
        &self.head().parts
    }

    /// The request's head as pingora's client sends it (a request handed
    /// to a sibling worker).
    pub(crate) fn pingora_header(&self) -> Result<RequestHeader> {
        let parts = self.req_header();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes();
        let mut h =
            RequestHeader::build_no_case(parts.method.clone(), target, Some(parts.headers.len()))?;
        h.set_version(parts.version);
        for (name, value) in parts.headers.iter() {
            h.append_header(name.clone(), value.clone())?;
        }
        Ok(h)
    }

    /// The head's bytes as received.
    pub(crate) fn raw_head(&self) -> Bytes {
        self.head().raw.clone()
    }

    /// Keep-alive as the client asked: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 with `Connection: keep-alive` (pingora's rule). Framing that
    /// named both Content-Length and Transfer-Encoding closes after.
    fn respect_keepalive(&mut self) {
        let head = self.head();
        let keep = head
            .connection
            .unwrap_or(head.parts.version == Version::HTTP_11);
        self.keepalive = keep && !head.both_framings;
    }

    /// `false`: close the connection after this answer. `true`: keep it,
    /// unless the client asked to close or the framing forbids it (the idle
    /// limit is the accept layer's).
    pub(crate) fn set_keepalive(&mut self, keep: bool) {
        let refused = self
            .head
            .as_ref()
            .is_some_and(|h| h.connection == Some(false) || h.both_framings);
        self.keepalive = keep && !refused;
    }

    pub(crate) fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    pub(crate) fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t;
    }

    /// The final status written, if any.
    pub(crate) fn response_status(&self) -> Option<u16> {
        self.status.map(|s| s.as_u16())
    }

    fn init_body(&mut self) -> Result<()> {
        if !matches!(self.body, BodyReader::Unread) {
            return Ok(());
        }
        let headers = &self.head().parts.headers;
        self.body = if is_chunked(headers) {
            BodyReader::Chunked(Box::default())
        } else {
            match content_length_for_framing(headers)? {
                Some(0) | None => BodyReader::Done,
                Some(n) => BodyReader::Length(n),
            }
        };
        Ok(())
    }

    /// The next piece of the request body; `None` once it is all read.
    pub(crate) async fn read_request_body(
        &mut self,
    ) -> std::result::Result<Option<Bytes>, BodyError> {
        self.init_body().map_err(BodyError::Io)?;
        loop {
            match &mut self.body {
                BodyReader::Unread | BodyReader::Done => return Ok(None),
                BodyReader::Length(left) => {
                    if !self.buf.is_empty() {
                        let take = (*left).min(self.buf.len());
                        *left -= take;
                        if *left == 0 {
                            self.body = BodyReader::Done;
                        }
                        return Ok(Some(self.buf.split_to(take).freeze()));
                    }
                    let room = (*left).min(READ_ROOM);
                    self.fill(room).await.map_err(BodyError::Io)?;
                }
                BodyReader::Chunked(decoder) => {
                    if !self.buf.is_empty() {
                        let mut out = Vec::new();
                        let used = decoder
                            .decode(&self.buf, &mut out)
                            .map_err(BodyError::Framing)?;
                        let _ = self.buf.split_to(used);
                        if decoder.is_done() {
                            self.body = BodyReader::Done;
                        }
                        if !out.is_empty() {
                            return Ok(Some(Bytes::from(out)));
                        }
                        continue;
                    }
                    self.fill(READ_ROOM).await.map_err(BodyError::Io)?;
                }
            }
        }
    }

    /// Reads at least one more byte into `buf` (room for `room`); the end of
    /// the stream is an error.
    async fn fill(&mut self, room: usize) -> Result<()> {
        self.buf.reserve(room.max(1));
        let read = self.io.read_buf(&mut self.buf);
        let n = within(
            self.read_timeout,
            read,
            Io::Read,
            "reading the request body",
        )
        .await?;
        if n == 0 {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "the client closed before the end of the request body",
            );
        }
        Ok(())
    }

    fn body_done(&self) -> bool {
        matches!(self.body, BodyReader::Done)
    }

    /// Waits while an answer is written: returns (an error) when the client
    /// closes its side; a next request arriving early is kept for later and
    /// this waits on.
    pub(crate) async fn until_client_leaves(&mut self) -> Result<()> {
        if self.half_closed {
            return Error::e_explain(ErrorType::ConnectionClosed, "the client closed");
        }
        if self.next_started || !self.buf.is_empty() {
            return std::future::pending().await;
        }
        self.buf.reserve(1024);
        let n = self
            .io
            .read_buf(&mut self.buf)
            .await
            .or_err(ErrorType::ReadError, "while the answer was written")?;
        if n == 0 {
            self.half_closed = true;
            self.keepalive = false;
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                if self.status.is_none() {
                    "Prematurely before response header is sent"
                } else {
                    "Prematurely before response body is complete"
                },
            );
        }
        // The start of a pipelined request (RFC 9112 §9.3.2), served next.
        self.next_started = true;
        std::future::pending().await
    }

    /// Writes the answer's head (a second final head is ignored, as by
    /// pingora).
    pub(crate) async fn write_response_header(
        &mut self,
        mut head: Box<ResponseHeader>,
    ) -> Result<()> {
        if self.status.is_some() {
            tracing::warn!("an answer's head was already written; not again");
            return Ok(());
        }
        let status = head.status;
        let interim = status.is_informational();
        if !interim {
            // An answer before the whole request was read closes the
            // connection after it (pingora's default).
            if self.init_body().is_err() || !self.body_done() {
                self.keepalive = false;
            }
            let _ = head.insert_header(
                header::DATE,
                pingora::protocols::http::date::get_cached_date(),
            );
            self.writer = self.writer_for(&head);
            if self.writer == BodyWriter::UntilClose {
                self.keepalive = false;
            }
            let connection = if self.keepalive {
                "keep-alive"
            } else {
                "close"
            };
            let _ = head.insert_header(header::CONNECTION, connection);
        }
        let mut wire = BytesMut::with_capacity(512);
        let version = match head.version {
            Version::HTTP_10 => &b"HTTP/1.0 "[..],
            _ => b"HTTP/1.1 ",
        };
        wire.extend_from_slice(version);
        wire.extend_from_slice(status.as_str().as_bytes());
        wire.extend_from_slice(b" ");
        if let Some(reason) = head.get_reason_phrase() {
            wire.extend_from_slice(reason.as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        head.header_to_h1_wire(&mut wire);
        wire.extend_from_slice(b"\r\n");
        let flush = interim
            || !head.headers.contains_key(header::CONTENT_LENGTH)
            || self.writer == BodyWriter::Done;
        if !interim {
            self.status = Some(status);
        }
        self.write(&wire, flush).await
    }

    fn writer_for(&self, head: &ResponseHeader) -> BodyWriter {
        let bodyless = matches!(
            head.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        ) || self
            .head
            .as_ref()
            .is_some_and(|h| h.parts.method == Method::HEAD);
        if bodyless {
            return BodyWriter::Done;
        }
        if is_chunked(&head.headers) {
            return BodyWriter::Chunked;
        }
        match content_length_for_framing(&head.headers) {
            Ok(Some(0)) => BodyWriter::Done,
            Ok(Some(n)) => BodyWriter::Length { left: n },
            _ => BodyWriter::UntilClose,
        }
    }

    /// Writes `data` of the answer's body; `end`: the body is complete.
    pub(crate) async fn write_response_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if !data.is_empty() {
            match self.writer {
                BodyWriter::Length { left } => {
                    let take = data.len().min(left);
                    if take < data.len() {
                        tracing::warn!("an answer's body went past its Content-Length; cut");
                    }
                    let left = left - take;
                    self.writer = if left == 0 {
                        BodyWriter::Done
                    } else {
                        BodyWriter::Length { left }
                    };
                    self.write(&data[..take], left == 0).await?;
                }
                BodyWriter::Chunked => {
                    let size = format!("{:X}\r\n", data.len());
                    self.write(size.as_bytes(), false).await?;
                    self.write(&data, false).await?;
                    self.write(b"\r\n", true).await?;
                }
                BodyWriter::UntilClose => self.write(&data, true).await?,
                BodyWriter::NoHead | BodyWriter::Done => {
                    tracing::debug!("answer body bytes with no body to write them in; dropped");
                }
            }
        }
        if end {
            self.finish_body().await?;
        }
        Ok(())
    }

    /// Ends the answer's body (the last chunk of a chunked one) and flushes.
    pub(crate) async fn finish_body(&mut self) -> Result<()> {
        match self.writer {
            BodyWriter::Chunked => {
                self.writer = BodyWriter::Done;
                self.write(b"0\r\n\r\n", true).await
            }
            BodyWriter::Length { .. } => {
                // Shorter than it said: the client cannot find the next
                // answer on this connection.
                self.keepalive = false;
                self.writer = BodyWriter::Done;
                self.flush().await
            }
            BodyWriter::UntilClose => {
                self.writer = BodyWriter::Done;
                self.flush().await
            }
            BodyWriter::NoHead | BodyWriter::Done => self.flush().await,
        }
    }

    async fn write(&mut self, bytes: &[u8], flush: bool) -> Result<()> {
        let io = &mut self.io;
        let write = async move {
            io.write_all(bytes).await?;
            if flush {
                io.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        within(self.write_timeout, write, Io::Write, "writing the answer").await
    }

    async fn flush(&mut self) -> Result<()> {
        let io = &mut self.io;
        within(
            self.write_timeout,
            io.flush(),
            Io::Write,
            "writing the answer",
        )
        .await
    }

    /// Ends the request: the answer flushed, then the connection and any
    /// bytes of the next request already read when it can be reused
    /// (the rest of an unread request body drained first, up to a bound).
    pub(crate) async fn finish(mut self) -> Result<Option<(Stream, Option<BytesMut>)>> {
        self.finish_body().await?;
        if !self.keepalive {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
            return Ok(None);
        }
        let mut drained = 0;
        while !self.body_done() {
            match self.read_request_body().await {
                Ok(Some(b)) => {
                    drained += b.len();
                    if drained > MAX_DRAIN {
                        return Ok(None);
                    }
                }
                Ok(None) => break,
                Err(_) => return Ok(None),
            }
        }
        let prefix = (!self.buf.is_empty()).then_some(self.buf);
        Ok(Some((self.io, prefix)))
    }

    /// The connection, for a stream relayed on it once this request's state
    /// is gone.
    pub(crate) fn into_inner(self) -> Stream {
        self.io
    }
}

/// Which way an I/O call goes, for its errors.
#[derive(Clone, Copy)]
enum Io {
    Read,
    Write,
}

/// `io` within `limit` (if any); a timeout or failure as pingora's error
/// types (a write timeout is what the relay counts as a slow client).
async fn within<T>(
    limit: Option<Duration>,
    io: impl std::future::Future<Output = std::io::Result<T>>,
    way: Io,
    what: &str,
) -> Result<T> {
    let (timed_out, failed) = match way {
        Io::Read => (ErrorType::ReadTimedout, ErrorType::ReadError),
        Io::Write => (ErrorType::WriteTimedout, ErrorType::WriteError),
    };
    let done = match limit {
        Some(t) => match tokio::time::timeout(t, io).await {
            Ok(r) => r,
            Err(_) => return Error::e_explain(timed_out, format!("{what}: timeout {t:?}")),
        },
        None => io.await,
    };
    done.or_err_with(failed, || what.to_owned())
}

enum Parsed {
    Complete(Layout),
    Partial,
    Invalid(httparse::Error),
}

/// Where the parts of a complete head lie in the buffer it was parsed from
/// (so the head is parsed once, then sliced from the frozen buffer).
struct Layout {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    version: Option<u8>,
    /// Each header line's name and value.
    headers: Vec<(Range<usize>, Range<usize>)>,
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut lines) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Invalid(e),
    };
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    Parsed::Complete(Layout {
        len,
        method: range(req.method.unwrap_or("").as_bytes()),
        target: range(req.path.unwrap_or("").as_bytes()),
        version: req.version,
        headers: req
            .headers
            .iter()
            .map(|h| (range(h.name.as_bytes()), range(h.value)))
            .collect(),
    })
}

fn invalid_head<T>(e: httparse::Error, buf: &[u8]) -> Result<T> {
    let shown = &buf[..buf.len().min(2048)];
    Error::e_because(
        ErrorType::InvalidHTTPHeader,
        format!("buf: {}", shown.escape_ascii()),
        e,
    )
}

/// Builds and checks the head parsed from `raw` (which holds it whole).
fn build_head(raw: Bytes, layout: &Layout) -> Result<Head> {
    let method = Method::from_bytes(&raw[layout.method.clone()])
        .or_err(ErrorType::InvalidHTTPHeader, "invalid method")?;
    let version = match layout.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_09,
    };
    let target = &raw[layout.target.clone()];
    let mut headers = HeaderMap::with_capacity(layout.headers.len());
    for (name, value) in &layout.headers {
        let name = filters::header_values::header_name(&raw[name.clone()])
            .or_err(ErrorType::InvalidHTTPHeader, "while parsing request header")?;
        let value = HeaderValue::from_maybe_shared(raw.slice(value.clone()))
            .or_err(ErrorType::InvalidHTTPHeader, "while parsing request header")?;
        headers.append(name, value);
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); the
    // connection is closed after (§6.1).
    let both_framings = headers.contains_key(header::TRANSFER_ENCODING)
        && headers.remove(header::CONTENT_LENGTH).is_some();
    let origin_form = target.first() == Some(&b'/')
        && target.is_ascii()
        && !target.contains(&b'#')
        && method != Method::CONNECT;
    let uri = if origin_form {
        check_host(&headers)?;
        Uri::from_maybe_shared(raw.slice(layout.target.clone()))
            .or_err(ErrorType::InvalidHTTPHeader, "invalid uri")?
    } else {
        // Absolute-form, authority-form, asterisk-form, non-ASCII: as
        // pingora reads and checks them.
        let mut p = RequestHeader::build_no_case(method.clone(), target, Some(headers.len()))?;
        p.set_version(version);
        for (n, v) in headers.iter() {
            p.append_header(n.clone(), v.clone())?;
        }
        pingora::protocols::http::authority::validate_request_authority(&p)?;
        p.uri.clone()
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    validate_framing(&parts)?;
    let connection = connection_asks(&parts.headers);
    Ok(Head {
        parts,
        raw,
        connection,
        both_framings,
    })
}

/// One Host line, and no userinfo in it (pingora's checks of an
/// origin-form request).
fn check_host(headers: &HeaderMap) -> Result<()> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (host, again) = (hosts.next(), hosts.next());
    if again.is_some() {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "multiple Host header fields");
    }
    if host.is_some_and(|h| h.as_bytes().contains(&b'@')) {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "userinfo in Host header");
    }
    Ok(())
}

/// pingora's `validate_request` for framing: Content-Length reconciled
/// (identical repeats accepted) or refused; Transfer-Encoding only on
/// HTTP/1.1, with chunked as its last coding.
fn validate_framing(parts: &http::request::Parts) -> Result<()> {
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        if parts.version == Version::HTTP_10 {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "HTTP/1.0 requests cannot include Transfer-Encoding header",
            );
        }
        if !is_chunked(&parts.headers) {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "non-chunked final Transfer-Encoding",
            );
        }
        return Ok(());
    }
    content_length_for_framing(&parts.headers).map(|_| ())
}

/// Whether chunked is the last coding of the last Transfer-Encoding line.
fn is_chunked(headers: &HeaderMap) -> bool {
    let Some(last) = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
    else {
        return false;
    };
    let bytes = last.as_bytes();
    let token = bytes
        .iter()
        .rposition(|b| *b == b',')
        .map_or(bytes, |i| &bytes[i + 1..]);
    token.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// The Content-Length that frames a message: every value across its lines
/// and lists equal (then that value), or an error; `None` when absent.
fn content_length_for_framing(headers: &HeaderMap) -> Result<Option<usize>> {
    let mut length: Option<u64> = None;
    let mut any = false;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        any = true;
        let Ok(line) = value.to_str() else {
            return bad_length();
        };
        for v in line.split(',') {
            let Some(n) = digits(v.trim().as_bytes()) else {
                return bad_length();
            };
            match length {
                Some(prev) if prev != n => return bad_length(),
                _ => length = Some(n),
            }
        }
    }
    match length {
        Some(n) => usize::try_from(n)
            .map(Some)
            .or_err(ErrorType::InvalidHTTPHeader, "Content-Length too large"),
        None if any => bad_length(),
        None => Ok(None),
    }
}

fn bad_length<T>() -> Result<T> {
    Error::e_explain(
        ErrorType::InvalidHTTPHeader,
        "invalid Content-Length header",
    )
}

/// Decimal digits only (no sign), without overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// What the `Connection` header asks: `Some(true)` keep-alive, `Some(false)`
/// close, `None` neither (pingora's reading: a lone `keep-alive` keeps, a
/// `close` among the tokens closes).
fn connection_asks(headers: &HeaderMap) -> Option<bool> {
    let value = headers.get(header::CONNECTION)?.as_bytes();
    if value.eq_ignore_ascii_case(b"keep-alive") {
        return Some(true);
    }
    let text = std::str::from_utf8(value).unwrap_or("");
    text.split(',')
        .map(str::trim)
        .any(|t| t.eq_ignore_ascii_case("close"))
        .then_some(false)
}

/// pingora's rewrite of a request line whose target holds bytes httparse
/// refuses: the target between `METHOD ` and the last ` HTTP/d[.d]` of the
/// first line, with controls, space, `<`, `>`, `"` and non-ASCII bytes
/// percent-encoded. `None` when there is no such line or nothing changed.
fn escape_illegal_request_line(buf: &[u8]) -> Option<BytesMut> {
    let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
    let line = &buf[..line_end];
    let method_len = line
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    if method_len == 0 || line[method_len] != b' ' {
        return None;
    }
    let start = method_len + 1;
    // The last " HTTP/<digit>" after at least one target byte.
    let end = (start + 1..line.len()).rev().find(|&i| {
        line[i..].starts_with(b" HTTP/") && line.get(i + 6).is_some_and(u8::is_ascii_digit)
    })?;
    let target = &line[start..end];
    let mut out = BytesMut::with_capacity(buf.len() + 32);
    out.extend_from_slice(&buf[..start]);
    let mut changed = false;
    for &b in target {
        if !(0x20..0x7f).contains(&b) || matches!(b, b' ' | b'<' | b'>' | b'"') {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
            changed = true;
        } else {
            out.extend_from_slice(&[b]);
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&buf[end..]);
    Some(out)
}

#[cfg(test)]
mod tests;
