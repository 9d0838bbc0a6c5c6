//! `reload`: stateless and legacy requests at half of mcpgate's measured
//! maximum while the policy is reloaded ten times (`mcpgate reload`, which
//! returns once every worker has swapped). Odd reloads change an
//! `[admission]` value (the upstream pool is carried over), even ones the
//! upstream's `max_request_ms` (the pool is built anew: new connections,
//! closed breakers). Reports failed requests and, around each reload, the
//! p99 of successful requests before it (800 ms), during it (from its start
//! to 200 ms after `mcpgate reload` returned) and after it (800 ms, cut
//! where the next reload's before window starts; quick runs: 400 ms
//! windows), from a 100 ms timeline of latency histograms; and, as the
//! control, the same p99 of the load alone before the first reload.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::{envelope, round1, timeline_load, Ctx};
use crate::load::stats::{window_latency, Latency};

const BUCKET: Duration = Duration::from_millis(100);
const RELOADS: u32 = 10;

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (mock, _mock_addr, mut gate, gate_addr) = rig.mock_behind_mcpgate()?;
    let config = rig.work.join(format!("mcpgate-{}.toml", gate_addr.port()));
    let base =
        std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let max = ctx.mcpgate_max(gate_addr).await;
    let rate = (max * 0.5).max(1.0).round();
    let every = Duration::from_millis(ctx.pick(1000, 2000));
    // The load runs alone first: the control the reload windows compare with.
    let first = Duration::from_millis(ctx.pick(2000, 6000));
    let total = first + every * RELOADS + Duration::from_millis(ctx.pick(1000, 2000));

    let (t0, task) = timeline_load("reload", gate_addr, rate, total, BUCKET);

    let mut reloads = Vec::new();
    for k in 1..=RELOADS {
        tokio::time::sleep_until((t0 + first + every * (k - 1)).into()).await;
        let (text, changed) = variant(&base, k);
        let unchanged = text == variant(&base, k - 1).0;
        std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
        let began = t0.elapsed();
        let (bin, path) = (rig.bin("mcpgate"), config.clone());
        let mut outcome = tokio::task::spawn_blocking(move || reload(&bin, &path))
            .await
            .map_err(|e| e.to_string())?;
        if unchanged && outcome.is_ok() {
            // A policy template without the keys the variants flip.
            outcome = Err("the file did not change (its base lacks the keys flipped)".into());
        }
        let ended = t0.elapsed();
        reloads.push((k, changed, began, ended, outcome));
    }
    let report = task.await.map_err(|e| format!("load task: {e}"))?;
    let alive = gate.alive();
    drop(gate);
    drop(mock);

    let hists = report.timeline_histograms.clone().unwrap_or_default();
    let window = Duration::from_millis(ctx.pick(400, 800));
    // No interval counts twice: an "after" window ends where the next
    // reload's "before" window begins.
    let starts: Vec<Duration> = reloads.iter().map(|r| floor(r.2)).collect();
    let windows = |k: usize, r: &(u32, &str, Duration, Duration, Result<String, String>)| {
        let (began, ended) = (starts[k], r.3 + Duration::from_millis(200));
        let next_before = starts
            .get(k + 1)
            .map_or(Duration::MAX, |n| n.saturating_sub(window));
        let after_end = (ended + window).min(next_before).max(ended);
        [
            (began.saturating_sub(window), began),
            (began, ended),
            (ended, after_end),
        ]
    };
    let mut per_reload = Vec::new();
    let mut all: [Vec<(Duration, Duration)>; 3] = Default::default();
    for (k, r) in reloads.iter().enumerate() {
        let w = windows(k, r);
        for (i, span) in w.iter().enumerate() {
            all[i].push(*span);
        }
        let lat = |i: usize| window_latency(&hists, BUCKET, w[i].0, w[i].1);
        per_reload.push(json!({
            "reload_index": r.0,
            "changed": r.1,
            "started_at_ms": r.2.as_millis() as u64,
            "took_ms": (r.3 - r.2).as_millis() as u64,
            "outcome": match &r.4 { Ok(_) => "reloaded".to_owned(), Err(e) => e.clone() },
            "p99_before_us": lat(0).p99_us,
            "p99_during_us": lat(1).p99_us,
            "p99_after_us": lat(2).p99_us,
        }));
    }
    let merged = |i: usize| merged_windows(&hists, &all[i]);
    let (before, during, after) = (merged(0), merged(1), merged(2));
    let alone = window_latency(
        &hists,
        BUCKET,
        Duration::ZERO,
        floor(first).saturating_sub(window),
    );
    let failed = report.rejected_count + report.lost_count;
    let reloaded = reloads.iter().filter(|r| r.4.is_ok()).count();
    let results = json!({
        "reloads_count": reloads.len(),
        "reloaded_count": reloaded,
        "failed_requests_count": failed,
        "ok_requests_count": report.ok_count,
        "p99_without_reloads_us": alone.p99_us,
        "p99_before_us": before.p99_us,
        "p99_during_us": during.p99_us,
        "p99_after_us": after.p99_us,
        "without_reloads": alone,
        "before": before,
        "during": during,
        "after": after,
        "reloads": per_reload,
        "load": report,
    });
    let params = json!({
        "rate_per_s": rate,
        "mcpgate_max_per_s": round1(max),
        "connections_count": 64,
        "eras": "mixed",
        "payload_bytes": 4096,
        "reloads_count": RELOADS,
        "reload_every_s": every.as_secs_f64(),
        "duration_s": total.as_secs_f64(),
        "timeline_bucket_ms": BUCKET.as_millis() as u64,
        "how": "`mcpgate reload --config FILE` (POST /reload on the admin listener: every worker re-reads, compiles and swaps, then answers)",
    });
    let stopped = if !alive {
        Some("mcpgate exited during the scenario".to_owned())
    } else if reloaded < reloads.len() {
        Some(format!(
            "{} of {} reloads failed",
            reloads.len() - reloaded,
            reloads.len()
        ))
    } else {
        None
    };
    Ok(envelope(
        ctx,
        "reload",
        started,
        params,
        results,
        stopped,
        &[
            "Latency from each request's intended send time (fixed rate, no coordinated omission); percentiles of successful requests only, at 2 significant digits, over 100 ms intervals.",
            "before: the 800 ms (quick: 400 ms) before a reload; during: from its start to 200 ms after `mcpgate reload` returned; after: the 800 ms (400 ms) after that, cut where the next reload's before window starts. p99_*_us at the top merge the windows of all ten reloads.",
            "failed_requests_count: answers that were not successes plus requests without an answer, over the whole run.",
            "without_reloads: the same load before the first reload (its first 5.2 s; quick: 1.6 s), the control for the windows around reloads.",
        ],
    ))
}

