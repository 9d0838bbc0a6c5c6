"""An upgrade without dropping a request, on the real binary: a second
instance started with `--takeover` beside a running one, the old one
drained with SIGTERM, under steady load.

Both instances share the policy, so its session keys: a legacy session
made through the old instance continues through the new one by its
sealed id. The admin listener is shared during the overlap too.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import threading
import time

import httpx

import harness
from negative.cases import modern, modern_headers
from raw_session import RawSession


def bare_exchange(port: int, request: bytes) -> bytes | str:
    """One request on a fresh connection: the answer's first bytes, or the
    error's name when the connection failed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(request)
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
        return answer[:12] if answer.startswith(b"HTTP/1.1 ") else answer[:40] or b"closed"
    except OSError as e:
        return type(e).__name__


def test_takeover_then_drain_loses_no_request():
    upstream, _ = harness.start_hostile()
    port, admin = harness.free_port(), harness.free_port()
    key = base64.b64encode(os.urandom(32)).decode()
    config = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\n[upstream]\nurl = "{upstream.url}"\n'
        f'[admin]\naddress = "127.0.0.1:{admin}"\n[sessions]\nkeys = ["{key}"]\n'
        f'[shutdown]\ngrace_secs = 10\n')
    url = f"http://127.0.0.1:{port}/mcp"
    old = harness.start_mcpgate_with(config, port, workers=1)
    new = None
    stop = threading.Event()
    outcomes: list[int | str] = []

    def load(lane: int):
        i = 0
        while not stop.is_set():
            i += 1
            body = modern("tools/call", {"name": "echo", "arguments": {"text": f"lane {lane} call {i}"}}, id_=i)
            try:
                # A new connection each time: each goes to whichever
                # instance accepts it.
                r = httpx.post(url, json=body, headers=dict(modern_headers("tools/call", "echo")), timeout=15)
                ok = r.status_code == 200 and f"lane {lane} call {i}" in r.text
                outcomes.append(200 if ok else r.status_code)
            except httpx.HTTPError as e:
                outcomes.append(type(e).__name__)

    def connect_only():
        # Bare connections as fast as they go: the ones the kernel queues
        # on a listening socket just as an instance closes it are the
        # ones an upgrade loses. Each must get an answer (any status).
        while not stop.is_set():
            bare.append(bare_exchange(port, b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))

    bare: list[bytes | str] = []
    try:
        session = RawSession(url)
        _, before = session.request("tools/call", {"name": "echo", "arguments": {"text": "before"}})
        # Four clients at once, so connections are in flight at every step.
        lanes = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        lanes += [threading.Thread(target=connect_only) for _ in range(4)]
        for t in lanes:
            t.start()
        time.sleep(1)
        cmd = [harness.mcpgate_bin(), "run", "--config", config, "--workers", "1", "--takeover"]
        new = harness.Upstream(harness.Proc("mcpgate-new", cmd, env={"RUST_LOG": "info"}), port)
        assert harness.wait_for(lambda: "mcpgate listening" in new.proc.log.read_text(), 20), new.proc.log_tail()
        time.sleep(1)
        os.killpg(old.proc.popen.pid, signal.SIGTERM)
        old.proc.popen.wait(20)
        time.sleep(1)
        stop.set()
        for t in lanes:
            t.join(30)
        # The legacy session goes on through the new instance.
        _, after = session.request("tools/call", {"name": "echo", "arguments": {"text": "after"}})
        scrape = harness.scrape(admin)
        old_log = old.proc.log.read_text()
    finally:
        stop.set()
        old.stop()
        if new:
            new.stop()
        upstream.stop()
    failed = [o for o in outcomes if o != 200]
    assert len(outcomes) > 40 and not failed, (len(outcomes), failed[:10])
    unanswered = [b for b in bare if not (isinstance(b, bytes) and b.startswith(b"HTTP/1.1 "))]
    assert len(bare) > 100 and not unanswered, (len(bare), unanswered[:10])
    assert before["result"]["content"][0]["text"] == "before"
    assert after["result"]["content"][0]["text"] == "after"
    assert old.proc.popen.returncode == 0 and "drained" in old_log
    assert "mcpgate_in_flight" in scrape


def test_repeated_takeovers_lose_no_connection():
    """Six upgrades in a row, two workers each, under bare connections opened
    as fast as six clients can: every connection is answered. With a
    listening socket per instance (before `ops::handover`), connections the
    kernel queued on, or hashed to, the old instance's sockets as it closed
    them were reset: 12 to 23 per 8 upgrades in `/tmp` stress runs."""
    upstream, _ = harness.start_hostile()
    port = harness.free_port()
    config = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\n[upstream]\nurl = "{upstream.url}"\n'
        f'[shutdown]\ngrace_secs = 5\n')
    cmd = [harness.mcpgate_bin(), "run", "--config", config, "--workers", "2"]
    stop = threading.Event()
    answered, lost = [0], []

    def connect_only():
        while not stop.is_set():
            answer = bare_exchange(port, b"GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if isinstance(answer, bytes) and answer.startswith(b"HTTP/1.1 "):
                answered[0] += 1
            else:
                lost.append(answer)

    current = harness.start_mcpgate_with(config, port, workers=2)
    started = [current]
    lanes = [threading.Thread(target=connect_only) for _ in range(6)]
    try:
        for t in lanes:
            t.start()
        for n in range(6):
            time.sleep(0.5)
            new = harness.Upstream(harness.Proc(f"mcpgate-{n}", cmd + ["--takeover"], env={"RUST_LOG": "info"}), port)
            started.append(new)
            assert harness.wait_for(lambda: "mcpgate listening" in new.proc.log.read_text(), 20), new.proc.log_tail()
            assert "sharing the running instance's listening sockets" in new.proc.log.read_text(), new.proc.log_tail()
            time.sleep(0.3)
            os.killpg(current.proc.popen.pid, signal.SIGTERM)
            assert current.proc.popen.wait(20) == 0, current.proc.log_tail()
            current = new
        time.sleep(0.5)
    finally:
        stop.set()
        for t in lanes:
            t.join(30)
        for p in started:
            p.stop()
        upstream.stop()
    assert answered[0] > 500 and not lost, (answered[0], lost[:10])
