//! HTTP/1 exchanges with upstreams, on mcpgate's own terms.
//!
//! pingora's HTTP/1 client allocates a 64 KiB body buffer for every
//! response when it reads the head (`BodyReader::init_*`; the size is a
//! private constant), and keeps it for the life of the response.
//!
//! - A legacy GET stream or a `subscriptions/listen` stream lives for hours
//!   with a few small events, so 100,000 of them would hold gigabytes of
//!   mostly empty buffers. Such a stream ([`After::Close`]) is read with the
//!   head in a buffer that is dropped once parsed and the body read only
//!   when bytes are ready (into a read buffer freed after each read), with
//!   [`ChunkDecoder`] keeping nothing but a partial size line in between.
//! - An ordinary answer ([`After::Reuse`]) was, in the profile of 4 KB
//!   `tools/call`, about 6 % of a worker's CPU in pingora's client session
//!   (the 64 KiB buffer, a copy of each body read out of it, a boxed digest
//!   per session). Here its head and the body bytes that came with it are
//!   read with one call into one buffer the body is then sliced from, a
//!   `Content-Length` body's rest into a buffer of its size, and the
//!   connection goes back to its pool when the answer ended exactly where
//!   the upstream said it would.
//!
//! The connection still comes from pingora's connector (connect timeout,
//! TLS).

use bytes::{Bytes, BytesMut};
use filters::header_values::list_elements;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::http_req_header_to_wire;
use pingora::protocols::Stream;
use pingora::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::accept::chunked::ChunkDecoder;

/// Largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 128;
/// Read size for body bytes (the buffer lives only during one read).
const READ_CHUNK: usize = 16 * 1024;
/// Largest read of a `Content-Length` body's rest.
const MAX_BODY_READ: usize = 64 * 1024;
/// First read of an ordinary answer: its head and, usually, all its body
/// (a 4 KB `tools/call` answer fits). 16 KiB measured about 1 % more
/// memory per held legacy GET stream (`make conn-memory`, A/B).
const ANSWER_READ: usize = 8 * 1024;
/// First read of a stream's head (the buffer is dropped once parsed).
const STREAM_HEAD_READ: usize = 2048;

/// What becomes of the connection once the answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// A long-lived stream: read with as little memory held as possible,
    /// and the connection closed at its end.
    Close,
    /// An ordinary answer: read with few system calls, and the connection
    /// reusable if the answer allows it.
    Reuse,
}

/// Writes a request's head and body with one vectored write where the
/// connection takes it (pingora's client writes and flushes the head on its
/// own first: one more system call, and a segment that wakes the upstream
/// before the body is there).
pub async fn write_request(io: &mut Stream, req: &RequestHeader, body: &Bytes) -> Result<()> {
    use bytes::Buf;
    let wire = http_req_header_to_wire(req)
        .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "request head not writable"))?;
    let mut both = wire.freeze().chain(body.clone());
    io.write_all_buf(&mut both)
        .await
        .or_err(ErrorType::WriteError, "writing request upstream")?;
    io.flush()
        .await
        .or_err(ErrorType::WriteError, "flushing request upstream")
}

/// How the response body ends.
#[derive(Debug)]
enum Framing {
    Chunked(ChunkDecoder),
    Length(u64),
    /// Until the upstream closes the connection.
    Close,
    Done,
}

/// A response being read from an upstream connection owned by this module.
pub struct H1Response {
    head: Option<Box<ResponseHeader>>,
    io: Stream,
    framing: Framing,
    /// Body bytes read together with the head, not yet handed on.
    preread: Option<Bytes>,
    after: After,
    /// Whether the connection may carry another request once the body is
    /// done: HTTP/1.1 without `Connection: close`, a body of known end, and
    /// no bytes past that end so far.
    reusable: bool,
}

