use super::catalog::{canonical, Learned, SchemaCatalog};
use super::*;
use crate::rejection::RejectionKind;
use crate::testutil::{headers, policy_with};
use serde_json::json;

fn catalog(tools: Value) -> SchemaCatalog {
    let c = SchemaCatalog::new();
    c.learn_listing(tools.as_array().unwrap());
    c
}

/// A listing with one tool per `(name, inputSchema)`.
fn listing(tools: &[(&str, Value)]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|(n, s)| json!({"name": n, "inputSchema": s}))
            .collect(),
    )
}

fn judge_with(extra: &str, schemas: &SchemaCatalog, bodies: &[Value]) -> Result<(), Rejection> {
    let p = policy_with(&format!("[limits]\nallow_batches = true\n{extra}"));
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, b"");
    ex.messages = bodies
        .iter()
        .map(|b| Message::from_value(b.clone()).unwrap())
        .collect();
    ex.batch = bodies.len() > 1;
    ex.tool_schemas = Some(schemas);
    match ToolSchemaFilter.check(&mut ex) {
        Decision::Continue => Ok(()),
        Decision::Reject(r) => Err(r),
    }
}

fn judge(schemas: &SchemaCatalog, body: Value) -> Result<(), Rejection> {
    judge_with("", schemas, &[body])
}

fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": tool, "arguments": args}})
}

fn sum_schema_2020() -> Value {
    json!({
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
        "additionalProperties": false
    })
}

fn body(r: &Rejection) -> Value {
    serde_json::from_slice(&r.json_body()).unwrap()
}

#[test]
fn valid_arguments_pass_draft_2020_12() {
    let c = catalog(listing(&[("sum", sum_schema_2020())]));
    assert!(judge(&c, call("sum", json!({"a": 1, "b": 2.5}))).is_ok());
    // 2020-12 keywords are understood when `$schema` is absent.
    let c = catalog(listing(&[(
        "pair",
        json!({"type": "object", "properties": {"p": {
            "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
            "items": false}}}),
    )]));
    assert!(judge(&c, call("pair", json!({"p": ["x", 1]}))).is_ok());
    let r = judge(&c, call("pair", json!({"p": ["x", 1, 2]}))).unwrap_err();
    assert_eq!(r.at(), Some("params.arguments/p/2"));
}

#[test]
fn invalid_arguments_are_refused_with_pointer_and_keyword_never_the_value() {
    let c = catalog(listing(&[("get-sum", sum_schema_2020())]));
    let r = judge(&c, call("get-sum", json!({"a": "two-secret", "b": 3}))).unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArguments);
    assert_eq!(r.rule, "arguments-schema");
    assert_eq!(r.at(), Some("params.arguments/a"));
    let w = r.kind.wire();
    assert_eq!(
        (w.status, w.code, w.message),
        (400, -32602, "Invalid params")
    );
    let v = body(&r);
    assert_eq!(
        v["error"]["data"],
        json!({"rule": "arguments-schema", "at": "params.arguments/a",
               "pointer": "/a", "keyword": "type"})
    );
    let wire = String::from_utf8(r.json_body()).unwrap();
    assert!(!wire.contains("two-secret"), "{wire}");
    assert!(!r.detail.contains("two-secret"), "{}", r.detail);

    let r = judge(&c, call("get-sum", json!({"a": 1}))).unwrap_err();
    assert_eq!(r.at(), Some("params.arguments"));
    assert_eq!(r.data().unwrap()["keyword"], "required");
    assert_eq!(r.data().unwrap()["pointer"], "");
}

#[test]
fn missing_arguments_count_as_an_empty_object() {
    let c = catalog(listing(&[
        ("sum", sum_schema_2020()),
        ("noargs", json!({"type": "object"})),
    ]));
    let bare = |tool: &str| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}});
    let r = judge(&c, bare("sum")).unwrap_err();
    assert_eq!(r.data().unwrap()["keyword"], "required");
    assert!(judge(&c, bare("noargs")).is_ok());
    // Not an object at all.
    let r = judge(&c, call("noargs", json!("x"))).unwrap_err();
    assert_eq!(r.data().unwrap()["keyword"], "type");
}

