//! `stdio-workers`: MCP servers that speak only stdio, spawned and pooled
//! by mcpgate (`[upstreams.X] command`).
//!
//! 1. **Session set-up** per real server (the Python SDK test server, npm
//!    `server-everything`, npm `server-filesystem`): `initialize`,
//!    `notifications/initialized` and `tools/list` of a new legacy session
//!    through mcpgate, timed, then `DELETE`. Cold: `min_idle = 0`, so each
//!    session spawns its worker. Warm: `min_idle = 1`, each session taken
//!    once the pool's spare worker has started and gone idle.
//! 2. **RSS per worker**: the server process serving one session (cold
//!    run, after its `tools/list`), median over the samples.
//! 3. **Most concurrent per-session workers**: sessions opened two at a
//!    time and kept, each with its own `server-filesystem` worker, until the
//!    target, the time budget or the run's memory guard (it stops while a
//!    quarter of the machine's memory is still available: the machine is
//!    shared); then every session is pinged, mcpgate stopped, and the worker
//!    processes left behind counted.
//! 4. **Shared-mode `tools/call` throughput**: closed-loop `echo` calls of
//!    the Python SDK server through mcpgate (`mode = "shared"`, one and two
//!    workers), PyPI `mcp-proxy` (one server process for all sessions) and
//!    npm `supergateway --stateful` (a server process per session), in one
//!    run, with the same load; ratios of mcpgate's figures to theirs.

pub mod servers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::procs::{
    children_exec_d, group_pids, group_pss, group_rss, mem_available_bytes, tree_cpu_ticks, Proc,
};
use super::{envelope, median, ratio, round1, run_measured, Ctx};
use crate::load::client::{with_timeout, Conn};
use crate::load::mcp::{self, Target};
use crate::load::stats::{classify, Outcome};
use crate::load::{EraMix, LoadConfig};
use servers::{Bridge, GateSetup, Server};

/// One MCP request's deadline here (a cold spawn under load included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (found, missing) = servers::find(&rig);
    let samples = ctx.pick(3, 10);
    let mut notes = vec![
        "mcpgate runs one worker process here: stdio pools belong to each process.",
        "Warm set-up takes a worker spawned ahead of demand; cold spawns one per session.",
    ];
    if !missing.is_empty() {
        notes.push("Some servers are not installed (scripts/bootstrap.sh): see parameters.");
    }
    let mut per_server = Map::new();
    for server in &found {
        eprintln!("stdio-workers: session set-up, {}", server.name);
        let r = set_up_times(&rig, server, samples).await;
        per_server.insert(server.name.into(), r);
    }

    let most = match found.iter().find(|s| s.name == "server-filesystem") {
        Some(s) => {
            let target = ctx.pick(6, 1_000);
            let budget = Duration::from_secs(ctx.pick(30, 120));
            eprintln!("stdio-workers: most concurrent workers ({})", s.name);
            most_workers(&rig, s, target, budget).await
        }
        None => json!({"skipped": "server-filesystem not installed"}),
    };

    let shared = match found.iter().find(|s| s.name == "python-sdk") {
        Some(s) => {
            eprintln!("stdio-workers: shared-mode throughput ({})", s.name);
            shared_throughput(ctx, &rig, s).await
        }
        None => json!({"skipped": "the Python SDK server is not installed"}),
    };

    let parameters = json!({
        "servers": found.iter().map(|s| s.name).collect::<Vec<_>>(),
        "servers_missing": missing,
        "set_up_samples_count": samples,
        "supergateway_installed": servers::installed(&rig, servers::SUPERGATEWAY_PATH),
        "mcp_proxy_installed": servers::installed(&rig, servers::MCP_PROXY_PATH),
    });
    let results = json!({
        "set_up": per_server,
        "most_workers": most,
        "shared_throughput": shared,
    });
    Ok(envelope(
        ctx,
        "stdio-workers",
        started,
        parameters,
        results,
        None,
        &notes,
    ))
}

fn target(addr: SocketAddr) -> Target {
    Target {
        authority: addr.to_string(),
        path: "/mcp".into(),
        api_key: None,
    }
}

async fn send(
    c: &mut Conn,
    raw: &[u8],
    what: &str,
) -> Result<crate::load::client::Response, String> {
    with_timeout(REQUEST_TIMEOUT, c.request(raw))
        .await
        .map_err(|e| format!("{what}: {e}"))
}

