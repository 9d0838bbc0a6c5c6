//! Watches an upstream response for the facts the proxy must learn from it:
//! the result of a legacy `initialize` (negotiated protocol version).

use filters::RequestId;
use serde_json::Value;

use filters::sse::SseParser;

/// Largest response prefix kept while looking for the initialize result.
const MAX_INSPECTED_BYTES: usize = 1024 * 1024;

/// What was learned from an initialize response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// A result carrying this protocol version.
    Negotiated(String),
    /// An error response or a result without a version.
    Failed,
}

/// Finds the response to initialize request `id` in a JSON or SSE body.
pub struct InitWatcher {
    id: RequestId,
    sse: Option<SseParser>,
    json: Vec<u8>,
    outcome: Option<InitOutcome>,
}

impl InitWatcher {
    pub fn new(id: RequestId, is_sse: bool) -> Self {
        Self {
            id,
            sse: is_sse.then(|| SseParser::new(MAX_INSPECTED_BYTES)),
            json: Vec::new(),
            outcome: None,
        }
    }

    /// Feeds a body chunk; returns the outcome once, when it is first known.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<InitOutcome> {
        if self.outcome.is_some() {
            return None;
        }
        let found = match &mut self.sse {
            Some(parser) => {
                let mut found = None;
                let id = &self.id;
                parser.feed(chunk, |ev| {
                    if found.is_none() {
                        found = serde_json::from_str::<Value>(&ev.data)
                            .ok()
                            .and_then(|v| outcome_for(id, &v));
                    }
                });
                found
            }
            None => {
                if self.json.len() + chunk.len() > MAX_INSPECTED_BYTES {
                    Some(InitOutcome::Failed)
                } else {
                    self.json.extend_from_slice(chunk);
                    serde_json::from_slice::<Value>(&self.json)
                        .ok()
                        .and_then(|v| outcome_for(&self.id, &v))
                }
            }
        };
        self.outcome.clone_from(&found);
        found
    }
}

fn outcome_for(id: &RequestId, v: &Value) -> Option<InitOutcome> {
    if !id.is_json(v.get("id")?) {
        return None;
    }
    let version = v
        .get("result")
        .and_then(|r| r.get("protocolVersion"))
        .and_then(Value::as_str);
    Some(version.map_or(InitOutcome::Failed, |s| {
        InitOutcome::Negotiated(s.to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_result_in_pieces() {
        let mut w = InitWatcher::new(RequestId::Number(0.into()), false);
        assert_eq!(w.feed(br#"{"jsonrpc":"2.0","id":0,"res"#), None);
        let out = w.feed(br#"ult":{"protocolVersion":"2025-11-25"}}"#);
        assert_eq!(out, Some(InitOutcome::Negotiated("2025-11-25".into())));
        assert_eq!(w.feed(b""), None, "reported once");
    }

    #[test]
    fn sse_result_after_other_events() {
        let mut w = InitWatcher::new(RequestId::String("i".into()), true);
        let body = b"id: 1\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"i\",\"error\":{\"code\":1,\"message\":\"x\"}}\n\n";
        assert_eq!(w.feed(body), Some(InitOutcome::Failed));
    }
}
