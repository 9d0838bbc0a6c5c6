//! One endpoint's keep-alive pool: pingora's connectors, taken the cheap way
//! on the common path.
//!
//! Two costs of pingora's `Connector::get_http_session` showed in the
//! profile, paid per request although only a new connection needs them:
//! - its future is 8.9 KB (it holds a TCP and TLS connect), and it was
//!   copied whole two or three times per request as the request's future
//!   was built and boxed: about 2 % of a worker's CPU in `memcpy`. A
//!   pooled HTTP/1 connection is now taken with `reused_http_session`
//!   (a 216-byte future); only a new connection boxes the large one.
//! - before handing out a pooled connection it asks the kernel for the
//!   socket's peer address (`getpeername`, one system call per request) to
//!   check that the descriptor still belongs to the peer. [`OwnPeer`] skips
//!   that check: every connection in this pool was opened by this pool to
//!   its one address and is owned by it, so the descriptor cannot name
//!   another socket. The peer address is a fact of the connection, known
//!   when it was opened.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pingora::connectors::http::{v1, Connector};
use pingora::connectors::ConnectorOptions;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::{HttpPeer, Peer, PeerOptions, Proxy, Tracer};
use pingora::utils::tls::CertKey;
use pingora::Result;

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

/// The connections of one endpoint.
pub enum PooledConnector {
    /// HTTP/1.1 only: pooled connections are taken without the connect
    /// future.
    Http1(v1::Connector),
    /// HTTP/2 (and whatever pingora negotiates): pingora's own choice
    /// between its pools.
    Negotiated(Box<Connector>),
}

impl PooledConnector {
    /// A pool keeping at most `idle` connections, for `peer`'s HTTP versions.
    pub fn new(peer: &OwnPeer, idle: usize) -> Self {
        let options = Some(ConnectorOptions::new(idle));
        let h1_only = peer
            .get_peer_options()
            .is_none_or(|o| o.alpn.get_max_http_version() == 1);
        if h1_only {
            Self::Http1(v1::Connector::new(options))
        } else {
            Self::Negotiated(Box::new(Connector::new(options)))
        }
    }

    /// A pooled connection if one is idle and alive, else a new one; the
    /// flag says whether it was pooled (a pooled one may have died since).
    pub async fn session(&self, peer: &OwnPeer) -> Result<(HttpSession, bool)> {
        match self {
            Self::Http1(c) => {
                if let Some(s) = c.reused_http_session(peer).await {
                    return Ok((HttpSession::H1(s), true));
                }
                let (s, reused) = Box::pin(c.get_http_session(peer)).await?;
                Ok((HttpSession::H1(s), reused))
            }
            Self::Negotiated(c) => Box::pin(c.get_http_session(peer)).await,
        }
    }

    /// Returns a finished session's connection to the pool. (Boxed, so that
    /// this future does not hold the session beside pingora's own future.)
    pub async fn release(&self, s: Box<HttpSession>, peer: &OwnPeer, idle: Duration) {
        match self {
            Self::Http1(c) => {
                if let HttpSession::H1(h1) = *s {
                    c.release_http_session(h1, peer, Some(idle)).await
                }
                // A session of another kind than this pool makes: not pooled.
            }
            Self::Negotiated(c) => c.release_http_session(*s, peer, Some(idle)).await,
        }
    }
}

#[cfg(test)]
mod tests;
