"""Streams through mcpgate behave as they do direct, against the demo upstream.

- SSE events are relayed as they arrive: the gap between the first progress
  event and the final result, as the client sees it, keeps most of the gap the
  upstream put between them (a whole-stream buffer would collapse it to ~0).
- GET streams resume with Last-Event-ID exactly as direct.
- A 2026-07-28 subscriptions/listen stream is acknowledged and delivers
  notifications tagged with the listen request's id.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import LEGACY, LEGACY_H, META, POST_HEADERS, init, modern_headers, note, req  # noqa: E402


@pytest.fixture(scope="module")
def routes():
    port = harness.free_port()
    up = harness.Proc("demo-upstream-streams", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}",
                                                "--notify-interval-ms", "150"])
    up.wait_port(port)
    direct = f"http://127.0.0.1:{port}/mcp"
    gate = harness.start_mcpgate(direct)
    yield {"direct": direct, "mcpgate": gate.url}
    gate.stop()
    up.stop()


def events(lines):
    """Yields (id, data) per SSE event from an httpx line iterator."""
    ev_id, data = None, []
    for line in lines:
        if line == "":
            if data or ev_id is not None:
                yield ev_id, "\n".join(data)
            ev_id, data = None, []
        elif line.startswith("id:"):
            ev_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def open_session(client: httpx.Client, url: str) -> str:
    r = client.post(url, json=init(), headers=POST_HEADERS)
    assert r.status_code == 200, r.text
    sid = r.headers["mcp-session-id"]
    assert client.post(url, json=note("notifications/initialized"), headers=LEGACY_H + [("mcp-session-id", sid)]).status_code == 202
    return sid


@pytest.mark.parametrize("route", ["direct", "mcpgate"])
def test_progress_events_arrive_as_sent(routes, route):
    url = routes[route]
    with httpx.Client(timeout=15) as c:
        sid = open_session(c, url)
        body = req("tools/call", 1, {"name": "progress", "arguments": {"steps": 4, "interval_ms": 400},
                                     "_meta": {"progressToken": "p1"}})
        seen: list[tuple[float, dict]] = []
        with c.stream("POST", url, json=body, headers=LEGACY_H + [("mcp-session-id", sid)]) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for _, data in events(r.iter_lines()):
                if data:
                    seen.append((time.monotonic(), json.loads(data)))
    progress = [t for t, m in seen if m.get("method") == "notifications/progress"]
    final = [t for t, m in seen if m.get("id") == 1]
    assert len(progress) == 4 and len(final) == 1
    # The upstream spaces the 4 events 400 ms apart: 1.2 s from first to last.
    gap = final[0] - progress[0]
    print(f"\n{route}: first progress -> result {gap:.2f}s (upstream spacing 1.2 s)")
    assert gap > 0.6, "events were held back and delivered together"


def read_get_events(client: httpx.Client, url: str, sid: str, n: int, last_event_id: str | None = None):
    headers = [("accept", "text/event-stream"), ("mcp-session-id", sid), ("mcp-protocol-version", LEGACY)]
    if last_event_id:
        headers.append(("last-event-id", last_event_id))
    got = []
    with client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, r.read()
        for ev_id, data in events(r.iter_lines()):
            if data:
                got.append((ev_id, json.loads(data)))
            if len(got) == n:
                break
    return got


@pytest.mark.parametrize("route", ["direct", "mcpgate"])
def test_get_stream_resumes_with_last_event_id(routes, route):
    url = routes[route]
    with httpx.Client(timeout=15) as c:
        sid = open_session(c, url)
        first = read_get_events(c, url, sid, 3)
        assert all(m.get("method") for _, m in first), "server-initiated notifications on the GET stream"
        ids = [i for i, _ in first]
        assert all(ids)
        time.sleep(0.4)  # events keep coming while disconnected
        resumed = read_get_events(c, url, sid, 2, last_event_id=ids[0])
        assert resumed[0][0] == ids[1], f"{route}: replay after {ids[0]} should start at {ids[1]}, got {resumed[0][0]}"
        assert resumed[0][1] == first[1][1]
        c.delete(url, headers=[("mcp-session-id", sid), ("mcp-protocol-version", LEGACY)])


@pytest.mark.parametrize("route", ["direct", "mcpgate"])
def test_subscriptions_listen(routes, route):
    url = routes[route]
    body = req("subscriptions/listen", "sub-1", {"notifications": {"toolsListChanged": True}, "_meta": META})
    got = []
    with httpx.Client(timeout=15) as c:
        with c.stream("POST", url, json=body, headers=modern_headers("subscriptions/listen")) as r:
            assert r.status_code == 200
            for _, data in events(r.iter_lines()):
                if data:
                    got.append(json.loads(data))
                if len(got) == 3:
                    break
    assert got[0]["method"] == "notifications/subscriptions/acknowledged"
    for m in got[1:]:
        assert m["method"] == "notifications/tools/list_changed"
        assert m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
