"""HTTP/1.1 on the wire, with raw sockets against the real binary (issue 10,
items 2 and 3).

- Pipelining (RFC 9112 §9.3.2): requests sent in one write on a keep-alive
  connection are all answered, in order, and all reach the upstream.
- Chunked framing (RFC 9112 §7.1): a framing two parsers could read
  differently is refused with 400 and the connection closed, before any byte
  reaches the upstream (the demo upstream's record file stays unchanged).
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
from negative.cases import modern, modern_headers  # noqa: E402
from test_negative_suite import Recorded, assert_untouched  # noqa: E402


@pytest.fixture(scope="module")
def rec():
    r = Recorded(harness.scratch_dir(), "")
    yield r
    r.stop()


def head_for(port: int, method: str, framing: str) -> bytes:
    headers = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    headers += [(k, v) for k, v in modern_headers(method) if k.lower() not in ("content-type", "accept")]
    lines = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{port}"] + [f"{k}: {v}" for k, v in headers] + [framing]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def modern_request(port: int, id_: int, method: str = "tools/list") -> bytes:
    body = json.dumps(modern(method, id_=id_)).encode()
    return head_for(port, method, f"content-length: {len(body)}") + body


def chunked_request(port: int, wire_body: bytes, method: str = "tools/list") -> bytes:
    return head_for(port, method, "transfer-encoding: chunked") + wire_body


def port_of(rec: Recorded) -> int:
    return int(rec.url.split(":")[2].split("/")[0])


class Reader:
    """Reads HTTP/1.1 responses (content-length or chunked) off a socket."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; unparsed: {self.buf[:200]!r}")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self) -> tuple[int, dict[str, str], bytes]:
        status = int(self._line().split()[1])
        headers: dict[str, str] = {}
        while line := self._line():
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                self._line()
            while self._line():
                pass
        else:
            body = self._take(int(headers.get("content-length", "0")))
        return status, headers, body

    def closed(self, within: float = 5.0) -> bool:
        self.sock.settimeout(within)
        try:
            while True:
                self._more()
        except EOFError:
            return True
        except (TimeoutError, socket.timeout):
            return False


def rpc_id(body: bytes) -> object:
    text = body.decode()
    if text.lstrip().startswith("{"):
        return json.loads(text)["id"]
    # SSE: the JSON-RPC answer is the data of the last event.
    data = [l[5:].strip() for l in text.splitlines() if l.startswith("data:") and l[5:].strip()]
    return json.loads(data[-1])["id"]


def connect(rec: Recorded) -> tuple[socket.socket, Reader]:
    s = socket.create_connection(("127.0.0.1", port_of(rec)), timeout=10)
    return s, Reader(s)


@pytest.mark.parametrize("count", [2, 5])
def test_pipelined_requests_are_all_answered_in_order(rec, count):
    before = rec.count()
    port = port_of(rec)
    s, r = connect(rec)
    with s:
        s.sendall(b"".join(modern_request(port, 100 + i) for i in range(count)))
        ids = []
        for _ in range(count):
            status, _, body = r.response()
            assert status == 200, body[:300]
            ids.append(rpc_id(body))
        assert ids == [100 + i for i in range(count)]
        # The connection stays usable after the pipelined batch.
        s.sendall(modern_request(port, 999))
        status, _, body = r.response()
        assert status == 200 and rpc_id(body) == 999
    time.sleep(0.1)
    assert rec.count() == before + count + 1, "every pipelined request reaches the upstream"


def test_a_pipelined_request_after_a_chunked_one_is_answered(rec):
    port = port_of(rec)
    body = json.dumps(modern("tools/list", id_=7)).encode()
    chunked = b"%x;name=value\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    s, r = connect(rec)
    with s:
        s.sendall(chunked_request(port, chunked) + modern_request(port, 8))
        got = [rpc_id(r.response()[2]) for _ in range(2)]
    assert got == [7, 8]


AMBIGUOUS = {
    "space-before-line-end": b"%x \r\n%s\r\n0\r\n\r\n",
    "tab-before-line-end": b"%x\t\r\n%s\r\n0\r\n\r\n",
    "bare-lf-in-extension": b"%x;a\nb\r\n%s\r\n0\r\n\r\n",
    "bare-cr-in-extension": b"%x;a\rb\r\n%s\r\n0\r\n\r\n",
    "extension-without-name": b"%x;\r\n%s\r\n0\r\n\r\n",
    "bare-lf-after-data": b"%x\r\n%s\n0\r\n\r\n",
    "folded-trailer": b"%x\r\n%s\r\n0\r\nX-T: a\r\n b\r\n\r\n",
    "trailer-without-colon": b"%x\r\n%s\r\n0\r\nbroken\r\n\r\n",
    "size-with-0x-prefix": b"0x%x\r\n%s\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_ambiguous_chunk_framing_is_refused_and_closed(rec, name):
    before = rec.count()
    port = port_of(rec)
    body = json.dumps(modern("tools/list", id_=3)).encode()
    wire = AMBIGUOUS[name].replace(b"%x", b"%x" % len(body), 1).replace(b"%s", body, 1)
    s, r = connect(rec)
    with s:
        s.sendall(chunked_request(port, wire))
        status, _, answer = r.response()
        assert status == 400, f"{name}: {status} {answer[:200]!r}"
        err = json.loads(answer)["error"]
        assert err["data"]["rule"].startswith("chunk"), err
        assert r.closed(), f"{name}: the connection must be closed after the refusal"
    assert_untouched(rec, before)


def test_well_formed_chunked_bodies_still_pass(rec):
    before = rec.count()
    port = port_of(rec)
    body = json.dumps(modern("tools/list", id_=4)).encode()
    half = len(body) // 2
    wire = b"%x ; a = b ;c=\"q s\"\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: v\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
    s, r = connect(rec)
    with s:
        s.sendall(chunked_request(port, wire))
        status, _, answer = r.response()
    assert status == 200, answer[:300]
    assert rpc_id(answer) == 4
    time.sleep(0.05)
    assert rec.count() == before + 1
