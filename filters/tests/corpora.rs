//! Replays the guard corpora of `conformance/corpora/` against the filters,
//! in process, under the same policy the end-to-end test uses
//! (`conformance/corpora/policy.toml`). Every attack must be refused by the
//! guard it targets, every benign case must pass every filter. The same
//! corpora go through the real binary in `conformance/tests/test_guard_corpora.py`.

use std::path::PathBuf;

use base64::Engine;
use filters::envelope::EnvelopeFilter;
use filters::era::EraFilter;
use filters::modern::ModernFilter;
use filters::path_traversal::PathTraversalFilter;
use filters::ssrf::SsrfFilter;
use filters::{Chain, Decision, Exchange, Filter, Rejection, RejectionKind};
use http::{HeaderMap, HeaderName, HeaderValue};
use policies::Policy;
use serde_json::{json, Value};

const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";

fn corpora_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/corpora")
}

fn load(name: &str) -> Vec<Value> {
    let path = corpora_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1)))
        .collect()
}

fn policy() -> Policy {
    let extra = std::fs::read_to_string(corpora_dir().join("policy.toml")).unwrap();
    let src = format!("[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n{extra}");
    policies::parse_policy("corpora/policy.toml", &src).unwrap_or_else(|e| panic!("{e}"))
}

fn s<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case without {key}: {case}"))
}

/// A header value as an MCP client sends it: plain when header-safe ASCII,
/// else the `=?base64?...?=` sentinel.
fn mcp_header(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b)) && v.trim() == v;
    if plain {
        v.to_string()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
        format!("=?base64?{b64}?=")
    }
}

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}})
}

/// One MCP request carrying `value` the way `via` says (same mapping as the
/// Python test): (headers, body).
fn request(via: &str, value: &str) -> (Vec<(String, String)>, Value) {
    let modern = |method: &str, mut params: Value, name: Option<&str>| {
        params["_meta"] = meta();
        let mut h = vec![
            ("mcp-protocol-version".to_string(), MODERN.to_string()),
            ("mcp-method".to_string(), method.to_string()),
        ];
        if let Some(n) = name {
            h.push(("mcp-name".to_string(), mcp_header(n)));
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        (h, body)
    };
    match via {
        "resources/read" => modern(via, json!({"uri": value}), Some(value)),
        "resources/subscribe" | "resources/unsubscribe" => modern(via, json!({"uri": value}), None),
        "mcp-name" => (
            vec![
                ("mcp-protocol-version".to_string(), LEGACY.to_string()),
                ("mcp-name".to_string(), mcp_header(value)),
            ],
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "demo://readme"}}),
        ),
        "completion" => modern(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": value}, "argument": {"name": "path", "value": ""}}),
            None,
        ),
        "completion-value" => modern(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "file:///{path}"}, "argument": {"name": "path", "value": value}}),
            None,
        ),
        "tool-pointer" => modern(
            "tools/call",
            json!({"name": "read_file", "arguments": {"path": value}}),
            Some("read_file"),
        ),
        "tool-pointer-array" => modern(
            "tools/call",
            json!({"name": "read_file", "arguments": {"path": ["reports/ok.txt", value]}}),
            Some("read_file"),
        ),
        "tool-heuristic" => modern(
            "tools/call",
            json!({"name": "search", "arguments": {"query": {"terms": [value]}}}),
            Some("search"),
        ),
        "ssrf-pointer" => modern(
            "tools/call",
            json!({"name": "fetch", "arguments": {"url": value}}),
            Some("fetch"),
        ),
        "ssrf-heuristic" => modern(
            "tools/call",
            json!({"name": "search", "arguments": {"options": {"callback": value}}}),
            Some("search"),
        ),
        other => panic!("unknown via {other:?}"),
    }
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Runs `filters` on one request; the rejection when one refused it.
fn refusal(
    policy: &Policy,
    tenant: &str,
    headers: &[(String, String)],
    body: &Value,
    filters: &[&dyn Filter],
) -> Option<Rejection> {
    let h = header_map(headers);
    let body = serde_json::to_vec(body).unwrap();
    let mut ex = Exchange::new(policy, "POST", "/mcp", &h, &body);
    ex.tenant = Some(tenant.into());
    for f in filters {
        if let Decision::Reject(mut r) = f.check(&mut ex) {
            r.filter = f.name();
            return Some(r);
        }
    }
    None
}

