//! The 2026-07-28 stateless Streamable HTTP server.
//!
//! Each request stands alone: it is validated (version in header and `_meta`,
//! client capabilities, `Mcp-Method` / `Mcp-Name` mirroring the body), then
//! answered. Results carry `resultType`; list results carry caching hints.
//! A response stream lives only as long as its request: closing it cancels.
//! Sampling uses multi-round-trip results instead of server-to-client requests.

use std::collections::VecDeque;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::Response;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::catalog;
use super::http::{Ctx, LEGACY_VERSIONS, META_CAPABILITIES, META_VERSION, MODERN_VERSION};
use super::jsonrpc::{
    notification, result, Message, RpcError, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST,
    METHOD_NOT_FOUND, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_VERSION,
};
use super::reply;
use super::sse;
use super::subscriptions;
use super::tools::{self, ToolPlan, TOOLS};

/// Cache lifetime advertised on list, read and discover results.
const TTL_MS: u64 = 60_000;
/// Largest `Mcp-Name` header accepted before decoding.
const MAX_NAME_HEADER: usize = 8 * 1024;

/// Handle one POSTed message in the modern era.
pub async fn post(ctx: Ctx, msg: Message<'_>) -> Response<Body> {
    match msg {
        Message::Notification { .. } => reply::accepted(),
        Message::Response { id, .. } => {
            let err = RpcError::http(
                400,
                INVALID_REQUEST,
                "clients must not POST responses in 2026-07-28",
            );
            reply::rpc_error(&err, Some(id))
        }
        Message::Request { id, method, params } => match validate(&ctx, method, params) {
            Ok(()) => dispatch(ctx, id, method, params).await,
            Err(err) => reply::rpc_error(&err, Some(id)),
        },
    }
}

/// All supported versions, modern first (for -32022 and discover).
fn supported_versions() -> Value {
    let mut v = vec![MODERN_VERSION];
    v.extend(LEGACY_VERSIONS);
    json!(v)
}

fn unsupported(requested: &str) -> RpcError {
    RpcError::http(400, UNSUPPORTED_VERSION, "Unsupported protocol version")
        .with_data(json!({"supported": supported_versions(), "requested": requested}))
}

/// The transport-level checks every modern request must pass.
fn validate(ctx: &Ctx, method: &str, params: Option<&Map<String, Value>>) -> Result<(), RpcError> {
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let Some(header) = ctx.header("mcp-protocol-version") else {
        return Err(RpcError::http(
            400,
            HEADER_MISMATCH,
            "Header mismatch: MCP-Protocol-Version header is required",
        ));
    };
    let Some(body_version) = meta.and_then(|m| m.get(META_VERSION)) else {
        if header != MODERN_VERSION {
            return Err(unsupported(header));
        }
        return Err(RpcError::http(
            400,
            INVALID_PARAMS,
            format!("params._meta[\"{META_VERSION}\"] is required"),
        ));
    };
    let Some(body_version) = body_version.as_str() else {
        return Err(RpcError::http(
            400,
            INVALID_PARAMS,
            format!("params._meta[\"{META_VERSION}\"] must be a string"),
        ));
    };
    if header != body_version {
        return Err(RpcError::http(
            400,
            HEADER_MISMATCH,
            format!("Header mismatch: MCP-Protocol-Version header '{header}' does not match body value '{body_version}'"),
        ));
    }
    if body_version != MODERN_VERSION {
        return Err(unsupported(body_version));
    }
    if !meta
        .and_then(|m| m.get(META_CAPABILITIES))
        .is_some_and(Value::is_object)
    {
        return Err(RpcError::http(
            400,
            INVALID_PARAMS,
            format!("params._meta[\"{META_CAPABILITIES}\"] is required"),
        ));
    }
    if ctx.app.config.lax_headers {
        return Ok(());
    }
    match ctx.header("mcp-method") {
        None => {
            return Err(RpcError::http(
                400,
                HEADER_MISMATCH,
                "Header mismatch: Mcp-Method header is required",
            ))
        }
        Some(m) if m != method => {
            return Err(RpcError::http(
                400,
                HEADER_MISMATCH,
                format!(
                    "Header mismatch: Mcp-Method header '{m}' does not match body value '{method}'"
                ),
            ))
        }
        Some(_) => {}
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let Some(expected) = params
        .and_then(|p| p.get(name_field))
        .and_then(Value::as_str)
    else {
        return Ok(()); // the handler answers -32602 for the missing field
    };
    let header = match ctx.headers.get("mcp-name") {
        None => {
            return Err(RpcError::http(
                400,
                HEADER_MISMATCH,
                "Header mismatch: Mcp-Name header is required",
            ))
        }
        Some(v) => decode_header(v.as_bytes()).ok_or_else(|| {
            RpcError::http(
                400,
                HEADER_MISMATCH,
                "Header mismatch: Mcp-Name header is malformed",
            )
        })?,
    };
    if header != expected {
        return Err(RpcError::http(
            400,
            HEADER_MISMATCH,
            format!("Header mismatch: Mcp-Name header '{header}' does not match body value '{expected}'"),
        ));
    }
    Ok(())
}

/// Decode a mirrored header value: trimmed, visible ASCII, or the
/// `=?base64?...?=` sentinel form carrying UTF-8.
pub fn decode_header(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_NAME_HEADER {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if !text
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
    {
        return None;
    }
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = STANDARD
                .decode(b64)
                .or_else(|_| STANDARD_NO_PAD.decode(b64))
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(text.to_owned()),
    }
}

/// Mark a result complete.
fn complete(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.entry("resultType").or_insert_with(|| json!("complete"));
    }
    v
}

