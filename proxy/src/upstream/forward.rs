//! Forwarding an admitted request: rate limits and admission caps first
//! (nothing reaches an upstream past a cap), then an endpoint of the tenant's
//! pool (sticky for sessions, round-robin otherwise, breaker and health
//! permitting), then the relay under the request's deadlines, and finally what
//! the upstream must be told when the request was abandoned.
//!
//! The exchange hands this stage an [`Admitted`] request; it answers with
//! [`Served`]: whether the client connection can be reused, or a
//! [`HeldStream`] carrying the upstream body, the admission slot and what
//! the endpoint's breaker must be told when the stream ends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use filters::{Era, Message, MessageKind, Rejection, RejectionKind as K, RequestId, ResponseFacts};
use policies::TenantName;
use serde_json::{json, Value};

use crate::accept::downstream::Downstream;
use crate::admission::caps::Held;
use crate::admission::fair::{FairPermit, LONG_WAIT};
use crate::exchange::respond::{refuse, BodyState};
use crate::gate::McpGate;
use crate::sessions::store::{Pinned, Session};
use crate::upstream::breaker::Ticket;
use crate::upstream::client::{Response, SendError, OWN_MESSAGE_TIMEOUT};
use crate::upstream::credentials::Caller;
use crate::upstream::held::{HeldStream, Report, Served};
use crate::upstream::pool::{Endpoint, Outcome, Pool, Unavailable};
use crate::upstream::relay::{relay_response, Abandoned, RelayPlan};

/// A request that passed every filter, with the bookkeeping it implies:
/// what the exchange hands to forwarding.
pub(crate) struct Admitted {
    pub(crate) era: Era,
    pub(crate) tenant: TenantName,
    /// Who owns the sessions this request makes or uses: the tenant, and the
    /// verified subject when there is one (the exchange's `principal`).
    pub(crate) principal: TenantName,
    /// The verified subject (for credentials minted for the upstream).
    pub(crate) subject: Option<String>,
    pub(crate) session: Option<Arc<Session>>,
    /// Id of a legacy `initialize` whose response creates a session.
    pub(crate) init_id: Option<RequestId>,
    /// Request ids registered in flight on the session.
    pub(crate) begun: Vec<RequestId>,
    pub(crate) bare: bool,
    /// What the forwarder needs to know about the message.
    pub(crate) facts: RequestFacts,
    /// The verified token's scopes (for the response phase).
    pub(crate) scopes: Vec<String>,
    /// Set when the request names a target hidden from the caller.
    pub(crate) disguise: Option<Disguise>,
    /// The request as a filter changed it (a secret redacted from its
    /// arguments), sent instead of the client's bytes.
    pub(crate) body_override: Option<Bytes>,
    /// Its trace context (`[traces]`): the upstream gets the exchange span
    /// as its parent in the HTTP headers (and in `_meta`, already in the
    /// body).
    pub(crate) trace: Option<crate::ops::traces::TraceIds>,
    /// Its place at the fair gate, left when the upstream answers (or has
    /// been waited on for [`LONG_WAIT`]).
    pub(crate) fair: Option<FairPermit>,
}

/// A request naming a hidden target, as it goes upstream: under a
/// placeholder name no server knows, without arguments. The response phase
/// puts `original` back where the server's answer quotes `placeholder`.
pub(crate) struct Disguise {
    pub(crate) body: Bytes,
    pub(crate) placeholder: String,
    pub(crate) original: String,
}

/// What forwarding needs to know about the client's message.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts {
    /// The id of the one request in the body, if it is one request.
    pub(crate) request_id: Option<RequestId>,
    /// Its JSON-RPC method ("" when none).
    pub(crate) method: String,
    /// What the request names: a tool or prompt name, a resource URI.
    pub(crate) target: Option<String>,
    pub(crate) progress_token: Option<Value>,
    /// A task-augmented request (`params.task`).
    pub(crate) is_task: bool,
    /// A long-lived stream (GET, `subscriptions/listen`): own cap, no deadline.
    pub(crate) stream: bool,
    /// `params.protocolVersion` of an `initialize`.
    pub(crate) requested_version: Option<String>,
}

