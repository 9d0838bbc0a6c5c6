//! The message phase of an exchange: the body through the filter chain,
//! the session it names looked up (or revived from its sealed id), and the
//! session bookkeeping the message implies: request ids registered in
//! flight, a legacy `initialize` noted so that its answer creates the
//! session. What passes is handed to forwarding as an [`Admitted`]; what
//! does not comes back as the refusal to answer.

use bytes::Bytes;
use filters::header_values::single_str;
use filters::{
    Concealed, Era, Exchange, Identity, Message, MessageKind, Rejection, RejectionKind,
    SessionLookup,
};
use policies::TenantName;

use crate::accept::downstream::Downstream;
use crate::gate::McpGate;
use crate::sessions::owner::revive;
use crate::sessions::store::{BeginError, Session};
use crate::upstream::forward::{Admitted, Disguise, RequestFacts};

/// Runs the message phase and the session bookkeeping it implies.
pub(crate) fn admit(
    gate: &McpGate,
    ds: &Downstream,
    method: &str,
    path: &str,
    body: &Bytes,
    tenant: TenantName,
    identity: Option<Identity>,
) -> Result<Admitted, Box<(Rejection, bool)>> {
    let headers = &ds.req_header().headers;
    let sid = single_str(headers, "mcp-session-id");
    let principal = principal(&tenant, identity.as_ref());
    let subject = identity.as_ref().and_then(|i| i.subject.clone());
    let session = sid.and_then(|id| {
        gate.sessions
            .get(id, &principal)
            .or_else(|| revive(gate, id, &principal))
            .filter(|s| {
                // A reload removed (or renamed) the session's pool: the
                // session ends (404), it is not sent to another upstream.
                let served = gate.pools.contains_key(&*s.pool);
                if !served {
                    tracing::info!(pool = %s.pool, "session ended: a reload removed its pool");
                    gate.sessions.remove(id);
                }
                served
            })
    });
    let snapshot = session.as_ref().map(|s| s.snapshot());
    let mut ex = Exchange::new(&gate.policy, method, path, headers, body);
    ex.tenant = Some(tenant.clone());
    ex.identity = identity;
    // Arguments and their mirrored headers are judged by what the pool that
    // will serve the call last listed through this worker.
    let pool = gate.pool_for(session.as_ref().map(|s| &*s.pool), &tenant);
    if gate.policy.tools.validate_arguments {
        ex.tool_schemas = Some(&pool.schemas);
    }
    if gate.policy.tools.pins_active() {
        ex.pins = pool.pins.as_ref();
    }
    ex.param_headers = Some(&pool.param_headers);
    if gate.policy.content.judges_requests() {
        ex.content_book = Some(&pool.content_book);
    }
    ex.session = match (sid, &snapshot) {
        (None, _) => SessionLookup::NoneGiven,
        (Some(_), None) => SessionLookup::Unknown,
        (Some(_), Some(s)) => SessionLookup::Found(s),
    };
    let chain_began = std::time::SystemTime::now();
    let verdict = gate.chain.check_message(&mut ex);
    let chain_ended = std::time::SystemTime::now();
    if ex.content_book.is_some() {
        // What the request filters found (secrets in arguments).
        crate::upstream::report_findings(gate, pool);
    }
    let rewritten = ex.rewritten;
    let bare =
        !ex.messages.is_empty() && ex.messages.iter().all(|m| m.kind != MessageKind::Request);
    let echo = ex.echo_id();
    let (era, messages) = (ex.era, std::mem::take(&mut ex.messages));
    let scopes = ex.identity.take().map(|i| i.scopes).unwrap_or_default();
    for hit in &ex.shadowed {
        gate.metrics
            .shadow
            .with_label_values(&[hit.filter, &hit.rule])
            .inc();
        tracing::info!(filter = hit.filter, rule = %hit.rule, "shadow mode: would refuse {}", hit.detail);
    }
    let concealed = ex.concealed.take();
    if gate.audit.is_some() || gate.traces.is_some() {
        // Arguments only for the audit trail (traces do not carry them).
        let arguments = gate.audit.as_ref().map(|t| t.argument_values);
        note_message(&tenant, subject.as_deref(), sid, &messages, arguments);
    }
    let trace = gate
        .traces
        .as_ref()
        .map(|t| begin_trace(t, headers, &messages));
    if let Some(ids) = &trace {
        let version = protocol_version(headers, &messages);
        crate::ops::audit::record::note(|n| {
            n.trace = Some(ids.clone());
            n.protocol_version = version;
            n.timings.chain = Some((chain_began, chain_ended));
        });
    }
    verdict.map_err(|r| Box::new((r, bare)))?;
    let mut disguise = match (concealed, messages.as_slice()) {
        (Some(c), [m]) => Some(disguise(gate, &tenant, m, c)),
        _ => None,
    };
    // A filter changed the messages (a secret redacted from arguments):
    // they go upstream as changed.
    let mut body_override = rewritten.then(|| {
        let bodies: Vec<&serde_json::Map<String, serde_json::Value>> =
            messages.iter().map(|m| &m.body).collect();
        Bytes::from(match bodies.as_slice() {
            [one] => serde_json::to_vec(one).unwrap_or_default(),
            many => serde_json::to_vec(many).unwrap_or_default(),
        })
    });
    // The upstream joins the trace: in `_meta` (SEP-414) as well as in the
    // HTTP headers (see forwarding).
    if let (Some(ids), [_]) = (&trace, messages.as_slice()) {
        if let Some(d) = &mut disguise {
            if let Some(b) = with_trace_meta(&d.body, ids) {
                d.body = b;
            }
        } else if let Some(b) = with_trace_meta(body_override.as_ref().unwrap_or(body), ids) {
            body_override = Some(b);
        }
    }

    let mut admitted = Admitted {
        era,
        tenant,
        principal,
        subject,
        session: None,
        init_id: None,
        begun: Vec::new(),
        bare,
        facts: RequestFacts::new(method, &messages),
        scopes,
        disguise,
        body_override,
        trace,
        fair: None,
    };
    if era == Era::Legacy {
        if let Some(s) = &session {
            begin_all(gate, s, &messages, &mut admitted).map_err(|mut r| {
                r.id = echo.clone();
                (r, bare)
            })?;
            if messages.iter().any(|m| {
                m.kind == MessageKind::Notification && m.method() == "notifications/initialized"
            }) {
                s.mark_ready();
            }
        } else if let Some(init) = messages.iter().find(|m| m.is_request("initialize")) {
            if gate.sessions.len() >= gate.policy.sessions.max_sessions {
                let mut r = Rejection::new(RejectionKind::Overloaded, "session table full");
                r.id = echo;
                return Err(Box::new((r, bare)));
            }
            admitted.init_id = init.id.clone();
        }
    }
    admitted.session = session;
    Ok(admitted)
}

