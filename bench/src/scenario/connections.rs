//! `connections-100k`: open MCP streams held through mcpgate at 10K, 50K and
//! 100K concurrent connections (quick: 500 and 2,000): half legacy (initialize,
//! then a GET stream), half modern `subscriptions/listen`. At each step:
//! mcpgate's RSS and descriptors, RSS per connection, time to establish, and
//! the latency of requests made while the streams are held. Stops at the
//! first step that cannot be reached, recording what stopped it.
//!
//! Machine limits, handled here: a process may hold 20,000 descriptors, so
//! the streams are opened by several `loadgen hold` processes (at most 15,000
//! each); each holder binds its own loopback source address (127.0.1.N) so the
//! ~28K ephemeral ports per source address are not a limit; the mock upstream
//! is told to allow that many streams and sessions and to notify rarely.
//!
//! mcpgate speaks HTTP/2 to the mocks (`[upstream] http2 = true`), so a held
//! stream costs a worker one client descriptor and a share of a multiplexed
//! upstream connection, and is sized as an operator would for 100K: stream
//! and session caps above the target (they are divided across workers, and
//! `SO_REUSEPORT` does not spread connections exactly evenly), and connect
//! and health-check timeouts that tolerate processes busy with setting up
//! 100K connections on 2 cores.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::rig::Override;
use super::{envelope, round1, Ctx};
use crate::load::hold::HoldStatus;
use crate::load::{self, EraMix, LoadConfig};

/// Streams one mcpgate worker process is meant to hold at most with an
/// HTTP/2 upstream (one client descriptor each, under the 20,000 limit with
/// room for uneven spread).
const PER_WORKER: u64 = 13_000;
/// The same over HTTP/1.1 (a client and an upstream descriptor each).
const PER_WORKER_HTTP1: u64 = 8_000;
/// Streams one mock upstream (and one holder) holds at most. Over HTTP/1.1
/// every stream is also a connection from 127.0.0.1 to its mock, and the
/// kernel runs out of local ports for one (source, destination) pair at
/// about 13,000 of them here (measured: `BindError` past ~90K with 7 mocks).
const PER_MOCK: u64 = 10_000;

/// The mock upstream: room for every stream and session, rare notifications.
const MOCK_ARGS: &[&str] = &[
    "--max-streams",
    "250000",
    "--max-sessions",
    "250000",
    "--notify-interval-ms",
    "600000",
    "--session-idle-secs",
    "3600",
];

struct Holder {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    open: u64,
}

impl Holder {
    fn start(ctx: &Ctx, n: usize, gate: SocketAddr) -> Result<Self, String> {
        let source = format!("127.0.1.{}", n + 1);
        let mut child = tokio::process::Command::new(ctx.rig.bin_dir.join("loadgen"))
            .arg("hold")
            .args(["--url", &format!("http://{gate}/mcp")])
            .args(["--source-ip", &source])
            .args(["--parallel", "64", "--timeout-ms", "10000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("loadgen hold: {e}"))?;
        let stdin = child.stdin.take().ok_or("holder stdin")?;
        let stdout = child.stdout.take().ok_or("holder stdout")?;
        Ok(Self {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            open: 0,
        })
    }

    async fn command(&mut self, cmd: &str) -> Result<HoldStatus, String> {
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| format!("holder: {e}"))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| format!("holder: {e}"))?;
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| format!("holder: {e}"))?
            .ok_or("holder exited")?;
        let s: HoldStatus = serde_json::from_str(&line).map_err(|e| format!("holder: {e}"))?;
        self.open = s.open_count;
        Ok(s)
    }
}

