use http::{HeaderMap, HeaderValue};

use super::*;

fn map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (name, value) in pairs {
        m.append(*name, HeaderValue::from_bytes(value).unwrap());
    }
    m
}

#[test]
fn hop_headers_and_splitting_values_are_never_relayed_each_named_once() {
    let m = map(&[
        ("content-type", b"application/json"),
        ("connection", b"keep-alive"),
        ("keep-alive", b"timeout=5"),
        ("te", b"trailers"),
        ("trailer", b"x"),
        ("upgrade", b"h2c"),
        ("proxy-connection", b"close"),
        ("x-ok", b"fine"),
        ("x-tab", b"a\tb"),
        ("connection", b"close"),
    ]);
    let mut names: Vec<String> = never_relayed(&m).iter().map(|n| n.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade"
        ]
    );
}

#[test]
fn an_event_stream_is_known_by_its_media_type_in_any_case() {
    let is = |ct: &'static [u8]| is_event_stream(&map(&[("content-type", ct)]));
    assert!(is(b"text/event-stream"));
    assert!(is(b"  Text/Event-Stream; charset=utf-8"));
    assert!(!is(b"text/event"));
    assert!(!is(b"application/json"));
    assert!(!is(b"\xfftext/event-stream"));
    assert!(!is_event_stream(&HeaderMap::new()));
}

#[test]
fn only_a_plain_decimal_equal_to_the_body_length_is_kept() {
    assert!(is_length(b"4096", 4096));
    assert!(is_length(b"0", 0));
    assert!(!is_length(b"4095", 4096));
    assert!(!is_length(b"04096", 4096));
    assert!(!is_length(b"+4096", 4096));
    assert!(!is_length(b" 4096", 4096));
    assert!(!is_length(b"", 0));
    assert!(!is_length(b"99999999999999999999999", 0));
}
