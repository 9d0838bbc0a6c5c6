//! Legacy (2025-11-25) `tools/call`: the slow and streaming tools.
//!
//! Streams are session streams, so their events are logged for resumption and
//! keep flowing into the log when the client drops the connection (a dropped
//! stream is not a cancellation in this era; `notifications/cancelled` is).
//! `sample` sends a real server-to-client `sampling/createMessage` request on
//! the POST stream and waits for the client to POST the answer.

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use serde_json::{json, Map, Value};

use super::body::Body;
use super::http::Ctx;
use super::jsonrpc::{id_key, notification, result, RpcError, INVALID_PARAMS, SERVER_BUSY};
use super::legacy::respond;
use super::reply;
use super::session::Session;
use super::tools::{self, ToolPlan};

/// JSON-RPC code for a request answered after `notifications/cancelled`.
const REQUEST_CANCELLED: i64 = -32800;

/// Removes an in-flight registration when the request ends, however it ends.
struct Inflight {
    session: Arc<Session>,
    key: String,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.session.finish_inflight(&self.key);
    }
}

pub(super) async fn tools_call(
    ctx: Ctx,
    session: Arc<Session>,
    id: &Value,
    params: Option<&Map<String, Value>>,
) -> Response<Body> {
    let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
        let err = RpcError::ok(INVALID_PARAMS, "params.name is required");
        return respond(&ctx, &session, id, Err(err)).await;
    };
    let empty = Map::new();
    let args = params
        .and_then(|p| p.get("arguments"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let plan = match tools::plan(name, args) {
        Ok(plan) => plan,
        Err(err) => return respond(&ctx, &session, id, Err(err)).await,
    };
    let token = progress_token(params);
    match plan {
        ToolPlan::Done(v) => respond(&ctx, &session, id, Ok(v)).await,
        ToolPlan::Delayed { delay, result } => wait_then(ctx, session, id, delay, result).await,
        ToolPlan::Progress { steps, interval } => match token {
            Some(token) if ctx.sse_ok => stream_progress(session, id, token, steps, interval),
            _ => {
                let total = interval.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
                wait_then(ctx, session, id, total, tools::progress_done(steps)).await
            }
        },
        ToolPlan::Sample { prompt } => sample(ctx, session, id, prompt).await,
    }
}

fn progress_token(params: Option<&Map<String, Value>>) -> Option<Value> {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_number())
        .cloned()
}

/// Sleep (cancellable by `notifications/cancelled`), then answer.
async fn wait_then(
    ctx: Ctx,
    session: Arc<Session>,
    id: &Value,
    delay: Duration,
    outcome: Value,
) -> Response<Body> {
    let key = id_key(id);
    let cancel = session.register_inflight(key.clone());
    let guard = Inflight {
        session: session.clone(),
        key,
    };
    let finished = tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = cancel.cancelled() => false,
    };
    drop(guard);
    if finished {
        respond(&ctx, &session, id, Ok(outcome)).await
    } else {
        let err = RpcError::ok(REQUEST_CANCELLED, "Request cancelled");
        reply::json(200, &err.to_response(Some(id)))
    }
}

/// Stream `notifications/progress` then the result on a resumable stream.
fn stream_progress(
    session: Arc<Session>,
    id: &Value,
    token: Value,
    steps: u64,
    interval: Duration,
) -> Response<Body> {
    let Some((stream, body)) = session.open_stream() else {
        let err = RpcError::http(503, SERVER_BUSY, "too many open streams in this session");
        return reply::rpc_error(&err, Some(id));
    };
    let key = id_key(id);
    let cancel = session.register_inflight(key.clone());
    let id = id.clone();
    tokio::spawn(async move {
        let _guard = Inflight {
            session: session.clone(),
            key,
        };
        if session.primes_streams() {
            session.prime(stream).await;
        }
        for step in 1..=steps {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = cancel.cancelled() => {
                    session.close_stream(stream);
                    return;
                }
            }
            if session.is_closed() {
                return;
            }
            let note = notification(
                "notifications/progress",
                tools::progress_params(&token, step, steps),
            );
            session.emit(stream, &note, false).await;
        }
        let done = result(&id, tools::progress_done(steps));
        session.emit(stream, &done, true).await;
    });
    reply::sse(body)
}

/// Ask the client to sample on the POST stream, wait for its POSTed answer.
async fn sample(ctx: Ctx, session: Arc<Session>, id: &Value, prompt: String) -> Response<Body> {
    if !ctx.sse_ok {
        let r = tools::error_result("sample needs Accept: text/event-stream");
        return respond(&ctx, &session, id, Ok(r)).await;
    }
    if !session.client_sampling {
        let r = tools::error_result("client did not declare the sampling capability");
        return respond(&ctx, &session, id, Ok(r)).await;
    }
    let Some((stream, body)) = session.open_stream() else {
        let err = RpcError::http(503, SERVER_BUSY, "too many open streams in this session");
        return reply::rpc_error(&err, Some(id));
    };
    let key = id_key(id);
    let cancel = session.register_inflight(key.clone());
    let id = id.clone();
    tokio::spawn(async move {
        let _guard = Inflight {
            session: session.clone(),
            key,
        };
        if session.primes_streams() {
            session.prime(stream).await;
        }
        let req_id = session.next_request_id();
        let pending_key = id_key(&Value::String(req_id.clone()));
        let Some(rx) = session.register_pending(pending_key.clone()) else {
            let r = tools::error_result("too many sampling requests pending");
            session.emit(stream, &result(&id, r), true).await;
            return;
        };
        let request = json!({
            "jsonrpc": "2.0",
            "id": req_id,
            "method": "sampling/createMessage",
            "params": tools::sampling_params(&prompt)
        });
        session.emit(stream, &request, false).await;
        let outcome = tokio::select! {
            answer = tokio::time::timeout(tools::SAMPLE_TIMEOUT, rx) => match answer {
                Ok(Ok(response)) => tools::sample_outcome(&response),
                Ok(Err(_)) => tools::error_result("session ended before the client answered"),
                Err(_) => {
                    session.drop_pending(&pending_key);
                    tools::error_result("sampling timed out after 10s")
                }
            },
            () = cancel.cancelled() => {
                session.drop_pending(&pending_key);
                session.close_stream(stream);
                return;
            }
        };
        session.emit(stream, &result(&id, outcome), true).await;
    });
    reply::sse(body)
}