/// 200 requests/s for `secs` (0: a 300 ms warm-up only).
async fn held_latency(addr: SocketAddr, secs: u64) -> load::LoadReport {
    let mut cfg = LoadConfig::new("requests while held", addr);
    cfg.eras = EraMix::Mixed;
    cfg.connections = 8;
    cfg.rate_per_s = Some(200.0);
    cfg.warmup = Duration::from_millis(300);
    cfg.duration = Duration::from_millis((secs * 1000).max(100));
    cfg.progress = false;
    load::run(cfg).await
}

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let steps: Vec<u64> = ctx.pick(vec![500, 2_000], vec![10_000, 50_000, 100_000]);
    // The headline: streams multiplexed on HTTP/2 upstream connections. Then
    // the same steps with HTTP/1.1 upstreams, where every held stream also
    // holds an upstream connection (and its descriptor).
    let h2 = run_variant(ctx, &steps, true).await?;
    let h1 = run_variant(ctx, &steps, false).await?;
    let mut results = h2.results;
    results["http1_upstream"] = json!({
        "parameters": h1.params,
        "results": h1.results,
        "stopped_by": h1.stopped_by,
    });
    Ok(envelope(
        ctx,
        "connections-100k",
        started,
        h2.params,
        results,
        h2.stopped_by,
        &[
            "RSS: the sum over mcpgate's processes (supervisor and workers); per connection: (RSS at the step - RSS of the warm processes before any stream) / open streams.",
            "The largest count reached and what stopped it are recorded as measured.",
            "results.http1_upstream: the same steps with `http2 = false`: each held stream then holds an upstream connection too, so twice the descriptors per stream and more worker processes.",
        ],
    ))
}

struct Variant {
    params: Value,
    results: Value,
    stopped_by: Option<String>,
}

/// Streams one mcpgate worker may hold: each costs a client descriptor,
/// and over HTTP/1.1 an upstream descriptor too.
fn per_worker(http2: bool) -> u64 {
    if http2 {
        PER_WORKER
    } else {
        PER_WORKER_HTTP1
    }
}