/// The trace context of a request: the caller's from its message's
/// `_meta`, else from the HTTP headers.
fn begin_trace(
    traces: &crate::ops::traces::Traces,
    headers: &http::HeaderMap,
    messages: &[Message],
) -> crate::ops::traces::TraceIds {
    let meta = match messages {
        [m] => m
            .params()
            .and_then(|p| p.get("_meta"))
            .and_then(|v| v.as_object()),
        _ => None,
    };
    let from_meta = |k: &str| meta.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    traces.begin(
        [from_meta("traceparent"), from_meta("tracestate")],
        [
            single_str(headers, "traceparent"),
            single_str(headers, "tracestate"),
        ],
    )
}

/// The protocol revision a request spoke: its `MCP-Protocol-Version`
/// header, else the one its `_meta` names (2026-07-28), else the one an
/// `initialize` asks for.
fn protocol_version(headers: &http::HeaderMap, messages: &[Message]) -> Option<String> {
    single_str(headers, "mcp-protocol-version")
        .map(str::to_string)
        .or_else(|| {
            let [m] = messages else { return None };
            let params = m.params()?;
            params
                .get("_meta")
                .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
                .or_else(|| {
                    m.is_request("initialize")
                        .then(|| params.get("protocolVersion"))
                        .flatten()
                })?
                .as_str()
                .map(str::to_string)
        })
}

/// The message `raw` (one JSON-RPC message) with mcpgate's exchange span
/// in its `params._meta` as the upstream's parent (`traceparent`, and the
/// caller's `tracestate`). Every other value goes on byte for byte (kept
/// as raw JSON, so no number is re-encoded); `None` when the message has
/// no `params` object (`_meta` lives in params) or `_meta` is not one.
fn with_trace_meta(raw: &[u8], ids: &crate::ops::traces::TraceIds) -> Option<Bytes> {
    use serde_json::value::RawValue;
    type Raw<'a> = std::collections::BTreeMap<String, &'a RawValue>;
    let mut top: Raw = serde_json::from_slice(raw).ok()?;
    let mut params: Raw = serde_json::from_str(top.get("params")?.get()).ok()?;
    let mut meta: serde_json::Map<String, serde_json::Value> = match params.get("_meta") {
        Some(m) => serde_json::from_str(m.get()).ok()?,
        None => serde_json::Map::new(),
    };
    meta.insert("traceparent".into(), ids.traceparent().into());
    match ids.tracestate() {
        Some(s) => meta.insert("tracestate".into(), s.into()),
        None => meta.remove("tracestate"),
    };
    let meta = RawValue::from_string(serde_json::to_string(&meta).ok()?).ok()?;
    params.insert("_meta".into(), &meta);
    let params = RawValue::from_string(serde_json::to_string(&params).ok()?).ok()?;
    top.insert("params".into(), &params);
    serde_json::to_vec(&top).ok().map(Bytes::from)
}

