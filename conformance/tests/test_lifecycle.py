"""Process lifecycle of `mcpgate run` (issue 10, items 6 to 9).

Signals go to the supervisor's pid only (never its process group), as a
service manager or `kill PID` would send them. Workers are found through
/proc: processes whose command line holds `worker` and the test's own config
path. Every instance a test starts is killed at teardown, workers included.

- SIGTERM/SIGINT drain: an in-flight call gets its full answer, new
  connections are refused, exit 0 with a "drain" log line;
  `[shutdown] grace_secs` cuts what is still running; a second signal ends the
  drain at once; a held stream ends with its chunked terminator.
- SIGHUP does not stop the supervisor; SIGKILL of the supervisor takes the
  workers with it; a clean exit removes the runtime dir.
- A second instance on a served address, or an address held by another
  socket, is an error naming the address; "mcpgate listening" only after a bind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import LEGACY, LEGACY_H, POST_HEADERS, init, modern, modern_headers, note, req  # noqa: E402


# --- a raw HTTP/1.1 connection: the test knows which connection a request uses ---

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        """The JSON-RPC message: the body, or the last `data:` event of an SSE body."""
        text = self.body.decode()
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            text = [ln[5:] for ln in text.splitlines() if ln.startswith("data:") and ln[5:].strip()][-1]
        return json.loads(text)


class Http:
    """One keep-alive client connection. Reads raise EOFError when the peer
    closes (or resets) before a complete message; a socket timeout propagates."""

    def __init__(self, port: int, timeout: float = 15.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def send(self, method: str, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        head = f"{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)

    def post(self, msg: dict, headers: list[tuple[str, str]]) -> None:
        self.send("POST", headers, json.dumps(msg).encode())

    def _line(self) -> bytes:
        try:
            line = self.f.readline()
        except ConnectionError as e:
            raise EOFError(str(e)) from e
        if not line.endswith(b"\r\n"):
            raise EOFError(f"connection closed mid-message (read {line!r})")
        return line

    def _read(self, n: int) -> bytes:
        try:
            data = self.f.read(n)
        except ConnectionError as e:
            raise EOFError(str(e)) from e
        if len(data) < n:
            raise EOFError("connection closed mid-body")
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        status = int(self._line().split()[1])
        headers = {}
        while (line := self._line()) != b"\r\n":
            k, v = line.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def chunks(self) -> Iterator[bytes]:
        """The chunks of a chunked body, up to and including its terminator."""
        while size := int(self._line().split(b";")[0], 16):
            yield self._read(size)
            assert self._read(2) == b"\r\n", "chunk data not followed by CRLF"
        while self._line() != b"\r\n":  # trailers
            pass

    def answer(self) -> Answer:
        status, h = self.head()
        if status in (202, 204):
            body = b""
        elif "content-length" in h:
            body = self._read(int(h["content-length"]))
        else:
            body = b"".join(self.chunks())
        return Answer(status, h, body)

    def request(self, msg: dict, headers: list[tuple[str, str]]) -> Answer:
        self.post(msg, headers)
        return self.answer()

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def slow_call(port: int, delay_ms: int, size: int = 1000, id_: int = 1, extra_headers: list | None = None) -> Http:
    """A stateless `payload` call on a new connection, sent and not yet answered."""
    c = Http(port)
    c.post(modern("tools/call", {"name": "payload", "arguments": {"size": size, "delay_ms": delay_ms}}, id_=id_),
           modern_headers("tools/call", "payload") + (extra_headers or []))
    return c


def payload_ok(a: Answer, size: int, id_: int) -> bool:
    if a.status != 200:
        return False
    msg = a.json()
    return msg.get("id") == id_ and "result" in msg and len(msg["result"]["content"][0]["text"]) == size


def new_connection_answer(port: int, timeout: float = 5.0) -> str | None:
    """None when a new connection is refused, or closed/reset without an answer;
    otherwise what it answered (or that it hung)."""
    try:
        c = Http(port, timeout)
    except ConnectionError:
        return None
    try:
        c.post(modern("tools/list"), modern_headers("tools/list"))
        data = c.sock.recv(200)
    except ConnectionError:
        return None
    except TimeoutError:
        return f"accepted and neither answered nor closed within {timeout}s"
    finally:
        c.close()
    return data.decode(errors="replace") or None


def legacy_session(c: Http) -> str:
    a = c.request(init(), POST_HEADERS)
    assert a.status == 200, a
    sid = a.headers["mcp-session-id"]
    assert c.request(note("notifications/initialized"), LEGACY_H + [("mcp-session-id", sid)]).status == 202
    return sid


# --- instances of `mcpgate run`, always cleaned up ---

def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Gate:
    """`mcpgate run --config <own file> --workers N`."""

    def __init__(self, upstream: str, toml: str = "", workers: int = 2, port: int | None = None, wait: bool = True,
                 listen: str = ""):
        self.port = port or harness.free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.cfg = Path(harness.write_mcpgate_config(upstream, self.port))
        self.cfg.write_text(f'[listen]\naddress = "{self.addr}"\npath = "/mcp"\n{listen}[upstream]\nurl = "{upstream}"\n{toml}')
        self.proc = harness.Proc("mcpgate-lifecycle", [harness.mcpgate_bin(), "run", "--config", self.cfg,
                                                       "--workers", str(workers)], env={"RUST_LOG": "info"})
        self.pid = self.proc.popen.pid
        if wait:
            self.proc.wait_port(self.port, timeout=20)

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.popen.poll() is None

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def exit_code(self, within: float) -> int:
        try:
            return self.proc.popen.wait(max(within, 0.1))
        except subprocess.TimeoutExpired:
            pass
        pytest.fail(f"mcpgate (pid {self.pid}) still running {within:.1f}s later:\n{self.proc.log_tail(8)}")

    def workers(self) -> list[int]:
        """Live worker processes of this instance (by command line)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                args = d.joinpath("cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"worker" in args and str(self.cfg).encode() in args and alive(int(d.name)):
                out.append(int(d.name))
        return out

    def wait_workers(self, n: int, within: float = 10) -> list[int]:
        """The instance's workers once there are `n` of them: the port answers as soon as the
        supervisor has bound it, which can be before its workers have been spawned."""
        deadline = time.monotonic() + within
        while len(found := self.workers()) != n and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def kill(self) -> None:
        if self.running():
            self.proc.popen.kill()
            self.proc.popen.wait(5)
        for pid in self.workers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def gates():
    started: list[Gate] = []

    def start(*args, **kw) -> Gate:
        g = Gate(*args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.kill()


@pytest.fixture(scope="module")
def upstream():
    port = harness.free_port()
    proc = harness.Proc("demo-upstream-lifecycle", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}",
                                                    "--notify-interval-ms", "200"])
    proc.wait_port(port)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.stop()