#[test]
fn draft_07_schemas() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 1},
            // draft-07 array form of `items`: a tuple.
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
                     "additionalItems": false},
            "mode": {"enum": ["fast", "slow"]}
        },
        "required": ["count"],
        "definitions": {"pos": {"type": "integer", "minimum": 0}}
    });
    let c = catalog(listing(&[("d7", schema)]));
    assert!(judge(
        &c,
        call("d7", json!({"count": 2, "pair": ["x", 1], "mode": "fast"}))
    )
    .is_ok());
    let r = judge(&c, call("d7", json!({"count": 0}))).unwrap_err();
    assert_eq!(
        (r.at(), r.data().unwrap()["keyword"].as_str()),
        (Some("params.arguments/count"), Some("minimum"))
    );
    let r = judge(&c, call("d7", json!({"count": 1, "pair": ["x", 1, 2]}))).unwrap_err();
    assert_eq!(r.data().unwrap()["keyword"], "additionalItems");
    let r = judge(&c, call("d7", json!({"count": 1, "mode": "other"}))).unwrap_err();
    assert_eq!(r.data().unwrap()["pointer"], "/mode");
    assert_eq!(r.data().unwrap()["keyword"], "enum");
}

#[test]
fn local_refs_resolve() {
    let schema = json!({
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/pos"}},
        "$defs": {"pos": {"type": "integer", "minimum": 0}}
    });
    let c = catalog(listing(&[("r", schema)]));
    assert!(judge(&c, call("r", json!({"n": 3}))).is_ok());
    let r = judge(&c, call("r", json!({"n": -1}))).unwrap_err();
    assert_eq!(r.at(), Some("params.arguments/n"));
}

#[test]
fn remote_refs_are_never_fetched_and_make_the_schema_uncompilable() {
    // Unroutable on purpose, and the test must pass offline: compiling
    // fails at once because nothing is fetched, and the error says so.
    for schema in [
        json!({"$ref": "https://example.com/x.json"}),
        json!({"type": "object", "properties": {"u": {"$ref": "http://192.0.2.1/s.json#/a"}}}),
        json!({"type": "object", "properties": {"f": {"$ref": "file:///etc/passwd"}}}),
        json!({"$ref": "#/$defs/missing"}),
    ] {
        let started = std::time::Instant::now();
        let err = CompiledSchema::compile(&schema).unwrap_err();
        assert!(matches!(err, Uncompilable::Invalid(_)), "{schema}: {err:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{schema}: took {:?}: a fetch was attempted?",
            started.elapsed()
        );
    }
    let learned = SchemaCatalog::new().learn_listing(
        listing(&[("remote", json!({"$ref": "https://example.com/x.json"}))])
            .as_array()
            .unwrap(),
    );
    assert_eq!(learned.uncompilable.len(), 1);
    let (name, why) = &learned.uncompilable[0];
    assert_eq!(name, "remote");
    assert!(
        why.to_string().contains("https://example.com/x.json"),
        "{why}"
    );
}

#[test]
fn uncompilable_schemas_pass_or_are_refused_by_policy() {
    let c = catalog(listing(&[(
        "remote",
        json!({"$ref": "https://example.com/x.json"}),
    )]));
    assert!(matches!(c.validator("remote"), SchemaLookup::Uncompilable));
    let any = call("remote", json!({"x": 1}));
    assert!(judge(&c, any.clone()).is_ok());
    assert!(judge_with(
        "[tools]\non_uncompilable = \"skip\"\n",
        &c,
        std::slice::from_ref(&any)
    )
    .is_ok());
    let r = judge_with("[tools]\non_uncompilable = \"refuse\"\n", &c, &[any]).unwrap_err();
    assert_eq!(r.kind, RejectionKind::InvalidArguments);
    assert_eq!(r.rule, "arguments-schema-uncompilable");
    assert_eq!(r.at(), Some("params.arguments"));
}

