use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{After, H1Response};

/// What the upstream of one exchange does after reading the request head.
struct Upstream {
    /// Written one after another, a moment apart (each its own segment).
    pieces: Vec<Vec<u8>>,
    /// Whether it closes the connection after the last piece.
    close: bool,
}

/// A connection to an upstream acting out `up` once.
async fn connect(up: Upstream) -> Stream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        for piece in up.pieces {
            if tcp.write_all(&piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !up.close {
            // Kept open until the client is done with it.
            let _ = tcp.read(&mut buf).await;
        }
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    Box::new(pingora::protocols::l4::stream::Stream::from(tcp))
}

/// The body of an answer read to its end, and whether its connection came
/// back reusable.
async fn exchange(up: Upstream, after: After) -> pingora::Result<(u16, Vec<u8>, bool)> {
    let io = connect(up).await;
    let req = RequestHeader::build("POST", b"/mcp", None).expect("head");
    let mut a = H1Response::exchange(io, &req, &Bytes::from_static(b"{}"), after).await?;
    let status = a.head().expect("head").status.as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = a.read_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok((status, body, a.into_reusable().is_some()))
}

fn one(bytes: &[u8], close: bool) -> Upstream {
    Upstream {
        pieces: vec![bytes.to_vec()],
        close,
    }
}

#[tokio::test]
async fn an_answer_of_known_length_gives_its_connection_back() {
    let up = one(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false);
    let (status, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((status, body.as_slice(), reusable), (200, &b"ok"[..], true));
}

#[tokio::test]
async fn a_stream_connection_is_never_given_back() {
    let up = one(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false);
    let (_, body, reusable) = exchange(up, After::Close).await.expect("answer");
    assert_eq!((body.as_slice(), reusable), (&b"ok"[..], false));
}

#[tokio::test]
async fn connection_close_in_any_case_or_http10_is_not_reused() {
    for head in [
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\ncontent-length: 2\r\n\r\nok",
        "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ] {
        let (_, body, reusable) = exchange(one(head.as_bytes(), false), After::Reuse)
            .await
            .expect("answer");
        assert_eq!((body.as_slice(), reusable), (&b"ok"[..], false), "{head}");
    }
}

#[tokio::test]
async fn bytes_past_the_end_of_the_body_are_dropped_with_the_connection() {
    let up = one(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200",
        false,
    );
    let (_, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((body.as_slice(), reusable), (&b"ok"[..], false));

    let up = one(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nextra",
        false,
    );
    let (_, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((body.as_slice(), reusable), (&b"ok"[..], false));
}

#[tokio::test]
async fn a_chunked_answer_in_pieces_is_whole_and_reusable() {
    let up = Upstream {
        pieces: vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc".to_vec(),
            b"\r\n4\r\ndefg\r\n".to_vec(),
            b"0\r\n\r\n".to_vec(),
        ],
        close: false,
    };
    let (_, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((body.as_slice(), reusable), (&b"abcdefg"[..], true));
}

#[tokio::test]
async fn a_large_body_arriving_in_pieces_is_read_whole() {
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut pieces =
        vec![format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes()];
    pieces.extend(body.chunks(70_000).map(<[u8]>::to_vec));
    let (_, got, reusable) = exchange(
        Upstream {
            pieces,
            close: false,
        },
        After::Reuse,
    )
    .await
    .expect("answer");
    assert!(got == body, "{} bytes read of {}", got.len(), body.len());
    assert!(reusable);
}

#[tokio::test]
async fn a_body_ended_by_close_is_read_to_the_close_and_not_reused() {
    let up = Upstream {
        pieces: vec![b"HTTP/1.1 200 OK\r\n\r\nab".to_vec(), b"cd".to_vec()],
        close: true,
    };
    let (_, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((body.as_slice(), reusable), (&b"abcd"[..], false));
}

#[tokio::test]
async fn an_answer_cut_short_is_an_error() {
    let up = one(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true);
    let e = exchange(up, After::Reuse).await.expect_err("cut short");
    assert!(e.to_string().contains("before the body ended"), "{e}");
}

#[tokio::test]
async fn an_interim_answer_is_skipped_and_an_empty_one_is_done_at_once() {
    let up = one(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
        false,
    );
    let (status, body, reusable) = exchange(up, After::Reuse).await.expect("answer");
    assert_eq!((status, body.len(), reusable), (202, 0, true));
}

#[tokio::test]
async fn a_folded_header_is_dropped_and_the_answer_kept() {
    let up = one(
        b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n Injected: yes\r\nX-Plain : kept\r\ncontent-length: 2\r\n\r\nok",
        false,
    );
    let io = connect(up).await;
    let req = RequestHeader::build("POST", b"/mcp", None).expect("head");
    let a = H1Response::exchange(io, &req, &Bytes::new(), After::Reuse)
        .await
        .expect("answer");
    let headers = &a.head().expect("head").headers;
    assert!(!headers.contains_key("x-folded"));
    assert_eq!(headers["x-plain"].as_bytes(), b"kept");
    assert!(!headers.contains_key("injected"));
}

#[tokio::test]
async fn status_reason_and_headers_come_through_for_answers_and_streams() {
    for after in [After::Reuse, After::Close] {
        let up = one(
            b"HTTP/1.1 299 Custom Thing\r\nX-Id: a1\r\nx-id: b2\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            false,
        );
        let io = connect(up).await;
        let req = RequestHeader::build("POST", b"/mcp", None).expect("head");
        let mut a = H1Response::exchange(io, &req, &Bytes::new(), after)
            .await
            .expect("answer");
        let head = a.head().expect("head");
        assert_eq!(head.status.as_u16(), 299);
        assert_eq!(head.get_reason_phrase(), Some("Custom Thing"));
        let ids: Vec<&[u8]> = head
            .headers
            .get_all("x-id")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(ids, [&b"a1"[..], b"b2"], "{after:?}");
        assert_eq!(head.headers["content-type"], "application/json");
        assert_eq!(
            a.read_body().await.expect("body").as_deref(),
            Some(&b"{}"[..])
        );
    }
}
