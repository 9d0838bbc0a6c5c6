use super::*;

fn tap_with(head: &[u8], reads: &[&[u8]], chunked: bool) -> Tap {
    let tap = Tap::default();
    tap.begin_request(b"");
    tap.saw(head);
    tap.head_read(head.len(), chunked);
    for r in reads {
        tap.saw(r);
    }
    tap
}

#[test]
fn a_clean_chunked_body_shows_no_error_whatever_the_reads() {
    let head = b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    for cut in 0..body.len() {
        let mut first = head.to_vec();
        first.extend_from_slice(&body[..cut]);
        let tap = Tap::default();
        tap.begin_request(b"");
        tap.saw(&first);
        tap.head_read(head.len(), true);
        tap.saw(&body[cut..]);
        assert_eq!(tap.take_error(), None, "cut at {cut}");
    }
}

#[test]
fn ambiguous_framing_is_caught_in_the_first_read_or_later() {
    let head = b"POST /mcp HTTP/1.1\r\n\r\n";
    let t = tap_with(head, &[b"5 \r\nhello\r\n0\r\n\r\n"], true);
    assert_eq!(t.take_error(), Some(ChunkError::BadExtension));
    let mut first = head.to_vec();
    first.extend_from_slice(b"5;a\nb\r\nhello\r\n0\r\n\r\n");
    let tap = Tap::default();
    tap.begin_request(b"");
    tap.saw(&first);
    tap.head_read(head.len(), true);
    assert_eq!(tap.take_error(), Some(ChunkError::MissingCrlf));
}

#[test]
fn a_pipelined_prefix_counts_as_the_start_of_the_head() {
    let tap = Tap::default();
    let head = b"POST /mcp HTTP/1.1\r\n\r\n";
    tap.begin_request(head);
    tap.head_read(head.len(), true);
    tap.saw(b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
    assert_eq!(tap.take_error(), None);
}

#[test]
fn bodies_that_are_not_chunked_are_not_watched() {
    let t = tap_with(b"POST / HTTP/1.1\r\n\r\n", &[b"5 \r\n garbage"], false);
    assert_eq!(t.take_error(), None);
    assert!(matches!(*t.0.lock(), State::Off));
}
