//! The demo tools, shared by both protocol eras.
//!
//! A call is first turned into a [`ToolPlan`] (pure, no I/O); the era handler
//! then carries the plan out, because streaming (progress, sampling) looks
//! different in 2025-11-25 (resumable session streams, server-to-client
//! requests) and 2026-07-28 (per-request stream, multi-round-trip results).

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::jsonrpc::{RpcError, INVALID_PARAMS};

/// Largest `payload` text (bytes).
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;
/// Longest `payload` delay.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Most `progress` steps.
pub const MAX_STEPS: u64 = 1000;
/// Longest `progress` interval.
pub const MAX_INTERVAL_MS: u64 = 10_000;
/// How long `sample` waits for the client's answer.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variables `get-env` reveals.
const ENV_VARS: [&str; 6] = ["HOME", "USER", "PATH", "SHELL", "LANG", "HOSTNAME"];

/// What a `tools/call` will do.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolPlan {
    /// Answer right away with this `CallToolResult`.
    Done(Value),
    /// Sleep, then answer.
    Delayed { delay: Duration, result: Value },
    /// Emit progress (when a token was given) `steps` times, then answer.
    Progress { steps: u64, interval: Duration },
    /// Ask the client to sample `prompt`, then answer with its text.
    Sample { prompt: String },
}

/// The `tools/list` entries.
pub static TOOLS: LazyLock<Value> = LazyLock::new(|| {
    json!([
        {
            "name": "echo",
            "description": "Returns its `text` argument.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            "annotations": {"readOnlyHint": true}
        },
        {
            "name": "payload",
            "description": "Returns `size` bytes of text (default 4096) after sleeping `delay_ms` (default 0).",
            "inputSchema": {"type": "object", "properties": {
                "size": {"type": "integer", "minimum": 0, "maximum": MAX_PAYLOAD},
                "delay_ms": {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_MS}
            }},
            "annotations": {"readOnlyHint": true}
        },
        {
            "name": "progress",
            "description": "Sends `steps` progress notifications `interval_ms` apart when the request carries a progressToken, then returns.",
            "inputSchema": {"type": "object", "properties": {
                "steps": {"type": "integer", "minimum": 0, "maximum": MAX_STEPS},
                "interval_ms": {"type": "integer", "minimum": 0, "maximum": MAX_INTERVAL_MS}
            }},
            "annotations": {"readOnlyHint": true}
        },
        {
            "name": "sample",
            "description": "Asks the client to sample an LLM with `prompt` and returns the text.",
            "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}}
        },
        {
            "name": "get-env",
            "description": "Returns some of the server's environment variables (a deliberately dangerous tool).",
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": {"destructiveHint": false, "openWorldHint": true}
        }
    ])
});

/// A successful text `CallToolResult`.
pub fn text_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
}

/// A failed `CallToolResult` (tool execution error, seen by the model).
pub fn error_result(text: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": text.into()}], "isError": true})
}

/// Read an optional non-negative integer argument, bounded by `max`.
fn uint_arg(args: &Map<String, Value>, key: &str, default: u64, max: u64) -> Result<u64, Value> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(n),
            _ => Err(error_result(format!(
                "argument `{key}` must be an integer between 0 and {max}"
            ))),
        },
    }
}

