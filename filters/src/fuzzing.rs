//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`, three lines
//! each) and of the stable corpus replay test (`filters/tests/fuzz_corpus.rs`).
//!
//! Each takes the fuzzer's bytes, must never panic, and checks a property
//! where one exists: strict JSON re-parses what it serialises, the SSE parser
//! yields the same events however the stream is cut into chunks. Not part of
//! the public API.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use http::{HeaderMap, HeaderName, HeaderValue};
use policies::Policy;

use crate::exchange::{Exchange, SessionLookup, SessionState, SessionView};
use crate::header_guard::HeaderGuardFilter;
use crate::message::{parse_strict, Message, RequestId};
use crate::sse::{SseEvent, SseParser};
use crate::{Chain, Filter};

/// The policy every target judges with: the documented defaults.
pub fn default_policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        policies::parse_policy(
            "config.example.toml",
            include_str!("../../config.example.toml"),
        )
        .unwrap_or_else(|e| panic!("config.example.toml must be valid: {e}"))
    })
}

/// JSON-RPC envelope: strict parse; what parses must serialise and parse
/// again to the same value, and lenient serde_json must agree it is JSON.
pub fn envelope(data: &[u8]) {
    let Ok(v) = parse_strict(data) else {
        return;
    };
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok(),
        "strict accepted what serde_json refuses"
    );
    let text = serde_json::to_vec(&v).unwrap_or_else(|e| panic!("serialise: {e}"));
    let again = parse_strict(&text).unwrap_or_else(|e| panic!("re-parse: {e}"));
    assert!(same(&again, &v), "strict JSON round trip: {again} != {v}");
    let _ = Message::from_value(v);
}

/// Equal values, floats within a relative 1e-12: serde_json's default float
/// parser is not correctly rounded, so a float may come back one ulp off
/// (regression `envelope/crash-51ab14...`). mcpgate forwards the client's
/// bytes, never a re-serialised value, so this cannot change what goes
/// upstream.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-12
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn sse_events(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
    let mut p = SseParser::new(max);
    let mut out = Vec::new();
    for c in chunks {
        p.feed(c, |e| out.push(e));
    }
    out
}

/// SSE parser: the first two bytes choose an event size limit and a chunk
/// size; the rest parsed whole and cut into chunks must give the same events.
pub fn sse(data: &[u8]) {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let max = 1 + usize::from(*a) * 16;
    let step = 1 + usize::from(*b % 64);
    let whole = sse_events(&[rest], max);
    let cut: Vec<&[u8]> = rest.chunks(step).collect();
    assert_eq!(
        whole,
        sse_events(&cut, max),
        "chunk boundaries changed events"
    );
    // The limit counts raw bytes; invalid UTF-8 becomes U+FFFD (3 bytes),
    // so decoded text is at most 3x the limit (regression `sse/crash-f52a03...`).
    for e in &whole {
        assert!(e.data.len() <= 3 * max, "event over the size limit");
    }
    sse_framing(rest, &cut, max);
    capped_stream(rest, &cut, max, u64::from(*b / 64));
}

/// The response phase's stream under `[content.limits]` caps (events from
/// the second byte's top bits, bytes = the framing limit): the same output
/// whatever the chunking, and never more messages than the cap plus the
/// error that ends the answer.
fn capped_stream(whole: &[u8], cut: &[&[u8]], max: usize, max_events: u64) {
    use crate::response::stream::MessageStream;
    use crate::response::Judged;
    let caps = policies::ResultCaps {
        max_result_bytes: Some(max),
        max_stream_events: Some(max_events),
    };
    let run = |chunks: &[&[u8]]| {
        let mut s = MessageStream::new(true, max + 1, Some(crate::RequestId::Number(1.into())))
            .with_caps(caps);
        let mut out = Vec::new();
        let mut keep = |_: &[u8]| Judged::Unchanged;
        for c in chunks {
            s.feed(c, &mut keep, &mut out);
        }
        s.finish(&mut keep, &mut out);
        (out, s.stats)
    };
    let (once, stats) = run(&[whole]);
    assert_eq!(
        once,
        run(cut).0,
        "chunk boundaries changed the capped stream"
    );
    assert!(stats.messages <= max_events, "more messages than the cap");
}

