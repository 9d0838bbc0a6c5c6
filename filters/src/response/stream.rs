//! The response phase on the wire: cuts an answer into messages (one JSON
//! body, or SSE events as they complete), has each judged, and yields the
//! bytes to send in their place. Holds at most one message of at most
//! `max_message_bytes`; a larger one is replaced by a
//! [`RejectionKind::ResponseTooLarge`] error and counted.
//!
//! Only the answer to the request is let through: a response (a `result`
//! or an `error`) to another id, or a second one to the request's id, is
//! dropped from an SSE stream and counted (`unsolicited`); as the whole of
//! a JSON body it is replaced by [`RejectionKind::UnsolicitedResponse`]
//! with the request's id, so the client still gets its answer. Requests
//! and notifications a server sends on the stream pass. A batch (no single
//! request id) is not checked.
//!
//! With `[content.limits]` caps ([`MessageStream::with_caps`]) a message
//! over `max_result_bytes`, or one past `max_stream_events`, ends the
//! answer: a [`RejectionKind::ResultOverCap`] error with the request's id
//! goes out in its place, nothing after it does, and
//! [`StreamStats::over_cap`] tells the proxy to cancel the request upstream.

use policies::ResultCaps;

use crate::message::RequestId;
use crate::rejection::{Rejection, RejectionKind};
use crate::sse::{write_event, Framed, SseFramer, SseParser};

use super::Judged;

/// Largest server message (JSON body, SSE event) the response phase reads
/// to judge it; a larger one is replaced by an error. The phase holds at
/// most one.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// What happened to the messages of one answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// Messages judged.
    pub messages: u64,
    /// Messages a filter rewrote.
    pub rewritten: u64,
    /// Messages replaced by an error, with the rule of the first.
    pub replaced: u64,
    /// `(filter, rule, kind)` of the first replacement.
    pub first_replaced: Option<(&'static str, &'static str, RejectionKind)>,
    /// Messages over the size limit (also counted in `replaced`).
    pub oversize: u64,
    /// Responses to another id, or second answers, dropped (or, as a JSON
    /// body, replaced).
    pub unsolicited: u64,
    /// The rule of the cap that ended the answer (`result-too-large`,
    /// `too-many-events`); nothing was relayed after its error. A cap
    /// passed after the request's answer went by cuts the stream without
    /// an error: `after-answer`.
    pub over_cap: Option<&'static str>,
}

enum Mode {
    Json { buf: Vec<u8>, over: bool },
    Sse(SseFramer),
}

/// One answer's messages on their way through the response phase.
pub struct MessageStream {
    mode: Mode,
    max_message_bytes: usize,
    request_id: Option<RequestId>,
    /// The request's answer has gone by.
    answered: bool,
    /// `max_message_bytes` is a `max_result_bytes` cap: over it ends the
    /// answer.
    bytes_capped: bool,
    max_events: Option<u64>,
    pub stats: StreamStats,
}

/// Just enough of a message to tell an answer from the rest.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    id: Option<serde_json::Value>,
    method: Option<serde::de::IgnoredAny>,
    result: Option<serde::de::IgnoredAny>,
    error: Option<serde::de::IgnoredAny>,
}

impl MessageStream {
    /// An answer that is an SSE stream (`is_sse`) or one JSON body, to the
    /// request `request_id` (the id of the errors that replace a message).
    pub fn new(is_sse: bool, max_message_bytes: usize, request_id: Option<RequestId>) -> Self {
        let mode = if is_sse {
            Mode::Sse(SseFramer::new(max_message_bytes))
        } else {
            Mode::Json {
                buf: Vec::new(),
                over: false,
            }
        };
        Self {
            mode,
            max_message_bytes,
            request_id,
            answered: false,
            bytes_capped: false,
            max_events: None,
            stats: StreamStats::default(),
        }
    }

    /// Holds the answer to `[content.limits]` caps: a `max_result_bytes`
    /// under `max_message_bytes` takes its place.
    pub fn with_caps(mut self, caps: ResultCaps) -> Self {
        if let Some(cap) = caps
            .max_result_bytes
            .filter(|c| *c <= self.max_message_bytes)
        {
            self.max_message_bytes = cap;
            self.bytes_capped = true;
            if let Mode::Sse(_) = self.mode {
                self.mode = Mode::Sse(SseFramer::new(cap));
            }
        }
        self.max_events = caps.max_stream_events;
        self
    }

