//! Prometheus metrics of one worker: every rejection is counted with its
//! kind and filter; requests and upstream exchanges are timed.
//!
//! Each worker labels its samples with `worker="N"`; the admin listener
//! merges every worker's exposition ([`merge_expositions`]) so one scrape
//! gives the instance's numbers (sum by the other labels for totals).

use std::collections::HashMap;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Buckets of the duration histograms, in seconds: 0.5 ms to 60 s.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets of `mcp.server.operation.duration`, as the MCP semantic
/// conventions advise, in seconds.
const MCP_DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The JSON-RPC methods of both protocol revisions: the only values the
/// `method` label takes (anything else is `other`, so a client cannot grow
/// the number of series).
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
];

/// The `method` label of a JSON-RPC method name.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(if method.is_empty() { "none" } else { "other" })
}

/// The `outcome` label of an answered request, from its HTTP status.
pub fn outcome_label(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        429 => "rate_limited",
        502 | 504 => "upstream_error",
        503 => "unavailable",
        400..=499 => "refused",
        _ => "error",
    }
}

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
    /// Requests admitted and not yet finished (read when scraped).
    pub in_flight: IntGauge,
    /// Long-lived streams held (read when scraped).
    pub streams: IntGauge,
    /// The fair gate's adaptive limit on requests served at once, summed
    /// over the workers (read when scraped).
    pub fair_limit: IntGauge,
    /// Requests waiting at the fair gate (read when scraped).
    pub fair_queued: IntGauge,
    /// Whole requests, from head read to answer written, by MCP method and outcome.
    pub request_duration: HistogramVec,
    /// Upstream exchanges, from sending the request to its response head, by pool.
    pub upstream_duration: HistogramVec,
    /// Client TLS handshakes, by outcome (`ok`, `not_tls`, `timeout`, `failed`).
    pub tls_handshakes: IntCounterVec,
    /// Requests naming a target `[access]` hides from the caller, by kind
    /// (`tool`, `prompt`, `resource`) and rule (`access.rules[N]`, `access.default`).
    pub access_hidden: IntCounterVec,
    /// What shadow-mode rules would have refused, by filter and rule.
    pub shadow: IntCounterVec,
    /// Server messages the response phase changed, by outcome (`rewritten`,
    /// `replaced`, `oversize`, `unsolicited`: a response to another id or a
    /// second answer, dropped).
    pub response_messages: IntCounterVec,
    /// What listings showed against the pins (`[tools] lock_file`, `pin`),
    /// by pool, kind (`tool`, `prompt`) and outcome (`first-seen`,
    /// `changed`, `not-in-lock`, `restored`, `over-capacity`).
    pub tool_pins: IntCounterVec,
    /// `notifications/*/list_changed` seen from servers, by pool and kind.
    pub list_changed: IntCounterVec,
    /// Stdio worker processes, by pool and event (`spawned`, `exited`,
    /// `spawn_failed`).
    pub stdio_workers: IntCounterVec,
    /// What the content guards found, by pool, guard (`poisoning`,
    /// `secrets`, `pii`, `output-schema`), rule and action (`flag`, `strip`,
    /// `hide`, `redact`, `block`, `shadow-*`).
    pub content_findings: IntCounterVec,
    /// Audit records by outcome: `written`, `dropped` (the queue was full),
    /// `failed` (the file could not be written).
    pub audit_records: IntCounterVec,
    /// 1 while this worker's breaker for an endpoint is open or probing,
    /// by pool and endpoint (read when scraped).
    pub breaker_open: IntGaugeVec,
    /// 1 while an endpoint passes its health checks, by pool and endpoint
    /// (read when scraped).
    pub upstream_healthy: IntGaugeVec,
    /// `mcp.server.operation.duration` of the OpenTelemetry MCP conventions
    /// (`[traces]` on): seconds from a request's arrival to its answer, by
    /// method and `error.type` (empty when it succeeded).
    pub mcp_operation_duration: HistogramVec,
    /// Trace spans (`[traces]`) by outcome: `recorded` (sampled spans
    /// ended), `exported`, `failed` (an export the collector did not
    /// take); recorded minus the others is what the queue dropped or holds.
    pub trace_spans: IntCounterVec,
    /// Policy reloads by outcome: `ok`, `failed` (the running policy stayed).
    pub reloads: IntCounterVec,
    /// 0 after a reload that failed, 1 after one that worked (and at start).
    pub reload_success: IntGauge,
    /// Which generation of the policy this worker runs (0: the one it
    /// started with).
    pub policy_generation: IntGauge,
}

