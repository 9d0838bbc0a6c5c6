//! `[traces]`: OpenTelemetry spans of every MCP request, exported over
//! OTLP/HTTP (protobuf) to a collector.
//!
//! Spans follow the OpenTelemetry MCP semantic conventions. A request
//! joins the trace its caller started (W3C `traceparent`/`tracestate`, from
//! `params._meta` or the HTTP headers) and passes it on upstream. Export
//! runs off the request path, on a bounded queue: a collector that is slow
//! or down costs dropped spans, never a slower or failed request. Off when
//! the table is absent.

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// The compiled `[traces]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesPolicy {
    /// The collector's OTLP/HTTP traces URL (`http://`, usually ending in
    /// `/v1/traces`).
    pub endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of new traces recorded (0.0..=1.0); a request whose caller
    /// sampled its trace is always recorded, one whose caller did not never.
    pub sample_ratio: f64,
    /// Spans each worker holds for export; more are dropped (the SDK's
    /// queue, allocated whole at start: hence the bound of 65536).
    pub queue: usize,
    /// Longest an export may take before it is abandoned.
    pub export_timeout_ms: u64,
}

/// Reads `[traces]` (`None` when absent; `endpoint` is required).
pub(crate) fn read_traces(r: &mut Reader, t: Option<&dyn TableLike>) -> Option<TracesPolicy> {
    const P: &str = "traces";
    let t = t?;
    r.deny_unknown(t, P, P);
    let endpoint = r.opt_string(t, "endpoint", P);
    match endpoint.as_deref() {
        None if t.get("endpoint").is_none() => {
            r.error(
                None,
                &join(P, "endpoint"),
                "required: the collector's OTLP/HTTP traces URL",
            );
        }
        Some(e) if !e.starts_with("http://") || e.len() <= "http://".len() => r.error(
            Reader::span_of(t, "endpoint"),
            &join(P, "endpoint"),
            "must be an http:// URL (for example http://127.0.0.1:4318/v1/traces)",
        ),
        _ => {}
    }
    let policy = TracesPolicy {
        endpoint: endpoint.clone().unwrap_or_default(),
        service_name: r.string(t, "service_name", P, "mcpgate"),
        sample_ratio: r.ratio(t, "sample_ratio", P, 1.0),
        queue: r.integer(t, "queue", P, 2048, 1..=1 << 16) as usize,
        export_timeout_ms: r.integer(t, "export_timeout_ms", P, 5000, 100..=60_000) as u64,
    };
    endpoint
        .filter(|e| e.starts_with("http://") && e.len() > "http://".len())
        .map(|_| policy)
}

#[cfg(test)]
mod tests {
    use crate::testutil::{error_at, ok};

    #[test]
    fn absent_is_off_and_defaults_are_bounded() {
        assert!(ok("").traces.is_none());
        let t = ok("[traces]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n")
            .traces
            .unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(t.service_name, "mcpgate");
        assert_eq!(t.sample_ratio, 1.0);
        assert_eq!((t.queue, t.export_timeout_ms), (2048, 5000));
        let t = ok(
            "[traces]\nendpoint = \"http://c:4318/v1/traces\"\nsample_ratio = 0.25\n\
                    service_name = \"edge\"\nqueue = 10\nexport_timeout_ms = 200\n",
        )
        .traces
        .unwrap();
        assert_eq!(
            (t.sample_ratio, t.queue, t.export_timeout_ms),
            (0.25, 10, 200)
        );
        assert_eq!(t.service_name, "edge");
        assert_eq!(
            ok("[traces]\nendpoint = \"http://c/\"\nsample_ratio = 0\n")
                .traces
                .unwrap()
                .sample_ratio,
            0.0
        );
    }

    #[test]
    fn wrong_values_are_errors() {
        assert!(error_at("[traces]\n", "traces.endpoint")
            .1
            .contains("required"));
        assert!(error_at(
            "[traces]\nendpoint = \"https://c/v1/traces\"\n",
            "traces.endpoint"
        )
        .1
        .contains("http://"));
        assert!(error_at(
            "[traces]\nendpoint = \"http://c/\"\nsample_ratio = 1.5\n",
            "traces.sample_ratio"
        )
        .1
        .contains("out of range"));
        assert!(error_at(
            "[traces]\nendpoint = \"http://c/\"\nsample_ratio = \"all\"\n",
            "traces.sample_ratio"
        )
        .1
        .contains("expected a number"));
        assert!(error_at(
            "[traces]\nendpoint = \"http://c/\"\nbogus = 1\n",
            "traces.bogus"
        )
        .1
        .contains("unknown"));
    }
}
