//! Criterion micro-benchmarks of the content guards on what servers send:
//! the response phase judging one `tools/call` answer of 4 KB of text with
//! every `[content.secrets]` and `[content.pii]` rule on, against the same
//! answer with the guards off (then not even parsed). Cases: text with no
//! rule's keyword (the common case: the keyword prefilter skips every
//! regex), English prose that holds keywords (`token`, `key`, an `@`, digits)
//! but no secret, and text carrying one GitHub token (found and redacted).
//!
//! `cargo bench -p filters --bench content`; `mcpbench evidence` reads the
//! results from `target/criterion/content/`.

use std::hint::black_box;

// Only criterion's settings are shared with the other benches.
#[allow(dead_code)]
mod common;
use common::config;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use filters::{ContentBook, Era, RequestId, ResponseChain, ResponseFacts};
use policies::Policy;

const SIZE: usize = 4096;

fn policy(content: &str) -> Policy {
    let src = format!("[upstream]\nurl = \"http://127.0.0.1:9/mcp\"\n{content}");
    policies::parse_policy("bench.toml", &src).unwrap_or_else(|e| panic!("{e}"))
}

/// `text` repeated to [`SIZE`] bytes.
fn filled(text: &str) -> String {
    let mut s = text.repeat(SIZE / text.len() + 1);
    s.truncate(SIZE);
    s
}

fn answer(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": text}], "isError": false}}))
    .unwrap_or_default()
}

fn bench_content(c: &mut Criterion) {
    let chain = ResponseChain::standard();
    let book = ContentBook::new();
    let id = RequestId::Number(7.into());
    let facts = ResponseFacts {
        method: "tools/call",
        target: Some("echo"),
        tenant: "bench",
        subject: None,
        scopes: &[],
        era: Era::Legacy,
        request_id: Some(&id),
        concealed: None,
        pins: None,
        content_book: Some(&book),
        output_schemas: None,
    };
    let prose = "The deploy token rotates weekly; ask the key holder (ops team) before 10:30 \
                 on day 3 of sprint 42 and keep the secret store tidy. ";
    let token = format!("ghp_{}", "x7Hk2mP9qR4t".repeat(3));
    let cases = [
        ("clean", filled("x")),
        ("prose", filled(prose)),
        ("one-secret", {
            let mut s = filled(prose);
            s.replace_range(100..100 + token.len(), &token);
            s
        }),
    ];
    let on = policy("[content.secrets]\n[content.pii]\n");
    let off = policy("");
    let mut group = c.benchmark_group("content");
    for (case, text) in &cases {
        let body = answer(text);
        for (guards, p) in [("on", &on), ("off", &off)] {
            if guards == "off" && *case != "clean" {
                continue;
            }
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{case}-{guards}"), SIZE),
                &body,
                |b, body| {
                    b.iter(|| {
                        let judged = if chain.wants(p, &facts) {
                            Some(chain.judge(p, &facts, black_box(body)))
                        } else {
                            None
                        };
                        let _ = book.take_events();
                        judged
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_content
}
criterion_main!(benches);
