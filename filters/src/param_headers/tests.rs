use super::declarations::{scan, MAX_DECLARATIONS};
use super::*;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::testutil::{headers, policy};
use serde_json::json;

const MODERN: &str = "2026-07-28";

/// The conformance suite's fixture: one string argument mirrored as
/// `Region`, plus an integer, a boolean and a nested one.
fn book() -> ParamHeaderBook {
    let b = ParamHeaderBook::new();
    b.learn_listing(&[json!({
        "name": "route",
        "inputSchema": {
            "type": "object",
            "properties": {
                "region": {"type": "string", "x-mcp-header": "Region"},
                "count": {"type": "integer", "x-mcp-header": "Count"},
                "fast": {"type": "boolean", "x-mcp-header": "Fast"},
                "target": {"type": "object", "properties": {
                    "zone": {"type": "string", "x-mcp-header": "Zone"}
                }},
                "note": {"type": "string"}
            },
            "required": ["region"]
        }
    })]);
    b
}

fn call(args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "route", "arguments": args,
                      "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                                "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string()
}

/// Runs envelope, era and this filter; the rejection's rule on refusal.
fn run(book: &ParamHeaderBook, extra: &[(&str, &str)], body: &str) -> Result<(), &'static str> {
    let p = policy();
    let mut pairs = vec![
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "route"),
    ];
    pairs.extend_from_slice(extra);
    let h = headers(&pairs);
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.param_headers = Some(book);
    for f in [
        &EnvelopeFilter as &dyn Filter,
        &EraFilter,
        &ParamHeaderFilter,
    ] {
        if let Decision::Reject(r) = f.check(&mut ex) {
            assert_eq!(r.kind, K::HeaderMismatch);
            assert_eq!(r.kind.wire().status, 400);
            assert_eq!(r.kind.wire().code, -32020);
            return Err(r.rule);
        }
    }
    Ok(())
}

#[test]
fn matching_headers_pass_plain_or_base64() {
    let b = book();
    let body = call(json!({"region": "Hello"}));
    assert_eq!(run(&b, &[("mcp-param-region", "Hello")], &body), Ok(()));
    assert_eq!(
        run(&b, &[("Mcp-Param-Region", "=?base64?SGVsbG8=?=")], &body),
        Ok(())
    );
    // Without the whole sentinel a value is literal.
    let literal = call(json!({"region": "=?base64?SGVsbG8="}));
    assert_eq!(
        run(&b, &[("mcp-param-region", "=?base64?SGVsbG8=")], &literal),
        Ok(())
    );
    let bare = call(json!({"region": "SGVsbG8="}));
    assert_eq!(run(&b, &[("mcp-param-region", "SGVsbG8=")], &bare), Ok(()));
    // Non-ASCII travels as Base64.
    let accented = call(json!({"region": "écho"}));
    assert_eq!(
        run(
            &b,
            &[("mcp-param-region", "=?base64?w6ljaG8=?=")],
            &accented
        ),
        Ok(())
    );
}

#[test]
fn the_conformance_suites_refusals() {
    let b = book();
    let body = call(json!({"region": "Hello"}));
    // Padding missing, characters outside the alphabet.
    assert_eq!(
        run(&b, &[("mcp-param-region", "=?base64?SGVsbG8?=")], &body),
        Err("mcp-param-invalid-encoding")
    );
    assert_eq!(
        run(&b, &[("mcp-param-region", "=?base64?SGVs!!!bG8=?=")], &body),
        Err("mcp-param-invalid-encoding")
    );
    assert_eq!(run(&b, &[], &body), Err("missing-mcp-param"));
    assert_eq!(
        run(&b, &[("mcp-param-region", "World")], &body),
        Err("mcp-param-mismatch")
    );
    assert_eq!(
        run(
            &b,
            &[("mcp-param-region", "Hello"), ("mcp-param-region", "Hello")],
            &body
        ),
        Err("mcp-param-invalid-encoding")
    );
    // Values are case-sensitive.
    assert_eq!(
        run(&b, &[("mcp-param-region", "hello")], &body),
        Err("mcp-param-mismatch")
    );
}

