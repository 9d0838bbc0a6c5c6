//! `overload`: fixed-rate load at 3x mcpgate's measured capacity for 60 s
//! (quick: 8 s): latency of accepted requests, rejections by kind, mcpgate's
//! RSS sampled every second (it must stay flat) and requests that got no
//! answer at all (must be zero).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::procs::group_rss;
use super::{envelope, round1, Ctx};
use crate::load::{self, EraMix, LoadConfig};

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (mock, _, mut gate, gate_addr) = rig.mock_behind_mcpgate()?;
    let max = ctx.mcpgate_max(gate_addr).await;
    let factor = 3.0;
    let duration = Duration::from_secs(ctx.pick(5, 60));
    let timeout = Duration::from_secs(ctx.pick(3, 10));
    let connections = ctx.pick(256, 512);
    let rss_before = gate.rss_bytes();

    let mut cfg = LoadConfig::new("overload 3x", gate_addr);
    cfg.eras = EraMix::Mixed;
    cfg.connections = connections;
    cfg.rate_per_s = Some((max * factor).round());
    cfg.warmup = Duration::ZERO;
    cfg.duration = duration;
    cfg.timeout = timeout;
    cfg.timeline_bucket = Some(Duration::from_secs(1));
    let task = tokio::spawn(load::run(cfg));

    let pid = gate.pid();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !task.is_finished() {
        tick.tick().await;
        samples.push(json!({
            "t_s": round1(t0.elapsed().as_secs_f64()),
            "rss_bytes": group_rss(pid),
        }));
    }
    let report = task.await.map_err(|e| format!("load task: {e}"))?;
    let rss_after = gate.rss_bytes();
    let rss: Vec<u64> = samples
        .iter()
        .filter_map(|s| s["rss_bytes"].as_u64())
        .collect();
    // Growth after the first quarter (allocator warm-up) to the end.
    let from = rss.get(rss.len() / 4).copied().unwrap_or(rss_before);
    let last = rss.last().copied().unwrap_or(rss_after);
    let peak = rss.iter().copied().max().unwrap_or(0);
    let alive = gate.alive();
    drop(gate);
    drop(mock);
    let params = json!({
        "mcpgate_max_per_s": round1(max),
        "offered_factor_ratio": factor,
        "offered_rate_per_s": (max * factor).round(),
        "duration_s": duration.as_secs_f64(),
        "connections_count": connections,
        "request_timeout_s": timeout.as_secs(),
        "payload_bytes": 4096,
        "eras": "mixed",
    });
    let results = json!({
        "load": report,
        "lost_without_answer_count": report.lost_count,
        "answered_per_s": report.answered_per_s,
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_peak_bytes": peak,
        "rss_growth_bytes": last as i64 - from as i64,
        "rss_growth_ratio": if from > 0 { super::round3(last as f64 / from as f64) } else { 0.0 },
        "rss_samples": samples,
    });
    Ok(envelope(
        ctx,
        "overload",
        started,
        params,
        results,
        (!alive).then(|| "mcpgate exited during the scenario".to_owned()),
        &[
            "Offered load is a fixed-rate schedule over a bounded set of connections: when every connection is busy, the schedule falls behind in the load generator (counted as unsent_count, and as latency from the intended send time).",
            "rss_growth_bytes: last RSS sample minus the sample a quarter into the run.",
            "lost_without_answer_count: requests that got no HTTP answer (I/O error, closed connection or the request timeout).",
        ],
    ))
}
