//! Relays an upstream response to the client as it arrives.
//!
//! Chunks are written downstream the moment they are read (SSE events are
//! never buffered as a whole stream). Only a legacy `initialize` response is
//! inspected on the way, to learn the negotiated version and create the
//! session before the client can see the result.

use bytes::Bytes;
use filters::RequestId;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::ServerSession;
use policies::TenantName;

use crate::app::McpGate;
use crate::inspect::{InitOutcome, InitWatcher};
use crate::sessions::{new_session_id, Session};
use crate::upstream::RESPONSE_HOP_HEADERS;

/// What the relay needs to know about the request it answers.
pub struct RelayPlan<'a> {
    pub method: &'a str,
    pub tenant: &'a TenantName,
    pub session: Option<&'a Session>,
    /// Set for a legacy `initialize` without a session.
    pub init_id: Option<RequestId>,
}

/// How the exchange ended.
pub struct RelayOutcome {
    pub downstream_reusable: bool,
    pub upstream_reusable: bool,
    pub upstream_failed: bool,
}

impl RelayOutcome {
    fn aborted(upstream_failed: bool) -> Self {
        Self {
            downstream_reusable: false,
            upstream_reusable: false,
            upstream_failed,
        }
    }
}

/// A session being created by an initialize response in flight.
struct PendingSession {
    id: String,
    upstream_id: Option<String>,
    watcher: InitWatcher,
}

pub async fn relay_response(
    gate: &McpGate,
    ds: &mut ServerSession,
    up: &mut HttpSession,
    plan: RelayPlan<'_>,
) -> RelayOutcome {
    let Some(resp) = up.response_header() else {
        return RelayOutcome::aborted(true);
    };
    let status = resp.status.as_u16();
    let mut out = resp.clone();
    for h in RESPONSE_HOP_HEADERS {
        out.remove_header(*h);
    }
    let upstream_sid = out
        .remove_header("mcp-session-id")
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let is_sse = out
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        });

    let mut pending = match (&plan.init_id, status) {
        (Some(id), 200..=299) => {
            let proxy_id = new_session_id();
            let _ = out.insert_header("mcp-session-id", &proxy_id);
            Some(PendingSession {
                id: proxy_id,
                upstream_id: upstream_sid,
                watcher: InitWatcher::new(id.clone(), is_sse),
            })
        }
        _ => None,
    };
    if let (Some(s), true) = (plan.session, pending.is_none()) {
        let _ = out.insert_header("mcp-session-id", &s.id);
        // The upstream forgot the session (restart, expiry): forget it too, so
        // the client's next request gets 404 and it re-initializes.
        if status == 404 || (plan.method == "DELETE" && (200..300).contains(&status)) {
            gate.sessions.remove(&s.id);
        }
    }
    let framed =
        out.headers.contains_key("content-length") || out.headers.contains_key("transfer-encoding");
    if !framed && !matches!(status, 204 | 304) {
        let _ = out.insert_header("transfer-encoding", "chunked");
    }
    if let Err(e) = ds.write_response_header(Box::new(out)).await {
        tracing::debug!("writing response head downstream: {e}");
        return RelayOutcome::aborted(false);
    }

    loop {
        let chunk = tokio::select! {
            chunk = up.read_response_body() => chunk,
            idle = ds.read_body_or_idle(true) => {
                tracing::debug!("client went away mid-response: {:?}", idle.err());
                return RelayOutcome::aborted(false);
            }
        };
        match chunk {
            Ok(Some(data)) => {
                if let Some(p) = &mut pending {
                    if let Some(outcome) = p.watcher.feed(&data) {
                        create_session(gate, plan.tenant, p, outcome);
                    }
                }
                if let Err(e) = ds.write_response_body(data, false).await {
                    tracing::debug!("writing response body downstream: {e}");
                    return RelayOutcome::aborted(false);
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::info!("upstream failed mid-response: {e}");
                return RelayOutcome::aborted(true);
            }
        }
    }
    let downstream_ok = ds.write_response_body(Bytes::new(), true).await.is_ok();
    RelayOutcome {
        downstream_reusable: downstream_ok,
        upstream_reusable: up.response_done(),
        upstream_failed: false,
    }
}

fn create_session(
    gate: &McpGate,
    tenant: &TenantName,
    p: &mut PendingSession,
    outcome: InitOutcome,
) {
    let InitOutcome::Negotiated(version) = outcome else {
        return;
    };
    match gate
        .sessions
        .insert(p.id.clone(), tenant.clone(), p.upstream_id.take(), version)
    {
        Ok(_) => gate.metrics.sessions.set(gate.sessions.len() as i64),
        Err(e) => tracing::warn!("session not created: {e:?}"),
    }
}