def drain_lines(log: str) -> list[str]:
    """Log lines mentioning a drain and carrying a count (timestamp and worker index left out)."""
    lines = [re.sub(r"^\S*\d{4}-\d\d-\d\dT\S+|\bworkers?=\d+", "", ln) for ln in log.splitlines()]
    return [ln for ln in lines if "drain" in ln.lower() and re.search(r"\d", ln)]


# --- item 6: drain on SIGTERM / SIGINT ---

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_the_call_in_flight_refuses_new_connections_and_exits_0(upstream, gates, sig):
    g = gates(upstream)
    c = slow_call(g.port, delay_ms=3000, size=1000, id_=41)
    time.sleep(1.0)
    t_sig = time.monotonic()
    g.signal(sig)
    time.sleep(0.5)
    probes = [new_connection_answer(g.port) for _ in range(3)]
    try:
        a: Answer | str = c.answer()
    except EOFError as e:
        a = str(e)
    assert isinstance(a, Answer), f"the call in flight at {sig.name} got no complete answer: {a}"
    assert payload_ok(a, 1000, 41), a
    assert probes == [None] * 3, f"new connections after {sig.name} were answered: {probes}"
    rc = g.exit_code(within=t_sig + 8 - time.monotonic())
    assert rc == 0, g.proc.log_tail()
    assert drain_lines(g.log()), f"no 'drain' log line with counts:\n{g.proc.log_tail()}"


def test_grace_secs_cuts_a_call_still_running(upstream, gates):
    g = gates(upstream, "[shutdown]\ngrace_secs = 2\n")
    c = slow_call(g.port, delay_ms=10_000, id_=42)
    time.sleep(1.0)
    t_sig = time.monotonic()
    g.signal(signal.SIGTERM)
    try:
        a = c.answer()
    except EOFError:
        a = None
    cut_after = time.monotonic() - t_sig
    assert a is None or not payload_ok(a, 1000, 42), f"a 10 s call finished within a 2 s grace: {a}"
    assert 1.5 <= cut_after <= 4.5, f"the call was cut {cut_after:.1f}s after SIGTERM (grace 2 s)"
    assert g.exit_code(within=t_sig + 6 - time.monotonic()) == 0


def test_a_second_signal_ends_the_drain_at_once(upstream, gates):
    g = gates(upstream, "[shutdown]\ngrace_secs = 30\n")
    c = slow_call(g.port, delay_ms=10_000, id_=43)
    time.sleep(1.0)
    g.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert g.running(), f"exited before its call was done (grace 30 s):\n{g.proc.log_tail()}"
    t2 = time.monotonic()
    g.signal(signal.SIGTERM)
    g.exit_code(within=2.5)
    print(f"\nexited {time.monotonic() - t2:.2f}s after the second SIGTERM")
    c.close()


# --- held streams end with their terminator ---

