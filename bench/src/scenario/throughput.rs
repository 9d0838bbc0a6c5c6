//! `throughput-4k`: closed-loop `tools/call echo` load (64 sessions: half
//! 2025-11-25 sessions after `initialize`, half 2026-07-28 stateless) with 1 KB,
//! 4 KB and 64 KB arguments and results: direct to the mock, through mcpgate
//! (default policy), nginx (plain reverse proxy) and bare pingora, each proxy
//! with the same number of workers, interleaved in rounds. Reports medians,
//! proxy CPU per request and the ratios.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{envelope, median, ratio, round1, run_measured, Ctx};
use crate::load::{EraMix, LoadConfig};
use crate::scenario::procs::Proc;

const TARGETS: [&str; 4] = ["direct", "mcpgate", "nginx", "bare-pingora"];

/// Throughput (/s), proxy CPU (µs/request, NaN for direct), mock CPU
/// (µs/request), p50 and p99 (µs) of one run.
type RunSummary = (f64, f64, f64, u64, u64);

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let sizes: Vec<usize> = ctx.pick(vec![4096], vec![1024, 4096, 65536]);
    let rounds = ctx.pick(1, 3);
    let warmup = Duration::from_millis(ctx.pick(500, 1000));
    let duration = Duration::from_millis(ctx.pick(2000, 5000));
    let connections = 64;

    let rig = ctx.rig.clone();
    let (mock, mock_addr) = rig.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
    let mut procs: BTreeMap<&str, (Option<Proc>, SocketAddr)> = BTreeMap::new();
    let mut unavailable: BTreeMap<&str, String> = BTreeMap::new();
    procs.insert("direct", (None, mock_addr));
    match rig.mcpgate("mcpgate", mock_addr, &[]) {
        Ok((p, a)) => {
            procs.insert("mcpgate", (Some(p), a));
        }
        Err(e) => return Err(format!("mcpgate did not start: {e}")),
    }
    match rig.nginx("nginx", mock_addr) {
        Ok((p, a)) => {
            procs.insert("nginx", (Some(p), a));
        }
        Err(e) => {
            unavailable.insert("nginx", e.to_string());
        }
    }
    match rig.bare_pingora("bare-pingora", mock_addr) {
        Ok((p, a)) => {
            procs.insert("bare-pingora", (Some(p), a));
        }
        Err(e) => {
            unavailable.insert("bare-pingora", e.to_string());
        }
    }

    let mut per_size = Vec::new();
    let mut headline_mcpgate_4k = None;
    for &size in &sizes {
        let mut runs = Vec::new();
        let mut by_target: BTreeMap<&str, Vec<RunSummary>> = BTreeMap::new();
        for round in 0..rounds {
            // Rotate the order each round so no target always runs first.
            for k in 0..TARGETS.len() {
                let target = TARGETS[(k + round) % TARGETS.len()];
                let Some((proc, addr)) = procs.get(target) else {
                    continue;
                };
                let mut cfg = LoadConfig::new(&format!("{target} {size}B r{round}"), *addr);
                cfg.eras = EraMix::Mixed;
                cfg.connections = connections;
                cfg.warmup = warmup;
                cfg.duration = duration;
                cfg.payload_bytes = size;
                let mut watched: Vec<&Proc> = vec![&mock];
                if let Some(p) = proc {
                    watched.push(p);
                }
                let (report, cpu) = run_measured(ctx, cfg, &watched).await;
                let mock_cpu = cpu[0];
                let proxy_cpu = cpu.get(1).copied();
                by_target.entry(target).or_default().push((
                    report.throughput_per_s,
                    proxy_cpu.unwrap_or(f64::NAN),
                    mock_cpu,
                    report.latency.p50_us,
                    report.latency.p99_us,
                ));
                runs.push(json!({
                    "target": target,
                    "round_index": round,
                    "proxy_cpu_per_request_us": proxy_cpu,
                    "mock_cpu_per_request_us": mock_cpu,
                    "load": report,
                }));
            }
        }
        let mut medians = serde_json::Map::new();
        let mut med_rps = BTreeMap::new();
        for (target, xs) in &by_target {
            let rps = median(&xs.iter().map(|x| x.0).collect::<Vec<_>>());
            med_rps.insert(*target, rps);
            let cpu: Vec<f64> = xs.iter().map(|x| x.1).filter(|x| x.is_finite()).collect();
            medians.insert(
                (*target).to_owned(),
                json!({
                    "throughput_per_s": round1(rps),
                    "proxy_cpu_per_request_us": (!cpu.is_empty()).then(|| round1(median(&cpu))),
                    "mock_cpu_per_request_us": round1(median(&xs.iter().map(|x| x.2).collect::<Vec<_>>())),
                    "p50_us": median(&xs.iter().map(|x| x.3 as f64).collect::<Vec<_>>()),
                    "p99_us": median(&xs.iter().map(|x| x.4 as f64).collect::<Vec<_>>()),
                    "rounds_count": xs.len(),
                }),
            );
        }
        let m = med_rps.get("mcpgate").copied().unwrap_or(0.0);
        let of = |t: &str| med_rps.get(t).copied().unwrap_or(0.0);
        if size == 4096 {
            headline_mcpgate_4k = Some(m);
        }
        per_size.push(json!({
            "payload_bytes": size,
            "medians": medians,
            "ratios": {
                "mcpgate_over_nginx_ratio": ratio(m, of("nginx")),
                "mcpgate_over_bare_pingora_ratio": ratio(m, of("bare-pingora")),
                "mcpgate_over_direct_ratio": ratio(m, of("direct")),
                "nginx_over_direct_ratio": ratio(of("nginx"), of("direct")),
                "bare_pingora_over_direct_ratio": ratio(of("bare-pingora"), of("direct")),
            },
            "runs": runs,
        }));
    }
    if let Some(m) = headline_mcpgate_4k {
        ctx.mcpgate_max_per_s = Some(m);
    }
    let mut mcpgate_alive = true;
    if let Some((Some(p), _)) = procs.get_mut("mcpgate") {
        mcpgate_alive = p.alive();
    }
    drop(procs);
    drop(mock);
    let params = json!({
        "payloads_bytes": sizes,
        "rounds_count": rounds,
        "warmup_s": warmup.as_secs_f64(),
        "duration_s": duration.as_secs_f64(),
        "connections_count": connections,
        "eras": "mixed: even connections 2025-11-25 sessions (initialize first), odd 2026-07-28 stateless",
        "tool": "tools/call echo, arguments.text of payload_bytes, result text of the same size",
        "proxy_workers_count": ctx.rig.proxy_threads,
        "mock_threads_count": ctx.rig.mock_threads,
        "loadgen": "in-process, 1 tokio thread, closed loop",
        "nginx_version": super::rig::nginx_version(),
        "unavailable": unavailable,
    });
    let stopped = (!mcpgate_alive).then(|| "mcpgate exited during the scenario".to_owned());
    Ok(envelope(
        ctx,
        "throughput-4k",
        started,
        params,
        json!({ "payloads": per_size }),
        stopped,
        &[
            "Throughput is successful answers per second over the measured window; medians over rounds.",
            "proxy_cpu_per_request_us: user+system CPU of the proxy's process group during the measured window divided by the successful requests (clock-tick resolution).",
            "Load generator, mock upstream and proxy share the machine's cores.",
        ],
    ))
}
