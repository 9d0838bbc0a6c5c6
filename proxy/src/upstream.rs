//! The upstream MCP server: pooled connections and request rewriting.

use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

/// Headers that describe one hop, never forwarded (RFC 9110 7.6.1), plus the
/// client's credentials: token passthrough to the upstream is forbidden.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "mcp-session-id",
];

/// Response headers that describe one hop.
pub const RESPONSE_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

pub struct UpstreamClient {
    connector: Connector,
    peer: HttpPeer,
    authority: String,
    path: String,
    idle: Duration,
}

impl UpstreamClient {
    pub fn new(u: &policies::Upstream) -> std::io::Result<Self> {
        use std::net::ToSocketAddrs;
        let addr = (u.host.as_str(), u.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{} resolves to no address", u.host)))?;
        let mut peer = HttpPeer::new(addr, u.tls, u.host.clone());
        peer.options.connection_timeout = Some(Duration::from_millis(u.connect_timeout_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(u.pool_idle_secs.max(1)));
        let authority = if u.host.contains(':') {
            format!("[{}]:{}", u.host, u.port)
        } else {
            format!("{}:{}", u.host, u.port)
        };
        Ok(Self {
            connector: Connector::new(Some(ConnectorOptions::new(256))),
            peer,
            authority,
            path: u.path.clone(),
            idle: Duration::from_secs(u.pool_idle_secs),
        })
    }

    /// The request head sent upstream for a client request head.
    ///
    /// The path becomes the upstream's, `Host` its authority, the session id
    /// the upstream's own, and the body length the buffered body's.
    pub fn request_header(
        &self,
        client: &RequestHeader,
        upstream_session: Option<&str>,
        body_len: usize,
    ) -> Result<RequestHeader> {
        let mut req = RequestHeader::build(
            client.method.clone(),
            self.path.as_bytes(),
            Some(client.headers.len() + 2),
        )?;
        let named_by_connection: Vec<String> = client
            .headers
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        for (name, value) in client.headers.iter() {
            let n = name.as_str();
            if NOT_FORWARDED.contains(&n) || named_by_connection.iter().any(|c| c == n) {
                continue;
            }
            req.append_header(name.clone(), value.clone())?;
        }
        req.insert_header("host", &self.authority)?;
        if let Some(id) = upstream_session {
            req.insert_header("mcp-session-id", id)?;
        }
        if client.method == http::Method::POST || body_len > 0 {
            req.insert_header("content-length", body_len.to_string())?;
        }
        Ok(req)
    }

    /// Sends a whole request; retries once on a fresh connection when a
    /// pooled one turns out to be dead before any response byte arrived.
    pub async fn send(&self, req: &RequestHeader, body: &Bytes) -> Result<HttpSession> {
        let (mut s, reused) = self.connector.get_http_session(&self.peer).await?;
        match Self::write_and_read_head(&mut s, req, body).await {
            Ok(()) => Ok(s),
            Err(e) if reused => {
                tracing::debug!("pooled upstream connection failed ({e}); retrying on a new one");
                let (mut fresh, _) = self.connector.get_http_session(&self.peer).await?;
                Self::write_and_read_head(&mut fresh, req, body).await?;
                Ok(fresh)
            }
            Err(e) => Err(e),
        }
    }

    async fn write_and_read_head(
        s: &mut HttpSession,
        req: &RequestHeader,
        body: &Bytes,
    ) -> Result<()> {
        s.write_request_header(Box::new(req.clone())).await?;
        if !body.is_empty() {
            s.write_request_body(body.clone(), true).await?;
        }
        s.finish_request_body().await?;
        s.read_response_header().await
    }

    /// Returns a finished connection to the pool.
    pub async fn release(&self, s: HttpSession) {
        self.connector
            .release_http_session(s, &self.peer, Some(self.idle))
            .await;
    }
}