impl H1Response {
    /// Writes `req` and `body` on `io`, then reads the response head
    /// (skipping interim 1xx responses).
    pub async fn exchange(
        mut io: Stream,
        req: &RequestHeader,
        body: &Bytes,
        after: After,
    ) -> Result<Self> {
        write_request(&mut io, req, body).await?;
        let mut buf = BytesMut::with_capacity(match after {
            After::Close => STREAM_HEAD_READ,
            After::Reuse => ANSWER_READ,
        });
        loop {
            let head = read_head(&mut io, &mut buf, after == After::Reuse).await?;
            let status = head.status.as_u16();
            if (100..200).contains(&status) {
                continue;
            }
            let mut head = head;
            let framing = framing_of(&head, req)?;
            match framing {
                // RFC 9112 6.3: with chunked, Content-Length is ignored (and not relayed).
                Framing::Chunked(_) => {
                    head.remove_header("content-length");
                }
                // Delimited by close here; the client gets it chunked.
                Framing::Close => {
                    head.remove_header("transfer-encoding");
                }
                _ => {}
            }
            let reusable = after == After::Reuse
                && head.version == http::Version::HTTP_11
                && !says_close(&head)
                && !matches!(framing, Framing::Close);
            // A stream copies what came with its head, so that the head's
            // buffer is not kept; an answer's body is sliced from it.
            let preread = match after {
                _ if buf.is_empty() => None,
                After::Close => Some(Bytes::copy_from_slice(&buf)),
                After::Reuse => Some(buf.split().freeze()),
            };
            return Ok(Self {
                head: Some(head),
                io,
                framing,
                preread,
                after,
                reusable,
            });
        }
    }

    pub fn head(&self) -> Option<&ResponseHeader> {
        self.head.as_deref()
    }

    /// Takes the response head out, to relay it (nothing reads it after:
    /// a held stream keeps no head).
    pub fn take_head(&mut self) -> Option<Box<ResponseHeader>> {
        self.head.take()
    }

    pub fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// The connection, when it can carry another request: the answer was
    /// read to its end and nothing followed it.
    pub fn into_reusable(self) -> Option<Stream> {
        (self.reusable && self.is_done() && self.preread.is_none()).then_some(self.io)
    }

    /// The next body bytes; `None` at the end of the body. Waits for the
    /// connection to become readable before any buffer is allocated.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(pre) = self.preread.take() {
                if let Some(data) = self.take(&pre)? {
                    return Ok(Some(data));
                }
                continue;
            }
            if self.is_done() {
                return Ok(None);
            }
            if self.after == After::Reuse {
                // In flight: read into a buffer sized for what is to come.
                let size = match self.framing {
                    Framing::Length(left) => (left as usize).min(MAX_BODY_READ),
                    _ => READ_CHUNK,
                };
                let mut buf = BytesMut::with_capacity(size);
                let n = self
                    .io
                    .read_buf(&mut buf)
                    .await
                    .or_err(ErrorType::ReadError, "reading upstream body")?;
                if n == 0 {
                    return self.closed();
                }
                if let Some(data) = self.take(&buf.freeze())? {
                    return Ok(Some(data));
                }
                continue;
            }
            let mut probe = [0u8; 1];
            let ready = self.io.try_peek(&mut probe).await;
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let n = match ready {
                Ok(_) => {
                    // The peeked byte comes back alone: add what else is
                    // ready now, without waiting for more.
                    let mut n = self
                        .io
                        .read_buf(&mut buf)
                        .await
                        .or_err(ErrorType::ReadError, "reading upstream body")?;
                    if n > 0 && buf.len() < buf.capacity() {
                        n += tokio::select! {
                            biased;
                            more = self.io.read_buf(&mut buf) => more.unwrap_or(0),
                            _ = std::future::ready(()) => 0,
                        };
                    }
                    n
                }
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e).or_err(ErrorType::ReadError, "reading upstream body"),
            };
            if n == 0 {
                return self.closed();
            }
            if let Some(data) = self.take(&buf.freeze())? {
                return Ok(Some(data));
            }
        }
    }

    /// The upstream closed the connection: the end of a close-delimited
    /// body, else an answer cut short.
    fn closed(&mut self) -> Result<Option<Bytes>> {
        if matches!(self.framing, Framing::Close) {
            self.framing = Framing::Done;
            return Ok(None);
        }
        Error::e_explain(
            ErrorType::ConnectionClosed,
            "upstream closed the connection before the body ended",
        )
    }

    /// Decodes `input` by the body's framing; `None` when it held no data.
    /// Bytes past the end of the body are dropped, and the connection is
    /// then not reused (the next answer could not be told apart).
    fn take(&mut self, input: &Bytes) -> Result<Option<Bytes>> {
        let (data, used) = match &mut self.framing {
            Framing::Done => (Bytes::new(), 0),
            Framing::Close => (input.clone(), input.len()),
            Framing::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    self.framing = Framing::Done;
                }
                (input.slice(..n), n)
            }
            Framing::Chunked(d) => {
                let mut out = Vec::new();
                let used = d
                    .decode(input, &mut out)
                    .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, e.to_string()))?;
                if d.is_done() {
                    self.framing = Framing::Done;
                }
                (Bytes::from(out), used)
            }
        };
        if used < input.len() {
            self.reusable = false;
        }
        Ok((!data.is_empty()).then_some(data))
    }
}