async fn run_variant(ctx: &mut Ctx, steps: &[u64], http2: bool) -> Result<Variant, String> {
    let rig = ctx.rig.clone();
    let largest = steps.iter().copied().max().unwrap_or(0);
    // A process may hold 20,000 descriptors: workers sharing the port
    // (SO_REUSEPORT) with at most per_worker() streams each. The mock's side:
    // one descriptor per stream over HTTP/1.1, so several mock endpoints
    // (kept for HTTP/2 too, where they share the setup work).
    let workers = largest.div_ceil(per_worker(http2)).max(1) as usize;
    let mock_count = largest.div_ceil(PER_MOCK).max(1) as usize;
    let has_workers = rig.mcpgate_has_workers();
    let mut mocks = Vec::new();
    let mut mock_addrs = Vec::new();
    for m in 0..mock_count {
        let (mock, addr) = rig
            .mock(&format!("mock-{m}"), 0, MOCK_ARGS)
            .map_err(|e| e.to_string())?;
        mocks.push(mock);
        mock_addrs.push(addr);
    }
    let caps = (largest * 2).max(100_000);
    let overrides = [
        Override::new("upstream", "http2", http2),
        Override::new("sessions", "max_sessions", caps),
        Override::new("admission", "max_streams", caps),
        Override::new("upstream.health", "timeout_ms", 5000),
        Override::new("upstream", "connect_timeout_ms", 5000),
        // Setup bursts (10 holders x 64 in parallel) land unevenly on the
        // workers, each holding its share of the in-flight caps.
        Override::new("admission", "tenant_max_in_flight", 16_384),
        Override::new("admission", "global_max_in_flight", 16_384),
    ];
    let (gate, gate_addr) = rig
        .mcpgate_with("mcpgate", &mock_addrs, workers, &[], &overrides)
        .map_err(|e| e.to_string())?;
    // Let every worker come up, then warm them (SO_REUSEPORT spreads the
    // warm-up connections), so the baseline is of warm processes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut warm_cfg = LoadConfig::new("warm-up", gate_addr);
    warm_cfg.connections = 4 * workers;
    warm_cfg.warmup = Duration::ZERO;
    warm_cfg.duration = Duration::from_secs(1);
    warm_cfg.progress = false;
    let warm = load::run(warm_cfg).await;
    let rss_base = gate.rss_bytes();
    let processes = gate.process_count();
    // One holder per mock's worth of streams, each from its own source address.
    let holder_count = mock_count;
    let mut holders: Vec<Holder> = Vec::new();
    for h in 0..holder_count {
        // Fresh source addresses per variant: the previous variant's closed
        // connections may still hold their ports (TIME_WAIT).
        let source = h + if http2 { 0 } else { 32 };
        holders.push(Holder::start(ctx, source, gate_addr)?);
    }
    let mut points = Vec::new();
    let mut stopped_by = None;
    let t_all = Instant::now();
    for &target in steps {
        let t = Instant::now();
        // Spread the step evenly over the holders.
        let per = target.div_ceil(holder_count as u64);
        let futs = holders.iter_mut().map(|h| {
            let n = per.saturating_sub(h.open);
            async move {
                if n > 0 {
                    h.command(&format!("open {n}")).await.map(|_| ())
                } else {
                    Ok(())
                }
            }
        });
        // Bounded: a step that cannot finish in 5 minutes is recorded as such.
        let step_limit = Duration::from_secs(300);
        if tokio::time::timeout(step_limit, futures_join(futs))
            .await
            .is_err()
        {
            stopped_by = Some(format!(
                "step {target}: not established within {step_limit:?}"
            ));
            break;
        }
        let elapsed = t.elapsed();
        let mut errors = std::collections::BTreeMap::<String, u64>::new();
        let mut failed = 0;
        let mut total_open = 0;
        for h in holders.iter_mut() {
            match h.command("status").await {
                Ok(s) => {
                    total_open += s.open_count;
                    failed += s.failed_count;
                    for (k, v) in s.errors {
                        *errors.entry(k).or_default() += v;
                    }
                }
                Err(e) => *errors.entry(e).or_default() += 1,
            }
        }
        let alive = gate.alive_ref() && gate.process_count() == processes;
        let rss = gate.rss_bytes();
        let fds = gate.fd_counts();
        let lat = if alive {
            Some(held_latency(gate_addr, ctx.pick(1, 3)).await)
        } else {
            None
        };
        let per_conn = (total_open > 0)
            .then(|| round1(rss.saturating_sub(rss_base) as f64 / total_open as f64));
        points.push(json!({
            "target_connections_count": target,
            "open_connections_count": total_open,
            "failed_setups_count": failed,
            "establish_s": round1(elapsed.as_secs_f64()),
            "mcpgate_rss_bytes": rss,
            "mcpgate_rss_per_connection_bytes": per_conn,
            "mcpgate_fds_count": fds.iter().sum::<u64>(),
            "mcpgate_max_fds_per_process_count": fds.iter().copied().max().unwrap_or(0),
            "mock_fds_count": mocks.iter().map(|m| m.fd_count()).sum::<u64>(),
            "mock_rss_bytes": mocks.iter().map(|m| m.rss_bytes()).sum::<u64>(),
            "setup_error_counts": errors,
            "mcpgate_log_counts": log_counts(&gate.log),
            "held_request_latency": lat.as_ref().map(|l| &l.latency),
            "held_requests": lat,
        }));
        if !alive || total_open < target * 99 / 100 {
            stopped_by = Some(format!(
                "step {target}: {total_open} streams open ({failed} setups failed); mcpgate processes {} of {processes}; most descriptors in one mcpgate process {} (limit {}); errors: {}; last mcpgate log lines: {}",
                gate.process_count(),
                fds.iter().copied().max().unwrap_or(0),
                super::fd_limit(),
                serde_json::to_string(&points.last().map(|p| &p["setup_error_counts"])).unwrap_or_default(),
                gate.log_tail(2).join(" | "),
            ));
            break;
        }
    }
    let largest_open = points
        .iter()
        .filter_map(|p| p["open_connections_count"].as_u64())
        .max()
        .unwrap_or(0);
    for h in holders.iter_mut() {
        let _ = h.command("quit").await;
    }
    drop(holders);
    let all_alive = gate.alive_ref() && gate.process_count() == processes;
    drop(gate);
    drop(mocks);
    let results = json!({
        "baseline_rss_bytes": rss_base,
        "largest_open_connections_count": largest_open,
        "total_establish_s": round1(t_all.elapsed().as_secs_f64()),
        "steps": points,
        "warmup_requests": warm,
    });
    let params = json!({
        "steps_connections_count": steps,
        "streams": "even: 2025-11-25 initialize + notifications/initialized + GET stream; odd: 2026-07-28 subscriptions/listen",
        "mcpgate_workers_count": if has_workers { workers } else { 1 },
        "mcpgate_processes_count": processes,
        "mock_endpoints_count": mock_count,
        "workers": if has_workers {
            format!("one mcpgate (`run --workers {workers}`): {workers} worker processes sharing the port with SO_REUSEPORT, at most ~{} streams each, because each held stream costs a worker a client descriptor ({}) and a process may hold 20,000", per_worker(http2), if http2 { "its upstream side is multiplexed" } else { "and an upstream one" })
        } else {
            "this mcpgate has no --workers: one process, at most ~10,000 streams".to_owned()
        },
        "holders": format!("{holder_count} loadgen hold processes (each under its own descriptor limit), each from its own loopback source address 127.0.1.N so ephemeral ports (28,232 per source address) are no limit"),
        "fd_limit_per_process_count": super::fd_limit(),
        "mock": format!("demo-upstream {}", MOCK_ARGS.join(" ")),
        "held_request_rate_per_s": 200,
        "held_requests_target": "tools/call (both revisions) at 200/s over 8 connections, while every stream is held",
        "upstream_http2": http2,
        "upstream_side": if http2 {
            format!("HTTP/2 (h2c) to the mocks: held streams are multiplexed, up to 1,000 per upstream connection (http2_max_streams); the upstream pool has {mock_count} mock endpoints (upstream `endpoints`), single-threaded each")
        } else {
            format!("HTTP/1.1 to the mocks: each held stream holds its own upstream connection; the upstream pool has {mock_count} mock endpoints (upstream `endpoints`), so no mock passes its descriptor limit and each (source, destination) pair stays under the ephemeral port range")
        },
        "policy_overrides": overrides.iter().map(|o| format!("[{}] {} = {}", o.section, o.key, o.value)).collect::<Vec<_>>(),
    });
    Ok(Variant {
        params,
        results,
        stopped_by: stopped_by
            .or_else(|| (!all_alive).then(|| "an mcpgate process exited".to_owned())),
    })
}

/// What mcpgate logged so far that explains failed setups: rejections by
/// kind and detail, endpoints marked unhealthy, upstream failures.
fn log_counts(log: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let key = if let Some(i) = line.find("rejected kind=") {
            let kind = line[i + 14..].split_whitespace().next().unwrap_or("");
            let detail = line.split("detail=").nth(1).unwrap_or("").trim();
            let detail: String = detail.chars().take(160).collect();
            format!("rejected {kind}: {detail}")
        } else if line.contains("endpoint health changed") && line.contains("healthy=false") {
            "endpoint marked unhealthy".to_owned()
        } else if let Some(i) = line.find("upstream connect failed: ") {
            let why: String = line[i + 25..].chars().take(120).collect();
            format!("upstream connect failed: {why}")
        } else if line.contains("upstream failed") {
            "upstream failed mid-response".to_owned()
        } else {
            continue;
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// Awaits every future concurrently, in order.
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let futs: Vec<F> = futs.collect();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
