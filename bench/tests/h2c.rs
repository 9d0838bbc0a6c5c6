//! `demo-upstream` serves HTTP/2 cleartext with prior knowledge (h2c) and
//! HTTP/1.1 on the same port: the protocol is detected per connection.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{modern_meta, sse_messages, Server};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

type H2 = SendRequest<Full<Bytes>>;

const WAIT: Duration = Duration::from_secs(10);

/// Open one h2c connection (client preface first, no Upgrade).
async fn h2_connect(port: u16) -> H2 {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// A 2026-07-28 stateless POST, shaped like the load generator's.
fn modern(
    port: u16,
    id: Value,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> Request<Full<Bytes>> {
    let mut params = params;
    params["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    req.body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

fn listen(port: u16, id: &str) -> Request<Full<Bytes>> {
    modern(
        port,
        json!(id),
        "subscriptions/listen",
        None,
        json!({"notifications": {"toolsListChanged": true}}),
    )
}

async fn send(h2: &H2, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let mut h2 = h2.clone();
    tokio::time::timeout(WAIT, h2.send_request(req))
        .await
        .expect("response head in time")
        .expect("h2 response")
}

/// Assert an open SSE stream head, then read until `needle` shows up: the
/// body must stream (a listen stream never ends, so nothing is buffered whole).
async fn sse_until(resp: &mut Response<Incoming>, needle: &str) -> String {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(
        resp.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/event-stream"[..])
    );
    let mut text = String::new();
    while !text.contains(needle) {
        let frame = tokio::time::timeout(WAIT, resp.body_mut().frame())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} not seen in {text:?}"))
            .expect("stream still open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_and_http1_on_one_port() {
    let server = Server::start(&[]);
    let port = server.port;
    let h2 = h2_connect(port).await;

    // A stateless tools/call answered with JSON over HTTP/2.
    let req = modern(
        port,
        json!(1),
        "tools/call",
        Some("echo"),
        json!({"name": "echo", "arguments": {"text": "over h2"}}),
    );
    let resp = send(&h2, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(
        resp.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    let json: Value = serde_json::from_slice(&body).expect("JSON-RPC response");
    assert_eq!(json["jsonrpc"], "2.0");
    assert_eq!(json["id"], 1);
    assert_eq!(json["result"]["content"][0]["text"], "over h2");
    assert_eq!(json["result"]["resultType"], "complete");

    // Two subscriptions/listen streams at once on the same connection.
    let (a, b) = tokio::join!(
        send(&h2, listen(port, "listen-a")),
        send(&h2, listen(port, "listen-b"))
    );
    let (mut a, mut b) = (a, b);
    for (resp, id) in [(&mut a, "listen-a"), (&mut b, "listen-b")] {
        let text = sse_until(resp, "notifications/tools/list_changed").await;
        let msgs = sse_messages(&text);
        assert_eq!(
            msgs[0]["method"],
            "notifications/subscriptions/acknowledged"
        );
        assert!(msgs
            .iter()
            .all(|m| m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == id));
    }

    // Past hyper's default of 200 concurrent streams per connection: each of
    // these gets its head only if the server advertises a higher limit.
    let many: Vec<_> = (0..300)
        .map(|n| {
            let h2 = h2.clone();
            tokio::spawn(async move { send(&h2, listen(port, &format!("many-{n}"))).await })
        })
        .collect();
    let mut held = Vec::new();
    for task in many {
        let resp = task.await.expect("task");
        assert_eq!(resp.status(), StatusCode::OK);
        held.push(resp);
    }

    // HTTP/1.1 on the same port, while those streams are open.
    let http1 = tokio::task::block_in_place(|| {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "echo", "arguments": {"text": "over h1"}, "_meta": modern_meta()}});
        server.post(
            &[
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "echo"),
            ],
            &body.to_string(),
        )
    });
    assert_eq!(http1.status, 200, "{http1:?}");
    assert_eq!(http1.header("content-type"), Some("application/json"));
    assert_eq!(http1.json()["result"]["content"][0]["text"], "over h1");

    // The first two streams are still flowing after all that.
    sse_until(&mut a, "notifications/tools/list_changed").await;
    sse_until(&mut b, "notifications/tools/list_changed").await;
    drop(held);
}
