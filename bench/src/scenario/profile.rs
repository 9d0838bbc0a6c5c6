//! `profile`: where a proxy's CPU goes per request. mcpgate (full default
//! chain) and nginx (plain reverse proxy), each one worker, in front of the
//! same mock upstream, under the same closed-loop load (64 connections,
//! 4 KB `tools/call`, mixed eras), are sampled with `perf record -g` (999 Hz,
//! their whole process tree). `inferno` (the Rust port of FlameGraph)
//! folds the stacks and draws a flame graph per proxy into
//! `<out>/../flamegraphs/`; every folded stack is then put in one category
//! (the first rule that matches, from the leaf up: kernel, allocation,
//! copy, parse, response guards, chain, session, admission, upstream,
//! client, logging and metrics, event loop, unsymbolized, other) and each category's share is turned
//! into microseconds of CPU per request with the CPU time and requests
//! counted over the same window.
//!
//! Skipped in quick runs (the tests): it needs `perf` and `inferno`
//! (`scripts/cargo-tools.sh inferno`; `make bench` installs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::procs::{group_pids, Proc};
use super::{envelope, round1, Ctx};
use crate::load::{self, LoadConfig};

/// Sampling frequency of `perf record`.
const HZ: u32 = 999;

/// (category, a frame in the stack that puts it there), tried in order
/// from the leaf frame up; the first match wins. Kernel frames are marked
/// `_[k]` by `inferno-collapse-perf --all`. Frames of both proxies: Rust
/// paths for mcpgate (and pingora, tokio), `ngx_*` functions for nginx.
const RULES: &[(&str, &[&str])] = &[
    (
        "kernel",
        &[
            "_[k]",
            // The C library's system call wrappers: the user side of a call.
            "__send",
            "__libc_recv",
            "__libc_send",
            "__recv",
            "__GI___writev",
            "__writev",
            "__GI___libc_write",
            "__libc_read",
            "__getsockopt",
            "__GI___ioctl",
            "epoll_wait",
        ],
    ),
    (
        "allocation",
        &[
            "malloc",
            "_int_free",
            "cfree",
            "__libc_free",
            "realloc",
            "calloc",
            "__rust_alloc",
            "__rust_dealloc",
            "__rust_realloc",
            "alloc::alloc::",
            "alloc::raw_vec",
            "drop_in_place",
            "unlink_chunk",
            "shared_drop",
            "promotable_even_drop",
            "promotable_odd_drop",
            "as core::ops::drop::Drop>::drop",
            "ngx_palloc",
            "ngx_pnalloc",
            "ngx_pcalloc",
            "ngx_alloc",
            "ngx_pfree",
            // mimalloc, mcpgate's allocator.
            "mi_malloc",
            "mi_free",
            "mi_zalloc",
            "mi_realloc",
            "mi_heap_",
            "_mi_",
        ],
    ),
    (
        "copy",
        &[
            "memcpy",
            "memmove",
            "memset",
            "__memcmp",
            "bytes::bytes_mut",
        ],
    ),
    (
        "parse",
        &[
            "serde_json::",
            "httparse::",
            "read_request",
            "read_response",
            "ngx_http_parse",
            "ngx_http_process_request_headers",
            "ngx_hash_find",
            "http::header::",
            "from_utf8",
        ],
    ),
    ("response guards", &["filters::response"]),
    ("chain", &["filters::"]),
    (
        "session",
        &["mcpgate::sessions", "chacha20", "poly1305", "aead::"],
    ),
    ("admission", &["mcpgate::admission", "governor::"]),
    (
        "upstream",
        &[
            "mcpgate::upstream",
            "pingora_core::connectors",
            "protocols::http::v1::client",
            "ngx_http_upstream",
            "ngx_http_proxy",
            "ngx_event_connect",
        ],
    ),
    (
        "client",
        &[
            "mcpgate::accept",
            "mcpgate::exchange",
            "protocols::http::v1::server",
            "ngx_http_write_filter",
            "ngx_http_output_filter",
            "ngx_http_send",
            "ngx_writev",
            "ngx_linux_sendfile",
            "ngx_http_finalize",
            "ngx_http_read_client",
            "ngx_http_process_request",
            "ngx_http_wait_request",
            "ngx_http_create_request",
            "ngx_output_chain",
        ],
    ),
    (
        "logging and metrics",
        &[
            "prometheus::",
            "tracing::",
            "tracing_core::",
            "mcpgate::ops",
            "ngx_log",
        ],
    ),
    (
        "event loop",
        &[
            "tokio::",
            "mio::",
            "ngx_epoll",
            "ngx_process_events",
            "ngx_event",
            "ngx_worker_process_cycle",
            "ngx_rbtree",
            "ngx_reusable_connection",
        ],
    ),
    // Frames perf could not name (nginx's binary is stripped).
    ("unsymbolized", &["[nginx]", "[unknown]"]),
];

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    if ctx.quick {
        return Ok(skipped(ctx, started, "quick run: not profiled"));
    }
    let tools = ctx.rig.repo.join(".cache/cargo-tools/bin");
    let (collapse, flamegraph) = (
        tools.join("inferno-collapse-perf"),
        tools.join("inferno-flamegraph"),
    );
    if !collapse.exists() || !flamegraph.exists() {
        return Ok(skipped(
            ctx,
            started,
            "inferno not installed (scripts/cargo-tools.sh inferno)",
        ));
    }
    if Command::new("perf").arg("--version").output().is_err() {
        return Ok(skipped(ctx, started, "perf not installed"));
    }
    let rig = ctx.rig.clone();
    let (mock, mock_addr) = rig.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
    let graphs = ctx
        .out
        .parent()
        .map_or_else(|| PathBuf::from("flamegraphs"), |p| p.join("flamegraphs"));
    std::fs::create_dir_all(&graphs).map_err(|e| e.to_string())?;
    let seconds = 8;
    let mut targets = Vec::new();
    for name in ["mcpgate", "nginx"] {
        let started_proxy = match name {
            "mcpgate" => rig.mcpgate("mcpgate", mock_addr, &[]),
            _ => rig.nginx("nginx", mock_addr),
        };
        let (proxy, addr) = match started_proxy {
            Ok(p) => p,
            Err(e) => {
                targets.push(json!({ "target": name, "skipped": e.to_string() }));
                continue;
            }
        };
        let mut profiled = Err(String::new());
        // Once more when perf missed the work (see profile_one).
        for _ in 0..2 {
            profiled = profile_one(
                ctx,
                name,
                &proxy,
                addr,
                seconds,
                &collapse,
                &flamegraph,
                &graphs,
            )
            .await;
            if profiled.is_ok() {
                break;
            }
        }
        drop(proxy);
        targets.push(match profiled {
            Ok(v) => v,
            Err(e) => json!({ "target": name, "skipped": e }),
        });
    }
    drop(mock);
    let per_req = |t: &Value, c: &str| {
        t["categories"]
            .as_array()?
            .iter()
            .find(|x| x["category"] == c)?["cpu_per_request_us"]
            .as_f64()
    };
    let ratios: Vec<Value> = RULES
        .iter()
        .map(|(c, _)| *c)
        .chain(["other"])
        .map(|c| {
            let r = match (
                targets.first().and_then(|t| per_req(t, c)),
                targets.get(1).and_then(|t| per_req(t, c)),
            ) {
                (Some(m), Some(n)) if n > 0.0 => json!(round1(m / n)),
                _ => Value::Null,
            };
            json!({ "category": c, "mcpgate_over_nginx_ratio": r })
        })
        .collect();
    let syscalls = |i: usize| {
        targets
            .get(i)
            .and_then(|t| t["syscalls"]["syscalls_per_request_count"].as_f64())
    };
    let syscalls_over = match (syscalls(0), syscalls(1)) {
        (Some(m), Some(n)) => json!(((m - n) * 100.0).round() / 100.0),
        _ => Value::Null,
    };
    let params = json!({
        "load": "closed loop, 64 connections, 4 KB tools/call, mixed eras",
        "duration_s": seconds,
        "sample_per_s": HZ,
        "proxy_workers_count": rig.proxy_threads,
        "categories": RULES.iter().map(|(c, frames)| json!({"category": c, "frames": frames})).collect::<Vec<_>>(),
        "tools": "perf record -g; inferno-collapse-perf --all; inferno-flamegraph (inferno 0.12.8)",
    });
    Ok(envelope(
        ctx,
        "profile",
        started,
        params,
        json!({
            "targets": targets,
            "mcpgate_over_nginx_by_category": ratios,
            "syscalls_per_request_mcpgate_minus_nginx_count": syscalls_over,
        }),
        None,
        &[
            "Each folded stack goes to the first category whose frame it contains, tried from the leaf frame up: a sample in malloc called by the chain is allocation; a kernel frame makes the whole sample kernel.",
            "cpu_per_request_us of a category: its share of the samples times the proxy's CPU time over the window, divided by the requests answered in it.",
            "The flame graphs are in evidence/flamegraphs/ (SVG, inferno).",
            "syscalls: strace -c attached to every thread of the proxy for a separate 4 s window of the same load; only counts are used (tracing slows the proxy), divided by the requests answered in the window.",
        ],
    ))
}

