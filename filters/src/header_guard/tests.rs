use super::*;
use crate::testutil::{headers, policy, policy_with};

const OK_HEAD: &str = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";

fn raw(head: &str) -> Result<(), K> {
    let p = policy();
    check_raw(head.as_bytes(), &p.headers).map_err(|r| r.kind)
}

fn with_line(line: &str) -> String {
    OK_HEAD.replacen("\r\n\r\n", &format!("\r\n{line}\r\n\r\n"), 1)
}

#[test]
fn a_clean_head_passes() {
    assert_eq!(raw(OK_HEAD), Ok(()));
    assert_eq!(raw(&with_line("Connection: keep-alive")), Ok(()));
    assert_eq!(raw(&with_line("X-Note:\tvalue with\ttabs")), Ok(()));
    let chunked = OK_HEAD.replace("Content-Length: 2", "Transfer-Encoding: chunked");
    assert_eq!(raw(&chunked), Ok(()));
}

#[test]
fn injection_shapes() {
    assert_eq!(
        raw(&OK_HEAD.replace("\r\nHost", "\nHost")),
        Err(K::HeaderInjection)
    );
    assert_eq!(raw(&with_line("X-A: a\rX-B: b")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("X-A: a\r\n b")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("X-A: a\0b")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("X-A: a\x7fb")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("X-A : a")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("X A: a")), Err(K::HeaderInjection));
    assert_eq!(raw(&with_line("no colon here")), Err(K::HeaderInjection));
    assert_eq!(
        raw(&with_line("Connection: close, Mcp-Protocol-Version")),
        Err(K::HeaderInjection)
    );
    for line in [
        "POST  /mcp HTTP/1.1",
        "POST http://x/mcp HTTP/1.1",
        "POST /mcp HTTP/2.0",
        "POST /mcp",
    ] {
        let head = OK_HEAD.replacen("POST /mcp HTTP/1.1", line, 1);
        assert_eq!(raw(&head), Err(K::HeaderInjection), "{line}");
    }
}

#[test]
fn smuggling_shapes() {
    assert_eq!(
        raw(&with_line("Transfer-Encoding: chunked")),
        Err(K::AmbiguousFraming)
    );
    assert_eq!(
        raw(&with_line("Content-Length: 2")),
        Err(K::AmbiguousFraming)
    );
    for te in ["gzip, chunked", "chunked, chunked", "xchunked", "identity"] {
        let head = OK_HEAD.replace("Content-Length: 2", &format!("Transfer-Encoding: {te}"));
        assert_eq!(raw(&head), Err(K::AmbiguousFraming), "{te}");
    }
    let two_te = OK_HEAD.replace(
        "Content-Length: 2",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    );
    assert_eq!(raw(&two_te), Err(K::AmbiguousFraming));
    for cl in ["+2", "0x2", "2, 2", "-1", "2 2", ""] {
        let head = OK_HEAD.replace("Content-Length: 2", &format!("Content-Length: {cl}"));
        assert_eq!(raw(&head), Err(K::AmbiguousFraming), "{cl:?}");
    }
    let http10 = OK_HEAD
        .replace("HTTP/1.1", "HTTP/1.0")
        .replace("Content-Length: 2", "Transfer-Encoding: chunked");
    assert_eq!(raw(&http10), Err(K::AmbiguousFraming));
    assert_eq!(
        raw(&with_line("Host: evil.example")),
        Err(K::MalformedHeader)
    );
    assert_eq!(
        raw(&with_line("Transfer_Encoding: chunked")),
        Err(K::HeaderInjection)
    );
    assert_eq!(
        raw(&with_line("content_length: 1")),
        Err(K::HeaderInjection)
    );
    assert_eq!(raw(&with_line("X_Custom_Header: 1")), Ok(()));
    assert_eq!(
        raw(&with_line("MCP-METHOD: a\r\nmcp-method: b")),
        Err(K::MalformedHeader)
    );
}

#[test]
fn size_limits_are_431() {
    let p = policy_with("[headers]\nmax_block_bytes = 1024\nmax_field_bytes = 256\n");
    let long_line = with_line(&format!("X-Big: {}", "a".repeat(300)));
    assert_eq!(
        check_raw(long_line.as_bytes(), &p.headers).map_err(|r| r.kind),
        Err(K::HeaderTooLarge)
    );
    let many: String = (0..40)
        .map(|i| format!("X-{i}: {}\r\n", "b".repeat(30)))
        .collect();
    let big = with_line(many.trim_end());
    assert_eq!(
        check_raw(big.as_bytes(), &p.headers).map_err(|r| r.kind),
        Err(K::HeaderTooLarge)
    );
    let lines: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let count = with_line(lines.trim_end());
    assert_eq!(
        raw(&count),
        Err(K::HeaderTooLarge),
        "over the default max_count of 100"
    );
    let h = headers(&[("x-big", &"a".repeat(300))]);
    assert_eq!(
        check_map(&h, &p.headers).map_err(|r| r.kind),
        Err(K::HeaderTooLarge)
    );
}

