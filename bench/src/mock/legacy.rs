//! The 2025-11-25 (and 2025-06-18, 2025-03-26) stateful Streamable HTTP server.
//!
//! `initialize` mints a session; every later request must name it
//! (`Mcp-Session-Id`: missing 400, unknown 404). Streams are logged per session
//! so a client can resume them with `GET` + `Last-Event-ID`; dropping a stream
//! is not a cancellation here, `notifications/cancelled` is.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::catalog;
use super::http::{Ctx, StreamSlot, LEGACY_VERSIONS};
use super::jsonrpc::{
    id_key, notification, result, Message, RpcError, INTERNAL_ERROR, INVALID_PARAMS,
    INVALID_REQUEST, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND, SERVER_BUSY, SESSION_NOT_FOUND,
};
use super::legacy_tools;
use super::reply;
use super::session::{Resumed, Session, LEVELS, STANDALONE};
use super::store::CreateError;
use super::tools::TOOLS;

/// Handle one POSTed message in the legacy era.
pub async fn post(ctx: Ctx, msg: Message<'_>) -> Response<Body> {
    if let Message::Request {
        id,
        method: "initialize",
        params,
    } = msg
    {
        return initialize(&ctx, id, params).await;
    }
    let session = match session_of(&ctx) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match msg {
        Message::Request { id, method, params } => request(ctx, session, id, method, params).await,
        Message::Notification { method, params } => {
            if method == "notifications/cancelled" {
                if let Some(rid) = params.and_then(|p| p.get("requestId")) {
                    session.cancel_inflight(&id_key(rid));
                }
            }
            reply::accepted()
        }
        Message::Response { id, body } => {
            session.complete_pending(&id_key(id), body.clone());
            reply::accepted()
        }
    }
}

/// `GET`: open (or resume with `Last-Event-ID`) a stream of server messages.
pub async fn get(ctx: Ctx) -> Response<Body> {
    let session = match session_of(&ctx) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !ctx.sse_ok {
        let err = RpcError::http(
            406,
            INVALID_REQUEST,
            "Not Acceptable: GET needs Accept: text/event-stream",
        );
        return reply::rpc_error(&err, None);
    }
    let resumed = ctx
        .header("last-event-id")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|last| session.resume(last));
    let (body, gen, fresh) = match resumed {
        Some(Resumed::Body(body, gen)) => (body, gen, false),
        Some(Resumed::Unknown) | None => {
            let (body, gen) = session.attach_standalone();
            (body, Some(gen), true)
        }
    };
    if let Some(gen) = gen {
        let Some(slot) = ctx.app.stream_slot() else {
            session.close_stream(STANDALONE);
            let err = RpcError::http(503, SERVER_BUSY, "too many open streams");
            return reply::rpc_error(&err, None);
        };
        let interval = ctx.app.config.notify_interval;
        tokio::spawn(tick(session, gen, fresh, interval, slot));
    }
    reply::sse(body)
}

/// `DELETE`: end the session (200), or 404 if it is unknown.
pub fn delete(ctx: &Ctx) -> Response<Body> {
    let id = ctx.header(reply::SESSION_HEADER).unwrap_or("");
    if ctx.app.sessions.remove(id) {
        reply::status_only(200)
    } else {
        let err = RpcError::http(404, SESSION_NOT_FOUND, "Session not found");
        reply::rpc_error(&err, None)
    }
}

/// The session named by the request, or the 400/404 answer.
#[allow(clippy::result_large_err)]
fn session_of(ctx: &Ctx) -> Result<Arc<Session>, Response<Body>> {
    let Some(id) = ctx.header(reply::SESSION_HEADER) else {
        let err = RpcError::http(
            400,
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        );
        return Err(reply::rpc_error(&err, None));
    };
    ctx.app.sessions.get(id).ok_or_else(|| {
        let err = RpcError::http(404, SESSION_NOT_FOUND, "Session not found");
        reply::rpc_error(&err, None)
    })
}

