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
