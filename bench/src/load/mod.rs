//! The MCP load generator: closed-loop and fixed-rate (open-loop) load over
//! keep-alive connections, both protocol revisions, hdrhistogram latencies.
//!
//! Fixed-rate mode measures latency from each request's *intended* send time
//! (`start + i / rate`), so a stalled server is charged for the requests it
//! delayed (no coordinated omission). The time from the actual send is kept
//! separately as the service time. Every run is bounded by time and count.

pub mod client;
pub mod handshake;
pub mod hold;
pub mod mcp;
pub mod pacer;
pub mod stats;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use client::{with_timeout, Conn, TlsClient};
use mcp::{Era, Target, Template};
use stats::{classify, Counts, Latency, Outcome, Timeline, TimelinePoint};

/// Which revisions the connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EraMix {
    Legacy,
    Modern,
    /// Even connections legacy, odd ones modern.
    Mixed,
}

impl EraMix {
    fn era_of(self, conn: usize) -> Era {
        match self {
            EraMix::Legacy => Era::Legacy,
            EraMix::Modern => Era::Modern,
            EraMix::Mixed if conn.is_multiple_of(2) => Era::Legacy,
            EraMix::Mixed => Era::Modern,
        }
    }
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Name used in the progress line and the report.
    pub label: String,
    pub addr: SocketAddr,
    pub target: Target,
    pub eras: EraMix,
    pub connections: usize,
    /// Requests per second for fixed-rate mode; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    /// Load before measuring (not recorded).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Stop after this many measured requests (closed loop), if set.
    pub max_requests: Option<u64>,
    /// Size of the `echo` text (request arguments and result).
    pub payload_bytes: usize,
    /// A request without an answer after this long counts as lost.
    pub timeout: Duration,
    /// Record a timeline with this interval.
    pub timeline_bucket: Option<Duration>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    /// Source addresses to spread connections over (loopback aliases).
    pub source_ips: Vec<IpAddr>,
    /// Speak TLS on every connection (a full handshake each).
    pub tls: Option<TlsClient>,
}

impl LoadConfig {
    /// Defaults for `addr`: 64 connections, mixed eras, closed loop, 4 KB, 5 s.
    pub fn new(label: &str, addr: SocketAddr) -> Self {
        Self {
            label: label.to_owned(),
            addr,
            target: Target {
                authority: addr.to_string(),
                path: "/mcp".to_owned(),
                api_key: None,
            },
            eras: EraMix::Mixed,
            connections: 64,
            rate_per_s: None,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            max_requests: None,
            payload_bytes: 4096,
            timeout: Duration::from_secs(10),
            timeline_bucket: None,
            progress: true,
            source_ips: Vec::new(),
            tls: None,
        }
    }
}

/// What a run measured. Every number carries its unit in its name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadReport {
    pub label: String,
    pub mode: String,
    pub eras: EraMix,
    pub connections_count: u64,
    pub payload_bytes: u64,
    /// Target rate in fixed-rate mode.
    pub offered_rate_per_s: Option<f64>,
    pub measured_duration_s: f64,
    /// Requests whose answer (or failure) was counted in the measured window.
    pub completed_count: u64,
    pub ok_count: u64,
    pub rejected_count: u64,
    /// Requests that got no answer (I/O error, closed connection, timeout).
    pub lost_count: u64,
    /// Fixed-rate requests due in the window that the generator never sent.
    pub unsent_count: u64,
    /// Connections whose setup (connect, legacy handshake) failed.
    pub setup_failed_count: u64,
    /// Successful answers per second.
    pub throughput_per_s: f64,
    /// All answers (ok + rejected) per second.
    pub answered_per_s: f64,
    /// Latency of successful requests (fixed rate: from the intended send time).
    pub latency: Latency,
    /// Fixed rate only: successful requests from the actual send.
    pub service_latency: Option<Latency>,
    /// Fixed rate only: how long after its due time each counted request
    /// was sent (the generator's own error; see [`pacer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lateness: Option<Latency>,
    /// Fixed rate only: how sends were timed (`timerfd`, or `tokio-1ms`
    /// where no fine timer could be made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<String>,
    /// Latency of rejected requests.
    pub rejected_latency: Latency,
    /// Rejections by `"<status> <json-rpc code>"`.
    pub rejection_counts: Counts,
    /// Lost requests by error.
    pub lost_counts: Counts,
    pub setup_error_counts: Counts,
    pub timeline: Option<Vec<TimelinePoint>>,
    /// Each timeline interval's successful latencies (not written out: for
    /// percentiles over windows, [`stats::window_latency`]).
    #[serde(skip)]
    pub timeline_histograms: Option<Vec<hdrhistogram::Histogram<u64>>>,
}

