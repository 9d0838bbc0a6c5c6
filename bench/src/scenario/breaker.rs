//! `breaker`: stateless requests at a fixed rate through mcpgate while its
//! upstream is killed (SIGKILL) and later started again on the same port.
//! From a 100 ms timeline: time from the kill to the first failure and to
//! fast failures, failure latency while the upstream is down, and time from
//! the restart to the first fully successful interval.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{envelope, Ctx};
use crate::load::{self, stats::TimelinePoint, EraMix, LoadConfig};

/// A failure answered this fast counts as a fast failure (breaker open).
const FAST_FAIL_US: u64 = 5_000;

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (mock, mock_addr, mut gate, gate_addr) = rig.mock_behind_mcpgate()?;
    let bucket = Duration::from_millis(100);
    let kill_at = Duration::from_secs(ctx.pick(2, 3));
    let restart_at = Duration::from_secs(ctx.pick(4, 8));
    let total = Duration::from_secs(ctx.pick(6, 14));
    let rate = 200.0;

    let mut cfg = LoadConfig::new("breaker", gate_addr);
    cfg.eras = EraMix::Modern;
    cfg.connections = 16;
    cfg.rate_per_s = Some(rate);
    cfg.warmup = Duration::ZERO;
    cfg.duration = total;
    cfg.timeout = Duration::from_secs(5);
    cfg.timeline_bucket = Some(bucket);
    let t0 = Instant::now() + Duration::from_millis(200); // load::run's start
    let task = tokio::spawn(load::run(cfg));

    tokio::time::sleep_until((t0 + kill_at).into()).await;
    let mut mock = mock;
    mock.kill_now();
    let killed_at = t0.elapsed();
    tokio::time::sleep_until((t0 + restart_at).into()).await;
    let port = mock_addr.port();
    let rig2 = rig.clone();
    let restarted = tokio::task::spawn_blocking(move || rig2.mock("mock-restarted", port, &[]))
        .await
        .map_err(|e| e.to_string())?;
    let (mock2, restarted_at) = match restarted {
        Ok((p, _)) => (Some(p), Some(t0.elapsed())),
        Err(e) => {
            eprintln!("breaker: mock restart failed: {e}");
            (None, None)
        }
    };
    let report = task.await.map_err(|e| format!("load task: {e}"))?;
    let alive = gate.alive();
    drop(gate);
    drop(mock2);

    let points: Vec<TimelinePoint> = report.timeline.clone().unwrap_or_default();
    let ms = |d: Duration| d.as_millis() as u64;
    let kill_ms = ms(killed_at);
    let failed = |p: &TimelinePoint| p.rejected_count + p.lost_count > 0;
    let first_failure = points
        .iter()
        .find(|p| p.start_ms + 100 > kill_ms && failed(p))
        .map(|p| p.start_ms.saturating_sub(kill_ms));
    let first_fast = points
        .iter()
        .find(|p| {
            p.start_ms >= kill_ms && p.ok_count == 0 && failed(p) && p.max_latency_us < FAST_FAIL_US
        })
        .map(|p| p.start_ms - kill_ms);
    let recovered = restarted_at.and_then(|r| {
        let r = ms(r);
        // The first interval after the restart from which no interval fails.
        let last_bad = points
            .iter()
            .filter(|p| failed(p))
            .map(|p| p.start_ms)
            .max()?;
        let first_good = points
            .iter()
            .find(|p| p.start_ms > last_bad && p.ok_count > 0)?;
        Some(first_good.start_ms.saturating_sub(r))
    });
    let results = json!({
        "killed_at_ms": kill_ms,
        "restarted_at_ms": restarted_at.map(ms),
        "first_failure_after_kill_ms": first_failure,
        "fast_failing_after_kill_ms": first_fast,
        "recovered_after_restart_ms": recovered,
        "failure_latency": report.rejected_latency,
        "failure_kind_counts": report.rejection_counts,
        "lost_counts": report.lost_counts,
        "lost_without_answer_count": report.lost_count,
        "load": report,
    });
    let params = json!({
        "rate_per_s": rate,
        "connections_count": 16,
        "eras": "modern (stateless: a restarted mock has no sessions)",
        "kill_after_s": kill_at.as_secs_f64(),
        "restart_after_s": restart_at.as_secs_f64(),
        "duration_s": total.as_secs_f64(),
        "timeline_bucket_ms": ms(bucket),
        "fast_fail_threshold_us": FAST_FAIL_US,
        "request_timeout_s": 5,
    });
    Ok(envelope(
        ctx,
        "breaker",
        started,
        params,
        results,
        (!alive).then(|| "mcpgate exited during the scenario".to_owned()),
        &[
            "Times are at the timeline's 100 ms resolution.",
            "fast_failing_after_kill_ms: first interval after the kill with only failures, all answered within the fast-fail threshold (an open breaker, or refused upstream connections answered at once).",
            "recovered_after_restart_ms: first interval after the last failing one, relative to the restart.",
        ],
    ))
}
