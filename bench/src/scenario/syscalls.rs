//! System calls per proxied request: `strace -c` attached to every thread
//! of a proxy's process tree for a window of closed-loop load, divided by
//! the requests answered in that window. Tracing slows the proxy many
//! times over, so only the counts are used, never the times; the window is
//! the load's measured window (strace attaches just before it begins and
//! detaches just after), so a call or two at either edge is the error.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::procs::{group_pids, Proc};
use crate::load::{self, LoadConfig};

/// Counts the system calls of `proxy` per request answered at `addr`
/// (`None` when strace is not installed).
pub async fn per_request(
    name: &str,
    proxy: &Proc,
    addr: std::net::SocketAddr,
    seconds: u64,
    work: &std::path::Path,
) -> Result<Option<Value>, String> {
    if Command::new("strace").arg("-V").output().is_err() {
        return Ok(None);
    }
    let threads: Vec<String> = group_pids(proxy.pid())
        .iter()
        .flat_map(|pid| threads_of(*pid))
        .map(|t| t.to_string())
        .collect();
    let out = work.join(format!("strace-{name}.txt"));
    let mut cfg = LoadConfig::new(&format!("syscalls {name}"), addr);
    cfg.warmup = Duration::from_secs(1);
    cfg.duration = Duration::from_secs(seconds);
    let load = tokio::spawn(load::run(cfg));
    // load::run's 200 ms set-up and the warm-up, less strace's attach time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut strace = Command::new("strace");
    strace.args(["-c", "-q", "-o"]).arg(&out);
    for t in &threads {
        strace.args(["-p", t]);
    }
    let mut strace = strace
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    let report = load.await.map_err(|e| format!("load: {e}"))?;
    // SIGINT: strace detaches and writes its summary.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || strace.wait()).await;
    let table = std::fs::read_to_string(&out).map_err(|e| format!("strace output: {e}"))?;
    let calls = parse_summary(&table);
    let requests = report.ok_count.max(1) as f64;
    let total: u64 = calls.values().sum();
    let mut by: Vec<(&String, &u64)> = calls.iter().collect();
    by.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    Ok(Some(json!({
        "requests_count": report.ok_count,
        "syscalls_count": total,
        "syscalls_per_request_count": round2(total as f64 / requests),
        "by_syscall": by
            .iter()
            .map(|(s, n)| json!({ "syscall": s, "per_request_count": round2(**n as f64 / requests) }))
            .collect::<Vec<_>>(),
        "threads_traced_count": threads.len(),
    })))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The thread ids of a process.
fn threads_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_else(|_| vec![pid])
}

/// Calls per system call from `strace -c`'s table (errors included: a
/// call that failed with `EAGAIN` was still made).
fn parse_summary(table: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in table.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if cols.len() < 5 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let Some(name) = cols.last().filter(|n| **n != "total") else {
            continue;
        };
        if let Ok(n) = cols[3].parse::<u64>() {
            *calls.entry(name.to_string()).or_default() += n;
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::parse_summary;

    #[test]
    fn the_summary_table_gives_calls_per_syscall() {
        let table = "% time     seconds  usecs/call     calls    errors syscall\n\
------ ----------- ----------- --------- --------- ----------------\n\
 45.10    0.120000          12     10000           sendto\n\
 40.00    0.100000          10     12000      2000 recvfrom\n\
 14.90    0.040000           4      1000           epoll_wait\n\
------ ----------- ----------- --------- --------- ----------------\n\
100.00    0.260000          11     23000      2000 total\n";
        let calls = parse_summary(table);
        assert_eq!(calls.get("sendto"), Some(&10_000));
        assert_eq!(calls.get("recvfrom"), Some(&12_000));
        assert_eq!(calls.get("epoll_wait"), Some(&1_000));
        assert_eq!(calls.len(), 3, "the total line is not a syscall");
    }
}