/// Tells the audit trail (and the trace) who sent what; with `arguments`
/// (the audit trail is on), their digest, and their values when it is
/// `true` (as they go on: after any redaction).
fn note_message(
    tenant: &TenantName,
    subject: Option<&str>,
    sid: Option<&str>,
    messages: &[Message],
    arguments: Option<bool>,
) {
    crate::ops::audit::record::note(|n| {
        n.tenant = Some(tenant.to_string());
        n.subject = subject.map(str::to_string);
        n.session = sid.map(str::to_string);
        match messages {
            [] => {}
            [m] => {
                n.method = Some(m.method().to_string());
                n.request_id = m.id.clone();
                let params = m.params();
                n.target = filters::access::target_of(m.method(), params)
                    .and_then(|t| t.name)
                    .map(str::to_string);
                let args = params
                    .and_then(|p| p.get("arguments"))
                    .filter(|_| m.method() == "tools/call");
                if let (Some(args), Some(keep_values)) = (args, arguments) {
                    n.arguments_sha256 = Some(crate::ops::audit::record::arguments_digest(args));
                    n.arguments = keep_values.then(|| args.clone());
                }
            }
            _ => n.method = Some("batch".into()),
        }
    });
}

/// A request naming a target hidden from its caller goes upstream under a
/// placeholder no server knows (see `filters::access`): counted, logged with
/// the rule, and rewritten here.
fn disguise(gate: &McpGate, tenant: &TenantName, m: &Message, c: Concealed) -> Disguise {
    let mut nonce = [0u8; 16];
    // getrandom failing leaves zeros: still a name no server knows.
    let _ = getrandom::fill(&mut nonce);
    let placeholder = format!("mcpgate-hidden-{}", hex::encode(nonce));
    let kind = filters::access::noun(c.kind);
    gate.metrics
        .access_hidden
        .with_label_values(&[kind, &c.rule])
        .inc();
    tracing::info!(
        tenant = %tenant,
        rule = %c.rule,
        "access: {kind} {:?} hidden from the caller; sent on under a placeholder",
        c.original
    );
    Disguise {
        body: Bytes::from(filters::access::disguise(m, &c, &placeholder)),
        placeholder,
        original: c.original,
    }
}

fn begin_all(
    gate: &McpGate,
    s: &Session,
    messages: &[Message],
    admitted: &mut Admitted,
) -> Result<(), Rejection> {
    let max = gate.policy.sessions.max_in_flight_per_session;
    for id in messages
        .iter()
        .filter(|m| m.kind == MessageKind::Request)
        .filter_map(|m| m.id.as_ref())
    {
        if let Err(e) = s.begin(id, max) {
            for done in admitted.begun.drain(..) {
                s.finish(&done);
            }
            return Err(match e {
                BeginError::Duplicate => Rejection::new(
                    RejectionKind::DuplicateRequestId,
                    "request id already in flight",
                ),
                BeginError::TooMany => Rejection::new(
                    RejectionKind::Overloaded,
                    "too many requests in flight on the session",
                ),
            });
        }
        admitted.begun.push(id.clone());
    }
    Ok(())
}

/// Who owns a session: its tenant, and the verified subject when there is
/// one, so that a session id presented by another subject of the same
/// tenant is unknown (404): "state handle hijacking", 2026-07-28. The
/// subject is hashed: sealed ids and logs never carry it.
fn principal(tenant: &TenantName, identity: Option<&Identity>) -> TenantName {
    use sha2::{Digest, Sha256};
    match identity.and_then(|i| i.subject.as_deref()) {
        None => tenant.clone(),
        Some(sub) => {
            let digest = Sha256::digest(sub.as_bytes());
            TenantName::from(format!("{tenant}#{}", hex::encode(&digest[..12])).as_str())
        }
    }
}

#[cfg(test)]
mod tests;
