use super::*;

fn identity() -> WorkerIdentity {
    WorkerIdentity {
        instance: [1; 8],
        index: 0,
        workers: 1,
        runtime_dir: std::env::temp_dir(),
    }
}

fn traces(ratio: f64) -> Traces {
    let policy = TracesPolicy {
        // Nothing listens there: these tests never export.
        endpoint: "http://127.0.0.1:9/v1/traces".into(),
        service_name: "t".into(),
        sample_ratio: ratio,
        queue: 8,
        export_timeout_ms: 100,
    };
    let spans = prometheus::IntCounterVec::new(prometheus::Opts::new("s", "s"), &["outcome"])
        .expect("counter");
    Traces::start(&policy, &identity(), spans).expect("tracer")
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_callers_context_comes_from_meta_first_then_the_headers() {
    let t = traces(1.0);
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let ids = t.begin([Some(PARENT), Some("a=1")], [Some(other), None]);
    assert_eq!(ids.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        ids.parent.as_ref().map(|p| p.span_id().to_string()),
        Some("00f067aa0ba902b7".into())
    );
    assert_eq!(ids.tracestate().as_deref(), Some("a=1"));
    let ids = t.begin([None, None], [Some(other), None]);
    assert_eq!(ids.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
    // Malformed: a new trace, no parent.
    let ids = t.begin([Some("00-zz-00f067aa0ba902b7-01"), None], [None, None]);
    assert!(ids.parent.is_none());
    assert!(ids.trace_id != TraceId::INVALID);
    assert_ne!(ids.server_span, ids.client_span);
    t.shutdown();
}

#[test]
fn the_upstream_gets_the_exchange_span_and_the_sampled_flag() {
    let t = traces(1.0);
    let ids = t.begin([Some(PARENT), None], [None, None]);
    assert_eq!(
        ids.traceparent(),
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", ids.client_span)
    );
    assert_eq!(ids.tracestate(), None);
    t.shutdown();
}

#[test]
fn sampling_follows_the_caller_else_the_ratio() {
    let never = traces(0.0);
    assert!(!never.begin([None, None], [None, None]).sampled);
    assert!(never.begin([Some(PARENT), None], [None, None]).sampled);
    let unsampled = PARENT.replace("-01", "-00");
    let always = traces(1.0);
    assert!(always.begin([None, None], [None, None]).sampled);
    assert!(!always.begin([Some(&unsampled), None], [None, None]).sampled);
    assert!(always
        .begin([Some(&unsampled), None], [None, None])
        .traceparent()
        .ends_with("-00"));
    never.shutdown();
    always.shutdown();
}

#[test]
fn error_type_names_the_refusal_the_server_error_or_the_tool_error() {
    let mut n = Note::default();
    assert_eq!(error_type(&n), None);
    n.ending = Some(Ending::Result);
    assert_eq!(error_type(&n), None);
    n.ending = Some(Ending::ToolError);
    assert_eq!(error_type(&n), Some(("tool_error".into(), None)));
    n.ending = Some(Ending::Error(-32602));
    assert_eq!(error_type(&n), Some(("-32602".into(), Some(-32602))));
    n.refusal = Some(("Forbidden".into(), "access", "hidden", -32001));
    assert_eq!(error_type(&n), Some(("-32001".into(), Some(-32001))));
}

#[test]
fn preset_ids_are_used_once_then_random() {
    let g = PresetIds::default();
    let (t, s) = (
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
        SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
    );
    PRESET.set((Some(t), Some(s)));
    assert_eq!(g.new_trace_id(), t);
    assert_eq!(g.new_span_id(), s);
    assert_ne!(g.new_span_id(), s);
    assert_ne!(g.new_trace_id(), t);
}
