use super::*;
use crate::envelope::EnvelopeFilter;
use crate::testutil::{headers, policy_with};
use serde_json::json;

const ON: &str = "[ssrf]\nenabled = true\n[ssrf.tools]\nfetch = [\"/url\"]\n";

fn run(extra: &str, body: Value) -> Result<(), String> {
    match refusal(extra, body) {
        None => Ok(()),
        Some(r) => {
            assert_eq!(r.kind, K::UrlNotAllowed);
            Err(r.detail)
        }
    }
}

fn fetch(url: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fetch", "arguments": {"url": url}}})
}

/// The rejection itself, for the rule, the location and the body.
fn refusal(extra: &str, body: Value) -> Option<Rejection> {
    let p = policy_with(extra);
    let h = headers(&[]);
    let body = serde_json::to_vec(&body).unwrap();
    let mut ex = Exchange::new(&p, "POST", "/mcp", &h, &body);
    assert!(matches!(EnvelopeFilter.check(&mut ex), Decision::Continue));
    match SsrfFilter.check(&mut ex) {
        Decision::Continue => None,
        Decision::Reject(r) => Some(r),
    }
}

fn rule(url: &str) -> String {
    match refusal(ON, fetch(url)) {
        None => "pass".into(),
        Some(r) => {
            assert!(r.detail.starts_with(r.rule), "{} vs {}", r.rule, r.detail);
            r.rule.to_string()
        }
    }
}

#[test]
fn off_by_default() {
    assert!(run("", fetch("http://169.254.169.254/")).is_ok());
}

#[test]
fn every_spelling_of_loopback_and_metadata() {
    for url in [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0x0.0x0.0x1/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://127.0.0.1./",
        "http://%31%32%37.0.0.1/",
        "http://１２７.０.０.１/",
        "http://①②⑦.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "HTTP://LOCALHOST:8080/",
        "http://localhost./",
        "http:/\\127.0.0.1/",
        "http:127.0.0.1/",
    ] {
        let r = rule(url);
        assert!(r == "loopback" || r == "internal-name", "{url}: {r}");
    }
    assert_eq!(
        rule("http://169.254.169.254/latest/meta-data/"),
        "cloud-metadata"
    );
    assert_eq!(rule("http://0xa9fea9fe/"), "cloud-metadata");
    assert_eq!(rule("http://2852039166/"), "cloud-metadata");
    assert_eq!(rule("http://[fd00:ec2::254]/"), "cloud-metadata");
    assert_eq!(rule("http://[::ffff:a9fe:a9fe]/"), "cloud-metadata");
    assert_eq!(rule("http://metadata.google.internal/"), "internal-name");
    assert_eq!(rule("http://0/"), "this-network");
    assert_eq!(rule("http://10.0.0.1/"), "private");
    assert_eq!(rule("http://[fe80::1%25eth0]/"), "link-local");
    assert_eq!(rule("http://intranet/"), "dotless-name");
    assert_eq!(rule("http://127.0.0.1.nip.io/"), "internal-name");
}

#[test]
fn parser_confusion_and_schemes() {
    assert_eq!(rule("http://example.com@127.0.0.1/"), "credentials-in-url");
    assert_eq!(rule("http://127.0.0.1\\@example.com/"), "loopback");
    assert_eq!(rule("gopher://127.0.0.1:6379/_INFO"), "scheme-not-allowed");
    assert_eq!(rule("file:///etc/passwd"), "scheme-not-allowed");
    assert_eq!(rule("//127.0.0.1/"), "scheme-relative-url");
    assert_eq!(rule("http://256.0.0.1/"), "invalid-ip-literal");
    assert_eq!(rule("http://1.2.3.4.5/"), "invalid-ip-literal");
    assert_eq!(rule("http://a b.com/"), "invalid-host");
    assert_eq!(rule("http://example.com:99999/"), "invalid-port");
    assert_eq!(rule("http://ex\tample.com/"), "control-character");
    assert_eq!(
        rule("127.0.0.1:8080/admin"),
        "loopback",
        "bare values read as http"
    );
}