/// The framer the response phase uses: without an oversized event, its
/// events and rest are the input byte for byte, whatever the chunking; the
/// events parse to what the whole stream parses to; none is over the limit.
fn sse_framing(whole: &[u8], cut: &[&[u8]], max: usize) {
    use crate::sse::{Framed, SseFramer};
    let mut framer = SseFramer::new(max);
    let mut framed = Vec::new();
    for c in cut {
        framer.feed(c, |f| framed.push(f));
    }
    let rest = framer.finish(|f| framed.push(f));
    let mut again = Vec::new();
    let mut oversize = false;
    for f in &framed {
        match f {
            Framed::Event(bytes) => {
                assert!(bytes.len() <= max, "framed event over the limit");
                again.extend_from_slice(bytes);
            }
            Framed::Oversize => oversize = true,
        }
    }
    if !oversize {
        again.extend_from_slice(rest.as_deref().unwrap_or_default());
        assert_eq!(again, whole, "framing lost or added bytes");
        let events: Vec<_> = framed
            .iter()
            .filter_map(|f| match f {
                Framed::Event(b) => Some(b.as_slice()),
                Framed::Oversize => None,
            })
            .collect();
        let mut parsed = Vec::new();
        for e in events {
            parsed.extend(sse_events(&[e], max));
        }
        // The rest (an unterminated event) never completes an event.
        assert_eq!(
            parsed,
            sse_events(&[whole], max),
            "framed events parse differently"
        );
    }
}

/// Path canonicalizer: canonicalize any string, then run its check.
pub fn path_canon(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    if let Ok(c) = crate::path_canon::canonicalize(&input) {
        let _ = c.check();
        let _ = c.root_form();
        let _ = c.effective_scheme();
    }
    let _ = crate::path_canon::decode_fully(&input);
}

/// Header validator: the raw request head as received, plus the same bytes
/// parsed leniently into a header map.
pub fn header_guard(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(n, v);
        }
    }
    let mut ex = Exchange::new(default_policy(), "POST", "/mcp", &headers, b"");
    ex.raw_head = data;
    let _ = HeaderGuardFilter.check(&mut ex);
}

/// One request for the whole chain.
#[derive(Debug, Arbitrary)]
pub struct ChainInput {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(Header, String)>,
    pub session: Option<FuzzSession>,
    pub body: Body,
}

/// Methods worth trying (and any other).
#[derive(Debug, Arbitrary)]
pub enum Method {
    Post,
    Get,
    Delete,
    Other(String),
}

/// Header names the chain reads (and any other).
#[derive(Debug, Arbitrary)]
pub enum Header {
    Host,
    Origin,
    Accept,
    ContentType,
    ContentLength,
    Authorization,
    SessionId,
    ProtocolVersion,
    McpMethod,
    McpName,
    Other(String),
}

/// A body: free bytes, or a JSON-RPC shaped one so the fuzzer reaches the
/// filters behind the envelope.
#[derive(Debug, Arbitrary)]
pub enum Body {
    Raw(Vec<u8>),
    Rpc {
        id: Option<i64>,
        method: String,
        params: String,
        modern_meta: bool,
    },
}

/// What the session store would say about the request's session.
#[derive(Debug, Arbitrary)]
pub struct FuzzSession {
    pub ready: bool,
    pub version: String,
    pub in_flight: Vec<i64>,
    pub unknown: bool,
}

