//! MCP requests as the load generator sends them, pre-built as raw bytes.
//!
//! A 2025-11-25 ("legacy") client first runs the `initialize` handshake and
//! then sends every request with its `Mcp-Session-Id`; a 2026-07-28
//! ("modern") client is stateless and sends `_meta` plus the routing headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) on every request.
//! Request ids are fixed-width (`"r0000000001"`) so a template is patched in
//! place and `Content-Length` never changes.

use serde::Serialize;
use serde_json::json;

/// Protocol revision a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    Legacy,
    Modern,
}

impl Era {
    pub fn name(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        }
    }
}

pub const LEGACY_VERSION: &str = "2025-11-25";
pub const MODERN_VERSION: &str = "2026-07-28";
/// Digits in a patched request id.
const ID_DIGITS: usize = 10;

/// Where requests go and who sends them.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` for the `Host` header.
    pub authority: String,
    /// Endpoint path (`/mcp`).
    pub path: String,
    /// API key sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
}

fn head(target: &Target, extra: &[(&str, &str)], body_len: usize) -> String {
    let mut h = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n",
        target.path, target.authority
    );
    if let Some(key) = &target.api_key {
        h.push_str("Authorization: Bearer ");
        h.push_str(key);
        h.push_str("\r\n");
    }
    for (k, v) in extra {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h
}

/// A request whose JSON-RPC id can be rewritten in place.
#[derive(Debug, Clone)]
pub struct Template {
    pub raw: Vec<u8>,
    /// Offset of the id digits in `raw`.
    id_at: usize,
}

impl Template {
    fn build(target: &Target, headers: &[(&str, &str)], body: &str) -> Self {
        let mut raw = head(target, headers, body.len()).into_bytes();
        let marker = format!("\"r{}\"", "0".repeat(ID_DIGITS));
        let id_at = body.find(&marker).map_or(usize::MAX, |i| raw.len() + i + 2);
        raw.extend_from_slice(body.as_bytes());
        Self { raw, id_at }
    }

    /// Sets the request id to `n` (modulo 10^10).
    pub fn set_id(&mut self, mut n: u64) {
        if self.id_at == usize::MAX {
            return;
        }
        for i in (0..ID_DIGITS).rev() {
            self.raw[self.id_at + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
}

fn id0() -> String {
    format!("r{}", "0".repeat(ID_DIGITS))
}

/// Text of `bytes` bytes for the `echo` tool (its result is the same text).
pub fn filler(bytes: usize) -> String {
    "x".repeat(bytes)
}

fn modern_meta() -> serde_json::Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// `tools/call echo` with `payload` bytes of text, for `era`.
pub fn echo_call(target: &Target, era: Era, session: Option<&str>, payload: usize) -> Template {
    let text = filler(payload);
    match era {
        Era::Legacy => {
            let body = json!({"jsonrpc": "2.0", "id": id0(), "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}})
            .to_string();
            let mut hs = vec![("MCP-Protocol-Version", LEGACY_VERSION)];
            if let Some(s) = session {
                hs.push(("Mcp-Session-Id", s));
            }
            Template::build(target, &hs, &body)
        }
        Era::Modern => {
            let body = json!({"jsonrpc": "2.0", "id": id0(), "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}, "_meta": modern_meta()}})
            .to_string();
            Template::build(
                target,
                &[
                    ("MCP-Protocol-Version", MODERN_VERSION),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "echo"),
                ],
                &body,
            )
        }
    }
}

/// The legacy `initialize` request.
pub fn initialize(target: &Target) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
        "protocolVersion": LEGACY_VERSION, "capabilities": {},
        "clientInfo": {"name": "mcpgate-loadgen", "version": env!("CARGO_PKG_VERSION")}}})
    .to_string();
    Template::build(target, &[], &body).raw
}

/// The legacy `notifications/initialized` for `session`.
pub fn initialized(target: &Target, session: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    Template::build(
        target,
        &[
            ("MCP-Protocol-Version", LEGACY_VERSION),
            ("Mcp-Session-Id", session),
        ],
        &body,
    )
    .raw
}

/// A legacy request `method` (without params) in `session`.
fn in_session(target: &Target, session: &str, id: &str, method: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method}).to_string();
    Template::build(
        target,
        &[
            ("MCP-Protocol-Version", LEGACY_VERSION),
            ("Mcp-Session-Id", session),
        ],
        &body,
    )
    .raw
}

/// A legacy `tools/list` in `session`.
pub fn tools_list(target: &Target, session: &str) -> Vec<u8> {
    in_session(target, session, "list", "tools/list")
}

/// A legacy `ping` in `session`.
pub fn ping(target: &Target, session: &str) -> Vec<u8> {
    in_session(target, session, "ping", "ping")
}

/// A bodiless legacy request for `session`: `method` (`GET`, `DELETE`)
/// with the `extra` header lines (each ending in CRLF).
fn bodiless(target: &Target, session: &str, method: &str, extra: &str) -> Vec<u8> {
    let mut h = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\n{extra}MCP-Protocol-Version: {LEGACY_VERSION}\r\nMcp-Session-Id: {session}\r\n",
        target.path, target.authority
    );
    if let Some(key) = &target.api_key {
        h.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// The `DELETE` that ends `session`.
pub fn delete_session(target: &Target, session: &str) -> Vec<u8> {
    bodiless(target, session, "DELETE", "Content-Length: 0\r\n")
}

/// A legacy `GET` stream request for `session`.
pub fn legacy_get_stream(target: &Target, session: &str) -> Vec<u8> {
    bodiless(target, session, "GET", "Accept: text/event-stream\r\n")
}

/// A modern `subscriptions/listen` request (its response is a held stream).
pub fn modern_listen(target: &Target, n: u64) -> Vec<u8> {
    let body =
        json!({"jsonrpc": "2.0", "id": format!("listen-{n}"), "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}, "_meta": modern_meta()}})
        .to_string();
    Template::build(
        target,
        &[
            ("MCP-Protocol-Version", MODERN_VERSION),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        &body,
    )
    .raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            authority: "127.0.0.1:1".into(),
            path: "/mcp".into(),
            api_key: Some("k".into()),
        }
    }

    #[test]
    fn id_is_patched_in_place() {
        let mut t = echo_call(&target(), Era::Modern, None, 16);
        let len = t.raw.len();
        t.set_id(42);
        assert_eq!(t.raw.len(), len);
        let text = String::from_utf8(t.raw.clone()).unwrap();
        assert!(text.contains("\"r0000000042\""), "{text}");
        assert!(text.contains("Mcp-Name: echo\r\n"));
        assert!(text.contains("Authorization: Bearer k\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["params"]["arguments"]["text"].as_str().unwrap().len(), 16);
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn legacy_call_carries_session() {
        let t = echo_call(&target(), Era::Legacy, Some("abc"), 4);
        let text = String::from_utf8(t.raw).unwrap();
        assert!(text.contains("Mcp-Session-Id: abc\r\n"));
        assert!(text.contains("MCP-Protocol-Version: 2025-11-25\r\n"));
    }
}
