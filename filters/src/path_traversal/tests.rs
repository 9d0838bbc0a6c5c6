use super::*;
use crate::envelope::EnvelopeFilter;
use crate::testutil::{headers, policy_with};
use serde_json::json;

fn run_as(
    extra: &str,
    tenant: Option<&str>,
    h: &[(&str, &str)],
    body: Value,
) -> Result<(), String> {
    let p = policy_with(extra);
    let h = headers(h);
    let body = serde_json::to_vec(&body).unwrap();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, &body);
    ex.tenant = tenant.map(Into::into);
    if let Decision::Reject(r) = EnvelopeFilter.check(&mut ex) {
        panic!("envelope refused the test message: {r:?}");
    }
    match PathTraversalFilter.check(&mut ex) {
        Decision::Continue => Ok(()),
        Decision::Reject(r) => {
            assert_eq!(r.kind, K::PathNotAllowed);
            assert_eq!(r.kind.wire().code, -32602);
            Err(r.detail)
        }
    }
}

fn run(extra: &str, body: Value) -> Result<(), String> {
    run_as(extra, None, &[], body)
}

fn read(uri: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": uri}})
}

fn call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

#[test]
fn resource_uris_are_judged_in_every_method() {
    assert!(run("", read("file:///srv/data/a.txt")).is_ok());
    let err = run("", read("file:///srv/data/%2e%2e/%2e%2e/etc/passwd")).unwrap_err();
    assert!(
        err.starts_with("dot-dot-segment in resources/read params.uri"),
        "{err}"
    );
    for method in ["resources/subscribe", "resources/unsubscribe"] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"uri": "demo://x/..%5c..%5csecret"}});
        assert!(run("", body).is_err(), "{method}");
    }
    let other =
        json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "../x"}});
    assert!(run("", other).is_ok(), "only listed methods are inspected");
}

#[test]
fn mcp_name_header_of_resources_read() {
    let body = read("demo://readme");
    assert!(run_as("", None, &[("mcp-name", "demo://readme")], body.clone()).is_ok());
    let err = run_as("", None, &[("mcp-name", "../../etc/passwd")], body.clone()).unwrap_err();
    assert!(err.contains("Mcp-Name"), "{err}");
    // =?base64?Li4vLi4vZXRjL3Bhc3N3ZA==?= is ../../etc/passwd
    let b64 = [("mcp-name", "=?base64?Li4vLi4vZXRjL3Bhc3N3ZA==?=")];
    assert!(run_as("", None, &b64, body.clone()).is_err());
    let bad = [("mcp-name", "=?base64?***?=")];
    assert!(run_as("", None, &bad, body).is_err());
}

#[test]
fn completion_references() {
    let body = |uri: &str, value: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "completion/complete", "params": {
            "ref": {"type": "ref/resource", "uri": uri},
            "argument": {"name": "path", "value": value}}})
    };
    let roots = "[paths]\nallowed_roots = [\"file:///srv/data/**\"]\n";
    assert!(
        run(roots, body("file:///{path}", "rep")).is_ok(),
        "templates are not scoped"
    );
    assert!(run("", body("file:///{path}/../..", "")).is_err());
    assert!(run("", body("file:///{path}", "../../etc")).is_err());
}

#[test]
fn tool_arguments_by_pointer_and_heuristic() {
    let marked = "[paths.tools]\nread_file = [\"/path\", \"/more\"]\n";
    assert!(run(marked, call("read_file", json!({"path": "reports/q1.txt"}))).is_ok());
    assert!(run(marked, call("read_file", json!({"path": ".."}))).is_err());
    assert!(run(
        marked,
        call("read_file", json!({"more": ["a", "..\\b\\.."]}))
    )
    .is_err());
    let unmarked = call("search", json!({"q": {"deep": ["%2e%2e%2fetc%2fpasswd"]}}));
    assert!(
        run(marked, unmarked.clone()).is_ok(),
        "heuristic is off by default"
    );
    let err = run("[paths]\nheuristic = true\n", unmarked).unwrap_err();
    assert!(
        err.contains("/q/deep/0") && err.contains("heuristic"),
        "{err}"
    );
    // The heuristic leaves prose, ellipses and other schemes alone.
    let h = "[paths]\nheuristic = true\n";
    for text in [
        "wait... what?",
        "50% off",
        "https://example.com/a/../b",
        "a.. b",
    ] {
        assert!(
            run(h, call("echo", json!({"text": text}))).is_ok(),
            "{text}"
        );
    }
}

#[test]
fn schemes_and_roots_per_tenant_and_upstream() {
    let p = "[paths]\nallowed_schemes = [\"file\", \"demo\"]\nallowed_roots = [\"file:///srv/data/**\", \"demo://**\"]\n\
             [paths.tools]\nread_file = [\"/path\"]\n\
             [tenants.acme]\napi_keys_sha256 = []\n[tenants.acme.paths]\nallowed_roots = [\"file:///srv/data/acme/**\"]\n";
    assert!(run(p, read("file:///srv/data/x.txt")).is_ok());
    assert!(run(p, read("demo://readme")).is_ok());
    assert_eq!(
        run(p, read("repo://x/y")).unwrap_err(),
        "scheme-not-allowed in resources/read params.uri: \"repo://x/y\""
    );
    assert!(run(p, read("file:///srv/database/x"))
        .unwrap_err()
        .starts_with("outside-allowed-roots"));
    assert!(
        run(p, read("relative/x")).is_err(),
        "a relative resource URI has no root"
    );
    assert!(run(p, call("read_file", json!({"path": "relative/x"}))).is_ok());
    assert!(run(p, call("read_file", json!({"path": "/etc/passwd"}))).is_err());
    // acme replaces the roots, keeps the schemes.
    assert!(run_as(p, Some("acme"), &[], read("file:///srv/data/x.txt")).is_err());
    assert!(run_as(p, Some("acme"), &[], read("file:///srv/data/acme/x.txt")).is_ok());
    assert!(run_as(p, Some("acme"), &[], read("repo://acme/x")).is_err());
    // The upstream's scope applies on top of the tenant's.
    let up = "[paths.upstreams.default]\nallowed_roots = [\"file:///srv/**\"]\n";
    assert!(run(up, read("file:///srv/x")).is_ok());
    assert!(run(up, read("file:///etc/x")).is_err());
}

