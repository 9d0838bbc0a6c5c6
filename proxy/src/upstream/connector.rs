//! One endpoint's keep-alive pool: pingora opens the connections; the common
//! path, taking and returning an idle one, avoids three per-request costs
//! of pingora's connector that the profile showed:
//! - `Connector::get_http_session`'s future is 8.9 KB (it holds a TCP and
//!   TLS connect) and was copied whole two or three times per request as the
//!   request's future was built and boxed: about 2 % of a worker's CPU in
//!   `memcpy`. Only a new connection now boxes it.
//! - pingora's pool spawns a task per returned connection to watch it while
//!   idle (with a timer, a oneshot, an LRU and a concurrent map): about 5 %
//!   of the CPU. HTTP/1 pools keep their idle connections in
//!   [`idle::IdleConnections`] instead, checked when taken.
//! - before handing out a pooled connection pingora asks the kernel for the
//!   socket's peer address (`getpeername`, one system call per request) to
//!   check that the descriptor still belongs to the peer. [`OwnPeer`] skips
//!   that check (for HTTP/2 pools, which stay pingora's): every connection
//!   in a pool was opened by that pool to its one address and is owned by
//!   it, so the descriptor cannot name another socket. The peer address is
//!   a fact of the connection, known when it was opened.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use pingora::connectors::http::{v1, v2};
use pingora::connectors::ConnectorOptions;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v2::client::Http2Session;
use pingora::protocols::Stream;
use pingora::upstreams::peer::{HttpPeer, Peer, PeerOptions, Proxy, Tracer};
use pingora::utils::tls::CertKey;
use pingora::Result;
use tokio::io::{AsyncRead, ReadBuf};

use idle::IdleConnections;

mod idle;

/// An [`HttpPeer`] whose pooled connections are not re-checked with
/// `getpeername` (see the module documentation).
#[derive(Clone)]
pub struct OwnPeer(pub HttpPeer);

impl fmt::Display for OwnPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Peer for OwnPeer {
    fn address(&self) -> &pingora::protocols::l4::socket::SocketAddr {
        self.0.address()
    }
    fn tls(&self) -> bool {
        self.0.tls()
    }
    fn sni(&self) -> &str {
        self.0.sni()
    }
    fn reuse_hash(&self) -> u64 {
        self.0.reuse_hash()
    }
    fn get_proxy(&self) -> Option<&Proxy> {
        self.0.get_proxy()
    }
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        self.0.get_peer_options()
    }
    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        self.0.get_mut_peer_options()
    }
    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        self.0.get_client_cert_key()
    }
    fn get_tracer(&self) -> Option<Tracer> {
        self.0.get_tracer()
    }
    fn matches_fd<V: std::os::unix::io::AsRawFd>(&self, _fd: V) -> bool {
        // Only this pool's own connections to this peer are ever in it.
        true
    }
}

/// A connection taken from a pool.
// Moved at once into the exchange that uses it: boxing the HTTP/2 session
// would cost an allocation per request (pingora's session enum, returned
// before, was as large).
#[allow(clippy::large_enum_variant)]
pub enum Taken {
    /// An HTTP/1.1 connection, written and read by mcpgate's own code
    /// (`h1_stream`); batched if it was pooled (see `HttpClient::attempt`).
    H1(Stream),
    /// A pingora HTTP/2 session.
    H2(Http2Session),
}

/// The connections of one endpoint.
pub enum PooledConnector {
    /// HTTP/1.1 only: idle connections kept by mcpgate ([`idle`]); pingora
    /// opens new ones.
    Http1 {
        opener: Box<v1::Connector>,
        idle: IdleConnections<Stream>,
    },
    /// HTTP/2 only (`http2 = true`): pingora's HTTP/2 pools, which close a
    /// connection idle for `keep_for`. A TLS upstream that does not offer h2
    /// gets HTTP/1.1 connections, which are not kept.
    Http2 {
        pools: Box<v2::Connector>,
        keep_for: Duration,
    },
}

impl PooledConnector {
    /// A pool keeping at most `max_idle` connections, each at most
    /// `keep_for`, for `peer`'s HTTP versions.
    pub fn new(peer: &OwnPeer, max_idle: usize, keep_for: Duration) -> Self {
        let h1_only = peer
            .get_peer_options()
            .is_none_or(|o| o.alpn.get_max_http_version() == 1);
        if h1_only {
            Self::Http1 {
                // (Its own pool stays empty: nothing is released into it.)
                opener: Box::new(v1::Connector::new(None)),
                idle: IdleConnections::new(max_idle, keep_for),
            }
        } else {
            let options = Some(ConnectorOptions::new(max_idle));
            Self::Http2 {
                pools: Box::new(v2::Connector::new(options)),
                keep_for,
            }
        }
    }

    /// A pooled connection if one is idle and usable, else a new one; the
    /// flag says whether it was pooled (a pooled one may have died since).
    pub async fn session(&self, peer: &OwnPeer) -> Result<(Taken, bool)> {
        match self {
            Self::Http1 { opener, idle } => {
                if let Some(stream) = idle.take(Instant::now(), still_quiet) {
                    return Ok((Taken::H1(stream), true));
                }
                let (s, reused) = Box::pin(opener.get_http_session(peer)).await?;
                Ok((Taken::H1(s.into_inner()), reused))
            }
            Self::Http2 { pools, .. } => {
                if let Some(s) = pools.reused_http_session(peer).await? {
                    return Ok((Taken::H2(s), true));
                }
                match Box::pin(pools.new_http_session::<_, ()>(peer)).await? {
                    HttpSession::H2(s) => Ok((Taken::H2(s), false)),
                    // A TLS upstream that did not offer h2 (not kept).
                    HttpSession::H1(s) => Ok((Taken::H1(s.into_inner()), false)),
                    _ => pingora::Error::e_explain(
                        pingora::ErrorType::InternalError,
                        "unexpected upstream session kind",
                    ),
                }
            }
        }
    }

    /// Returns an HTTP/1.1 connection whose answer was read to its end.
    pub fn release_h1(&self, mut stream: Stream) {
        if let Self::Http1 { idle, .. } = self {
            if still_quiet(&mut stream) {
                idle.put(stream, Instant::now());
            }
        }
    }

    /// Returns a finished HTTP/2 session to the pool. (Boxed, so that this
    /// future does not hold the session beside pingora's own future.)
    pub async fn release(&self, s: Box<HttpSession>, peer: &OwnPeer) {
        if let (Self::Http2 { pools, keep_for }, HttpSession::H2(h2)) = (self, *s) {
            pools.release_http_session(h2, peer, Some(*keep_for));
        }
    }

    /// Closes idle connections past their time or closed by the upstream
    /// (pingora's pool watches its own).
    pub fn sweep(&self) {
        if let Self::Http1 { idle, .. } = self {
            idle.sweep(Instant::now(), still_quiet);
        }
    }

    /// Idle connections kept by mcpgate (not pingora's).
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        match self {
            Self::Http1 { idle, .. } => idle.len(),
            Self::Http2 { .. } => 0,
        }
    }
}

/// Whether an idle connection can carry a request: reading it must not be
/// ready now (ready means closed, failed, or bytes the upstream sent
/// unasked, after which the next answer could not be told apart).
fn still_quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(stream).poll_read(&mut cx, &mut buf).is_pending()
}

#[cfg(test)]
mod tests;