impl Metrics {
    /// The metrics of worker `worker`.
    pub fn new(worker: usize) -> Self {
        let labels = HashMap::from([("worker".to_string(), worker.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid const label");
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
                "Requests an upstream answered (response head received), by era and HTTP method",
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
        let fair_limit = IntGauge::new(
            "mcpgate_fair_limit",
            "Adaptive limit on requests served at once (fair queueing), summed over workers",
        )
        .expect("valid metric");
        let fair_queued = IntGauge::new(
            "mcpgate_fair_queued",
            "Requests waiting for a place at the fair gate",
        )
        .expect("valid metric");
        for g in [&fair_limit, &fair_queued] {
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        for c in [&rejections, &forwarded, &upstream_errors] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(sessions.clone()))
            .expect("unique metric");
        let streams =
            IntGauge::new("mcpgate_streams", "Long-lived streams held").expect("valid metric");
        registry
            .register(Box::new(streams.clone()))
            .expect("unique metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcpgate_request_duration_seconds",
                "Requests from head read to answer written, by MCP method and outcome",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["method", "outcome"],
        )
        .expect("valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcpgate_upstream_duration_seconds",
                "Upstream exchanges from request sent to response head, by pool",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["pool"],
        )
        .expect("valid metric");
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "mcpgate_tls_handshakes_total",
                "Client TLS handshakes on the MCP listener, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(tls_handshakes.clone()))
            .expect("unique metric");
        let access_hidden = IntCounterVec::new(
            Opts::new(
                "mcpgate_access_hidden_total",
                "Requests naming a tool, prompt or resource hidden from the caller by [access], by kind and rule",
            ),
            &["kind", "rule"],
        )
        .expect("valid metric");
        let shadow = IntCounterVec::new(
            Opts::new(
                "mcpgate_shadow_total",
                "What shadow-mode rules would have refused (nothing was changed), by filter and rule",
            ),
            &["filter", "rule"],
        )
        .expect("valid metric");
        let response_messages = IntCounterVec::new(
            Opts::new(
                "mcpgate_response_messages_total",
                "Server messages the response phase rewrote, replaced or dropped, by outcome",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let tool_pins = IntCounterVec::new(
            Opts::new(
                "mcpgate_tool_pins_total",
                "Listed tool and prompt definitions against their pins, by pool, kind and outcome",
            ),
            &["pool", "kind", "outcome"],
        )
        .expect("valid metric");
        let list_changed = IntCounterVec::new(
            Opts::new(
                "mcpgate_list_changed_total",
                "list_changed notifications relayed from servers, by pool and kind",
            ),
            &["pool", "kind"],
        )
        .expect("valid metric");
        let stdio_workers = IntCounterVec::new(
            Opts::new(
                "mcpgate_stdio_workers_total",
                "Stdio worker processes spawned and exited, by pool and event",
            ),
            &["pool", "event"],
        )
        .expect("valid metric");
        let content_findings = IntCounterVec::new(
            Opts::new(
                "mcpgate_content_findings_total",
                "What the content guards found in server messages, by pool, guard, rule and action",
            ),
            &["pool", "guard", "rule", "action"],
        )
        .expect("valid metric");
        let audit_records = IntCounterVec::new(
            Opts::new(
                "mcpgate_audit_records_total",
                "Audit trail records, by outcome: written, dropped (queue full), failed (write error)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let breaker_open = IntGaugeVec::new(
            Opts::new(
                "mcpgate_upstream_breaker_open",
                "1 while the worker's circuit breaker for an endpoint is open or probing",
            ),
            &["pool", "endpoint"],
        )
        .expect("valid metric");
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "mcpgate_upstream_healthy",
                "1 while an endpoint passes its health checks",
            ),
            &["pool", "endpoint"],
        )
        .expect("valid metric");
        let mcp_operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcp_server_operation_duration_seconds",
                "mcp.server.operation.duration: seconds from an MCP request's arrival to its answer, by method and error type",
            )
            .buckets(MCP_DURATION_BUCKETS.to_vec()),
            &["mcp_method_name", "error_type"],
        )
        .expect("valid metric");
        let trace_spans = IntCounterVec::new(
            Opts::new(
                "mcpgate_trace_spans_total",
                "Trace spans by outcome: recorded (sampled, ended), exported, failed (export not taken)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "mcpgate_config_reloads_total",
                "Policy reloads, by outcome: ok, failed (the running policy stayed)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let reload_success = IntGauge::new(
            "mcpgate_config_last_reload_successful",
            "1 when the last policy reload worked (or none was tried), 0 when it failed",
        )
        .expect("valid metric");
        reload_success.set(1);
        let policy_generation = IntGauge::new(
            "mcpgate_config_generation",
            "The generation of the policy a worker runs: 0 at start, one more per reload",
        )
        .expect("valid metric");
        for g in [&reload_success, &policy_generation] {
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        for g in [&breaker_open, &upstream_healthy] {
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
        }
        for c in [
            &trace_spans,
            &reloads,
            &audit_records,
            &content_findings,
            &access_hidden,
            &shadow,
            &response_messages,
            &tool_pins,
            &list_changed,
            &stdio_workers,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
        }
        for h in [
            &request_duration,
            &upstream_duration,
            &mcp_operation_duration,
        ] {
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
        }
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
            streams,
            fair_limit,
            fair_queued,
            request_duration,
            upstream_duration,
            tls_handshakes,
            access_hidden,
            shadow,
            response_messages,
            tool_pins,
            list_changed,
            stdio_workers,
            content_findings,
            audit_records,
            breaker_open,
            upstream_healthy,
            mcp_operation_duration,
            trace_spans,
            reloads,
            reload_success,
            policy_generation,
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

/// Merges the text expositions of several workers into one: each family's
/// `# HELP` and `# TYPE` once, then every worker's samples of it (they
/// differ by their `worker` label), families in first-seen order.
pub fn merge_expositions(texts: &[String]) -> String {
    struct Family<'a> {
        help: Option<&'a str>,
        kind: Option<&'a str>,
        samples: Vec<&'a str>,
    }
    let mut order: Vec<&str> = Vec::new();
    let mut families: HashMap<&str, Family> = HashMap::new();
    for text in texts {
        let mut current: Option<&str> = None;
        for line in text.lines() {
            let meta = line
                .strip_prefix("# HELP ")
                .map(|rest| (true, rest))
                .or_else(|| line.strip_prefix("# TYPE ").map(|rest| (false, rest)));
            let name = match meta {
                Some((_, rest)) => rest.split(' ').next().unwrap_or(""),
                None if line.is_empty() || line.starts_with('#') => continue,
                None => match current {
                    Some(c) => c,
                    None => continue,
                },
            };
            let family = families.entry(name).or_insert_with(|| {
                order.push(name);
                Family {
                    help: None,
                    kind: None,
                    samples: Vec::new(),
                }
            });
            match meta {
                Some((true, _)) => {
                    family.help.get_or_insert(line);
                }
                Some((false, _)) => {
                    family.kind.get_or_insert(line);
                }
                None => family.samples.push(line),
            }
            current = Some(name);
        }
    }
    let mut out = String::new();
    for name in order {
        let f = &families[name];
        for line in f.help.iter().chain(f.kind.iter()).chain(f.samples.iter()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests;
