//! Reloading the policy while serving: SIGHUP (the supervisor passes it to
//! every worker), `POST /reload` on the admin listener (loopback only;
//! worker 0 reloads, then asks every sibling over its private socket and
//! answers with every worker's report) and `mcpgate reload`, which posts
//! there and prints the answer.
//!
//! Each worker re-reads the policy file (with its lock file, key files and
//! the TLS certificates), compiles its share once and swaps the generation
//! its requests start from ([`Live`]); requests in flight finish under
//! the one they started with. Sessions, caps in use, breakers and pins
//! live in what a reload keeps (see [`McpGate::next`]). An invalid file
//! keeps the running policy and reports every error as `check` prints it;
//! keys that take effect only at a restart are named
//! ([`policies::RESTART_ONLY`]).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::exchange::tokens::Tokens;
use crate::gate::{Live, McpGate};
use crate::ops::clock::SystemClock;
use crate::ops::policy_file::{runnable, session_keys};
use crate::upstream::pool::{stop_stdio_workers, Pool};

/// Path on a worker's private socket that reloads it and answers its report.
pub const INTERNAL_RELOAD_PATH: &str = "/_mcpgate/reload";
/// How long worker 0 waits for a sibling's reload report.
const SIBLING_RELOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `mcpgate reload` waits for the instance's answer (more than a
/// sibling may take: siblings are asked at once).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// How one worker's reload went.
pub(crate) struct Report {
    pub(crate) worker: usize,
    pub(crate) reloaded: bool,
    /// The generation running after the attempt.
    pub(crate) generation: u64,
    /// Why it failed: every error of the file, as `check` prints them.
    pub(crate) errors: Vec<String>,
    /// Keys the file changed that take effect only at a restart.
    pub(crate) restart_required: Vec<&'static str>,
    /// Pools carried over (breakers, health, pins) and pools built anew.
    pub(crate) pools_kept: Vec<String>,
    pub(crate) pools_rebuilt: Vec<String>,
}

impl Report {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "worker": self.worker,
            "outcome": if self.reloaded { "reloaded" } else { "failed" },
            "generation": self.generation,
            "errors": self.errors,
            "restart_required": self.restart_required,
            "pools_kept": self.pools_kept,
            "pools_rebuilt": self.pools_rebuilt,
        })
    }
}

/// Reloads this worker: re-reads, compiles and swaps, or keeps the running
/// policy and says why. Logged and counted either way.
pub(crate) async fn reload(live: &Live) -> Report {
    let _one_at_a_time = live.reloading.lock().await;
    let running = live.load();
    let mut report = Report {
        worker: running.identity.index,
        reloaded: false,
        generation: running.generation,
        errors: Vec::new(),
        restart_required: Vec::new(),
        pools_kept: Vec::new(),
        pools_rebuilt: Vec::new(),
    };
    let began = Instant::now();
    // The certificates are re-read whatever becomes of the policy.
    if let Some(tls) = live.source.as_ref().and_then(|s| s.tls.as_ref()) {
        tls.reload(true);
    }
    match attempt(live, &running).await {
        Ok((next, restart_required)) => {
            let next = Arc::new(next);
            next.take_caps();
            for (name, pool) in &next.pools {
                let kept = running
                    .pools
                    .get(name)
                    .is_some_and(|p| Arc::ptr_eq(p, pool));
                let list = if kept {
                    &mut report.pools_kept
                } else {
                    &mut report.pools_rebuilt
                };
                list.push(name.clone());
            }
            let retired = running.retired_by(&next);
            if let Some(t) = next.tokens.clone() {
                if !running.tokens.as_ref().is_some_and(|r| Arc::ptr_eq(r, &t)) {
                    tokio::spawn(t.keep_fresh());
                }
            }
            live.store(next.clone());
            // Caps again: a request of the old generation may have added a
            // tenant sized by the old policy meanwhile.
            next.take_caps();
            retire(&next, retired);
            report.reloaded = true;
            report.generation = next.generation;
            report.restart_required = restart_required;
            let m = &running.metrics;
            m.reloads.with_label_values(&["ok"]).inc();
            m.reload_success.set(1);
            m.policy_generation.set(next.generation as i64);
            for key in &report.restart_required {
                tracing::warn!(
                    worker = report.worker,
                    key,
                    "reload: {key} changed in the file; it takes effect at a restart (the running value stays)"
                );
            }
            tracing::info!(
                worker = report.worker,
                generation = next.generation,
                kept = ?report.pools_kept,
                rebuilt = ?report.pools_rebuilt,
                millis = began.elapsed().as_millis() as u64,
                "reload: policy swapped"
            );
        }
        Err(errors) => {
            let m = &running.metrics;
            m.reloads.with_label_values(&["failed"]).inc();
            m.reload_success.set(0);
            tracing::error!(
                worker = report.worker,
                "reload failed, the running policy stays:\n{}",
                errors.join("\n")
            );
            report.errors = errors;
        }
    }
    report
}