/// Runs `filters` on one request; `Some(kind)` when one refused it.
fn judge(
    policy: &Policy,
    tenant: &str,
    headers: &[(String, String)],
    body: &Value,
    filters: &[&dyn Filter],
) -> Option<(RejectionKind, String)> {
    refusal(policy, tenant, headers, body, filters)
        .map(|r| (r.kind, format!("{}: {}", r.filter, r.detail)))
}

/// What the client sees of a refused attack: `error.data` names a rule and a
/// place, and nothing of the body echoes the attack string (the log does).
/// Returns a complaint, if any.
fn leaks(r: &Rejection, payload: &str) -> Option<String> {
    let body = String::from_utf8(r.json_body()).unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let data = &v["error"]["data"];
    let kebab = |s: &str| {
        !s.is_empty()
            && s.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    if !data["rule"].as_str().is_some_and(kebab) || data["at"].as_str().is_none() {
        return Some(format!("no kebab-case rule or no place: {body}"));
    }
    // The body as the client could read it: raw and JSON-unescaped.
    let unescaped = format!("{v}");
    let echoed = [body.as_str(), unescaped.as_str()]
        .iter()
        .any(|b| b.contains(payload) || b.contains(&serde_json::to_string(payload).unwrap()));
    echoed.then(|| format!("echoes the payload: {body}"))
}

fn ssrf_via(via: &str) -> &str {
    match via {
        "tool-pointer" => "ssrf-pointer",
        "tool-heuristic" => "ssrf-heuristic",
        other => other,
    }
}

struct Tally {
    name: &'static str,
    misses: Vec<String>,
    attacks: usize,
    false_positives: Vec<String>,
    benign: usize,
}

impl Tally {
    fn report(&self) -> bool {
        println!(
            "{} (in-process): blocked {}/{}, false positives {}/{}",
            self.name,
            self.attacks - self.misses.len(),
            self.attacks,
            self.false_positives.len(),
            self.benign
        );
        for m in &self.misses {
            println!("  MISS {m}");
        }
        for f in &self.false_positives {
            println!("  FALSE POSITIVE {f}");
        }
        self.misses.is_empty() && self.false_positives.is_empty()
    }
}

const ALL: &[&dyn Filter] = &[
    &EnvelopeFilter,
    &EraFilter,
    &ModernFilter,
    &PathTraversalFilter,
    &SsrfFilter,
];

#[test]
fn traversal_corpus() {
    let p = policy();
    let attacks: Vec<Value> = [
        load("traversal_hand.jsonl"),
        load("traversal_generated.jsonl"),
    ]
    .concat();
    let benign = load("traversal_benign.jsonl");
    assert!(
        attacks.len() >= 300 && benign.len() >= 100,
        "corpora too small"
    );
    let path_only: &[&dyn Filter] = &[
        &EnvelopeFilter,
        &EraFilter,
        &ModernFilter,
        &PathTraversalFilter,
    ];
    let mut t = Tally {
        name: "traversal",
        misses: vec![],
        attacks: attacks.len(),
        false_positives: vec![],
        benign: benign.len(),
    };
    let mut leaked = Vec::new();
    for c in &attacks {
        let (h, body) = request(s(c, "via"), s(c, "payload"));
        let tenant = c["tenant"].as_str().unwrap_or("anonymous");
        match refusal(&p, tenant, &h, &body, path_only) {
            Some(r) if r.kind == RejectionKind::PathNotAllowed => {
                leaked.extend(leaks(&r, s(c, "payload")).map(|l| format!("{c} -> {l}")));
            }
            other => t.misses.push(format!("{c} -> {other:?}")),
        }
    }
    assert!(leaked.is_empty(), "traversal error bodies: {leaked:#?}");
    for c in &benign {
        let (h, body) = request(s(c, "via"), s(c, "payload"));
        let tenant = c["tenant"].as_str().unwrap_or("anonymous");
        if let Some(r) = judge(&p, tenant, &h, &body, ALL) {
            t.false_positives.push(format!("{c} -> {r:?}"));
        }
    }
    assert!(t.report(), "traversal corpus: misses or false positives");
}

#[test]
fn ssrf_corpus() {
    let p = policy();
    let attacks = load("ssrf.jsonl");
    let benign = load("ssrf_benign.jsonl");
    assert!(
        attacks.len() >= 50 && benign.len() >= 30,
        "corpora too small"
    );
    let ssrf_only: &[&dyn Filter] = &[&EnvelopeFilter, &EraFilter, &ModernFilter, &SsrfFilter];
    let mut t = Tally {
        name: "ssrf",
        misses: vec![],
        attacks: attacks.len(),
        false_positives: vec![],
        benign: benign.len(),
    };
    let mut leaked = Vec::new();
    for c in &attacks {
        let (h, body) = request(ssrf_via(s(c, "via")), s(c, "url"));
        match refusal(&p, "anonymous", &h, &body, ssrf_only) {
            Some(r) if r.kind == RejectionKind::UrlNotAllowed => {
                leaked.extend(leaks(&r, s(c, "url")).map(|l| format!("{c} -> {l}")));
            }
            other => t.misses.push(format!("{c} -> {other:?}")),
        }
    }
    assert!(leaked.is_empty(), "ssrf error bodies: {leaked:#?}");
    for c in &benign {
        let (h, body) = request(ssrf_via(s(c, "via")), s(c, "url"));
        if let Some(r) = judge(&p, "anonymous", &h, &body, ALL) {
            t.false_positives.push(format!("{c} -> {r:?}"));
        }
    }
    assert!(t.report(), "ssrf corpus: misses or false positives");
}

/// Splits a raw request (latin-1 text) into head bytes, method, path and a
/// header map built the lenient way (lines the `http` crate refuses are left
/// out of the map; the raw head still has them).
fn parse_raw(raw: &str) -> (Vec<u8>, String, String, HeaderMap) {
    let bytes: Vec<u8> = raw
        .replace("{HOST}", "127.0.0.1:8080")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("raw requests are latin-1"))
        .collect();
    let find = |pat: &[u8]| {
        bytes
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + pat.len())
    };
    let end = match (find(b"\r\n\r\n"), find(b"\n\n")) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(bytes.len()),
    };
    let head = bytes[..end].to_vec();
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut map = HeaderMap::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) {
            map.append(k, v);
        }
    }
    (head, method, path, map)
}

