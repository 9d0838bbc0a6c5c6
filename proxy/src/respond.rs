//! Writes mcpgate's own responses: rejections and upstream failures.

use bytes::Bytes;
use filters::Rejection;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

/// How much of the request was consumed before the rejection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// The whole body was read: the connection can be reused.
    Consumed,
    /// Part of the body is unread: close the connection after answering.
    Unread,
}

/// Answers a rejection. `bare` means the message was a notification or
/// response: a bare HTTP status, no JSON-RPC body. Otherwise the body is
/// [`Rejection::json_body`]: the generic message of the kind, and `error.data`
/// naming the rule that fired and where (`{"rule": .., "at": ..}`), never
/// the offending value.
pub async fn reject(
    ds: &mut ServerSession,
    r: &Rejection,
    bare: bool,
    body_state: BodyState,
    worker: Option<usize>,
    challenge: Option<&str>,
) {
    let wire = r.kind.wire();
    let body = if bare { Vec::new() } else { r.json_body() };
    let Ok(mut h) = ResponseHeader::build(wire.status, Some(6)) else {
        return;
    };
    let _ = h.insert_header("content-length", body.len().to_string());
    if !bare {
        let _ = h.insert_header("content-type", "application/json");
    }
    if let Some(secs) = r.retry_after.or(wire.retry_after) {
        let _ = h.insert_header("retry-after", secs.to_string());
    }
    if let Some(allow) = r.allow.or(wire.allow) {
        let _ = h.insert_header("allow", allow);
    }
    if let Some(w) = worker {
        let _ = h.insert_header(crate::owner::WORKER_HEADER, w.to_string());
    }
    if let Some(c) = challenge {
        let _ = h.insert_header("www-authenticate", c);
    } else if wire.status == 401 {
        let _ = h.insert_header("www-authenticate", "Bearer");
    }
    if body_state == BodyState::Unread || wire.close {
        ds.set_keepalive(None);
    }
    if ds.write_response_header(Box::new(h)).await.is_ok() {
        let _ = ds.write_response_body(Bytes::from(body), true).await;
    }
}
