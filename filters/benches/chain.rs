//! Criterion micro-benchmarks: the whole filter chain (head phase + message
//! phase, default policy from `config.example.toml`) on one accepted
//! `tools/call` of 1 KB, 4 KB and 64 KB, in both protocol revisions.
//! Reported per message (ns) and as bytes per second of body.
//!
//! `cargo bench -p filters --bench chain`; `mcpbench evidence` reads the
//! results from `target/criterion/`.

use std::hint::black_box;
use std::time::Duration;

mod common;
use common::{request, Request};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use filters::{Chain, Exchange, RequestId, SessionLookup, SessionState, SessionView};
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
            let r = request(legacy, size, None);
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
