use std::time::Duration;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;

/// A server side over one end of a socket pair; the other end is the client.
fn pair() -> (Downstream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("pair");
    let io: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(a));
    (Downstream::new(io, None), b)
}

async fn request(bytes: &[u8]) -> (Downstream, UnixStream) {
    let (mut ds, mut client) = pair();
    client.write_all(bytes).await.expect("send");
    assert!(ds.read_request().await.expect("head"));
    (ds, client)
}

async fn head_error(bytes: &[u8]) -> String {
    let (mut ds, mut client) = pair();
    client.write_all(bytes).await.expect("send");
    drop(client);
    match ds.read_request().await {
        Ok(ok) => panic!("accepted ({ok}): {}", bytes.escape_ascii()),
        Err(e) => e.to_string(),
    }
}

async fn body(ds: &mut Downstream) -> std::result::Result<Vec<u8>, BodyError> {
    let mut all = Vec::new();
    while let Some(b) = ds.read_request_body().await? {
        all.extend_from_slice(&b);
    }
    Ok(all)
}

/// Everything the client received until the server side closed, in lower
/// case (standard header names are written title-cased, as by pingora).
async fn received(mut client: UnixStream) -> String {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).to_ascii_lowercase()
}

fn ok_with_length(n: usize) -> Box<ResponseHeader> {
    let mut h = ResponseHeader::build_no_case(200, Some(2)).expect("head");
    h.insert_header("content-length", n.to_string())
        .expect("header");
    Box::new(h)
}

