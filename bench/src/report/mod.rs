//! `mcpbench evidence`: gathers what `make evidence` measured into
//! `evidence/bundle.json` (validated against `evidence/schema.json` by
//! `scripts/validate-evidence.py`), draws the SVG plots and writes
//! `evidence/REPORT.md`. It computes nothing new: every figure comes from a
//! file a command wrote, and the report names the command.

mod markdown;
mod plots;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

use crate::scenario;

/// Bumped when the bundle's shape changes.
pub const SCHEMA_VERSION: &str = "1";

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Criterion estimates from `target/criterion/chain/<era>/<size>/new/`.
fn criterion(target: &Path) -> Option<Value> {
    let base = target.join("criterion/chain");
    let mut rows = Vec::new();
    for era in ["legacy", "modern"] {
        for size in [1024u64, 4096, 65536] {
            let dir = base.join(era).join(size.to_string()).join("new");
            let est = read_json(&dir.join("estimates.json"))?;
            let bench = read_json(&dir.join("benchmark.json"));
            let bytes = bench
                .as_ref()
                .and_then(|b| b["throughput"]["Bytes"].as_u64())
                .unwrap_or(size);
            let ns = est["mean"]["point_estimate"].as_f64()?;
            rows.push(json!({
                "era": era,
                "payload_bytes": size,
                "body_bytes": bytes,
                "mean_ns": (ns * 10.0).round() / 10.0,
                "median_ns": est["median"]["point_estimate"].as_f64().map(|x| (x * 10.0).round() / 10.0),
                "ci95_low_ns": est["mean"]["confidence_interval"]["lower_bound"].as_f64().map(|x| x.round()),
                "ci95_high_ns": est["mean"]["confidence_interval"]["upper_bound"].as_f64().map(|x| x.round()),
                "bytes_per_s": (bytes as f64 * 1e9 / ns).round(),
                "messages_per_s": (1e9 / ns).round(),
            }));
        }
    }
    // The content guards' cost (`--bench content`), when it was run.
    let mut content = Vec::new();
    for case in ["clean-off", "clean-on", "prose-on", "one-secret-on"] {
        let dir = target.join("criterion/content").join(case).join("4096/new");
        let Some(ns) = read_json(&dir.join("estimates.json"))
            .and_then(|e| e["mean"]["point_estimate"].as_f64())
        else {
            continue;
        };
        content.push(json!({
            "case": case,
            "payload_bytes": 4096,
            "mean_ns": (ns * 10.0).round() / 10.0,
            "mean_per_kib_ns": (ns / 4.0).round(),
        }));
    }
    Some(json!({
        "command": "cargo bench -p filters --bench chain",
        "what": "head + message phase of Chain::standard() on one accepted tools/call, default policy (config.example.toml)",
        "results": rows,
        "content_command": "cargo bench -p filters --bench content",
        "content_what": "response phase on one tools/call answer of 4 KB of text: every [content.secrets] and [content.pii] rule on (clean: no keyword; prose: keywords, no secret; one-secret: a GitHub token redacted), or off (the answer is not read)",
        "content_results": content,
    }))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for k in path {
        cur = match k.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*k],
        };
    }
    cur
}

/// The 4 KB entry of the throughput scenario.
fn payload(tp: &Value, bytes: u64) -> Option<&Value> {
    tp["results"]["payloads"]
        .as_array()?
        .iter()
        .find(|p| p["payload_bytes"].as_u64() == Some(bytes))
}

