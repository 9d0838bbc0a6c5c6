//! Criterion micro-benchmarks: the whole filter chain (head phase + message
//! phase, default policy from `config.example.toml`) on one accepted
//! `tools/call` of 1 KB, 4 KB and 64 KB, in both protocol revisions.
//! Reported per message (ns) and as bytes per second of body.
//!
//! `cargo bench -p filters --bench chain`; `mcpbench evidence` reads the
//! results from `target/criterion/`.

use std::hint::black_box;

mod common;
use common::{config, example_policy, judge, request};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use filters::Chain;

fn bench_chain(c: &mut Criterion) {
    let policy = example_policy();
    let chain = Chain::standard();
    let mut group = c.benchmark_group("chain");
    for legacy in [true, false] {
        for size in [1024usize, 4096, 65536] {
            let r = request(legacy, size, None);
            if let Err(e) = judge(&chain, &policy, None, &r) {
                panic!("the benchmark request must pass the chain: {e}");
            }
            let era = if legacy { "legacy" } else { "modern" };
            group.throughput(Throughput::Bytes(r.body.len() as u64));
            group.bench_with_input(BenchmarkId::new(era, size), &r, |b, r| {
                b.iter(|| judge(&chain, &policy, None, black_box(r)))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_chain
}
criterion_main!(benches);
