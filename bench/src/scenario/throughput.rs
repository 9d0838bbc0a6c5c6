//! `throughput-4k`: closed-loop `tools/call echo` load (64 sessions: half
//! 2025-11-25 sessions after `initialize`, half 2026-07-28 stateless) with 1 KB,
//! 4 KB and 64 KB arguments and results: direct to the mock, through mcpgate
//! (default policy), nginx (plain reverse proxy) and bare pingora, each proxy
//! with the same number of workers, interleaved in rounds. Reports medians,
//! proxy CPU per request and the ratios.
//!
//! At 4 KB the same load also runs over TLS (every connection a full
//! handshake, then keep-alive): mcpgate and nginx serving one certificate of
//! the run's CA, and mcpgate with `[auth.jwt]` where every request carries an
//! ES256 access token (verified once, then a cache hit). Then TLS handshakes
//! per second: tasks that connect, handshake, close, again, for mcpgate and
//! nginx. And mcpgate with tool governance on (`[access]`), the cost of
//! judging every call against the plain chain.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::identity::{make_jwt, make_tls};
use super::{envelope, median, ratio, round1, run_measured, Ctx};
use crate::load::client::TlsClient;
use crate::load::handshake::{self, HandshakeConfig};
use crate::load::{EraMix, LoadConfig};
use crate::scenario::procs::Proc;
use crate::scenario::rig::Override;

/// Every target, in the order of a round (rotated each round).
/// `mcpgate-baseline` runs only when [`BASELINE_BIN_ENV`] names a binary.
pub const TARGETS: [&str; 11] = [
    "direct",
    "mcpgate",
    "nginx",
    "bare-pingora",
    "mcpgate-tls",
    "nginx-tls",
    "mcpgate-tls-jwt",
    "mcpgate-governed",
    "mcpgate-content",
    "mcpgate-audit",
    "mcpgate-baseline",
];
/// An earlier mcpgate binary to measure beside this one in the same run
/// (e.g. the one before a feature), at [`TLS_PAYLOAD`]...
pub const BASELINE_BIN_ENV: &str = "MCPBENCH_BASELINE_BIN";
/// ...under the example policy of its own commit (a newer example may
/// hold keys it does not know).
pub const BASELINE_CONFIG_ENV: &str = "MCPBENCH_BASELINE_CONFIG";
/// `[access]` of the `mcpgate-governed` target: tool governance on, every
/// call judged (the echo tool allowed by a rule after a deny rule), lists
/// filtered; tools/call answers are not read (no response rule wants them).
/// [`governed_tools`] adds pinned definitions and argument validation.
const GOVERNED: &str = "\n[access]\ndefault = \"deny\"\n\n[[access.rules]]\ntools = [\"get-env\", \"delete_*\"]\naction = \"deny\"\n\n[[access.rules]]\ntools = [\"*\"]\nprompts = [\"*\"]\nresources = [\"*\"]\naction = \"allow\"\n";
/// The `mcpgate-content` target: every content guard on, every rule
/// checked (poisoned definitions hidden; secrets and personal data redacted
/// from results and from tools/call arguments): each answer is parsed and
/// its text scanned.
const CONTENT_ALL: &str = "\n[content.poisoning]\naction = \"hide\"\n[content.secrets]\nin_arguments = true\n[content.pii]\nin_arguments = true\n";
/// The `mcpgate-audit` target: the audit trail on (`[audit]`, defaults:
/// digests of arguments, on_full = drop), one record per request.
fn audit_on(file: &std::path::Path) -> String {
    format!("\n[audit]\npath = {:?}\n", file.display().to_string())
}
/// `[tools]` of the `mcpgate-governed` target: the demo upstream's
/// catalogue pinned by `mcpgate pin` (every call looked up in the pins) and
/// every call's arguments validated against the pinned schema.
fn governed_tools(lock: &std::path::Path) -> Vec<Override> {
    vec![
        Override::new(
            "tools",
            "lock_file",
            format!("{:?}", lock.display().to_string()),
        ),
        Override::new("tools", "on_change", "\"block\""),
        Override::new("tools", "validate_arguments", true),
    ]
}

/// Targets measured at every payload size; the others at [`TLS_PAYLOAD`] only.
const PLAIN_TARGETS: [&str; 4] = ["direct", "mcpgate", "nginx", "bare-pingora"];
const TLS_PAYLOAD: usize = 4096;
/// Proxies whose handshakes per second are measured.
const HANDSHAKE_TARGETS: [&str; 2] = ["mcpgate-tls", "nginx-tls"];
/// Tasks handshaking at once.
const HANDSHAKE_CONCURRENCY: usize = 8;