fn headline(sc: &Map<String, Value>, fuzz: &Value, supply: &Value) -> Value {
    let null = Value::Null;
    let tp = sc.get("throughput-4k").unwrap_or(&null);
    let p4 = payload(tp, 4096).unwrap_or(&null);
    let lat = sc.get("latency").unwrap_or(&null);
    let half = lat["results"]["levels"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["load_pct"].as_f64() == Some(50.0)))
        .unwrap_or(&null);
    let conn = sc.get("connections-100k").unwrap_or(&null);
    let steps = conn["results"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let best = steps
        .iter()
        .max_by_key(|s| s["open_connections_count"].as_u64().unwrap_or(0))
        .cloned()
        .unwrap_or(Value::Null);
    let ov = sc.get("overload").unwrap_or(&null);
    let iso = sc.get("isolation").unwrap_or(&null);
    let br = sc.get("breaker").unwrap_or(&null);
    let rl = sc.get("reload").unwrap_or(&null);
    let up = sc.get("upgrade").unwrap_or(&null);
    let fuzz_execs: Map<String, Value> = fuzz["targets"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    Some((
                        t["target"].as_str()?.to_owned(),
                        t["executions_count"].clone(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "throughput_4k": {
            "mcpgate_per_s": p4["medians"]["mcpgate"]["throughput_per_s"],
            "nginx_per_s": p4["medians"]["nginx"]["throughput_per_s"],
            "bare_pingora_per_s": p4["medians"]["bare-pingora"]["throughput_per_s"],
            "direct_per_s": p4["medians"]["direct"]["throughput_per_s"],
            "mcpgate_over_nginx_ratio": p4["ratios"]["mcpgate_over_nginx_ratio"],
            "mcpgate_over_bare_pingora_ratio": p4["ratios"]["mcpgate_over_bare_pingora_ratio"],
            "mcpgate_over_direct_ratio": p4["ratios"]["mcpgate_over_direct_ratio"],
            "mcpgate_cpu_per_request_us": p4["medians"]["mcpgate"]["proxy_cpu_per_request_us"],
            "nginx_cpu_per_request_us": p4["medians"]["nginx"]["proxy_cpu_per_request_us"],
            "bare_pingora_cpu_per_request_us": p4["medians"]["bare-pingora"]["proxy_cpu_per_request_us"],
        },
        "latency_at_half_load": {
            "rate_per_s": half["rate_per_s"],
            "added_p50_us": half["added"]["p50_us"],
            "added_p99_us": half["added"]["p99_us"],
            "added_p999_us": half["added"]["p999_us"],
            "mcpgate_p99_us": half["mcpgate"]["latency"]["p99_us"],
            "direct_p99_us": half["direct"]["latency"]["p99_us"],
        },
        "connections": {
            "largest_open_connections_count": conn["results"]["largest_open_connections_count"],
            "rss_at_largest_bytes": best["mcpgate_rss_bytes"],
            "rss_per_connection_at_largest_bytes": best["mcpgate_rss_per_connection_bytes"],
            "held_request_p99_us": best["held_request_latency"]["p99_us"],
            "stopped_by": conn["stopped_by"],
        },
        "overload": {
            "offered_rate_per_s": ov["parameters"]["offered_rate_per_s"],
            "rss_growth_bytes": ov["results"]["rss_growth_bytes"],
            "rss_peak_bytes": ov["results"]["rss_peak_bytes"],
            "lost_without_answer_count": ov["results"]["lost_without_answer_count"],
            "rejected_count": ov["results"]["load"]["rejected_count"],
            "accepted_p99_us": ov["results"]["load"]["service_latency"]["p99_us"],
        },
        "isolation": {
            "calm_p99_alone_us": iso["results"]["calm_p99_alone_us"],
            "calm_p99_during_flood_us": iso["results"]["calm_p99_during_flood_us"],
            "calm_p99_change_ratio": iso["results"]["calm_p99_change_ratio"],
            "calm_errors_during_flood_count": iso["results"]["calm_errors_during_flood_count"],
        },
        "breaker": {
            "first_failure_after_kill_ms": br["results"]["first_failure_after_kill_ms"],
            "fast_failing_after_kill_ms": br["results"]["fast_failing_after_kill_ms"],
            "failure_p99_us": br["results"]["failure_latency"]["p99_us"],
            "recovered_after_restart_ms": br["results"]["recovered_after_restart_ms"],
        },
        "reload": {
            "reloads_count": rl["results"]["reloads_count"],
            "reloaded_count": rl["results"]["reloaded_count"],
            "failed_requests_count": rl["results"]["failed_requests_count"],
            "p99_without_reloads_us": rl["results"]["p99_without_reloads_us"],
            "p99_before_us": rl["results"]["p99_before_us"],
            "p99_during_us": rl["results"]["p99_during_us"],
            "p99_after_us": rl["results"]["p99_after_us"],
        },
        "upgrade": {
            "failed_requests_count": up["results"]["failed_requests_count"],
            "held_streams_count": up["results"]["held_streams_count"],
            "held_streams_cut_count": up["results"]["held_streams_cut_count"],
            "old_drained_ms": up["results"]["old_drained_ms"],
            "p99_during_us": up["results"]["p99_during_us"],
        },
        "fuzz_executions_counts": fuzz_execs,
        "fuzz_crashes_count": fuzz["total_crashes_count"],
        "audit_vulnerabilities_count": supply["audit"]["vulnerabilities_count"],
        "audit_warnings_count": supply["audit"]["warnings"].as_array().map(Vec::len),
        "license_check": supply["deny"]["result_line"],
    })
}

fn goal(name: &str, target: &str, value: &Value, met: Option<bool>) -> Value {
    json!({"goal": name, "target": target, "measured": value.to_string(), "met": met})
}

/// The headline goals, then the performance goals (issue 16) read from the
/// scenarios themselves.
fn goals(h: &Value, sc: &Map<String, Value>) -> Value {
    let mut all = headline_goals(h);
    if let Value::Array(rows) = &mut all {
        rows.extend(performance_goals(sc));
    }
    all
}

/// Throughput ratios at 1 and 64 KB, CPU and system calls per request
/// against nginx, the quiet tenant's p99 during a flood, and the TLS and
/// governed figures against the plain ones.
fn performance_goals(sc: &Map<String, Value>) -> Vec<Value> {
    let null = Value::Null;
    let tp = sc.get("throughput-4k").unwrap_or(&null);
    let ratio = |bytes: u64, name: &str| {
        payload(tp, bytes).map_or(Value::Null, |p| p["ratios"][name].clone())
    };
    let (r1, r4, r64) = (
        ratio(1024, "mcpgate_over_nginx_ratio"),
        ratio(4096, "mcpgate_over_nginx_ratio"),
        ratio(65536, "mcpgate_over_nginx_ratio"),
    );
    let tls = ratio(4096, "mcpgate_tls_over_nginx_tls_ratio");
    let governed = ratio(4096, "mcpgate_governed_over_mcpgate_ratio");
    let prof = &sc.get("profile").unwrap_or(&null)["results"];
    let cpu = |target: &str| {
        prof["targets"]
            .as_array()?
            .iter()
            .find(|t| t["target"] == target)?["cpu_per_request_us"]
            .as_f64()
    };
    let cpu_ratio = cpu("mcpgate")
        .zip(cpu("nginx"))
        .filter(|(_, n)| *n > 0.0)
        .map(|(m, n)| (m / n * 100.0).round() / 100.0);
    let syscalls = &prof["syscalls_per_request_mcpgate_minus_nginx_count"];
    let quiet = &sc.get("isolation").unwrap_or(&null)["results"]["calm_p99_change_ratio"];
    let tls_share = tls.as_f64().zip(r4.as_f64()).map(|(t, p)| t / p);
    vec![
        goal(
            "throughput at 1 KB vs nginx",
            ">= 0.8x",
            &r1,
            r1.as_f64().map(|r| r >= 0.8),
        ),
        goal(
            "throughput at 64 KB vs nginx",
            ">= 1.0x",
            &r64,
            r64.as_f64().map(|r| r >= 1.0),
        ),
        goal(
            "proxy CPU per 4 KB request vs nginx (profile)",
            "<= 1.3x",
            &json!(cpu_ratio),
            cpu_ratio.map(|r| r <= 1.3),
        ),
        goal(
            "system calls per request, mcpgate minus nginx",
            "<= 1",
            syscalls,
            syscalls.as_f64().map(|d| d <= 1.0),
        ),
        goal(
            "quiet tenant p99 during an unconfigured flood vs alone",
            "<= 3x",
            quiet,
            quiet.as_f64().map(|r| r <= 3.0),
        ),
        goal(
            "mcpgate-tls/nginx-tls within 10 % of mcpgate/nginx",
            ">= 0.9 of the plain ratio",
            &json!(tls_share.map(|s| (s * 1000.0).round() / 1000.0)),
            tls_share.map(|s| s >= 0.9),
        ),
        goal(
            "governed vs plain mcpgate",
            ">= 0.9x",
            &governed,
            governed.as_f64().map(|r| r >= 0.9),
        ),
    ]
}

fn headline_goals(h: &Value) -> Value {
    let f = |p: &[&str]| at(h, p).as_f64();
    json!([
        goal(
            "throughput with the full chain vs nginx",
            ">= 0.9x",
            at(h, &["throughput_4k", "mcpgate_over_nginx_ratio"]),
            f(&["throughput_4k", "mcpgate_over_nginx_ratio"]).map(|r| r >= 0.9)
        ),
        goal(
            "added p99 at half load",
            "<= 500 us",
            at(h, &["latency_at_half_load", "added_p99_us"]),
            f(&["latency_at_half_load", "added_p99_us"]).map(|v| v <= 500.0)
        ),
        goal(
            "100K connections within 2 GB RSS",
            "100000 connections, <= 2e9 bytes",
            at(h, &["connections", "largest_open_connections_count"]),
            f(&["connections", "largest_open_connections_count"]).map(|n| {
                n >= 100_000.0
                    && f(&["connections", "rss_at_largest_bytes"]).is_some_and(|r| r <= 2e9)
            })
        ),
        goal(
            "flat memory under overload",
            "growth <= 10% of peak",
            at(h, &["overload", "rss_growth_bytes"]),
            f(&["overload", "rss_growth_bytes"])
                .zip(f(&["overload", "rss_peak_bytes"]))
                .map(|(g, p)| g <= p * 0.1)
        ),
        goal(
            "no request lost without an answer under overload",
            "0",
            at(h, &["overload", "lost_without_answer_count"]),
            f(&["overload", "lost_without_answer_count"]).map(|n| n == 0.0)
        ),
        goal(
            "no failed request across 10 reloads under load",
            "0 failed, 10 reloaded",
            at(h, &["reload", "failed_requests_count"]),
            f(&["reload", "failed_requests_count"])
                .zip(f(&["reload", "reloaded_count"]))
                .map(|(failed, done)| failed == 0.0 && done >= 10.0)
        ),
        goal(
            "no failed request and no cut held stream across an upgrade",
            "0 failed, 0 cut",
            at(h, &["upgrade", "failed_requests_count"]),
            f(&["upgrade", "failed_requests_count"])
                .zip(f(&["upgrade", "held_streams_cut_count"]))
                .map(|(failed, cut)| failed == 0.0 && cut == 0.0)
        ),
        goal(
            "no known vulnerability",
            "0",
            at(h, &["audit_vulnerabilities_count"]),
            f(&["audit_vulnerabilities_count"]).map(|n| n == 0.0)
        ),
    ])
}

/// Builds `bundle.json`, the plots and `REPORT.md` in `dir`.
pub fn build(dir: &Path, made_by: &str) -> Result<(), String> {
    let bench_dir = dir.join("bench");
    fs::create_dir_all(&bench_dir).map_err(|e| e.to_string())?;
    // Criterion results move from target/ into the evidence when present.
    if let Some(c) = criterion(Path::new("target")) {
        let text = serde_json::to_string_pretty(&c).unwrap_or_default() + "\n";
        fs::write(bench_dir.join("criterion.json"), text).map_err(|e| e.to_string())?;
    }
    let mut scenarios = Map::new();
    for name in scenario::ALL {
        if let Some(v) = read_json(&bench_dir.join(format!("{name}.json"))) {
            scenarios.insert(name.to_owned(), v);
        }
    }
    let criterion = read_json(&bench_dir.join("criterion.json")).unwrap_or(Value::Null);
    let fuzz = read_json(&dir.join("fuzz.json")).unwrap_or(Value::Null);
    let supply = read_json(&dir.join("supply-chain/summary.json")).unwrap_or(Value::Null);
    let connection_memory = read_json(&dir.join("connection-memory.json")).unwrap_or(Value::Null);
    let head = headline(&scenarios, &fuzz, &supply);
    let plots = plot_all(dir, &scenarios)?;
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let missing: Vec<&str> = scenario::ALL
        .iter()
        .copied()
        .filter(|n| !scenarios.contains_key(*n))
        .collect();
    let bundle = json!({
        "schema_version": SCHEMA_VERSION,
        "generated_by": made_by,
        "date_utc": utc_now(),
        "git": {"commit": commit, "dirty": dirty},
        "machine": scenario::machine(),
        "toolchain": {
            "rustc": Command::new("rustc").arg("-V").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()),
            "nginx": scenario::rig::nginx_version(),
        },
        "headline": head,
        "goals": goals(&head, &scenarios),
        "missing_scenarios": missing,
        "scenarios": scenarios,
        "criterion": criterion,
        "fuzz": fuzz,
        "supply_chain": supply,
        "connection_memory": connection_memory,
        "plots": plots,
    });
    let text = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())? + "\n";
    fs::write(dir.join("bundle.json"), text).map_err(|e| e.to_string())?;
    let md = markdown::report(&bundle);
    fs::write(dir.join("REPORT.md"), md).map_err(|e| e.to_string())?;
    eprintln!(
        "evidence: {} scenarios, {} plots -> {}",
        bundle["scenarios"].as_object().map_or(0, Map::len),
        bundle["plots"].as_array().map_or(0, Vec::len),
        dir.join("bundle.json").display()
    );
    Ok(())
}

