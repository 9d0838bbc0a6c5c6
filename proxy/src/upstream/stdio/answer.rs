//! A stdio worker's answer to one HTTP request, in the shape the relay
//! reads from an HTTP upstream: a response head, then the body.
//!
//! A request whose first message back is its answer gets that answer as an
//! `application/json` body; one whose worker first sends something else
//! (progress, a log message, a request to the client) gets an event stream
//! that ends with the answer. A listening stream (a legacy GET) stays open
//! until the worker exits or the client leaves. Answers to 2026-07-28
//! clients gain what that revision requires of results and a worker
//! speaking 2025-11-25 does not write: `resultType`, and the caching hints
//! of lists and reads (`ttlMs: 0`, `cacheScope: "private"`).
//! Dropping an answer before its end abandons the request: the worker is
//! told with `notifications/cancelled` (under its own id).

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::worker::Worker;

/// Results that carry caching hints in 2026-07-28.
const CACHEABLE: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// A request still in flight at a worker.
pub(crate) struct InFlight {
    pub worker: Arc<Worker>,
    pub key: String,
    pub worker_id: Value,
}

impl InFlight {
    /// The client gave up on the request: forgotten, and the worker told
    /// with `notifications/cancelled` (under its own id) so it may stop.
    pub(crate) fn abandon(self) {
        if !self.worker.unregister(&self.key) || !self.worker.is_alive() {
            return;
        }
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": self.worker_id, "reason": "mcpgate: the client abandoned the request"}});
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let worker = self.worker;
            rt.spawn(async move {
                let _ = worker.send(&cancel).await;
                // Still alive? A hung worker is replaced.
                worker.probe();
            });
        }
    }
}

enum Body {
    Whole(Option<Bytes>),
    Events {
        rx: mpsc::Receiver<Value>,
        first: Option<Value>,
        /// `None` for a listening stream (no answer ends it).
        client_id: Option<Value>,
    },
}

/// See the module documentation.
pub(crate) struct StdioAnswer {
    head: ResponseHeader,
    body: Body,
    done: bool,
    /// 2026-07-28 client: results are adapted, see the module doc.
    modern_method: Option<String>,
    in_flight: Option<InFlight>,
}

fn head(status: u16, content_type: Option<&str>) -> ResponseHeader {
    let mut h = ResponseHeader::build(status, Some(4)).expect("valid status");
    if let Some(ct) = content_type {
        let _ = h.insert_header("content-type", ct);
    }
    h
}

/// Whether `msg` answers the request whose client id is `id`.
fn is_answer_to(msg: &Value, id: &Value) -> bool {
    msg.get("method").is_none() && msg.get("id") == Some(id)
}

/// The HTTP status a 2026-07-28 server gives a JSON answer: 400 or 404 for
/// the errors its transport names (parse, invalid request or params, header
/// mismatch, missing capability, unsupported version; unknown method), else
/// 200.
pub(crate) fn modern_status(answer: &Value) -> u16 {
    match answer.pointer("/error/code").and_then(Value::as_i64) {
        Some(-32700 | -32600 | -32602 | -32020 | -32021 | -32022) => 400,
        Some(-32601) => 404,
        _ => 200,
    }
}

/// Adds what a 2026-07-28 result must carry.
pub(crate) fn modernize(msg: &mut Value, method: &str) {
    let Some(result) = msg.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
}

fn sse_event(msg: &Value) -> Bytes {
    let mut out = b"event: message\ndata: ".to_vec();
    out.extend_from_slice(&serde_json::to_vec(msg).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl StdioAnswer {
    /// A complete answer with a JSON body (`status` 202: none).
    pub(crate) fn json(status: u16, body: Option<&Value>) -> Self {
        let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
        let mut h = head(status, bytes.as_ref().map(|_| "application/json"));
        let _ = h.insert_header(
            "content-length",
            bytes.as_ref().map_or(0, |b| b.len()).to_string(),
        );
        Self {
            head: h,
            done: bytes.is_none(),
            body: Body::Whole(bytes),
            modern_method: None,
            in_flight: None,
        }
    }

    /// An error answer: `status`, and a JSON-RPC error with `code`.
    pub(crate) fn error(status: u16, id: Option<&Value>, code: i32, message: &str) -> Self {
        let body = json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null),
            "error": {"code": code, "message": message}});
        Self::json(status, Some(&body))
    }

    /// The answer to a request: `first` is the first message the worker
    /// sent for it (`None`: nothing yet), `rx` the rest. `modern`: the
    /// client speaks 2026-07-28, whose HTTP transport gives some errors a
    /// status of their own ([`modern_status`]).
    pub(crate) fn to_request(
        first: Option<Value>,
        rx: mpsc::Receiver<Value>,
        client_id: Value,
        modern: bool,
        modern_method: Option<String>,
        in_flight: InFlight,
    ) -> Self {
        let first = match first {
            Some(mut answer) if is_answer_to(&answer, &client_id) => {
                if let Some(m) = &modern_method {
                    modernize(&mut answer, m);
                }
                in_flight.worker.unregister(&in_flight.key);
                let status = if modern { modern_status(&answer) } else { 200 };
                return Self::json(status, Some(&answer));
            }
            other => other,
        };
        Self {
            head: head(200, Some("text/event-stream")),
            body: Body::Events {
                rx,
                first,
                client_id: Some(client_id),
            },
            done: false,
            modern_method,
            in_flight: Some(in_flight),
        }
    }

    /// A listening stream.
    pub(crate) fn listening(rx: mpsc::Receiver<Value>) -> Self {
        Self {
            head: head(200, Some("text/event-stream")),
            body: Body::Events {
                rx,
                first: None,
                client_id: None,
            },
            done: false,
            modern_method: None,
            in_flight: None,
        }
    }

    pub(crate) fn head(&self) -> &ResponseHeader {
        &self.head
    }

    pub(crate) fn head_mut(&mut self) -> &mut ResponseHeader {
        &mut self.head
    }

    /// The first message of a JSON answer (to see whether it is an error).
    pub(crate) fn json_body(&self) -> Option<Value> {
        match &self.body {
            Body::Whole(Some(b)) => serde_json::from_slice(b).ok(),
            _ => None,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) async fn read_body(&mut self) -> pingora::Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        match &mut self.body {
            Body::Whole(b) => {
                self.done = true;
                Ok(b.take())
            }
            Body::Events {
                rx,
                first,
                client_id,
            } => {
                let msg = match first.take() {
                    Some(m) => Some(m),
                    None => rx.recv().await,
                };
                let Some(mut msg) = msg else {
                    self.done = true;
                    return Ok(None);
                };
                if client_id.as_ref().is_some_and(|id| is_answer_to(&msg, id)) {
                    if let Some(m) = &self.modern_method {
                        modernize(&mut msg, m);
                    }
                    self.done = true;
                    if let Some(f) = self.in_flight.take() {
                        f.worker.unregister(&f.key);
                    }
                }
                Ok(Some(sse_event(&msg)))
            }
        }
    }
}

impl Drop for StdioAnswer {
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            if !self.done {
                f.abandon();
            }
        }
    }
}