/// Mark a result complete and cacheable by anyone for [`TTL_MS`].
fn cacheable(v: Value) -> Value {
    let mut v = complete(v);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ttlMs".into(), json!(TTL_MS));
        obj.insert("cacheScope".into(), json!("public"));
    }
    v
}

fn discover() -> Value {
    cacheable(json!({
        "supportedVersions": supported_versions(),
        "capabilities": {
            "tools": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "prompts": {"listChanged": true}
        },
        "instructions": "Demo upstream for mcpgate: tools echo, payload, progress, sample, get-env.",
        "_meta": {"io.modelcontextprotocol/serverInfo": catalog::server_info()}
    }))
}

async fn dispatch(
    ctx: Ctx,
    id: &Value,
    method: &str,
    params: Option<&Map<String, Value>>,
) -> Response<Body> {
    let outcome =
        match method {
            "server/discover" => Ok(discover()),
            "tools/list" => Ok(cacheable(json!({"tools": *TOOLS}))),
            "tools/call" => return tools_call(ctx, id, params).await,
            "resources/list" => Ok(cacheable(json!({"resources": catalog::resources()}))),
            "resources/templates/list" => Ok(cacheable(json!({"resourceTemplates": []}))),
            "resources/read" => {
                let uri = params.and_then(|p| p.get("uri")).and_then(Value::as_str);
                match uri.map(|u| (u, catalog::read_resource(u))) {
                    None => Err(RpcError::ok(INVALID_PARAMS, "params.uri is required")),
                    Some((_, Some(contents))) => Ok(cacheable(json!({"contents": contents}))),
                    Some((u, None)) => Err(RpcError::ok(INVALID_PARAMS, "Resource not found")
                        .with_data(json!({"uri": u}))),
                }
            }
            "prompts/list" => Ok(cacheable(json!({"prompts": catalog::prompts()}))),
            "prompts/get" => {
                let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
                let args = params
                    .and_then(|p| p.get("arguments"))
                    .and_then(Value::as_object);
                catalog::get_prompt(name.unwrap_or(""), args).map(complete)
            }
            "subscriptions/listen" => return subscriptions::listen(&ctx, id, params),
            other => Err(RpcError::http(
                404,
                METHOD_NOT_FOUND,
                format!("Method not found: {other}"),
            )),
        };
    respond(&ctx, id, outcome)
}

/// Answer as JSON, or as a one-event SSE stream when SSE is preferred.
fn respond(ctx: &Ctx, id: &Value, outcome: Result<Value, RpcError>) -> Response<Body> {
    let msg = match outcome {
        Ok(r) => result(id, r),
        Err(e) if e.status != 200 => return reply::rpc_error(&e, Some(id)),
        Err(e) => e.to_response(Some(id)),
    };
    if ctx.prefer_sse() {
        let queued = VecDeque::from([sse::event(None, &msg)]);
        return reply::sse(Body::stream(queued, None));
    }
    reply::json(200, &msg)
}