#[test]
fn the_map_is_checked_without_a_raw_head() {
    let p = policy();
    let ok = headers(&[("host", "localhost"), ("transfer-encoding", "chunked")]);
    assert!(check_map(&ok, &p.headers).is_ok());
    let te = headers(&[("transfer-encoding", "gzip")]);
    assert_eq!(
        check_map(&te, &p.headers).map_err(|r| r.kind),
        Err(K::AmbiguousFraming)
    );
    let conn = headers(&[("connection", "authorization")]);
    assert_eq!(
        check_map(&conn, &p.headers).map_err(|r| r.kind),
        Err(K::HeaderInjection)
    );
}

fn raw_rule(head: &str) -> (&'static str, String) {
    let p = policy();
    let r = check_raw(head.as_bytes(), &p.headers).expect_err("refused");
    (r.rule, r.at().unwrap_or_default().to_string())
}

#[test]
fn rejections_name_rule_and_place() {
    let at = at_rule;
    assert_eq!(
        raw_rule(&OK_HEAD.replace("\r\nHost", "\nHost")),
        at("bare-lf", "head")
    );
    assert_eq!(
        raw_rule(&with_line("X-A: a\r\n b")),
        at("obsolete-line-folding", "headers")
    );
    assert_eq!(
        raw_rule(&OK_HEAD.replacen("HTTP/1.1", "HTTP/2.0", 1)),
        at("unsupported-http-version", "request-line")
    );
    assert_eq!(
        raw_rule(&with_line("Transfer-Encoding: chunked")),
        at(
            "content-length-with-transfer-encoding",
            "header:transfer-encoding"
        )
    );
    assert_eq!(
        raw_rule(&OK_HEAD.replace("Content-Length: 2", "Content-Length: +2")),
        at("malformed-content-length", "header:content-length")
    );
    assert_eq!(
        raw_rule(&with_line("Host: evil.example")),
        at("repeated-header", "header:host")
    );
    assert_eq!(
        raw_rule(&with_line("Transfer_Encoding: chunked")),
        at("underscore-header-name", "header:transfer-encoding")
    );
    assert_eq!(
        raw_rule(&with_line("Connection: close, Mcp-Protocol-Version")),
        at("connection-names-end-to-end-header", "header:connection")
    );
    assert_eq!(
        raw_rule(&with_line("Mcp-Method: a\0b")),
        at("nul-in-header-value", "header:mcp-method")
    );
}

#[test]
fn client_header_names_and_values_are_not_echoed() {
    // An unknown header's name is the client's: located as `headers`.
    assert_eq!(
        raw_rule(&with_line("X-Name-4d2c: a\x01b")),
        ("control-byte-in-header-value", "headers".to_string())
    );
    let p = policy();
    for head in [
        with_line("X-Name-4d2c: a\x01b"),
        with_line("X-Name-4d2c : a"),
        with_line("Connection: x-name-4d2c"),
        OK_HEAD.replace("Content-Length: 2", "Transfer-Encoding: x-name-4d2c"),
    ] {
        let r = check_raw(head.as_bytes(), &p.headers).expect_err("refused");
        let body = String::from_utf8(r.json_body()).unwrap();
        assert!(!body.to_ascii_lowercase().contains("4d2c"), "{body}");
    }
}

#[test]
fn heads_cut_short_and_names_in_any_case() {
    // Heads with no request line, no end, or a CR left before the final CRLF.
    assert_eq!(raw_rule("").0, "unterminated-head");
    assert_eq!(raw_rule("\r\n").0, "empty-head");
    assert_eq!(raw_rule("\r\n\r\n").0, "malformed-request-line");
    assert_eq!(
        raw_rule("POST /mcp HTTP/1.1\r\nHost: a\r\n").0,
        "unterminated-head"
    );
    assert_eq!(
        raw_rule("POST /mcp HTTP/1.1\r\nHost: a\r\r\n\r\n").0,
        "bare-cr"
    );
    assert_eq!(raw("POST /mcp HTTP/1.1\r\n\r\n"), Ok(()));
    // The same singleton in two spellings is one header, repeated.
    assert_eq!(
        raw_rule(&with_line("content-LENGTH: 2")),
        at_rule("repeated-header", "header:content-length")
    );
    assert_eq!(
        raw_rule(&with_line("TRANSFER_encoding: chunked")),
        at_rule("underscore-header-name", "header:transfer-encoding")
    );
    assert_eq!(raw(&with_line("CONNECTION: Keep-Alive")), Ok(()));
    // Reported in lower case, as the map's names are.
    let p = policy();
    let r = check_raw(with_line("MCP-Method: a\0b").as_bytes(), &p.headers).expect_err("NUL");
    assert_eq!(r.at().unwrap_or_default(), "header:mcp-method");
}

fn at_rule(rule: &'static str, at: &str) -> (&'static str, String) {
    (rule, at.to_string())
}

#[test]
fn tchar_table_is_rfc_9110_tchar() {
    for b in 0..=255u8 {
        let rfc = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        assert_eq!(is_tchar(b), rfc, "byte 0x{b:02x}");
    }
}