/// Opens a legacy session: `initialize`, `notifications/initialized`,
/// `tools/list`. Returns the time it took and the session id.
async fn open_session(addr: SocketAddr) -> Result<(Duration, String), String> {
    let t = target(addr);
    let t0 = Instant::now();
    let mut c = with_timeout(REQUEST_TIMEOUT, Conn::connect(addr, None))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let r = send(&mut c, &mcp::initialize(&t), "initialize").await?;
    let sid = r
        .session_id
        .filter(|_| r.status == 200)
        .ok_or_else(|| format!("initialize: status {}", r.status))?;
    let r = send(&mut c, &mcp::initialized(&t, &sid), "initialized").await?;
    if r.status != 202 {
        return Err(format!("initialized: status {}", r.status));
    }
    let r = send(&mut c, &mcp::tools_list(&t, &sid), "tools/list").await?;
    let listed = r.body.windows(8).any(|w| w == b"\"tools\":");
    if classify(r.status, &r.body) != Outcome::Ok || !listed {
        return Err(format!("tools/list: status {}", r.status));
    }
    Ok((t0.elapsed(), sid))
}

/// Ends `sid` (its worker stops).
async fn close_session(addr: SocketAddr, sid: &str) {
    if let Ok(mut c) = with_timeout(REQUEST_TIMEOUT, Conn::connect(addr, None)).await {
        let _ = send(&mut c, &mcp::delete_session(&target(addr), sid), "DELETE").await;
    }
}

/// Whether `sid` still answers `ping`.
async fn answers(addr: SocketAddr, sid: &str) -> bool {
    let Ok(mut c) = with_timeout(REQUEST_TIMEOUT, Conn::connect(addr, None)).await else {
        return false;
    };
    send(&mut c, &mcp::ping(&target(addr), sid), "ping")
        .await
        .is_ok_and(|r| classify(r.status, &r.body) == Outcome::Ok)
}

/// mcpgate's stdio workers (the servers it started).
fn workers(gate: &Proc) -> Vec<u32> {
    children_exec_d(gate.pid(), "mcpgate")
}

