//! `latency`: fixed request rates at 25 %, 50 % and 75 % of mcpgate's
//! measured maximum (4 KB, closed loop), direct and through mcpgate
//! interleaved. Latency counts from each request's intended send time (no
//! coordinated omission); reports mcpgate's added p50/p99/p99.9.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{envelope, round1, Ctx};
use crate::load::{self, stats::Latency, EraMix, LoadConfig};

fn added(m: &Latency, d: &Latency) -> Value {
    json!({
        "p50_us": m.p50_us as i64 - d.p50_us as i64,
        "p90_us": m.p90_us as i64 - d.p90_us as i64,
        "p99_us": m.p99_us as i64 - d.p99_us as i64,
        "p999_us": m.p999_us as i64 - d.p999_us as i64,
    })
}

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let (mock, mock_addr, mut gate, gate_addr) = rig.mock_behind_mcpgate()?;
    let max = ctx.mcpgate_max(gate_addr).await;
    let fractions = [0.25, 0.5, 0.75];
    let warmup = Duration::from_millis(ctx.pick(500, 1000));
    let duration = Duration::from_secs(ctx.pick(2, 10));
    let mut levels = Vec::new();
    for f in fractions {
        let rate = (max * f).max(1.0).round();
        let mut pair = Vec::new();
        for (target, addr) in [("direct", mock_addr), ("mcpgate", gate_addr)] {
            let mut cfg = LoadConfig::new(&format!("{target} {}%", (f * 100.0) as u32), addr);
            cfg.eras = EraMix::Mixed;
            cfg.connections = 64;
            cfg.rate_per_s = Some(rate);
            cfg.warmup = warmup;
            cfg.duration = duration;
            pair.push(load::run(cfg).await);
        }
        let (d, m) = (&pair[0], &pair[1]);
        let service = match (&m.service_latency, &d.service_latency) {
            (Some(ms), Some(ds)) => added(ms, ds),
            _ => Value::Null,
        };
        levels.push(json!({
            "load_pct": f * 100.0,
            "rate_per_s": rate,
            "added": added(&m.latency, &d.latency),
            "added_service": service,
            "direct": d,
            "mcpgate": m,
        }));
    }
    let alive = gate.alive();
    drop(gate);
    drop(mock);
    let params = json!({
        "mcpgate_max_per_s": round1(max),
        "max_source": if ctx.quick { "closed-loop run in this invocation" } else { "throughput-4k median at 4 KB in this invocation (or a 3 s closed-loop run)" },
        "payload_bytes": 4096,
        "connections_count": 64,
        "warmup_s": warmup.as_secs_f64(),
        "duration_s": duration.as_secs_f64(),
        "eras": "mixed",
    });
    Ok(envelope(
        ctx,
        "latency",
        started,
        params,
        json!({ "levels": levels }),
        (!alive).then(|| "mcpgate exited during the scenario".to_owned()),
        &[
            "latency: from the intended send time (start + i/rate); service latency: from the actual send.",
            "sends are timed by a timerfd per connection (pacing: timerfd), not tokio's 1 ms timer, which released every request due within a millisecond at once (bursts of rate/1000 requests); send_lateness is how late the generator sent, and latency counts from the intended time whenever the send was late.",
            "added_*: mcpgate percentile minus direct percentile at the same rate (negative values are noise).",
        ],
    ))
}
