use super::*;
use crate::envelope::EnvelopeFilter;
use crate::era::EraFilter;
use crate::testutil::{headers, policy};

fn run(method: &str, h: &[(&str, &str)], body: &str) -> Result<(), K> {
    let p = policy();
    let h = headers(h);
    let mut ex = Exchange::new(&p, method, "/mcp", &h, body.as_bytes());
    for f in [&EnvelopeFilter as &dyn Filter, &EraFilter, &ModernFilter] {
        if let Decision::Reject(r) = f.check(&mut ex) {
            return Err(r.kind);
        }
    }
    Ok(())
}

fn call(meta_version: &str, name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"{meta_version}","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

const OK_HEADERS: &[(&str, &str)] = &[
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "echo"),
];

#[test]
fn matching_headers_pass() {
    assert_eq!(run("POST", OK_HEADERS, &call("2026-07-28", "echo")), Ok(()));
    let padded = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "  echo "),
    ];
    assert_eq!(run("POST", &padded, &call("2026-07-28", "echo")), Ok(()));
    let b64 = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?w6ljaG8=?="),
    ];
    assert_eq!(run("POST", &b64, &call("2026-07-28", "écho")), Ok(()));
}

#[test]
fn mismatches_are_32020() {
    let wrong_name = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "other"),
    ];
    assert_eq!(
        run("POST", &wrong_name, &call("2026-07-28", "echo")),
        Err(K::HeaderMismatch)
    );
    let no_name = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
    ];
    assert_eq!(
        run("POST", &no_name, &call("2026-07-28", "echo")),
        Err(K::HeaderMismatch)
    );
    let wrong_method = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
        ("mcp-name", "echo"),
    ];
    assert_eq!(
        run("POST", &wrong_method, &call("2026-07-28", "echo")),
        Err(K::HeaderMismatch)
    );
    let no_version = [("mcp-method", "tools/call"), ("mcp-name", "echo")];
    assert_eq!(
        run("POST", &no_version, &call("2026-07-28", "echo")),
        Err(K::HeaderMismatch)
    );
}

#[test]
fn version_allowlist_is_32022() {
    let h = [
        ("mcp-protocol-version", "2099-01-01"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    assert_eq!(
        run("POST", &h, &call("2099-01-01", "echo")),
        Err(K::UnsupportedModernVersion)
    );
}

#[test]
fn meta_is_required() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let h = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    assert_eq!(run("POST", &h, body), Err(K::MissingMeta));
    let no_caps = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    assert_eq!(run("POST", &h, no_caps), Err(K::MissingMeta));
}

#[test]
fn get_and_delete_are_405_and_responses_refused() {
    assert_eq!(
        run("GET", &[("mcp-protocol-version", "2026-07-28")], ""),
        Err(K::MethodNotAllowed)
    );
    assert_eq!(
        run("DELETE", &[("mcp-protocol-version", "2026-07-28")], ""),
        Err(K::MethodNotAllowed)
    );
    let resp = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    assert_eq!(
        run("POST", &[("mcp-protocol-version", "2026-07-28")], resp),
        Err(K::ResponseNotAllowed)
    );
}

fn refusal(method: &str, h: &[(&str, &str)], body: &str) -> Rejection {
    let p = policy();
    let h = headers(h);
    let mut ex = Exchange::new(&p, method, "/mcp", &h, body.as_bytes());
    for f in [&EnvelopeFilter as &dyn Filter, &EraFilter, &ModernFilter] {
        if let Decision::Reject(r) = f.check(&mut ex) {
            return r;
        }
    }
    panic!("accepted {body}");
}

fn rule_at(method: &str, h: &[(&str, &str)], body: &str) -> (&'static str, String) {
    let r = refusal(method, h, body);
    (r.rule, r.at().unwrap_or_default().to_string())
}

#[test]
fn rejections_name_rule_and_place() {
    let at = |rule: &'static str, at: &str| (rule, at.to_string());
    let ok = call("2026-07-28", "echo");
    let without = |name: &str| -> Vec<(&str, &str)> {
        OK_HEADERS
            .iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect()
    };
    let replaced = |name: &'static str, v: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut h: Vec<_> = OK_HEADERS
            .iter()
            .copied()
            .filter(|(k, _)| *k != name)
            .collect();
        h.push((name, v));
        h
    };
    assert_eq!(
        rule_at("POST", &without("mcp-name"), &ok),
        at("missing-mcp-name", "header:mcp-name")
    );
    assert_eq!(
        rule_at("POST", &replaced("mcp-name", "other"), &ok),
        at("mcp-name-mismatch", "header:mcp-name")
    );
    assert_eq!(
        rule_at("POST", &without("mcp-method"), &ok),
        at("missing-mcp-method", "header:mcp-method")
    );
    assert_eq!(
        rule_at("POST", &replaced("mcp-method", "tools/list"), &ok),
        at("mcp-method-mismatch", "header:mcp-method")
    );
    assert_eq!(
        rule_at("POST", &replaced("mcp-name", "=?base64?***?="), &ok),
        at("undecodable-header", "header:mcp-name")
    );
    assert_eq!(
        rule_at("POST", &without("mcp-protocol-version"), &ok),
        at(
            "missing-protocol-version-header",
            "header:mcp-protocol-version"
        )
    );
    assert_eq!(
        rule_at("POST", &replaced("mcp-protocol-version", "2099-01-01"), &ok),
        at(
            "protocol-version-header-mismatch",
            "header:mcp-protocol-version"
        )
    );
    let h = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];
    let no_caps = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    assert_eq!(
        rule_at("POST", &h, no_caps),
        at(
            "missing-meta-client-capabilities",
            r#"params._meta["io.modelcontextprotocol/clientCapabilities"]"#
        )
    );
    let no_meta = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(
        rule_at("POST", &h, no_meta),
        at(
            "missing-meta-protocol-version",
            r#"params._meta["io.modelcontextprotocol/protocolVersion"]"#
        )
    );
    assert_eq!(
        rule_at("GET", &[("mcp-protocol-version", "2026-07-28")], ""),
        at("stateless-method-not-allowed", "method")
    );
}

#[test]
fn unsupported_version_lists_ours_and_echoes_the_requested_version() {
    let h = [
        ("mcp-protocol-version", "2099-01-01"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let r = refusal("POST", &h, &call("2099-01-01", "echo"));
    let v: Value = serde_json::from_slice(&r.json_body()).unwrap();
    assert_eq!(
        v["error"]["data"],
        json!({"supported": ["2026-07-28"], "rule": "unsupported-protocol-version",
               "at": "header:mcp-protocol-version", "requested": "2099-01-01"})
    );
}

#[test]
fn only_version_shaped_requests_are_echoed() {
    use crate::modern::echoable_version;
    assert_eq!(echoable_version("v999.0.0"), Some("v999.0.0"));
    assert_eq!(echoable_version("2027-01-01"), Some("2027-01-01"));
    for bad in ["", "<script>", "a b", "x\"y", &"9".repeat(33), "ü"] {
        assert_eq!(echoable_version(bad), None, "{bad:?}");
    }
}