impl SessionView for FuzzSession {
    fn state(&self) -> SessionState {
        if self.ready {
            SessionState::Ready
        } else {
            SessionState::AwaitingInitialized
        }
    }
    fn negotiated_version(&self) -> &str {
        &self.version
    }
    fn is_in_flight(&self, id: &RequestId) -> bool {
        self.in_flight
            .iter()
            .any(|n| *id == RequestId::Number((*n).into()))
    }
}

impl Header {
    fn name(&self) -> &str {
        match self {
            Header::Host => "host",
            Header::Origin => "origin",
            Header::Accept => "accept",
            Header::ContentType => "content-type",
            Header::ContentLength => "content-length",
            Header::Authorization => "authorization",
            Header::SessionId => "mcp-session-id",
            Header::ProtocolVersion => "mcp-protocol-version",
            Header::McpMethod => "mcp-method",
            Header::McpName => "mcp-name",
            Header::Other(s) => s,
        }
    }
}

/// The whole chain, head phase then message phase, on one request.
pub fn chain(input: &ChainInput) {
    let policy = default_policy();
    let method = match &input.method {
        Method::Post => "POST",
        Method::Get => "GET",
        Method::Delete => "DELETE",
        Method::Other(s) => s.as_str(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.name().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let body = match &input.body {
        Body::Raw(b) => b.clone(),
        Body::Rpc {
            id,
            method,
            params,
            modern_meta,
        } => {
            let mut params: serde_json::Value =
                serde_json::from_str(params).unwrap_or_else(|_| serde_json::json!({}));
            if *modern_meta {
                if let Some(p) = params.as_object_mut() {
                    p.insert(
                        "_meta".into(),
                        serde_json::json!({
                            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                            "io.modelcontextprotocol/clientCapabilities": {}
                        }),
                    );
                }
            }
            let mut m = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
            if let Some(id) = id {
                m["id"] = (*id).into();
            }
            serde_json::to_vec(&m).unwrap_or_default()
        }
    };
    let chain = Chain::standard();
    let mut ex = Exchange::new(policy, method, &input.path, &headers, b"");
    if chain.check_head(&mut ex).is_err() {
        return;
    }
    let tenant = ex.tenant.clone();
    let mut ex = Exchange::new(policy, method, &input.path, &headers, &body);
    ex.tenant = tenant;
    ex.session = match &input.session {
        None => SessionLookup::NoneGiven,
        Some(s) if s.unknown => SessionLookup::Unknown,
        Some(s) => SessionLookup::Found(s),
    };
    if let Err(r) = chain.check_message(&mut ex) {
        // Every refusal maps to an error status.
        let wire = r.kind.wire();
        assert!(wire.status >= 400, "refusal with status {}", wire.status);
    }
}

/// [`chain`] from raw fuzzer bytes (as `fuzz_target!` decodes a typed input).
pub fn chain_bytes(data: &[u8]) {
    if let Ok(input) = ChainInput::arbitrary_take_rest(Unstructured::new(data)) {
        chain(&input);
    }
}

// === JWT (issue 11) ===

/// The key set and policy of the JWT corpus (`conformance/corpora/jwt-keys/`).
fn jwt_fixture() -> &'static (crate::jwt::KeySet, policies::JwtPolicy) {
    static FIXTURE: OnceLock<(crate::jwt::KeySet, policies::JwtPolicy)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use policies::JwtAlgorithm as A;
        let mut policy = policies::JwtPolicy::new(
            "https://issuer.corpus.test",
            vec!["https://mcp.corpus.test/mcp".into()],
        );
        policy.algorithms = vec![A::RS256, A::ES256, A::EdDSA];
        let jwks = include_bytes!("../../conformance/corpora/jwt-keys/jwks.json");
        let keys = crate::jwt::KeySet::from_jwks(jwks, &policy)
            .unwrap_or_else(|e| panic!("corpus jwks.json: {e}"));
        (keys, policy)
    })
}

