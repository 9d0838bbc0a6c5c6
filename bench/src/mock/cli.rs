//! Command-line options of `demo-upstream`, parsed into a validated [`Config`].

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A fast MCP mock server speaking 2025-11-25 (sessions) and 2026-07-28
/// (stateless) Streamable HTTP on one endpoint, over HTTP/1.1 or h2c (HTTP/2
/// with prior knowledge), auto-detected per connection.
#[derive(Debug, Parser)]
#[command(name = "demo-upstream", version)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// Path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    pub path: String,
    /// Append one JSON line per HTTP request received to this file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Answer every request with `text/event-stream` when the client accepts it.
    #[arg(long)]
    pub sse_by_default: bool,
    /// Period of server-initiated notifications on GET and listen streams (ms).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub notify_interval_ms: u64,
    /// Most legacy sessions held at once; `initialize` beyond it gets 503.
    #[arg(long, default_value_t = NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN))]
    pub max_sessions: NonZeroUsize,
    /// Legacy sessions idle this long (s) with no open stream are dropped.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_secs: u64,
    /// Largest request body accepted (bytes); larger gets 413.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most open long-lived streams (legacy GET + modern listen) at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_streams: usize,
    /// Skip the DNS-rebinding check (a non-loopback `Origin` normally gets 403).
    #[arg(long)]
    pub allow_any_origin: bool,
    /// Skip `Mcp-Method` / `Mcp-Name` validation: plays an upstream that does
    /// not implement SEP-2243, so tests can show mcpgate enforcing it alone.
    #[arg(long)]
    pub lax_headers: bool,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
}

/// Server settings shared by every connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: String,
    pub record: Option<PathBuf>,
    pub sse_by_default: bool,
    pub notify_interval: Duration,
    pub max_sessions: usize,
    pub session_idle: Duration,
    pub max_body_bytes: usize,
    pub max_streams: usize,
    pub allow_any_origin: bool,
    pub lax_headers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            path: "/mcp".to_owned(),
            record: None,
            sse_by_default: false,
            notify_interval: Duration::from_millis(2000),
            max_sessions: 10_000,
            session_idle: Duration::from_secs(600),
            max_body_bytes: 16 * 1024 * 1024,
            max_streams: 10_000,
            allow_any_origin: false,
            lax_headers: false,
        }
    }
}

impl Args {
    /// The server settings these options describe.
    pub fn config(&self) -> Config {
        let path = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        Config {
            path,
            record: self.record.clone(),
            sse_by_default: self.sse_by_default,
            notify_interval: Duration::from_millis(self.notify_interval_ms),
            max_sessions: self.max_sessions.get(),
            session_idle: Duration::from_secs(self.session_idle_secs),
            max_body_bytes: self.max_body_bytes,
            max_streams: self.max_streams,
            allow_any_origin: self.allow_any_origin,
            lax_headers: self.lax_headers,
        }
    }
}
