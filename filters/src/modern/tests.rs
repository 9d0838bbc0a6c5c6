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