/// Waits until `gate` has exactly `n` workers and they stopped using CPU
/// (started and idle) for 300 ms; gives up after `limit`.
async fn settle(gate: &Proc, n: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut last: Option<(Vec<u32>, u64)> = None;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        let pids = workers(gate);
        let cpu: u64 = pids.iter().map(|p| tree_cpu_ticks(*p)).sum();
        let same = last.as_ref().is_some_and(|(p, c)| *p == pids && *c == cpu);
        if !same {
            quiet_since = Instant::now();
        }
        if pids.len() == n && same && quiet_since.elapsed() >= Duration::from_millis(300) {
            return true;
        }
        last = Some((pids, cpu));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn millis(d: Duration) -> f64 {
    round1(d.as_secs_f64() * 1e3)
}

fn summary(times: &[f64], errors: &[String]) -> Value {
    json!({
        "median_ms": median(times),
        "max_ms": times.iter().copied().reduce(f64::max),
        "min_ms": times.iter().copied().reduce(f64::min),
        "samples_count": times.len(),
        "errors": errors,
    })
}

/// Cold and warm session set-up of `server`, and the RSS of the worker
/// serving a session.
async fn set_up_times(rig: &super::rig::Rig, server: &Server, samples: usize) -> Value {
    let mut out = Map::new();
    let mut rss = Vec::new();
    let mut pss = Vec::new();
    for (label, min_idle) in [("cold", 0), ("warm", 1)] {
        let setup = GateSetup {
            server,
            shared: false,
            min_idle,
            max_workers: 8,
        };
        let name = format!("stdio-{}-{label}", server.name);
        let (gate, addr) = match servers::mcpgate(rig, &name, &setup) {
            Ok(g) => g,
            Err(e) => {
                out.insert(label.into(), json!({"errors": [e.to_string()]}));
                continue;
            }
        };
        let mut times = Vec::new();
        let mut errors = Vec::new();
        for _ in 0..samples {
            if !settle(&gate, min_idle, Duration::from_secs(30)).await {
                errors.push(format!(
                    "the pool did not settle at {min_idle} idle workers"
                ));
            }
            match open_session(addr).await {
                Ok((took, sid)) => {
                    times.push(millis(took));
                    if min_idle == 0 {
                        // The session's worker is the only one.
                        let w = workers(&gate);
                        if w.len() == 1 {
                            rss.push(group_rss(w[0]) as f64);
                            pss.push(group_pss(w[0]) as f64);
                        }
                    }
                    close_session(addr, &sid).await;
                }
                Err(e) => errors.push(e),
            }
        }
        out.insert(label.into(), summary(&times, &errors));
        let mut gate = gate;
        gate.stop();
    }
    let cold = out["cold"]["median_ms"].as_f64().unwrap_or(0.0);
    let warm = out["warm"]["median_ms"].as_f64().unwrap_or(0.0);
    out.insert("cold_over_warm_ratio".into(), json!(ratio(cold, warm)));
    out.insert("rss_per_worker_bytes".into(), json!(median(&rss) as u64));
    out.insert("pss_per_worker_bytes".into(), json!(median(&pss) as u64));
    out.insert("rss_samples_count".into(), json!(rss.len()));
    Value::Object(out)
}

/// Opens sessions (two at a time), each with its own worker, and keeps
/// them until `target`, `budget` or the memory guard.
async fn most_workers(
    rig: &super::rig::Rig,
    server: &Server,
    target: usize,
    budget: Duration,
) -> Value {
    let setup = GateSetup {
        server,
        shared: false,
        min_idle: 0,
        max_workers: 100_000,
    };
    let (mut gate, addr) = match servers::mcpgate(rig, "stdio-most-workers", &setup) {
        Ok(g) => g,
        Err(e) => return json!({"errors": [e.to_string()]}),
    };
    let total = super::machine()["memory_bytes"].as_u64().unwrap_or(0);
    let guard = total / 4;
    let available_at_start = mem_available_bytes();
    let started = Instant::now();
    let mut sessions: Vec<String> = Vec::new();
    let mut times = Vec::new();
    let mut stopped_by = format!("the target of {target} sessions");
    let mut last_error = None;
    'open: while sessions.len() < target {
        if started.elapsed() >= budget {
            stopped_by = format!("the time budget of {} s", budget.as_secs());
            break;
        }
        if mem_available_bytes() < guard {
            stopped_by = "the memory guard (a quarter of the machine's memory left)".into();
            break;
        }
        let want = (target - sessions.len()).min(2);
        let opened = open_sessions(addr, want).await;
        for r in opened {
            match r {
                Ok((took, sid)) => {
                    times.push(millis(took));
                    sessions.push(sid);
                }
                Err(e) => {
                    stopped_by = format!("a session failed to open: {e}");
                    last_error = Some(e);
                    break 'open;
                }
            }
        }
    }
    let opening_s = started.elapsed().as_secs_f64();
    let worker_pids = workers(&gate);
    let worker_rss: u64 = worker_pids.iter().map(|p| group_rss(*p)).sum();
    let worker_pss: u64 = worker_pids.iter().map(|p| group_pss(*p)).sum();
    let available_at_end = mem_available_bytes();
    let gate_rss = super::procs::rss_named(gate.pid(), "mcpgate");
    let mut answered = 0;
    for chunk in sessions.chunks(8) {
        let pings = chunk
            .iter()
            .cloned()
            .map(|sid| async move { answers(addr, &sid).await });
        for ok in join_all(pings).await {
            answered += usize::from(ok);
        }
    }
    let before_stop = worker_pids.len();
    gate.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = worker_pids
        .iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .count();
    let per = |total: u64| total.checked_div(before_stop as u64).unwrap_or(0);
    let used = available_at_start.saturating_sub(available_at_end);
    json!({
        "server": server.name,
        "held_sessions_count": sessions.len(),
        "worker_processes_count": before_stop,
        "answered_ping_count": answered,
        "stopped_by": stopped_by,
        "last_error": last_error,
        "opening_s": round1(opening_s),
        "set_up_median_ms": median(&times),
        "set_up_max_ms": times.iter().copied().reduce(f64::max),
        "workers_rss_bytes": worker_rss,
        "rss_per_worker_bytes": per(worker_rss),
        "workers_pss_bytes": worker_pss,
        "pss_per_worker_bytes": per(worker_pss),
        "mcpgate_rss_bytes": gate_rss,
        "memory_available_at_start_bytes": available_at_start,
        "memory_available_at_end_bytes": available_at_end,
        "memory_used_per_worker_bytes": per(used),
        "memory_guard_bytes": guard,
        "estimated_workers_in_available_memory_count": available_at_start.checked_div(per(used)).unwrap_or(0),
        "workers_left_after_stop_count": left,
    })
}