/// The policy of reload `k`: odd reloads flip `[admission] queue_timeout_ms`
/// (1000 ↔ 1001), even ones `[upstream] max_request_ms` (600000 ↔ 600001).
fn variant(base: &str, k: u32) -> (String, &'static str) {
    let admission = k.div_ceil(2) % 2 == 1;
    let upstream = (k / 2) % 2 == 1;
    let text = base
        .lines()
        .map(|line| match line.trim() {
            "queue_timeout_ms = 1000" if admission => "queue_timeout_ms = 1001".to_owned(),
            "max_request_ms = 600000" if upstream => "max_request_ms = 600001".to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let changed = if k % 2 == 1 {
        "[admission] queue_timeout_ms (pool kept)"
    } else {
        "[upstream] max_request_ms (pool rebuilt)"
    };
    (text + "\n", changed)
}

/// `mcpgate reload --config PATH`: its output, or why it failed.
fn reload(bin: &Path, config: &PathBuf) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("reload")
        .arg("--config")
        .arg(config)
        .output()
        .map_err(|e| format!("cannot run mcpgate reload: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "mcpgate reload exited {}: {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `d` rounded down to a timeline interval.
fn floor(d: Duration) -> Duration {
    BUCKET * (d.as_millis() / BUCKET.as_millis()) as u32
}

/// Percentiles over several windows at once.
fn merged_windows(hists: &[Histogram<u64>], spans: &[(Duration, Duration)]) -> Latency {
    let mut pick: Vec<Histogram<u64>> = Vec::new();
    for (i, h) in hists.iter().enumerate() {
        let start = BUCKET * i as u32;
        if spans.iter().any(|(a, b)| start >= *a && start < *b) {
            pick.push(h.clone());
        }
    }
    window_latency(&pick, BUCKET, Duration::ZERO, BUCKET * pick.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_alternate_admission_and_upstream_changes() {
        let base = "[upstream]\nmax_request_ms = 600000\n[admission]\nqueue_timeout_ms = 1000\n";
        let values: Vec<(bool, bool)> = (1..=4)
            .map(|k| {
                let (t, _) = variant(base, k);
                (t.contains("= 1001"), t.contains("= 600001"))
            })
            .collect();
        // Each reload changes exactly one key from the previous file.
        assert_eq!(
            values,
            vec![(true, false), (true, true), (false, true), (false, false)]
        );
    }
}
