//! End-to-end tests of the `demo-upstream` binary over real TCP.

mod common;

use common::{modern_meta, read_until, records, sse_messages, Server};
use serde_json::{json, Value};

const LEGACY: (&str, &str) = ("MCP-Protocol-Version", "2025-11-25");

/// `initialize` + `notifications/initialized`; returns the session id.
fn init(server: &Server, capabilities: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "test", "version": "1"}}});
    let resp = server.post(&[], &body.to_string());
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["result"]["protocolVersion"], "2025-11-25");
    let sid = resp
        .header("mcp-session-id")
        .expect("session id")
        .to_owned();
    assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = server.post(&[("Mcp-Session-Id", &sid), LEGACY], &note.to_string());
    assert_eq!(resp.status, 202);
    sid
}

fn call(id: u64, name: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": args}})
    .to_string()
}

#[test]
fn legacy_session_lifecycle() {
    let server = Server::start(&[]);
    let sid = init(&server, json!({}));
    let s = [("Mcp-Session-Id", sid.as_str()), LEGACY];

    let list = server.post(&s, r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let names: Vec<Value> = list.json()["result"]["tools"]
        .as_array()
        .map(|t| t.iter().map(|t| t["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["echo", "payload", "progress", "sample", "get-env"]);

    let echo = server.post(&s, &call(3, "echo", json!({"text": "hi"})));
    assert_eq!(echo.header("content-type"), Some("application/json"));
    assert_eq!(echo.json()["result"]["content"][0]["text"], "hi");

    let payload = server.post(
        &s,
        &call(4, "payload", json!({"size": 1000, "delay_ms": 5})),
    );
    let text = payload.json()["result"]["content"][0]["text"].clone();
    assert_eq!(text.as_str().map(str::len), Some(1000));

    let unknown = server.post(&s, r#"{"jsonrpc":"2.0","id":5,"method":"nope"}"#);
    assert_eq!(unknown.json()["error"]["code"], -32601);
    let bad_tool = server.post(&s, &call(6, "nope", json!({})));
    assert_eq!(bad_tool.json()["error"]["code"], -32602);

    let ping = server.post(&s, r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#);
    assert_eq!(ping.json()["result"], json!({}));

    // Session rules: missing 400, unknown 404, deleted 404.
    let none = server.post(&[LEGACY], r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#);
    assert_eq!(none.status, 400);
    let unknown = server.post(
        &[("Mcp-Session-Id", "nope")],
        r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(server.send("DELETE", &s, "").status, 200);
    assert_eq!(
        server
            .post(&s, r#"{"jsonrpc":"2.0","id":10,"method":"ping"}"#)
            .status,
        404
    );
    assert_eq!(server.send("DELETE", &s, "").status, 404);
}

#[test]
fn malformed_and_misrouted_requests() {
    let server = Server::start(&[]);
    let resp = server.post(&[], "{\"jsonrpc\":");
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["code"], -32700);
    let batch = server.post(&[], r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    assert_eq!(batch.status, 400);
    assert_eq!(batch.json()["error"]["code"], -32600);
    let evil = server.post(&[("Origin", "https://evil.example.com")], "{}");
    assert_eq!(evil.status, 403);
    assert_eq!(server.send("PUT", &[], "").status, 405);
    let bytes: Vec<u8> = (0u8..=255).collect();
    let junk = String::from_utf8_lossy(&bytes);
    assert_eq!(server.post(&[], &junk).status, 400);
}

#[test]
fn legacy_progress_stream_and_resumption() {
    let server = Server::start(&[]);
    let sid = init(&server, json!({}));
    let s = [("Mcp-Session-Id", sid.as_str()), LEGACY];
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"steps": 3, "interval_ms": 10},
        "_meta": {"progressToken": "p"}}});
    let resp = server.post(&s, &body.to_string());
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(
        resp.body.starts_with("id: 1\nretry: 1000\ndata:\n\n"),
        "{:?}",
        resp.body
    );
    let msgs = resp.sse_messages();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[2]["params"]["progress"], 3);
    assert_eq!(msgs[3]["id"], 2);

    // Resume that POST stream after its second event: the rest is replayed.
    let replay = server.send(
        "GET",
        &[
            s[0],
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", "2"),
        ],
        "",
    );
    let ids: Vec<&str> = replay
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["3", "4", "5"]);

    // The standalone GET stream carries periodic log notifications.
    let mut get = server.open("GET", &[s[0], ("Accept", "text/event-stream")], "");
    let text = read_until(&mut get, "\"tick\":2", 5);
    let last_tick_id = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap_or("0")
        .to_owned();
    drop(get);
    // Reconnect with Last-Event-ID: numbering continues after the last seen id.
    let mut again = server.open(
        "GET",
        &[
            s[0],
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", &last_tick_id),
        ],
        "",
    );
    let text = read_until(&mut again, "\"tick\":3", 5);
    assert!(!text.contains("\"tick\":2"), "{text}");
}

#[test]
fn legacy_sampling_round_trip() {
    let server = Server::start(&[]);
    let sid = init(&server, json!({"sampling": {}}));
    let s = [("Mcp-Session-Id", sid.as_str()), LEGACY];
    let mut stream = server.open(
        "POST",
        &[
            s[0],
            s[1],
            ("Accept", "application/json, text/event-stream"),
        ],
        &call(2, "sample", json!({"prompt": "2+2?"})),
    );
    let text = read_until(&mut stream, "sampling/createMessage", 5);
    let request = sse_messages(&text)
        .into_iter()
        .find(|m| m["method"] == "sampling/createMessage")
        .expect("sampling request");
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "m"}});
    assert_eq!(server.post(&s, &answer.to_string()).status, 202);
    let text = read_until(&mut stream, "\"id\":2", 5);
    let result = sse_messages(&text)
        .into_iter()
        .find(|m| m["id"] == 2)
        .expect("result");
    assert_eq!(result["result"]["content"][0]["text"], "4");
}

