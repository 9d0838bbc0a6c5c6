//! Relays an upstream response to the client as it arrives.
//!
//! Chunks are written downstream the moment they are read (SSE events are
//! never buffered as a whole stream). On the way the relay watches for what
//! the proxy must act on: the result of a legacy `initialize` (to create the
//! session before the client can see it), progress notifications (each one
//! restarts the request deadline, up to a hard maximum), and the answer to the
//! request (JSON-RPC internal errors for the breaker, task ids for cancels).
//! With `[tools] validate_arguments`, a `tools/list` answer also teaches the
//! pool's schema catalog the tools it lists (`filters::tool_schema`).
//! A client that accepts no bytes for `slow_client_timeout_ms` is cut off: the
//! only buffer between upstream and client is the sockets'.

mod answer;

use std::time::Duration;

use bytes::Bytes;
use filters::RequestId;
use policies::TenantName;
use serde_json::Value;
use tokio::time::Instant;

use crate::accept::downstream::Downstream;
use crate::exchange::gathered::Gathered;
use crate::exchange::respond::{failure_event, timeout_event, WORKER_HEADER};
use crate::gate::McpGate;
use crate::ops::audit::record::{note_ending, note_replaced, Ending};
use crate::sessions::session_id::Claims;
use crate::sessions::store::{Pinned, Session};
use crate::upstream::client::{is_event_stream, never_relayed, Response};
use crate::upstream::held::can_hold;
use crate::upstream::inspect::{InitOutcome, InitWatcher};
use crate::upstream::pool::{Outcome, Pool};
use answer::Message;

use filters::sse::SseParser;
use filters::{Judged, MessageStream, ResponseFacts};
use policies::{OnUncompilable, ResultCaps};

/// Largest SSE event or JSON answer inspected (bigger ones are relayed unread).
const MAX_INSPECTED_BYTES: usize = 1024 * 1024;

/// What the relay needs to know about the request it answers.
pub struct RelayPlan<'a> {
    pub method: &'a str,
    pub tenant: &'a TenantName,
    pub session: Option<&'a Session>,
    /// Set for a legacy `initialize` without a session.
    pub init_id: Option<RequestId>,
    /// Where a session created by this response lives.
    pub pinned: Pinned,
    /// The version an `initialize` asked for (sealed into the session id).
    pub requested_version: Option<String>,
    /// The request's id, when it is one request.
    pub request_id: Option<RequestId>,
    pub progress_token: Option<Value>,
    /// `(per-progress deadline, hard maximum)`; `None` for long-lived streams.
    pub deadline: Option<(Duration, Duration)>,
    pub started: Instant,
    /// Count a JSON-RPC -32603 answer as an endpoint failure.
    pub watch_internal_errors: bool,
    pub slow_client_timeout: Duration,
    /// A long-lived stream whose body needs no inspection: once its head is
    /// written, the caller may relay the rest as a held stream
    /// ([`crate::upstream::held::HeldStream`]).
    pub may_hand_off: bool,
    /// What the response phase knows of the request (its `request_id` is
    /// filled from `request_id` above).
    pub response: ResponseFacts<'a>,
}

/// Why the relay gave up on the upstream before its answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    Deadline,
    /// The client left and the stream cannot be resumed.
    ClientGone,
    /// The answer passed a `[content.limits]` cap; the client got an error.
    OverCap,
}

/// How the exchange ended.
pub struct RelayOutcome {
    pub downstream_reusable: bool,
    pub upstream_reusable: bool,
    pub endpoint: Outcome,
    pub abandoned: Option<Abandoned>,
    /// A task id seen in the answer (for `tasks/cancel`).
    pub task_id: Option<String>,
    /// Only the head was relayed (written, not flushed): the body is the
    /// caller's to relay as a held stream. Nothing was reported yet.
    pub handed_off: bool,
}

/// A session being created by an initialize response in flight.
struct PendingSession {
    /// Set once the session exists (or definitely will not).
    settled: bool,
    id: String,
    upstream_id: Option<String>,
    watcher: InitWatcher,
}

/// Watches an SSE or JSON response for progress and the request's answer.
struct AnswerWatch {
    sse: Option<SseParser>,
    json: Gathered,
    json_overflow: bool,
    saw_event_id: bool,
    progress: bool,
    internal_error: bool,
    /// How the request's answer ended, once seen.
    ending: Option<Ending>,
    task_id: Option<String>,
    /// `notifications/{tools,prompts}/list_changed` seen, by kind.
    list_changed: [bool; 2],
}

