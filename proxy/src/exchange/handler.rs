//! One MCP exchange from request head to response end: the orchestration
//! of the stages.
//!
//! mcpgate runs on pingora-core's server and connectors rather than
//! pingora-proxy's `ProxyHttp`, because `ProxyHttp` can only replay 64 KiB of
//! pre-read body to the upstream (its retry buffer). Here the whole body, up
//! to the policy limit (default 4 MiB, larger gets 413), is read and judged
//! before any upstream connection is taken from the pool or opened, so no
//! byte of a rejected message ever reaches an upstream at any size.
//!
//! [`handle`], in order: the head phase of the filter chain (after any JWT
//! key refetch it needs), the body (a chunked one decoded strictly by the
//! accept layer's [`Downstream`]), the hand-over to the worker owning the request's
//! session ([`hand_to_owner`]), a place at the fair gate
//! (`admission::fair`), the message phase ([`admit`]), and
//! forwarding ([`forward`]), which relays the answer.

use std::time::Duration;

use bytes::Bytes;
use filters::header_values::single_str;
use filters::{Exchange, Rejection, RejectionKind, TokenVerifier};
use policies::TenantName;

use crate::accept::downstream::{BodyError as ReadError, Downstream};
use crate::exchange::admit::admit;
use crate::exchange::gathered::Gathered;
use crate::exchange::respond::{refuse, BodyState};
use crate::gate::McpGate;
use crate::ops::metrics::method_label;
use crate::sessions::owner::{hand_to_owner, remote_owner, CLIENT_CERT_HEADER};
use crate::upstream::forward::forward;
use crate::upstream::held::Served;

/// Largest body read after a head-phase refusal, only to echo the request id.
const ECHO_READ_LIMIT: usize = 64 * 1024;

/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Handles one request; returns whether the client connection is reusable.
/// `internal`: the request came over this worker's private socket from
/// another worker, so it is served here whatever session it names.
/// `method`: set to the request's MCP method label (for the duration
/// histogram) once it is known.
/// `client_cert`: identities of the client certificate the TLS
/// handshake verified (for a request handed over by a sibling, the
/// sibling's word, in [`CLIENT_CERT_HEADER`]).
pub(crate) async fn handle(
    gate: &McpGate,
    ds: &mut Downstream,
    internal: bool,
    client_cert: Option<&[String]>,
    method_seen: &mut &'static str,
) -> Served {
    let policy = gate.policy.clone();
    // Owned, as `ds` is borrowed mutably below; both clones share the
    // parsed head's bytes rather than copying them.
    let (method, uri) = (ds.req_header().method.clone(), ds.req_header().uri.clone());
    let (method, path, query) = (method.as_str(), uri.path(), uri.query().unwrap_or(""));
    if let Some(served) = Box::pin(protected_resource_metadata(gate, ds, method, path)).await {
        return served;
    }
    let handed_cert: Option<Vec<String>> = internal
        .then(|| single_str(&ds.req_header().headers, CLIENT_CERT_HEADER))
        .flatten()
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        });
    let client_cert = handed_cert.as_deref().or(client_cert);
    if let (Some(tokens), Some(token)) = (&gate.tokens, bearer_jwt(&ds.req_header().headers)) {
        Box::pin(tokens.prepare(&token)).await;
    }

    // The raw head, for the header guard (the parsed map drops
    // Content-Length when Transfer-Encoding is present).
    let raw_head = ds.raw_head();
    let head = {
        let mut ex = Exchange::new(&policy, method, path, &ds.req_header().headers, b"");
        ex.raw_head = &raw_head;
        ex.query = query;
        ex.client_cert = client_cert;
        ex.tokens = gate.tokens.as_deref().map(|t| t as &dyn TokenVerifier);
        gate.chain
            .check_head(&mut ex)
            .map(|()| (ex.tenant.take(), ex.identity.take()))
    };
    let (tenant, identity) = match head {
        Ok((Some(t), i)) => (t, i),
        Ok((None, i)) => (unreachable_tenant(), i),
        Err(r) => return Box::pin(refuse_head(gate, ds, r)).await.into(),
    };
    if gate.audit.is_some() {
        crate::ops::audit::record::note(|n| {
            n.tenant = Some(tenant.to_string());
            n.subject = identity.as_ref().and_then(|i| i.subject.clone());
        });
    }

    let body = match read_body(ds, policy.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::Framing(e)) => {
            let mut r = Rejection::new(RejectionKind::AmbiguousFraming, e.to_string())
                .with_rule(e.rule())
                .with_at("body");
            r.filter = "chunked_framing";
            Box::pin(refuse(gate, ds, &r, false, BodyState::Unread)).await;
            return Served::Done(false);
        }
        Err(BodyError::TooLarge) => {
            let r = Rejection::new(RejectionKind::PayloadTooLarge, "chunked body over limit");
            Box::pin(refuse(gate, ds, &r, false, BodyState::Unread)).await;
            return Served::Done(false);
        }
        Err(BodyError::Io) => return Served::Done(false),
    };

    if !internal {
        if let Some(owner) = remote_owner(gate, ds) {
            if let Some(served) = Box::pin(hand_to_owner(gate, ds, owner, &body, client_cert)).await
            {
                return served;
            }
        }
    }
    // A place at the fair gate before the message's own filters cost anything.
    let fair = match gate.admission.enter_fair(&policy, &tenant).await {
        Ok(p) => p,
        Err(shed) => {
            let mut r = Rejection::new(
                RejectionKind::Overloaded,
                format!("{} reached", shed.label()),
            )
            .with_rule("fair-share");
            r.filter = "fair_queueing";
            let (id, bare) = filters::message::peek_id(&body);
            r.id = id;
            Box::pin(refuse(gate, ds, &r, bare, BodyState::Consumed)).await;
            return Served::Done(true);
        }
    };
    let admitted = match admit(gate, ds, method, path, &body, tenant, identity) {
        Ok(mut a) => {
            *method_seen = method_label(&a.facts.method);
            a.fair = fair;
            a
        }
        Err(refused) => {
            // The fair place is given back before the answer is written.
            drop(fair);
            if let Some(m) = single_str(&ds.req_header().headers, "mcp-method") {
                *method_seen = method_label(m);
            }
            let (r, bare) = *refused;
            Box::pin(refuse(gate, ds, &r, bare, BodyState::Consumed)).await;
            return Served::Done(true);
        }
    };
    Box::pin(forward(gate, ds, method, body, admitted)).await
}

