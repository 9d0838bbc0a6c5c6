"""The admin listener of a 2-worker instance (issue 10, items 11 and 12).

- `/metrics` gives the instance's numbers: every worker's samples, labelled
  with `worker`, so rejections counted by worker 1 are not lost.
- `mcpgate_in_flight` goes back to 0; `mcpgate_forwarded_total` counts only
  requests an upstream answered; request and upstream duration histograms.
- `/livez` (and `/healthz`) answer while the process serves; `/readyz`
  answers 503 when a pool has no healthy endpoint.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import modern, modern_headers  # noqa: E402

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metrics(admin: str) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{admin}/metrics", timeout=10).text
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    # One family's samples are never split (a Prometheus parser refuses that).
    families = [l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")]
    assert len(families) == len(set(families)), "a metric family appears twice"
    return out


def total(samples, name: str, **want: str) -> float:
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in want.items()))


def start(upstream_url: str, health: str = "") -> tuple[harness.Upstream, str]:
    port, admin = harness.free_port(), harness.free_port()
    extra = health + f'\n[admin]\naddress = "127.0.0.1:{admin}"\n'
    cfg = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\nexpose_worker_header = true\n'
        f'[upstream]\nurl = "{upstream_url}"\n{extra}'
    )
    gate = harness.start_mcpgate_with(cfg, port, workers=2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{admin}/livez", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return gate, f"http://127.0.0.1:{admin}"


@pytest.fixture(scope="module")
def upstream():
    with harness.Proc("demo-upstream-admin", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{(p := harness.free_port())}"]) as proc:
        proc.wait_port(p)
        yield f"http://127.0.0.1:{p}/mcp"


@pytest.fixture(scope="module")
def gate(upstream):
    g, admin = start(upstream)
    yield g, admin
    g.stop()


def post_on_worker(url: str, worker: int, body: bytes, headers, tries: int = 200) -> tuple[httpx.Response, int]:
    """Posts `body` on new connections until worker `worker` answers; returns
    its answer and how many requests were sent in all."""
    for sent in range(1, tries + 1):
        with httpx.Client(timeout=10) as c:
            r = c.post(url, content=body, headers=headers)
        if r.headers.get("x-mcpgate-worker") == str(worker):
            return r, sent
    raise AssertionError(f"worker {worker} never answered")


def test_metrics_are_the_whole_instances(gate):
    g, admin = gate
    before = total(metrics(admin), "mcpgate_rejections_total")
    refused = 0
    for worker in (0, 1):
        for _ in range(3):
            r, sent = post_on_worker(g.url, worker, b"{not json", modern_headers("tools/list"))
            assert r.status_code == 400
            refused += sent
    samples = metrics(admin)
    workers = {l.get("worker") for n, l, _ in samples if n == "mcpgate_rejections_total"}
    assert workers == {"0", "1"}, f"rejections of both workers, got {workers}"
    assert total(samples, "mcpgate_rejections_total") - before == refused


def test_in_flight_goes_back_to_zero_and_histograms_count(gate):
    g, admin = gate
    call = modern("tools/call", {"name": "payload", "arguments": {"size": 10, "delay_ms": 1500}})
    headers = modern_headers("tools/call", "payload")
    done: list[int] = []
    threads = [threading.Thread(target=lambda: done.append(httpx.post(g.url, json=call, headers=headers, timeout=10).status_code))
               for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.7)
    during = total(metrics(admin), "mcpgate_in_flight")
    for t in threads:
        t.join()
    assert done == [200] * 4
    samples = metrics(admin)
    assert during >= 1, "calls in flight are seen while they run"
    assert total(samples, "mcpgate_in_flight") == 0, "in flight after every call finished"
    assert total(samples, "mcpgate_request_duration_seconds_count", method="tools/call", outcome="ok") >= 4
    slow = total(samples, "mcpgate_request_duration_seconds_bucket", method="tools/call", outcome="ok", le="1")
    assert slow < total(samples, "mcpgate_request_duration_seconds_count", method="tools/call", outcome="ok"), \
        "1.5 s calls fall above the 1 s bucket"
    assert total(samples, "mcpgate_upstream_duration_seconds_count", pool="default") >= 4
    assert total(samples, "mcpgate_request_duration_seconds_count", outcome="refused") >= 1
    # The fair gate (on by default): nobody waits at it, and its adaptive
    # limit (summed over the two workers) is at least their minimums.
    assert total(samples, "mcpgate_fair_queued") == 0
    assert total(samples, "mcpgate_fair_limit") >= 2 * 8


def test_liveness_and_readiness(gate):
    _, admin = gate
    for path in ("/livez", "/healthz", "/readyz"):
        r = httpx.get(f"{admin}{path}", timeout=5)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"


def test_a_dead_upstream_is_not_ready_and_502s_are_not_forwarded():
    dead = f"http://127.0.0.1:{harness.free_port()}/mcp"
    g, admin = start(dead, '\n[upstream.health]\ninterval_ms = 200\nunhealthy_after = 1\n')
    try:
        r = httpx.post(g.url, json=modern("tools/list"), headers=modern_headers("tools/list"), timeout=10)
        assert r.status_code in (502, 503), r.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = httpx.get(f"{admin}/readyz", timeout=5)
            if ready.status_code == 503:
                break
            time.sleep(0.2)
        assert ready.status_code == 503, ready.text
        assert "healthy" in ready.text
        assert httpx.get(f"{admin}/livez", timeout=5).status_code == 200
        samples = metrics(admin)
        assert total(samples, "mcpgate_forwarded_total") == 0, "a 502 is not a forwarded request"
    finally:
        g.stop()
