//! Prometheus counters: every rejection is counted with its kind and filter.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub rejections: IntCounterVec,
    pub forwarded: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub sessions: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let rejections = IntCounterVec::new(
            Opts::new(
                "mcpgate_rejections_total",
                "Messages refused, by rejection kind and filter",
            ),
            &["kind", "filter"],
        )
        .expect("valid metric");
        let forwarded = IntCounterVec::new(
            Opts::new(
                "mcpgate_forwarded_total",
                "Requests forwarded upstream, by era and HTTP method",
            ),
            &["era", "method"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "mcpgate_upstream_errors_total",
                "Upstream failures, by phase",
            ),
            &["phase"],
        )
        .expect("valid metric");
        let sessions =
            IntGauge::new("mcpgate_sessions", "Legacy sessions held").expect("valid metric");
        for c in [&rejections, &forwarded, &upstream_errors] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(sessions.clone()))
            .expect("unique metric");
        Self {
            registry,
            rejections,
            forwarded,
            upstream_errors,
            sessions,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
