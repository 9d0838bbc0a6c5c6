"""Concurrency caps hold for the instance, not per worker (issue 10, item 1).

Slow stateless calls are pinned to both workers deliberately: keep-alive
connections are opened until each worker (`x-mcpgate-worker`) holds enough of
them, then every connection sends one 3 s call at once. The recording demo
upstream shows how many calls reached it at the same time.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import modern, modern_headers  # noqa: E402
from test_lifecycle import Gate, Http, payload_ok  # noqa: E402

PER_WORKER = 10
DELAY_MS = 3000
KEY = "acme-key"


@pytest.fixture
def upstream(tmp_path):
    port = harness.free_port()
    record = tmp_path / "caps-upstream.jsonl"
    record.touch()
    proc = harness.Proc("demo-upstream-caps", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}",
                                               "--record", record])
    proc.wait_port(port)
    yield f"http://127.0.0.1:{port}/mcp", record
    proc.stop()


def pinned_connections(port: int, auth: list, per_worker: int) -> dict[int, list[Http]]:
    """Keep-alive connections, `per_worker` accepted by each of workers 0 and 1."""
    pinned: dict[int, list[Http]] = {0: [], 1: []}
    for _ in range(40 * per_worker):
        if all(len(cs) == per_worker for cs in pinned.values()):
            return pinned
        c = Http(port)
        a = c.request(modern("tools/list"), modern_headers("tools/list") + auth)
        assert a.status == 200, a
        w = int(a.headers["x-mcpgate-worker"])
        if len(pinned[w]) < per_worker:
            pinned[w].append(c)
        else:
            c.close()
    raise AssertionError(f"could not pin {per_worker} connections to each worker: {[len(v) for v in pinned.values()]}")


def max_concurrent_at_upstream(record: Path) -> int:
    """Most slow calls the upstream held at once (each lasts DELAY_MS from its arrival)."""
    ts = sorted(r["ts_ms"] for r in map(json.loads, record.read_text().splitlines()) if '"delay_ms"' in r["body"])
    return max((sum(t <= u < t + DELAY_MS for u in ts) for t in ts), default=0)


@pytest.mark.parametrize("tenant_cap", [None, 5], ids=["admission-default-8", "tenant-override-5"])
def test_concurrent_upstream_cap_holds_across_workers(upstream, tenant_cap):
    url, record = upstream
    cap = tenant_cap or 8
    toml = ('[admission]\ntenant_max_concurrent_upstream = 8\nqueue_timeout_ms = 200\n'
            'tenant_max_in_flight = 1000\nglobal_max_in_flight = 4000\n')
    auth = []
    if tenant_cap:
        toml += (f'[tenants.acme]\napi_keys_sha256 = ["{hashlib.sha256(KEY.encode()).hexdigest()}"]\n'
                 f'max_concurrent_upstream = {tenant_cap}\n')
        auth = [("authorization", f"Bearer {KEY}")]
    g = Gate(url, toml, workers=2, listen="expose_worker_header = true\n")
    conns: list[tuple[int, Http]] = []
    try:
        pinned = pinned_connections(g.port, auth, PER_WORKER)
        conns = [(w, c) for w in (0, 1) for c in pinned[w]]
        for i, (_, c) in enumerate(conns):
            c.post(modern("tools/call", {"name": "payload", "arguments": {"size": 100, "delay_ms": DELAY_MS}}, id_=i),
                   modern_headers("tools/call", "payload") + auth)
        answers = [(w, c.answer()) for w, c in conns]
    finally:
        for _, c in conns:
            c.close()
        g.kill()
    ok = [(i, w) for i, (w, a) in enumerate(answers) if payload_ok(a, 100, i)]
    shed = [a for _, a in answers if a.status == 503]
    print(f"\ncap {cap}: {len(ok)} ok (per worker {[sum(w == k for _, w in ok) for k in (0, 1)]}), "
          f"{len(shed)} refused with 503; upstream held at most {max_concurrent_at_upstream(record)} at once")
    assert len(ok) == cap, f"{len(ok)} of {len(answers)} concurrent calls succeeded, cap is {cap}"
    assert len(shed) == len(answers) - cap, [a.status for _, a in answers]
    for a in shed:
        assert int(a.headers["retry-after"]) >= 1, a.headers
        assert a.json()["error"]["code"] == -32013, a
    assert max_concurrent_at_upstream(record) <= cap