/// How a load run reaches one target.
struct Reach {
    proc: Option<Proc>,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    /// Sent as `Authorization: Bearer`.
    bearer: Option<String>,
}

impl Reach {
    fn plain(proc: Option<Proc>, addr: SocketAddr) -> Self {
        Self {
            proc,
            addr,
            tls: None,
            bearer: None,
        }
    }
}

/// Throughput (/s), proxy CPU (µs/request, NaN for direct), mock CPU
/// (µs/request), p50 and p99 (µs) of one run.
type RunSummary = (f64, f64, f64, u64, u64);

pub async fn run(ctx: &mut Ctx) -> Result<Value, String> {
    let started = Instant::now();
    let sizes: Vec<usize> = ctx.pick(vec![4096], vec![1024, 4096, 65536]);
    let rounds = ctx.pick(1, 3);
    let warmup = Duration::from_millis(ctx.pick(500, 1000));
    let duration = Duration::from_millis(ctx.pick(2000, 5000));
    let connections = 64;

    let rig = ctx.rig.clone();
    let (mock, mock_addr) = rig.mock("mock", 0, &[]).map_err(|e| e.to_string())?;
    let mut procs: BTreeMap<&str, Reach> = BTreeMap::new();
    let mut unavailable: BTreeMap<&str, String> = BTreeMap::new();
    procs.insert("direct", Reach::plain(None, mock_addr));
    match rig.mcpgate("mcpgate", mock_addr, &[]) {
        Ok((p, a)) => {
            procs.insert("mcpgate", Reach::plain(Some(p), a));
        }
        Err(e) => return Err(format!("mcpgate did not start: {e}")),
    }
    match rig.nginx("nginx", mock_addr) {
        Ok((p, a)) => {
            procs.insert("nginx", Reach::plain(Some(p), a));
        }
        Err(e) => {
            unavailable.insert("nginx", e.to_string());
        }
    }
    match rig.bare_pingora("bare-pingora", mock_addr) {
        Ok((p, a)) => {
            procs.insert("bare-pingora", Reach::plain(Some(p), a));
        }
        Err(e) => {
            unavailable.insert("bare-pingora", e.to_string());
        }
    }
    let identity = rig.work.join("identity");
    let tls = make_tls(&identity).map_err(|e| format!("TLS certificate: {e}"))?;
    let jwt = make_jwt(&identity).map_err(|e| format!("JWT key: {e}"))?;
    let client = tls.client().map_err(|e| format!("TLS client: {e}"))?;
    let workers = rig.proxy_threads;
    let tls_gates = [
        ("mcpgate-tls", tls.listen_toml(), None),
        (
            "mcpgate-tls-jwt",
            tls.listen_toml() + &jwt.auth_toml(),
            Some(jwt.token.clone()),
        ),
    ];
    for (name, extra, bearer) in tls_gates {
        let (p, addr) = rig
            .mcpgate_extra(name, &[mock_addr], workers, &[], &[], &extra)
            .map_err(|e| format!("{name} did not start: {e}"))?;
        procs.insert(
            name,
            Reach {
                proc: Some(p),
                addr,
                tls: Some(client.clone()),
                bearer,
            },
        );
    }
    let lock = rig
        .pin("mcpgate-governed", mock_addr)
        .map_err(|e| format!("mcpgate-governed: {e}"))?;
    let (p, addr) = rig
        .mcpgate_extra(
            "mcpgate-governed",
            &[mock_addr],
            workers,
            &[],
            &governed_tools(&lock),
            GOVERNED,
        )
        .map_err(|e| format!("mcpgate-governed did not start: {e}"))?;
    procs.insert("mcpgate-governed", Reach::plain(Some(p), addr));
    let (p, addr) = rig
        .mcpgate_extra(
            "mcpgate-content",
            &[mock_addr],
            workers,
            &[],
            &[],
            CONTENT_ALL,
        )
        .map_err(|e| format!("mcpgate-content did not start: {e}"))?;
    procs.insert("mcpgate-content", Reach::plain(Some(p), addr));
    let audit_file = rig.work.join("audit.jsonl");
    let (p, addr) = rig
        .mcpgate_extra(
            "mcpgate-audit",
            &[mock_addr],
            workers,
            &[],
            &[],
            &audit_on(&audit_file),
        )
        .map_err(|e| format!("mcpgate-audit did not start: {e}"))?;
    procs.insert("mcpgate-audit", Reach::plain(Some(p), addr));
    if let (Some(bin), Some(config)) = (
        std::env::var_os(BASELINE_BIN_ENV),
        std::env::var_os(BASELINE_CONFIG_ENV),
    ) {
        let (p, addr) = rig
            .mcpgate_from(
                "mcpgate-baseline",
                std::path::Path::new(&bin),
                std::path::Path::new(&config),
                mock_addr,
                workers,
            )
            .map_err(|e| format!("mcpgate-baseline did not start: {e}"))?;
        procs.insert("mcpgate-baseline", Reach::plain(Some(p), addr));
    }
    match rig.nginx_tls("nginx-tls", mock_addr, &tls) {
        Ok((p, addr)) => {
            procs.insert(
                "nginx-tls",
                Reach {
                    proc: Some(p),
                    addr,
                    tls: Some(client.clone()),
                    bearer: None,
                },
            );
        }
        Err(e) => {
            unavailable.insert("nginx-tls", e.to_string());
        }
    }

    let mut per_size = Vec::new();
    let mut headline_mcpgate_4k = None;
    for &size in &sizes {
        let mut runs = Vec::new();
        let mut by_target: BTreeMap<&str, Vec<RunSummary>> = BTreeMap::new();
        for round in 0..rounds {
            // Rotate the order each round so no target always runs first.
            for k in 0..TARGETS.len() {
                let target = TARGETS[(k + round) % TARGETS.len()];
                if size != TLS_PAYLOAD && !PLAIN_TARGETS.contains(&target) {
                    continue;
                }
                let Some(reach) = procs.get(target) else {
                    continue;
                };
                let mut cfg = LoadConfig::new(&format!("{target} {size}B r{round}"), reach.addr);
                cfg.tls = reach.tls.clone();
                cfg.target.api_key = reach.bearer.clone();
                cfg.eras = EraMix::Mixed;
                cfg.connections = connections;
                cfg.warmup = warmup;
                cfg.duration = duration;
                cfg.payload_bytes = size;
                let mut watched: Vec<&Proc> = vec![&mock];
                if let Some(p) = &reach.proc {
                    watched.push(p);
                }
                let (report, cpu) = run_measured(ctx, cfg, &watched).await;
                let mock_cpu = cpu[0];
                let proxy_cpu = cpu.get(1).copied();
                by_target.entry(target).or_default().push((
                    report.throughput_per_s,
                    proxy_cpu.unwrap_or(f64::NAN),
                    mock_cpu,
                    report.latency.p50_us,
                    report.latency.p99_us,
                ));
                runs.push(json!({
                    "target": target,
                    "round_index": round,
                    "proxy_cpu_per_request_us": proxy_cpu,
                    "mock_cpu_per_request_us": mock_cpu,
                    "load": report,
                }));
            }
        }
        let mut medians = serde_json::Map::new();
        let mut med_rps = BTreeMap::new();
        for (target, xs) in &by_target {
            let rps = median(&xs.iter().map(|x| x.0).collect::<Vec<_>>());
            med_rps.insert(*target, rps);
            let cpu: Vec<f64> = xs.iter().map(|x| x.1).filter(|x| x.is_finite()).collect();
            medians.insert(
                (*target).to_owned(),
                json!({
                    "throughput_per_s": round1(rps),
                    "proxy_cpu_per_request_us": (!cpu.is_empty()).then(|| round1(median(&cpu))),
                    "mock_cpu_per_request_us": round1(median(&xs.iter().map(|x| x.2).collect::<Vec<_>>())),
                    "p50_us": median(&xs.iter().map(|x| x.3 as f64).collect::<Vec<_>>()),
                    "p99_us": median(&xs.iter().map(|x| x.4 as f64).collect::<Vec<_>>()),
                    "rounds_count": xs.len(),
                }),
            );
        }
        let m = med_rps.get("mcpgate").copied().unwrap_or(0.0);
        let of = |t: &str| med_rps.get(t).copied().unwrap_or(0.0);
        if size == 4096 {
            headline_mcpgate_4k = Some(m);
        }
        let mut ratios = json!({
            "mcpgate_over_nginx_ratio": ratio(m, of("nginx")),
            "mcpgate_over_bare_pingora_ratio": ratio(m, of("bare-pingora")),
            "mcpgate_over_direct_ratio": ratio(m, of("direct")),
            "nginx_over_direct_ratio": ratio(of("nginx"), of("direct")),
            "bare_pingora_over_direct_ratio": ratio(of("bare-pingora"), of("direct")),
        });
        if size == TLS_PAYLOAD {
            let tls_ratios = json!({
                "mcpgate_tls_over_nginx_tls_ratio": ratio(of("mcpgate-tls"), of("nginx-tls")),
                "mcpgate_tls_over_mcpgate_ratio": ratio(of("mcpgate-tls"), m),
                "nginx_tls_over_nginx_ratio": ratio(of("nginx-tls"), of("nginx")),
                "mcpgate_tls_jwt_over_mcpgate_ratio": ratio(of("mcpgate-tls-jwt"), m),
                "mcpgate_tls_jwt_over_mcpgate_tls_ratio": ratio(of("mcpgate-tls-jwt"), of("mcpgate-tls")),
                "mcpgate_governed_over_mcpgate_ratio": ratio(of("mcpgate-governed"), m),
                "mcpgate_content_over_mcpgate_ratio": ratio(of("mcpgate-content"), m),
                "mcpgate_audit_over_mcpgate_ratio": ratio(of("mcpgate-audit"), m),
            });
            let mut tls_ratios = tls_ratios;
            if of("mcpgate-baseline") > 0.0 {
                tls_ratios["mcpgate_over_baseline_ratio"] = json!(ratio(m, of("mcpgate-baseline")));
                tls_ratios["mcpgate_governed_over_baseline_ratio"] =
                    json!(ratio(of("mcpgate-governed"), of("mcpgate-baseline")));
            }
            if let (Some(into), Some(add)) = (ratios.as_object_mut(), tls_ratios.as_object()) {
                into.extend(add.clone());
            }
        }
        per_size.push(json!({
            "payload_bytes": size,
            "medians": medians,
            "ratios": ratios,
            "runs": runs,
        }));
    }
    let handshakes = measure_handshakes(ctx, &procs, &client, rounds).await;
    if let Some(m) = headline_mcpgate_4k {
        ctx.mcpgate_max_per_s = Some(m);
    }
    let mut stopped = Vec::new();
    for name in [
        "mcpgate",
        "mcpgate-tls",
        "mcpgate-tls-jwt",
        "mcpgate-governed",
        "mcpgate-content",
        "mcpgate-audit",
        "mcpgate-baseline",
    ] {
        if let Some(Reach { proc: Some(p), .. }) = procs.get_mut(name) {
            if !p.alive() {
                stopped.push(format!("{name} exited during the scenario"));
            }
        }
    }
    drop(procs);
    drop(mock);
    let params = json!({
        "payloads_bytes": sizes,
        "rounds_count": rounds,
        "warmup_s": warmup.as_secs_f64(),
        "duration_s": duration.as_secs_f64(),
        "connections_count": connections,
        "eras": "mixed: even connections 2025-11-25 sessions (initialize first), odd 2026-07-28 stateless",
        "tool": "tools/call echo, arguments.text of payload_bytes, result text of the same size",
        "proxy_workers_count": ctx.rig.proxy_threads,
        "mock_threads_count": ctx.rig.mock_threads,
        "loadgen": "in-process, 1 tokio thread, closed loop",
        "tls_payload_bytes": TLS_PAYLOAD,
        "tls": "a CA made for the run, one ECDSA P-256 certificate for localhost served by mcpgate ([listen.tls], rustls defaults) and nginx (ssl_protocols TLSv1.2 TLSv1.3); rustls client, no session resumption",
        "jwt": "mcpgate-tls-jwt: [auth.jwt] with a JWKS file, ES256 RFC 9068 access token (tenant claim demo) on every request",
        "handshake_concurrency_count": HANDSHAKE_CONCURRENCY,
        "governed": "mcpgate-governed: mcpgate with [access] (a deny rule, then allow *), the upstream's catalogue pinned by `mcpgate pin` ([tools] lock_file, on_change = block) and validate_arguments: every tools/call judged by the access filter, looked up in the pins and its arguments validated against the pinned inputSchema; no response rule wants tools/call answers, so they are relayed unread",
        "content": "mcpgate-content: mcpgate with every content guard on ([content.poisoning] action = hide, [content.secrets] and [content.pii] redacting, in_arguments = true): every tools/call's arguments and every answer's text scanned (the echo text holds no keyword, the common case)",
        "audit": "mcpgate-audit: mcpgate with the audit trail on ([audit] path in the run's work folder, defaults: argument digests, on_full = drop): one hash-chained JSON line per request, written by a thread of each worker",
        "nginx_version": super::rig::nginx_version(),
        "unavailable": unavailable,
    });
    let stopped = (!stopped.is_empty()).then(|| stopped.join("; "));
    Ok(envelope(
        ctx,
        "throughput-4k",
        started,
        params,
        json!({ "payloads": per_size, "tls_handshakes": handshakes }),
        stopped,
        &[
            "Throughput is successful answers per second over the measured window; medians over rounds.",
            "proxy_cpu_per_request_us: user+system CPU of the proxy's process group during the measured window divided by the successful requests (clock-tick resolution).",
            "Load generator, mock upstream and proxy share the machine's cores.",
            "TLS targets: each of the 64 connections makes one full handshake, then keeps alive; the figures are steady-state requests over TLS.",
            "tls_handshakes: closed loop of tasks that connect, complete a full handshake, send close_notify and close; proxy_cpu_per_handshake_us is the proxy's CPU over the window divided by the handshakes (the client's handshake work shares the cores).",
        ],
    ))
}

