"""The audit trail (`[audit]`) of the real binary: one hash-chained JSON line
per request, `mcpgate audit verify`, rotation, restarts, one file per
worker, and what a full queue does.

The upstream is the hostile Python SDK server (its `echo` and `add` tools);
clients are the official Python SDK and raw HTTP.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

import harness
from harness import metric
from negative.cases import modern, modern_headers
from raw_session import RawSession


@pytest.fixture(scope="module")
def hostile():
    upstream, record = harness.start_hostile()
    yield upstream
    upstream.stop()


def gate(upstream_url: str, audit: str, workers: int = 1, more: str = ""):
    return harness.start_mcpgate_admin(upstream_url, f"[audit]\n{audit}\n{more}", workers=workers)


metrics = harness.scrape
wait_for = harness.wait_for


def trail(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def verify(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(harness.mcpgate_bin()), "audit", "verify", *map(str, files)],
                          capture_output=True, text=True, timeout=30)


def stateless_echo(url: str, text: str, id_: int, timeout: float = 30) -> httpx.Response:
    body = modern("tools/call", {"name": "echo", "arguments": {"text": text}}, id_=id_)
    # A new connection per request.
    return httpx.post(url, json=body, headers=dict(modern_headers("tools/call", "echo")), timeout=timeout)


async def sdk_session(url: str) -> list:
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    out = []
    async with Client(url, mode="legacy") as c:
        await c.list_tools()
        out.append(await c.call_tool("echo", {"text": "hi"}))
        try:
            out.append(await c.call_tool("add", {"a": "two", "b": 3}))
        except MCPError as e:
            out.append(e)
    return out


def test_every_request_gets_a_chained_record(hostile):
    path = harness.scratch_dir() / "audit.jsonl"
    g, admin = gate(hostile.url, f'path = "{path}"', more="[tools]\nvalidate_arguments = true\n")
    try:
        echo, refused = anyio.run(sdk_session, g.url)
        s = RawSession(g.url)
        r = s.post({"jsonrpc": "2.0", "id": 99, "method": "resources/read",
                    "params": {"uri": "file:///srv/../etc/passwd"}})
        assert r.status_code == 400
        written = wait_for(lambda: metric(metrics(admin), "mcpgate_audit_records_total", outcome="written") >= 8)
    finally:
        g.stop()
    assert written, "records are written while mcpgate runs"
    assert echo.content[0].text == "hi" and refused.error.code == -32602
    records = trail(path)
    by_method: dict[str, list[dict]] = {}
    for rec in records:
        by_method.setdefault(rec["method"], []).append(rec)
        assert rec["instance"] and rec["worker"] == 0 and rec["time"].endswith("Z") and rec["tenant"]
    # The SDK's session: initialize, initialized, tools/list, two calls, DELETE.
    assert by_method["initialize"][0]["decision"] == "admitted"
    calls = {rec["tool"]: rec for rec in by_method["tools/call"]}
    ok = calls["echo"]
    assert (ok["decision"], ok["outcome"], ok["status"]) == ("admitted", "result", 200), ok
    assert ok["args_sha256"] == hashlib.sha256(b'{"text":"hi"}').hexdigest()
    assert "arguments" not in ok and ok["duration_ms"] > 0 and len(ok["session"]) == 16
    bad = calls["add"]
    assert (bad["decision"], bad["rule"], bad["code"], bad["status"]) == ("refused", "arguments-schema", -32602, 400)
    read = by_method["resources/read"][0]
    assert (read["decision"], read["rule"], read["filter"]) == ("refused", "dot-dot-segment", "path_traversal"), read
    assert "DELETE" in by_method
    # The chain holds, and breaks where it is broken.
    r = verify(path)
    assert r.returncode == 0 and f"ok: {len(records)} records in 1 files, seq 1 to {len(records)}" in r.stdout, r
    lines = path.read_text().splitlines()
    tampered = path.with_name("tampered.jsonl")
    edited = list(lines)
    edited[2] = edited[2].replace('"decision":"admitted"', '"decision":"refused"')
    assert edited[2] != lines[2]
    tampered.write_text("\n".join(edited) + "\n")
    r = verify(tampered)
    assert r.returncode == 1 and f"BROKEN {tampered}:3: record seq 3 was changed" in r.stdout, r.stdout
    tampered.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    r = verify(tampered)
    assert r.returncode == 1 and f"{tampered}:4: records removed or reordered: seq 5 follows seq 3" in r.stdout
    tampered.write_text("\n".join(lines[:3] + [lines[4], lines[3]] + lines[5:]) + "\n")
    assert verify(tampered).returncode == 1
    assert verify(path.with_name("missing.jsonl")).returncode == 2


def test_rotation_and_restart_continue_the_chain(hostile):
    folder = harness.scratch_dir() / "rotating"
    path = folder / "audit.jsonl"
    for run in range(2):
        g, _ = gate(hostile.url, f'path = "{path}"\nrotate_bytes = 1500')
        try:
            for i in range(12):
                assert stateless_echo(g.url, f"run {run} call {i}", i).status_code == 200
        finally:
            g.stop()
    rotated = sorted(p for p in folder.iterdir() if p.name.startswith("audit.jsonl."))
    assert len(rotated) >= 3, rotated
    files = rotated + [path]
    r = verify(*files)
    assert r.returncode == 0 and "ok: 24 records" in r.stdout and "seq 1 to 24" in r.stdout, r
    # Each file starts where the one before ended (the current one may be
    # empty: the last write rotated).
    written = [f for f in files if f.stat().st_size]
    for before, after in zip(written, written[1:]):
        last = before.read_text().splitlines()[-1]
        assert trail(after)[0]["prev"] == hashlib.sha256(last.encode()).hexdigest()
    # A rotated file left out shows as a gap.
    r = verify(*(files[:1] + files[2:]))
    assert r.returncode == 1 and "records removed" in r.stdout


def test_each_worker_writes_its_own_chain(hostile):
    path = harness.scratch_dir() / "workers" / "audit.jsonl"
    g, _ = gate(hostile.url, f'path = "{path}"', workers=2)
    try:
        for i in range(40):
            assert stateless_echo(g.url, f"call {i}", i).status_code == 200
    finally:
        g.stop()
    files = [path.with_name("audit-w0.jsonl"), path.with_name("audit-w1.jsonl")]
    counts = []
    for f in files:
        r = verify(f)
        assert r.returncode == 0, r.stdout
        counts.append(len(trail(f)))
        assert {rec["worker"] for rec in trail(f)} == {int(f.stem[-1])}
    assert sum(counts) == 40 and all(counts), counts
    assert not path.exists()


def test_a_full_queue_drops_or_blocks(hostile):
    """The writer waits for the file's lock (held here, as a draining older
    instance would): its queue fills."""
    folder = harness.scratch_dir() / "full"
    folder.mkdir()
    path = folder / "audit.jsonl"
    with open(path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        g, admin = gate(hostile.url, f'path = "{path}"\nqueue = 4\non_full = "drop"')
        try:
            for i in range(12):
                assert stateless_echo(g.url, "x", i).status_code == 200
            dropped = metric(metrics(admin), "mcpgate_audit_records_total", outcome="dropped")
            fcntl.flock(held, fcntl.LOCK_UN)
            written = wait_for(lambda: metric(metrics(admin), "mcpgate_audit_records_total", outcome="written"))
        finally:
            g.stop()
    assert (dropped, written) == (8, 4), "drop: what does not fit the queue is lost, counted"
    assert verify(path).returncode == 0 and len(trail(path)) == 4

    # "block": nothing is dropped. Each answer goes out; the record then
    # waits for a place, and so does that connection's next request.
    path = folder / "blocking.jsonl"
    with open(path, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        g, admin = gate(hostile.url, f'path = "{path}"\nqueue = 2\non_full = "block"')
        try:
            # Two records fill the queue (2); three more wait.
            for i in range(5):
                assert stateless_echo(g.url, f"other {i}", i).status_code == 200
            with httpx.Client(timeout=15) as keep_alive:
                body = modern("tools/call", {"name": "echo", "arguments": {"text": "first"}}, id_=1)
                headers = dict(modern_headers("tools/call", "echo"))
                # Answered, then its record waits: so does the next request.
                assert keep_alive.post(g.url, json=body, headers=headers).status_code == 200
                with pytest.raises(httpx.ReadTimeout):
                    keep_alive.post(g.url, json=body, headers=headers, timeout=1.5)
            before = metrics(admin)
            fcntl.flock(held, fcntl.LOCK_UN)
            m = wait_for(lambda: metric(metrics(admin), "mcpgate_audit_records_total", outcome="written") >= 6
                         and metrics(admin))
        finally:
            g.stop()
    assert metric(before, "mcpgate_audit_records_total", outcome="written") == 0
    assert metric(m, "mcpgate_audit_records_total", outcome="dropped") == 0
    assert verify(path).returncode == 0 and len(trail(path)) >= 6
    digests = {rec.get("args_sha256") for rec in trail(path)}
    assert {hashlib.sha256(f'{{"text":"other {i}"}}'.encode()).hexdigest() for i in range(5)} <= digests


def test_an_answer_the_response_phase_replaced_is_recorded_as_refused():
    upstream, _ = harness.start_hostile("--leaky")
    path = harness.scratch_dir() / "replaced.jsonl"
    try:
        g, _ = gate(upstream.url, f'path = "{path}"', more='[content.secrets]\naction = "block"\n')
        try:
            blocked, passed = anyio.run(harness.sdk_calls, g.url, "legacy", ("leak_text", {}), ("contract_ok", {}))
        finally:
            g.stop()
    finally:
        upstream.stop()
    assert blocked.error.code == -32017 and passed.structured_content == {"n": 3}
    calls = {rec["tool"]: rec for rec in trail(path) if rec["method"] == "tools/call"}
    leak = calls["leak_text"]
    assert (leak["decision"], leak["filter"], leak["code"], leak["status"]) == ("refused", "content-data", -32017, 200), leak
    assert leak["rule"] in ("aws-access-key", "github-token", "private-key"), leak
    assert (calls["contract_ok"]["decision"], calls["contract_ok"]["outcome"]) == ("admitted", "result")
