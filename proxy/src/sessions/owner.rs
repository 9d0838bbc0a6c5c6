//! Handing a request to the worker process that owns its session.
//!
//! With `SO_REUSEPORT` any worker may accept any connection, but a legacy
//! session's live state (handshake stage, requests in flight) is kept by the
//! worker that created it. A worker that receives a request for a session
//! owned by another live worker of the same instance passes the whole request
//! (already read and head-checked) over the owner's private Unix socket and
//! relays the answer back, so the init-state gate and in-flight id
//! uniqueness hold across workers. Requests arriving on that socket are
//! served where they land. If the owner cannot be reached (it died and is
//! being restarted), the request is served locally from the session id's
//! sealed claims.

use std::sync::Arc;

use bytes::Bytes;
use pingora::upstreams::peer::HttpPeer;
use policies::TenantName;

use crate::accept::downstream::Downstream;
use crate::exchange::respond::{refuse, BodyState, WORKER_HEADER};
use crate::gate::McpGate;
use crate::sessions::store::{Pinned, Session};
use crate::upstream::client::{exchange, never_relayed, Response};
use crate::upstream::held::{can_hold, HeldStream, Served};

/// The header a worker adds when it hands a request to the session's owner,
/// carrying the verified client certificate's identities (space-separated).
/// Read only on the private socket; never forwarded upstream.
pub(crate) const CLIENT_CERT_HEADER: &str = "x-mcpgate-client-cert";

/// Request headers that describe the client hop only.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The owning worker of the request's session, when that is another
/// worker of this instance.
pub(crate) fn remote_owner(gate: &McpGate, ds: &Downstream) -> Option<usize> {
    // A lone worker owns everything (and opening the id costs a decryption).
    if gate.identity.workers < 2 {
        return None;
    }
    let id = filters::header_values::single_str(&ds.req_header().headers, "mcp-session-id")?;
    let claims = gate.codec.open(id)?;
    let owner = claims.worker as usize;
    (claims.instance == gate.identity.instance
        && owner != gate.identity.index
        && owner < gate.identity.workers)
        .then_some(owner)
}

/// Passes the request to `owner` and relays its answer. `None` when the
/// owner could not be reached (nothing was sent): serve locally. A GET
/// stream's answer is read by the upstream stage's `H1Response` and, after
/// its head, relayed as a held stream (no pingora client session kept for
/// its life).
pub(crate) async fn hand_to_owner(
    gate: &McpGate,
    ds: &mut Downstream,
    owner: usize,
    body: &Bytes,
    client_cert: Option<&[String]>,
) -> Option<Served> {
    let path = gate.identity.socket_of(owner);
    let peer = HttpPeer::new_uds(path.to_str()?, false, String::new()).ok()?;
    let mut req = ds.pingora_header().ok()?;
    for h in HOP_HEADERS {
        req.remove_header(*h);
    }
    // The owner sees no TLS handshake: it takes the verified client
    // certificate's identities from us (trusted on the private socket only).
    req.remove_header(CLIENT_CERT_HEADER);
    if let Some(ids) = client_cert {
        req.insert_header(CLIENT_CERT_HEADER, ids.join(" ")).ok()?;
    }
    if req.method == http::Method::POST || !body.is_empty() {
        req.insert_header("content-length", body.len().to_string())
            .ok()?;
    }
    let (up, _) = gate.owner_link.get_http_session(&peer).await.ok()?;
    let stream = req.method == http::Method::GET;
    let sent = exchange(up, &req, body, stream).await;
    let mut up = match sent {
        Ok(up) => up,
        Err(e) => {
            tracing::warn!(owner, "owner worker failed before answering: {e}");
            return Some(fail_handoff(gate, ds).await.into());
        }
    };
    let Some(mut out) = up.take_response_header() else {
        return Some(fail_handoff(gate, ds).await.into());
    };
    // The owner answered: its audit trail records the request.
    crate::ops::audit::record::note(|n| n.handed_over = true);
    for name in never_relayed(&out.headers) {
        out.remove_header(&name);
    }
    if gate.policy.listen.expose_worker_header {
        let _ = out.insert_header(WORKER_HEADER, gate.identity.index.to_string());
    }
    let hold = stream && can_hold(&out, &mut up);
    if ds.write_response_header(out).await.is_err() {
        return Some(Served::Done(false));
    }
    if hold {
        return Some(Served::Stream(Box::new(HeldStream {
            upstream: up,
            report: None,
            _slot: None,
            request_id: None,
            slow_client_timeout: gate.slow_client_timeout(),
        })));
    }
    while !up.response_done() {
        let chunk = tokio::select! {
        // Upstream first: a client that already sent its next request
        // must not be taken for one that left while the answer is done.
        biased;
            chunk = up.read_response_body() => chunk,
            _ = ds.until_client_leaves() => return Some(Served::Done(false)),
        };
        match chunk {
            Ok(Some(data)) => {
                if ds.write_response_body(data, false).await.is_err() {
                    return Some(Served::Done(false));
                }
                if up.response_done() {
                    break; // see relay: the client may already send again
                }
            }
            Ok(None) => break,
            Err(_) => return Some(Served::Done(false)),
        }
    }
    let ok = ds.write_response_body(Bytes::new(), true).await.is_ok();
    if let (true, Response::Pooled(s)) = (up.response_done(), up) {
        gate.owner_link.release_http_session(*s, &peer, None).await;
    }
    Some(Served::Done(ok))
}

async fn fail_handoff(gate: &McpGate, ds: &mut Downstream) -> bool {
    let r = filters::Rejection::new(
        filters::RejectionKind::UpstreamUnavailable,
        "session owner worker failed",
    );
    refuse(gate, ds, &r, false, BodyState::Consumed).await;
    true
}

/// Serves a session this process does not hold from its sealed claims:
/// the id must open with our keys, name this tenant and a known endpoint.
pub(crate) fn revive(gate: &McpGate, id: &str, tenant: &TenantName) -> Option<Arc<Session>> {
    // (`tenant` is the request's principal: tenant and subject.)
    let c = gate.codec.open(id)?;
    if *c.tenant != **tenant {
        return None;
    }
    let pool = gate.pools.get(&c.pool)?;
    if c.endpoint as usize >= pool.endpoints.len() {
        return None;
    }
    let at = Pinned {
        pool: Arc::from(c.pool.as_str()),
        endpoint: c.endpoint as usize,
    };
    let s = gate
        .sessions
        .revive(id, tenant.clone(), at, c.upstream_id, c.version)?;
    tracing::info!(
        worker = gate.identity.index,
        "serving a session from its sealed id (owner restarted or elsewhere)"
    );
    Some(s)
}