/// RFC 9728 protected resource metadata (`[auth.oauth]`), on GET of
/// `/.well-known/oauth-protected-resource` with the MCP path appended
/// (and without it); `None` for every other request.
async fn protected_resource_metadata(
    gate: &McpGate,
    ds: &mut Downstream,
    method: &str,
    path: &str,
) -> Option<Served> {
    let o = gate.policy.auth.oauth.as_ref()?;
    if method != "GET"
        || (path != o.metadata_path() && path != "/.well-known/oauth-protected-resource")
    {
        return None;
    }
    let mut doc = serde_json::json!({
        "resource": o.resource,
        "authorization_servers": o.authorization_servers,
        "bearer_methods_supported": ["header"],
    });
    if !o.scopes_supported.is_empty() {
        doc["scopes_supported"] = serde_json::json!(o.scopes_supported);
    }
    if let Some(d) = &o.resource_documentation {
        doc["resource_documentation"] = serde_json::json!(d);
    }
    let body = doc.to_string();
    let Ok(mut h) = pingora::http::ResponseHeader::build(200, Some(4)) else {
        return Some(Served::Done(false));
    };
    let _ = h.insert_header("content-type", "application/json");
    let _ = h.insert_header("content-length", body.len().to_string());
    let _ = h.insert_header("cache-control", "max-age=300");
    let ok = ds.write_response_header(Box::new(h)).await.is_ok()
        && ds
            .write_response_body(Bytes::from(body), true)
            .await
            .is_ok();
    Some(Served::Done(ok))
}

/// Answers a head-phase refusal. A small body is still read (never
/// forwarded) so the error can echo the request id, a notification gets a
/// bare status, and the connection stays reusable.
async fn refuse_head(gate: &McpGate, ds: &mut Downstream, mut r: Rejection) -> bool {
    let small = declared_length(ds).is_some_and(|n| n <= ECHO_READ_LIMIT);
    // Framing, injection and size refusals close the connection unread.
    if r.kind.wire().close || !small {
        Box::pin(refuse(gate, ds, &r, false, BodyState::Unread)).await;
        return false;
    }
    let Ok(body) = read_body(ds, ECHO_READ_LIMIT).await else {
        Box::pin(refuse(gate, ds, &r, false, BodyState::Unread)).await;
        return false;
    };
    let (id, bare) = filters::message::peek_id(&body);
    r.id = id;
    Box::pin(refuse(gate, ds, &r, bare, BodyState::Consumed)).await;
    true
}

/// A bearer credential that looks like a JWT (for the key refetch).
fn bearer_jwt(headers: &http::HeaderMap) -> Option<String> {
    let v = single_str(headers, "authorization")?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.matches('.').count() == 2)
        .then(|| token.to_string())
}

fn unreachable_tenant() -> TenantName {
    // The auth filter either sets a tenant or rejects; keep a safe value anyway.
    TenantName::from("")
}

enum BodyError {
    TooLarge,
    /// A chunked body broke the framing grammar.
    Framing(crate::accept::chunked::ChunkError),
    Io,
}

/// The request's Content-Length, when it has a valid one.
fn declared_length(ds: &Downstream) -> Option<usize> {
    ds.req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
}

/// Reads the whole request body, at most `max` bytes, without copying a
/// body that arrives in one piece (see [`Gathered`]).
async fn read_body(ds: &mut Downstream, max: usize) -> Result<Bytes, BodyError> {
    ds.set_read_timeout(Some(BODY_READ_TIMEOUT));
    let expected = declared_length(ds).map_or(0, |n| n.min(max));
    let mut body = Gathered::default();
    loop {
        match ds.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                body.push(chunk, expected);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(ReadError::Framing(e)) => return Err(BodyError::Framing(e)),
            Err(e) => {
                tracing::debug!("reading request body: {e}");
                return Err(BodyError::Io);
            }
        }
    }
}
