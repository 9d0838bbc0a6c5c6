//! The HTTP front door: path, Origin, body limit, recording, then routing to
//! the legacy (2025-11-25) or modern (2026-07-28) handler.
//!
//! Era selection follows the 2026-07-28 versioning page: a request whose body
//! carries `_meta["io.modelcontextprotocol/protocolVersion"]`, or whose
//! `MCP-Protocol-Version` header names a non-legacy version, is served
//! statelessly; everything else (starting with `initialize`) is legacy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use super::body::Body;
use super::cli::Config;
use super::jsonrpc::{classify, Invalid, Message, RpcError, INVALID_REQUEST, PARSE_ERROR};
use super::record::Recorder;
use super::store::SessionStore;
use super::{legacy, modern, reply};

/// Legacy revisions served with sessions.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// `_meta` key of the per-request protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the per-request client capabilities.
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key tying a notification to its `subscriptions/listen` stream.
pub const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// Everything connections share.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub sessions: SessionStore,
    pub recorder: Option<Recorder>,
    /// Open long-lived streams (legacy GET, modern listen), capped by config.
    pub streams: AtomicUsize,
}

impl App {
    /// Shared state for `config`; opens the record file if one is set.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let recorder = config.record.as_deref().map(Recorder::open).transpose()?;
        Ok(Self {
            sessions: SessionStore::new(config.max_sessions, config.session_idle),
            recorder,
            streams: AtomicUsize::new(0),
            config,
        })
    }

    /// Reserve a long-lived stream slot; released when the guard drops.
    pub fn stream_slot(self: &Arc<Self>) -> Option<StreamSlot> {
        if self.streams.fetch_add(1, Ordering::AcqRel) >= self.config.max_streams {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot(self.clone()))
    }
}

/// One reserved long-lived stream (RAII).
#[derive(Debug)]
pub struct StreamSlot(Arc<App>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-request context handed to the era handlers.
#[derive(Debug)]
pub struct Ctx {
    pub app: Arc<App>,
    pub headers: HeaderMap,
    /// The client accepts `application/json`.
    pub json_ok: bool,
    /// The client accepts `text/event-stream`.
    pub sse_ok: bool,
}

impl Ctx {
    /// A header as trimmed text (`None` if absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// Whether an answer that could be JSON should be an SSE stream instead.
    pub fn prefer_sse(&self) -> bool {
        self.sse_ok && (self.app.config.sse_by_default || !self.json_ok)
    }
}

/// Answer one HTTP request. Never panics on input; every failure is a response.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match read_body(&app, &parts, body).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    if let Some(recorder) = &app.recorder {
        recorder.record(&parts, Some(&body));
    }
    if parts.uri.path() != app.config.path {
        return reply::plain(404, "not found\n");
    }
    if !app.config.allow_any_origin && !origin_ok(&parts.headers) {
        let err = RpcError::http(403, INVALID_REQUEST, "Forbidden: invalid Origin header");
        return reply::rpc_error(&err, None);
    }
    let (json_ok, sse_ok) = accepts(&parts.headers);
    let ctx = Ctx {
        app,
        headers: parts.headers,
        json_ok,
        sse_ok,
    };
    match parts.method {
        Method::POST => post(ctx, &body).await,
        Method::GET => match ctx.header(reply::SESSION_HEADER) {
            Some(_) => legacy::get(ctx).await,
            None => reply::method_not_allowed("POST"),
        },
        Method::DELETE => match ctx.header(reply::SESSION_HEADER) {
            Some(_) => legacy::delete(&ctx),
            None => reply::method_not_allowed("POST"),
        },
        _ => reply::method_not_allowed("GET, POST, DELETE"),
    }
}

/// Read the whole body, refusing (413) anything over the configured limit.
async fn read_body(app: &App, parts: &Parts, body: Incoming) -> Result<Bytes, Response<Body>> {
    let limit = app.config.max_body_bytes;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        if let Some(recorder) = &app.recorder {
            recorder.record(parts, None);
        }
        reply::plain(413, "request body too large\n")
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(reply::plain(400, "could not read request body\n")),
    }
}

/// Parse and route one POSTed JSON-RPC message.
async fn post(ctx: Ctx, body: &[u8]) -> Response<Body> {
    if !ctx.json_ok && !ctx.sse_ok {
        let err = RpcError::http(
            406,
            INVALID_REQUEST,
            "Not Acceptable: Accept must list application/json and text/event-stream",
        );
        return reply::rpc_error(&err, None);
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let err = RpcError::http(400, PARSE_ERROR, format!("Parse error: {e}"));
            return reply::rpc_error(&err, None);
        }
    };
    let msg = match classify(&value) {
        Ok(msg) => msg,
        Err(Invalid::Batch) => {
            let err = RpcError::http(
                400,
                INVALID_REQUEST,
                "Invalid Request: batches are not supported",
            );
            return reply::rpc_error(&err, None);
        }
        Err(Invalid::Shape(why)) => {
            let id = value
                .get("id")
                .filter(|id| id.is_string() || id.is_number());
            let err = RpcError::http(400, INVALID_REQUEST, format!("Invalid Request: {why}"));
            return reply::rpc_error(&err, id);
        }
    };
    if is_modern(&ctx, &msg) {
        modern::post(ctx, msg).await
    } else {
        legacy::post(ctx, msg).await
    }
}

/// Whether a message is addressed to the stateless 2026-07-28 handler.
fn is_modern(ctx: &Ctx, msg: &Message<'_>) -> bool {
    let params = match msg {
        Message::Request { params, .. } | Message::Notification { params, .. } => *params,
        Message::Response { .. } => None,
    };
    let body_claims = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(META_VERSION));
    let header_claims = ctx
        .header("mcp-protocol-version")
        .is_some_and(|v| !LEGACY_VERSIONS.contains(&v));
    body_claims || header_claims
}

/// `(json_ok, sse_ok)` from the `Accept` header (absent: both).
fn accepts(headers: &HeaderMap) -> (bool, bool) {
    let values: Vec<String> = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .collect();
    if values.is_empty() {
        return (true, true);
    }
    let has = |needle: &str| values.iter().any(|v| v.contains(needle));
    let any = has("*/*");
    (
        any || has("application/json") || has("application/*"),
        any || has("text/event-stream") || has("text/*"),
    )
}

/// DNS-rebinding defence: an `Origin`, if present, must be a loopback host.
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert!(origin_ok(&h));
        for (origin, ok) in [
            ("http://localhost:3000", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:8080", true),
            ("https://evil.example.com", false),
            ("http://localhost.evil.com", false),
            ("null", false),
        ] {
            h.insert(http::header::ORIGIN, HeaderValue::from_static(origin));
            assert_eq!(origin_ok(&h), ok, "{origin}");
        }
    }

    #[test]
    fn accept_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(accepts(&h), (true, true));
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(accepts(&h), (true, false));
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        assert_eq!(accepts(&h), (true, true));
        h.insert(http::header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(accepts(&h), (false, false));
    }
}
