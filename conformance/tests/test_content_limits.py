"""What a hostile server sends back, through the real binary: answers
nobody asked for, second answers, oversized results, long and endless
streams (`[content.limits]`), secrets cut across writes and `data:` lines.

The upstream is conformance/upstreams/raw_hostile_server.py, raw HTTP/1.1,
because no SDK server misbehaves on purpose; it records every message it
receives, so a test can see the cancellation mcpgate sent. Clients: raw HTTP
where the exact wire answer matters, the official Python and TypeScript SDKs
for what a real client makes of it.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
import pytest

import harness
from harness import metric, records
from conftest import run_json
from negative.cases import modern, modern_headers
from raw_session import RawSession, messages

GITHUB_TOKEN = "ghp_" + "x7Hk2mP9qR4tW8yZ3bN6cV1dF5gJ0sLaE2uI"
AWS_KEY = "AKIA" + "QYLPMN5HFIQR7BXA"


@pytest.fixture(scope="module")
def hostile():
    upstream, record = harness.start_raw_hostile()
    yield upstream, record
    upstream.stop()


gate = harness.start_mcpgate_admin
metrics = harness.scrape
wait_for = harness.wait_for


def call(s: RawSession, tool: str, args: dict | None = None) -> tuple[httpx.Response, list[dict]]:
    """The HTTP answer to one tools/call and every JSON-RPC message in it."""
    s.next_id += 1
    r = s.post({"jsonrpc": "2.0", "id": s.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": args or {}}})
    return r, messages(r)


def cancels(record, since: int) -> list[dict]:
    return [r for r in records(record)[since:] if r["method"] == "notifications/cancelled"]


def test_only_the_requests_one_answer_reaches_the_client(hostile):
    upstream, _ = hostile
    # Any [content] table puts every answer through the response phase.
    g, admin = gate(upstream.url, "[content.limits]\n")
    try:
        s = RawSession(g.url)
        r, sse = call(s, "stray_sse")
        r2, body = call(s, "stray_json")
        m = metrics(admin)
        log = g.proc.log.read_text()
    finally:
        g.stop()
    # On a stream: another id's answer and the second answer are dropped.
    assert r.headers["content-type"].startswith("text/event-stream")
    assert [m_["result"]["content"][0]["text"] for m_ in sse] == ["real answer"], sse
    assert all(m_["id"] == s.next_id - 1 for m_ in sse)
    # As a JSON body: an error with the request's own id.
    (answer,) = body
    assert answer["id"] == s.next_id and answer["error"]["code"] == -32603, answer
    assert answer["error"]["data"]["rule"] == "unsolicited-response"
    assert metric(m, "mcpgate_response_messages_total", outcome="unsolicited") == 3
    assert "dropped server responses to another request id" in log


def test_without_content_tables_answers_pass_as_sent(hostile):
    """The response phase is opt-in: with no [content] table the stream is
    relayed byte for byte (stray answers included)."""
    upstream, _ = hostile
    g, _ = gate(upstream.url, "")
    try:
        s = RawSession(g.url)
        _, sse = call(s, "stray_sse")
    finally:
        g.stop()
    assert [m_["id"] for m_ in sse] == ["not-yours-1", s.next_id, s.next_id]


LIMITS = ("[content.limits]\nmax_result_bytes = 32768\nmax_stream_events = 20\n"
          "[content.limits.tools.big]\nmax_result_bytes = 200000\n")


def test_results_over_their_cap_become_errors_and_are_cancelled(hostile):
    upstream, record = hostile
    g, admin = gate(upstream.url, LIMITS)
    try:
        s = RawSession(g.url)
        _, small = call(s, "big", {"bytes": 1000})
        _, tool_cap = call(s, "big", {"bytes": 150000})
        _, over_tool_cap = call(s, "big", {"bytes": 300000})
        before = len(records(record))
        _, stream = call(s, "big_stream", {"bytes": 100000})
        big_stream_id = s.next_id
        _, chatty_ok = call(s, "chatty", {"events": 10})
        _, chatty = call(s, "chatty", {"events": 500})
        chatty_id = s.next_id
        # (Cancellations are sent in the background: wait for both.)
        sent = wait_for(lambda: {big_stream_id, chatty_id}
                        <= {c["params"]["requestId"] for c in cancels(record, before)}
                        and cancels(record, before))
        # The session goes on after each.
        _, echo = call(s, "echo", {"text": "still here"})
        m = metrics(admin)
        log = g.proc.log.read_text()
    finally:
        g.stop()
    assert small[0]["result"]["content"][0]["text"] == "x" * 1000
    # A tool's own cap is over the section's.
    assert len(tool_cap[0]["result"]["content"][0]["text"]) == 150000
    err = over_tool_cap[0]["error"]
    assert err["code"] == -32603 and err["data"] == {"rule": "result-too-large", "cap": "max_result_bytes",
                                                     "limit": 200000}, err
    # On a stream: what came before passes, the error ends it.
    assert stream[0]["method"] == "notifications/progress"
    assert stream[-1]["id"] == big_stream_id and stream[-1]["error"]["data"]["rule"] == "result-too-large"
    assert len(stream) == 2
    assert chatty_ok[-1]["result"]["content"][0]["text"] == "chatty done"
    assert len(chatty) == 21 and chatty[-1]["id"] == chatty_id
    assert chatty[-1]["error"]["data"] == {"rule": "too-many-events", "cap": "max_stream_events", "limit": 20}
    # The server was told, for the requests whose answer was still coming.
    ids = {c["params"]["requestId"] for c in sent}
    assert {big_stream_id, chatty_id} <= ids, sent
    assert all("cap" in c["params"]["reason"] for c in sent)
    assert echo[0]["result"]["content"][0]["text"] == "still here"
    assert metric(m, "mcpgate_content_findings_total", guard="limits", rule="result-too-large", action="block") == 2
    assert metric(m, "mcpgate_content_findings_total", guard="limits", rule="too-many-events", action="block") == 1
    assert "passed its limits rule too-many-events" in log


def test_an_endless_stream_is_cut_and_cancelled(hostile):
    upstream, record = hostile
    g, _ = gate(upstream.url, "[content.limits]\nmax_stream_events = 30\n")
    try:
        s = RawSession(g.url)
        before = len(records(record))
        started = time.monotonic()
        _, endless = call(s, "endless")
        took = time.monotonic() - started
        closed = wait_for(lambda: [r for r in records(record)[before:]
                                   if r["method"] == "(stream closed by peer)"])
        sent = cancels(record, before)
    finally:
        g.stop()
    assert len(endless) == 31 and endless[-1]["error"]["data"]["rule"] == "too-many-events"
    # The server's stream ran 30 s if nobody stopped it.
    assert took < 20, took
    assert closed and closed[0]["tool"] == "endless", records(record)[before:]
    assert [c["params"]["requestId"] for c in sent] == [s.next_id]


def test_secrets_cut_across_writes_and_data_lines(hostile):
    """Each event is judged whole, however its bytes arrive: 7-byte writes,
    JSON spread over several `data:` lines; the log notification before the
    answer is judged too."""
    upstream, _ = hostile
    for action in ("redact", "block"):
        g, admin = gate(upstream.url, f'[content.secrets]\naction = "{action}"\n')
        try:
            s = RawSession(g.url)
            r, got = call(s, "split_secret")
            m = metrics(admin)
        finally:
            g.stop()
        wire = r.text
        assert GITHUB_TOKEN not in wire and AWS_KEY not in wire and "PRIVATE KEY-----\n" not in wire, wire
        note, answer = got
        assert note["params"]["data"] == {"note": "rotating", "key": "[REDACTED:aws-access-key]"}
        if action == "redact":
            assert answer["result"]["content"][0]["text"] == \
                "token [REDACTED:github-token]\n[REDACTED:private-key]\nend"
        else:
            assert answer["error"]["code"] == -32017 and answer["error"]["data"]["rule"] == "github-token"
        assert metric(m, "mcpgate_content_findings_total", guard="secrets", rule="aws-access-key",
                      action="redact") == 1


def test_sdk_clients_get_an_error_for_the_capped_request_and_go_on(hostile):
    upstream, _ = hostile
    g, _ = gate(upstream.url, LIMITS + "[content.secrets]\n")
    try:
        stray, chatty, big, echo = anyio.run(harness.sdk_calls, g.url, "legacy", ("stray_sse", {}), ("chatty", {"events": 100}),
                                              ("big", {"bytes": 300000}), ("echo", {"text": "after"}))
        ts = {}
        for tool in ("chatty", "stray_sse", "split_secret"):
            rc, out, err = run_json([harness.NODE22, harness.CLIENTS / "ts_governed.mjs", g.url, "-",
                                             tool])
            assert rc == 0, (tool, out.get("error"), err)
            ts[tool] = out["call"]
    finally:
        g.stop()
    from mcp.shared.exceptions import MCPError
    assert stray.content[0].text == "real answer"
    assert isinstance(chatty, MCPError) and chatty.error.data["rule"] == "too-many-events", chatty
    assert isinstance(big, MCPError) and big.error.data["rule"] == "result-too-large", big
    assert echo.content[0].text == "after"
    # The TypeScript SDK: chatty's default 50 events pass the cap of 20.
    assert ts["chatty"].get("thrown") and ts["chatty"]["code"] == -32603, ts["chatty"]
    assert ts["stray_sse"]["text"] == ["real answer"], ts["stray_sse"]
    assert ts["split_secret"]["text"] == ["token [REDACTED:github-token]\n[REDACTED:private-key]\nend"]


def test_the_same_for_stateless_requests(hostile):
    """2026-07-28: no session; the cancellation is the closed stream."""
    upstream, record = hostile
    g, _ = gate(upstream.url, LIMITS)
    try:
        def post(tool: str, args: dict, id_: int) -> list[dict]:
            body = modern("tools/call", {"name": tool, "arguments": args}, id_=id_)
            r = httpx.post(g.url, json=body, headers=dict(modern_headers("tools/call", tool)), timeout=30)
            assert r.status_code == 200, r.text
            return messages(r)
        before = len(records(record))
        stray = post("stray_sse", {}, 1)
        chatty = post("chatty", {"events": 500}, 2)
        big = post("big", {"bytes": 300000}, 3)
        endless = post("endless", {}, 4)
        def closed_tools():
            return {r["tool"] for r in records(record)[before:] if r["method"] == "(stream closed by peer)"}
        # (chatty may have written all its 500 events into the socket
        # buffers before the cut: only the endless stream must see it.)
        closed = wait_for(lambda: "endless" in closed_tools() and closed_tools())
    finally:
        g.stop()
    assert [m_.get("id") for m_ in stray] == [1] and stray[0]["result"]["content"][0]["text"] == "real answer"
    assert chatty[-1]["id"] == 2 and chatty[-1]["error"]["data"]["rule"] == "too-many-events" and len(chatty) == 21
    assert big[0]["id"] == 3 and big[0]["error"]["data"]["rule"] == "result-too-large"
    assert endless[-1]["id"] == 4 and endless[-1]["error"]["data"]["rule"] == "too-many-events"
    assert closed and "endless" in closed, closed
    assert not cancels(record, before), "a stateless request has no session to cancel on"