struct Shared {
    cfg: LoadConfig,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    next: AtomicU64,
    measured: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    timeline: Option<Timeline>,
}

#[derive(Default)]
struct Local {
    ok: Option<Histogram<u64>>,
    service: Option<Histogram<u64>>,
    lateness: Option<Histogram<u64>>,
    /// Sends timed by tokio's millisecond timer (no fine timer).
    coarse: bool,
    rejected_h: Option<Histogram<u64>>,
    ok_count: u64,
    rejected_count: u64,
    lost_count: u64,
    rejections: Counts,
    lost: Counts,
    setup_errors: Counts,
    setup_failed: u64,
    pulled: u64,
}

/// Runs `cfg` on the current tokio runtime and reports.
pub async fn run(cfg: LoadConfig) -> LoadReport {
    let setup_grace = Duration::from_millis(200);
    let start = Instant::now() + setup_grace;
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let timeline = cfg
        .timeline_bucket
        .map(|b| Timeline::new(b, cfg.duration + cfg.timeout));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        start,
        measure_from,
        end,
        next: AtomicU64::new(0),
        measured: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        timeline,
    });
    let progress = cfg
        .progress
        .then(|| tokio::spawn(progress_line(shared.clone())));
    let tasks: Vec<_> = (0..cfg.connections)
        .map(|i| tokio::spawn(connection(shared.clone(), i)))
        .collect();
    let mut total = Local::default();
    for t in tasks {
        if let Ok(l) = t.await {
            merge(&mut total, l);
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    let secs = if cfg.rate_per_s.is_some() {
        cfg.duration.as_secs_f64()
    } else {
        measured.as_secs_f64().max(1e-9)
    };
    let unsent = match cfg.rate_per_s {
        Some(rate) => {
            let due = ((cfg.warmup + cfg.duration).as_secs_f64() * rate) as u64;
            let due_measured = due - (cfg.warmup.as_secs_f64() * rate) as u64;
            let pulled_measured = total
                .pulled
                .saturating_sub((cfg.warmup.as_secs_f64() * rate) as u64);
            due_measured.saturating_sub(pulled_measured)
        }
        None => 0,
    };
    let ok_h = total.ok.unwrap_or_else(stats::histogram);
    let rej_h = total.rejected_h.unwrap_or_else(stats::histogram);
    let completed = total.ok_count + total.rejected_count + total.lost_count;
    LoadReport {
        label: cfg.label.clone(),
        mode: if cfg.rate_per_s.is_some() {
            "fixed_rate".into()
        } else {
            "closed_loop".into()
        },
        eras: cfg.eras,
        connections_count: cfg.connections as u64,
        payload_bytes: cfg.payload_bytes as u64,
        offered_rate_per_s: cfg.rate_per_s,
        measured_duration_s: round3(secs),
        completed_count: completed,
        ok_count: total.ok_count,
        rejected_count: total.rejected_count,
        lost_count: total.lost_count,
        unsent_count: unsent,
        setup_failed_count: total.setup_failed,
        throughput_per_s: round1(total.ok_count as f64 / secs),
        answered_per_s: round1((total.ok_count + total.rejected_count) as f64 / secs),
        latency: Latency::of(&ok_h),
        service_latency: total.service.as_ref().map(Latency::of),
        send_lateness: total.lateness.as_ref().map(Latency::of),
        pacing: cfg
            .rate_per_s
            .map(|_| if total.coarse { "tokio-1ms" } else { "timerfd" }.to_owned()),
        rejected_latency: Latency::of(&rej_h),
        rejection_counts: total.rejections,
        lost_counts: total.lost,
        setup_error_counts: total.setup_errors,
        timeline: shared.timeline.as_ref().map(Timeline::points),
        timeline_histograms: shared.timeline.as_ref().map(Timeline::histograms),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn merge(into: &mut Local, l: Local) {
    for (dst, src) in [
        (&mut into.ok, l.ok),
        (&mut into.service, l.service),
        (&mut into.lateness, l.lateness),
        (&mut into.rejected_h, l.rejected_h),
    ] {
        if let Some(src) = src {
            match dst {
                Some(d) => {
                    let _ = d.add(&src);
                }
                None => *dst = Some(src),
            }
        }
    }
    into.ok_count += l.ok_count;
    into.rejected_count += l.rejected_count;
    into.lost_count += l.lost_count;
    into.setup_failed += l.setup_failed;
    into.pulled += l.pulled;
    into.coarse |= l.coarse;
    stats::merge_counts(&mut into.rejections, &l.rejections);
    stats::merge_counts(&mut into.lost, &l.lost);
    stats::merge_counts(&mut into.setup_errors, &l.setup_errors);
}

async fn progress_line(s: Arc<Shared>) {
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !s.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let done = s.done.load(Ordering::Relaxed);
        let t = Instant::now().saturating_duration_since(s.start);
        let phase = if Instant::now() < s.measure_from {
            "warmup"
        } else {
            "measure"
        };
        eprintln!(
            "[{}] {:>5.1}s {phase:<7} {:>9} answered {:>8} /s  measured {:>9}  failed {}",
            s.cfg.label,
            t.as_secs_f64(),
            done,
            done - last,
            s.measured.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
        );
        last = done;
    }
}

/// Opens a connection and, for a legacy client, runs the handshake.
async fn setup(s: &Shared, conn_no: usize, era: Era) -> Result<(Conn, Template), String> {
    let cfg = &s.cfg;
    let source =
        (!cfg.source_ips.is_empty()).then(|| cfg.source_ips[conn_no % cfg.source_ips.len()]);
    let mut conn = match &cfg.tls {
        None => with_timeout(cfg.timeout, Conn::connect(cfg.addr, source)).await,
        Some(tls) => with_timeout(cfg.timeout, Conn::connect_tls(cfg.addr, source, tls)).await,
    }
    .map_err(|e| format!("connect: {}", e.kind()))?;
    let session = match era {
        Era::Modern => None,
        Era::Legacy => {
            let init = mcp::initialize(&cfg.target);
            let r = with_timeout(cfg.timeout, conn.request(&init))
                .await
                .map_err(|e| format!("initialize: {}", e.kind()))?;
            let Some(sid) = r.session_id.filter(|_| r.status == 200) else {
                return Err(format!("initialize: status {}", r.status));
            };
            let note = mcp::initialized(&cfg.target, &sid);
            let r = with_timeout(cfg.timeout, conn.request(&note))
                .await
                .map_err(|e| format!("initialized: {}", e.kind()))?;
            if r.status != 202 {
                return Err(format!("initialized: status {}", r.status));
            }
            Some(sid)
        }
    };
    let tpl = mcp::echo_call(&cfg.target, era, session.as_deref(), cfg.payload_bytes);
    Ok((conn, tpl))
}

async fn connection(s: Arc<Shared>, conn_no: usize) -> Local {
    let cfg = &s.cfg;
    let era = cfg.eras.era_of(conn_no);
    let mut local = Local {
        ok: Some(stats::histogram()),
        service: cfg.rate_per_s.map(|_| stats::histogram()),
        lateness: cfg.rate_per_s.map(|_| stats::histogram()),
        rejected_h: Some(stats::histogram()),
        ..Local::default()
    };
    let interval = cfg.rate_per_s.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut pacer = interval.map(|_| pacer::Pacer::new());
    local.coarse = pacer.as_ref().is_some_and(|p| !p.is_fine());
    let hard_stop = s.end + cfg.timeout;
    let mut conn: Option<(Conn, Template)> = None;
    let mut seq = 0u64;
    loop {
        if conn.is_none() {
            if Instant::now() >= s.end {
                break;
            }
            match setup(&s, conn_no, era).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    local.setup_failed += 1;
                    *local.setup_errors.entry(e).or_default() += 1;
                    s.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        // When is this request due, and does it count?
        let intended = match interval {
            None => {
                let now = Instant::now();
                if now < s.start {
                    tokio::time::sleep_until(s.start.into()).await;
                }
                let now = Instant::now();
                if now >= s.end {
                    break;
                }
                if let Some(max) = cfg.max_requests {
                    if now >= s.measure_from && s.measured.load(Ordering::Relaxed) >= max {
                        break;
                    }
                }
                now
            }
            Some(iv) => {
                let i = s.next.fetch_add(1, Ordering::Relaxed);
                let due = s.start + iv.mul_f64(i as f64);
                if due >= s.end || Instant::now() >= hard_stop {
                    break;
                }
                local.pulled += 1;
                if let Some(p) = pacer.as_mut() {
                    p.until(due).await;
                }
                due
            }
        };
        let Some((c, tpl)) = conn.as_mut() else {
            continue;
        };
        seq += 1;
        tpl.set_id(((conn_no as u64) << 32) | seq);
        let sent = Instant::now();
        // Latency counts from the intended time, or from the send when the
        // timer let it go a little early.
        let due = intended;
        let intended = intended.min(sent);
        let result = with_timeout(cfg.timeout, c.request(&tpl.raw)).await;
        let now = Instant::now();
        let outcome = match &result {
            Ok(r) => classify(r.status, &r.body),
            Err(e) => Outcome::Lost(e.kind().to_string()),
        };
        let close = match &result {
            Ok(r) => r.close,
            Err(_) => true,
        };
        s.done.fetch_add(1, Ordering::Relaxed);
        let counts = match interval {
            None => now >= s.measure_from && now <= s.end,
            Some(_) => due >= s.measure_from,
        };
        if counts {
            s.measured.fetch_add(1, Ordering::Relaxed);
            let latency = now - intended;
            if let Some(h) = local.lateness.as_mut() {
                stats::record(h, sent.saturating_duration_since(due));
            }
            if let Some(t) = &s.timeline {
                t.add(
                    due.saturating_duration_since(s.measure_from),
                    &outcome,
                    latency,
                );
            }
            match outcome {
                Outcome::Ok => {
                    local.ok_count += 1;
                    if let Some(h) = local.ok.as_mut() {
                        stats::record(h, latency);
                    }
                    if let Some(h) = local.service.as_mut() {
                        stats::record(h, now - sent);
                    }
                }
                Outcome::Rejected(kind) => {
                    local.rejected_count += 1;
                    *local.rejections.entry(kind).or_default() += 1;
                    if let Some(h) = local.rejected_h.as_mut() {
                        stats::record(h, latency);
                    }
                }
                Outcome::Lost(why) => {
                    local.lost_count += 1;
                    s.failed.fetch_add(1, Ordering::Relaxed);
                    *local.lost.entry(why).or_default() += 1;
                }
            }
        }
        if close {
            conn = None;
        }
    }
    local
}
