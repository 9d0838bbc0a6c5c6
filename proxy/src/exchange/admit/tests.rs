use super::*;
use crate::ops::traces::TraceIds;
use opentelemetry::trace::{SpanId, TraceId, TraceState};

fn ids(state: Option<&str>) -> TraceIds {
    TraceIds {
        parent: None,
        trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        server_span: SpanId::from_hex("1111111111111111").expect("hex"),
        client_span: SpanId::from_hex("2222222222222222").expect("hex"),
        sampled: true,
        state: state.map_or_else(TraceState::default, |s| {
            s.parse::<TraceState>().expect("tracestate")
        }),
    }
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01";

#[test]
fn trace_meta_is_added_and_every_other_value_kept_as_written() {
    let raw = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":123456789012345678901234567890,"x":1.10,"s":"\u00e9"},"_meta":{"progressToken":"p","traceparent":"old"}}}"#;
    let out = with_trace_meta(raw, &ids(Some("v=1"))).expect("changed");
    let text = std::str::from_utf8(&out).expect("utf-8");
    // The arguments' bytes are untouched (a float and an escape included).
    assert!(
        text.contains(r#""arguments":{"n":123456789012345678901234567890,"x":1.10,"s":"\u00e9"}"#),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["params"]["_meta"]["traceparent"], PARENT);
    assert_eq!(v["params"]["_meta"]["tracestate"], "v=1");
    assert_eq!(v["params"]["_meta"]["progressToken"], "p");
    assert_eq!(v["id"], 7);
}

#[test]
fn trace_meta_needs_a_params_object() {
    let with_meta = with_trace_meta(
        br#"{"jsonrpc":"2.0","method":"ping","id":1,"params":{}}"#,
        &ids(None),
    )
    .expect("changed");
    let v: serde_json::Value = serde_json::from_slice(&with_meta).expect("json");
    assert_eq!(v["params"]["_meta"]["traceparent"], PARENT);
    assert!(v["params"]["_meta"].get("tracestate").is_none());
    for raw in [
        &br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#[..],
        br#"{"jsonrpc":"2.0","method":"x","id":1,"params":[1,2]}"#,
        br#"{"jsonrpc":"2.0","method":"x","id":1,"params":{"_meta":5}}"#,
        br#"[{"jsonrpc":"2.0","method":"x","id":1,"params":{}}]"#,
    ] {
        assert!(with_trace_meta(raw, &ids(None)).is_none());
    }
}
