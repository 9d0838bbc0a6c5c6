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
fn check_accepts_what_decode_accepts_and_keeps_nothing() {
    let wire = b"5\r\nhello\r\n0\r\n\r\nNEXT";
    let mut d = ChunkDecoder::new();
    assert_eq!(d.decode(wire, &mut Vec::new()).unwrap(), wire.len() - 4);
    assert!(d.is_done());
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
fn accepts_every_form_the_grammar_allows() {
    let ok: &[&[u8]] = &[
        b"5;a\r\nhello\r\n0\r\n\r\n",
        b"5;a=b;c=\"d e\\\"f\"\r\nhello\r\n0\r\n\r\n",
        // BWS before ";" and around "=" (RFC 9112 §7.1.1).
        b"5 ;a = b\r\nhello\r\n0\r\n\r\n",
        b"A\r\n0123456789\r\n0\r\n\r\n",
        b"a\r\n0123456789\r\n0;last=1\r\nX-Trailer: v a l\r\nY:\r\n\r\n",
    ];
    for wire in ok {
        let (_, used, done) = decode_in_pieces(wire, 3)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(wire)));
        assert!(
            done && used == wire.len(),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[test]
fn rejects_broken_and_ambiguous_framing() {
    let cases: &[(&[u8], ChunkError)] = &[
        (b"x\r\n", ChunkError::BadSize),
        (b"\r\n", ChunkError::BadSize),
        (b"5\r\nhelloXX", ChunkError::MissingCrlf),
        (b"5 junk\r\n", ChunkError::BadExtension),
        (b"-1\r\n", ChunkError::BadSize),
        (b"0x5\r\n", ChunkError::BadSize),
        (b"+5\r\n", ChunkError::BadSize),
        (b"1000000000000000\r\n", ChunkError::BadSize),
        (b"5\nhello\r\n", ChunkError::MissingCrlf),
        // Whitespace between the size and the line end.
        (b"5 \r\nhello\r\n0\r\n\r\n", ChunkError::BadExtension),
        (b"5\t\r\nhello\r\n0\r\n\r\n", ChunkError::BadExtension),
        // A bare LF inside an extension (the line ends at the LF, no CR).
        (b"5;a\nb\r\nhello\r\n0\r\n\r\n", ChunkError::MissingCrlf),
        // A bare CR inside the size line.
        (b"5;a\rb\r\nhello\r\n0\r\n\r\n", ChunkError::MissingCrlf),
        (b"5;\r\nhello\r\n", ChunkError::BadExtension),
        (b"5;a=\r\nhello\r\n", ChunkError::BadExtension),
        (b"5;a=\"unterminated\r\nhello\r\n", ChunkError::BadExtension),
        (b"5;a=b c\r\nhello\r\n", ChunkError::BadExtension),
        (b"5;a\x00\r\nhello\r\n", ChunkError::BadExtension),
        (b"5\r\nhello\n0\r\n\r\n", ChunkError::MissingCrlf),
        (b"5\r\nhello\r0\r\n\r\n", ChunkError::MissingCrlf),
        // Trailers: folding, no colon, control bytes, bare LF.
        (b"0\r\nX: a\r\n b\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\nnocolon\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\nX : a\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\nX: a\x01\r\n\r\n", ChunkError::BadTrailer),
        (b"0\r\nX: a\n\r\n", ChunkError::MissingCrlf),
        (b"0\r\n\n", ChunkError::MissingCrlf),
    ];
    for (wire, want) in cases {
        for piece in [1, 2, 64] {
            assert_eq!(
                decode_in_pieces(wire, piece).unwrap_err(),
                *want,
                "{:?} in pieces of {piece}",
                String::from_utf8_lossy(wire)
            );
        }
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
