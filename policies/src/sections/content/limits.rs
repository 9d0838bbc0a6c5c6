//! `[content.limits]`: how much a server may send in answer to one request.
//!
//! `max_result_bytes` bounds every message of an answer (its JSON body, or
//! each event of its stream, the result included); `max_stream_events`
//! bounds how many messages one answer's stream may carry. Both apply to
//! every request's answer but `initialize`'s, and `[content.limits.tools.NAME]`
//! sets either for the calls of one tool (what it leaves out is the
//! section's). Over a cap the client gets a JSON-RPC error for its request
//! and the server a cancellation. Absent: no cap beyond the response phase's
//! own 4 MiB per message it reads.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// The largest `max_result_bytes`: a JSON body is held whole until it ends
/// or passes its cap, so the cap is also memory per request.
pub const MAX_RESULT_BYTES: usize = 64 * 1024 * 1024;

/// Caps on one answer; `None` is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResultCaps {
    /// Largest message (JSON body, one SSE event) of the answer.
    pub max_result_bytes: Option<usize>,
    /// Most messages on the answer's SSE stream, the answer included.
    pub max_stream_events: Option<u64>,
}

impl ResultCaps {
    /// Whether either cap is set.
    pub fn any(&self) -> bool {
        self.max_result_bytes.is_some() || self.max_stream_events.is_some()
    }
}

/// The compiled `[content.limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LimitsPolicy {
    /// The section's caps, for every answer.
    pub global: ResultCaps,
    /// Caps of one tool's calls, over the section's.
    pub tools: BTreeMap<String, ResultCaps>,
}

impl LimitsPolicy {
    /// The caps on the answer to `method` (on `target`, a tool's name for
    /// `tools/call`).
    pub fn caps_for(&self, method: &str, target: Option<&str>) -> ResultCaps {
        if method == "initialize" {
            return ResultCaps::default();
        }
        let mut caps = self.global;
        if method == "tools/call" {
            if let Some(tool) = target.and_then(|t| self.tools.get(t)) {
                caps.max_result_bytes = tool.max_result_bytes.or(caps.max_result_bytes);
                caps.max_stream_events = tool.max_stream_events.or(caps.max_stream_events);
            }
        }
        caps
    }

    /// Whether any answer is capped.
    pub fn any(&self) -> bool {
        self.global.any() || self.tools.values().any(ResultCaps::any)
    }
}

fn read_caps(r: &mut Reader, t: &dyn TableLike, path: &str) -> ResultCaps {
    let mut opt = |key: &str, max: i64| {
        t.get(key)
            .is_some()
            .then(|| r.integer(t, key, path, 1, 1..=max))
    };
    ResultCaps {
        max_result_bytes: opt("max_result_bytes", MAX_RESULT_BYTES as i64).map(|n| n as usize),
        max_stream_events: opt("max_stream_events", 1 << 40).map(|n| n as u64),
    }
}

/// Reads `[content.limits]`.
pub(crate) fn read_limits(r: &mut Reader, t: &dyn TableLike) -> LimitsPolicy {
    const P: &str = "content.limits";
    r.deny_unknown(t, P, P);
    let global = read_caps(r, t, P);
    let mut tools = BTreeMap::new();
    let tools_path = join(P, "tools");
    if let Some(tt) = r.table(t, "tools", P) {
        for (name, _) in tt.iter() {
            let path = join(&tools_path, name);
            let Some(one) = r.table(tt, name, &tools_path) else {
                continue;
            };
            r.deny_unknown(one, &path, "content.limits.tools.*");
            tools.insert(name.to_string(), read_caps(r, one, &path));
        }
    }
    LimitsPolicy { global, tools }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{error_at, ok};

    #[test]
    fn absent_caps_nothing() {
        let p = ok("");
        assert!(!p.content.limits.any());
        assert!(!p.content.limits.caps_for("tools/call", Some("x")).any());
    }

    #[test]
    fn a_tool_overrides_what_it_sets() {
        let p = ok(
            "[content.limits]\nmax_result_bytes = 1000\nmax_stream_events = 50\n\
                    [content.limits.tools.export]\nmax_result_bytes = 8000\n\
                    [content.limits.tools.chatty]\nmax_stream_events = 5\n",
        );
        let l = &p.content.limits;
        assert_eq!(
            l.caps_for("tools/call", Some("export")),
            ResultCaps {
                max_result_bytes: Some(8000),
                max_stream_events: Some(50)
            }
        );
        assert_eq!(
            l.caps_for("tools/call", Some("chatty")).max_stream_events,
            Some(5)
        );
        // Tool tables are about tool calls; other methods get the section's.
        assert_eq!(
            l.caps_for("prompts/get", Some("export")).max_result_bytes,
            Some(1000)
        );
        assert!(!l.caps_for("initialize", None).any());
        // Only a tool table: other answers stay uncapped.
        let p = ok("[content.limits.tools.export]\nmax_result_bytes = 10\n");
        assert!(p.content.limits.any());
        assert!(!p.content.limits.caps_for("tools/list", None).any());
    }

    #[test]
    fn errors_name_line_and_key() {
        let (line, msg) = error_at(
            "[content.limits]\nmax_result_bytes = 0\n",
            "content.limits.max_result_bytes",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("out of range"), "{msg}");
        let (line, _) = error_at(
            "[content.limits]\nmax_result_bytes = 67108865\n",
            "content.limits.max_result_bytes",
        );
        assert_eq!(line, 4);
        let (line, _) = error_at(
            "[content.limits.tools.echo]\nmax_events = 3\n",
            "content.limits.tools.echo.max_events",
        );
        assert_eq!(line, 4);
    }
}
