//! An incremental decoder for HTTP/1.1 chunked bodies (RFC 9112 7.1).
//!
//! Used for long-lived upstream streams, read on mcpgate's own terms: data is
//! handed on the moment it arrives and the decoder keeps no buffer between
//! reads except a partial chunk-size or trailer line, bounded below. A body
//! that breaks the framing is an error, never passed on: a client must not
//! see bytes the upstream did not frame.

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 1024;
/// Most bytes of trailer section accepted (and discarded).
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeLineTooLong,
    MissingCrlf,
    TrailersTooLong,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "malformed chunk size",
            ChunkError::SizeLineTooLong => "chunk-size line too long",
            ChunkError::MissingCrlf => "chunk data not followed by CRLF",
            ChunkError::TrailersTooLong => "trailer section too long",
        })
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
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return Ok(i),
                State::Data(remaining) => {
                    let take = remaining.min((input.len() - i) as u64) as usize;
                    out.extend_from_slice(&input[i..i + take]);
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
                    if self.state == State::Trailers {
                        if line.is_empty() {
                            self.state = State::Done;
                        }
                        continue;
                    }
                    let size = parse_size(line)?;
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

/// The size in a chunk-size line: hex digits, then optional `;` extensions.
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    let rest_ok = rest.is_empty() || rest.first() == Some(&b';') || {
        // Whitespace before an extension (RFC 9112 BWS).
        let t = rest.trim_ascii_start();
        t.is_empty() || t.first() == Some(&b';')
    };
    if digits.is_empty() || digits.len() > 15 || !rest_ok {
        return Err(ChunkError::BadSize);
    }
    let text = std::str::from_utf8(digits).map_err(|_| ChunkError::BadSize)?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkError::BadSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(wire: &[u8], piece: usize) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for part in wire.chunks(piece.max(1)) {
            let n = d.decode(part, &mut out)?;
            used += n;
            if n < part.len() {
                break;
            }
        }
        Ok((out, used, d.is_done()))
    }

    #[test]
    fn decodes_whatever_the_read_boundaries() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in 1..wire.len() {
            let (out, used, done) = decode_in_pieces(wire, piece).unwrap();
            assert_eq!(out, b"hello, world", "piece {piece}");
            assert!(done, "piece {piece}");
            assert_eq!(&wire[used..], b"NEXT", "piece {piece}");
        }
    }

    #[test]
    fn data_is_handed_on_before_the_chunk_ends() {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        d.decode(b"10\r\n0123", &mut out).unwrap();
        assert_eq!(out, b"0123");
        assert!(!d.is_done());
    }

    #[test]
    fn rejects_broken_framing() {
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"5\r\nhelloXX",
            b"5 junk\r\n",
            b"-1\r\n",
            b"1000000000000000\r\n",
            b"5\nhello\r\n",
        ];
        for wire in cases {
            assert!(
                decode_in_pieces(wire, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn bounds_what_it_keeps() {
        let long = vec![b'1'; MAX_SIZE_LINE + 1];
        assert_eq!(
            decode_in_pieces(&long, 7).unwrap_err(),
            ChunkError::SizeLineTooLong
        );
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b"X-A: b\r\n".as_slice(), 2000).flatten());
        assert_eq!(
            decode_in_pieces(&trailers, 100).unwrap_err(),
            ChunkError::TrailersTooLong
        );
    }
}