def open_get_stream(port: int) -> Http:
    c = Http(port)
    sid = legacy_session(c)
    c.send("GET", [("Accept", "text/event-stream"), ("MCP-Protocol-Version", LEGACY), ("Mcp-Session-Id", sid)])
    return c


def open_listen_stream(port: int) -> Http:
    c = Http(port)
    c.post(modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, id_="listen-1"),
           modern_headers("subscriptions/listen"))
    return c


@pytest.mark.parametrize("opener", [open_get_stream, open_listen_stream], ids=["legacy-GET", "subscriptions-listen"])
def test_held_stream_ends_with_its_terminator_on_sigterm(upstream, gates, opener):
    grace = 3
    g = gates(upstream, f"[shutdown]\ngrace_secs = {grace}\n")
    c = opener(g.port)
    status, h = c.head()
    assert status == 200 and h.get("transfer-encoding") == "chunked", (status, h)
    chunks = c.chunks()
    assert b"data:" in next(chunks)
    c.sock.settimeout(grace + 2)
    t_sig = time.monotonic()
    g.signal(signal.SIGTERM)
    try:
        for _ in chunks:  # events still flowing, then the terminator
            assert time.monotonic() - t_sig < grace + 2
        ended = "cleanly"
    except EOFError as e:
        ended = f"cut without its chunked terminator: {e}"
    except TimeoutError:
        ended = f"still open {grace + 2}s after SIGTERM (grace {grace} s)"
    assert ended == "cleanly", f"the stream was {ended}"
    assert g.exit_code(within=t_sig + grace + 5 - time.monotonic()) == 0
    c.close()


# --- item 7: SIGHUP, SIGKILL, runtime dir ---

def served(port: int) -> bool:
    c = Http(port, 5)
    try:
        return c.request(modern("tools/list"), modern_headers("tools/list")).status == 200
    finally:
        c.close()


def test_sighup_keeps_the_supervisor_and_its_workers(upstream, gates):
    g = gates(upstream)
    assert len(g.wait_workers(2)) == 2, g.proc.log_tail()
    g.signal(signal.SIGHUP)
    time.sleep(3)
    assert g.running(), f"the supervisor exited on SIGHUP (rc {g.proc.popen.returncode}):\n{g.proc.log_tail()}"
    assert all(served(g.port) for _ in range(5))
    workers = g.wait_workers(2)
    assert len(workers) == 2 and all(ppid_of(p) == g.pid for p in workers), \
        {p: ppid_of(p) for p in workers}


def test_sigkill_of_the_supervisor_takes_the_workers_with_it(upstream, gates):
    g = gates(upstream)
    workers = g.wait_workers(2)
    assert len(workers) == 2, g.proc.log_tail()
    g.signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), f"orphaned workers still running 5 s later: {g.workers()}"
    assert new_connection_answer(g.port) is None, "the port still answers"


def test_clean_exit_removes_the_runtime_dir(upstream, gates):
    g = gates(upstream)
    m = re.search(r"supervisor started workers.*instance=([0-9a-f]+)", g.log())
    assert m, g.proc.log_tail()
    env = dict(e.split(b"=", 1) for e in Path(f"/proc/{g.pid}/environ").read_bytes().split(b"\0") if b"=" in e)
    runtime = Path(env.get(b"TMPDIR", b"/tmp").decode()) / f"mcpgate-{m.group(1)}"
    assert runtime.is_dir(), runtime
    g.signal(signal.SIGTERM)
    assert g.exit_code(within=10) == 0
    assert not runtime.exists(), f"{runtime} left behind: {list(runtime.iterdir())}"


# --- items 8, 9: the address is one instance's ---

def test_a_second_instance_on_a_served_address_exits_naming_it(upstream, gates):
    first = gates(upstream)
    c = Http(first.port)
    sid = legacy_session(c)
    c.close()
    second = gates(upstream, port=first.port, wait=False)
    rc = second.exit_code(within=10)
    assert rc != 0
    assert first.addr in second.log(), second.proc.log_tail()
    assert first.running()
    # Only the first answers: its session (random key per run) works on every new connection.
    for i in range(20):
        c = Http(first.port)
        a = c.request(req("tools/list", 100 + i), LEGACY_H + [("mcp-session-id", sid)])
        c.close()
        assert a.status == 200, (i, a)


def test_an_address_held_by_another_socket_is_an_error_and_never_logged_as_listening(upstream, gates):
    with socket.socket() as holder:  # no SO_REUSEPORT: nobody may join it
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        g = gates(upstream, port=holder.getsockname()[1], wait=False)
        rc = g.exit_code(within=10)
    log = g.log()
    assert rc != 0, g.proc.log_tail(10)
    assert g.addr in log, g.proc.log_tail(10)
    early = [ln for ln in log.splitlines() if "mcpgate listening" in ln]
    assert not early, f"logged as listening though the bind failed: {early[:2]}"