/// The next generation, or every reason there is none.
async fn attempt(
    live: &Live,
    running: &Arc<McpGate>,
) -> Result<(McpGate, Vec<&'static str>), Vec<String>> {
    let source = live
        .source
        .as_ref()
        .ok_or_else(|| vec!["this worker has no policy file to reload".to_string()])?;
    let config = source.config.clone();
    // File reads and compilation (regexes, schemas) off the event loop.
    let read = tokio::task::spawn_blocking(move || {
        let policy = policies::parse_policy_file(&config).map_err(|errors| {
            errors
                .to_string()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })?;
        runnable(&policy).map_err(|e| vec![format!("error: {e}")])?;
        let keys = session_keys(&policy).map_err(|e| vec![format!("error: {e}")])?;
        Ok::<_, Vec<String>>((policy, keys))
    })
    .await
    .map_err(|e| vec![format!("error: the reload task failed: {e}")])?;
    let (policy, keys) = read?;
    if keys.is_empty() {
        return Err(vec!["error: no session key".into()]);
    }
    let (index, workers) = (running.identity.index, running.identity.workers);
    let mut policy = policy.for_worker(index, workers);
    let restart_required = policies::keep_restart_only(&running.policy, &mut policy);
    let tokens = match &policy.auth.jwt {
        None => None,
        Some(_) if !policies::differs(&running.policy.auth.jwt, &policy.auth.jwt) => {
            running.tokens.clone()
        }
        Some(jwt) => Some(Arc::new(
            Tokens::load(jwt, Arc::new(SystemClock))
                .await
                .map_err(|e| vec![format!("error: [auth.jwt]: {e}")])?,
        )),
    };
    let running = running.clone();
    let next = tokio::task::spawn_blocking(move || running.next(Arc::new(policy), &keys, tokens))
        .await
        .map_err(|e| vec![format!("error: the reload task failed: {e}")])?
        .map_err(|e| vec![format!("error: upstream: {e}")])?;
    Ok((next, restart_required))
}

/// Stops the processes of stdio pools a reload replaced once no request of
/// an older generation holds the pool (connections drop their generation
/// between requests), or after the pool's `max_request_ms`. Until then
/// they are listed in [`crate::gate::Shared::retired`], so a drain stops
/// them too.
fn retire(gate: &McpGate, pools: Vec<Arc<Pool>>) {
    for pool in pools.into_iter().filter(|p| p.spawns_workers()) {
        gate.retired.lock().push(pool.clone());
        let shared = gate.shared();
        tokio::spawn(async move {
            let longest = Duration::from_millis(pool.config.timeouts.max_request_ms);
            let deadline = Instant::now() + longest;
            // Held here, in `retired`, and by each request still using it.
            while Arc::strong_count(&pool) > 2 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop_stdio_workers([&pool]).await;
            shared.retired.lock().retain(|p| !Arc::ptr_eq(p, &pool));
            tracing::info!(pool = %pool.config.name, "reload: the replaced pool's stdio workers stopped");
        });
    }
}

