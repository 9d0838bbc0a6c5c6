//! Latency histograms, outcome counts and per-interval timelines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram records (µs); larger values are clamped.
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// A fresh latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 120 s at 3 significant figures cannot fail to build.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid"))
    })
}

/// Records `d` in microseconds (at least 1).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    let _ = h.record(us);
}

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    pub samples_count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            samples_count: h.len(),
            mean_us: (h.mean() * 10.0).round() / 10.0,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx without a JSON-RPC error.
    Ok,
    /// An answer that refused or failed the request: HTTP status and, when the
    /// body had one, the JSON-RPC error code (`"503 -32000"`).
    Rejected(String),
    /// No answer at all: I/O error, closed connection or timeout.
    Lost(String),
}

/// Classifies a response.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    let code = if (200..300).contains(&status) {
        // serde_json writes keys sorted, so "error" shows up early when present;
        // a 202 has no body.
        let head = &body[..body.len().min(96)];
        if !head.windows(8).any(|w| w == b"\"error\":") {
            return Outcome::Ok;
        }
        rpc_code(body)
    } else {
        rpc_code(body)
    };
    Outcome::Rejected(match code {
        Some(c) => format!("{status} {c}"),
        None => status.to_string(),
    })
}

fn rpc_code(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    // SSE bodies: the first data line.
    let json = match text.find("data:") {
        Some(i) if !text.trim_start().starts_with('{') => text[i + 5..].lines().next()?,
        _ => text,
    };
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    v.get("error")?.get("code")?.as_i64()
}

/// Counts per outcome key.
pub type Counts = BTreeMap<String, u64>;

/// Adds `other` into `into`.
pub fn merge_counts(into: &mut Counts, other: &Counts) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// Per-interval counters shared by all connections (lock-free).
pub struct Timeline {
    bucket: Duration,
    buckets: Vec<Bucket>,
}

struct Bucket {
    ok: AtomicU64,
    rejected: AtomicU64,
    lost: AtomicU64,
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
    /// Latencies of the successful requests, for percentiles over any
    /// window of buckets ([`window_latency`]).
    ok_latency: std::sync::Mutex<Histogram<u64>>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            ok: AtomicU64::default(),
            rejected: AtomicU64::default(),
            lost: AtomicU64::default(),
            latency_sum_us: AtomicU64::default(),
            latency_max_us: AtomicU64::default(),
            ok_latency: std::sync::Mutex::new(coarse_histogram()),
        }
    }
}

/// A small latency histogram (µs, 1 µs .. 60 s, 2 significant digits:
/// about 20 KB), one per timeline interval.
fn coarse_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).unwrap_or_else(|_| histogram())
}

/// Percentiles of the successful requests in the timeline intervals that
/// start in `[from, to)` (`histograms` as [`Timeline::histograms`] gives
/// them, `bucket` their interval).
pub fn window_latency(
    histograms: &[Histogram<u64>],
    bucket: Duration,
    from: Duration,
    to: Duration,
) -> Latency {
    let mut merged = coarse_histogram();
    for (i, h) in histograms.iter().enumerate() {
        let start = bucket * i as u32;
        if start >= from && start < to {
            let _ = merged.add(h);
        }
    }
    Latency::of(&merged)
}

/// One interval of a timeline, as reported.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TimelinePoint {
    pub start_ms: u64,
    pub ok_count: u64,
    pub rejected_count: u64,
    pub lost_count: u64,
    pub mean_latency_us: u64,
    pub max_latency_us: u64,
}

impl Timeline {
    pub fn new(bucket: Duration, span: Duration) -> Self {
        let n = (span.as_micros() / bucket.as_micros().max(1)) as usize + 2;
        Self {
            bucket,
            buckets: (0..n).map(|_| Bucket::default()).collect(),
        }
    }

    /// Counts an outcome that completed `at` after the start.
    pub fn add(&self, at: Duration, outcome: &Outcome, latency: Duration) {
        let i = (at.as_micros() / self.bucket.as_micros().max(1)) as usize;
        let Some(b) = self.buckets.get(i.min(self.buckets.len() - 1)) else {
            return;
        };
        match outcome {
            Outcome::Ok => b.ok.fetch_add(1, Ordering::Relaxed),
            Outcome::Rejected(_) => b.rejected.fetch_add(1, Ordering::Relaxed),
            Outcome::Lost(_) => b.lost.fetch_add(1, Ordering::Relaxed),
        };
        let us = latency.as_micros() as u64;
        b.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        b.latency_max_us.fetch_max(us, Ordering::Relaxed);
        if *outcome == Outcome::Ok {
            if let Ok(mut h) = b.ok_latency.lock() {
                let _ = h.record(us.clamp(1, 60_000_000));
            }
        }
    }

    /// Each interval's histogram of successful latencies, in order.
    pub fn histograms(&self) -> Vec<Histogram<u64>> {
        self.buckets
            .iter()
            .map(|b| {
                b.ok_latency
                    .lock()
                    .map_or_else(|_| coarse_histogram(), |h| h.clone())
            })
            .collect()
    }

    pub fn points(&self) -> Vec<TimelinePoint> {
        let mut out: Vec<TimelinePoint> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let ok = b.ok.load(Ordering::Relaxed);
                let rejected = b.rejected.load(Ordering::Relaxed);
                let lost = b.lost.load(Ordering::Relaxed);
                let n = ok + rejected + lost;
                TimelinePoint {
                    start_ms: (self.bucket.as_millis() as u64) * i as u64,
                    ok_count: ok,
                    rejected_count: rejected,
                    lost_count: lost,
                    mean_latency_us: b.latency_sum_us.load(Ordering::Relaxed) / n.max(1),
                    max_latency_us: b.latency_max_us.load(Ordering::Relaxed),
                }
            })
            .collect();
        while out
            .last()
            .is_some_and(|p| p.ok_count + p.rejected_count + p.lost_count == 0)
        {
            out.pop();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_answers() {
        assert_eq!(
            classify(200, br#"{"id":"r1","jsonrpc":"2.0","result":{}}"#),
            Outcome::Ok
        );
        assert_eq!(classify(202, b""), Outcome::Ok);
        assert_eq!(
            classify(
                503,
                br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"busy"}}"#
            ),
            Outcome::Rejected("503 -32000".into())
        );
        assert_eq!(
            classify(
                200,
                br#"{"error":{"code":-32602,"message":"x"},"id":"r1","jsonrpc":"2.0"}"#
            ),
            Outcome::Rejected("200 -32602".into())
        );
        assert_eq!(
            classify(502, b"bad gateway"),
            Outcome::Rejected("502".into())
        );
    }

    #[test]
    fn timeline_buckets() {
        let t = Timeline::new(Duration::from_millis(100), Duration::from_secs(1));
        t.add(
            Duration::from_millis(50),
            &Outcome::Ok,
            Duration::from_micros(10),
        );
        t.add(
            Duration::from_millis(250),
            &Outcome::Lost("x".into()),
            Duration::from_micros(30),
        );
        let p = t.points();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].ok_count, 1);
        assert_eq!(p[2].lost_count, 1);
        assert_eq!(p[2].start_ms, 200);
    }
}
