//! Server-Sent Events framing.
//!
//! Every JSON-RPC message goes out as one `event: message` with a single
//! `data:` line (serde_json never emits raw newlines), optionally with an `id:`
//! so legacy clients can resume with `Last-Event-ID`.

use bytes::Bytes;
use serde_json::Value;

/// How long (ms) a legacy client should wait before reconnecting a stream.
pub const RETRY_MS: u64 = 1000;

/// One SSE event carrying a JSON-RPC message.
pub fn event(id: Option<u64>, msg: &Value) -> Bytes {
    let data = serde_json::to_string(msg).unwrap_or_else(|_| "null".to_owned());
    let mut out = String::with_capacity(data.len() + 40);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: message\ndata: ");
    out.push_str(&data);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// The 2025-11-25 priming event: an id with empty data, plus a `retry:` hint.
pub fn priming(id: u64) -> Bytes {
    Bytes::from(format!("id: {id}\nretry: {RETRY_MS}\ndata:\n\n"))
}

/// A comment line that keeps idle connections open through intermediaries.
pub fn keep_alive() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_events() {
        let e = event(Some(3), &json!({"a": "x\ny"}));
        assert_eq!(
            &e[..],
            b"id: 3\nevent: message\ndata: {\"a\":\"x\\ny\"}\n\n"
        );
        assert_eq!(&priming(1)[..], b"id: 1\nretry: 1000\ndata:\n\n");
    }
}
