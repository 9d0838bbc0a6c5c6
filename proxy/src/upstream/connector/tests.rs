use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{OwnPeer, PooledConnector, Taken};
use crate::upstream::h1_stream::{After, H1Response};

/// An HTTP/1.1 server answering every request "ok" on keep-alive
/// connections, closing each connection after `per_connection` answers;
/// returns its address and the count of connections it accepted.
async fn server(per_connection: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                for _ in 0..per_connection {
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if tcp.write_all(answer).await.is_err() {
                        return;
                    }
                }
                // Closing, a moment after the last answer: the pooled
                // connection dies while idle.
                tokio::time::sleep(Duration::from_millis(30)).await;
            });
        }
    });
    (addr, accepted)
}

fn peer(addr: std::net::SocketAddr) -> OwnPeer {
    OwnPeer(HttpPeer::new(addr, false, "127.0.0.1".into()))
}

/// Sends one GET, reads the whole answer and returns the connection to
/// `pool` (as the proxy does); the answer's status.
async fn ask(pool: &PooledConnector, s: Taken) -> u16 {
    let Taken::H1(io) = s else {
        panic!("an HTTP/1 pool hands out HTTP/1 connections")
    };
    let req = RequestHeader::build("GET", b"/", None).expect("head");
    let mut a = H1Response::exchange(io, &req, &Bytes::new(), After::Reuse)
        .await
        .expect("answer head");
    let status = a.head().expect("head").status.as_u16();
    while a.read_body().await.expect("body").is_some() {}
    pool.release_h1(a.into_reusable().expect("the answer ended cleanly"));
    status
}

#[tokio::test]
async fn an_http1_pool_hands_back_its_idle_connection() {
    let (addr, accepted) = server(usize::MAX).await;
    let peer = peer(addr);
    let pool = PooledConnector::new(&peer, 8, Duration::from_secs(60));
    assert!(matches!(pool, PooledConnector::Http1 { .. }));

    let (s, reused) = pool.session(&peer).await.expect("connect");
    assert!(!reused, "an empty pool opens a connection");
    assert_eq!(ask(&pool, s).await, 200);

    let (s, reused) = pool.session(&peer).await.expect("pooled");
    assert!(reused, "the released connection is taken again");
    assert_eq!(ask(&pool, s).await, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_not_handed_out() {
    let (addr, accepted) = server(1).await;
    let peer = peer(addr);
    let pool = PooledConnector::new(&peer, 8, Duration::from_secs(60));

    let (s, _) = pool.session(&peer).await.expect("connect");
    assert_eq!(ask(&pool, s).await, 200);
    // The server closes after its one answer; wait until the pool's idle
    // watch has seen it.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (s, reused) = pool.session(&peer).await.expect("a new connection");
    assert!(
        !reused,
        "the closed connection is dropped, a new one opened"
    );
    assert_eq!(ask(&pool, s).await, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn an_http2_peer_gets_pingoras_http2_pools() {
    let mut p = HttpPeer::new("127.0.0.1:1", false, String::new());
    p.options.set_http_version(2, 2);
    let peer = OwnPeer(p);
    assert!(matches!(
        PooledConnector::new(&peer, 8, Duration::from_secs(60)),
        PooledConnector::Http2 { .. }
    ));
}

#[test]
fn the_pool_is_checked_without_asking_the_kernel_for_the_peer() {
    // A descriptor that is not a socket at all still "matches": the check
    // is skipped because only this pool's own connections are in it.
    let peer = peer("127.0.0.1:9".parse().expect("addr"));
    let file = std::fs::File::open("/dev/null").expect("open");
    assert!(pingora::upstreams::peer::Peer::matches_fd(&peer, file));
    assert_eq!(peer.to_string(), peer.0.to_string());
}

#[test]
fn taking_a_connection_is_a_small_future() {
    // pingora's get_http_session future is 8.9 KB and was copied whole as
    // each request's future was built; the pooled path stays small.
    let peer = peer("127.0.0.1:9".parse().expect("addr"));
    let pool = PooledConnector::new(&peer, 8, Duration::from_secs(60));
    let f = pool.session(&peer);
    let size = std::mem::size_of_val(&f);
    assert!(size <= 1024, "session(): {size} bytes");
}

#[tokio::test]
async fn a_sweep_closes_what_the_upstream_closed_and_keeps_the_rest() {
    let (closing, _) = server(1).await;
    let (staying, _) = server(usize::MAX).await;
    for (addr, kept) in [(closing, 0), (staying, 1)] {
        let peer = peer(addr);
        let pool = PooledConnector::new(&peer, 8, Duration::from_secs(60));
        let (s, _) = pool.session(&peer).await.expect("connect");
        assert_eq!(ask(&pool, s).await, 200);
        assert_eq!(pool.idle_count(), 1, "kept after its answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
        pool.sweep();
        assert_eq!(pool.idle_count(), kept, "{addr}");
    }
}

#[tokio::test]
async fn an_idle_connection_past_its_time_is_not_taken() {
    let (addr, accepted) = server(usize::MAX).await;
    let peer = peer(addr);
    let pool = PooledConnector::new(&peer, 8, Duration::ZERO);
    let (s, _) = pool.session(&peer).await.expect("connect");
    assert_eq!(ask(&pool, s).await, 200);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, reused) = pool.session(&peer).await.expect("a new connection");
    assert!(!reused);
    assert_eq!(ask(&pool, s).await, 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
