//! The load generator against the real mock upstream: both eras, closed loop
//! and fixed rate, and held streams. Correctness only, never timings.

mod common;

use std::time::Duration;

use bench::load::{self, hold, EraMix, LoadConfig};
use common::Server;

fn config(port: u16, eras: EraMix) -> LoadConfig {
    let mut cfg = LoadConfig::new("test", ([127, 0, 0, 1], port).into());
    cfg.eras = eras;
    cfg.connections = 4;
    cfg.warmup = Duration::from_millis(100);
    cfg.duration = Duration::from_millis(400);
    cfg.payload_bytes = 1024;
    cfg.progress = false;
    cfg
}

#[test]
fn closed_loop_both_eras_all_ok() {
    let server = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for eras in [EraMix::Legacy, EraMix::Modern, EraMix::Mixed] {
        let r = rt.block_on(load::run(config(server.port, eras)));
        assert!(r.ok_count > 0, "{eras:?}: {r:?}");
        assert_eq!(
            r.rejected_count + r.lost_count + r.setup_failed_count,
            0,
            "{r:?}"
        );
        assert!(r.latency.p50_us <= r.latency.p99_us && r.latency.p99_us <= r.latency.max_us);
        assert_eq!(r.mode, "closed_loop");
    }
}

#[test]
fn fixed_rate_sends_the_schedule() {
    let server = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cfg = config(server.port, EraMix::Mixed);
    cfg.rate_per_s = Some(200.0);
    cfg.duration = Duration::from_secs(1);
    cfg.timeline_bucket = Some(Duration::from_millis(100));
    let r = rt.block_on(load::run(cfg));
    // 200/s for 1 s measured: 200 requests due, every one answered.
    assert_eq!(r.ok_count + r.unsent_count, 200, "{r:?}");
    assert_eq!(r.rejected_count + r.lost_count, 0, "{r:?}");
    assert!(r.service_latency.is_some());
    let tl = r.timeline.expect("timeline");
    assert_eq!(tl.iter().map(|p| p.ok_count).sum::<u64>(), r.ok_count);
}

#[test]
fn refused_requests_are_counted_by_kind() {
    let server = Server::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut cfg = config(server.port, EraMix::Modern);
    cfg.target.path = "/elsewhere".into();
    let r = rt.block_on(load::run(cfg));
    assert_eq!(r.ok_count, 0);
    assert!(r.rejection_counts.contains_key("404"), "{r:?}");
}

#[test]
fn holds_streams_of_both_eras() {
    let server = Server::start(&[]);
    let bin = env!("CARGO_BIN_EXE_loadgen");
    let mut child = std::process::Command::new(bin)
        .args([
            "hold",
            "--url",
            &format!("http://127.0.0.1:{}/mcp", server.port),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("loadgen hold");
    use std::io::{BufRead, Write};
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    writeln!(stdin, "open 10").expect("write");
    let status: hold::HoldStatus =
        serde_json::from_str(&lines.next().expect("answer").expect("line")).expect("json");
    assert_eq!(status.open_count, 10, "{status:?}");
    assert_eq!(status.failed_count, 0, "{status:?}");
    writeln!(stdin, "quit").expect("write");
    let _ = child.wait();
}
