//! What the filter benchmarks share: the policy, the request they judge,
//! how they judge it, and criterion's settings.

use std::time::Duration;

use criterion::Criterion;
use filters::{
    Chain, Exchange, RequestId, SessionLookup, SessionState, SessionView, TokenVerifier,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use policies::{Policy, TenantName};

/// `config.example.toml` as shipped.
pub fn example_policy() -> Policy {
    policies::parse_policy(
        "config.example.toml",
        include_str!("../../../config.example.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A legacy session past its handshake.
pub struct Ready;

impl SessionView for Ready {
    fn state(&self) -> SessionState {
        SessionState::Ready
    }
    fn negotiated_version(&self) -> &str {
        "2025-11-25"
    }
    fn is_in_flight(&self, _: &RequestId) -> bool {
        false
    }
}

/// Runs both phases the way the proxy does; the tenant the chain chose, or
/// `Err` if it refused.
pub fn judge(
    chain: &Chain,
    policy: &Policy,
    tokens: Option<&dyn TokenVerifier>,
    r: &Request,
) -> Result<Option<TenantName>, String> {
    let mut ex = Exchange::new(policy, "POST", "/mcp", &r.headers, b"");
    ex.raw_head = &r.raw_head;
    ex.tokens = tokens;
    chain.check_head(&mut ex).map_err(|e| e.detail)?;
    let tenant = ex.tenant.take();
    let identity = ex.identity.take();
    let mut ex = Exchange::new(policy, "POST", "/mcp", &r.headers, &r.body);
    ex.raw_head = &r.raw_head;
    ex.tokens = tokens;
    ex.tenant = tenant;
    ex.identity = identity;
    if r.legacy {
        ex.session = SessionLookup::Found(&Ready);
    }
    chain.check_message(&mut ex).map_err(|e| e.detail)?;
    Ok(ex.tenant)
}

/// Criterion's settings; `MCPGATE_CRITERION_QUICK=1`: a smoke run (well
/// under a minute).
pub fn config() -> Criterion {
    let quick = std::env::var_os("MCPGATE_CRITERION_QUICK").is_some();
    let (warm, measure) = if quick { (200, 500) } else { (1000, 3000) };
    Criterion::default()
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .sample_size(if quick { 10 } else { 50 })
}

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
