"""Overload and faults against the real mcpgate binary (issue 4).

(1) a tenant flooding past its cap while a second tenant's requests all
succeed; (2) three endpoints, one killed under load: zero errors on the other
two's sessions, clean errors and re-initialize on the killed one's; (3) the
breaker opens on a dead endpoint, fails fast, and closes when it returns;
(4) deadlines: the client gets an error and the upstream the cancel; (5)
every rejection that can be retried carries Retry-After; idle sessions expire
with a DELETE upstream.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import LEGACY_H, POST_HEADERS, init, modern, modern_headers, note, req  # noqa: E402

KEYS = {"alpha": "alpha-key", "beta": "beta-key"}


def tenants(extra: dict[str, str] | None = None) -> str:
    out = ""
    for name, key in KEYS.items():
        out += f'\n[tenants.{name}]\napi_keys_sha256 = ["{hashlib.sha256(key.encode()).hexdigest()}"]\n'
        out += (extra or {}).get(name, "")
    return out


def demo(tmp: Path, name: str, port: int | None = None, extra: list[str] | None = None) -> tuple[harness.Proc, int, Path]:
    port = port or harness.free_port()
    record = tmp / f"{name}.jsonl"
    record.touch()
    proc = harness.Proc(name, [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}", "--record", record, *(extra or [])],
                        env={"HOSTNAME": name})
    proc.wait_port(port)
    return proc, port, record


def gate(toml: str, workers: int = 1) -> harness.Upstream:
    """mcpgate with one worker by default: breakers, health and round-robin are
    per worker, and these tests count them; test_workers.py covers several."""
    port = harness.free_port()
    cfg = Path(harness.write_mcpgate_config("http://127.0.0.1:1/mcp", port))
    # write_mcpgate_config writes an [upstream]; replace the file with ours.
    cfg.write_text(f'[listen]\naddress = "127.0.0.1:{port}"\npath = "/mcp"\n{toml}')
    proc = harness.Proc("mcpgate", [harness.mcpgate_bin(), "run", "--config", cfg, "--workers", str(workers)],
                        env={"RUST_LOG": "info"})
    proc.wait_port(port, timeout=20)
    return harness.Upstream(proc, port)


def call(client: httpx.Client, url: str, name: str, args: dict, key: str | None = None, id_: object = 1) -> httpx.Response:
    body = modern("tools/call", {"name": name, "arguments": args}, id_=id_)
    h = modern_headers("tools/call", name)
    if key:
        h.append(("authorization", f"Bearer {key}"))
    return client.post(url, json=body, headers=h)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Legacy:
    """A legacy session through mcpgate."""

    def __init__(self, client: httpx.Client, url: str):
        self.c, self.url = client, url
        self.sid = ""
        self.n = 0
        self.open()

    def open(self) -> None:
        r = self.c.post(self.url, json=init(), headers=POST_HEADERS)
        assert r.status_code == 200, r.text
        self.sid = r.headers["mcp-session-id"]
        assert self.post(note("notifications/initialized")).status_code == 202

    def post(self, body: dict) -> httpx.Response:
        return self.c.post(self.url, json=body, headers=LEGACY_H + [("mcp-session-id", self.sid)])

    def tool(self, name: str, args: dict, meta: dict | None = None) -> httpx.Response:
        self.n += 1
        params: dict = {"name": name, "arguments": args}
        if meta:
            params["_meta"] = meta
        return self.post(req("tools/call", self.n, params))


def result_text(r: httpx.Response) -> str:
    text = r.text
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]
        text = datas[-1]
    return json.loads(text)["result"]["content"][0]["text"]


def test_tenant_flood_does_not_starve_another_tenant(tmp_path):
    up, port, _ = demo(tmp_path, "flood-upstream")
    g = gate(f'[upstream]\nurl = "http://127.0.0.1:{port}/mcp"\n[admission]\nqueue_timeout_ms = 200\n'
             + tenants({"alpha": "max_in_flight = 8\nmax_concurrent_upstream = 4\n"}), workers=2)
    try:
        results = {"alpha": [], "beta": []}
        stop = threading.Event()

        def flood():
            with httpx.Client(timeout=10) as c:
                while not stop.is_set():
                    results["alpha"].append(call(c, g.url, "payload", {"size": 64, "delay_ms": 300}, KEYS["alpha"]))

        with cf.ThreadPoolExecutor(32) as pool:
            floods = [pool.submit(flood) for _ in range(24)]
            time.sleep(0.5)
            with httpx.Client(timeout=10) as c:
                for i in range(30):
                    results["beta"].append(call(c, g.url, "echo", {"text": f"b{i}"}, KEYS["beta"], id_=i))
                    time.sleep(0.02)
            stop.set()
            for f in floods:
                f.result()
        a_ok = sum(r.status_code == 200 for r in results["alpha"])
        a_shed = [r for r in results["alpha"] if r.status_code == 503]
        b_ok = sum(r.status_code == 200 and "b" in result_text(r) for r in results["beta"])
        print(f"\nflood: alpha {a_ok} ok / {len(a_shed)} shed (503) of {len(results['alpha'])}; "
              f"beta {b_ok}/{len(results['beta'])} ok")
        assert b_ok == len(results["beta"]), [r.text for r in results["beta"] if r.status_code != 200][:3]
        assert a_shed, "the flooding tenant must be shed past its cap"
        assert all(r.headers.get("retry-after") for r in a_shed)
        assert all(r.json()["error"]["code"] == -32013 for r in a_shed)
        assert a_ok + len(a_shed) == len(results["alpha"]), "every flood request got an answer"
    finally:
        g.stop()
        up.stop()


def test_killed_endpoint_affects_only_its_sessions(tmp_path):
    ups = [demo(tmp_path, f"ep{i}") for i in range(3)]
    endpoints = ", ".join(f'"http://127.0.0.1:{p}/mcp"' for _, p, _ in ups)
    g = gate(f'[upstreams.main]\nendpoints = [{endpoints}]\n[upstreams.main.health]\ninterval_ms = 200\nunhealthy_after = 1\n')
    try:
        with httpx.Client(timeout=10) as setup:
            sessions = [Legacy(setup, g.url) for _ in range(9)]
            homes = [result_text(s.tool("get-env", {})) for s in sessions]
        where = [next(f"ep{i}" for i in range(3) if f"ep{i}" in h) for h in homes]
        assert sorted(where) == sorted(["ep0", "ep1", "ep2"] * 3), where
        victim = "ep1"
        errors = {"healthy": [], "victim_clean": 0, "victim_reinit": 0, "victim_ok_after": 0}
        stop = threading.Event()

        def drive(k: int):
            s_where = where[k]
            with httpx.Client(timeout=5) as c:
                s = sessions[k]
                s.c = c
                moved = False
                while not stop.is_set():
                    r = s.tool("echo", {"text": "x"})
                    ok = r.status_code == 200 and "error" not in r.text
                    if s_where != victim or moved:
                        if not ok:
                            errors["healthy"].append((s_where, moved, r.status_code, r.text[:200]))
                        elif moved:
                            errors["victim_ok_after"] += 1
                        continue
                    if not ok:
                        # Clean: 404 for the session, or a JSON-RPC error for an in-flight call.
                        assert r.status_code in (404, 502, 503) or "error" in r.text, r.text
                        errors["victim_clean"] += 1
                        if r.status_code == 404:
                            s.open()
                            env = result_text(s.tool("get-env", {}))
                            assert victim not in env, "re-initialized onto the dead endpoint"
                            errors["victim_reinit"] += 1
                            moved = True

        with cf.ThreadPoolExecutor(9) as pool:
            futures = [pool.submit(drive, k) for k in range(9)]
            time.sleep(1.0)
            ups[1][0].stop()  # kill ep1 under load
            time.sleep(2.0)
            stop.set()
            for f in futures:
                f.result(timeout=20)
        print(f"\nkill test: errors on unaffected sessions {len(errors['healthy'])}, "
              f"clean errors on the killed endpoint's sessions {errors['victim_clean']}, "
              f"re-initialized {errors['victim_reinit']}/3, calls after re-init {errors['victim_ok_after']}")
        assert errors["healthy"] == [], errors["healthy"][:3]
        assert errors["victim_reinit"] == 3
        assert errors["victim_ok_after"] > 0
    finally:
        g.stop()
        for p, _, _ in ups:
            p.stop()


def test_breaker_opens_fails_fast_and_recovers(tmp_path):
    port = harness.free_port()
    g = gate(f'[upstream]\nurl = "http://127.0.0.1:{port}/mcp"\n[upstream.health]\ninterval_ms = 0\n'
             '[upstream.breaker]\nconsecutive_failures = 3\ncooldown_ms = 1000\n')
    up = None
    try:
        with httpx.Client(timeout=10) as c:
            t0 = time.monotonic()
            first = [call(c, g.url, "echo", {"text": "x"}) for _ in range(3)]
            assert [r.status_code for r in first] == [502, 502, 502]
            opened_after = time.monotonic() - t0
            fast = []
            for _ in range(20):
                t = time.monotonic()
                r = call(c, g.url, "echo", {"text": "x"})
                fast.append(time.monotonic() - t)
                assert r.status_code == 503 and r.json()["error"]["code"] == -32015, r.text
                assert int(r.headers["retry-after"]) >= 1
            up, _, record = demo(tmp_path, "breaker-upstream", port=port)
            # While open, nothing reaches the upstream that came back.
            r = call(c, g.url, "echo", {"text": "x"})
            assert r.status_code == 503
            assert records(record) == [], "an open breaker must not contact the upstream"
            t_back = time.monotonic()
            while True:
                r = call(c, g.url, "echo", {"text": "back"})
                if r.status_code == 200:
                    break
                assert time.monotonic() - t_back < 5, r.text
                time.sleep(0.05)
            recovered_after = time.monotonic() - t_back
            assert all(call(c, g.url, "echo", {"text": "x"}).status_code == 200 for _ in range(5))
        fast.sort()
        print(f"\nbreaker: opened after 3 failures in {opened_after * 1000:.0f} ms; fail-fast p50 "
              f"{fast[len(fast) // 2] * 1000:.2f} ms, max {fast[-1] * 1000:.2f} ms; recovered {recovered_after * 1000:.0f} ms "
              "after the upstream returned (cool-down 1000 ms)")
    finally:
        g.stop()
        if up:
            up.stop()


def test_deadlines_answer_the_client_and_cancel_upstream(tmp_path):
    up, port, record = demo(tmp_path, "deadline-upstream")
    g = gate(f'[upstream]\nurl = "http://127.0.0.1:{port}/mcp"\nfirst_byte_timeout_ms = 800\n'
             'request_timeout_ms = 600\nmax_request_ms = 1500\n')
    try:
        with httpx.Client(timeout=10) as c:
            s = Legacy(c, g.url)
            # No response head in time: 504 with the id, and a cancel upstream.
            t = time.monotonic()
            r = s.tool("payload", {"size": 8, "delay_ms": 3000})
            assert r.status_code == 504 and r.json()["error"]["code"] == -32603 and r.json()["id"] == s.n
            assert time.monotonic() - t < 2.5
            first_id = s.n
            # Streaming with progress: each progress restarts the 600 ms deadline
            # (events 400 ms apart) until the 1500 ms hard maximum.
            t = time.monotonic()
            r = s.tool("progress", {"steps": 20, "interval_ms": 400}, meta={"progressToken": "tok"})
            took = time.monotonic() - t
            assert r.status_code == 200
            events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
            progress = [e for e in events if e.get("method") == "notifications/progress"]
            final = events[-1]
            assert final["id"] == s.n and final["error"]["code"] == -32603, final
            assert len(progress) >= 2, "progress extended the 600 ms deadline"
            assert 1.3 < took < 2.5, took
            second_id = s.n
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            cancels = [json.loads(x["body"]) for x in records(record) if "notifications/cancelled" in x["body"]]
            if len(cancels) >= 2:
                break
            time.sleep(0.05)
        ids = sorted(cx["params"]["requestId"] for cx in cancels)
        print(f"\ndeadline: client got 504/-32603 and an in-stream -32603 after {took:.2f}s with {len(progress)} progress events; "
              f"upstream received notifications/cancelled for {ids}")
        assert ids == [first_id, second_id]
    finally:
        g.stop()
        up.stop()


def test_retry_after_on_every_retryable_rejection(tmp_path):
    up, port, _ = demo(tmp_path, "retry-upstream")
    dead = harness.free_port()
    g = gate(f'[upstreams.live]\nurl = "http://127.0.0.1:{port}/mcp"\n'
             f'[upstreams.dead]\nurl = "http://127.0.0.1:{dead}/mcp"\n[upstreams.dead.health]\ninterval_ms = 0\n'
             '[upstreams.dead.breaker]\nconsecutive_failures = 1\ncooldown_ms = 60000\n'
             '[rate_limits]\ntenant_per_sec = 1\ntenant_burst = 2\n[auth]\nanonymous_tenant = "anon"\n'
             + tenants({"alpha": 'upstream = "dead"\nrate_per_sec = 1000\n',
                        "beta": 'upstream = "live"\nmax_in_flight = 1\nrate_per_sec = 1000\n'}))
    try:
        seen = {}
        with httpx.Client(timeout=10) as c:
            # 429: the anonymous tenant's bucket (2 burst, 1/s).
            rs = [call(c, g.url, "echo", {"text": "x"}) for _ in range(4)]
            seen[429] = next(r for r in rs if r.status_code == 429)
            # 502 then 503 circuit open: tenant alpha routes to a dead upstream.
            seen[502] = call(c, g.url, "echo", {"text": "x"}, KEYS["alpha"])
            seen["503-circuit"] = call(c, g.url, "echo", {"text": "x"}, KEYS["alpha"])
            # 503 overloaded: tenant beta may have one request in flight.
            slow = threading.Thread(target=lambda: call(httpx.Client(timeout=10), g.url, "payload", {"size": 1, "delay_ms": 800}, KEYS["beta"]))
            slow.start()
            time.sleep(0.3)
            seen["503-overloaded"] = call(c, g.url, "echo", {"text": "x"}, KEYS["beta"])
            slow.join()
        expected = {429: (429, -32014), 502: (502, -32603), "503-circuit": (503, -32015), "503-overloaded": (503, -32013)}
        for k, (status, code) in expected.items():
            r = seen[k]
            assert r.status_code == status, (k, r.status_code, r.text)
            assert r.json()["error"]["code"] == code, (k, r.text)
            assert int(r.headers["retry-after"]) >= 1, (k, dict(r.headers))
        print("\nretry-after: " + ", ".join(f"{k}={seen[k].headers['retry-after']}s" for k in expected))
    finally:
        g.stop()
        up.stop()


def test_idle_session_expires_with_delete_upstream(tmp_path):
    up, port, record = demo(tmp_path, "idle-upstream")
    g = gate(f'[upstream]\nurl = "http://127.0.0.1:{port}/mcp"\n[sessions]\nidle_timeout_secs = 1\n')
    try:
        with httpx.Client(timeout=10) as c:
            s = Legacy(c, g.url)
            assert s.tool("echo", {"text": "x"}).status_code == 200
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline and not any(x["method"] == "DELETE" for x in records(record)):
                time.sleep(0.2)
            assert any(x["method"] == "DELETE" for x in records(record)), "expiry must DELETE the upstream session"
            r = s.tool("echo", {"text": "x"})
            assert r.status_code == 404 and r.json()["error"]["code"] == -32001
    finally:
        g.stop()
        up.stop()