/// Plan a `tools/call`. Unknown tools are a protocol error (-32602); bad
/// arguments are a tool execution error (`isError: true`).
pub fn plan(name: &str, args: &Map<String, Value>) -> Result<ToolPlan, RpcError> {
    let plan = match name {
        "echo" => match args.get("text") {
            Some(Value::String(text)) => ToolPlan::Done(text_result(text.clone())),
            _ => ToolPlan::Done(error_result("argument `text` must be a string")),
        },
        "payload" => {
            let size = uint_arg(args, "size", 4096, MAX_PAYLOAD);
            let delay = uint_arg(args, "delay_ms", 0, MAX_DELAY_MS);
            match (size, delay) {
                (Ok(size), Ok(0)) => ToolPlan::Done(text_result(payload_text(size))),
                (Ok(size), Ok(ms)) => ToolPlan::Delayed {
                    delay: Duration::from_millis(ms),
                    result: text_result(payload_text(size)),
                },
                (Err(e), _) | (_, Err(e)) => ToolPlan::Done(e),
            }
        }
        "progress" => {
            let steps = uint_arg(args, "steps", 5, MAX_STEPS);
            let interval = uint_arg(args, "interval_ms", 100, MAX_INTERVAL_MS);
            match (steps, interval) {
                (Ok(steps), Ok(ms)) => ToolPlan::Progress {
                    steps,
                    interval: Duration::from_millis(ms),
                },
                (Err(e), _) | (_, Err(e)) => ToolPlan::Done(e),
            }
        }
        "sample" => match args.get("prompt") {
            None | Some(Value::Null) => ToolPlan::Sample {
                prompt: "Say hello.".to_owned(),
            },
            Some(Value::String(p)) => ToolPlan::Sample { prompt: p.clone() },
            Some(_) => ToolPlan::Done(error_result("argument `prompt` must be a string")),
        },
        "get-env" => ToolPlan::Done(text_result(env_text())),
        other => {
            return Err(RpcError::ok(
                INVALID_PARAMS,
                format!("Unknown tool: {other}"),
            ))
        }
    };
    Ok(plan)
}

/// `size` bytes of plain ASCII (no JSON escaping needed).
fn payload_text(size: u64) -> String {
    const PATTERN: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
    let size = usize::try_from(size).unwrap_or(0);
    let mut s = PATTERN.repeat(size / PATTERN.len() + 1);
    s.truncate(size);
    s
}

/// The `get-env` text: a JSON object of a few variables.
fn env_text() -> String {
    let vars: Map<String, Value> = ENV_VARS
        .iter()
        .map(|k| {
            let v = std::env::var(k).map_or(Value::Null, Value::String);
            ((*k).to_owned(), v)
        })
        .collect();
    Value::Object(vars).to_string()
}

/// The params of one `notifications/progress`.
pub fn progress_params(token: &Value, step: u64, total: u64) -> Value {
    json!({
        "progressToken": token,
        "progress": step,
        "total": total,
        "message": format!("step {step}/{total}")
    })
}

/// The final `progress` result.
pub fn progress_done(steps: u64) -> Value {
    text_result(format!("progress done after {steps} steps"))
}

/// The `sampling/createMessage` params for a prompt.
pub fn sampling_params(prompt: &str) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": 100
    })
}

/// The tool result built from a client's `CreateMessageResult` (or error).
pub fn sample_outcome(response: &Value) -> Value {
    if let Some(err) = response.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error");
        return error_result(format!("sampling failed: {msg}"));
    }
    let content = response.get("result").and_then(|r| r.get("content"));
    let first = match content {
        Some(Value::Array(items)) => items.first(),
        other => other,
    };
    match first.and_then(|c| c.get("text")).and_then(Value::as_str) {
        Some(text) => text_result(text.to_owned()),
        None => error_result("sampling result had no text content"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn plans_tools() {
        let echo = plan("echo", &args(json!({"text": "hi"}))).unwrap();
        assert_eq!(echo, ToolPlan::Done(text_result("hi")));
        match plan("payload", &args(json!({"size": 10}))).unwrap() {
            ToolPlan::Done(v) => assert_eq!(v["content"][0]["text"], "abcdefghij"),
            other => panic!("{other:?}"),
        }
        match plan("payload", &args(json!({"size": -1}))).unwrap() {
            ToolPlan::Done(v) => assert_eq!(v["isError"], true),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan("payload", &args(json!({"delay_ms": 5}))).unwrap(),
            ToolPlan::Delayed { .. }
        ));
        assert!(plan("nope", &Map::new()).is_err());
    }

    #[test]
    fn sample_outcome_reads_text() {
        let ok =
            json!({"result": {"role": "assistant", "content": {"type": "text", "text": "yo"}}});
        assert_eq!(sample_outcome(&ok), text_result("yo"));
        let arr = json!({"result": {"content": [{"type": "text", "text": "a"}]}});
        assert_eq!(sample_outcome(&arr), text_result("a"));
        assert_eq!(
            sample_outcome(&json!({"error": {"message": "no"}}))["isError"],
            true
        );
    }
}
