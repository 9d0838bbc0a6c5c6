//! The benchmark scenarios behind `mcpbench run`. Each writes one JSON file,
//! `<out>/<scenario>.json`, with the command that made it, the machine, the
//! parameters, the measurements (every number's unit is in its name) and, when
//! a scenario could not finish, what stopped it, as measured.

pub mod breaker;
pub mod connections;
pub mod identity;
pub mod isolation;
pub mod latency;
pub mod overload;
pub mod procs;
pub mod profile;
pub mod reload;
pub mod rig;
pub mod stdio;
pub mod syscalls;
pub mod throughput;
pub mod upgrade;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::load::{self, LoadConfig, LoadReport};
use procs::Proc;
use rig::Rig;

/// Every scenario, in the order `mcpbench run` runs them.
pub const ALL: [&str; 10] = [
    "throughput-4k",
    "latency",
    "overload",
    "isolation",
    "breaker",
    "reload",
    "upgrade",
    "profile",
    "connections-100k",
    "stdio-workers",
];

/// What every scenario shares.
pub struct Ctx {
    pub rig: Rig,
    /// Smoke-test sizes (seconds, not minutes).
    pub quick: bool,
    pub out: PathBuf,
    /// The command line, recorded in each JSON.
    pub command: String,
    /// Closed-loop mcpgate throughput at 4 KB measured earlier in this
    /// invocation (requests/s), the base of the fixed-rate scenarios.
    pub mcpgate_max_per_s: Option<f64>,
    pub ticks_per_s: u64,
}

impl Ctx {
    /// Picks the quick or the full value.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// mcpgate's closed-loop maximum at 4 KB: from this invocation's
    /// throughput scenario, or measured now (3 s).
    pub async fn mcpgate_max(&mut self, mcpgate: SocketAddr) -> f64 {
        if let Some(m) = self.mcpgate_max_per_s {
            return m;
        }
        let mut cfg = LoadConfig::new("mcpgate-max", mcpgate);
        cfg.warmup = Duration::from_millis(500);
        cfg.duration = Duration::from_secs(self.pick(2, 3));
        let r = load::run(cfg).await;
        let max = r.throughput_per_s.max(1.0);
        self.mcpgate_max_per_s = Some(max);
        max
    }

    /// CPU time of `p` in microseconds.
    pub fn cpu_us(&self, p: &Proc) -> f64 {
        p.cpu_ticks() as f64 * 1e6 / self.ticks_per_s as f64
    }
}

/// A load run with the CPU time of `procs` sampled over its measured window.
pub async fn run_measured(ctx: &Ctx, cfg: LoadConfig, procs: &[&Proc]) -> (LoadReport, Vec<f64>) {
    let lead = Duration::from_millis(200) + cfg.warmup;
    let duration = cfg.duration;
    let task = tokio::spawn(load::run(cfg));
    tokio::time::sleep(lead).await;
    let before: Vec<f64> = procs.iter().map(|p| ctx.cpu_us(p)).collect();
    tokio::time::sleep(duration).await;
    let after: Vec<f64> = procs.iter().map(|p| ctx.cpu_us(p)).collect();
    let report = match task.await {
        Ok(r) => r,
        Err(e) => panic!("load task failed: {e}"),
    };
    let n = report.ok_count.max(1) as f64;
    let per_req = before
        .iter()
        .zip(&after)
        .map(|(b, a)| round1((a - b) / n))
        .collect();
    (report, per_req)
}

/// A fixed-rate load of `rate` requests per second (mixed eras, 64
/// connections, 4 KB) for `total`, with a timeline of `bucket` intervals,
/// started now: the instant its timeline counts from, and its task.
pub fn timeline_load(
    label: &str,
    addr: SocketAddr,
    rate: f64,
    total: Duration,
    bucket: Duration,
) -> (Instant, tokio::task::JoinHandle<LoadReport>) {
    let mut cfg = LoadConfig::new(label, addr);
    cfg.eras = load::EraMix::Mixed;
    cfg.connections = 64;
    cfg.rate_per_s = Some(rate);
    cfg.warmup = Duration::ZERO;
    cfg.duration = total;
    cfg.timeline_bucket = Some(bucket);
    // load::run starts its clock 200 ms after it is called.
    let t0 = Instant::now() + Duration::from_millis(200);
    (t0, tokio::spawn(load::run(cfg)))
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Median of `xs` (0 when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `a / b` rounded to 3 places, `None` when `b` is 0.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| round3(a / b))
}

pub fn unix_now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Machine facts recorded with every result.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_bytes = procs::kib_field("/proc/meminfo", "MemTotal:");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({
        "cores_count": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu_model": model,
        "memory_bytes": memory_bytes,
        "kernel": kernel.trim(),
        "fd_limit_count": fd_limit(),
    })
}

/// This process's soft descriptor limit.
pub fn fd_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(0)
}

/// The JSON envelope of one scenario's result.
pub fn envelope(
    ctx: &Ctx,
    name: &str,
    started: Instant,
    parameters: Value,
    results: Value,
    stopped_by: Option<String>,
    notes: &[&str],
) -> Value {
    json!({
        "scenario": name,
        "command": ctx.command,
        "quick": ctx.quick,
        "finished_unix_s": unix_now_s(),
        "wall_s": round1(started.elapsed().as_secs_f64()),
        "machine": machine(),
        "mcpgate_binary": std::env::var("MCPGATE_BIN").unwrap_or_else(|_| "target/<profile>/mcpgate (copied when the run started)".into()),
        "mcpgate_workers_count": if ctx.rig.mcpgate_has_workers() { Some(ctx.rig.proxy_threads) } else { None },
        "mcpgate_policy_base": std::env::var("MCPGATE_CONFIG_TEMPLATE").unwrap_or_else(|_| "config.example.toml".into()),
        "parameters": parameters,
        "results": results,
        "completed": stopped_by.is_none(),
        "stopped_by": stopped_by,
        "notes": notes,
    })
}

/// Runs one scenario by name.
pub async fn run_one(ctx: &mut Ctx, name: &str) -> Result<Value, String> {
    match name {
        "throughput-4k" => throughput::run(ctx).await,
        "latency" => latency::run(ctx).await,
        "overload" => overload::run(ctx).await,
        "isolation" => isolation::run(ctx).await,
        "breaker" => breaker::run(ctx).await,
        "reload" => reload::run(ctx).await,
        "upgrade" => upgrade::run(ctx).await,
        "profile" => profile::run(ctx).await,
        "connections-100k" => connections::run(ctx).await,
        "stdio-workers" => stdio::run(ctx).await,
        other => Err(format!("unknown scenario {other}")),
    }
}
