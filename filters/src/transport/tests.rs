use super::*;
use crate::testutil::{headers, policy};

fn run(method: &str, path: &str, h: &[(&str, &str)]) -> Result<(), K> {
    let p = policy();
    check(&p, method, path, &headers(h)).map_err(|r| r.kind)
}

const POST_OK: &[(&str, &str)] = &[
    ("host", "127.0.0.1:8080"),
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = POST_OK.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_good_post_passes() {
    assert_eq!(run("POST", "/mcp", POST_OK), Ok(()));
    assert_eq!(
        run(
            "POST",
            "/mcp",
            &with(&[("origin", "http://localhost:3000")])
        ),
        Ok(())
    );
}

#[test]
fn path_and_method() {
    assert_eq!(run("POST", "/other", POST_OK), Err(K::PathNotFound));
    assert_eq!(run("PUT", "/mcp", POST_OK), Err(K::MethodNotAllowed));
}

#[test]
fn dns_rebinding_defence() {
    let h = [
        ("host", "evil.example.com"),
        ("content-type", "application/json"),
        ("accept", "*/*"),
    ];
    assert_eq!(run("POST", "/mcp", &h), Err(K::HostNotAllowed));
    assert_eq!(
        run(
            "POST",
            "/mcp",
            &with(&[("origin", "http://evil.example.com")])
        ),
        Err(K::OriginNotAllowed)
    );
    assert_eq!(
        run("POST", "/mcp", &with(&[("origin", "null")])),
        Err(K::OriginNotAllowed)
    );
    assert_eq!(
        run("POST", "/mcp", &[("content-type", "application/json")]),
        Err(K::MalformedHeader)
    );
}

#[test]
fn media_types_and_size() {
    let h = [
        ("host", "localhost"),
        ("content-type", "text/plain"),
        ("accept", "application/json, text/event-stream"),
    ];
    assert_eq!(run("POST", "/mcp", &h), Err(K::UnsupportedMediaType));
    let h = [
        ("host", "localhost"),
        ("content-type", "application/json; charset=utf-8"),
        ("accept", "application/json"),
    ];
    assert_eq!(run("POST", "/mcp", &h), Err(K::NotAcceptable));
    assert_eq!(
        run(
            "GET",
            "/mcp",
            &[("host", "localhost"), ("accept", "application/json")]
        ),
        Err(K::NotAcceptable)
    );
    assert_eq!(
        run(
            "GET",
            "/mcp",
            &[("host", "localhost"), ("accept", "text/event-stream")]
        ),
        Ok(())
    );
    assert_eq!(
        run("POST", "/mcp", &with(&[("content-length", "99999999")])),
        Err(K::PayloadTooLarge)
    );
    assert_eq!(
        run("POST", "/mcp", &with(&[("content-length", "-1")])),
        Err(K::MalformedHeader)
    );
}

#[test]
fn header_sanity() {
    assert_eq!(
        run("POST", "/mcp", &with(&[("mcp-session-id", "a b")])),
        Err(K::MalformedHeader)
    );
    assert_eq!(
        run(
            "POST",
            "/mcp",
            &with(&[("mcp-session-id", "abc"), ("mcp-session-id", "abc")])
        ),
        Err(K::MalformedHeader)
    );
    assert_eq!(
        run(
            "POST",
            "/mcp",
            &with(&[("mcp-method", "a"), ("mcp-method", "b")])
        ),
        Err(K::MalformedHeader)
    );
    assert_eq!(
        run("POST", "/mcp", &with(&[("mcp-session-id", "abc-123_X")])),
        Ok(())
    );
}

fn rule_at(method: &str, path: &str, h: &[(&str, &str)]) -> (&'static str, String) {
    let p = policy();
    let r = check(&p, method, path, &headers(h)).expect_err("refused");
    (r.rule, r.at().unwrap_or_default().to_string())
}

#[test]
fn rejections_name_rule_and_place() {
    let at = |rule: &'static str, at: &str| (rule, at.to_string());
    assert_eq!(
        rule_at("POST", "/other", POST_OK),
        at("unknown-path", "path")
    );
    assert_eq!(
        rule_at("PUT", "/mcp", POST_OK),
        at("method-not-allowed", "method")
    );
    assert_eq!(
        rule_at(
            "POST",
            "/mcp",
            &[
                ("host", "evil.example.com"),
                ("content-type", "application/json"),
                ("accept", "*/*")
            ]
        ),
        at("host-not-allowed", "header:host")
    );
    assert_eq!(
        rule_at("POST", "/mcp", &[("content-type", "application/json")]),
        at("missing-host", "header:host")
    );
    assert_eq!(
        rule_at("POST", "/mcp", &with(&[("origin", "null")])),
        at("origin-not-allowed", "header:origin")
    );
    assert_eq!(
        rule_at(
            "POST",
            "/mcp",
            &with(&[("mcp-method", "a"), ("mcp-method", "b")])
        ),
        at("repeated-header", "header:mcp-method")
    );
    assert_eq!(
        rule_at("POST", "/mcp", &with(&[("mcp-session-id", "a b")])),
        at("malformed-session-id", "header:mcp-session-id")
    );
    assert_eq!(
        rule_at("POST", "/mcp", &with(&[("content-length", "99999999")])),
        at("content-length-over-limit", "header:content-length")
    );
    assert_eq!(
        rule_at(
            "GET",
            "/mcp",
            &[("host", "localhost"), ("accept", "application/json")]
        ),
        at("accept-lacks-sse", "header:accept")
    );
}

#[test]
fn the_body_never_echoes_the_offending_header() {
    let p = policy();
    let h = headers(&with(&[("origin", "http://attacker-7f3a.example")]));
    let r = check(&p, "POST", "/mcp", &h).expect_err("refused");
    assert!(r.detail.contains("attacker-7f3a"), "the log keeps it");
    let body = String::from_utf8(r.json_body()).unwrap();
    assert!(!body.contains("attacker-7f3a"), "{body}");
}

#[test]
fn media_types_in_accept_are_read_in_any_case() {
    let accept = |v: &'static str| {
        run(
            "POST",
            "/mcp",
            &[
                ("host", "localhost"),
                ("content-type", "application/json"),
                ("accept", v),
            ],
        )
    };
    assert_eq!(accept("Application/JSON, Text/Event-Stream"), Ok(()));
    assert_eq!(accept(" APPLICATION/* ; q=1, TEXT/*"), Ok(()));
    assert_eq!(accept("application/json"), Err(K::NotAcceptable));
    assert_eq!(
        accept("application/jsonx, text/event-stream"),
        Err(K::NotAcceptable)
    );
}

#[test]
fn host_and_origin_are_matched_in_any_case_and_by_port() {
    let post = |host: &'static str, origin: Option<&'static str>| {
        let mut h = vec![
            ("host", host),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        h.extend(origin.map(|o| ("origin", o)));
        run("POST", "/mcp", &h)
    };
    assert_eq!(post("LOCALHOST:8080", None), Ok(()));
    assert_eq!(post("LocalHost", None), Ok(()));
    assert_eq!(post("[::1]:8080", None), Ok(()));
    assert_eq!(post("127.0.0.1:notaport", None), Err(K::HostNotAllowed));
    assert_eq!(post("[::1", None), Err(K::HostNotAllowed));
    assert_eq!(post("local host", None), Err(K::HostNotAllowed));
    assert_eq!(post("localhost", Some("HTTP://LOCALHOST:3000")), Ok(()));
    assert_eq!(
        post("localhost", Some("ftp://localhost")),
        Err(K::OriginNotAllowed)
    );
}