#[allow(clippy::too_many_arguments)]
async fn profile_one(
    ctx: &Ctx,
    name: &str,
    proxy: &Proc,
    addr: std::net::SocketAddr,
    seconds: u64,
    collapse: &Path,
    flamegraph: &Path,
    graphs: &Path,
) -> Result<Value, String> {
    let data = ctx.rig.work.join(format!("perf-{name}.data"));
    let mut cfg = LoadConfig::new(&format!("profile {name}"), addr);
    cfg.warmup = Duration::from_secs(1);
    cfg.duration = Duration::from_secs(seconds);
    let load = tokio::spawn(load::run(cfg));
    // The measured window begins after load::run's 200 ms set-up and the
    // warm-up.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Listed once the load runs: a proxy's port can answer before its
    // master has started the workers, and a list taken then held only the
    // idle master (one run profiled 2 samples of mcpgate).
    let pids: Vec<String> = group_pids(proxy.pid()).iter().map(u32::to_string).collect();
    let cpu_before = super::procs::tree_cpu_ticks(proxy.pid());
    let mut perf = Command::new("perf")
        .args(["record", "-g", "-F", &HZ.to_string(), "-o"])
        .arg(&data)
        .args(["-p", &pids.join(","), "--", "sleep", &seconds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("perf record: {e}"))?;
    let report = load.await.map_err(|e| format!("load: {e}"))?;
    let cpu_after = super::procs::tree_cpu_ticks(proxy.pid());
    let status = tokio::task::spawn_blocking(move || perf.wait())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("perf record: {e}"))?;
    if !status.success() {
        return Err(format!("perf record exited {status}"));
    }
    let folded = fold(&data, collapse)?;
    let svg = graphs.join(format!("{name}-4k.svg"));
    draw(
        &folded,
        flamegraph,
        &svg,
        &format!("{name}, 4 KB tools/call, 64 connections"),
    )?;
    let _ = std::fs::write(ctx.rig.work.join(format!("folded-{name}.txt")), &folded);
    let mut samples: BTreeMap<&str, u64> = BTreeMap::new();
    // The leaf frames of what no rule placed, to show what "other" is.
    let mut others: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total = 0u64;
    for line in folded.lines() {
        let Some((stack, n)) = line.rsplit_once(' ') else {
            continue;
        };
        let n: u64 = n.parse().unwrap_or(0);
        total += n;
        let c = category(stack);
        *samples.entry(c).or_default() += n;
        if c == "other" {
            let leaf = stack.rsplit(';').next().unwrap_or(stack);
            *others.entry(leaf).or_default() += n;
        }
    }
    // Sample weights are CPU nanoseconds: a closed-loop proxy keeps a core
    // busy, so less than a CPU-second over the window means perf did not
    // follow the process that did the work.
    if total < 1_000_000_000 {
        return Err(format!(
            "perf sampled {:.2} CPU-seconds of {name} (pids {}) in {seconds} s of load: not profiled",
            total as f64 / 1e9,
            pids.join(",")
        ));
    }
    let mut others: Vec<(&str, u64)> = others.into_iter().collect();
    others.sort_by_key(|b| std::cmp::Reverse(b.1));
    let top_other: Vec<Value> = others
        .iter()
        .take(12)
        .map(|(frame, n)| {
            json!({
                "frame": frame.chars().take(160).collect::<String>(),
                "share_pct": round1(100.0 * *n as f64 / total.max(1) as f64),
            })
        })
        .collect();
    let syscalls = super::syscalls::per_request(name, proxy, addr, 4, &ctx.rig.work).await?;
    let requests = report.ok_count.max(1) as f64;
    let cpu_us = (cpu_after.saturating_sub(cpu_before)) as f64 * 1e6 / ctx.ticks_per_s as f64;
    let per_request = cpu_us / requests;
    let categories: Vec<Value> = samples
        .iter()
        .map(|(c, n)| {
            let share = *n as f64 / total.max(1) as f64;
            json!({
                "category": c,
                "sample_weight_count": n,
                "share_pct": round1(100.0 * share),
                "cpu_per_request_us": round1(per_request * share),
            })
        })
        .collect();
    Ok(json!({
        "target": name,
        "flamegraph": format!("flamegraphs/{name}-4k.svg"),
        "sample_weight_count": total,
        "requests_count": report.ok_count,
        "throughput_per_s": report.throughput_per_s,
        "cpu_per_request_us": round1(per_request),
        "categories": categories,
        "other_leaf_frames": top_other,
        "syscalls": syscalls.unwrap_or_else(|| json!({ "skipped": "strace not installed" })),
    }))
}