/// Opens `n` sessions at once.
async fn open_sessions(addr: SocketAddr, n: usize) -> Vec<Result<(Duration, String), String>> {
    join_all((0..n).map(|_| open_session(addr))).await
}

/// Runs `futs` as tasks, all at once; their outputs in order.
async fn join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(v) => out.push(v),
            Err(e) => panic!("task failed: {e}"),
        }
    }
    out
}

/// Closed-loop `echo` calls through mcpgate (shared mode) and the two
/// bridges, in front of the same server.
async fn shared_throughput(ctx: &Ctx, rig: &super::rig::Rig, server: &Server) -> Value {
    let connections = 4;
    let mut rows = Map::new();
    let run_one = async |label: &str, started: std::io::Result<(Proc, SocketAddr)>| {
        let (p, addr) = match started {
            Ok(s) => s,
            Err(e) => return json!({"errors": [e.to_string()]}),
        };
        let mut cfg = LoadConfig::new(label, addr);
        cfg.eras = EraMix::Legacy;
        cfg.connections = connections;
        cfg.payload_bytes = 256;
        cfg.warmup = Duration::from_secs(ctx.pick(1, 2));
        cfg.duration = Duration::from_secs(ctx.pick(2, 8));
        cfg.timeout = Duration::from_secs(10);
        cfg.progress = false;
        let (report, cpu) = run_measured(ctx, cfg, &[&p]).await;
        let servers_count = children_of_bridge(&p).len();
        let mut p = p;
        p.stop();
        let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("timeline");
            o.insert("cpu_per_request_us".into(), json!(cpu[0]));
            o.insert("server_processes_count".into(), json!(servers_count));
        }
        v
    };
    for workers in [1usize, 2] {
        let label = format!("mcpgate-shared-{workers}");
        let setup = GateSetup {
            server,
            shared: true,
            min_idle: workers,
            max_workers: workers,
        };
        let started = servers::mcpgate(rig, &label, &setup);
        let row = run_one(&label, started).await;
        rows.insert(label, row);
    }
    for bridge in [Bridge::McpProxy, Bridge::Supergateway] {
        let row = match bridge.start(rig, server) {
            Some(started) => run_one(bridge.name(), started).await,
            None => json!({"skipped": "not installed (scripts/bootstrap.sh bridges)"}),
        };
        rows.insert(bridge.name().into(), row);
    }
    let tp = |k: &str| rows.get(k).and_then(|r| r["throughput_per_s"].as_f64());
    let p99 = |k: &str| rows.get(k).and_then(|r| r["latency"]["p99_us"].as_f64());
    let mut ratios = Map::new();
    for (gate, other) in [
        ("mcpgate-shared-1", "mcp-proxy"),
        ("mcpgate-shared-1", "supergateway"),
        ("mcpgate-shared-2", "supergateway"),
    ] {
        let key = |what: &str| {
            format!(
                "{}_over_{}_{what}_ratio",
                gate.replace('-', "_"),
                other.replace('-', "_")
            )
        };
        if let (Some(a), Some(b)) = (tp(gate), tp(other)) {
            ratios.insert(key("throughput"), json!(ratio(a, b)));
        }
        if let (Some(a), Some(b)) = (p99(gate), p99(other)) {
            ratios.insert(key("p99"), json!(ratio(a, b)));
        }
    }
    json!({
        "connections_count": connections,
        "payload_bytes": 256,
        "runs": rows,
        "ratios": ratios,
    })
}

/// The server processes a bridge (or mcpgate) started: its direct
/// children and theirs, excluding the bridge's own helper processes.
fn children_of_bridge(p: &Proc) -> Vec<u32> {
    group_pids(p.pid())
        .into_iter()
        .filter(|pid| *pid != p.pid())
        .filter(|pid| {
            let c = super::procs::comm_of(*pid);
            c.starts_with("python") || c == "node" || c == "node22"
        })
        .collect()
}
