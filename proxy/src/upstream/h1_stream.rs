//! HTTP/1 exchanges for long-lived streams, on mcpgate's own terms.
//!
//! pingora's HTTP/1 client allocates a 64 KiB body buffer for every chunked
//! response when it reads the head (`BodyReader::init_chunked`; the size is
//! a private constant), and keeps it for the life of the response. A legacy
//! GET stream or a `subscriptions/listen` stream lives for hours with a few
//! small events, so 100,000 of them would hold gigabytes of mostly empty
//! buffers. Here the connection still comes from pingora's connector (pool,
//! connect timeout, TLS), but the request is written and the response read
//! by this module: the head into a buffer that is dropped once parsed, the
//! body only when bytes are ready (into a read buffer freed after each read),
//! with [`ChunkDecoder`] keeping nothing but a partial size line in between.

use bytes::{Bytes, BytesMut};
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
}

impl H1Response {
    /// Writes `req` and `body` on `io`, then reads the response head
    /// (skipping interim 1xx responses).
    pub async fn exchange(mut io: Stream, req: &RequestHeader, body: &Bytes) -> Result<Self> {
        write_request(&mut io, req, body).await?;
        let mut buf = BytesMut::with_capacity(2048);
        loop {
            let (head, consumed) = read_head(&mut io, &mut buf).await?;
            let _ = buf.split_to(consumed);
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
            let preread = (!buf.is_empty()).then(|| Bytes::copy_from_slice(&buf));
            return Ok(Self {
                head: Some(head),
                io,
                framing,
                preread,
            });
        }
    }

    pub fn head(&self) -> Option<&ResponseHeader> {
        self.head.as_deref()
    }

    /// Drops the response head (kept only until it has been relayed).
    pub fn forget_head(&mut self) {
        self.head = None;
    }

    pub fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
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
                if matches!(self.framing, Framing::Close) {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    "upstream closed the connection before the body ended",
                );
            }
            if let Some(data) = self.take(&buf.freeze())? {
                return Ok(Some(data));
            }
        }
    }

    /// Decodes `input` by the body's framing; `None` when it held no data.
    /// Bytes past the end of the body are dropped (the connection is never
    /// reused after a stream).
    fn take(&mut self, input: &Bytes) -> Result<Option<Bytes>> {
        let data = match &mut self.framing {
            Framing::Done => Bytes::new(),
            Framing::Close => input.clone(),
            Framing::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    self.framing = Framing::Done;
                }
                input.slice(..n)
            }
            Framing::Chunked(d) => {
                let mut out = Vec::new();
                d.decode(input, &mut out)
                    .map_err(|e| Error::explain(ErrorType::InvalidHTTPHeader, e.to_string()))?;
                if d.is_done() {
                    self.framing = Framing::Done;
                }
                Bytes::from(out)
            }
        };
        Ok((!data.is_empty()).then_some(data))
    }
}

/// Reads until `buf` holds a whole response head; returns it and its length.
async fn read_head(io: &mut Stream, buf: &mut BytesMut) -> Result<(Box<ResponseHeader>, usize)> {
    loop {
        if let Some(parsed) = parse_head(buf)? {
            return Ok(parsed);
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

fn parse_head(buf: &[u8]) -> Result<Option<(Box<ResponseHeader>, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                format!("upstream response head: {e}"),
            )
        }
    };
    let code = resp.code.unwrap_or(0);
    let mut head = ResponseHeader::build(code, Some(resp.headers.len()))?;
    if resp.version == Some(0) {
        head.set_version(http::Version::HTTP_10);
    }
    head.set_reason_phrase(resp.reason)?;
    for h in resp.headers.iter() {
        head.append_header(h.name.to_string(), h.value)?;
    }
    Ok(Some((Box::new(head), len)))
}

/// The body's framing (RFC 9112 6.3): chunked wins over Content-Length.
fn framing_of(head: &ResponseHeader, req: &RequestHeader) -> Result<Framing> {
    let status = head.status.as_u16();
    if req.method == http::Method::HEAD || matches!(status, 204 | 304) {
        return Ok(Framing::Done);
    }
    let codings: Vec<String> = head
        .headers
        .get_all("transfer-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        return Ok(if last == "chunked" {
            Framing::Chunked(ChunkDecoder::new())
        } else {
            Framing::Close
        });
    }
    let lengths: Vec<&[u8]> = head
        .headers
        .get_all("content-length")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    match lengths.as_slice() {
        [] => Ok(Framing::Close),
        [first, rest @ ..] if rest.iter().all(|v| v == first) => {
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
        _ => Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            "conflicting upstream Content-Length",
        ),
    }
}