impl AnswerWatch {
    fn new(is_sse: bool) -> Self {
        Self {
            sse: is_sse.then(|| SseParser::new(MAX_INSPECTED_BYTES)),
            json: Gathered::default(),
            json_overflow: false,
            saw_event_id: false,
            progress: false,
            internal_error: false,
            ending: None,
            task_id: None,
            list_changed: [false; 2],
        }
    }

    /// Feeds a chunk; returns whether it carried matching progress.
    fn feed(&mut self, chunk: &Bytes, plan: &RelayPlan<'_>) -> bool {
        self.progress = false;
        let Some(parser) = &mut self.sse else {
            if self.json.len() + chunk.len() > MAX_INSPECTED_BYTES {
                self.json_overflow = true;
                self.json.clear();
            } else if !self.json_overflow {
                self.json.push(chunk.clone(), 0);
            }
            return false;
        };
        let mut events = Vec::new();
        parser.feed(chunk, |ev| events.push(ev));
        for ev in events {
            self.saw_event_id |= ev.id.as_deref().is_some_and(|i| !i.is_empty());
            if ev.data.is_empty() {
                continue;
            }
            if let Some(m) = Message::parse(ev.data.as_bytes()) {
                self.look_at(&m, plan);
            }
        }
        self.progress
    }

    /// At the end of a JSON body: inspect the whole answer.
    fn finish(&mut self, plan: &RelayPlan<'_>) {
        let json = self.json.as_slice();
        if self.sse.is_none() && !self.json_overflow && !json.is_empty() {
            if let Some(m) = Message::parse(json) {
                self.look_at(&m, plan);
            }
        }
    }

    fn look_at(&mut self, m: &Message, plan: &RelayPlan<'_>) {
        let method = m.method.as_ref().and_then(Value::as_str);
        match method {
            Some("notifications/tools/list_changed") => self.list_changed[0] = true,
            Some("notifications/prompts/list_changed") => self.list_changed[1] = true,
            _ => {}
        }
        if method == Some("notifications/progress") {
            let token = m.params.as_ref().and_then(|p| p.get("progressToken"));
            self.progress |= plan.progress_token.is_some() && token == plan.progress_token.as_ref();
            return;
        }
        let ours = plan.request_id.as_ref();
        if !ours.zip(m.id.as_ref()).is_some_and(|(a, b)| a.is_json(b)) {
            return;
        }
        let code = m
            .error
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64);
        if code == Some(-32603) {
            self.internal_error = true;
        }
        let result = m.result.as_ref();
        self.ending.get_or_insert(match code {
            Some(c) => Ending::Error(c),
            None if result.and_then(|r| r.is_error.as_ref()) == Some(&Value::Bool(true)) => {
                Ending::ToolError
            }
            None => Ending::Result,
        });
        let task = result.and_then(|r| r.task.as_ref());
        if let Some(t) = task.and_then(|t| t.get("taskId")).and_then(Value::as_str) {
            self.task_id = Some(t.to_string());
        }
    }
}

