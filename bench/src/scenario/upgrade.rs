//! `upgrade`: a new mcpgate takes over from a running one under load.
//! Requests run at half of mcpgate's measured maximum (mixed eras: legacy
//! sessions and stateless calls, keep-alive connections) while held
//! streams (legacy `GET` and `subscriptions/listen`) are open on the old
//! instance. Then a second instance starts on the same addresses with
//! `--takeover` (same policy, so the same session keys), and once its
//! workers listen the old one gets SIGTERM and drains.
//!
//! Reports failed requests (answers that were not successes and requests
//! without an answer), how each held stream ended (with the last chunk, or
//! cut), the old instance's exit and drain time, and p99 before, during
//! (from the takeover's start to the old instance's exit) and after.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::procs::Proc;
use super::rig::Override;
use super::{envelope, round1, timeline_load, Ctx};
use crate::load::hold::{open_one, HoldConfig};
use crate::load::stats::window_latency;
use crate::load::{EraMix, LoadConfig};

const BUCKET: Duration = Duration::from_millis(100);
/// The session key both instances share (base64 of 32 bytes).
const SESSION_KEY: &str = "bWNwYmVuY2ggdXBncmFkZSBzY2VuYXJpbyBrZXkhISE=";

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (mock, mock_addr) = rig.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
    let overrides = [
        Override::new("sessions", "keys", format!("[\"{SESSION_KEY}\"]")),
        Override::new("shutdown", "grace_secs", 20),
    ];
    let (old, gate_addr) = rig
        .mcpgate_with(
            "mcpgate-old",
            &[mock_addr],
            rig.proxy_threads,
            &[],
            &overrides,
        )
        .map_err(|e| e.to_string())?;
    let mut old = Some(old);
    let config = rig.work.join(format!("mcpgate-{}.toml", gate_addr.port()));
    let max = ctx.mcpgate_max(gate_addr).await;
    let rate = (max * 0.5).max(1.0).round();
    let takeover_at = Duration::from_secs(ctx.pick(2, 4));
    let total = takeover_at + Duration::from_secs(ctx.pick(6, 12));
    let streams_count: u64 = ctx.pick(8, 32);

    // Held streams on the old instance, before the load starts.
    let hold = HoldConfig {
        addr: gate_addr,
        target: LoadConfig::new("hold", gate_addr).target,
        eras: EraMix::Mixed,
        source_ips: Vec::new(),
        parallel: 8,
        timeout: Duration::from_secs(10),
    };
    let mut held = Vec::new();
    let mut open_failures = Vec::new();
    for n in 0..streams_count {
        match open_one(&hold, n).await {
            Ok(mut conn) => held.push(tokio::spawn(async move {
                let began = Instant::now();
                let clean = conn.read_to_end_clean().await;
                (clean.map_err(|e| e.kind().to_string()), began.elapsed())
            })),
            Err(e) => open_failures.push(e),
        }
    }

    let (t0, task) = timeline_load("upgrade", gate_addr, rate, total, BUCKET);

    tokio::time::sleep_until((t0 + takeover_at).into()).await;
    let takeover_began = t0.elapsed();
    let workers = if rig.mcpgate_has_workers() {
        rig.proxy_threads
    } else {
        1
    };
    let (bin, work, path) = (rig.bin("mcpgate"), rig.work.clone(), config.clone());
    let new = tokio::task::spawn_blocking(move || start_beside(&bin, &path, &work, workers))
        .await
        .map_err(|e| e.to_string())?;
    let mut new = match new {
        Ok(p) => p,
        Err(e) => {
            let _ = task.await;
            return Err(format!("the new instance did not start: {e}"));
        }
    };
    let listening_after = t0.elapsed() - takeover_began;
    let old_pid = old.as_ref().map_or(0, Proc::pid);
    let _ = Command::new("kill")
        .args(["-TERM", &old_pid.to_string()])
        .status();
    let term_sent = t0.elapsed();
    // The drain: until the old supervisor exits (grace 20 s at most).
    let mut old_exit = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(p) = old.as_mut() {
            if let Some(status) = p.exit_status() {
                old_exit = Some(status);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old_exited = t0.elapsed();
    let report = task.await.map_err(|e| format!("load task: {e}"))?;
    let mut ends = Vec::new();
    for h in held {
        ends.push(
            tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .map_err(|_| "still open".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string())),
        );
    }
    let new_alive = new.alive();
    drop(new);
    drop(old.take());
    drop(mock);

    let clean = ends
        .iter()
        .filter(|e| matches!(e, Ok((Ok(true), _))))
        .count();
    let cut: Vec<String> = ends
        .iter()
        .filter_map(|e| match e {
            Ok((Ok(true), _)) => None,
            Ok((Ok(false), _)) => Some("closed without the last chunk".to_owned()),
            Ok((Err(kind), _)) => Some(format!("read error: {kind}")),
            Err(why) => Some(why.clone()),
        })
        .collect();
    let hists = report.timeline_histograms.clone().unwrap_or_default();
    let at = |d: Duration| BUCKET * (d.as_millis() / BUCKET.as_millis()) as u32;
    let before = window_latency(&hists, BUCKET, Duration::ZERO, at(takeover_began));
    let during = window_latency(&hists, BUCKET, at(takeover_began), old_exited);
    let after = window_latency(&hists, BUCKET, old_exited, total);
    let failed = report.rejected_count + report.lost_count;
    let ms = |d: Duration| d.as_millis() as u64;
    let results = json!({
        "failed_requests_count": failed,
        "ok_requests_count": report.ok_count,
        "held_streams_count": ends.len(),
        "held_streams_open_failed": open_failures,
        "held_streams_clean_end_count": clean,
        "held_streams_cut_count": cut.len(),
        "held_streams_cut": cut,
        "takeover_started_at_ms": ms(takeover_began),
        "new_listening_after_ms": ms(listening_after),
        "term_sent_at_ms": ms(term_sent),
        "old_drained_ms": ms(old_exited.saturating_sub(term_sent)),
        "old_exit_status": old_exit,
        "new_alive_at_end": new_alive,
        "p99_before_us": before.p99_us,
        "p99_during_us": during.p99_us,
        "p99_after_us": after.p99_us,
        "before": before,
        "during": during,
        "after": after,
        "load": report,
    });
    let params = json!({
        "rate_per_s": rate,
        "mcpgate_max_per_s": round1(max),
        "connections_count": 64,
        "eras": "mixed (legacy sessions continue through their sealed ids)",
        "payload_bytes": 4096,
        "held_streams_count": streams_count,
        "takeover_after_s": takeover_at.as_secs_f64(),
        "duration_s": total.as_secs_f64(),
        "grace_s": 20,
        "how": "`mcpgate run --takeover` with the same policy beside the running instance; once its workers log `mcpgate listening`, SIGTERM to the old supervisor",
    });
    let stopped = (!new_alive).then(|| "the new instance exited during the scenario".to_owned());
    Ok(envelope(
        ctx,
        "upgrade",
        started,
        params,
        results,
        stopped,
        &[
            "Latency from each request's intended send time (fixed rate); percentiles of successful requests at 2 significant digits over 100 ms intervals.",
            "A held stream ends cleanly when its last chunk (0\\r\\n\\r\\n) arrives before the connection closes; a legacy client then resumes through its sealed session id.",
        ],
    ))
}

/// `mcpgate run --takeover` on `config`, returned once each of its
/// `workers` logged `mcpgate listening` (the address answers already: the
/// old instance listens there too).
fn start_beside(bin: &Path, config: &Path, work: &Path, workers: usize) -> Result<Proc, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .args(["--workers", &workers.to_string()])
        .arg("--takeover");
    let mut p = Proc::spawn("mcpgate-new", cmd, work).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        if log.matches("mcpgate listening").count() >= workers {
            return Ok(p);
        }
        if !p.alive() {
            return Err(format!("exited: {}", p.log_tail(5).join(" | ")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("no `mcpgate listening` within 20 s".into())
}