/// Reads until `buf` holds a whole response head and takes it out of
/// `buf`. `share`: header values are slices of the read buffer rather than
/// copies (for an answer, whose head lives only while it is relayed).
async fn read_head(
    io: &mut Stream,
    buf: &mut BytesMut,
    share: bool,
) -> Result<Box<ResponseHeader>> {
    loop {
        if let Some(head) = parse_head(buf, share)? {
            return Ok(head);
        }
        if buf.len() >= MAX_HEAD {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "upstream response head too long",
            );
        }
        buf.reserve(2048);
        let n = io
            .read_buf(buf)
            .await
            .or_err(ErrorType::ReadError, "reading upstream response head")?;
        if n == 0 {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "upstream closed the connection before a response head",
            );
        }
    }
}

/// Parses a whole response head at the start of `buf` and takes it out;
/// `None` while the head is incomplete.
///
/// The head is built as `http` parts, without pingora's header-case map
/// (whose `append_header` copies and re-parses every name), so names are
/// relayed in lower case.
fn parse_head(buf: &mut BytesMut, share: bool) -> Result<Option<Box<ResponseHeader>>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    // As pingora's client parses answers: a folded line is accepted (and
    // its header then dropped, below), a space before the colon tolerated.
    let mut config = httparse::ParserConfig::default();
    config.allow_spaces_after_header_name_in_responses(true);
    config.allow_obsolete_multiline_headers_in_responses(true);
    let len = match config.parse_response(&mut resp, buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                format!("upstream response head: {e}"),
            )
        }
    };
    let status = http::StatusCode::from_u16(resp.code.unwrap_or(0))
        .or_err(ErrorType::InvalidHTTPHeader, "upstream response status")?;
    let version = match resp.version {
        Some(0) => http::Version::HTTP_10,
        _ => http::Version::HTTP_11,
    };
    let reason = resp
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .map(str::to_string);
    // Where each name and value lies in `buf` (httparse's slices borrow it).
    let start = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let from = if s.is_empty() {
            0
        } else {
            s.as_ptr() as usize - start
        };
        from..from + s.len()
    };
    let spans: Vec<_> = resp
        .headers
        .iter()
        .map(|h| (at(h.name.as_bytes()), at(h.value)))
        .collect();
    let raw = buf.split_to(len).freeze();
    let mut map = http::HeaderMap::with_capacity(spans.len());
    for (name, value) in spans {
        let name = filters::header_values::header_name(&raw[name])
            .or_err(ErrorType::InvalidHTTPHeader, "upstream header name")?;
        let value = if share {
            http::HeaderValue::from_maybe_shared(raw.slice(value))
        } else {
            http::HeaderValue::from_bytes(&raw[value])
        };
        // A value that could not be written back as it came (a folded
        // line, a control byte) is dropped here, as the relay would.
        let Ok(value) = value else {
            tracing::debug!(%name, "upstream header with an unwritable value dropped");
            continue;
        };
        map.append(name, value);
    }
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = map;
    let mut head = ResponseHeader::from(parts);
    head.set_reason_phrase(reason.as_deref())?;
    Ok(Some(Box::new(head)))
}

/// Whether the answer asks for its connection to be closed (`Connection:
/// close`, any case, among other tokens).
fn says_close(head: &ResponseHeader) -> bool {
    list_elements(&head.headers, "connection").any(|t| t.eq_ignore_ascii_case("close"))
}

/// The body's framing (RFC 9112 6.3): chunked wins over Content-Length.
fn framing_of(head: &ResponseHeader, req: &RequestHeader) -> Result<Framing> {
    let status = head.status.as_u16();
    if req.method == http::Method::HEAD || matches!(status, 204 | 304) {
        return Ok(Framing::Done);
    }
    if let Some(last) = list_elements(&head.headers, "transfer-encoding").last() {
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked(ChunkDecoder::new())
        } else {
            Framing::Close
        });
    }
    let mut lengths = head.headers.get_all("content-length").iter();
    let Some(first) = lengths.next().map(|v| v.as_bytes()) else {
        return Ok(Framing::Close);
    };
    if !lengths.all(|v| v.as_bytes() == first) {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "conflicting upstream Content-Length",
        );
    }
    let n = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Error::explain(ErrorType::InvalidHTTPHeader, "bad upstream Content-Length")
        })?;
    Ok(if n == 0 {
        Framing::Done
    } else {
        Framing::Length(n)
    })
}

#[cfg(test)]
mod tests;
