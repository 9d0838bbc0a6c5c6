//! What one request's audit record says, gathered as the request goes.
//!
//! Every stage that learns something a record needs writes it into the
//! request's [`Note`]: the message phase (tenant, subject, session, method,
//! tool, request id, arguments), any refusal ([`note_refusal`], called
//! where refusals are counted and logged), and the relay (how the answer
//! ended). The note lives in a task-local slot for the length of one
//! request ([`noting`]), so stages report to it without every signature
//! between the accept loop and the refusal carrying it; outside that scope
//! (tests, `explain`) reporting does nothing. The same note feeds the
//! request's trace spans (`[traces]`).

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, SystemTime};

use filters::{Rejection, RequestId};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

tokio::task_local! {
    static NOTE: RefCell<Note>;
}

/// How an admitted request's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The answer was a result.
    Result,
    /// A result with `isError: true` (a tool's own failure).
    ToolError,
    /// A JSON-RPC error from the server.
    Error(i64),
    /// Relayed without being read (a stream handed on, a notification).
    Relayed,
    /// mcpgate gave up: the deadline passed.
    Deadline,
    /// The client left.
    ClientGone,
    /// The answer passed a `[content.limits]` cap.
    OverCap,
    /// The upstream failed before or during its answer.
    UpstreamFailed,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Self::Result => "result",
            Self::ToolError => "tool-error",
            Self::Error(_) => "error",
            Self::Relayed => "relayed",
            Self::Deadline => "deadline",
            Self::ClientGone => "client-gone",
            Self::OverCap => "over-cap",
            Self::UpstreamFailed => "upstream-failed",
        }
    }
}

/// What the stages learned about one request.
#[derive(Debug, Default)]
pub(crate) struct Note {
    pub tenant: Option<String>,
    pub subject: Option<String>,
    /// The session id the request named (recorded as a digest).
    pub session: Option<String>,
    /// The JSON-RPC method (or `batch`).
    pub method: Option<String>,
    /// The tool, prompt or resource a request names.
    pub target: Option<String>,
    pub request_id: Option<RequestId>,
    /// The SHA-256 (hex) of the `tools/call` arguments as sent on.
    pub arguments_sha256: Option<String>,
    /// The arguments themselves (`[audit] arguments = "values"`).
    pub arguments: Option<Value>,
    /// The refusal the client got: kind, filter, rule, JSON-RPC code.
    pub refusal: Option<(String, &'static str, &'static str, i32)>,
    pub ending: Option<Ending>,
    /// The request was handed to the worker owning its session, which
    /// writes its record.
    pub handed_over: bool,
    /// The protocol revision the request spoke (`MCP-Protocol-Version`, or
    /// its `_meta`), for traces.
    pub protocol_version: Option<String>,
    /// Its trace context (`[traces]`), fixed when the message was read.
    pub trace: Option<crate::ops::traces::TraceIds>,
    /// When its stages ran (`[traces]`).
    pub timings: crate::ops::traces::Timings,
}

/// Runs one request's handling with a fresh note; returns its output and
/// what was noted.
pub(crate) async fn noting<F: Future>(fut: F) -> (F::Output, Note) {
    NOTE.scope(RefCell::new(Note::default()), async move {
        let out = fut.await;
        let note = NOTE.with(|n| std::mem::take(&mut *n.borrow_mut()));
        (out, note)
    })
    .await
}

/// Adds to the current request's note (nothing outside [`noting`]).
pub(crate) fn note(f: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| f(&mut n.borrow_mut()));
}

/// Notes the refusal the client gets (the first one, if several).
pub(crate) fn note_refusal(r: &Rejection) {
    let wire = r.kind.wire();
    note(|n| {
        n.refusal.get_or_insert((
            format!("{:?}", r.kind),
            if r.filter.is_empty() {
                "proxy"
            } else {
                r.filter
            },
            r.rule,
            wire.code,
        ));
        if n.request_id.is_none() {
            n.request_id = r.id.clone();
        }
    });
}