/// Handshakes per second of each TLS proxy, interleaved in rounds.
async fn measure_handshakes(
    ctx: &Ctx,
    procs: &BTreeMap<&str, Reach>,
    client: &TlsClient,
    rounds: usize,
) -> Value {
    let sources: Vec<std::net::IpAddr> = (2..=17u8)
        .map(|i| std::net::IpAddr::from([127, 0, 0, i]))
        .collect();
    let mut by_target: BTreeMap<&str, Vec<(f64, f64, u64)>> = BTreeMap::new();
    let mut runs = Vec::new();
    for round in 0..rounds {
        for k in 0..HANDSHAKE_TARGETS.len() {
            let target = HANDSHAKE_TARGETS[(k + round) % HANDSHAKE_TARGETS.len()];
            let Some(Reach {
                proc: Some(proc),
                addr,
                ..
            }) = procs.get(target)
            else {
                continue;
            };
            let cfg = HandshakeConfig {
                label: format!("{target} handshakes r{round}"),
                addr: *addr,
                tls: client.clone(),
                concurrency: HANDSHAKE_CONCURRENCY,
                warmup: Duration::from_millis(ctx.pick(300, 500)),
                duration: Duration::from_millis(ctx.pick(1000, 3000)),
                timeout: Duration::from_secs(5),
                source_ips: sources.clone(),
            };
            let lead = cfg.warmup;
            let window = cfg.duration;
            let task = tokio::spawn(handshake::run(cfg));
            tokio::time::sleep(lead).await;
            let before = ctx.cpu_us(proc);
            tokio::time::sleep(window).await;
            let after = ctx.cpu_us(proc);
            let Ok(report) = task.await else { continue };
            let cpu = round1((after - before) / report.handshakes_count.max(1) as f64);
            by_target.entry(target).or_default().push((
                report.handshakes_per_s,
                cpu,
                report.latency.p99_us,
            ));
            runs.push(json!({
                "target": target,
                "round_index": round,
                "proxy_cpu_per_handshake_us": cpu,
                "handshakes": report,
            }));
        }
    }
    let mut medians = serde_json::Map::new();
    for (target, xs) in &by_target {
        medians.insert(
            (*target).to_owned(),
            json!({
                "handshakes_per_s": round1(median(&xs.iter().map(|x| x.0).collect::<Vec<_>>())),
                "proxy_cpu_per_handshake_us": round1(median(&xs.iter().map(|x| x.1).collect::<Vec<_>>())),
                "p99_us": median(&xs.iter().map(|x| x.2 as f64).collect::<Vec<_>>()),
                "rounds_count": xs.len(),
            }),
        );
    }
    let rate = |t: &str| {
        medians
            .get(t)
            .and_then(|m| m["handshakes_per_s"].as_f64())
            .unwrap_or(0.0)
    };
    json!({
        "medians": medians,
        "ratios": { "mcpgate_over_nginx_ratio": ratio(rate("mcpgate-tls"), rate("nginx-tls")) },
        "runs": runs,
    })
}
