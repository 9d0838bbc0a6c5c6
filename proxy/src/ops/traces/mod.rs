//! `[traces]`: an OpenTelemetry span per MCP request, exported over
//! OTLP/HTTP (crates `opentelemetry`, `opentelemetry_sdk`,
//! `opentelemetry-otlp` 0.33; the HTTP client is [`export`]).
//!
//! Spans follow the OpenTelemetry MCP semantic conventions: a SERVER span
//! `{mcp.method.name} {target}` with `mcp.method.name`, `gen_ai.tool.name`,
//! `jsonrpc.request.id`, `mcp.protocol.version`, `mcp.session.id`,
//! `error.type` and `rpc.response.status_code`, and two children: the
//! filter chain (INTERNAL) and the upstream exchange (CLIENT).
//!
//! The trace context is decided when the request's message has been read
//! ([`Traces::begin`]): the caller's `traceparent`/`tracestate` from
//! `params._meta` (SEP-414), else from the HTTP headers; the sampling
//! decision (parent-based, else `sample_ratio`) and the span ids are fixed
//! then, so the upstream gets the exchange span's context in both places
//! before the spans exist. The spans themselves are built when the request
//! has been answered ([`Traces::finish`]), from what its note recorded,
//! with the times it recorded. Ending a span hands it to the SDK's batch
//! processor: a bounded queue drained by a thread of its own, so a
//! collector that is slow or down costs dropped spans, never a slower or
//! failed request.

pub(crate) mod export;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SamplingDecision, SdkTracer, SdkTracerProvider, ShouldSample,
};
use opentelemetry_sdk::Resource;
use policies::TracesPolicy;

use crate::ops::audit::record::{Ending, Note};
use crate::ops::worker_identity::WorkerIdentity;

/// The JSON-RPC error codes `error_type` labels keep: JSON-RPC's own, the
/// ones MCP servers commonly answer, and mcpgate's refusals (anything else
/// is `other`).
const KNOWN_CODES: &[i64] = &[
    -32700, -32600, -32601, -32602, -32603, -32000, -32001, -32002, -32010, -32013, -32014, -32015,
    -32020, -32022, -32042,
];
/// Longest text a span attribute or name carries from a request (a
/// client's method, tool name, id): spans queue, so each is bounded.
const MAX_TEXT: usize = 256;

/// Spans sent in one export.
const MAX_BATCH: usize = 512;
/// How often the queue is exported when it is not full.
const EXPORT_EVERY: Duration = Duration::from_millis(500);

/// One worker's tracer.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sampler: Sampler,
    export_timeout: Duration,
    /// `mcpgate_trace_spans_total{outcome}`.
    spans: prometheus::IntCounterVec,
}

/// The trace context of one request, fixed when its message was read.
#[derive(Debug, Clone)]
pub(crate) struct TraceIds {
    /// The caller's span, when it sent one.
    pub(crate) parent: Option<SpanContext>,
    pub(crate) trace_id: TraceId,
    /// mcpgate's SERVER span.
    pub(crate) server_span: SpanId,
    /// The upstream exchange's CLIENT span: the parent the upstream sees.
    pub(crate) client_span: SpanId,
    pub(crate) sampled: bool,
    pub(crate) state: TraceState,
}

impl TraceIds {
    /// The W3C `traceparent` the upstream gets.
    pub(crate) fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.client_span,
            u8::from(self.sampled)
        )
    }

    /// The W3C `tracestate` passed on, if the caller sent one.
    pub(crate) fn tracestate(&self) -> Option<String> {
        let s = self.state.header();
        (!s.is_empty()).then_some(s)
    }
}

/// When the stages of a request ran, for the spans.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timings {
    /// The filter chain: start, end.
    pub(crate) chain: Option<(SystemTime, SystemTime)>,
    /// The upstream exchange: start, end, and the endpoint.
    pub(crate) upstream: Option<(SystemTime, SystemTime, String)>,
}

