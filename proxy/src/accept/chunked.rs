//! A strict, incremental decoder for HTTP/1.1 chunked bodies (RFC 9112 §7.1).
//!
//! Used twice, so both directions share one reading of the grammar:
//! - for long-lived upstream streams, read on mcpgate's own terms: data is
//!   handed on the moment it arrives and the decoder keeps no buffer between
//!   reads except a partial chunk-size or trailer line, bounded below;
//! - to decode a client's chunked request body ([`super::downstream`]):
//!   httparse's `parse_chunk_size`, which pingora's body reader used, is
//!   lenient, and a framing two parsers read differently is how requests are
//!   smuggled.
//!
//! Anything outside the grammar is an error, never passed on: whitespace
//! between a chunk size and its line end, a bare CR or LF anywhere, bytes
//! outside `token` / `quoted-string` in an extension, obsolete line folding
//! or control bytes in a trailer field.

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 1024;
/// Most bytes of trailer section accepted (and discarded).
const MAX_TRAILERS: usize = 8 * 1024;
/// Most hex digits in a chunk size (15 keeps it below 2^60).
const MAX_SIZE_DIGITS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadExtension,
    BadTrailer,
    SizeLineTooLong,
    MissingCrlf,
    TrailersTooLong,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "malformed chunk size",
            ChunkError::BadExtension => "malformed chunk extension",
            ChunkError::BadTrailer => "malformed trailer field",
            ChunkError::SizeLineTooLong => "chunk-size line too long",
            ChunkError::MissingCrlf => "line or chunk data not ended by CRLF",
            ChunkError::TrailersTooLong => "trailer section too long",
        })
    }
}

impl ChunkError {
    /// A stable name for logs and `error.data.rule`.
    pub fn rule(&self) -> &'static str {
        match self {
            ChunkError::BadSize => "chunk-size",
            ChunkError::BadExtension => "chunk-extension",
            ChunkError::BadTrailer => "chunk-trailer",
            ChunkError::SizeLineTooLong => "chunk-size-line-too-long",
            ChunkError::MissingCrlf => "chunk-line-end",
            ChunkError::TrailersTooLong => "chunk-trailers-too-long",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (kept in `line` until its LF).
    Size,
    Data(u64),
    /// After a chunk's data: CR then LF.
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

#[derive(Debug)]
pub struct ChunkDecoder {
    state: State,
    line: Vec<u8>,
    trailer_bytes: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }

    /// Whether the last chunk and the trailer section were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending chunk data to `out`. Returns how many bytes
    /// of `input` were used: fewer than all only once the body is done (the
    /// rest belongs to whatever follows on the connection).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        self.run(input, Some(out))
    }

    fn run(&mut self, input: &[u8], mut out: Option<&mut Vec<u8>>) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                State::Data(remaining) => {
                    let take = remaining.min((input.len() - i) as u64) as usize;
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&input[i..i + take]);
                    }
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCr => {
                    if input[i] != b'\r' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    i += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if input[i] != b'\n' {
                        return Err(ChunkError::MissingCrlf);
                    }
                    i += 1;
                    self.state = State::Size;
                }
                State::Size | State::Trailers => {
                    let Some(lf) = input[i..].iter().position(|&b| b == b'\n') else {
                        self.keep_line_part(&input[i..])?;
                        return Ok(input.len());
                    };
                    self.keep_line_part(&input[i..i + lf])?;
                    i += lf + 1;
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").ok_or(ChunkError::MissingCrlf)?;
                    if line.contains(&b'\r') {
                        return Err(ChunkError::MissingCrlf);
                    }
                    if self.state == State::Trailers {
                        if line.is_empty() {
                            self.state = State::Done;
                        } else {
                            check_trailer(line)?;
                        }
                        continue;
                    }
                    let size = parse_size_line(line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
            }
        }
        Ok(i)
    }

    fn keep_line_part(&mut self, part: &[u8]) -> Result<(), ChunkError> {
        if self.state == State::Trailers {
            self.trailer_bytes += part.len() + 1;
            if self.trailer_bytes > MAX_TRAILERS {
                return Err(ChunkError::TrailersTooLong);
            }
        } else if self.line.len() + part.len() > MAX_SIZE_LINE {
            return Err(ChunkError::SizeLineTooLong);
        }
        self.line.extend_from_slice(part);
        Ok(())
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A chunk-size line without its CRLF:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
/// Returns the size.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > MAX_SIZE_DIGITS {
        return Err(ChunkError::BadSize);
    }
    let size = digits
        .iter()
        .fold(0u64, |acc, &d| (acc << 4) | u64::from(hex_value(d)));
    if !rest.is_empty() {
        // Whitespace is allowed only before a `;`: "5 \r\n" is refused.
        if rest.trim_ascii_start().first() != Some(&b';') {
            return Err(if rest[0] == b';' || is_ws(rest[0]) {
                ChunkError::BadExtension
            } else {
                ChunkError::BadSize
            });
        }
        check_extensions(rest)?;
    }
    Ok(size)
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn check_extensions(mut s: &[u8]) -> Result<(), ChunkError> {
    let skip_ws = |s: &[u8]| -> usize { s.iter().take_while(|&&b| is_ws(b)).count() };
    let token = |s: &[u8]| -> usize { s.iter().take_while(|&&b| is_tchar(b)).count() };
    while !s.is_empty() {
        s = &s[skip_ws(s)..];
        s = s.strip_prefix(b";").ok_or(ChunkError::BadExtension)?;
        s = &s[skip_ws(s)..];
        let name = token(s);
        if name == 0 {
            return Err(ChunkError::BadExtension);
        }
        s = &s[name..];
        let after_ws = &s[skip_ws(s)..];
        if let Some(v) = after_ws.strip_prefix(b"=") {
            let v = &v[skip_ws(v)..];
            let used = if v.first() == Some(&b'"') {
                quoted_string(v)?
            } else {
                token(v)
            };
            if used == 0 {
                return Err(ChunkError::BadExtension);
            }
            s = &v[used..];
        } else {
            s = after_ws;
        }
    }
    Ok(())
}

/// Length of the quoted-string at the start of `s` (RFC 9110 §5.6.4).
fn quoted_string(s: &[u8]) -> Result<usize, ChunkError> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(i + 1),
            b'\\' => {
                let next = *s.get(i + 1).ok_or(ChunkError::BadExtension)?;
                if !(is_ws(next) || (0x21..=0x7e).contains(&next) || next >= 0x80) {
                    return Err(ChunkError::BadExtension);
                }
                i += 2;
            }
            b if is_ws(b) || b == 0x21 || (0x23..=0x5b).contains(&b) => i += 1,
            b if (0x5d..=0x7e).contains(&b) || b >= 0x80 => i += 1,
            _ => return Err(ChunkError::BadExtension),
        }
    }
    Err(ChunkError::BadExtension)
}

/// `field-name ":" OWS field-value OWS`, no obsolete folding, no controls.
fn check_trailer(line: &[u8]) -> Result<(), ChunkError> {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    if name == 0 || line.get(name) != Some(&b':') {
        return Err(ChunkError::BadTrailer);
    }
    let value_ok = line[name + 1..]
        .iter()
        .all(|&b| is_ws(b) || (0x21..=0x7e).contains(&b) || b >= 0x80);
    if !value_ok {
        return Err(ChunkError::BadTrailer);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