#[tokio::test]
async fn a_request_and_its_body_read_in_one_call_and_answered_in_one_write() {
    let (mut ds, client) = request(
        b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nMCP-Method: tools/call\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let head = ds.req_header();
    assert_eq!(head.method, Method::POST);
    assert_eq!(head.uri.path(), "/mcp");
    assert_eq!(head.uri.query(), Some("x=1"));
    assert_eq!(head.headers["mcp-method"], "tools/call");
    assert!(ds.raw_head().starts_with(b"POST /mcp?x=1 HTTP/1.1\r\n"));
    assert!(ds.raw_head().ends_with(b"\r\n\r\n"));
    assert_eq!(body(&mut ds).await.expect("body"), b"hello");
    ds.set_keepalive(true);
    ds.write_response_header(ok_with_length(2))
        .await
        .expect("head");
    ds.write_response_body(Bytes::from_static(b"{}"), true)
        .await
        .expect("body");
    assert_eq!(ds.response_status(), Some(200));
    let (stream, prefix) = ds.finish().await.expect("finish").expect("reusable");
    assert!(prefix.is_none());
    drop(stream);
    let wire = received(client).await;
    assert!(wire.starts_with("http/1.1 200 ok\r\n"), "{wire}");
    assert!(wire.contains("content-length: 2\r\n"), "{wire}");
    assert!(wire.contains("connection: keep-alive\r\n"), "{wire}");
    assert!(wire.contains("date: "), "{wire}");
    assert!(wire.ends_with("\r\n\r\n{}"), "{wire}");
}

#[tokio::test]
async fn a_pipelined_request_is_kept_for_the_next_one() {
    let (mut ds, client) = request(
        b"POST /mcp HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /mcp HTTP/1.1\r\nHost: b\r\n\r\n",
    )
    .await;
    assert_eq!(body(&mut ds).await.expect("body"), b"{}");
    ds.set_keepalive(true);
    ds.write_response_header(ok_with_length(0))
        .await
        .expect("head");
    let (stream, prefix) = ds.finish().await.expect("finish").expect("reusable");
    let prefix = prefix.expect("the next request's bytes");
    assert!(prefix.starts_with(b"GET /mcp"));
    let mut next = Downstream::new(stream, Some(prefix));
    assert!(next.read_request().await.expect("second head"));
    assert_eq!(next.req_header().method, Method::GET);
    assert_eq!(next.req_header().headers["host"], "b");
    assert_eq!(body(&mut next).await.expect("no body"), b"");
    drop(next);
    drop(client);
}

#[tokio::test]
async fn a_chunked_body_is_decoded_strictly() {
    let (mut ds, _c) = request(
        b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;a=b\r\n!\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(body(&mut ds).await.expect("body"), b"hello!");
    // Whitespace after a chunk size: refused as framing, never guessed.
    let (mut ds, _c) = request(
        b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(matches!(body(&mut ds).await, Err(BodyError::Framing(_))));
}

#[tokio::test]
async fn a_body_cut_short_is_an_error() {
    let (mut ds, client) = request(b"POST /mcp HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").await;
    drop(client);
    assert!(matches!(body(&mut ds).await, Err(BodyError::Io(_))));
    let (mut ds, client) =
        request(b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").await;
    drop(client);
    assert!(matches!(body(&mut ds).await, Err(BodyError::Io(_))));
}

#[tokio::test]
async fn content_length_beside_transfer_encoding_is_dropped() {
    let (mut ds, _c) = request(
        b"POST /mcp HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(!ds.req_header().headers.contains_key("content-length"));
    assert_eq!(body(&mut ds).await.expect("body"), b"");
}

#[tokio::test]
async fn framing_and_authority_pingora_refuses_are_refused() {
    for (why, head) in [
        (
            "lengths differ",
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        ),
        (
            "signed length",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
        ),
        (
            "hex length",
            b"POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\n",
        ),
        (
            "overflow",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ),
        (
            "TE on 1.0",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "chunked not last",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        ),
        (
            "TE not chunked",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
        ),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        ("userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
        (
            "host differs",
            b"GET http://evil/mcp HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        ("obs-fold", b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nX : a\r\n\r\n"),
        ("version", b"GET / HTTP/2.0\r\n\r\n"),
        ("tab in line", b"GET\t/ HTTP/1.1\r\n\r\n"),
    ] {
        let e = head_error(head).await;
        assert!(!e.is_empty(), "{why}");
    }
}

#[tokio::test]
async fn what_pingora_accepts_is_accepted_as_pingora_reads_it() {
    // Identical lengths reconcile.
    let (mut ds, _c) =
        request(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n{}").await;
    assert_eq!(body(&mut ds).await.expect("body"), b"{}");
    // Absolute-form whose authority is the Host: the path only in the uri.
    let (ds, _c) = request(b"POST http://a:1/mcp HTTP/1.1\r\nHost: a:1\r\n\r\n").await;
    assert_eq!(ds.req_header().uri.path(), "/mcp");
    // A raw CR and space in the target are percent-encoded (pingora's
    // rewrite); the filters then see them.
    let (ds, _c) = request(b"POST /mcp\rX: y HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(ds.req_header().uri.path(), "/mcp%0DX:%20y");
    assert!(ds
        .raw_head()
        .starts_with(b"POST /mcp%0DX:%20y HTTP/1.1\r\n"));
}

#[tokio::test]
async fn a_client_that_closes_before_a_byte_is_no_request() {
    let (mut ds, client) = pair();
    drop(client);
    assert!(!ds.read_request().await.expect("clean close"));
    let e = head_error(b"POST /mcp HTTP/1.1\r\nHost:").await;
    assert!(e.contains("already read"), "{e}");
}

#[tokio::test]
async fn a_chunked_answer_is_written_in_chunks_and_ended() {
    let (mut ds, client) = request(b"GET /mcp HTTP/1.1\r\n\r\n").await;
    let mut h = ResponseHeader::build_no_case(200, Some(2)).expect("head");
    h.insert_header("transfer-encoding", "chunked")
        .expect("header");
    ds.set_keepalive(true);
    ds.write_response_header(Box::new(h)).await.expect("head");
    ds.write_response_body(Bytes::from_static(b"hello"), false)
        .await
        .expect("chunk");
    ds.write_response_body(Bytes::from(vec![b'x'; 26]), true)
        .await
        .expect("chunk");
    drop(ds.finish().await.expect("finish"));
    let wire = received(client).await;
    assert!(
        wire.ends_with("\r\n\r\n5\r\nhello\r\n1a\r\nxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"),
        "{wire}"
    );
}

/// The client asked to close, the head named both Content-Length and
/// Transfer-Encoding (RFC 9112 §6.1), or the answer came before the body was
/// read (as for a refusal): the answer says `Connection: close` and the
/// connection is not reused, whatever the accept layer asked.
#[tokio::test]
async fn answers_that_end_the_connection() {
    for (head, read_body) in [
        (&b"GET /mcp HTTP/1.1\r\nConnection: close\r\n\r\n"[..], true),
        (
            b"POST /mcp HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            true,
        ),
        (b"POST /mcp HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", false),
    ] {
        let (mut ds, client) = request(head).await;
        if read_body {
            body(&mut ds).await.expect("body");
        }
        ds.set_keepalive(true);
        ds.write_response_header(ok_with_length(0))
            .await
            .expect("head");
        assert!(ds.finish().await.expect("finish").is_none());
        assert!(received(client).await.contains("connection: close\r\n"));
    }
}

#[tokio::test]
async fn a_head_request_gets_no_body() {
    let (mut ds, client) = request(b"HEAD /mcp HTTP/1.1\r\n\r\n").await;
    ds.set_keepalive(false);
    ds.write_response_header(ok_with_length(5))
        .await
        .expect("head");
    ds.write_response_body(Bytes::from_static(b"hello"), true)
        .await
        .expect("dropped");
    drop(ds.finish().await.expect("finish"));
    assert!(received(client).await.ends_with("\r\n\r\n"));
}

#[tokio::test]
async fn while_answering_a_close_is_seen_and_a_next_request_is_kept() {
    let (mut ds, client) = request(b"GET /mcp HTTP/1.1\r\n\r\n").await;
    drop(client);
    assert!(ds.until_client_leaves().await.is_err());
    let (mut ds, mut client) = request(b"GET /mcp HTTP/1.1\r\n\r\n").await;
    client.write_all(b"GET /next").await.expect("send");
    let waited = tokio::time::timeout(Duration::from_millis(200), ds.until_client_leaves()).await;
    assert!(waited.is_err(), "a next request is not a disconnect");
    ds.set_keepalive(true);
    ds.write_response_header(ok_with_length(0))
        .await
        .expect("head");
    let (_, prefix) = ds.finish().await.expect("finish").expect("reusable");
    assert_eq!(prefix.as_deref(), Some(&b"GET /next"[..]));
}

#[tokio::test]
async fn a_slow_client_times_the_write_out() {
    let (mut ds, _client) = request(b"GET /mcp HTTP/1.1\r\n\r\n").await;
    ds.set_write_timeout(Some(Duration::from_millis(100)));
    let mut h = ResponseHeader::build_no_case(200, Some(2)).expect("head");
    h.insert_header("transfer-encoding", "chunked")
        .expect("header");
    ds.write_response_header(Box::new(h)).await.expect("head");
    // The client never reads: the socket buffers fill, then the write waits.
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let mut timed_out = false;
    for _ in 0..64 {
        if let Err(e) = ds.write_response_body(big.clone(), false).await {
            assert_eq!(e.etype(), &ErrorType::WriteTimedout);
            timed_out = true;
            break;
        }
    }
    assert!(timed_out);
}

#[test]
fn only_a_target_httparse_refuses_is_rewritten() {
    assert!(escape_illegal_request_line(b"GET /a HTTP/1.1\r\n").is_none());
    let b = escape_illegal_request_line(b"GET /a b<\"> HTTP/1.1\r\nX: y\r\n\r\n").expect("escaped");
    assert_eq!(&b[..], b"GET /a%20b%3C%22%3E HTTP/1.1\r\nX: y\r\n\r\n");
    assert!(escape_illegal_request_line(b"GET\t/a b HTTP/1.1\r\n").is_none());
    assert!(escape_illegal_request_line(b"GET /a b\r\n").is_none());
}