#[test]
fn public_urls_pass() {
    for url in [
        "https://example.com/a?b=c#d",
        "http://93.184.216.34/",
        "https://[2606:4700:4700::1111]/dns-query",
        "https://xn--bcher-kva.example/",
        "https://bücher.example/",
        "http://8.8.8.8:53/",
        "https://1.1.1.1/",
        "example.com/path",
        "https://sub.domain.co.uk/..",
        "http://[64:ff9b::808:808]/",
    ] {
        assert_eq!(rule(url), "pass", "{url}");
    }
}

#[test]
fn allow_lists_and_heuristic() {
    let allowing = "[ssrf]\nenabled = true\nallow_hosts = [\"*.corp.example\", \"intranet\"]\n\
                    allow_cidrs = [\"10.1.2.0/24\", \"127.0.0.1\"]\n[ssrf.tools]\nfetch = [\"/url\"]\n";
    assert!(run(allowing, fetch("http://10.1.2.3/")).is_ok());
    assert!(run(allowing, fetch("http://10.1.3.3/")).is_err());
    assert!(run(allowing, fetch("http://[::ffff:127.0.0.1]/")).is_ok());
    assert!(run(allowing, fetch("http://wiki.corp.example/")).is_ok());
    assert!(run(allowing, fetch("http://intranet/")).is_ok());
    let call = |args: Value| json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "other", "arguments": args}});
    let nested = call(json!({"opts": {"targets": ["http://[::1]:8080/"]}}));
    assert!(run(ON, nested.clone()).is_ok(), "heuristic off");
    let h = "[ssrf]\nenabled = true\nheuristic = true\n";
    let err = run(h, nested).unwrap_err();
    assert!(err.contains("/opts/targets/0"), "{err}");
    for text in [
        "https: is the secure scheme",
        "see docs/a.md",
        "file:///srv/x",
        "mailto:a@b",
    ] {
        assert!(run(h, call(json!({"t": text}))).is_ok(), "{text}");
    }
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "http://169.254.169.254/"}});
    assert!(
        run(h, read).is_err(),
        "network resource URIs are judged too"
    );
    let files = "[ssrf]\nenabled = true\nallowed_schemes = [\"http\", \"file\"]\n[ssrf.tools]\nfetch = [\"/url\"]\n";
    assert!(
        run(files, fetch("file:///etc/hosts")).is_ok(),
        "a local file has no host to judge"
    );
    assert!(run(files, fetch("file://127.0.0.1/share")).is_err());
}

#[test]
fn rejections_name_rule_and_place() {
    let r = refusal(ON, fetch("http://169.254.169.254/latest/meta-data/")).unwrap();
    assert_eq!(
        (r.rule, r.at()),
        ("cloud-metadata", Some("params.arguments.url"))
    );
    let body = String::from_utf8(r.json_body()).unwrap();
    assert!(
        !body.contains("169.254") && !body.contains("meta-data"),
        "{body}"
    );
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "http://10.0.0.7/"}});
    let r = refusal(ON, read).unwrap();
    assert_eq!((r.rule, r.at()), ("private", Some("params.uri")));
    let h = "[ssrf]\nenabled = true\nheuristic = true\n";
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x",
        "arguments": {"hook_5e7a": "http://user@example.com/"}}});
    let r = refusal(h, call).unwrap();
    assert_eq!(
        (r.rule, r.at()),
        ("credentials-in-url", Some("params.arguments"))
    );
    assert!(r.detail.contains("/hook_5e7a"), "the log has the place");
    let body = String::from_utf8(r.json_body()).unwrap();
    assert!(
        !body.contains("hook_5e7a") && !body.contains("example.com"),
        "{body}"
    );
}