fn modern_post(server: &Server, method: &str, name: Option<&str>, params: Value) -> common::Resp {
    let mut params = params;
    params["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut headers = vec![
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
    ];
    if let Some(name) = name {
        headers.push(("Mcp-Name", name));
    }
    server.post(&headers, &body.to_string())
}

#[test]
fn modern_stateless_requests() {
    let server = Server::start(&[]);
    let discover = modern_post(&server, "server/discover", None, json!({}));
    let result = discover.json()["result"].clone();
    assert_eq!(result["supportedVersions"][0], "2026-07-28");
    assert_eq!(result["resultType"], "complete");
    assert!(discover.header("mcp-session-id").is_none());

    let echo = modern_post(
        &server,
        "tools/call",
        Some(" echo "),
        json!({"name": "echo", "arguments": {"text": "yo"}}),
    );
    assert_eq!(echo.status, 200);
    assert_eq!(echo.json()["result"]["content"][0]["text"], "yo");
    assert_eq!(echo.json()["result"]["resultType"], "complete");

    let mismatch = modern_post(
        &server,
        "tools/call",
        Some("payload"),
        json!({"name": "echo"}),
    );
    assert_eq!(
        (mismatch.status, mismatch.json()["error"]["code"].clone()),
        (400, json!(-32020))
    );
    let missing = modern_post(&server, "tools/call", None, json!({"name": "echo"}));
    assert_eq!(missing.status, 400);
    let unknown = modern_post(&server, "ping", None, json!({}));
    assert_eq!(
        (unknown.status, unknown.json()["error"]["code"].clone()),
        (404, json!(-32601))
    );

    let old = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "1900-01-01",
        "io.modelcontextprotocol/clientCapabilities": {}}}});
    let resp = server.post(
        &[
            ("MCP-Protocol-Version", "1900-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
        &old.to_string(),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["code"], -32022);
    assert_eq!(resp.json()["error"]["data"]["requested"], "1900-01-01");

    let get = server.send("GET", &[("MCP-Protocol-Version", "2026-07-28")], "");
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    assert_eq!(server.send("DELETE", &[], "").status, 405);
}

#[test]
fn modern_progress_and_listen_streams() {
    let server = Server::start(&[]);
    let mut params = json!({"name": "progress", "arguments": {"steps": 2, "interval_ms": 5}});
    params["_meta"] = modern_meta();
    params["_meta"]["progressToken"] = json!(9);
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params});
    let resp = server.post(
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "progress"),
        ],
        &body.to_string(),
    );
    let msgs = resp.sse_messages();
    assert_eq!(msgs.len(), 3, "{:?}", resp.body);
    assert_eq!(msgs[0]["params"]["progressToken"], 9);
    assert_eq!(msgs[2]["result"]["resultType"], "complete");

    let mut params =
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true}});
    params["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": "listen-1", "method": "subscriptions/listen", "params": params});
    let mut stream = server.open(
        "POST",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        &body.to_string(),
    );
    let text = read_until(&mut stream, "notifications/prompts/list_changed", 5);
    let msgs = sse_messages(&text);
    assert_eq!(
        msgs[0]["method"],
        "notifications/subscriptions/acknowledged"
    );
    for m in &msgs {
        assert_eq!(
            m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "listen-1"
        );
    }
}

#[test]
fn record_file_lists_every_request() {
    let dir = std::env::temp_dir().join(format!("demo-upstream-rec-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let path = dir.to_string_lossy().into_owned();
    let server = Server::start(&["--record", &path]);
    assert!(records(&dir).is_empty());
    let _ = server.post(
        &[("X-Probe", "1")],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
    );
    let _ = server.send("GET", &[], "");
    let lines = records(&dir);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/mcp");
    assert!(lines[0]["headers"]
        .as_array()
        .is_some_and(|h| h.contains(&json!(["x-probe", "1"]))));
    assert!(lines[0]["body"]
        .as_str()
        .is_some_and(|b| b.contains("initialize")));
    assert_eq!(lines[1]["method"], "GET");
    assert_eq!(lines[1]["body_len"], 0);
    drop(server);
    let _ = std::fs::remove_file(&dir);
}
