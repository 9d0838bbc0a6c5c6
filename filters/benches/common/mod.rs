//! What the filter benchmarks share: the request they judge.

use http::{HeaderMap, HeaderName, HeaderValue};

pub struct Request {
    pub headers: HeaderMap,
    pub raw_head: Vec<u8>,
    pub body: Vec<u8>,
    pub legacy: bool,
}

/// A `tools/call` of `size` bytes of text in either revision, with its raw
/// head, and `Authorization: Bearer` when `bearer` is given.
pub fn request(legacy: bool, size: usize, bearer: Option<&str>) -> Request {
    let text = "x".repeat(size);
    let (body, mut hs) = if legacy {
        (
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}}),
            vec![
                ("mcp-protocol-version", "2025-11-25".to_owned()),
                ("mcp-session-id", "a".repeat(64)),
            ],
        )
    } else {
        (
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}}),
            vec![
                ("mcp-protocol-version", "2026-07-28".to_owned()),
                ("mcp-method", "tools/call".to_owned()),
                ("mcp-name", "echo".to_owned()),
            ],
        )
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    hs.extend([
        ("host", "127.0.0.1:8080".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("content-length", body.len().to_string()),
    ]);
    if let Some(t) = bearer {
        hs.push(("authorization", format!("Bearer {t}")));
    }
    let mut headers = HeaderMap::new();
    let mut raw = String::from("POST /mcp HTTP/1.1\r\n");
    for (k, v) in &hs {
        raw.push_str(&format!("{k}: {v}\r\n"));
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    raw.push_str("\r\n");
    Request {
        headers,
        raw_head: raw.into_bytes(),
        body,
        legacy,
    }
}