fn plot_all(dir: &Path, sc: &Map<String, Value>) -> Result<Value, String> {
    let mut made = Vec::new();
    if let Some(tp) = sc.get("throughput-4k") {
        let payloads = tp["results"]["payloads"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let groups: Vec<String> = payloads
            .iter()
            .map(|p| {
                let b = p["payload_bytes"].as_u64().unwrap_or(0);
                format!("{} KB", b / 1024)
            })
            .collect();
        let series: Vec<(String, Vec<Option<f64>>)> =
            ["direct", "mcpgate", "nginx", "bare-pingora"]
                .iter()
                .map(|t| {
                    (
                        (*t).to_owned(),
                        payloads
                            .iter()
                            .map(|p| p["medians"][*t]["throughput_per_s"].as_f64())
                            .collect(),
                    )
                })
                .collect();
        plots::grouped_bars(
            &dir.join("throughput.svg"),
            "tools/call throughput by payload (median of rounds)",
            "successful requests / s",
            &groups,
            &series,
        )?;
        made.push(json!({"file": "throughput.svg", "from": "bench/throughput-4k.json", "command": tp["command"]}));
        let cpu: Vec<(String, Vec<Option<f64>>)> = ["mcpgate", "nginx", "bare-pingora"]
            .iter()
            .map(|t| {
                (
                    (*t).to_owned(),
                    payloads
                        .iter()
                        .map(|p| p["medians"][*t]["proxy_cpu_per_request_us"].as_f64())
                        .collect(),
                )
            })
            .collect();
        plots::grouped_bars(
            &dir.join("cpu_per_request.svg"),
            "proxy CPU per request (median of rounds)",
            "CPU microseconds / request",
            &groups,
            &cpu,
        )?;
        made.push(json!({"file": "cpu_per_request.svg", "from": "bench/throughput-4k.json", "command": tp["command"]}));
    }
    if let Some(lat) = sc.get("latency") {
        let mut lines = Vec::new();
        let keys = ["p50_us", "p90_us", "p99_us", "p999_us"];
        for (i, level) in lat["results"]["levels"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let pct = level["load_pct"].as_f64().unwrap_or(0.0);
            for target in ["direct", "mcpgate"] {
                let points = keys
                    .iter()
                    .enumerate()
                    .filter_map(|(k, key)| {
                        Some((k as f64, level[target]["latency"][*key].as_f64()?.max(1.0)))
                    })
                    .collect();
                lines.push(plots::Line {
                    name: format!("{target} at {pct:.0}% of max"),
                    points,
                    thin: target == "direct",
                    color: i,
                });
            }
        }
        plots::lines(
            &dir.join("latency.svg"),
            "latency percentiles at fixed rates (from intended send time)",
            "percentile",
            "latency (us, log scale)",
            &lines,
            true,
            Some(&["p50", "p90", "p99", "p99.9"]),
            &[],
        )?;
        made.push(
            json!({"file": "latency.svg", "from": "bench/latency.json", "command": lat["command"]}),
        );
    }
    if let Some(c) = sc.get("connections-100k") {
        let points: Vec<(f64, f64)> = std::iter::once((
            0.0,
            c["results"]["baseline_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        ))
        .chain(
            c["results"]["steps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|s| {
                    Some((
                        s["open_connections_count"].as_f64()?,
                        s["mcpgate_rss_bytes"].as_f64()? / 1048576.0,
                    ))
                }),
        )
        .collect();
        plots::lines(
            &dir.join("connections_rss.svg"),
            "mcpgate RSS against open streams held",
            "open streams (connections)",
            "RSS (MiB)",
            &[plots::Line {
                name: "mcpgate".into(),
                points,
                thin: false,
                color: 1,
            }],
            false,
            None,
            &[],
        )?;
        made.push(json!({"file": "connections_rss.svg", "from": "bench/connections-100k.json", "command": c["command"]}));
    }
    if let Some(ov) = sc.get("overload") {
        let points: Vec<(f64, f64)> = ov["results"]["rss_samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| Some((s["t_s"].as_f64()?, s["rss_bytes"].as_f64()? / 1048576.0)))
            .collect();
        plots::lines(
            &dir.join("overload_rss.svg"),
            "mcpgate RSS under 3x overload",
            "time (s)",
            "RSS (MiB)",
            &[plots::Line {
                name: "mcpgate RSS".into(),
                points,
                thin: false,
                color: 3,
            }],
            false,
            None,
            &[],
        )?;
        made.push(json!({"file": "overload_rss.svg", "from": "bench/overload.json", "command": ov["command"]}));
    }
    if let Some(br) = sc.get("breaker") {
        let tl = br["results"]["load"]["timeline"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ok: Vec<(f64, f64)> = tl
            .iter()
            .filter_map(|p| Some((p["start_ms"].as_f64()? / 1000.0, p["ok_count"].as_f64()?)))
            .collect();
        let bad: Vec<(f64, f64)> = tl
            .iter()
            .filter_map(|p| {
                Some((
                    p["start_ms"].as_f64()? / 1000.0,
                    p["rejected_count"].as_f64()? + p["lost_count"].as_f64()?,
                ))
            })
            .collect();
        let mut marks = Vec::new();
        if let Some(k) = br["results"]["killed_at_ms"].as_f64() {
            marks.push((k / 1000.0, "upstream killed"));
        }
        if let Some(r) = br["results"]["restarted_at_ms"].as_f64() {
            marks.push((r / 1000.0, "restarted"));
        }
        plots::lines(
            &dir.join("breaker.svg"),
            "upstream killed and restarted: answers per 100 ms",
            "time (s)",
            "requests per 100 ms",
            &[
                plots::Line {
                    name: "ok".into(),
                    points: ok,
                    thin: false,
                    color: 2,
                },
                plots::Line {
                    name: "failed".into(),
                    points: bad,
                    thin: false,
                    color: 3,
                },
            ],
            false,
            None,
            &marks,
        )?;
        made.push(
            json!({"file": "breaker.svg", "from": "bench/breaker.json", "command": br["command"]}),
        );
    }
    Ok(Value::Array(made))
}
