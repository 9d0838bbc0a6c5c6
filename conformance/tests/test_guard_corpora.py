"""The input-guard corpora end to end: the real mcpgate binary in front of
`demo-upstream --record`, under conformance/corpora/policy.toml.

- traversal (hand-written + generated) and SSRF attacks: each must get
  400 / -32602 and must not reach the upstream (its record file must not grow);
- benign look-alikes and URLs: each must reach the upstream;
- raw requests (header injection, smuggling): sent over a raw TCP socket; the
  connection must get a 4xx or be closed, with at most one response, and the
  upstream must receive nothing. mcpgate runs with `mcpgate=debug` logging so
  the test sees who refused each case: a `rejected` line names our filter,
  `reading request head`/`reading request body` means the HTTP/1 reader
  (`proxy/src/accept/downstream.rs`: httparse and pingora's framing checks)
  refused it before any filter ran. That observation must match the case's
  `blocked_by` field, so the corpus documents (and this test re-checks by
  experiment) which attacks the reader stops on its own.

Each corpus prints `blocked N/N, false positives 0/M`. The same corpora run in
process in filters/tests/corpora.rs.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

CORPORA = harness.ROOT / "conformance" / "corpora"
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
BASE = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
KEYS = {"anonymous": None, "rooted": "rooted-key"}


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPORA / name).read_text().splitlines() if line.strip()]


def mcp_header(v: str) -> str:
    """Plain when header-safe ASCII, else the =?base64?...?= sentinel."""
    if all(0x20 <= ord(c) < 0x7F for c in v) and v.strip() == v:
        return v
    return "=?base64?" + base64.b64encode(v.encode()).decode() + "?="


def request(via: str, value: str) -> tuple[list[tuple[str, str]], dict, bool]:
    """(headers, body, legacy) for one case; mirrors filters/tests/corpora.rs."""

    def modern(method: str, params: dict, name: str | None = None):
        h = BASE + [("mcp-protocol-version", MODERN), ("mcp-method", method)]
        if name is not None:
            h.append(("mcp-name", mcp_header(name)))
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": META}}
        return h, body, False

    if via == "resources/read":
        return modern(via, {"uri": value}, value)
    if via in ("resources/subscribe", "resources/unsubscribe"):
        return modern(via, {"uri": value})
    if via == "mcp-name":
        h = BASE + [("mcp-protocol-version", LEGACY), ("mcp-name", mcp_header(value))]
        return h, {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "demo://readme"}}, True
    if via == "completion":
        return modern("completion/complete", {"ref": {"type": "ref/resource", "uri": value},
                                              "argument": {"name": "path", "value": ""}})
    if via == "completion-value":
        return modern("completion/complete", {"ref": {"type": "ref/resource", "uri": "file:///{path}"},
                                              "argument": {"name": "path", "value": value}})
    if via == "tool-pointer":
        return modern("tools/call", {"name": "read_file", "arguments": {"path": value}}, "read_file")
    if via == "tool-pointer-array":
        return modern("tools/call", {"name": "read_file", "arguments": {"path": ["reports/ok.txt", value]}}, "read_file")
    if via == "tool-heuristic":
        return modern("tools/call", {"name": "search", "arguments": {"query": {"terms": [value]}}}, "search")
    if via == "ssrf-pointer":
        return modern("tools/call", {"name": "fetch", "arguments": {"url": value}}, "fetch")
    if via == "ssrf-heuristic":
        return modern("tools/call", {"name": "search", "arguments": {"options": {"callback": value}}}, "search")
    raise ValueError(f"unknown via {via!r}")


def ssrf_via(via: str) -> str:
    return {"tool-pointer": "ssrf-pointer", "tool-heuristic": "ssrf-heuristic"}.get(via, via)


class Guarded:
    """demo-upstream --record, and mcpgate in front of it with debug logging."""

    def __init__(self, tmp: Path):
        self.record = tmp / "record.jsonl"
        self.record.touch()
        up_port = harness.free_port()
        self.upstream = harness.Proc(
            "demo-upstream-guards",
            [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{up_port}", "--record", self.record],
        )
        self.upstream.wait_port(up_port)
        self.port = harness.free_port()
        config = harness.write_mcpgate_config(
            f"http://127.0.0.1:{up_port}/mcp", self.port, "\n" + (CORPORA / "policy.toml").read_text()
        )
        self.gate = harness.Proc(
            "mcpgate-guards",
            [harness.mcpgate_bin(), "run", "--config", config],
            env={"RUST_LOG": "info,mcpgate=debug", "NO_COLOR": "1"},
        )
        self.gate.wait_port(self.port, timeout=20)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.client = httpx.Client(timeout=10)
        self.sessions: dict[str, str] = {}

    def stop(self) -> None:
        self.client.close()
        self.gate.stop()
        self.upstream.stop()

    def count(self) -> int:
        return len(self.record.read_text().splitlines())

    def auth(self, tenant: str) -> list[tuple[str, str]]:
        key = KEYS[tenant]
        return [("authorization", f"Bearer {key}")] if key else []

    def session(self, tenant: str) -> str:
        """A ready legacy session of `tenant` (for the Mcp-Name cases)."""
        if tenant not in self.sessions:
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "guards", "version": "1"}}}
            r = self.client.post(self.url, json=init, headers=BASE + self.auth(tenant))
            assert r.status_code == 200, r.text
            sid = r.headers["mcp-session-id"]
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            h = BASE + [("mcp-protocol-version", LEGACY), ("mcp-session-id", sid)] + self.auth(tenant)
            assert self.client.post(self.url, json=note, headers=h).status_code == 202
            self.sessions[tenant] = sid
        return self.sessions[tenant]

    def send(self, via: str, value: str, tenant: str) -> httpx.Response:
        headers, body, legacy = request(via, value)
        headers = headers + self.auth(tenant)
        if legacy:
            headers.append(("mcp-session-id", self.session(tenant)))
        return self.client.post(self.url, content=json.dumps(body).encode(), headers=headers)

    def log_size(self) -> int:
        return self.gate.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.gate.log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


@pytest.fixture(scope="module")
def guarded():
    g = Guarded(harness.scratch_dir())  # this module's directory (conftest.py)
    for tenant in KEYS:  # sessions for the Mcp-Name cases, before anything is counted
        g.session(tenant)
    yield g
    g.stop()


def run_json_corpus(g: Guarded, name: str, attacks: list[dict], benign: list[dict], key: str, via_map) -> None:
    misses, false_positives = [], []
    start = g.count()
    for c in attacks:
        before = g.count()
        r = g.send(via_map(c["via"]), c[key], c.get("tenant", "anonymous"))
        ok = r.status_code == 400 and r.headers.get("content-type") == "application/json"
        ok = ok and r.json().get("error", {}).get("code") == -32602 and r.json().get("id") == 1
        ok = ok and r.json()["error"]["message"] == "Invalid params"
        if not ok or g.count() != before:
            misses.append(f"{c} -> {r.status_code} {r.text[:200]} (upstream records {g.count() - before})")
    time.sleep(0.2)
    leaked = g.count() - start
    for c in benign:
        before = g.count()
        r = g.send(via_map(c["via"]), c[key], c.get("tenant", "anonymous"))
        if g.count() != before + 1:
            false_positives.append(f"{c} -> {r.status_code} {r.text[:200]}")
    print(f"\n{name} (end to end): blocked {len(attacks) - len(misses)}/{len(attacks)}, "
          f"false positives {len(false_positives)}/{len(benign)}")
    for m in misses:
        print("  MISS", m)
    for f in false_positives:
        print("  FALSE POSITIVE", f)
    assert leaked == 0, f"{leaked} rejected requests reached the upstream"
    assert not misses and not false_positives


def test_traversal_corpus(guarded: Guarded):
    attacks = load("traversal_hand.jsonl") + load("traversal_generated.jsonl")
    benign = load("traversal_benign.jsonl")
    assert len(attacks) >= 300 and len(benign) >= 100
    run_json_corpus(guarded, "traversal", attacks, benign, "payload", lambda v: v)


def test_ssrf_corpus(guarded: Guarded):
    attacks, benign = load("ssrf.jsonl"), load("ssrf_benign.jsonl")
    assert len(attacks) >= 50 and len(benign) >= 30
    run_json_corpus(guarded, "ssrf", attacks, benign, "url", ssrf_via)


def test_generated_corpus_is_up_to_date():
    r = subprocess.run([sys.executable, CORPORA / "gen_traversal.py", "--check"], capture_output=True)
    assert r.returncode == 0, "traversal_generated.jsonl is stale: run conformance/corpora/gen_traversal.py"


# A status line at the start of the output or right after a previous
# response (a JSON body does not end with a line break).
STATUS = re.compile(rb"(?:^|(?<=[}\n]))HTTP/1\.[01] (\d{3}) ")


def send_raw(port: int, data: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Sends `data`, half-closes, reads until EOF; returns (bytes, closed by peer)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer closed mid-send (head too large): read what it answered
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return out, False
            except OSError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
    return out, False


def who_refused(log: str) -> str:
    m = re.search(r'rejected.*?filter="?([a-z_]+)', log)
    if m:
        return f"mcpgate:{m.group(1)}"
    if "reading request head" in log:
        return "http1:head"
    if "reading request body" in log:
        return "http1:body"
    return "nobody"


def test_raw_request_corpus(guarded: Guarded):
    cases = load("raw_requests.jsonl")
    attacks = [c for c in cases if c["stage"] not in ("control", "pipelined")]
    pipelined = [c for c in cases if c["stage"] == "pipelined"]
    controls = [c for c in cases if c["stage"] == "control"]
    assert len(attacks) >= 60 and controls
    host = f"127.0.0.1:{guarded.port}"
    misses, false_positives, misattributed, table = [], [], [], []
    for c in cases:
        data = c["raw"].replace("{HOST}", host).encode("latin-1")
        before, log_at = guarded.count(), guarded.log_size()
        out, closed = send_raw(guarded.port, data)
        time.sleep(0.05)
        statuses = [int(s) for s in STATUS.findall(out)]
        reached = guarded.count() - before
        who = who_refused(guarded.log_since(log_at))
        table.append((c["name"], statuses[0] if statuses else "closed", who))
        if c["stage"] == "control":
            if not statuses or reached != 1 or who != "nobody":
                false_positives.append(f"{c['name']}: {statuses} reached={reached} {who}")
            continue
        if c["stage"] == "pipelined":
            # The first request is refused; the bytes after its body are a
            # second request, answered in order and judged on its own.
            if len(statuses) != 2 or not 400 <= statuses[0] < 500 or reached != 1:
                misses.append(f"{c['name']}: responses {statuses}, reached the upstream {reached}x")
            if who != c["blocked_by"]:
                misattributed.append(f"{c['name']}: refused by {who}, corpus says {c['blocked_by']}")
            continue
        answered_4xx = len(statuses) == 1 and 400 <= statuses[0] < 500
        if not (answered_4xx or (not statuses and closed)) or reached:
            misses.append(f"{c['name']}: responses {statuses}, closed={closed}, reached the upstream {reached}x")
        if who != c["blocked_by"]:
            misattributed.append(f"{c['name']}: refused by {who}, corpus says {c['blocked_by']}")
    by_reader = [n for n, _, w in table if w.startswith("http1")]
    print(f"\nraw requests (end to end): blocked {len(attacks) + len(pipelined) - len(misses)}/"
          f"{len(attacks) + len(pipelined)} ({len(pipelined)} of them pipelined: refused first, "
          f"second judged on its own), false positives {len(false_positives)}/{len(controls)}")
    print(f"refused by the HTTP/1 reader before any filter ({len(by_reader)}/{len(attacks)}): {', '.join(by_reader)}")
    for name, status, who in table:
        print(f"  {name:38} {status!s:7} {who}")
    for m in misses + false_positives + misattributed:
        print("  PROBLEM", m)
    assert not misses and not false_positives
    assert not misattributed, "who refuses what changed: update blocked_by in raw_requests.jsonl and the README"


def test_upstream_header_with_a_line_break_is_not_relayed(tmp_path):
    """pingora's client accepts obsolete line folding in upstream responses
    (httparse turns the fold into spaces); whatever an upstream sends, no
    header line reaches the client that the upstream did not send as one line."""
    import threading

    body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Folded: first\r\n"
              b" Injected: yes\r\nX-Plain: kept\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    up_port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve_one():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(rest) < length:
                rest += conn.recv(65536)
            received.append(head)
            conn.sendall(answer)

    t = threading.Thread(target=serve_one, daemon=True)
    t.start()
    gate = harness.start_mcpgate(f"http://127.0.0.1:{up_port}/mcp")
    try:
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        raw = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gate.port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {LEGACY}\r\n"
               f"Content-Length: {len(ping)}\r\nConnection: close\r\n\r\n").encode() + ping
        out, _ = send_raw(gate.port, raw, timeout=10)
    finally:
        gate.stop()
        listener.close()
    t.join(5)
    assert received, "the request did not reach the test upstream"
    head = out.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200"), out[:300]
    lines = head.lower().split(b"\r\n")
    assert b"x-plain: kept" in lines, head
    assert not any(line.startswith(b"injected") for line in lines), head
    assert all(b"\r" not in line and b"\n" not in line for line in lines), head
