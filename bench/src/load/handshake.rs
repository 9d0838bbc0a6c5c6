//! TLS handshakes per second: a closed loop of tasks that each connect, run a
//! full handshake (the client never resumes a session), close with
//! `close_notify` and start again. What a proxy pays for a client that
//! connects anew, measured the same way for every proxy in one run.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::client::{tcp_connect, with_timeout, TlsClient};
use super::stats::{self, merge_counts, Counts, Latency};

/// One handshake run.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub label: String,
    pub addr: SocketAddr,
    pub tls: TlsClient,
    /// Tasks handshaking at once.
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// A handshake not done after this long counts as failed.
    pub timeout: Duration,
    /// Source addresses connections rotate over (loopback aliases), so the
    /// client's closed connections in TIME_WAIT never exhaust its ports.
    pub source_ips: Vec<IpAddr>,
}

/// What a handshake run measured.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeReport {
    pub label: String,
    pub concurrency_count: u64,
    pub measured_duration_s: f64,
    /// Handshakes completed within the measured window.
    pub handshakes_count: u64,
    pub failed_count: u64,
    pub handshakes_per_s: f64,
    /// Connect to handshake complete.
    pub latency: Latency,
    pub failure_counts: Counts,
    /// Protocol version and cipher suite the last handshake agreed on.
    pub tls_version: Option<String>,
    pub tls_cipher: Option<String>,
}

#[derive(Default)]
struct Local {
    ok: u64,
    failed: u64,
    failures: Counts,
    latency: Option<hdrhistogram::Histogram<u64>>,
    version: Option<String>,
    cipher: Option<String>,
}

/// Runs `cfg` on the current tokio runtime and reports.
pub async fn run(cfg: HandshakeConfig) -> HandshakeReport {
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let attempt = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..cfg.concurrency)
        .map(|_| tokio::spawn(task(cfg.clone(), measure_from, end, attempt.clone())))
        .collect();
    let mut total = Local {
        latency: Some(stats::histogram()),
        ..Local::default()
    };
    for t in tasks {
        let Ok(l) = t.await else { continue };
        total.ok += l.ok;
        total.failed += l.failed;
        merge_counts(&mut total.failures, &l.failures);
        if let (Some(into), Some(h)) = (total.latency.as_mut(), l.latency.as_ref()) {
            let _ = into.add(h);
        }
        total.version = total.version.or(l.version);
        total.cipher = total.cipher.or(l.cipher);
    }
    let secs = cfg.duration.as_secs_f64().max(1e-9);
    let h = total.latency.unwrap_or_else(stats::histogram);
    HandshakeReport {
        label: cfg.label,
        concurrency_count: cfg.concurrency as u64,
        measured_duration_s: secs,
        handshakes_count: total.ok,
        failed_count: total.failed,
        handshakes_per_s: (total.ok as f64 / secs * 10.0).round() / 10.0,
        latency: Latency::of(&h),
        failure_counts: total.failures,
        tls_version: total.version,
        tls_cipher: total.cipher,
    }
}

async fn task(
    cfg: HandshakeConfig,
    measure_from: Instant,
    end: Instant,
    attempt: Arc<AtomicU64>,
) -> Local {
    let mut local = Local {
        latency: Some(stats::histogram()),
        ..Local::default()
    };
    while Instant::now() < end {
        let n = attempt.fetch_add(1, Ordering::Relaxed) as usize;
        let source = (!cfg.source_ips.is_empty()).then(|| cfg.source_ips[n % cfg.source_ips.len()]);
        let began = Instant::now();
        let result = with_timeout(cfg.timeout, async {
            let tcp = tcp_connect(cfg.addr, source).await?;
            cfg.tls.handshake(tcp).await
        })
        .await;
        let done = Instant::now();
        let counts = done >= measure_from && done <= end;
        match result {
            Ok(mut stream) => {
                if counts {
                    local.ok += 1;
                    if let Some(h) = local.latency.as_mut() {
                        stats::record(h, done - began);
                    }
                }
                let (_, session) = stream.get_ref();
                local.version = session.protocol_version().map(|v| format!("{v:?}"));
                local.cipher = session
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()));
                // close_notify and FIN, as a well-behaved client leaves.
                let _ = with_timeout(cfg.timeout, stream.shutdown()).await;
            }
            Err(e) => {
                if counts {
                    local.failed += 1;
                    *local.failures.entry(e.kind().to_string()).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    local
}