#[test]
fn raw_request_corpus_head_stage() {
    let p = policy();
    let chain = Chain::standard();
    let cases = load("raw_requests.jsonl");
    let attacks: Vec<&Value> = cases.iter().filter(|c| c["stage"] != "control").collect();
    assert!(attacks.len() >= 60, "corpus too small");
    let head_cases: Vec<&&Value> = attacks.iter().filter(|c| c["stage"] == "head").collect();
    let mut misses = Vec::new();
    for c in &head_cases {
        let (head, method, path, map) = parse_raw(s(c, "raw"));
        let mut ex = Exchange::new(&p, &method, &path, &map, b"");
        ex.raw_head = &head;
        if chain.check_head(&mut ex).is_ok() {
            misses.push(s(c, "name").to_string());
        }
    }
    let control = cases
        .iter()
        .find(|c| c["stage"] == "control")
        .expect("a control case");
    let (head, method, path, map) = parse_raw(s(control, "raw"));
    let mut ex = Exchange::new(&p, &method, &path, &map, b"");
    ex.raw_head = &head;
    let control_ok = chain.check_head(&mut ex).is_ok();
    println!(
        "raw requests (in-process, head stage): blocked {}/{}, false positives {}/1; {} body-stage cases are judged end to end only",
        head_cases.len() - misses.len(),
        head_cases.len(),
        usize::from(!control_ok),
        attacks.len() - head_cases.len()
    );
    assert!(
        misses.is_empty(),
        "head-stage cases the head chain let through: {misses:?}"
    );
    assert!(control_ok, "the valid control request was refused");
}