#[test]
fn no_roots_still_refuses_traversal() {
    assert!(run("", read("file:///etc/passwd")).is_ok());
    assert!(run("", read("file:///srv/../etc/passwd")).is_err());
    assert!(run("", read("file://attacker.example/share/x")).is_err());
}

/// The rejection itself, for the rule, the location and the body.
fn refusal(extra: &str, h: &[(&str, &str)], body: Value) -> Rejection {
    let p = policy_with(extra);
    let h = headers(h);
    let body = serde_json::to_vec(&body).unwrap();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, &body);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    match PathTraversalFilter.check(&mut ex) {
        Decision::Continue => panic!("accepted"),
        Decision::Reject(r) => r,
    }
}

fn rule_at(r: &Rejection) -> (&'static str, &str) {
    (r.rule, r.at().unwrap_or_default())
}

#[test]
fn rejections_name_rule_and_place() {
    let r = refusal("", &[], read("file:///srv/data/%2e%2e/%2e%2e/etc/passwd"));
    assert_eq!(rule_at(&r), ("dot-dot-segment", "params.uri"));
    let r = refusal("", &[("mcp-name", "~/.ssh/id_rsa")], read("demo://readme"));
    assert_eq!(rule_at(&r), ("home-directory", "header:mcp-name"));
    let r = refusal("", &[("mcp-name", "=?base64?***?=")], read("demo://readme"));
    assert_eq!(rule_at(&r), ("undecodable-header", "header:mcp-name"));
    let completion = json!({"jsonrpc": "2.0", "id": 1, "method": "completion/complete", "params": {
        "ref": {"type": "ref/resource", "uri": "file:///{path}"},
        "argument": {"name": "path", "value": "..\\..\\etc"}}});
    let r = refusal("", &[], completion);
    assert_eq!(rule_at(&r), ("dot-dot-segment", "params.argument.value"));
    let marked = "[paths.tools]\nread_file = [\"/path\", \"/opts/more\"]\n";
    let r = refusal(marked, &[], call("read_file", json!({"path": "a\u{0}b"})));
    assert_eq!(rule_at(&r), ("nul-byte", "params.arguments.path"));
    let r = refusal(
        marked,
        &[],
        call(
            "read_file",
            json!({"opts": {"more": ["ok", "//srv/share"]}}),
        ),
    );
    assert_eq!(rule_at(&r), ("unc-path", "params.arguments.opts.more"));
    let scoped = "[paths]\nallowed_schemes = [\"file\"]\nallowed_roots = [\"file:///srv/**\"]\n";
    let r = refusal(scoped, &[], read("demo://readme"));
    assert_eq!(rule_at(&r), ("scheme-not-allowed", "params.uri"));
    let r = refusal(scoped, &[], read("file:///etc/hosts"));
    assert_eq!(rule_at(&r), ("outside-allowed-roots", "params.uri"));
}

#[test]
fn the_body_never_echoes_the_offending_value() {
    let r = refusal("", &[], read("../../etc/passwd"));
    assert_eq!(r.kind, K::PathNotAllowed);
    assert!(r.detail.contains("passwd"), "the log keeps the value");
    let body = String::from_utf8(r.json_body()).unwrap();
    assert!(!body.contains("passwd"), "{body}");
    assert!(!body.contains(".."), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["error"],
        json!({"code": -32602, "message": "Invalid params",
               "data": {"rule": "dot-dot-segment", "at": "params.uri"}})
    );
}

#[test]
fn heuristic_hits_do_not_echo_the_clients_argument_names() {
    let h = "[paths]\nheuristic = true\n";
    let body = call(
        "search",
        json!({"secret_key_9b1e": {"deep": ["%2e%2e%2fetc%2fshadow"]}}),
    );
    let r = refusal(h, &[], body);
    assert_eq!(rule_at(&r), ("dot-dot-segment", "params.arguments"));
    assert!(
        r.detail.contains("/secret_key_9b1e/deep/0"),
        "the log has the place"
    );
    let body = String::from_utf8(r.json_body()).unwrap();
    assert!(
        !body.contains("secret_key_9b1e") && !body.contains("shadow"),
        "{body}"
    );
}

#[test]
fn batch_items_are_located() {
    let p = policy_with("[limits]\nallow_batches = true\n");
    let h = headers(&[]);
    let body = serde_json::to_vec(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "a/../../b"}},
    ]))
    .unwrap();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, &body);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    let Decision::Reject(r) = PathTraversalFilter.check(&mut ex) else {
        panic!("accepted");
    };
    assert_eq!(rule_at(&r), ("dot-dot-segment", "[1].params.uri"));
}