async fn tools_call(ctx: Ctx, id: &Value, params: Option<&Map<String, Value>>) -> Response<Body> {
    let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
        return respond(
            &ctx,
            id,
            Err(RpcError::ok(INVALID_PARAMS, "params.name is required")),
        );
    };
    let empty = Map::new();
    let args = params
        .and_then(|p| p.get("arguments"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let plan = match tools::plan(name, args) {
        Ok(plan) => plan,
        Err(err) => return respond(&ctx, id, Err(err)),
    };
    match plan {
        ToolPlan::Done(v) => respond(&ctx, id, Ok(complete(v))),
        ToolPlan::Delayed { delay, result } => {
            // If the client hangs up, hyper drops this future: that is the cancellation.
            tokio::time::sleep(delay).await;
            respond(&ctx, id, Ok(complete(result)))
        }
        ToolPlan::Progress { steps, interval } => {
            let token = params
                .and_then(|p| p.get("_meta"))
                .and_then(|m| m.get("progressToken"))
                .filter(|t| t.is_string() || t.is_number());
            match token {
                Some(token) if ctx.sse_ok => {
                    stream_progress(id.clone(), token.clone(), steps, interval)
                }
                _ => {
                    let n = u32::try_from(steps).unwrap_or(u32::MAX);
                    tokio::time::sleep(interval.saturating_mul(n)).await;
                    respond(&ctx, id, Ok(complete(tools::progress_done(steps))))
                }
            }
        }
        ToolPlan::Sample { prompt } => sample(&ctx, id, params, &prompt),
    }
}

/// Progress notifications then the result; a closed stream stops the work.
fn stream_progress(id: Value, token: Value, steps: u64, interval: Duration) -> Response<Body> {
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        for step in 1..=steps {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = tx.closed() => return,
            }
            let note = notification(
                "notifications/progress",
                tools::progress_params(&token, step, steps),
            );
            if tx.send(sse::event(None, &note)).await.is_err() {
                return;
            }
        }
        let done = result(&id, complete(tools::progress_done(steps)));
        let _ = tx.send(sse::event(None, &done)).await;
    });
    reply::sse(body)
}

/// Opaque state for the `sample` round trip: binds the retry to its prompt.
/// Tampering can only make the retry fail, so it is encoded, not sealed.
fn encode_state(prompt: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!({"v": 1, "tool": "sample", "prompt": prompt}).to_string())
}

fn decode_state(state: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(state).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v.get("v") != Some(&json!(1)) || v.get("tool") != Some(&json!("sample")) {
        return None;
    }
    v.get("prompt").and_then(Value::as_str).map(str::to_owned)
}

/// `sample` as a multi-round-trip request: ask for a sampling input first,
/// then answer from `inputResponses.sample` on the retry.
fn sample(
    ctx: &Ctx,
    id: &Value,
    params: Option<&Map<String, Value>>,
    prompt: &str,
) -> Response<Body> {
    let get = |k: &str| params.and_then(|p| p.get(k));
    if let Some(state) = get("requestState") {
        match state.as_str().and_then(decode_state) {
            Some(p) if p == prompt => {}
            _ => {
                let err = RpcError::http(400, INVALID_PARAMS, "invalid requestState");
                return reply::rpc_error(&err, Some(id));
            }
        }
        if let Some(answer) = get("inputResponses").and_then(|r| r.get("sample")) {
            let outcome = tools::sample_outcome(&json!({"result": answer}));
            return respond(ctx, id, Ok(complete(outcome)));
        }
    }
    let has_sampling = get("_meta")
        .and_then(|m| m.get(META_CAPABILITIES))
        .and_then(|c| c.get("sampling"))
        .is_some();
    if !has_sampling {
        let err = RpcError::http(
            400,
            MISSING_CLIENT_CAPABILITY,
            "Missing required client capability: sampling",
        )
        .with_data(json!({"requiredCapabilities": {"sampling": {}}}));
        return reply::rpc_error(&err, Some(id));
    }
    let input = json!({
        "resultType": "input_required",
        "inputRequests": {
            "sample": {"method": "sampling/createMessage", "params": tools::sampling_params(prompt)}
        },
        "requestState": encode_state(prompt)
    });
    respond(ctx, id, Ok(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_mirrored_headers() {
        assert_eq!(decode_header(b"  echo ").as_deref(), Some("echo"));
        assert_eq!(
            decode_header(b"=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, \u{4e16}\u{754c}")
        );
        assert_eq!(decode_header(b"=?base64?!!?="), None);
        assert_eq!(decode_header(b"caf\xc3\xa9"), None);
    }

    #[test]
    fn request_state_round_trips() {
        assert_eq!(decode_state(&encode_state("hi")).as_deref(), Some("hi"));
        assert_eq!(decode_state("bm9wZQ"), None);
    }
}