/// The category of one folded stack (`root;...;leaf`).
fn category(stack: &str) -> &'static str {
    for frame in stack.rsplit(';') {
        for (c, marks) in RULES {
            if marks.iter().any(|m| frame.contains(m)) {
                return c;
            }
        }
    }
    "other"
}

/// `perf script` of `data`, folded by `inferno-collapse-perf --all`.
fn fold(data: &Path, collapse: &Path) -> Result<String, String> {
    let script = Command::new("perf")
        .args(["script", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    let mut child = Command::new(collapse)
        .arg("--all")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("inferno-collapse-perf: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(&script.stdout);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("inferno-collapse-perf: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An SVG flame graph of `folded` at `svg`.
fn draw(folded: &str, flamegraph: &Path, svg: &Path, title: &str) -> Result<(), String> {
    let out = std::fs::File::create(svg).map_err(|e| format!("{}: {e}", svg.display()))?;
    let mut child = Command::new(flamegraph)
        .args(["--title", title, "--width", "1600"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .map_err(|e| format!("inferno-flamegraph: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(folded.as_bytes());
    }
    child
        .wait()
        .map_err(|e| format!("inferno-flamegraph: {e}"))?;
    Ok(())
}

fn skipped(ctx: &Ctx, started: Instant, why: &str) -> Value {
    envelope(
        ctx,
        "profile",
        started,
        json!({}),
        json!({ "targets": [], "skipped": why }),
        None,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::category;

    #[test]
    fn a_stack_takes_the_first_category_from_its_leaf_up() {
        assert_eq!(
            category("main;mcpgate::accept::lean::serve;malloc"),
            "allocation"
        );
        assert_eq!(
            category("main;filters::Chain::check;serde_json::de::from_slice"),
            "parse"
        );
        assert_eq!(category("main;filters::paths::check"), "chain");
        assert_eq!(
            category("main;tokio::runtime;write_[k];tcp_sendmsg_[k]"),
            "kernel"
        );
        assert_eq!(category("main;unknown"), "other");
    }
}