/// `POST /reload` on worker 0: this worker, then every sibling. The HTTP
/// status and the JSON answer: 200 when every worker reloaded, 422 when
/// the file is invalid (nothing changed anywhere), 500 otherwise.
pub(crate) async fn everywhere(live: &Live) -> (u16, String) {
    let own = reload(live).await;
    let gate = live.load();
    if !own.reloaded {
        // The siblings read the same file: it would fail there too.
        let body = json!({ "outcome": "failed", "workers": [own.to_json()] });
        return (422, format!("{body:#}\n"));
    }
    let mut workers = vec![own.to_json()];
    // Every sibling at once, each within its own limit.
    let asks: Vec<_> = (0..gate.identity.workers)
        .filter(|&i| i != gate.identity.index)
        .map(|i| {
            let gate = gate.clone();
            let ask = tokio::spawn(async move {
                crate::ops::admin::ask_sibling(
                    &gate,
                    i,
                    "POST",
                    INTERNAL_RELOAD_PATH,
                    SIBLING_RELOAD_TIMEOUT,
                )
                .await
            });
            (i, ask)
        })
        .collect();
    for (i, ask) in asks {
        let answer = ask
            .await
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        workers.push(answer.unwrap_or_else(|| json!({ "worker": i, "outcome": "unreachable" })));
    }
    let all = workers.iter().all(|w| w["outcome"] == "reloaded");
    let body = json!({
        "outcome": if all { "reloaded" } else { "partial" },
        "workers": workers,
    });
    (if all { 200 } else { 500 }, format!("{body:#}\n"))
}

/// `mcpgate reload`: asks the running instance to reload (`POST /reload`
/// on its admin listener, from `--admin` or the file's `[admin]`) and
/// prints every worker's report. The file was already checked: an invalid
/// one never reaches this. Exit 0 when every worker reloaded, 1 when one
/// did not, 2 when the instance could not be asked.
pub fn command(config: &Path, policy: &policies::Policy, admin: Option<SocketAddr>) -> ExitCode {
    let Some(addr) = admin.or_else(|| policy.admin.as_ref().map(|a| a.address)) else {
        eprintln!(
            "error: {} has no [admin] listener to ask: pass --admin ADDRESS, or send SIGHUP to the supervisor",
            config.display()
        );
        return ExitCode::from(2);
    };
    let addr = reachable(addr);
    let answer = post(addr, "/reload");
    let (status, body) = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot reach the admin listener at {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(report) = serde_json::from_str::<Value>(&body) else {
        eprintln!("error: the admin listener at {addr} answered {status}: {body}");
        return ExitCode::from(2);
    };
    let mut out = String::new();
    for w in report["workers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "worker {}: {}",
            w["worker"],
            w["outcome"].as_str().unwrap_or("?")
        ));
        if let Some(g) = w["generation"].as_u64() {
            out.push_str(&format!(" (generation {g})"));
        }
        out.push('\n');
        for e in w["errors"].as_array().into_iter().flatten() {
            out.push_str(&format!("  {}\n", e.as_str().unwrap_or_default()));
        }
    }
    // The same file for every worker: name restart-only keys once.
    let restart: Vec<&str> = report["workers"][0]["restart_required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for key in &restart {
        out.push_str(&format!(
            "{key}: changed in {}; takes effect at a restart (the running value stays)\n",
            config.display()
        ));
    }
    if status == 200 {
        print!("{out}");
        println!("{}: reloaded", config.display());
        ExitCode::SUCCESS
    } else {
        eprint!("{out}");
        eprintln!("{}: not reloaded", config.display());
        ExitCode::from(1)
    }
}

/// A listener bound to every address is asked on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// One `POST` with an empty body: the status and the body.
fn post(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(COMMAND_TIMEOUT))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete HTTP answer"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    Ok((status, body.to_string()))
}
