//! `isolation`: tenant `calm` sends a modest fixed rate alone, then again
//! while tenant `flood` floods mcpgate (closed loop, many connections, a
//! separate `loadgen` process so the flood does not slow the calm tenant's
//! load generator). Compares calm's p99 and errors.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::rig::ExtraTenant;
use super::{envelope, Ctx};
use crate::load::{self, mcp::Target, EraMix, LoadConfig};

const CALM_KEY: &str = "bench-calm-key";
const FLOOD_KEY: &str = "bench-flood-key";

fn calm(addr: std::net::SocketAddr, rate: f64, duration: Duration, label: &str) -> LoadConfig {
    let mut cfg = LoadConfig::new(label, addr);
    cfg.target = Target {
        authority: addr.to_string(),
        path: "/mcp".into(),
        api_key: Some(CALM_KEY.into()),
    };
    cfg.eras = EraMix::Mixed;
    cfg.connections = 8;
    cfg.rate_per_s = Some(rate);
    cfg.warmup = Duration::from_millis(500);
    cfg.duration = duration;
    cfg
}

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let rig = ctx.rig.clone();
    let tenants = [
        ExtraTenant {
            name: "calm".into(),
            api_key: CALM_KEY.into(),
        },
        ExtraTenant {
            name: "flood".into(),
            api_key: FLOOD_KEY.into(),
        },
    ];
    let (mock, mock_addr) = rig.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
    let (mut gate, gate_addr) = rig
        .mcpgate("mcpgate", mock_addr, &tenants)
        .map_err(|e| e.to_string())?;
    let duration = Duration::from_secs(ctx.pick(3, 15));
    let rate = 200.0;
    let flood_connections = 256;

    let alone = load::run(calm(gate_addr, rate, duration, "calm alone")).await;

    // The flood runs a little longer than the calm tenant's window.
    let flood_secs = duration.as_secs_f64() + 2.0;
    let flood_json = ctx.rig.work.join("isolation-flood.json");
    let mut flood = tokio::process::Command::new(ctx.rig.bin_dir.join("loadgen"))
        .arg("run")
        .args(["--url", &format!("http://{gate_addr}/mcp")])
        .args(["--api-key", FLOOD_KEY])
        .args(["--connections", &flood_connections.to_string()])
        .args(["--warmup-s", "0.5", "--duration-s", &flood_secs.to_string()])
        .args(["--quiet", "--json"])
        .arg(&flood_json)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("loadgen: {e}"))?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let during = load::run(calm(gate_addr, rate, duration, "calm + flood")).await;
    let _ = flood.wait().await;
    let flood_report: Value = std::fs::read_to_string(&flood_json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let alive = gate.alive();
    drop(gate);
    drop(mock);
    let p99_ratio = super::ratio(during.latency.p99_us as f64, alone.latency.p99_us as f64);
    let errors = |r: &load::LoadReport| r.rejected_count + r.lost_count;
    let results = json!({
        "calm_alone": alone,
        "calm_during_flood": during,
        "flood": flood_report,
        "calm_p99_alone_us": alone.latency.p99_us,
        "calm_p99_during_flood_us": during.latency.p99_us,
        "calm_p99_change_ratio": p99_ratio,
        "calm_errors_alone_count": errors(&alone),
        "calm_errors_during_flood_count": errors(&during),
    });
    let params = json!({
        "calm_rate_per_s": rate,
        "calm_connections_count": 8,
        "flood_connections_count": flood_connections,
        "flood_mode": "closed loop, separate loadgen process",
        "duration_s": duration.as_secs_f64(),
        "payload_bytes": 4096,
        "tenants": "calm and flood: API keys added to the default policy",
    });
    Ok(envelope(
        ctx,
        "isolation",
        started,
        params,
        results,
        (!alive).then(|| "mcpgate exited during the scenario".to_owned()),
        &["calm latency counts from the intended send time (fixed rate)."],
    ))
}