#[test]
fn deep_and_huge_schemas_are_not_compiled() {
    let mut deep = json!({"type": "string"});
    for _ in 0..40 {
        deep = json!({"type": "object", "properties": {"x": deep}});
    }
    assert_eq!(
        CompiledSchema::compile(&deep).unwrap_err(),
        Uncompilable::TooDeep
    );
    let mut ok = json!({"type": "string"});
    for _ in 0..10 {
        ok = json!({"type": "object", "properties": {"x": ok}});
    }
    assert!(CompiledSchema::compile(&ok).is_ok());

    let props: serde_json::Map<String, Value> = (0..3000)
        .map(|i| (format!("property_{i:05}"), json!({"type": "string"})))
        .collect();
    let huge = json!({"type": "object", "properties": props});
    assert!(canonical(&huge).len() > MAX_SCHEMA_BYTES);
    assert!(matches!(
        CompiledSchema::compile(&huge).unwrap_err(),
        Uncompilable::TooLarge(_)
    ));
    let c = catalog(listing(&[("deep", deep), ("huge", huge)]));
    assert!(matches!(c.validator("deep"), SchemaLookup::Uncompilable));
    assert!(matches!(c.validator("huge"), SchemaLookup::Uncompilable));
}

#[test]
fn unknown_tools_pass() {
    let c = catalog(listing(&[("sum", sum_schema_2020())]));
    assert!(matches!(c.validator("other"), SchemaLookup::Unknown));
    assert!(judge(&c, call("other", json!({"anything": [1, 2]}))).is_ok());
    assert!(judge(&SchemaCatalog::new(), call("sum", json!({"a": "x"}))).is_ok());
}

#[test]
fn off_when_the_proxy_hands_no_schemas() {
    let p = policy_with("");
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, b"");
    ex.messages = vec![Message::from_value(call("sum", json!({"a": "x"}))).unwrap()];
    assert!(matches!(
        ToolSchemaFilter.check(&mut ex),
        Decision::Continue
    ));
}

#[test]
fn a_concealed_call_is_not_judged() {
    let c = catalog(listing(&[("secret", sum_schema_2020())]));
    let p = policy_with("");
    let h = headers(&[]);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, b"");
    ex.messages = vec![Message::from_value(call("secret", json!({"a": "x"}))).unwrap()];
    ex.tool_schemas = Some(&c);
    ex.concealed = Some(crate::exchange::Concealed {
        kind: policies::AccessKind::Tool,
        key: "name",
        original: "secret".into(),
        rule: "access.default".into(),
    });
    assert!(matches!(
        ToolSchemaFilter.check(&mut ex),
        Decision::Continue
    ));
}

#[test]
fn other_methods_and_notifications_pass() {
    let c = catalog(listing(&[("sum", sum_schema_2020())]));
    assert!(judge(
        &c,
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get",
               "params": {"name": "sum", "arguments": {"a": "x"}}})
    )
    .is_ok());
    assert!(judge(
        &c,
        json!({"jsonrpc": "2.0", "method": "tools/call",
               "params": {"name": "sum", "arguments": {"a": "x"}}})
    )
    .is_ok());
}

#[test]
fn a_batch_names_the_failing_item() {
    let c = catalog(listing(&[("sum", sum_schema_2020())]));
    let r = judge_with(
        "",
        &c,
        &[
            call("sum", json!({"a": 1, "b": 2})),
            call("sum", json!({"a": 1, "b": false})),
        ],
    )
    .unwrap_err();
    assert_eq!(r.at(), Some("[1].params.arguments/b"));
}

