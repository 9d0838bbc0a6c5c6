"""OpenTelemetry traces (`[traces]`) of the real binary, received by an
OTLP/HTTP receiver built on the official OpenTelemetry protobuf
definitions (conformance/upstreams/otlp_receiver.py, PyPI
`opentelemetry-proto`): span names, attributes and parentage after the MCP
semantic conventions, the caller's trace context taken from `params._meta`
(SEP-414) or the HTTP headers and passed on upstream in both, sampling,
and a collector that hangs costing no request anything.

Upstreams: the raw hostile server (2025-11-25; it records the `_meta` and
the trace headers it gets) and the hostile Python SDK server (2026-07-28
stateless calls).
"""

from __future__ import annotations

import subprocess
import threading

import httpx
import pytest

import harness
from harness import metric, records
from negative.cases import modern, modern_headers
from raw_session import RawSession, messages

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
BIG = 123456789012345678901234567890
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def raw():
    upstream, record = harness.start_raw_hostile()
    yield upstream, record
    upstream.stop()


@pytest.fixture(scope="module")
def sdk():
    upstream, _ = harness.start_hostile()
    yield upstream
    upstream.stop()


def traced(upstream_url: str, receiver_port: int, more: str = ""):
    return harness.start_mcpgate_admin(
        upstream_url,
        f'[traces]\nendpoint = "http://127.0.0.1:{receiver_port}/v1/traces"\n'
        f'service_name = "mcpgate-test"\n{more}',
        workers=1)


def spans_of(record, trace_id: str, want: int) -> list[dict]:
    """The spans of `trace_id` once `want` of them arrived (the batch
    processor exports every 500 ms)."""
    got = harness.wait_for(lambda: [s for s in records(record) if s["trace_id"] == trace_id]
                           if len([s for s in records(record) if s["trace_id"] == trace_id]) >= want else None,
                           timeout=15)
    return got or [s for s in records(record) if s["trace_id"] == trace_id]


def by_kind(spans: list[dict]) -> dict[str, dict]:
    return {s["kind"]: s for s in spans}


def all_exported(metrics_text: str) -> str | None:
    """The scrape, once every span recorded was exported."""
    def n(outcome: str) -> float:
        return metric(metrics_text, "mcpgate_trace_spans_total", outcome=outcome)
    return metrics_text if n("exported") == n("recorded") else None