pub async fn relay_response(
    gate: &McpGate,
    ds: &mut Downstream,
    up: &mut Response,
    plan: RelayPlan<'_>,
) -> RelayOutcome {
    let aborted = |endpoint, abandoned| {
        note_ending(match abandoned {
            Some(Abandoned::Deadline) => Ending::Deadline,
            Some(Abandoned::ClientGone) => Ending::ClientGone,
            Some(Abandoned::OverCap) => Ending::OverCap,
            None if endpoint == Outcome::Failure => Ending::UpstreamFailed,
            None => Ending::Relayed,
        });
        RelayOutcome {
            downstream_reusable: false,
            upstream_reusable: false,
            endpoint,
            abandoned,
            task_id: None,
            handed_off: false,
        }
    };
    let Some(mut out) = up.take_response_header() else {
        return aborted(Outcome::Failure, None);
    };
    let status = out.status.as_u16();
    // The client hop is HTTP/1.1 whatever the upstream spoke (HTTP/2).
    out.set_version(http::Version::HTTP_11);
    for name in never_relayed(&out.headers) {
        out.remove_header(&name);
    }
    let upstream_sid = out
        .remove_header(&filters::header_values::MCP_SESSION_ID)
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let is_sse = is_event_stream(&out.headers);

    let mut pending = match (&plan.init_id, status) {
        (Some(id), 200..=299) => {
            let proxy_id = gate.codec.seal(&Claims {
                instance: gate.identity.instance,
                worker: gate.identity.index as u16,
                pool: plan.pinned.pool.to_string(),
                endpoint: plan.pinned.endpoint as u16,
                tenant: plan.tenant.to_string(),
                version: plan.requested_version.clone().unwrap_or_default(),
                upstream_id: upstream_sid.clone(),
            });
            let _ = out.insert_header("mcp-session-id", &proxy_id);
            Some(PendingSession {
                settled: false,
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
    if let Some(w) = gate.worker_header() {
        let _ = out.insert_header(WORKER_HEADER, w.to_string());
    }
    let pool = gate.pools.get(&*plan.pinned.pool);
    let pins = gate
        .policy
        .tools
        .pins_active()
        .then(|| pool.and_then(|p| p.pins.as_ref()))
        .flatten();
    let content_book = gate
        .policy
        .content
        .any_enabled()
        .then(|| pool.map(|p| &p.content_book))
        .flatten();
    let output_schemas = gate
        .policy
        .content
        .output_schema
        .enabled
        .then(|| pool.map(|p| &p.output_schemas))
        .flatten();
    let facts = ResponseFacts {
        request_id: plan.request_id.as_ref(),
        pins,
        content_book,
        output_schemas,
        ..plan.response
    };
    let pin_listing = pins.is_some() && filters::PinKind::listed_by(facts.method).is_some();
    if pin_listing {
        // Pins another worker wrote since: the first to pin a name wins.
        gate.pin_files.refresh(gate);
    }
    // The response phase reads only answers a response filter wants: all
    // others are relayed as they come, unparsed.
    // A pool's listings teach it its tools' schemas (`[tools]
    // validate_arguments`) and `x-mcp-header` declarations. A stdio pool
    // always learns the latter: its servers never see the `Mcp-Param-*`
    // headers, so mcpgate checks them for them. Only listings are parsed a
    // second time; other answers cost nothing more.
    let learning = (facts.method == "tools/list").then_some(pool).flatten();
    let stdio_listing = learning.is_some_and(|p| p.spawns_workers());
    let read_by_chain = stdio_listing || gate.responses.wants(&gate.policy, &facts);
    // `[content.limits]` caps hold an answer to one request; a stream
    // nobody asked for (a GET) has no request to answer with an error.
    // A long-lived stream (GET, `subscriptions/listen`: no deadline) is not
    // an answer to hold to a size; it stays free to be handed off.
    let long_lived = plan.deadline.is_none();
    let caps = match plan.request_id {
        Some(_) if !long_lived => gate
            .policy
            .content
            .limits
            .caps_for(facts.method, facts.target),
        _ => ResultCaps::default(),
    };
    // With `[content]` present every answer to a request goes through the
    // response phase, so that only its one answer reaches the client.
    let guarded = plan.request_id.is_some() && !long_lived && gate.policy.content.present;
    let mut judged = (!matches!(status, 204 | 304) && (read_by_chain || guarded)).then(|| {
        // A message no filter parses may be as large as its cap.
        let most = match caps.max_result_bytes {
            Some(_) if !read_by_chain => policies::MAX_RESULT_BYTES,
            _ => filters::response::stream::MAX_MESSAGE_BYTES,
        };
        MessageStream::new(is_sse, most, plan.request_id.clone()).with_caps(caps)
    });
    if judged.is_some() {
        // Messages may change length: the client hop is chunked.
        out.remove_header("content-length");
        let _ = out.insert_header("transfer-encoding", "chunked");
    }
    let mut judge = |bytes: &[u8]| {
        let judged = gate.responses.judge(&gate.policy, &facts, bytes);
        if let Some(pool) = learning {
            match &judged {
                Judged::Unchanged => learn_tools(gate, pool, &facts, bytes),
                Judged::Rewritten(sent) => learn_tools(gate, pool, &facts, sent),
                Judged::Replaced(_) => {}
            }
        }
        judged
    };
    let framed =
        out.headers.contains_key("content-length") || out.headers.contains_key("transfer-encoding");
    if !framed && !matches!(status, 204 | 304) {
        // An HTTP/2 upstream frames by END_STREAM: a head that ended the
        // stream has no body; anything else is relayed chunked.
        if up.response_done() {
            let _ = out.insert_header("content-length", "0");
        } else {
            let _ = out.insert_header("transfer-encoding", "chunked");
        }
    }
    let mut endpoint = if status >= 500 {
        Outcome::Failure
    } else {
        Outcome::Success
    };
    let hand_off = plan.may_hand_off && pending.is_none() && judged.is_none() && can_hold(&out, up);
    ds.set_write_timeout(Some(plan.slow_client_timeout));
    if let Err(e) = ds.write_response_header(out).await {
        tracing::debug!("writing response head downstream: {e}");
        return aborted(Outcome::Neutral, Some(Abandoned::ClientGone));
    }
    if hand_off {
        return RelayOutcome {
            handed_off: true,
            ..aborted(Outcome::Success, None)
        };
    }

    let mut watch = AnswerWatch::new(is_sse);
    // The answer reached the client's socket: a client that leaves after
    // it (an SSE client closes once it has its answer, before the stream's
    // last chunk) was answered, not abandoned.
    let mut answered = false;
    let note_answered = |answered: bool, watch: &AnswerWatch| {
        if let Some(e) = watch.ending.filter(|_| answered) {
            note_ending(e);
        }
    };
    let inspect = plan.request_id.is_some() && plan.deadline.is_some();
    let mut over_cap = None;
    let mut deadline = plan.deadline.map(|(per, _)| plan.started + per);
    let hard = plan.deadline.map(|(_, max)| plan.started + max);
    // A bodyless or already complete answer (202, Content-Length: 0) is done:
    // do not wait on the client at all.
    while !up.response_done() {
        let chunk = tokio::select! {
            // Upstream first: a client that already sent its next request
            // must not be taken for one that left while the answer is done.
            biased;
            chunk = up.read_response_body() => chunk,
            idle = ds.until_client_leaves() => {
                tracing::debug!("client went away mid-response: {:?}", idle.err());
                note_answered(answered, &watch);
                let resumable = is_sse && watch.saw_event_id;
                return aborted(Outcome::Neutral, (!resumable).then_some(Abandoned::ClientGone));
            }
            _ = sleep_until(deadline) => {
                gate.metrics.upstream_errors.with_label_values(&["deadline"]).inc();
                tracing::info!(id = ?plan.request_id, "request deadline reached; answering the client and cancelling upstream");
                if is_sse {
                    let _ = ds.write_response_body(timeout_event(plan.request_id.as_ref()), false).await;
                    let _ = ds.write_response_body(Bytes::new(), true).await;
                }
                return RelayOutcome {
                    task_id: watch.task_id,
                    ..aborted(Outcome::Failure, Some(Abandoned::Deadline))
                };
            }
        };
        match chunk {
            Ok(Some(data)) => {
                if let Some(p) = &mut pending {
                    if let Some(outcome) = p.watcher.feed(&data) {
                        create_session(gate, plan.tenant, &plan.pinned, p, outcome);
                    }
                }
                if inspect && watch.feed(&data, &plan) {
                    if let (Some(d), Some(hard), Some((per, _))) =
                        (&mut deadline, hard, plan.deadline)
                    {
                        *d = (Instant::now() + per).min(hard);
                    }
                }
                let data = match &mut judged {
                    None => data,
                    Some(stream) => {
                        let mut pass = Vec::new();
                        stream.feed(&data, &mut judge, &mut pass);
                        over_cap = stream.stats.over_cap;
                        Bytes::from(pass)
                    }
                };
                let written = if data.is_empty() {
                    Ok(())
                } else {
                    ds.write_response_body(data, false).await
                };
                if let Err(e) = written {
                    if e.etype() == &pingora::ErrorType::WriteTimedout {
                        gate.metrics.slow_clients.inc();
                        tracing::info!("client too slow to read the stream; closed");
                    } else {
                        tracing::debug!("writing response body downstream: {e}");
                    }
                    note_answered(answered, &watch);
                    return aborted(Outcome::Neutral, Some(Abandoned::ClientGone));
                }
                answered |= watch.ending.is_some();
                // A response framed by Content-Length is complete now: the
                // client may already be sending its next request, which the
                // idle watch below must not take for a disconnect.
                // An answer over its cap ends here: the client has its error.
                if up.response_done() || over_cap.is_some() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::info!("upstream failed mid-response: {e}");
                if is_sse {
                    let _ = ds
                        .write_response_body(failure_event(plan.request_id.as_ref()), false)
                        .await;
                    let _ = ds.write_response_body(Bytes::new(), true).await;
                }
                return aborted(Outcome::Failure, None);
            }
        }
    }
    if inspect {
        watch.finish(&plan);
        if watch.internal_error && plan.watch_internal_errors {
            endpoint = Outcome::Failure;
        }
        report_list_changed(gate, &plan, watch.list_changed);
    }
    if let Some(p) = pending.filter(|p| !p.settled) {
        gate.sessions.bury(&p.id);
    }
    if let Some(mut stream) = judged {
        let mut rest = Vec::new();
        stream.finish(&mut judge, &mut rest);
        count_judged(gate, &stream.stats);
        match over_cap {
            Some("after-answer") => tracing::info!(
                pool = %plan.pinned.pool,
                "content: the server went on after its answer, past a limits cap; the stream was cut"
            ),
            Some(rule) => report_over_cap(gate, &plan, rule, caps),
            None => {}
        }
        if let Some(pool) = pool.filter(|_| content_book.is_some()) {
            report_findings(gate, pool);
        }
        if let (true, Some(pool)) = (pin_listing, pool) {
            gate.pin_files.after_listing(gate, pool);
        }
        if !rest.is_empty()
            && ds
                .write_response_body(Bytes::from(rest), false)
                .await
                .is_err()
        {
            note_answered(answered, &watch);
            return aborted(Outcome::Neutral, Some(Abandoned::ClientGone));
        }
    }
    let downstream_ok = ds.write_response_body(Bytes::new(), true).await.is_ok();
    // A cap passed after the answer cut the stream: the request itself
    // was answered, and nobody upstream needs telling.
    let over_cap = over_cap.filter(|rule| *rule != "after-answer");
    note_ending(match over_cap {
        Some(_) => Ending::OverCap,
        None => watch.ending.unwrap_or(Ending::Relayed),
    });
    RelayOutcome {
        downstream_reusable: downstream_ok,
        upstream_reusable: up.response_done() && over_cap.is_none(),
        endpoint,
        abandoned: over_cap.map(|_| Abandoned::OverCap),
        task_id: watch.task_id,
        handed_off: false,
    }
}

/// Feeds the pool's schema catalog (with `validate_arguments`) and its
/// `x-mcp-header` declarations the `result.tools` of one message, when it
/// is the answer to this `tools/list`; logs what cannot be enforced.
fn learn_tools(gate: &McpGate, pool: &Pool, facts: &ResponseFacts<'_>, bytes: &[u8]) {
    let outputs = gate.policy.content.output_schema.enabled;
    let schemas = gate.policy.tools.validate_arguments;
    // A listing without declarations teaches nothing new unless some
    // tool's are known (it may list that tool without them now).
    let declarations =
        !pool.param_headers.is_empty() || memchr::memmem::find(bytes, b"x-mcp-header").is_some();
    if !schemas && !declarations && !outputs {
        return;
    }
    let Ok(msg) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    if !filters::response::answers(&msg, facts) {
        return;
    }
    let Some(tools) = msg.pointer("/result/tools").and_then(Value::as_array) else {
        return;
    };
    let pool_name = pool.config.name.as_str();
    if declarations && pool.param_headers.learn_listing(tools) > 0 {
        tracing::warn!(
            pool = pool_name,
            "tools: x-mcp-header declarations of some listed tools not learned: at most {} tools are kept (their Mcp-Param headers are not checked)",
            filters::param_headers::declarations::MAX_TOOLS
        );
    }
    if outputs {
        let learned = pool.output_schemas.learn_output_schemas(tools);
        for (tool, why) in &learned.uncompilable {
            tracing::warn!(
                pool = pool_name,
                "content: the outputSchema of tool {tool:?} cannot be compiled ({why}); its results are not checked"
            );
        }
    }
    if !schemas {
        return;
    }
    // A pinned tool's calls are checked against its pinned schema (which
    // the catalog learned from the pins), whatever is listed now.
    let unpinned: Vec<Value>;
    let tools = match &pool.pins {
        Some(book) if gate.policy.tools.pins_active() => {
            unpinned = tools
                .iter()
                .filter(|t| {
                    t.get("name")
                        .and_then(Value::as_str)
                        .is_none_or(|n| !book.is_pinned(filters::PinKind::Tool, n))
                })
                .cloned()
                .collect();
            &unpinned[..]
        }
        _ => &tools[..],
    };
    let learned = pool.schemas.learn_listing(tools);
    let effect = match gate.policy.tools.on_uncompilable {
        OnUncompilable::Skip => "not checked",
        OnUncompilable::Refuse => "refused",
    };
    for (tool, why) in &learned.uncompilable {
        tracing::warn!(
            pool = pool_name,
            "tools: the inputSchema of tool {tool:?} cannot be compiled ({why}); its calls are {effect}"
        );
    }
    if learned.over_capacity > 0 {
        tracing::warn!(
            pool = pool_name,
            "tools: {} listed tools not learned: the catalog holds at most {} (their calls are not checked)",
            learned.over_capacity,
            filters::tool_schema::catalog::MAX_TOOLS
        );
    }
    if learned.compiled > 0 {
        tracing::debug!(
            pool = pool_name,
            "tools: {} schemas compiled, {} unchanged",
            learned.compiled,
            learned.unchanged
        );
    }
}

/// Logs and counts what the content guards found in this pool's
/// listings since the last report.
pub(crate) fn report_findings(gate: &McpGate, pool: &Pool) {
    let (findings, dropped) = pool.content_book.take_events();
    let name = pool.config.name.as_str();
    for f in &findings {
        gate.metrics
            .content_findings
            .with_label_values(&[name, f.guard, f.rule, f.action])
            .inc();
        tracing::warn!(
            pool = name,
            rule = f.rule,
            action = f.action,
            "content: {} {:?}, {}: {} rule {} ({})",
            f.kind.noun(),
            f.name,
            f.field,
            f.guard,
            f.rule,
            f.action
        );
    }
    if dropped > 0 {
        tracing::warn!(
            pool = name,
            "content: {dropped} findings were not logged (more than {} waiting)",
            filters::content_book::MAX_EVENTS
        );
    }
}

/// Counts and logs an answer that passed a `[content.limits]` cap.
fn report_over_cap(gate: &McpGate, plan: &RelayPlan<'_>, rule: &'static str, caps: ResultCaps) {
    gate.metrics
        .content_findings
        .with_label_values(&[&plan.pinned.pool, "limits", rule, "block"])
        .inc();
    tracing::warn!(
        pool = %plan.pinned.pool,
        rule,
        action = "block",
        method = plan.response.method,
        target = plan.response.target.unwrap_or(""),
        id = ?plan.request_id,
        max_result_bytes = ?caps.max_result_bytes,
        max_stream_events = ?caps.max_stream_events,
        "content: the answer passed its limits rule {rule}; the client got an error and the request is cancelled upstream"
    );
}

/// Counts and logs a server's announcement that its catalogue changed. It
/// was relayed as sent; with pins, the next listing is compared with them
/// like every listing.
fn report_list_changed(gate: &McpGate, plan: &RelayPlan<'_>, seen: [bool; 2]) {
    for (kind, seen) in ["tool", "prompt"].into_iter().zip(seen) {
        if seen {
            gate.metrics
                .list_changed
                .with_label_values(&[&plan.pinned.pool, kind])
                .inc();
            tracing::info!(pool = %plan.pinned.pool, "server announced that its {kind} list changed");
        }
    }
}

/// Counts and logs what the response phase changed in one answer.
fn count_judged(gate: &McpGate, stats: &filters::StreamStats) {
    let m = &gate.metrics.response_messages;
    for (outcome, n) in [
        ("rewritten", stats.rewritten),
        ("replaced", stats.replaced),
        ("oversize", stats.oversize),
        ("unsolicited", stats.unsolicited),
    ] {
        if n > 0 {
            m.with_label_values(&[outcome]).inc_by(n);
        }
    }
    if stats.unsolicited > 0 {
        tracing::warn!(
            dropped = stats.unsolicited,
            rule = "unsolicited-response",
            "response phase dropped server responses to another request id, or second answers"
        );
    }
    if let Some((filter, rule, kind)) = stats.first_replaced {
        // What the client got in place of a server message was mcpgate's.
        note_replaced(kind, filter, rule);
        tracing::info!(
            filter,
            rule,
            replaced = stats.replaced,
            "response phase replaced a server message with an error"
        );
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn create_session(
    gate: &McpGate,
    tenant: &TenantName,
    at: &Pinned,
    p: &mut PendingSession,
    outcome: InitOutcome,
) {
    p.settled = true;
    let InitOutcome::Negotiated(version) = outcome else {
        // A failed initialize: its id must never be revived from its claims.
        gate.sessions.bury(&p.id);
        return;
    };
    match gate.sessions.insert(
        p.id.clone(),
        tenant.clone(),
        at.clone(),
        p.upstream_id.take(),
        version,
    ) {
        Ok(_) => gate.metrics.sessions.set(gate.sessions.len() as i64),
        Err(e) => tracing::warn!("session not created: {e:?}"),
    }
}
