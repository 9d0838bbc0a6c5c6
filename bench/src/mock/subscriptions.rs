//! `subscriptions/listen` (2026-07-28): the long-lived POST stream that
//! replaced the legacy GET stream. It acknowledges the opted-in notification
//! types, then sends each of them every interval until the client hangs up.

use std::time::Duration;

use http::Response;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::body::Body;
use super::catalog;
use super::http::{Ctx, StreamSlot, META_SUBSCRIPTION};
use super::jsonrpc::{notification, RpcError, INVALID_PARAMS, INVALID_REQUEST, SERVER_BUSY};
use super::reply;
use super::sse;

/// `subscriptions/listen`: acknowledge, then send the opted-in change
/// notifications every interval (keep-alive comments when none were asked for).
pub fn listen(ctx: &Ctx, id: &Value, params: Option<&Map<String, Value>>) -> Response<Body> {
    if !ctx.sse_ok {
        let err = RpcError::http(
            406,
            INVALID_REQUEST,
            "Not Acceptable: subscriptions/listen needs text/event-stream",
        );
        return reply::rpc_error(&err, Some(id));
    }
    let Some(filter) = params
        .and_then(|p| p.get("notifications"))
        .and_then(Value::as_object)
    else {
        let err = RpcError::ok(INVALID_PARAMS, "params.notifications is required");
        return reply::json(200, &err.to_response(Some(id)));
    };
    let Some(slot) = ctx.app.stream_slot() else {
        let err = RpcError::http(503, SERVER_BUSY, "too many open streams");
        return reply::rpc_error(&err, Some(id));
    };
    let honored = honored_filter(filter);
    let (tx, body) = Body::channel();
    tokio::spawn(run_listen(
        tx,
        id.clone(),
        honored,
        ctx.app.config.notify_interval,
        slot,
    ));
    reply::sse(body)
}

/// The subset of a subscription filter this server serves.
fn honored_filter(filter: &Map<String, Value>) -> Map<String, Value> {
    let mut honored = Map::new();
    for key in [
        "toolsListChanged",
        "promptsListChanged",
        "resourcesListChanged",
    ] {
        if filter.get(key) == Some(&Value::Bool(true)) {
            honored.insert(key.into(), Value::Bool(true));
        }
    }
    if let Some(Value::Array(uris)) = filter.get("resourceSubscriptions") {
        let known: Vec<Value> = uris
            .iter()
            .filter(|u| {
                u.as_str()
                    .is_some_and(|u| catalog::read_resource(u).is_some())
            })
            .cloned()
            .collect();
        if !known.is_empty() {
            honored.insert("resourceSubscriptions".into(), Value::Array(known));
        }
    }
    honored
}

/// The notifications one listen tick sends for `honored`.
fn tick_notifications(honored: &Map<String, Value>, id: &Value) -> Vec<Value> {
    let meta = json!({ META_SUBSCRIPTION: id });
    let mut out = Vec::new();
    for (key, method) in [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        (
            "resourcesListChanged",
            "notifications/resources/list_changed",
        ),
    ] {
        if honored.contains_key(key) {
            out.push(notification(method, json!({"_meta": meta})));
        }
    }
    if let Some(Value::Array(uris)) = honored.get("resourceSubscriptions") {
        for uri in uris {
            out.push(notification(
                "notifications/resources/updated",
                json!({"uri": uri, "_meta": meta}),
            ));
        }
    }
    out
}

async fn run_listen(
    tx: mpsc::Sender<bytes::Bytes>,
    id: Value,
    honored: Map<String, Value>,
    interval: Duration,
    _slot: StreamSlot,
) {
    let ack = notification(
        "notifications/subscriptions/acknowledged",
        json!({"notifications": honored, "_meta": { META_SUBSCRIPTION: id }}),
    );
    if tx.send(sse::event(None, &ack)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = tx.closed() => return,
        }
        let notes = tick_notifications(&honored, &id);
        if notes.is_empty() && tx.send(sse::keep_alive()).await.is_err() {
            return;
        }
        for note in notes {
            if tx.send(sse::event(None, &note)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_filter_honors_known_only() {
        let f = json!({"toolsListChanged": true, "promptsListChanged": false,
                       "resourceSubscriptions": ["demo://readme", "demo://nope"]});
        let h = honored_filter(f.as_object().unwrap_or(&Map::new()));
        assert_eq!(h.len(), 2);
        let notes = tick_notifications(&h, &json!(7));
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0]["params"]["_meta"][META_SUBSCRIPTION], 7);
    }
}