    /// Whether `bytes` is a response the client did not ask for: another
    /// id's, or a second answer to its own. Marks the first answer.
    fn unsolicited(&mut self, bytes: &[u8]) -> bool {
        let Some(want) = &self.request_id else {
            return false;
        };
        let Ok(p) = serde_json::from_slice::<Probe>(bytes) else {
            return false;
        };
        if p.method.is_some() || (p.result.is_none() && p.error.is_none()) {
            return false;
        }
        let id = p.id.as_ref().and_then(RequestId::from_json);
        if id.as_ref() == Some(want) && !self.answered {
            self.answered = true;
            return false;
        }
        self.stats.unsolicited += 1;
        true
    }

    /// Feeds a body chunk; appends what may be sent now to `out`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        judge: &mut impl FnMut(&[u8]) -> Judged,
        out: &mut Vec<u8>,
    ) {
        if self.stats.over_cap.is_some() {
            return;
        }
        match &mut self.mode {
            Mode::Json { buf, over } => {
                if *over || buf.len() + chunk.len() > self.max_message_bytes {
                    *over = true;
                    *buf = Vec::new();
                    if self.bytes_capped {
                        self.cap_reached(false, out);
                    }
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
            Mode::Sse(framer) => {
                let mut framed = Vec::new();
                framer.feed(chunk, |f| framed.push(f));
                for f in framed {
                    self.event(f, judge, out);
                }
            }
        }
    }

    /// At the end of the body: appends the rest to `out`.
    pub fn finish(&mut self, judge: &mut impl FnMut(&[u8]) -> Judged, out: &mut Vec<u8>) {
        if self.stats.over_cap.is_some() {
            return;
        }
        match &mut self.mode {
            Mode::Json { buf, over } => {
                if *over {
                    self.stats.oversize += 1;
                    let r = self.too_large();
                    out.extend_from_slice(&r.json_body());
                    return;
                }
                let body = std::mem::take(buf);
                if body.is_empty() {
                    return;
                }
                self.stats.messages += 1;
                if self.unsolicited(&body) {
                    let mut r = Rejection::new(
                        RejectionKind::UnsolicitedResponse,
                        "the server's answer carries another id",
                    );
                    r.filter = "response";
                    r.id = self.request_id.clone();
                    self.count_replaced(&r);
                    out.extend_from_slice(&r.json_body());
                    return;
                }
                match judge(&body) {
                    Judged::Unchanged => out.extend_from_slice(&body),
                    Judged::Rewritten(b) => {
                        self.stats.rewritten += 1;
                        out.extend_from_slice(&b);
                    }
                    Judged::Replaced(r) => {
                        self.count_replaced(&r);
                        out.extend_from_slice(&r.json_body());
                    }
                }
            }
            Mode::Sse(framer) => {
                let mut framed = Vec::new();
                let rest = framer.finish(|f| framed.push(f));
                for f in framed {
                    self.event(f, judge, out);
                }
                // An unterminated last event goes out as it came.
                if let Some(rest) = rest {
                    out.extend_from_slice(&rest);
                }
            }
        }
    }

    fn event(&mut self, f: Framed, judge: &mut impl FnMut(&[u8]) -> Judged, out: &mut Vec<u8>) {
        if self.stats.over_cap.is_some() {
            return;
        }
        let raw = match f {
            Framed::Event(raw) => raw,
            Framed::Oversize if self.bytes_capped => {
                self.cap_reached(true, out);
                return;
            }
            Framed::Oversize => {
                self.stats.oversize += 1;
                let r = self.too_large();
                out.extend_from_slice(&write_event(Some("message"), None, &r.json_body()));
                return;
            }
        };
        let mut parsed = None;
        SseParser::new(self.max_message_bytes).feed(&raw, |ev| parsed = Some(ev));
        let Some(ev) = parsed.filter(|ev| !ev.data.is_empty()) else {
            out.extend_from_slice(&raw); // comments, keep-alives, bare ids
            return;
        };
        if self
            .max_events
            .is_some_and(|max| self.stats.messages >= max)
        {
            self.cap_reached(true, out);
            return;
        }
        self.stats.messages += 1;
        if self.unsolicited(ev.data.as_bytes()) {
            return;
        }
        let data = match judge(ev.data.as_bytes()) {
            Judged::Unchanged => {
                out.extend_from_slice(&raw);
                return;
            }
            Judged::Rewritten(b) => {
                self.stats.rewritten += 1;
                b
            }
            Judged::Replaced(r) => {
                self.count_replaced(&r);
                r.json_body()
            }
        };
        out.extend_from_slice(&write_event(ev.event.as_deref(), ev.id.as_deref(), &data));
    }

    fn too_large(&mut self) -> Rejection {
        let mut r = Rejection::new(
            RejectionKind::ResponseTooLarge,
            format!("a server message over {} bytes", self.max_message_bytes),
        );
        r.filter = "response";
        r.id = self.request_id.clone();
        self.count_replaced(&r);
        r
    }

    /// Ends the answer with the error of the cap it passed: the message
    /// was over `max_result_bytes` or, on a stream, past
    /// `max_stream_events`.
    fn cap_reached(&mut self, sse: bool, out: &mut Vec<u8>) {
        if self.answered {
            // The request has its answer: what the server sends after it
            // is cut, and nobody is told of an error.
            self.stats.over_cap = Some("after-answer");
            return;
        }
        let (rule, cap, limit, what) = match self.max_events {
            Some(max) if sse && self.stats.messages >= max => (
                "too-many-events",
                "max_stream_events",
                max,
                format!("more than {max} messages on the answer's stream"),
            ),
            _ => (
                "result-too-large",
                "max_result_bytes",
                self.max_message_bytes as u64,
                format!("a server message over {} bytes", self.max_message_bytes),
            ),
        };
        let mut r = Rejection::new(RejectionKind::ResultOverCap, what)
            .with_rule(rule)
            .with_data(serde_json::json!({ "cap": cap, "limit": limit }));
        r.filter = "limits";
        r.id = self.request_id.clone();
        self.count_replaced(&r);
        self.stats.over_cap = Some(rule);
        if sse {
            out.extend_from_slice(&write_event(Some("message"), None, &r.json_body()));
        } else {
            out.extend_from_slice(&r.json_body());
        }
    }

    fn count_replaced(&mut self, r: &Rejection) {
        self.stats.replaced += 1;
        self.stats
            .first_replaced
            .get_or_insert((r.filter, r.rule, r.kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(bytes: &[u8]) -> Judged {
        if bytes.starts_with(b"{\"keep\"") {
            Judged::Unchanged
        } else if bytes.starts_with(b"{\"bad\"") {
            Judged::Replaced(Rejection::new(RejectionKind::UnknownTarget, "x"))
        } else {
            Judged::Rewritten(bytes.to_ascii_uppercase())
        }
    }

    fn run(is_sse: bool, max: usize, chunks: &[&[u8]]) -> (Vec<u8>, StreamStats) {
        let mut s = MessageStream::new(is_sse, max, Some(RequestId::Number(5.into())));
        let mut out = Vec::new();
        let mut judge = upper;
        for c in chunks {
            s.feed(c, &mut judge, &mut out);
        }
        s.finish(&mut judge, &mut out);
        (out, s.stats)
    }

    #[test]
    fn only_the_requests_one_answer_goes_through() {
        // SSE: another id's answer and a second answer are dropped;
        // server requests and notifications pass.
        let stream: &[u8] =
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"sampling/createMessage\"}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":1}}\n\n";
        let mut s = MessageStream::new(true, 1024, Some(RequestId::Number(5.into())));
        let mut out = Vec::new();
        let mut keep = |_: &[u8]| Judged::Unchanged;
        s.feed(stream, &mut keep, &mut out);
        s.finish(&mut keep, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("notifications/progress") && text.contains("sampling/createMessage"));
        assert!(
            !text.contains("\"id\":9") && !text.contains("\"error\""),
            "{text}"
        );
        assert_eq!(text.matches("\"id\":5").count(), 1);
        assert_eq!(s.stats.unsolicited, 2);
        // A JSON body answering another id becomes an error with ours.
        let mut s = MessageStream::new(false, 1024, Some(RequestId::Number(5.into())));
        let mut out = Vec::new();
        s.feed(
            b"{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}",
            &mut keep,
            &mut out,
        );
        s.finish(&mut keep, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["error"]["data"]["rule"].as_str()),
            (Some(5), Some("unsolicited-response"))
        );
        // Without a single request id (a batch) nothing is checked.
        let mut s = MessageStream::new(true, 1024, None);
        let mut out = Vec::new();
        s.feed(stream, &mut keep, &mut out);
        assert_eq!(s.stats.unsolicited, 0);
    }

    fn capped(is_sse: bool, caps: ResultCaps, chunks: &[&[u8]]) -> (String, StreamStats, usize) {
        let mut s =
            MessageStream::new(is_sse, 1024, Some(RequestId::Number(5.into()))).with_caps(caps);
        let mut out = Vec::new();
        let mut judge = |_: &[u8]| Judged::Unchanged;
        let mut fed_after_cap = 0;
        for c in chunks {
            if s.stats.over_cap.is_some() {
                fed_after_cap += 1;
            }
            s.feed(c, &mut judge, &mut out);
        }
        s.finish(&mut judge, &mut out);
        (String::from_utf8(out).unwrap(), s.stats, fed_after_cap)
    }

    fn error_of(text: &str) -> serde_json::Value {
        let last = text.trim_end().rsplit("data: ").next().unwrap();
        serde_json::from_str(last).unwrap()
    }

    #[test]
    fn a_result_over_its_cap_ends_the_answer_with_an_error() {
        let caps = ResultCaps {
            max_result_bytes: Some(24),
            max_stream_events: None,
        };
        // A JSON body: the error as soon as the cap is passed.
        let (out, stats, after) = capped(
            false,
            caps,
            &[b"{\"id\":5,\"res", b"ult\":{\"x\":1}}", b"more"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (5.into(), (-32603).into())
        );
        assert_eq!(v["error"]["data"]["rule"], "result-too-large");
        assert_eq!(v["error"]["data"]["cap"], "max_result_bytes");
        assert_eq!(v["error"]["data"]["limit"], 24);
        assert_eq!((stats.over_cap, after), (Some("result-too-large"), 1));
        // Under the cap nothing changes.
        let (out, stats, _) = capped(false, caps, &[b"{\"id\":5,\"result\":1}"]);
        assert_eq!(
            (out.as_str(), stats.over_cap),
            ("{\"id\":5,\"result\":1}", None)
        );
        // A stream: events before pass, the big one becomes the error, and
        // nothing after it is sent.
        let big = format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(40));
        let (out, stats, _) = capped(
            true,
            caps,
            &[
                b"data: {\"a\":1}\n\n",
                big.as_bytes(),
                b"data: {\"b\":2}\n\n",
            ],
        );
        assert!(
            out.starts_with("data: {\"a\":1}\n\nevent: message\ndata: "),
            "{out}"
        );
        assert!(!out.contains("\"b\""), "{out}");
        assert_eq!(error_of(&out)["error"]["data"]["rule"], "result-too-large");
        assert_eq!(stats.over_cap, Some("result-too-large"));
    }

    #[test]
    fn a_stream_past_its_event_cap_ends_with_an_error() {
        let caps = ResultCaps {
            max_result_bytes: None,
            max_stream_events: Some(2),
        };
        let (out, stats, after) = capped(
            true,
            caps,
            &[
                b": keep-alive\n\ndata: {\"p\":1}\n\n",
                b"data: {\"p\":2}\n\ndata: {\"p\":3}\n\n",
                b"data: {\"p\":4}\n\n",
            ],
        );
        assert!(out.contains("\"p\":2") && !out.contains("\"p\":3"), "{out}");
        let v = error_of(&out);
        assert_eq!(v["id"], 5);
        assert_eq!(v["error"]["data"]["rule"], "too-many-events");
        assert_eq!(v["error"]["data"]["limit"], 2);
        assert_eq!(
            (stats.messages, stats.over_cap, after),
            (2, Some("too-many-events"), 1)
        );
        // Past the cap after the request's answer: the stream is cut, with
        // no second answer.
        let (out, stats, _) = capped(
            true,
            caps,
            &[b"data: {\"p\":1}\n\ndata: {\"id\":5,\"result\":{}}\n\ndata: {\"p\":3}\n\n"],
        );
        assert_eq!(out.matches("\"id\":5").count(), 1, "{out}");
        assert!(!out.contains("error") && !out.contains("\"p\":3"), "{out}");
        assert_eq!(stats.over_cap, Some("after-answer"));
        // A JSON body is one message: the event cap does not apply.
        let (out, stats, _) = capped(false, caps, &[b"{\"id\":5,\"result\":1}"]);
        assert_eq!((out.len(), stats.over_cap), (19, None));
        // A cap above the phase's own limit leaves that limit in place (an
        // oversized message is replaced and the stream goes on).
        let caps = ResultCaps {
            max_result_bytes: Some(4096),
            max_stream_events: None,
        };
        let big = format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(2000));
        let (out, stats, _) = capped(true, caps, &[big.as_bytes(), b"data: {\"keep\":1}\n\n"]);
        assert!(out.ends_with("data: {\"keep\":1}\n\n"), "{out}");
        assert_eq!((stats.oversize, stats.over_cap), (1, None));
    }

    #[test]
    fn a_json_body_is_judged_once_whole() {
        let (out, stats) = run(false, 64, &[b"{\"a\":", b"\"b\"}"]);
        assert_eq!(out, b"{\"A\":\"B\"}");
        assert_eq!((stats.messages, stats.rewritten), (1, 1));
        let (out, _) = run(false, 64, &[b"{\"keep\":1}"]);
        assert_eq!(out, b"{\"keep\":1}");
    }

    #[test]
    fn an_oversized_json_body_becomes_an_error_with_the_request_id() {
        let (out, stats) = run(false, 8, &[b"{\"a\":\"0123", b"456789\"}"]);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 5);
        assert_eq!(v["error"]["code"], -32603);
        assert_eq!(v["error"]["data"]["rule"], "response-too-large");
        assert_eq!((stats.oversize, stats.replaced), (1, 1));
    }

    #[test]
    fn sse_events_are_judged_one_by_one_and_keep_their_fields() {
        let (out, stats) = run(
            true,
            256,
            &[
                b"id: 1\ndata: \n\n: ping\n\nevent: message\nid: 2\ndata: {\"keep\":1}\r\n\r\n",
                b"event: message\nid: 3\nda",
                b"ta: {\"x\":1}\n\ndata: {\"bad\":1}\n\n",
            ],
        );
        let text = String::from_utf8(out).unwrap();
        let (kept, replaced) = text.rsplit_once("data: ").unwrap();
        assert_eq!(
            kept,
            "id: 1\ndata: \n\n: ping\n\nevent: message\nid: 2\ndata: {\"keep\":1}\r\n\r\n\
             event: message\nid: 3\ndata: {\"X\":1}\n\n"
        );
        let v: serde_json::Value = serde_json::from_str(replaced.trim_end()).unwrap();
        assert_eq!(v["error"]["data"]["rule"], "access-denied");
        assert!(replaced.ends_with("}\n\n"));
        assert_eq!((stats.messages, stats.rewritten, stats.replaced), (3, 1, 1));
    }

    #[test]
    fn an_oversized_event_is_replaced_and_the_stream_goes_on() {
        let big = format!("data: {{\"x\":\"{}\"}}\n\n", "y".repeat(300));
        let (out, stats) = run(true, 64, &[big.as_bytes(), b"data: {\"keep\":1}\n\n"]);
        let text = String::from_utf8(out).unwrap();
        let first = text.split("\n\n").next().unwrap();
        let v: serde_json::Value =
            serde_json::from_str(first.strip_prefix("event: message\ndata: ").unwrap()).unwrap();
        assert_eq!(
            (v["id"].clone(), v["error"]["code"].clone()),
            (5.into(), (-32603).into())
        );
        assert!(text.ends_with("data: {\"keep\":1}\n\n"), "{text}");
        assert_eq!(stats.oversize, 1);
    }
}