thread_local! {
    /// Ids [`Traces::finish`] gives the spans it starts on this thread: the
    /// SDK draws every id from the provider's generator, and these spans
    /// must carry the ids the upstream was already told.
    static PRESET: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// Random ids, unless [`PRESET`] holds the next ones.
#[derive(Debug, Default)]
struct PresetIds(RandomIdGenerator);

impl IdGenerator for PresetIds {
    fn new_trace_id(&self) -> TraceId {
        let (trace, span) = PRESET.get();
        match trace {
            Some(t) => {
                PRESET.set((None, span));
                t
            }
            None => self.0.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        let (trace, span) = PRESET.get();
        match span {
            Some(s) => {
                PRESET.set((trace, None));
                s
            }
            None => self.0.new_span_id(),
        }
    }
}

impl Traces {
    /// The tracer of one worker, exporting to `policy.endpoint`.
    pub(crate) fn start(
        policy: &TracesPolicy,
        identity: &WorkerIdentity,
        spans: prometheus::IntCounterVec,
    ) -> Result<Self, String> {
        let timeout = Duration::from_millis(policy.export_timeout_ms);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(export::TcpHttpClient { timeout })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(policy.endpoint.clone())
            .with_timeout(timeout)
            .build()
            .map_err(|e| format!("[traces]: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(policy.queue)
            .with_max_export_batch_size(MAX_BATCH.min(policy.queue))
            .with_scheduled_delay(EXPORT_EVERY)
            .build();
        let exporter = export::Counted {
            inner: exporter,
            spans: spans.clone(),
        };
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let sampler = sampler(policy.sample_ratio);
        let resource = Resource::builder()
            .with_service_name(policy.service_name.clone())
            .with_attributes([
                KeyValue::new(
                    "service.instance.id",
                    format!("{}-w{}", hex::encode(identity.instance), identity.index),
                ),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler.clone())
            .with_id_generator(PresetIds::default())
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "mcpgate");
        Ok(Self {
            provider,
            tracer,
            sampler,
            export_timeout: timeout,
            spans,
        })
    }

    /// The trace context of a request whose caller sent `meta` (its
    /// `params._meta`) and `headers` (the HTTP `traceparent` and
    /// `tracestate`): the caller's span from `_meta` if it names one, else
    /// from the headers; new ids; the sampling decision.
    pub(crate) fn begin(&self, meta: [Option<&str>; 2], headers: [Option<&str>; 2]) -> TraceIds {
        let parent = remote_parent(meta).or_else(|| remote_parent(headers));
        let ids = RandomIdGenerator::default();
        let trace_id = parent
            .as_ref()
            .map_or_else(|| ids.new_trace_id(), SpanContext::trace_id);
        let parent_cx = caller_context(parent.as_ref());
        let decision = self
            .sampler
            .should_sample(Some(&parent_cx), trace_id, "", &SpanKind::Server, &[], &[])
            .decision;
        TraceIds {
            state: parent
                .as_ref()
                .map_or_else(TraceState::default, |p| p.trace_state().clone()),
            parent,
            trace_id,
            server_span: ids.new_span_id(),
            client_span: ids.new_span_id(),
            sampled: decision == SamplingDecision::RecordAndSample,
        }
    }

    /// Builds and ends the spans of an answered request (nothing when its
    /// trace is not sampled).
    pub(crate) fn finish(
        &self,
        ids: &TraceIds,
        note: &Note,
        error: Option<&(String, Option<i64>)>,
        span: (SystemTime, SystemTime),
        http_status: Option<u16>,
    ) {
        if !ids.sampled {
            return;
        }
        let method = clip(note.method.as_deref().unwrap_or("unknown"));
        let target = note.target.as_deref().map(clip);
        let name = match target {
            Some(t) => format!("{method} {t}"),
            None => method.to_string(),
        };
        let timings = &note.timings;
        let mut attributes = vec![KeyValue::new("mcp.method.name", method.to_string())];
        if let (Some(t), "tools/call") = (target, method) {
            attributes.push(KeyValue::new("gen_ai.tool.name", t.to_string()));
        }
        if let Some(id) = &note.request_id {
            attributes.push(KeyValue::new(
                "jsonrpc.request.id",
                clip(&request_id_text(id)).to_string(),
            ));
        }
        if let Some(v) = &note.protocol_version {
            attributes.push(KeyValue::new("mcp.protocol.version", clip(v).to_string()));
        }
        if let Some(s) = &note.session {
            attributes.push(KeyValue::new("mcp.session.id", clip(s).to_string()));
        }
        attributes.push(KeyValue::new("network.transport", "tcp"));
        if let Some(status) = http_status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some((kind, code)) = error {
            attributes.push(KeyValue::new("error.type", kind.clone()));
            if let Some(code) = code {
                attributes.push(KeyValue::new("rpc.response.status_code", code.to_string()));
            }
        }
        if let Some((_, filter, rule, _)) = &note.refusal {
            attributes.push(KeyValue::new("mcpgate.refusal.filter", *filter));
            attributes.push(KeyValue::new("mcpgate.refusal.rule", *rule));
        }
        let parent_cx = caller_context(ids.parent.as_ref());
        PRESET.set((Some(ids.trace_id), Some(ids.server_span)));
        let mut server = self
            .tracer
            .span_builder(name.clone())
            .with_kind(SpanKind::Server)
            .with_start_time(span.0)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent_cx);
        PRESET.set((None, None));
        if let Some((kind, _)) = error {
            server.set_status(Status::error(kind.clone()));
        }
        let server_cx = parent_cx.with_remote_span_context(server.span_context().clone());
        if let Some((from, to)) = timings.chain {
            let mut chain = self
                .tracer
                .span_builder("mcpgate filter chain")
                .with_kind(SpanKind::Internal)
                .with_start_time(from)
                .with_attributes([KeyValue::new("mcp.method.name", method.to_string())])
                .start_with_context(&self.tracer, &server_cx);
            if let Some((kind, _, _, _)) = &note.refusal {
                chain.set_status(Status::error(kind.clone()));
            }
            chain.end_with_timestamp(to);
        }
        if let Some((from, to, endpoint)) = &timings.upstream {
            PRESET.set((None, Some(ids.client_span)));
            let mut upstream = self
                .tracer
                .span_builder(name)
                .with_kind(SpanKind::Client)
                .with_start_time(*from)
                .with_attributes([
                    KeyValue::new("mcp.method.name", method.to_string()),
                    KeyValue::new("server.address", endpoint.clone()),
                ])
                .start_with_context(&self.tracer, &server_cx);
            PRESET.set((None, None));
            upstream.end_with_timestamp(*to);
        }
        server.end_with_timestamp(span.1);
        let recorded =
            1 + u64::from(timings.chain.is_some()) + u64::from(timings.upstream.is_some());
        self.spans.with_label_values(&["recorded"]).inc_by(recorded);
    }

    /// Exports what is queued and stops the exporter's thread (at a
    /// drain's end; blocks up to the export timeout and a second).
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self
            .provider
            .shutdown_with_timeout(self.export_timeout + Duration::from_secs(1))
        {
            tracing::warn!("traces: spans still queued at exit were lost: {e}");
        }
    }
}

/// After a request was answered: its duration in
/// `mcp.server.operation.duration` (every request whose message was read),
/// and its spans when its trace is sampled.
pub(crate) fn record(
    traces: &Traces,
    metrics: &crate::ops::metrics::Metrics,
    note: &Note,
    began: SystemTime,
    http_status: Option<u16>,
) {
    let ended = SystemTime::now();
    let Some(method) = note.method.as_deref() else {
        return;
    };
    let error = error_type(note);
    let error_label = match &error {
        None => String::new(),
        // Known codes only: a label must not take any value a server chooses.
        Some((_, Some(code))) if !KNOWN_CODES.contains(code) => "other".into(),
        Some((kind, _)) => kind.clone(),
    };
    metrics
        .mcp_operation_duration
        .with_label_values(&[crate::ops::metrics::method_label(method), &error_label])
        .observe(
            ended
                .duration_since(began)
                .unwrap_or_default()
                .as_secs_f64(),
        );
    if let Some(ids) = &note.trace {
        traces.finish(ids, note, error.as_ref(), (began, ended), http_status);
    }
}

/// The context a request's SERVER span starts in: the caller's span, if
/// it sent one.
fn caller_context(parent: Option<&SpanContext>) -> Context {
    parent.map_or_else(Context::new, |sc| {
        Context::new().with_remote_span_context(sc.clone())
    })
}

/// Parent-based: a caller's sampled flag decides; a new trace is recorded
/// with probability `ratio`.
fn sampler(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

/// The caller's span from a `traceparent` and `tracestate` pair (W3C
/// syntax, parsed by the SDK's propagator); `None` when absent or invalid.
fn remote_parent([traceparent, tracestate]: [Option<&str>; 2]) -> Option<SpanContext> {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), traceparent?.to_string());
    if let Some(s) = tracestate {
        carrier.insert("tracestate".to_string(), s.to_string());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `error.type` (and the JSON-RPC code, for `rpc.response.status_code`):
/// the refusal's JSON-RPC code, a server's JSON-RPC error code, `tool_error`
/// for a tool's own failure, or how mcpgate gave up.
fn error_type(note: &Note) -> Option<(String, Option<i64>)> {
    if let Some((_, _, _, code)) = &note.refusal {
        return Some((code.to_string(), Some(i64::from(*code))));
    }
    match note.ending? {
        Ending::Error(code) => Some((code.to_string(), Some(code))),
        Ending::ToolError => Some(("tool_error".into(), None)),
        Ending::Deadline => Some(("timeout".into(), None)),
        Ending::UpstreamFailed => Some(("upstream_failed".into(), None)),
        Ending::OverCap => Some(("result_over_cap".into(), None)),
        Ending::ClientGone => Some(("client_gone".into(), None)),
        Ending::Result | Ending::Relayed => None,
    }
}

/// `s` cut to at most [`MAX_TEXT`] bytes (at a character boundary).
fn clip(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A JSON-RPC id as the conventions write it: its text.
fn request_id_text(id: &filters::RequestId) -> String {
    match id.to_json() {
        serde_json::Value::String(s) => s,
        v => v.to_string(),
    }
}
