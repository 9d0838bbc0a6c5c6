//! Prometheus counters: every rejection is counted with its kind and filter.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub rejections: IntCounterVec,
    pub forwarded: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub sessions: IntGauge,
    /// Streams closed because the client read too slowly.
    pub slow_clients: IntCounter,
    /// Cancellations mcpgate sent upstream, by kind.
    pub cancels: IntCounterVec,
    /// Sessions expired for idleness.
    pub expired_sessions: IntCounter,
    /// Requests admitted and not yet finished (sampled at admission).
    pub in_flight: IntGauge,
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
        let slow_clients = IntCounter::new(
            "mcpgate_slow_client_streams_closed_total",
            "Streams closed because the client read too slowly",
        )
        .expect("valid metric");
        let cancels = IntCounterVec::new(
            Opts::new(
                "mcpgate_upstream_cancels_total",
                "Cancellations sent upstream, by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let expired_sessions = IntCounter::new(
            "mcpgate_sessions_expired_total",
            "Sessions expired for idleness",
        )
        .expect("valid metric");
        for c in [&slow_clients, &expired_sessions] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(cancels.clone()))
            .expect("unique metric");
        let in_flight = IntGauge::new("mcpgate_in_flight", "Requests admitted and not finished")
            .expect("valid metric");
        registry
            .register(Box::new(in_flight.clone()))
            .expect("unique metric");
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
            slow_clients,
            cancels,
            expired_sessions,
            in_flight,
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
