"""Reloading the policy of a running instance on the real binary: SIGHUP
to the supervisor, `mcpgate reload` and `POST /reload` on the admin
listener.

A valid file is swapped into every worker while sessions continue and
requests in flight finish under the policy they started with; an invalid
one keeps the running policy and is reported as `mcpgate check` reports
it; keys that only a restart changes are named; a pool whose settings did
not change is carried over with its breaker.

The upstream is conformance/upstreams/raw_hostile_server.py (its `echo`,
`big` and `slow` tools); the client is raw HTTP (a legacy session).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

import harness
from harness import metric
from raw_session import RawSession, messages


@pytest.fixture(scope="module")
def hostile():
    upstream, _ = harness.start_raw_hostile()
    yield upstream
    upstream.stop()


metrics = harness.scrape
wait_for = harness.wait_for


class Instance:
    """A running mcpgate and the policy file it was started with."""

    def __init__(self, upstream_url: str, extra: str = "", workers: int = 1):
        self.port, self.admin = harness.free_port(), harness.free_port()
        self.upstream_url = upstream_url
        self.key = base64.b64encode(os.urandom(32)).decode()
        self.config = harness.write_config_text(self.text(extra))
        self.gate = harness.start_mcpgate_with(self.config, self.port, workers=workers, admin=self.admin)
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def text(self, extra: str, port: int | None = None) -> str:
        return (f'[listen]\naddress = "127.0.0.1:{port or self.port}"\n'
                f'[upstream]\nurl = "{self.upstream_url}"\n'
                f'[admin]\naddress = "127.0.0.1:{self.admin}"\n'
                f'[sessions]\nkeys = ["{self.key}"]\n{extra}')

    def rewrite(self, extra: str, port: int | None = None) -> None:
        self.config.write_text(self.text(extra, port))

    def reload_command(self) -> subprocess.CompletedProcess:
        return subprocess.run([str(harness.mcpgate_bin()), "reload", "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60)

    def check_command(self) -> subprocess.CompletedProcess:
        return subprocess.run([str(harness.mcpgate_bin()), "check", "--config", str(self.config)],
                              capture_output=True, text=True, timeout=60)

    def generations(self) -> list[float]:
        text = metrics(self.admin)
        return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("mcpgate_config_generation{")]

    def stop(self) -> None:
        self.gate.stop()


def call(s: RawSession, tool: str, args: dict | None = None) -> dict:
    s.next_id += 1
    r = s.post({"jsonrpc": "2.0", "id": s.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": args or {}}})
    assert r.status_code == 200, r.text
    (answer,) = [m for m in messages(r) if m.get("id") == s.next_id]
    return answer


def text_of(answer: dict) -> str:
    return answer["result"]["content"][0]["text"]


CAP = "[content.limits]\nmax_result_bytes = 1000\n"


def test_a_reload_reaches_every_worker_and_sessions_continue(hostile):
    inst = Instance(hostile.url, workers=2)
    try:
        s = RawSession(inst.url)
        assert text_of(call(s, "echo", {"text": "before"})) == "before"
        assert text_of(call(s, "big", {"bytes": 2000})) == "x" * 2000
        inst.rewrite(CAP)
        done = inst.reload_command()
        # The same session, after the swap, under the new policy.
        after = call(s, "echo", {"text": "after"})
        capped = call(s, "big", {"bytes": 2000})
        m = metrics(inst.admin)
        log = inst.gate.proc.log.read_text()
    finally:
        inst.stop()
    assert done.returncode == 0, done.stderr
    assert "worker 0: reloaded (generation 1)" in done.stdout, done.stdout
    assert "worker 1: reloaded (generation 1)" in done.stdout, done.stdout
    assert text_of(after) == "after"
    assert capped["error"]["data"]["rule"] == "result-too-large", capped
    assert metric(m, "mcpgate_config_generation", worker="0") == 1
    assert metric(m, "mcpgate_config_generation", worker="1") == 1
    assert metric(m, "mcpgate_config_reloads_total", outcome="ok") == 2
    assert metric(m, "mcpgate_config_last_reload_successful") == 2
    assert "reload: policy swapped" in log


def test_sighup_reloads_and_a_request_in_flight_finishes_under_its_policy(hostile):
    inst = Instance(hostile.url)
    try:
        s = RawSession(inst.url)
        call(s, "echo", {"text": "hello"})
        slow: dict = {}

        def slow_call():
            slow["answer"] = call(s, "slow", {"ms": 2000, "bytes": 2000})

        t = threading.Thread(target=slow_call)
        t.start()
        time.sleep(0.5)
        inst.rewrite(CAP)
        os.kill(inst.gate.proc.popen.pid, signal.SIGHUP)
        swapped = wait_for(lambda: inst.generations() == [1.0])
        # Started after the swap: judged by the new cap.
        fresh = call(RawSession(inst.url), "slow", {"ms": 0, "bytes": 2000})
        t.join(timeout=30)
    finally:
        inst.stop()
    assert swapped
    # Started before it: finished under the policy it started with.
    assert text_of(slow["answer"]) == "x" * 2000, slow
    assert fresh["error"]["data"]["rule"] == "result-too-large", fresh


def test_an_invalid_file_keeps_the_running_policy_and_says_why(hostile):
    inst = Instance(hostile.url, CAP)
    try:
        s = RawSession(inst.url)
        inst.rewrite(CAP + "[admission]\nglobal_max_in_flight = \"many\"\nbogus = 1\n")
        check = inst.check_command()
        command = inst.reload_command()
        posted = httpx.post(f"http://127.0.0.1:{inst.admin}/reload", timeout=60)
        os.kill(inst.gate.proc.popen.pid, signal.SIGHUP)
        failed = wait_for(lambda: metric(metrics(inst.admin), "mcpgate_config_reloads_total", outcome="failed") == 2)
        m = metrics(inst.admin)
        # Still the first policy: the cap holds, requests are served.
        capped = call(s, "big", {"bytes": 2000})
        fine = call(s, "echo", {"text": "still here"})
        # Fixed: the next reload works and says so.
        inst.rewrite("")
        fixed = inst.reload_command()
        m_fixed = metrics(inst.admin)
        uncapped = call(s, "big", {"bytes": 2000})
    finally:
        inst.stop()
    assert check.returncode == 1
    errors = [line for line in check.stderr.splitlines() if line.strip()]
    assert any("bogus" in e for e in errors) and any("global_max_in_flight" in e for e in errors), errors
    # `mcpgate reload` reports the file exactly as `check` does, and does not ask.
    assert command.returncode == 1
    assert [line for line in command.stderr.splitlines() if line.strip()] == errors
    # `POST /reload` (and SIGHUP) try, fail, and say the same.
    assert posted.status_code == 422
    report = posted.json()
    assert report["outcome"] == "failed"
    assert report["workers"][0]["errors"] == errors
    assert failed
    assert metric(m, "mcpgate_config_last_reload_successful") == 0
    assert metric(m, "mcpgate_config_generation") == 0
    assert capped["error"]["data"]["rule"] == "result-too-large"
    assert text_of(fine) == "still here"
    assert fixed.returncode == 0, fixed.stderr
    assert metric(m_fixed, "mcpgate_config_last_reload_successful") == 1
    assert text_of(uncapped) == "x" * 2000


def test_restart_only_keys_are_named_and_keep_their_running_value(hostile):
    inst = Instance(hostile.url)
    other = harness.free_port()
    try:
        inst.rewrite("", port=other)
        done = inst.reload_command()
        posted = httpx.post(f"http://127.0.0.1:{inst.admin}/reload", timeout=60).json()
        still = call(RawSession(inst.url), "echo", {"text": "old port"})
        with socket.socket() as probe:
            moved = probe.connect_ex(("127.0.0.1", other)) == 0
    finally:
        inst.stop()
    assert done.returncode == 0, done.stderr
    assert "listen.address: changed in" in done.stdout, done.stdout
    assert "takes effect at a restart" in done.stdout
    assert posted["workers"][0]["restart_required"] == ["listen.address"]
    assert text_of(still) == "old port"
    assert not moved


def test_an_unchanged_pool_keeps_its_open_breaker_and_a_changed_one_starts_anew():
    dead = harness.free_port()
    breaker = "[upstream.breaker]\nconsecutive_failures = 2\ncooldown_ms = 60000\n"
    inst = Instance(f"http://127.0.0.1:{dead}/mcp", breaker)
    try:
        for _ in range(3):
            httpx.post(inst.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}},
                headers={"accept": "application/json, text/event-stream"}, timeout=10)
        opened = metric(metrics(inst.admin), "mcpgate_upstream_breaker_open")
        inst.rewrite(breaker + CAP)
        kept = httpx.post(f"http://127.0.0.1:{inst.admin}/reload", timeout=60).json()
        after_kept = metric(metrics(inst.admin), "mcpgate_upstream_breaker_open")
        inst.rewrite(breaker.replace("60000", "50000") + CAP)
        rebuilt = httpx.post(f"http://127.0.0.1:{inst.admin}/reload", timeout=60).json()
        after_rebuilt = metric(metrics(inst.admin), "mcpgate_upstream_breaker_open")
        refused = httpx.get(f"http://127.0.0.1:{inst.admin}/reload", timeout=10)
    finally:
        inst.stop()
    assert opened == 1
    assert kept["workers"][0]["pools_kept"] == ["default"], kept
    assert after_kept == 1
    assert rebuilt["workers"][0]["pools_rebuilt"] == ["default"], rebuilt
    assert after_rebuilt == 0
    assert refused.status_code == 405


def own_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends
    nothing), if it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") else ip


def test_post_reload_is_taken_from_this_host_only(hostile):
    """Loopback, or this host's own address: both are this host. (A peer
    elsewhere gets 403: admin.rs's unit test, since one machine cannot
    connect to itself from another address.) GET is refused with 405."""
    ours = own_address()
    if not ours:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port, admin = harness.free_port(), harness.free_port()
    key = base64.b64encode(os.urandom(32)).decode()
    config = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\n[upstream]\nurl = "{hostile.url}"\n'
        f'[admin]\naddress = "0.0.0.0:{admin}"\n[sessions]\nkeys = ["{key}"]\n')
    g = harness.start_mcpgate_with(config, port, workers=1)
    try:
        own = httpx.post(f"http://{ours}:{admin}/reload", timeout=30)
        local = httpx.post(f"http://127.0.0.1:{admin}/reload", timeout=30)
        get = httpx.get(f"http://127.0.0.1:{admin}/reload", timeout=30)
        m = metrics(admin)
    finally:
        g.stop()
    assert own.status_code == 200, own.text
    assert local.status_code == 200, local.text
    assert get.status_code == 405
    assert metric(m, "mcpgate_config_reloads_total", outcome="ok") == 2
    assert json.loads(local.text)["outcome"] == "reloaded"


def test_a_session_whose_pool_a_reload_removed_ends_and_is_not_sent_elsewhere(hostile):
    inst = Instance(hostile.url)
    try:
        s = RawSession(inst.url)
        assert text_of(call(s, "echo", {"text": "on default"})) == "on default"
        # The same upstream under another pool name: the session's pool is gone.
        renamed = inst.text("").replace("[upstream]\n", "[upstreams.renamed]\n")
        inst.config.write_text(renamed)
        done = inst.reload_command()
        s.next_id += 1
        orphan = s.post({"jsonrpc": "2.0", "id": s.next_id, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": "lost?"}}})
        fresh = call(RawSession(inst.url), "echo", {"text": "new session"})
        log = inst.gate.proc.log.read_text()
    finally:
        inst.stop()
    assert done.returncode == 0, done.stderr
    assert orphan.status_code == 404, orphan.text
    assert text_of(fresh) == "new session"
    assert "session ended: a reload removed its pool" in log