#[test]
fn a_changed_schema_replaces_the_old_and_an_unchanged_one_is_not_recompiled() {
    let c = SchemaCatalog::new();
    let first = c.learn_listing(listing(&[("t", sum_schema_2020())]).as_array().unwrap());
    assert_eq!(first.compiled, 1);
    let before = match c.validator("t") {
        SchemaLookup::Ready(s) => s,
        _ => panic!("compiled"),
    };
    // The same schema, keys in another order: same canonical hash.
    let reordered = json!({
        "additionalProperties": false,
        "required": ["a", "b"],
        "properties": {"b": {"type": "number"}, "a": {"type": "number"}},
        "type": "object"
    });
    let again = c.learn_listing(listing(&[("t", reordered)]).as_array().unwrap());
    assert_eq!(
        again,
        Learned {
            unchanged: 1,
            ..Learned::default()
        }
    );
    match c.validator("t") {
        SchemaLookup::Ready(s) => assert!(Arc::ptr_eq(&s, &before)),
        _ => panic!("still compiled"),
    }
    assert!(judge(&c, call("t", json!({"a": 1, "b": 2}))).is_ok());
    let changed = c.learn_listing(
        listing(&[("t", json!({"type": "object", "required": ["c"]}))])
            .as_array()
            .unwrap(),
    );
    assert_eq!(changed.compiled, 1);
    assert!(judge(&c, call("t", json!({"a": 1, "b": 2}))).is_err());
    assert!(judge(&c, call("t", json!({"c": 1}))).is_ok());
    // An uncompilable schema is reported once, not at every listing.
    let bad = listing(&[("t", json!({"$ref": "https://example.com/x.json"}))]);
    assert_eq!(
        c.learn_listing(bad.as_array().unwrap()).uncompilable.len(),
        1
    );
    assert_eq!(
        c.learn_listing(bad.as_array().unwrap()).uncompilable.len(),
        0
    );
}

#[test]
fn the_catalog_is_bounded() {
    let c = SchemaCatalog::with_capacity(2);
    let l = listing(&[
        ("a", json!({"type": "object"})),
        ("b", json!({"type": "object"})),
        ("c", json!({"type": "object", "required": ["x"]})),
    ]);
    let learned = c.learn_listing(l.as_array().unwrap());
    assert_eq!((learned.compiled, learned.over_capacity), (2, 1));
    assert_eq!(c.len(), 2);
    // Past the bound a new tool is not learned: it passes like any unlisted one.
    assert!(matches!(c.validator("c"), SchemaLookup::Unknown));
    assert!(judge(&c, call("c", json!({}))).is_ok());
    // Known tools still follow their listings.
    let learned = c.learn_listing(
        listing(&[("a", json!({"type": "object", "required": ["y"]}))])
            .as_array()
            .unwrap(),
    );
    assert_eq!(learned.compiled, 1);
    assert!(judge(&c, call("a", json!({}))).is_err());
    assert_eq!(super::catalog::MAX_TOOLS, 10_000);
}

#[test]
fn malformed_entries_are_ignored() {
    let c = SchemaCatalog::new();
    let learned = c.learn_listing(&[
        json!({"name": "x"}),
        json!({"inputSchema": {}}),
        json!("tool"),
        json!({"name": 3, "inputSchema": {}}),
    ]);
    assert_eq!(learned.malformed, 4);
    assert!(c.is_empty());
}

#[test]
fn canonical_json_sorts_keys_at_every_level() {
    let a = json!({"b": [{"z": 1, "y": "é\n"}], "a": null});
    assert_eq!(
        String::from_utf8(canonical(&a)).unwrap(),
        r#"{"a":null,"b":[{"y":"é\n","z":1}]}"#
    );
}

#[test]
fn formats_are_annotations_not_assertions() {
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"data": {"type": "string", "format": "uri"}}
    });
    let c = catalog(listing(&[("gz", schema)]));
    assert!(judge(&c, call("gz", json!({"data": "not a uri"}))).is_ok());
    assert!(judge(&c, call("gz", json!({"data": 3}))).is_err());
}
