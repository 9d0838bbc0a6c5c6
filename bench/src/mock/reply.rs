//! Response builders: every HTTP answer the mock gives is made here.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::Value;

use super::body::Body;
use super::jsonrpc::RpcError;

/// Name of the legacy session header (HTTP header names are case-insensitive).
pub const SESSION_HEADER: &str = "mcp-session-id";

/// `status` with an `application/json` body.
pub fn json(status: u16, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    build(status, Body::full(bytes), "application/json")
}

/// A JSON-RPC error as an HTTP response with the error's status.
pub fn rpc_error(err: &RpcError, id: Option<&Value>) -> Response<Body> {
    json(err.status, &err.to_response(id))
}

/// `202 Accepted`, no body (notifications and client responses).
pub fn accepted() -> Response<Body> {
    status_only(202)
}

/// A bare status with an empty body.
pub fn status_only(status: u16) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// A short `text/plain` answer.
pub fn plain(status: u16, text: &'static str) -> Response<Body> {
    build(
        status,
        Body::full(Bytes::from_static(text.as_bytes())),
        "text/plain",
    )
}

/// `405` naming the allowed methods.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = plain(405, "method not allowed\n");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// `200` with an SSE body, marked unbuffered for intermediaries.
pub fn sse(body: Body) -> Response<Body> {
    let mut resp = build(200, body, "text/event-stream");
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Add the `Mcp-Session-Id` header (ids are hex, always a valid value).
pub fn with_session(mut resp: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(SESSION_HEADER, v);
    }
    resp
}

fn build(status: u16, body: Body, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