/// Notes that the response phase sent the client an error of `kind` in
/// place of a server message (a blocked secret, a broken contract, an
/// answer to another id, a message too large): the record says refused.
pub(crate) fn note_replaced(
    kind: filters::RejectionKind,
    filter: &'static str,
    rule: &'static str,
) {
    note(|n| {
        n.refusal
            .get_or_insert((format!("{kind:?}"), filter, rule, kind.wire().code));
    });
}

/// Notes how the answer ended (the first word stands).
pub(crate) fn note_ending(e: Ending) {
    note(|n| {
        n.ending.get_or_insert(e);
    });
}

/// Who wrote a record.
pub(crate) struct Writer<'a> {
    pub instance: &'a str,
    pub worker: usize,
    /// Record `tools/call` arguments themselves, not only their digest.
    pub argument_values: bool,
}

/// The record of one request (without `seq` and `prev`, which the chain
/// adds): `http_method` and `status` of the exchange, `elapsed` since its
/// head arrived.
pub(crate) fn record(
    note: &Note,
    by: &Writer<'_>,
    http_method: &str,
    status: Option<u16>,
    elapsed: Duration,
    now: SystemTime,
) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("time", Value::from(utc_rfc3339(now)));
    put("instance", Value::from(by.instance));
    put("worker", Value::from(by.worker));
    // Refused: mcpgate answered in its own name (a filter, a cap, an
    // unreachable upstream); admitted: the server's answer was relayed.
    put(
        "decision",
        Value::from(if note.refusal.is_some() {
            "refused"
        } else {
            "admitted"
        }),
    );
    put("tenant", opt(&note.tenant));
    put("subject", opt(&note.subject));
    put(
        "session",
        note.session
            .as_deref()
            .map_or(Value::Null, |s| Value::from(session_digest(s))),
    );
    put(
        "method",
        Value::from(note.method.as_deref().unwrap_or(http_method)),
    );
    put("tool", opt(&note.target));
    put(
        "id",
        note.request_id
            .as_ref()
            .map_or(Value::Null, RequestId::to_json),
    );
    put("status", status.map_or(Value::Null, Value::from));
    match &note.refusal {
        Some((kind, filter, rule, code)) => {
            put("kind", Value::from(kind.as_str()));
            put("filter", Value::from(*filter));
            put("rule", Value::from(*rule));
            put("code", Value::from(*code));
        }
        None => {
            let ending = note.ending.unwrap_or(Ending::Relayed);
            put("outcome", Value::from(ending.label()));
            if let Ending::Error(code) = ending {
                put("code", Value::from(code));
            }
        }
    }
    put(
        "duration_ms",
        Value::from((elapsed.as_secs_f64() * 1e6).round() / 1e3),
    );
    if let Some(digest) = &note.arguments_sha256 {
        put("args_sha256", Value::from(digest.as_str()));
    }
    if let (true, Some(args)) = (by.argument_values, &note.arguments) {
        put("arguments", args.clone());
    }
    m
}

/// The SHA-256 (hex) of arguments as JSON (serialized into the hash, not
/// into a buffer).
pub(crate) fn arguments_digest(args: &Value) -> String {
    let mut hash = Sha256::new();
    let _ = serde_json::to_writer(&mut hash, args);
    hex::encode(hash.finalize())
}

fn opt(v: &Option<String>) -> Value {
    v.as_deref().map_or(Value::Null, Value::from)
}

/// The first 16 hex digits of the SHA-256 of a session id: enough to tell
/// sessions apart in the trail without the trail holding the ids.
pub(crate) fn session_digest(id: &str) -> String {
    hex::encode(&Sha256::digest(id.as_bytes())[..8])
}

/// `2026-11-30T10:40:00.123456789Z`.
pub(crate) fn utc_rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `20261130T104000.123456Z`: a name part that sorts in time order.
pub(crate) fn utc_compact(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.microsecond()
    )
}