impl RequestFacts {
    /// `params.name` of a `tools/call` (its target: one copy of the name).
    pub(crate) fn tool(&self) -> Option<&str> {
        match self.method.as_str() {
            "tools/call" => self.target.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn new(http_method: &str, messages: &[Message]) -> Self {
        let mut f = RequestFacts {
            stream: http_method == "GET",
            ..Default::default()
        };
        if let [m] = messages {
            f.method = m.method().to_string();
            if m.kind == MessageKind::Request {
                f.request_id = m.id.clone();
                let params = m.params();
                f.target = filters::access::target_of(&f.method, params)
                    .and_then(|t| t.name)
                    .map(str::to_string);
                f.progress_token = m.meta().and_then(|meta| meta.get("progressToken")).cloned();
                f.is_task = params.is_some_and(|p| p.contains_key("task"));
                f.stream |= f.method == "subscriptions/listen";
                if f.method == "initialize" {
                    f.requested_version = params
                        .and_then(|p| p.get("protocolVersion"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
            }
        }
        f
    }
}

/// Answers a refusal of an admitted request (boxed: refusals are rare, and
/// inline each would grow every request's future).
async fn refuse_admitted(gate: &McpGate, ds: &mut Downstream, a: &Admitted, r: Rejection) {
    Box::pin(refuse(
        gate,
        ds,
        &refuse_for(a, r),
        a.bare,
        BodyState::Consumed,
    ))
    .await;
}

fn refuse_for(a: &Admitted, r: Rejection) -> Rejection {
    let mut r = r;
    if r.id.is_none() {
        r.id = a.facts.request_id.clone();
    }
    r
}

/// The pool for this request: its session's, else the tenant's.
fn pool_for(gate: &McpGate, a: &Admitted) -> Arc<Pool> {
    gate.pool_for(a.session.as_ref().map(|s| &*s.pool), &a.tenant)
        .clone()
}

fn finish_in_flight(a: &Admitted) {
    if let Some(s) = &a.session {
        for id in &a.begun {
            s.finish(id);
        }
    }
}

/// Sends an admitted request upstream and relays the response; returns
/// whether the client connection can be reused.
pub(crate) async fn forward(
    gate: &McpGate,
    ds: &mut Downstream,
    method: &str,
    body: Bytes,
    mut a: Admitted,
) -> Served {
    let fair = a.fair.take();
    let body = match (&a.disguise, &a.body_override) {
        (Some(d), _) => d.body.clone(),
        (None, Some(b)) => b.clone(),
        (None, None) => body,
    };
    let served = forward_inner(gate, ds, method, body, &a, fair).await;
    if a.trace.is_some() {
        let ended = std::time::SystemTime::now();
        crate::ops::audit::record::note(|n| {
            if let Some(u) = &mut n.timings.upstream {
                u.1 = ended;
            }
        });
    }
    finish_in_flight(&a);
    gate.metrics.sessions.set(gate.sessions.len() as i64);
    served
}

async fn forward_inner(
    gate: &McpGate,
    ds: &mut Downstream,
    method: &str,
    body: Bytes,
    a: &Admitted,
    mut fair: Option<FairPermit>,
) -> Served {
    let session_key = a.session.as_ref().map(|s| s.id.as_str());
    if let Err(l) = gate
        .rate_limits
        .check(&gate.policy, &a.tenant, session_key, a.facts.tool())
    {
        let r = Rejection::new(K::RateLimited, format!("{} rate limit", l.label()))
            .with_retry_after(l.retry_after());
        // (The fair place is given back before the answer is written.)
        drop(fair);
        refuse_admitted(gate, ds, a, r).await;
        return Served::Done(true);
    }
    let pool = pool_for(gate, a);
    let _held = if a.facts.stream {
        gate.admission.admit_stream().map(Held::stream)
    } else {
        let admitted = gate
            .admission
            .admit_or_wait(&gate.policy, &a.tenant, &pool.config.name, || {
                drop(fair.take())
            })
            .await;
        admitted.map(Held::request)
    };
    let _held = match _held {
        Ok(h) => h,
        Err(shed) => {
            let r = Rejection::new(K::Overloaded, format!("{} cap reached", shed.label()));
            drop(fair);
            refuse_admitted(gate, ds, a, r).await;
            return Served::Done(true);
        }
    };
    let timeouts = pool.config.timeouts_for(a.facts.tool());
    let started = tokio::time::Instant::now();
    // Boxed before the fair gate's wrapper takes it: the wrapper's states
    // each kept their own copy of the future (12.9 KB boxed per request for
    // a 4.2 KB connect), where a box is one pointer.
    let connecting = Box::pin(connect(gate, ds, &pool, a, &body, timeouts.first_byte_ms));
    let Some((ep, ticket, mut up)) = leaving_fair_gate(fair, connecting).await else {
        return Served::Done(true);
    };
    // Counted once the upstream answered: a 502 is not "forwarded".
    let era = if a.era == Era::Modern {
        "modern"
    } else {
        "legacy"
    };
    gate.metrics
        .forwarded
        .with_label_values(&[era, method])
        .inc();
    gate.metrics
        .upstream_duration
        .with_label_values(&[&pool.config.name])
        .observe(started.elapsed().as_secs_f64());
    let plan = RelayPlan {
        method,
        tenant: &a.principal,
        session: a.session.as_deref(),
        init_id: a.init_id.clone(),
        pinned: Pinned {
            pool: pool.name.clone(),
            endpoint: ep.index,
        },
        requested_version: a.facts.requested_version.clone(),
        request_id: a.facts.request_id.clone(),
        progress_token: a.facts.progress_token.clone(),
        deadline: (!a.facts.stream).then(|| {
            (
                Duration::from_millis(timeouts.request_ms),
                Duration::from_millis(timeouts.max_request_ms),
            )
        }),
        started,
        watch_internal_errors: pool.config.breaker.count_internal_errors,
        slow_client_timeout: gate.slow_client_timeout(),
        may_hand_off: a.facts.stream && a.begun.is_empty(),
        response: ResponseFacts {
            method: &a.facts.method,
            target: a.facts.target.as_deref(),
            tenant: &a.tenant,
            subject: a.subject.as_deref(),
            scopes: &a.scopes,
            era: a.era,
            concealed: a
                .disguise
                .as_ref()
                .map(|d| (d.placeholder.as_str(), d.original.as_str())),
            request_id: None,
            // Filled by the relay, which knows the pool that answers.
            pins: None,
            content_book: None,
            output_schemas: None,
        },
    };
    let outcome = Box::pin(relay_response(gate, ds, &mut up, plan)).await;
    if outcome.handed_off {
        return Served::Stream(Box::new(HeldStream {
            upstream: up,
            report: Some(Report {
                pool,
                endpoint: ep,
                ticket,
            }),
            _slot: Some(_held),
            request_id: a.facts.request_id.clone(),
            slow_client_timeout: gate.slow_client_timeout(),
        }));
    }
    pool.report(&ep, ticket, outcome.endpoint);
    if let Some(why) = outcome.abandoned {
        tell_upstream_abandoned(gate, &ep, a, why, outcome.task_id.clone());
    }
    if outcome.upstream_reusable {
        ep.client.release(up).await;
    } else if outcome.endpoint == Outcome::Failure {
        gate.metrics
            .upstream_errors
            .with_label_values(&["response"])
            .inc();
    }
    Served::Done(outcome.downstream_reusable)
}

/// Awaits the upstream's answer, leaving the fair gate when it comes or once
/// it has been waited on for [`LONG_WAIT`] (a slow tool costs this proxy
/// nothing while it runs).
async fn leaving_fair_gate<T>(
    fair: Option<FairPermit>,
    answered: impl std::future::Future<Output = T>,
) -> T {
    let Some(permit) = fair else {
        return answered.await;
    };
    tokio::pin!(answered);
    tokio::select! {
        biased;
        done = &mut answered => {
            drop(permit);
            done
        }
        _ = tokio::time::sleep(LONG_WAIT) => {
            drop(permit);
            answered.await
        }
    }
}

/// Picks an endpoint and sends the request; `None` when the client has
/// already been answered with a refusal.
async fn connect(
    gate: &McpGate,
    ds: &mut Downstream,
    pool: &Pool,
    a: &Admitted,
    body: &Bytes,
    first_byte_ms: u64,
) -> Option<(Arc<Endpoint>, Ticket, Response)> {
    let mut tried = Vec::new();
    loop {
        let picked = match &a.session {
            Some(s) => match pool.endpoints.get(s.endpoint) {
                Some(ep) if ep.is_healthy() => pool.acquire(ep).map(|t| (ep.clone(), t)),
                _ => {
                    // The session's endpoint is gone: a clean 404 makes the
                    // client re-initialize, landing on a healthy endpoint.
                    gate.sessions.remove(&s.id);
                    let r = Rejection::new(
                        K::SessionNotFound,
                        "the session's upstream endpoint is down",
                    );
                    refuse_admitted(gate, ds, a, r).await;
                    return None;
                }
            },
            None => pool.pick(&tried),
        };
        let (ep, ticket) = match picked {
            Ok(p) => p,
            Err(u) => {
                let r = match u {
                    Unavailable::BreakerOpen(wait) => {
                        Rejection::new(K::CircuitOpen, "circuit open").with_retry_after(wait)
                    }
                    Unavailable::NoHealthy => {
                        Rejection::new(K::UpstreamUnavailable, "no healthy endpoint")
                    }
                };
                refuse_admitted(gate, ds, a, r).await;
                return None;
            }
        };
        let upstream_sid = a.session.as_ref().and_then(|s| s.upstream_id.as_deref());
        let sent = match ep.client.request_header(
            ds.req_header(),
            upstream_sid,
            body.len(),
            Caller {
                tenant: &a.tenant,
                subject: a.subject.as_deref(),
            },
        ) {
            Ok(mut req) => {
                // The 2026-07-28 routing header mirrors the name it hides.
                if let Some(d) = &a.disguise {
                    if req.headers.contains_key("mcp-name") {
                        let _ = req.insert_header("mcp-name", &d.placeholder);
                    }
                }
                if let Some(t) = &a.trace {
                    let _ = req.insert_header("traceparent", t.traceparent());
                    match t.tracestate() {
                        Some(s) => {
                            let _ = req.insert_header("tracestate", s);
                        }
                        None => {
                            req.remove_header("tracestate");
                        }
                    }
                    let (began, url) = (std::time::SystemTime::now(), ep.url.clone());
                    crate::ops::audit::record::note(|n| {
                        n.timings.upstream = Some((began, began, url));
                    });
                }
                ep.client
                    .send(
                        &req,
                        body,
                        Duration::from_millis(first_byte_ms),
                        a.facts.stream,
                    )
                    .await
            }
            Err(e) => Err(SendError::Failed(e)),
        };
        let failure = match sent {
            Ok(up) => return Some((ep, ticket, up)),
            Err(SendError::Connect(e)) => {
                pool.report(&ep, ticket, Outcome::ConnectFailure);
                gate.metrics
                    .upstream_errors
                    .with_label_values(&["connect"])
                    .inc();
                tracing::warn!(endpoint = %ep.url, "upstream connect failed: {e}");
                if let Some(s) = &a.session {
                    gate.sessions.remove(&s.id);
                    let r = Rejection::new(
                        K::SessionNotFound,
                        "the session's upstream endpoint is unreachable",
                    );
                    refuse_admitted(gate, ds, a, r).await;
                    return None;
                }
                tried.push(ep.index);
                if tried.len() < pool.endpoints.len() {
                    continue; // nothing reached that endpoint: another may take it
                }
                Rejection::new(
                    K::UpstreamUnavailable,
                    format!("upstream connect failed: {e}"),
                )
            }
            Err(SendError::Failed(e)) => {
                pool.report(&ep, ticket, Outcome::Failure);
                gate.metrics
                    .upstream_errors
                    .with_label_values(&["request"])
                    .inc();
                Rejection::new(K::UpstreamUnavailable, format!("upstream: {e}"))
            }
            Err(SendError::FirstByteTimeout) => {
                pool.report(&ep, ticket, Outcome::Failure);
                gate.metrics
                    .upstream_errors
                    .with_label_values(&["first_byte"])
                    .inc();
                tell_upstream_abandoned(gate, &ep, a, Abandoned::Deadline, None);
                Rejection::new(
                    K::UpstreamTimeout,
                    "no response head within first_byte_timeout_ms",
                )
            }
        };
        refuse_admitted(gate, ds, a, failure).await;
        return None;
    }
}

/// Tells a legacy upstream that a request was abandoned: `tasks/cancel`
/// for a task whose id is known, else `notifications/cancelled` (never for
/// `initialize`). Stateless requests need nothing: closing their stream,
/// which the relay did, is the cancellation.
fn tell_upstream_abandoned(
    gate: &McpGate,
    ep: &Arc<Endpoint>,
    a: &Admitted,
    why: Abandoned,
    task_id: Option<String>,
) {
    if a.era != Era::Legacy || a.facts.method == "initialize" {
        return;
    }
    let (Some(id), Some(session)) = (a.facts.request_id.clone(), a.session.clone()) else {
        return;
    };
    let reason = match why {
        Abandoned::Deadline => "mcpgate: request deadline exceeded",
        Abandoned::ClientGone => "mcpgate: client disconnected",
        Abandoned::OverCap => "mcpgate: the answer passed the gateway's cap",
    };
    let (kind, body) = match task_id {
        Some(task) if a.facts.is_task => (
            "tasks/cancel",
            json!({"jsonrpc": "2.0", "id": format!("mcpgate-cancel-{}", id), "method": "tasks/cancel", "params": {"taskId": task}}),
        ),
        _ => (
            "notifications/cancelled",
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id.to_json(), "reason": reason}}),
        ),
    };
    gate.metrics.cancels.with_label_values(&[kind]).inc();
    let ep = ep.clone();
    tokio::spawn(async move {
        let version = session.snapshot_version();
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", version.as_str()),
        ];
        if let Some(sid) = session.upstream_id.as_deref() {
            headers.push(("mcp-session-id", sid));
        }
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let status = ep
            .client
            .send_own(http::Method::POST, &headers, body, OWN_MESSAGE_TIMEOUT)
            .await;
        tracing::info!(endpoint = %ep.url, kind, ?status, "told upstream the request was abandoned");
    });
}
