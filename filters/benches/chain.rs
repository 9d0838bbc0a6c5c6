//! Criterion micro-benchmarks: the whole filter chain (head phase + message
//! phase, default policy from `config.example.toml`) on one accepted
//! `tools/call` of 1 KB, 4 KB and 64 KB, in both protocol revisions.
//! Reported per message (ns) and as bytes per second of body.
//!
//! `cargo bench -p filters --bench chain`; `mcpbench evidence` reads the
//! results from `target/criterion/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use filters::{Chain, Exchange, RequestId, SessionLookup, SessionState, SessionView};
use http::{HeaderMap, HeaderName, HeaderValue};
use policies::Policy;

struct Ready;

impl SessionView for Ready {
    fn state(&self) -> SessionState {
        SessionState::Ready
    }
    fn negotiated_version(&self) -> &str {
        "2025-11-25"
    }
    fn is_in_flight(&self, _: &RequestId) -> bool {
        false
    }
}

struct Request {
    headers: HeaderMap,
    raw_head: Vec<u8>,
    body: Vec<u8>,
    legacy: bool,
}

fn request(legacy: bool, size: usize) -> Request {
    let text = "x".repeat(size);
    let (body, mut hs) = if legacy {
        (
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}}}),
            vec![
                ("mcp-protocol-version", "2025-11-25".to_owned()),
                ("mcp-session-id", "a".repeat(64)),
            ],
        )
    } else {
        (
            serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": text}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}}}),
            vec![
                ("mcp-protocol-version", "2026-07-28".to_owned()),
                ("mcp-method", "tools/call".to_owned()),
                ("mcp-name", "echo".to_owned()),
            ],
        )
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    hs.extend([
        ("host", "127.0.0.1:8080".to_owned()),
        ("accept", "application/json, text/event-stream".to_owned()),
        ("content-type", "application/json".to_owned()),
        ("content-length", body.len().to_string()),
    ]);
    let mut headers = HeaderMap::new();
    let mut raw = String::from("POST /mcp HTTP/1.1\r\n");
    for (k, v) in &hs {
        raw.push_str(&format!("{k}: {v}\r\n"));
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(n, v);
        }
    }
    raw.push_str("\r\n");
    Request {
        headers,
        raw_head: raw.into_bytes(),
        body,
        legacy,
    }
}

/// Runs both phases the way the proxy does; `Err` if the chain refused.
fn judge(chain: &Chain, policy: &Policy, r: &Request) -> Result<(), String> {
    let mut ex = Exchange::new(policy, "POST", "/mcp", &r.headers, b"");
    ex.raw_head = &r.raw_head;
    chain.check_head(&mut ex).map_err(|e| e.detail)?;
    let tenant = ex.tenant.take();
    let mut ex = Exchange::new(policy, "POST", "/mcp", &r.headers, &r.body);
    ex.raw_head = &r.raw_head;
    ex.tenant = tenant;
    if r.legacy {
        ex.session = SessionLookup::Found(&Ready);
    }
    chain.check_message(&mut ex).map_err(|e| e.detail)?;
    Ok(())
}

fn bench_chain(c: &mut Criterion) {
    let policy = policies::parse_policy(
        "config.example.toml",
        include_str!("../../config.example.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let chain = Chain::standard();
    let mut group = c.benchmark_group("chain");
    for legacy in [true, false] {
        for size in [1024usize, 4096, 65536] {
            let r = request(legacy, size);
            if let Err(e) = judge(&chain, &policy, &r) {
                panic!("the benchmark request must pass the chain: {e}");
            }
            let era = if legacy { "legacy" } else { "modern" };
            group.throughput(Throughput::Bytes(r.body.len() as u64));
            group.bench_with_input(BenchmarkId::new(era, size), &r, |b, r| {
                b.iter(|| judge(&chain, &policy, black_box(r)))
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    // MCPGATE_CRITERION_QUICK=1: a smoke run (well under a minute).
    let quick = std::env::var_os("MCPGATE_CRITERION_QUICK").is_some();
    let (warm, measure) = if quick { (200, 500) } else { (1000, 3000) };
    Criterion::default()
        .warm_up_time(Duration::from_millis(warm))
        .measurement_time(Duration::from_millis(measure))
        .sample_size(if quick { 10 } else { 50 })
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_chain
}
criterion_main!(benches);
