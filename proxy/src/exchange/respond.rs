//! mcpgate's own answers, whichever stage gives them: refusals (counted,
//! logged, with the `WWW-Authenticate` challenge they call for) and the
//! JSON-RPC error events written into an SSE stream when the upstream fails
//! or a deadline passes.
//!
//! Every stage that may answer in mcpgate's name (the exchange, the
//! hand-over to a session's owner, forwarding, the relay, held streams)
//! comes here, so this module takes nothing from those stages: only the
//! shared [`McpGate`] for metrics and policy.

use bytes::Bytes;
use filters::{Rejection, RejectionKind, RequestId};
use pingora::http::ResponseHeader;

use crate::accept::downstream::Downstream;
use crate::gate::McpGate;

/// The worker header's name (`[listen] expose_worker_header`).
pub(crate) const WORKER_HEADER: &str = "x-mcpgate-worker";

/// How much of the request was consumed before the rejection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyState {
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
async fn reject(
    ds: &mut Downstream,
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
        let _ = h.insert_header(WORKER_HEADER, w.to_string());
    }
    if let Some(c) = challenge {
        let _ = h.insert_header("www-authenticate", c);
    } else if wire.status == 401 {
        let _ = h.insert_header("www-authenticate", "Bearer");
    }
    if body_state == BodyState::Unread || wire.close {
        ds.set_keepalive(false);
    }
    if ds.write_response_header(Box::new(h)).await.is_ok() {
        let _ = ds.write_response_body(Bytes::from(body), true).await;
    }
}

/// Counts, logs and answers a refusal.
pub(crate) async fn refuse(
    gate: &McpGate,
    ds: &mut Downstream,
    r: &Rejection,
    bare: bool,
    body: BodyState,
) {
    let wire = r.kind.wire();
    let filter = if r.filter.is_empty() {
        "proxy"
    } else {
        r.filter
    };
    gate.metrics
        .rejections
        .with_label_values(&[&format!("{:?}", r.kind), filter])
        .inc();
    crate::ops::audit::record::note_refusal(r);
    tracing::info!(
        kind = ?r.kind, filter, rule = r.rule, at = r.at().unwrap_or("-"),
        status = wire.status, code = wire.code,
        id = %filters::message::display_id(r.id.as_ref()),
        detail = %r.detail, "rejected"
    );
    let challenge = challenge(gate, r);
    reject(
        ds,
        r,
        bare,
        body,
        gate.worker_header(),
        challenge.as_deref(),
    )
    .await;
}

/// The `WWW-Authenticate` value of a 401 or 403 (RFC 6750 §3, RFC 9728
/// §5.1): where the protected resource metadata is, and for a missing
/// scope, every scope the operation needs (a step-up).
fn challenge(gate: &McpGate, r: &Rejection) -> Option<String> {
    let oauth = gate.policy.auth.oauth.as_ref();
    let mut parts: Vec<String> = Vec::new();
    match r.kind {
        RejectionKind::Unauthenticated => {
            let presented_token = !matches!(
                r.rule,
                "missing-token"
                    | "missing-api-key"
                    | "not-a-bearer-token"
                    | "token-in-query"
                    | "client-certificate-not-mapped"
            );
            if presented_token && gate.policy.auth.jwt.is_some() {
                parts.push("error=\"invalid_token\"".into());
            }
            if let Some(o) = oauth.filter(|o| !o.scopes_supported.is_empty()) {
                parts.push(format!("scope=\"{}\"", o.scopes_supported.join(" ")));
            }
        }
        RejectionKind::InsufficientScope => {
            parts.push("error=\"insufficient_scope\"".into());
            let scopes: Vec<&str> = r
                .data()
                .and_then(|d| d.get("scopes"))
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            parts.push(format!("scope=\"{}\"", scopes.join(" ")));
        }
        _ => return None,
    }
    if let Some(o) = oauth {
        parts.push(format!("resource_metadata=\"{}\"", o.metadata_url()));
    }
    Some(if parts.is_empty() {
        "Bearer".into()
    } else {
        format!("Bearer {}", parts.join(", "))
    })
}

fn error_event(id: Option<&RequestId>, kind: RejectionKind) -> Bytes {
    let mut r = Rejection::new(kind, "");
    r.id = id.cloned();
    let mut out = b"event: message\ndata: ".to_vec();
    out.extend_from_slice(&r.json_body());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The JSON-RPC error a client gets on its stream when the deadline passes.
pub(crate) fn timeout_event(id: Option<&RequestId>) -> Bytes {
    error_event(id, RejectionKind::UpstreamTimeout)
}

/// The JSON-RPC error a client gets when the upstream dies mid-stream.
pub(crate) fn failure_event(id: Option<&RequestId>) -> Bytes {
    error_event(id, RejectionKind::UpstreamUnavailable)
}