/// A token: the fuzzer's header and claims text and signature bytes,
/// base64url-encoded and joined (or its raw text, for the outer layers).
#[derive(Debug, Arbitrary)]
pub struct JwtInput {
    pub header: String,
    pub claims: String,
    pub signature: Vec<u8>,
    pub raw: Option<String>,
}

/// JWT verification never panics, names a known rule, and accepts nothing
/// the fuzzer made: every key it could verify with is a public key whose
/// private half it does not have.
pub fn jwt(input: &JwtInput) {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let token = match &input.raw {
        Some(raw) => raw.clone(),
        None => format!(
            "{}.{}.{}",
            b64(input.header.as_bytes()),
            b64(input.claims.as_bytes()),
            b64(&input.signature)
        ),
    };
    let (keys, policy) = jwt_fixture();
    match crate::jwt::verify(&token, keys, policy, 1_900_000_000) {
        Ok(v) => panic!("a forged token was accepted: {v:?}"),
        Err(e) => assert!(crate::jwt::JwtError::RULES.contains(&e.rule())),
    }
}

/// [`jwt`] from raw fuzzer bytes.
pub fn jwt_bytes(data: &[u8]) {
    if let Ok(input) = JwtInput::arbitrary_take_rest(Unstructured::new(data)) {
        jwt(&input);
    }
}

/// JWKS parser: any bytes give a bounded key set or an error, never a panic.
pub fn jwks(data: &[u8]) {
    let (_, policy) = jwt_fixture();
    if let Ok(set) = crate::jwt::KeySet::from_jwks(data, policy) {
        assert!(!set.is_empty() && set.len() <= crate::jwt::KeySet::MAX_KEYS);
        assert!(set.len() + set.skipped().len() <= crate::jwt::KeySet::MAX_KEYS);
    }
}

/// The policy of the `listing` target: every poisoning rule on, the
/// character rules stripping.
fn strip_policy() -> &'static policies::PoisoningPolicy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    &POLICY
        .get_or_init(|| {
            policies::parse_policy(
                "fuzz.toml",
                "[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n[content.poisoning]\naction = \"strip\"\n",
            )
            .unwrap_or_else(|e| panic!("fuzz policy: {e}"))
        })
        .content
        .poisoning
}

/// Listed definitions as a server may send them: the poisoning rules and
/// the `x-mcp-header` scan read any JSON (or, when the bytes are not JSON,
/// any text as a description) without panicking, and `strip` is
/// idempotent: what it leaves has nothing more to strip.
pub fn listing(data: &[u8]) {
    use crate::poisoning::{scan, strip, ListedKind};
    use policies::PoisonRule as R;

    let entries = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(a)) => a,
        Ok(v) => vec![v],
        Err(_) => vec![serde_json::json!({
            "name": "t", "description": String::from_utf8_lossy(data)
        })],
    };
    let p = strip_policy();
    let rules = [
        R::TerminalEscapes,
        R::InvisibleCharacters,
        R::WhitespacePadding,
    ];
    for mut e in entries {
        let _ = crate::param_headers::declarations::scan(e.get("inputSchema").unwrap_or(&e));
        for kind in [ListedKind::Tool, ListedKind::Prompt, ListedKind::Resource] {
            let _ = scan(p, kind, &e, &["echo", "send_email"]);
        }
        strip(p, ListedKind::Tool, &mut e, &rules);
        let once = e.clone();
        assert!(
            !strip(p, ListedKind::Tool, &mut e, &rules),
            "strip is not idempotent: {once} became {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    /// The SSE invariants on many small streams over the bytes that matter
    /// (the fuzz target explores further).
    #[test]
    fn sse_invariants_hold_on_generated_streams() {
        let alphabet = b"\r\n:d a{}";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let mut input = vec![(seed >> 8) as u8 % 4, (seed >> 16) as u8];
            let mut s = seed;
            for _ in 0..len {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                input.push(alphabet[(s >> 33) as usize % alphabet.len()]);
            }
            super::sse(&input);
        }
    }
}
