"""Long-lived streams after their head: held streams and the HTTP/2 upstream.

Once the head of a legacy GET stream or a `subscriptions/listen` stream is
relayed, mcpgate drops the request handler and relays the rest from a small
held-stream state, reading the upstream's chunked body with its own decoder
(see proxy/src/upstream/held.rs and h1_stream.rs). These tests watch that path on the
wire, with raw sockets, against the demo upstream:

- an upstream that ends the stream cleanly ends it for the client too, and the
  client's connection then serves its next request;
- an upstream that dies mid-stream gives the client a JSON-RPC error event and
  a properly ended body;
- a client that leaves frees the upstream side (its connection is closed);
- with `http2 = true` many streams and requests share one upstream connection.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import LEGACY, META  # noqa: E402

TIMEOUT = 10.0


def start_upstream() -> tuple[harness.Proc, int]:
    port = harness.free_port()
    proc = harness.Proc("demo-upstream-held", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}",
                                               "--notify-interval-ms", "100"])
    proc.wait_port(port)
    return proc, port


class Conn:
    """One client connection speaking raw HTTP/1.1."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.f = self.sock.makefile("rb")

    def send(self, method: str, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        head = f"{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self.f.readline().split()[1])
        headers = {}
        while (line := self.f.readline()) not in (b"\r\n", b""):
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def chunk(self) -> bytes | None:
        """The next chunk's data; None at the last chunk (trailers read)."""
        size_line = self.f.readline()
        assert size_line.endswith(b"\r\n"), f"broken chunk framing: {size_line!r}"
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while self.f.readline() not in (b"\r\n", b""):
                pass
            return None
        data = self.f.read(size)
        assert self.f.read(2) == b"\r\n", "chunk data not followed by CRLF"
        return data

    def body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return self.f.read(int(headers["content-length"]))
        out = b""
        while (c := self.chunk()) is not None:
            out += c
        return out

    def request(self, method: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, dict, bytes]:
        self.send(method, headers, body)
        status, h = self.head()
        return status, h, self.body(h) if status not in (202, 204) else b""

    def close(self) -> None:
        self.f.close()
        self.sock.close()


POST_H = [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]


def initialize(c: Conn) -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "held-test", "version": "1"}}}).encode()
    status, h, _ = c.request("POST", POST_H, body)
    assert status == 200
    sid = h["mcp-session-id"]
    note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    status, _, _ = c.request("POST", POST_H + [("MCP-Protocol-Version", LEGACY), ("Mcp-Session-Id", sid)], note)
    assert status == 202
    return sid


def open_listen(c: Conn, n: int) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": f"listen-{n}", "method": "subscriptions/listen",
                       "params": {"notifications": {"toolsListChanged": True}, "_meta": META}}).encode()
    c.send("POST", POST_H + [("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "subscriptions/listen")], body)


def upstream_connections(up_port: int) -> int:
    """Established TCP connections whose remote end is the upstream's port."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[2].split(":")[1], 16) == up_port:
            n += 1
    return n


@pytest.fixture
def rig():
    up, up_port = start_upstream()
    gate = harness.start_mcpgate(f"http://127.0.0.1:{up_port}/mcp", workers=1)
    yield up, up_port, gate.port
    gate.stop()
    up.stop()


def test_stream_ended_by_the_upstream_ends_cleanly_and_the_connection_serves_again(rig):
    _, _, port = rig
    a = Conn(port)
    sid = initialize(a)
    a.send("GET", [("Accept", "text/event-stream"), ("MCP-Protocol-Version", LEGACY), ("Mcp-Session-Id", sid)])
    status, h = a.head()
    assert status == 200 and h["content-type"].startswith("text/event-stream")
    assert h.get("transfer-encoding") == "chunked"
    assert b"data:" in a.chunk()
    b = Conn(port)
    status, _, _ = b.request("DELETE", [("MCP-Protocol-Version", LEGACY), ("Mcp-Session-Id", sid)])
    assert status == 200
    end = time.monotonic() + TIMEOUT
    while a.chunk() is not None:  # events already in flight, then the last chunk
        assert time.monotonic() < end
    # Same connection, next request.
    assert initialize(a) != sid
    a.close()
    b.close()


def test_upstream_dying_mid_stream_gives_an_error_event_and_an_ended_body(rig):
    up, _, port = rig
    c = Conn(port)
    open_listen(c, 1)
    status, _ = c.head()
    assert status == 200
    assert b"subscriptions/acknowledged" in c.chunk()
    up.stop()
    errors = []
    while (data := c.chunk()) is not None:
        for line in data.decode().splitlines():
            if line.startswith("data:") and '"error"' in line:
                errors.append(json.loads(line[5:]))
    assert errors, "an error event before the end of the stream"
    assert errors[-1]["id"] == "listen-1" and errors[-1]["error"]["code"] < -32000
    assert c.sock.recv(1) == b"", "the connection is closed after a failed stream"
    c.close()


def test_a_client_leaving_frees_the_upstream_side(rig):
    _, up_port, port = rig
    before = upstream_connections(up_port)
    clients = []
    for n in range(20):
        c = Conn(port)
        open_listen(c, n)
        assert c.head()[0] == 200
        clients.append(c)
    assert upstream_connections(up_port) >= before + 20
    for c in clients:
        c.close()
    end = time.monotonic() + TIMEOUT
    while upstream_connections(up_port) > before and time.monotonic() < end:
        time.sleep(0.1)
    assert upstream_connections(up_port) <= before


def test_http2_upstream_multiplexes_streams_and_requests():
    up, up_port = start_upstream()
    gate = harness.start_mcpgate(f"http://127.0.0.1:{up_port}/mcp", workers=1, extra_toml="http2 = true\n")
    clients = []
    try:
        for n in range(50):
            c = Conn(gate.port)
            open_listen(c, n)
            status, h = c.head()
            assert status == 200 and h["content-type"].startswith("text/event-stream")
            clients.append(c)
        for c in clients:
            assert b"subscriptions/acknowledged" in c.chunk()
        legacy = Conn(gate.port)
        sid = initialize(legacy)
        legacy.send("GET", [("Accept", "text/event-stream"), ("MCP-Protocol-Version", LEGACY), ("Mcp-Session-Id", sid)])
        assert legacy.head()[0] == 200
        assert b"data:" in legacy.chunk()
        call = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": "over h2"}, "_meta": META}}).encode()
        c = Conn(gate.port)
        status, _, body = c.request("POST", POST_H + [("MCP-Protocol-Version", "2026-07-28"),
                                                       ("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")], call)
        assert status == 200 and "over h2" in body.decode()
        # 51 streams and 3 requests, over HTTP/1 that would be 51+ connections.
        # The least of a few samples: an active health check is a short extra connect.
        samples = []
        for _ in range(5):
            samples.append(upstream_connections(up_port))
            time.sleep(0.05)
        assert 1 <= min(samples) <= 2, samples
        for cl in clients[:5]:
            assert b"tools/list_changed" in cl.chunk()
    finally:
        for c in clients:
            c.close()
        gate.stop()
        up.stop()