async fn initialize(ctx: &Ctx, id: &Value, params: Option<&Map<String, Value>>) -> Response<Body> {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version = requested
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LEGACY_VERSIONS[0]);
    let sampling = params
        .and_then(|p| p.get("capabilities"))
        .and_then(|c| c.get("sampling"))
        .is_some();
    let session = match ctx.app.sessions.create(version.to_owned(), sampling) {
        Ok(s) => s,
        Err(CreateError::Full) => {
            let err = RpcError::http(503, SERVER_BUSY, "too many sessions");
            return reply::rpc_error(&err, Some(id));
        }
        Err(CreateError::Random) => {
            let err = RpcError::http(500, INTERNAL_ERROR, "no randomness for a session id");
            return reply::rpc_error(&err, Some(id));
        }
    };
    let init = json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {"subscribe": false, "listChanged": false},
            "prompts": {"listChanged": false},
            "logging": {}
        },
        "serverInfo": catalog::server_info(),
        "instructions": "Demo upstream for mcpgate: tools echo, payload, progress, sample, get-env."
    });
    let resp = respond(ctx, &session, id, Ok(init)).await;
    reply::with_session(resp, &session.id)
}

async fn request(
    ctx: Ctx,
    session: Arc<Session>,
    id: &Value,
    method: &str,
    params: Option<&Map<String, Value>>,
) -> Response<Body> {
    let outcome = match method {
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": *TOOLS})),
        "tools/call" => return legacy_tools::tools_call(ctx, session, id, params).await,
        "resources/list" => Ok(json!({"resources": catalog::resources()})),
        "resources/templates/list" => Ok(json!({"resourceTemplates": []})),
        "resources/read" => read_resource(params),
        "prompts/list" => Ok(json!({"prompts": catalog::prompts()})),
        "prompts/get" => {
            let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
            let args = params
                .and_then(|p| p.get("arguments"))
                .and_then(Value::as_object);
            catalog::get_prompt(name.unwrap_or(""), args)
        }
        "logging/setLevel" => set_level(&session, params),
        other => Err(RpcError::ok(
            METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    };
    respond(&ctx, &session, id, outcome).await
}

fn read_resource(params: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
    let uri = params.and_then(|p| p.get("uri")).and_then(Value::as_str);
    let Some(uri) = uri else {
        return Err(RpcError::ok(INVALID_PARAMS, "params.uri is required"));
    };
    catalog::read_resource(uri)
        .map(|contents| json!({"contents": contents}))
        .ok_or_else(|| {
            RpcError::ok(RESOURCE_NOT_FOUND, "Resource not found").with_data(json!({"uri": uri}))
        })
}

fn set_level(session: &Session, params: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
    let level = params.and_then(|p| p.get("level")).and_then(Value::as_str);
    match level.and_then(|l| LEVELS.iter().position(|x| *x == l)) {
        Some(i) => {
            session.log_level.store(i as u8, Ordering::Relaxed);
            Ok(json!({}))
        }
        None => Err(RpcError::ok(
            INVALID_PARAMS,
            "params.level must be a log level",
        )),
    }
}

/// Answer a request as JSON, or as a one-event stream when SSE is preferred.
pub(super) async fn respond(
    ctx: &Ctx,
    session: &Session,
    id: &Value,
    outcome: Result<Value, RpcError>,
) -> Response<Body> {
    let msg = match outcome {
        Ok(r) => result(id, r),
        Err(e) if e.status != 200 => return reply::rpc_error(&e, Some(id)),
        Err(e) => e.to_response(Some(id)),
    };
    if ctx.prefer_sse() {
        if let Some((stream, body)) = session.open_stream() {
            if session.primes_streams() {
                session.prime(stream).await;
            }
            session.emit(stream, &msg, true).await;
            return reply::sse(body);
        }
    }
    reply::json(200, &msg)
}

/// Drive the standalone GET stream: prime it, then send a log tick each
/// interval until the client leaves or a newer GET replaces it.
async fn tick(session: Arc<Session>, gen: u64, fresh: bool, interval: Duration, _slot: StreamSlot) {
    if fresh && session.primes_streams() {
        session.prime(STANDALONE).await;
    }
    loop {
        tokio::time::sleep(interval).await;
        if !session.standalone_live(gen) {
            return;
        }
        // LEVELS[1] is "info": only send when the client's level allows it.
        if session.log_level.load(Ordering::Relaxed) > 1 {
            continue;
        }
        let n = session.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        let note = notification(
            "notifications/message",
            json!({"level": "info", "logger": catalog::SERVER_NAME, "data": {"tick": n}}),
        );
        session.emit(STANDALONE, &note, false).await;
    }
}