#[test]
fn numbers_compare_as_numbers_and_booleans_as_words() {
    let b = book();
    let body = call(json!({"count": 42, "fast": true}));
    let ok = [("mcp-param-count", "42"), ("mcp-param-fast", "true")];
    assert_eq!(run(&b, &ok, &body), Ok(()));
    let decimal = [("mcp-param-count", "42.0"), ("mcp-param-fast", "true")];
    assert_eq!(run(&b, &decimal, &body), Ok(()));
    let wrong = [("mcp-param-count", "43"), ("mcp-param-fast", "true")];
    assert_eq!(run(&b, &wrong, &body), Err("mcp-param-mismatch"));
    // Not a plain decimal: compared as text, and unequal.
    let exp = [("mcp-param-count", "4.2e1"), ("mcp-param-fast", "true")];
    assert_eq!(run(&b, &exp, &body), Err("mcp-param-mismatch"));
    let shouting = [("mcp-param-count", "42"), ("mcp-param-fast", "TRUE")];
    assert_eq!(run(&b, &shouting, &body), Err("mcp-param-mismatch"));
    let big = call(json!({"count": 9007199254740993u64}));
    assert_eq!(
        run(&b, &[("mcp-param-count", "9007199254740993")], &big),
        Ok(())
    );
    assert_eq!(
        run(&b, &[("mcp-param-count", "9007199254740992")], &big),
        Err("mcp-param-mismatch")
    );
}

#[test]
fn nested_declarations_are_checked() {
    let b = book();
    let body = call(json!({"target": {"zone": "eu-1"}}));
    assert_eq!(run(&b, &[("mcp-param-zone", "eu-1")], &body), Ok(()));
    assert_eq!(run(&b, &[], &body), Err("missing-mcp-param"));
}

#[test]
fn absent_null_or_unmirrorable_arguments_need_no_header() {
    let b = book();
    assert_eq!(run(&b, &[], &call(json!({}))), Ok(()));
    assert_eq!(run(&b, &[], &call(json!({"region": null}))), Ok(()));
    assert_eq!(run(&b, &[], &call(json!({"region": ["a"]}))), Ok(()));
    // A header without its argument is not the filter's concern.
    assert_eq!(
        run(&b, &[("mcp-param-region", "x")], &call(json!({}))),
        Ok(())
    );
}

#[test]
fn unknown_tools_legacy_requests_and_other_methods_pass() {
    let b = book();
    let other = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "unlisted", "arguments": {"region": "x"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN,
                             "io.modelcontextprotocol/clientCapabilities": {}}}});
    assert_eq!(run(&b, &[], &other.to_string()), Ok(()));
    // The stateful revision has no such headers.
    let legacy = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "route", "arguments": {"region": "x"}}});
    let p = policy();
    let h = headers(&[("mcp-protocol-version", "2025-11-25")]);
    let body = legacy.to_string();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, body.as_bytes());
    ex.param_headers = Some(&b);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    assert!(matches!(EraFilter.check(&mut ex), Decision::Continue));
    assert!(matches!(
        ParamHeaderFilter.check(&mut ex),
        Decision::Continue
    ));
}

#[test]
fn only_admissible_declarations_are_scanned() {
    let schema = json!({
        "type": "object",
        "x-mcp-header": "Root",
        "properties": {
            "a": {"type": "string", "x-mcp-header": "Alpha"},
            "dup": {"type": "string", "x-mcp-header": "ALPHA"},
            "spaced": {"type": "string", "x-mcp-header": "Has Space"},
            "empty": {"type": "string", "x-mcp-header": ""},
            "obj": {"type": "object", "x-mcp-header": "Obj"},
            "list": {"type": "array", "items": {"type": "string", "x-mcp-header": "Item"}},
            "n": {"type": "number", "x-mcp-header": "N"}
        }
    });
    let found = scan(&schema);
    let names: Vec<&str> = found.iter().map(|d| d.header.as_str()).collect();
    // serde_json keeps keys sorted: "a" before "dup".
    assert_eq!(names, ["alpha", "n"]);
    assert_eq!(found[0].path, ["a"]);
    assert_eq!(found[1].kind, ParamType::Number);
}

#[test]
fn the_book_follows_listings_and_is_bounded() {
    let b = book();
    assert!(b.declarations("route").is_some());
    // Listed again without declarations: forgotten.
    b.learn_listing(&[json!({"name": "route", "inputSchema": {"type": "object"}})]);
    assert!(b.declarations("route").is_none());
    assert!(b.is_empty());
    let many: serde_json::Map<String, Value> = (0..MAX_DECLARATIONS + 10)
        .map(|i| {
            (
                format!("p{i:03}"),
                json!({"type": "string", "x-mcp-header": format!("P{i}")}),
            )
        })
        .collect();
    let found = scan(&json!({"type": "object", "properties": many}));
    assert_eq!(found.len(), MAX_DECLARATIONS);
}