def call_with_meta(s: RawSession, tool: str, args: dict, meta: dict) -> dict:
    s.next_id += 1
    r = s.post({"jsonrpc": "2.0", "id": s.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": args, "_meta": meta}})
    assert r.status_code == 200, r.text
    (answer,) = [m for m in messages(r) if m.get("id") == s.next_id]
    return answer


def upstream_saw(record, tool: str, text: str) -> dict:
    return next(r for r in records(record) if r["method"] == "tools/call"
                and r["params"]["name"] == tool and r["params"].get("arguments", {}).get("text") == text)


def test_a_call_joins_the_callers_trace_from_meta_and_passes_it_on(raw):
    upstream, up_record = raw
    receiver, spans = harness.start_otlp_receiver()
    g, admin = traced(upstream.url, receiver.port)
    try:
        s = RawSession(g.url)
        answer = call_with_meta(s, "echo", {"text": "traced", "n": BIG, "z": 1, "a": 2.5}, {
            "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=abc"})
        got = spans_of(spans, TRACE, 3)
        seen = upstream_saw(up_record, "echo", "traced")
        # Every span recorded was exported (initialize's, the notification's, the call's).
        m = harness.wait_for(lambda: all_exported(harness.scrape(admin)))
    finally:
        g.stop()
        receiver.stop()
    assert answer["result"]["content"][0]["text"] == "traced"
    kinds = by_kind(got)
    assert sorted(kinds) == ["CLIENT", "INTERNAL", "SERVER"], got
    server, chain, client = kinds["SERVER"], kinds["INTERNAL"], kinds["CLIENT"]
    # The SERVER span: named and attributed after the MCP conventions, a
    # child of the caller's span.
    assert server["name"] == "tools/call echo"
    assert server["parent_span_id"] == CALLER_SPAN
    assert server["service"] == "mcpgate-test"
    a = server["attributes"]
    assert a["mcp.method.name"] == "tools/call"
    assert a["gen_ai.tool.name"] == "echo"
    assert a["jsonrpc.request.id"] == str(s.next_id)
    assert a["mcp.protocol.version"] == "2025-11-25"
    assert a["mcp.session.id"] == s.sid
    assert "error.type" not in a and server["status"] != "ERROR"
    # The filter chain and the upstream exchange are its children.
    assert chain["name"] == "mcpgate filter chain" and chain["parent_span_id"] == server["span_id"]
    assert client["name"] == "tools/call echo" and client["parent_span_id"] == server["span_id"]
    assert server["start_ns"] <= chain["start_ns"] <= client["start_ns"] <= client["end_ns"] <= server["end_ns"]
    # The upstream got the exchange span as its parent, in _meta and in the headers.
    parent = f"00-{TRACE}-{client['span_id']}-01"
    assert seen["params"]["_meta"]["traceparent"] == parent, seen
    assert seen["params"]["_meta"]["tracestate"] == "vendor=abc"
    assert seen["trace_headers"] == {"traceparent": parent, "tracestate": "vendor=abc"}
    # Only _meta changed: the arguments arrive as written (no integer
    # re-encoded as a float).
    assert seen["params"]["arguments"] == {"text": "traced", "n": BIG, "z": 1, "a": 2.5}
    assert metric(m, "mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call") >= 1
    assert metric(m, "mcpgate_trace_spans_total", outcome="recorded") >= 9


def test_the_http_header_carries_the_context_when_meta_does_not(raw):
    upstream, up_record = raw
    receiver, spans = harness.start_otlp_receiver()
    g, _ = traced(upstream.url, receiver.port)
    trace = "0af7651916cd43dd8448eb211c80319c"
    try:
        s = RawSession(g.url)
        s.next_id += 1
        r = s.http.post(g.url, json={"jsonrpc": "2.0", "id": s.next_id, "method": "tools/call",
                                     "params": {"name": "echo", "arguments": {"text": "by header"}}},
                        headers={**s.headers(), "traceparent": f"00-{trace}-b7ad6b7169203331-01"})
        assert r.status_code == 200, r.text
        got = spans_of(spans, trace, 3)
        seen = upstream_saw(up_record, "echo", "by header")
    finally:
        g.stop()
        receiver.stop()
    server = by_kind(got)["SERVER"]
    client = by_kind(got)["CLIENT"]
    assert server["parent_span_id"] == "b7ad6b7169203331"
    assert seen["params"]["_meta"]["traceparent"] == f"00-{trace}-{client['span_id']}-01"
    assert seen["trace_headers"]["traceparent"] == f"00-{trace}-{client['span_id']}-01"
    assert "tracestate" not in seen["trace_headers"]


def test_a_call_without_context_starts_a_trace_the_upstream_joins(raw):
    upstream, up_record = raw
    receiver, spans = harness.start_otlp_receiver()
    g, _ = traced(upstream.url, receiver.port)
    try:
        s = RawSession(g.url)
        call_with_meta(s, "echo", {"text": "no context"}, {})
        seen = upstream_saw(up_record, "echo", "no context")
        _, trace, client_span, flags = seen["params"]["_meta"]["traceparent"].split("-")
        got = spans_of(spans, trace, 3)
    finally:
        g.stop()
        receiver.stop()
    kinds = by_kind(got)
    assert flags == "01"
    assert kinds["SERVER"]["parent_span_id"] == ""
    assert kinds["CLIENT"]["span_id"] == client_span
    assert kinds["CLIENT"]["parent_span_id"] == kinds["SERVER"]["span_id"]
    assert seen["trace_headers"]["traceparent"] == seen["params"]["_meta"]["traceparent"]


def test_a_server_error_is_the_spans_error_type(raw):
    upstream, _ = raw
    receiver, spans = harness.start_otlp_receiver()
    g, admin = traced(upstream.url, receiver.port)
    trace = "11111111111111111111111111111111"
    try:
        s = RawSession(g.url)
        answer = call_with_meta(s, "no_such_tool", {}, {"traceparent": f"00-{trace}-2222222222222222-01"})
        got = spans_of(spans, trace, 3)
        m = harness.scrape(admin)
    finally:
        g.stop()
        receiver.stop()
    assert answer["error"]["code"] == -32602
    server = by_kind(got)["SERVER"]
    assert server["attributes"]["error.type"] == "-32602"
    assert server["attributes"]["rpc.response.status_code"] == "-32602"
    assert server["status"] == "ERROR"
    assert metric(m, "mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call",
                  error_type="-32602") == 1


def test_stateless_calls_are_traced_with_their_revision(sdk):
    receiver, spans = harness.start_otlp_receiver()
    g, _ = traced(sdk.url, receiver.port)
    trace = "33333333333333333333333333333333"
    try:
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
                "traceparent": f"00-{trace}-4444444444444444-01"}
        body = modern("tools/call", {"name": "echo", "arguments": {"text": "modern"}}, meta=meta, id_="m-1")
        r = httpx.post(g.url, json=body, headers=dict(modern_headers("tools/call", "echo")), timeout=30)
        got = spans_of(spans, trace, 3)
    finally:
        g.stop()
        receiver.stop()
    assert r.status_code == 200, r.text
    server = by_kind(got)["SERVER"]
    assert server["name"] == "tools/call echo"
    assert server["attributes"]["mcp.protocol.version"] == "2026-07-28"
    assert server["attributes"]["jsonrpc.request.id"] == "m-1"
    assert "mcp.session.id" not in server["attributes"]
    assert server["parent_span_id"] == "4444444444444444"


def test_sampling_ratio_zero_records_only_what_a_caller_sampled(raw):
    upstream, up_record = raw
    receiver, spans = harness.start_otlp_receiver()
    g, _ = traced(upstream.url, receiver.port, "sample_ratio = 0.0\n")
    sampled, unsampled = "55555555555555555555555555555555", "66666666666666666666666666666666"
    try:
        s = RawSession(g.url)
        call_with_meta(s, "echo", {"text": "new trace"}, {})
        call_with_meta(s, "echo", {"text": "caller sampled"}, {"traceparent": f"00-{sampled}-7777777777777777-01"})
        call_with_meta(s, "echo", {"text": "caller did not"}, {"traceparent": f"00-{unsampled}-8888888888888888-00"})
        got = spans_of(spans, sampled, 3)
        not_sampled = upstream_saw(up_record, "echo", "caller did not")
        fresh = upstream_saw(up_record, "echo", "new trace")
    finally:
        # The drain exports whatever is still queued.
        g.stop()
        everything = records(spans)
        receiver.stop()
    assert len(got) == 3
    # Only the caller-sampled trace was recorded and exported.
    assert {sp["trace_id"] for sp in everything} == {sampled}, everything
    # Unsampled traces still go on upstream, flagged 00.
    assert not_sampled["params"]["_meta"]["traceparent"].startswith(f"00-{unsampled}-")
    assert not_sampled["params"]["_meta"]["traceparent"].endswith("-00")
    assert fresh["params"]["_meta"]["traceparent"].endswith("-00")


def test_a_collector_that_hangs_costs_no_request_anything(raw):
    """The collector accepts and never answers: every request is answered
    within a 2-second client timeout while spans queue and drop."""
    upstream, _ = raw
    receiver, _ = harness.start_otlp_receiver("--hang")
    g, admin = traced(upstream.url, receiver.port, "queue = 16\nexport_timeout_ms = 60000\n")
    outcomes: list[object] = []
    try:
        s = RawSession(g.url, http=httpx.Client(timeout=2))

        def lane(n: int):
            c = RawSession(g.url, http=httpx.Client(timeout=2))
            for i in range(50):
                try:
                    a = call_with_meta(c, "echo", {"text": f"{n}-{i}"}, {})
                    outcomes.append(a["result"]["content"][0]["text"] == f"{n}-{i}")
                except httpx.HTTPError as e:
                    outcomes.append(type(e).__name__)

        lanes = [threading.Thread(target=lane, args=(n,)) for n in range(4)]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join(timeout=120)
        after = call_with_meta(s, "echo", {"text": "still fine"}, {})
        m = harness.scrape(admin)
    finally:
        g.stop()
        receiver.stop()
    assert outcomes == [True] * 200, [o for o in outcomes if o is not True][:5]
    assert after["result"]["content"][0]["text"] == "still fine"
    assert metric(m, "mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call") >= 201
    # The spans were recorded; none could be exported (the queue of 16
    # dropped the rest while the one export in flight hangs).
    assert metric(m, "mcpgate_trace_spans_total", outcome="recorded") >= 603
    assert metric(m, "mcpgate_trace_spans_total", outcome="exported") == 0


def test_a_bad_traces_table_is_refused_with_its_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[upstream]\nurl = "http://127.0.0.1:9/mcp"\n'
                   '[traces]\nendpoint = "https://c/v1/traces"\nsample_ratio = 2\n')
    r = subprocess.run([str(harness.mcpgate_bin()), "check", "--config", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "traces.endpoint" in r.stderr and "traces.sample_ratio" in r.stderr, r.stderr
