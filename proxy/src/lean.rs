//! A lean accept layer on pingora-core for the MCP listener.
//!
//! pingora's listening service costs about 28 KiB of heap per connection
//! before the first request byte arrives (measured with valgrind massif: an
//! 8.8 KiB task future, two boxed app futures of 5.2 and 3.8 KiB, a 4 KiB
//! header buffer allocated by `read_request` while waiting, and 64 KiB + 1.4
//! KiB stream buffers). With 100,000 mostly idle connections that is what
//! decides the memory bill. This layer accepts on its own `SO_REUSEPORT`
//! socket and keeps an idle connection as a bare socket in a small task: the
//! pingora stream and HTTP session (and the handler's state, boxed) exist
//! only while a request is being read or served. Between keep-alive requests
//! only pingora's unbuffered stream is kept. The worker's private socket, on
//! which sibling workers hand over requests for sessions this worker owns,
//! is served the same way. Requests are then served by the
//! same pingora-core HTTP/1 session and the same handler as before.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::HttpPersistentSettings;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::net::{TcpListener, TcpStream, UnixListener};

use crate::app::McpGate;
use crate::held::{HeldStream, Served};

/// How long an idle keep-alive connection is kept.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// A client must start its first request within this time.
const FIRST_REQUEST: Duration = Duration::from_secs(60);

/// Where a lean listener accepts.
pub enum Bind {
    /// The public MCP endpoint, shared by the workers (`SO_REUSEPORT`).
    Tcp(SocketAddr),
    /// This worker's private socket: requests handed over by sibling
    /// workers for sessions this worker owns (served here, whatever the
    /// session id names).
    Internal(PathBuf),
}

pub struct LeanListener {
    pub gate: Arc<McpGate>,
    pub bind: Bind,
}

/// Binds `addr` with `SO_REUSEPORT`, so every worker process accepts on it.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

#[async_trait]
impl BackgroundService for LeanListener {
    async fn start(&self, shutdown: ShutdownWatch) {
        match &self.bind {
            Bind::Tcp(addr) => self.serve_tcp(*addr, shutdown).await,
            Bind::Internal(path) => self.serve_internal(path, shutdown).await,
        }
    }
}

impl LeanListener {
    async fn serve_tcp(&self, addr: SocketAddr, mut shutdown: ShutdownWatch) {
        let listener = match bind_reuseport(addr).and_then(TcpListener::from_std) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, "cannot listen: {e}");
                std::process::exit(1);
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let _ = tcp.set_nodelay(true);
                        tokio::spawn(serve_tcp_connection(self.gate.clone(), tcp, shutdown.clone()));
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }

    async fn serve_internal(&self, path: &Path, mut shutdown: ShutdownWatch) {
        let _ = std::fs::remove_file(path);
        let listener = match UnixListener::bind(path).and_then(|l| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(l)
        }) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(path = %path.display(), "cannot listen: {e}");
                std::process::exit(1);
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((unix, _)) => {
                        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(unix));
                        tokio::spawn(serve_connection(self.gate.clone(), stream, true, shutdown.clone()));
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }
}

/// Out of descriptors or memory: back off, do not spin.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Serves one public client connection, request after request.
async fn serve_tcp_connection(gate: Arc<McpGate>, tcp: TcpStream, shutdown: ShutdownWatch) {
    // `peek` (MSG_PEEK), not `readable()`, which may report readiness
    // spuriously: only a real first byte earns the per-request state.
    let mut probe = [0u8; 1];
    match tokio::time::timeout(FIRST_REQUEST, tcp.peek(&mut probe)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
    serve_connection(gate, stream, false, shutdown).await;
}

/// Serves a connection whose first request is arriving (or, for the
/// internal socket, about to), request after request.
async fn serve_connection(
    gate: Arc<McpGate>,
    mut stream: Stream,
    internal: bool,
    shutdown: ShutdownWatch,
) {
    let mut settings: Option<HttpPersistentSettings> = None;
    loop {
        // Boxed: the session and handler state live only while serving.
        let next = match Box::pin(serve_one(
            &gate,
            stream,
            settings.take(),
            internal,
            &shutdown,
        ))
        .await
        {
            Next::Close => return,
            Next::Reuse(next) => next,
            Next::Hold(mut client, held) => {
                // The handler is gone; only the stream's own small state stays
                // (boxed: an idle connection's task must not reserve room for it).
                if !Box::pin(held.run(&gate, &mut client)).await || *shutdown.borrow() {
                    return;
                }
                Reusable {
                    stream: client,
                    settings: None,
                    pipelined: false,
                }
            }
        };
        stream = next.stream;
        if !next.pipelined {
            // Idle between requests: wait for the next byte, keep nothing else.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(KEEPALIVE, stream.try_peek(&mut probe)).await {
                Ok(Ok(true)) => {}
                _ => return,
            }
        }
        settings = next.settings;
    }
}

struct Reusable {
    stream: Stream,
    settings: Option<HttpPersistentSettings>,
    /// Bytes of the next request were already read.
    pipelined: bool,
}

/// What follows a request on its connection.
enum Next {
    Close,
    Reuse(Reusable),
    /// A long-lived stream to relay on the bare connection.
    Hold(Stream, Box<HeldStream>),
}

async fn serve_one(
    gate: &McpGate,
    stream: Stream,
    settings: Option<HttpPersistentSettings>,
    internal: bool,
    shutdown: &ShutdownWatch,
) -> Next {
    let mut ds = ServerSession::new_http1(stream);
    if let Some(s) = settings {
        s.apply_to_session(&mut ds);
    }
    match ds.read_request().await {
        Ok(true) => {}
        Ok(false) => return Next::Close,
        Err(e) => {
            tracing::debug!("reading request head: {e}");
            return Next::Close;
        }
    }
    ds.set_keepalive(if *shutdown.borrow() {
        None
    } else {
        Some(KEEPALIVE.as_secs())
    });
    match gate.handle(&mut ds, internal).await {
        Served::Done(true) => {}
        Served::Done(false) => return Next::Close,
        Served::Stream(held) => {
            return match ds {
                ServerSession::H1(s) => Next::Hold(s.into_inner(), held),
                _ => Next::Close,
            }
        }
    }
    let mut settings = HttpPersistentSettings::for_session(&ds);
    let Ok(Some(reusable)) = ds.finish().await else {
        return Next::Close;
    };
    let (stream, prefix): (Stream, Option<BytesMut>) = reusable.into_parts();
    let pipelined = prefix.as_ref().is_some_and(|p| !p.is_empty());
    if let Some(p) = prefix {
        settings.set_pipelined_prefix(p);
    }
    Next::Reuse(Reusable {
        stream,
        settings: Some(settings),
        pipelined,
    })
}
