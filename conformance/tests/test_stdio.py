"""Stdio upstreams (`[upstreams.NAME] command`): MCP servers that speak only
stdio, spawned and pooled by mcpgate, behind the same chain as HTTP servers.

Real servers: npm `@modelcontextprotocol/server-filesystem` (rooted at a
test directory with a secret file beside it) and npm `server-everything`,
both over stdio, and conformance/upstreams/stdio_server.py (PyPI `mcp`): it
reports its environment, descriptors and limits, and crashes, hangs or writes
garbage on request. Clients: the official Python SDK in both revisions
(`mode="legacy"`: 2025-11-25 sessions, per-session workers; `mode="auto"`:
2026-07-28, shared workers), and raw HTTP where the exact answer matters.
After every test no worker process is left: each command line carries a
marker the test looks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import anyio
import httpx
import pytest

import harness
from raw_session import RawSession, messages

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
SECRET = "TOP-SECRET-" + uuid.uuid4().hex


def processes_with(marker: str) -> list[int]:
    """Processes whose command line or environment holds `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in seen:
            found.append(int(pid))
    return found


class StdioGate:
    """mcpgate with one stdio pool. Every worker's environment carries a
    marker the test finds leftover processes by."""

    def __init__(self, command: list[str], pool_keys: str = "", env: dict[str, str] | None = None,
                 tables: str = "", workers: int = 1, listen_keys: str = ""):
        self.marker = "mcpgate-stdio-test-" + uuid.uuid4().hex[:12]
        self.admin = harness.free_port()
        port = harness.free_port()
        env = {"MCPGATE_TEST_MARKER": self.marker, **(env or {})}
        toml = (f'[listen]\naddress = "127.0.0.1:{port}"\n{listen_keys}[admin]\naddress = "127.0.0.1:{self.admin}"\n'
                f'[upstreams.default]\ncommand = {json.dumps(command)}\n{pool_keys}\n'
                f'[upstreams.default.env]\n' + "".join(f'{k} = {json.dumps(v)}\n' for k, v in env.items()) + tables)
        self.config = harness.write_config_text(toml)
        self.gate = harness.start_mcpgate_with(self.config, port, workers=workers, admin=self.admin)
        self.url = self.gate.url

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.admin}/metrics").text

    def log(self) -> str:
        return self.gate.proc.log.read_text()

    def stop(self) -> None:
        self.gate.stop()
        deadline = time.monotonic() + 10
        while processes_with(self.marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with(self.marker) == [], "a worker process was left behind"


def python_gate(pool_keys: str = "", env: dict[str, str] | None = None, tables: str = "") -> StdioGate:
    return StdioGate([str(harness.VENV_PY), str(harness.STDIO_SERVER)], pool_keys, env, tables)


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


def modern(url: str, method: str, params: dict | None = None, name: str | None = None, rid: object = 1,
           timeout: float = 30) -> tuple[httpx.Response, dict]:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": MODERN, "mcp-method": method}
    if name:
        headers["mcp-name"] = name
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**(params or {}), "_meta": META}}
    r = httpx.post(url, json=body, headers=headers, timeout=timeout)
    answer = [m for m in messages(r) if m.get("id") == rid]
    assert len(answer) == 1, (r.status_code, r.text)
    return r, answer[0]


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


# --- server-filesystem -------------------------------------------------------


@pytest.fixture(scope="module")
def filesystem():
    base = harness.scratch_dir() / "fs"
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from the root\n")
    (base / "secret.txt").write_text(SECRET + "\n")
    os.symlink(base / "secret.txt", root / "link-to-secret.txt")
    tables = ('[paths]\nheuristic = true\n[paths.tools]\nread_text_file = ["/path"]\nread_file = ["/path"]\n'
              'write_file = ["/path"]\nlist_directory = ["/path"]\nget_file_info = ["/path"]\n')
    g = StdioGate([str(harness.NODE22), str(harness.SERVER_FILESYSTEM), str(root)], tables=tables)
    yield g, root
    g.stop()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_server_filesystem_through_the_python_sdk(filesystem, mode):
    from mcp import Client

    g, root = filesystem

    async def run() -> dict:
        got = {}
        with anyio.fail_after(60):
            async with Client(g.url, mode=mode) as c:
                got["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
                got["hello"] = text_of(await c.call_tool("read_text_file", {"path": str(root / "hello.txt")}))
                await c.call_tool("write_file", {"path": str(root / "sub" / f"{mode}.txt"), "content": mode})
                got["listing"] = text_of(await c.call_tool("list_directory", {"path": str(root / "sub")}))
                secret = await c.call_tool("read_text_file", {"path": str(root.parent / "secret.txt")})
                got["secret"] = (secret.is_error, text_of(secret))
        return got

    got = anyio.run(run)
    assert "read_text_file" in got["tools"] and "write_file" in got["tools"] and len(got["tools"]) >= 10
    assert got["hello"] == "hello from the root\n"
    assert f"{mode}.txt" in got["listing"]
    assert (root / "sub" / f"{mode}.txt").read_text() == mode
    assert got["secret"][0] and SECRET not in got["secret"][1]


def traversal_paths(root: Path) -> list[str]:
    """The traversal corpus, aimed at the secret beside the root: every
    payload as sent, and appended to the root."""
    corpora = harness.ROOT / "conformance" / "corpora"
    payloads = [json.loads(line)["payload"]
                for name in ("traversal_hand.jsonl", "traversal_generated.jsonl")
                for line in (corpora / name).read_text().splitlines() if line.strip()]
    aimed = [f"{root}/../secret.txt", f"{root}/./../secret.txt", f"{root}/%2e%2e/secret.txt",
             f"{root}/..%2fsecret.txt", f"{root}/.../secret.txt", f"{root}/sub/../../secret.txt",
             f"{root}/link-to-secret.txt", str(root.parent / "secret.txt"), f"{root}\\..\\secret.txt",
             f"file://{root}/../secret.txt", f"{root}/..\u2215secret.txt", f"{root}/\uff0e\uff0e/secret.txt"]
    return aimed + payloads + [f"{root}/{p}" for p in payloads]


def test_the_traversal_corpus_never_reads_the_secret(filesystem):
    g, root = filesystem
    s = RawSession(g.url)
    paths = traversal_paths(root)
    assert len(paths) >= 700
    refused_by_mcpgate = refused_by_server = 0
    for i, path in enumerate(paths):
        tool = "read_text_file" if i % 2 == 0 else "get_file_info"
        r, a = s.request("tools/call", {"name": tool, "arguments": {"path": path}})
        assert SECRET not in r.text, path
        if r.status_code == 400 and a["error"]["code"] == -32602:
            refused_by_mcpgate += 1
        else:
            refused_by_server += 1
            assert "error" in a or a["result"].get("isError"), (path, a)
    print(f"traversal against server-filesystem: {len(paths)} paths, secret read 0 times, "
          f"refused by mcpgate {refused_by_mcpgate}, by the server {refused_by_server}")
    assert refused_by_mcpgate > len(paths) // 2


# --- the Python stdio server -------------------------------------------------


def test_workers_start_clean_and_limited():
    g = python_gate('env_passthrough = ["LANG"]\n', env={"MARKER": "1"},
                    tables='[upstreams.default.limits]\nopen_files = 64\nmemory_mb = 4096\n')
    try:
        s = RawSession(g.url)
        a = s.call("tools/call", {"name": "whoami", "arguments": {}})
        me = json.loads(a["result"]["content"][0]["text"])
        # An empty environment but for what the policy names.
        assert set(me["env"]) <= {"LANG", "MARKER", "MCPGATE_TEST_MARKER"} and "MARKER" in me["env"], me["env"]
        # No descriptor but its pipes; its own process group; the limits.
        assert me["start_fds"] == [0, 1, 2], me["start_fds"]
        assert me["pgid"] == me["pid"]
        assert me["limits"]["Max open files"] == "64"
        assert me["limits"]["Max address space"] == str(4096 * 1024 * 1024)
        # Each session its own worker.
        other = json.loads(RawSession(g.url).call("tools/call", {"name": "whoami", "arguments": {}})
                           ["result"]["content"][0]["text"])
        assert other["pid"] != me["pid"]
        log = g.log()
        assert "stdio worker spawned" in log and f"pid=Some({me['pid']})" in log
        assert metric(g.metrics(), "mcpgate_stdio_workers_total", event="spawned") >= 2
    finally:
        g.stop()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_progress_sampling_elicitation_and_cancellation(mode):
    from mcp import Client
    from mcp.shared.exceptions import MCPError
    from mcp.types import CreateMessageResult, ElicitResult, TextContent

    async def sampling(ctx, params):
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"), model="m")

    async def elicitation(ctx, params):
        return ElicitResult(action="accept", content={"name": "Ann"})

    g = python_gate()
    try:
        async def run() -> dict:
            got: dict = {"progress": []}

            async def on_progress(p, total, message):
                got["progress"].append(p)

            with anyio.fail_after(60):
                async with Client(g.url, mode=mode, sampling_callback=sampling,
                                  elicitation_callback=elicitation) as c:
                    got["prompts"] = [p.name for p in (await c.list_prompts()).prompts]
                    got["resource"] = (await c.read_resource("test://static")).contents[0].text
                    got["done"] = text_of(await c.call_tool("progress", {"steps": 3}, progress_callback=on_progress))
                    for tool, args in (("sample", {"prompt": "q"}), ("elicit", {"message": "name?"})):
                        try:
                            got[tool] = text_of(await c.call_tool(tool, args))
                        except MCPError as e:
                            got[tool] = f"error {e.error.code}: {e.error.message}"
                    # Cancellation: the client gives up on a slow call.
                    with anyio.move_on_after(0.5):
                        await c.call_tool("slow", {"seconds": 30})
                    await anyio.sleep(0.5)
                    got["whoami"] = json.loads(text_of(await c.call_tool("whoami", {})))
            return got

        got = anyio.run(run)
    finally:
        g.stop()
    assert got["prompts"] == ["greet"] and got["resource"] == "static content"
    assert got["done"] == "done 3" and got["progress"] == [1.0, 2.0, 3.0]
    if mode == "legacy":
        # Per-session workers: the worker's requests reach the client.
        assert got["sample"] == "sampled: forty-two"
        assert got["elicit"] == 'elicited: accept {"name": "Ann"}'
        assert got["whoami"]["cancelled"] == 1, "the abandoned call was cancelled at the worker"
    else:
        # The Python server speaks 2026-07-28 itself and gets the request as
        # sent; it has no back-channel for requests of its own there (a
        # server would answer input_required instead), and says so.
        assert "no back-channel" in got["sample"], got["sample"]
        assert "no back-channel" in got["elicit"], got["elicit"]


def test_shared_workers_multiplex_clients_with_the_same_ids():
    g = python_gate('mode = "shared"\nmax_workers = 2\nmin_idle = 1\n')
    try:
        results = {}

        def call(i: int) -> None:
            r, a = modern(g.url, "tools/call", {"name": "echo", "arguments": {"text": f"client {i}"}},
                          name="echo", rid=1)
            results[i] = a["result"]["content"][0]["text"]

        # Twenty clients at once, every one using id 1.
        import threading
        threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: f"client {i}" for i in range(20)}
        # Legacy sessions are served by the same workers.
        s = RawSession(g.url)
        assert s.call("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}})["result"]["content"][0]["text"] == "5"
        r, a = modern(g.url, "server/discover")
        assert a["result"]["supportedVersions"] == [MODERN] and "tools" in a["result"]["capabilities"]
        r, a = modern(g.url, "tools/list")
        assert a["result"]["resultType"] == "complete" and a["result"]["cacheScope"] == "private"
        assert metric(g.metrics(), "mcpgate_stdio_workers_total", event="spawned") <= 2
    finally:
        g.stop()


def session_once_ready(url: str, within_s: float = 15) -> RawSession:
    """A session, retried while the pool's first Python worker is still
    starting: on a loaded machine its start alone can outlast a short
    request deadline (the initialize then ends in a JSON-RPC error)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return RawSession(url)
        except (AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.parametrize("misbehaviour", ["crash", "garbage", "long_line", "hang"])
def test_a_broken_worker_fails_its_requests_ends_its_session_and_is_replaced(misbehaviour):
    g = python_gate('max_line_bytes = 65536\nrequest_timeout_ms = 2000\nmax_request_ms = 2000\n'
                    'kill_grace_ms = 200\n')
    try:
        s = session_once_ready(g.url)
        pid = json.loads(s.call("tools/call", {"name": "whoami", "arguments": {}})["result"]["content"][0]["text"])["pid"]
        args = {"crash": {"code": 3}, "long_line": {"bytes": 200_000}}.get(misbehaviour, {})
        r, a = s.request("tools/call", {"name": misbehaviour, "arguments": args})
        # The request in flight gets a JSON-RPC error (the tool writes its
        # garbage before it would answer).
        assert "error" in a, (r.status_code, r.text)
        # The worker is gone; its session gets 404 (the client re-initializes).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        else:
            raise AssertionError(f"worker {pid} still runs after {misbehaviour}")
        r = s.post({"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "again"}}})
        assert r.status_code == 404, r.text
        # A new session gets a new worker (after a crash, once the respawn
        # delay for a worker that exited young has passed).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                fresh = RawSession(g.url)
                break
            except AssertionError:
                time.sleep(0.3)
        assert fresh.call("tools/call", {"name": "echo", "arguments": {"text": "fresh"}}
                          )["result"]["content"][0]["text"] == "fresh"
        assert "stdio worker exited" in g.log()
    finally:
        g.stop()


def test_per_session_workers_behind_two_mcpgate_processes():
    """Two mcpgate worker processes, each with its own stdio pool. Every
    request goes on a new connection, so the kernel spreads them over both
    processes; each session's requests still reach the one stdio worker
    that serves it (the process that owns the session relays them), and a
    DELETE arriving at either process ends that worker."""
    g = StdioGate([str(harness.VENV_PY), str(harness.STDIO_SERVER)], "min_idle = 1\n", workers=2,
                  listen_keys="expose_worker_header = true\n")
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        sessions = [RawSession(g.url, http=httpx.Client(timeout=30, limits=fresh)) for _ in range(4)]
        arrived_at, owners = set(), {}
        for s in sessions:
            pids = set()
            for _ in range(6):
                r, a = s.request("tools/call", {"name": "whoami", "arguments": {}})
                assert r.status_code == 200, r.text
                arrived_at.add(r.headers["x-mcpgate-worker"])
                pids.add(json.loads(a["result"]["content"][0]["text"])["pid"])
            assert len(pids) == 1, f"one session, several workers: {pids}"
            owners[s.sid] = pids.pop()
        assert len(set(owners.values())) == len(sessions), "two sessions shared a per-session worker"
        assert arrived_at == {"0", "1"}, f"requests reached only worker process(es) {arrived_at}"
        for s in sessions:
            r = s.http.delete(g.url, headers=s.headers())
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in owners.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in owners.values()), "DELETE left a worker running"
        for s in sessions:
            r = s.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})
            assert r.status_code == 404, r.text
    finally:
        g.stop()


def test_stderr_reaches_the_log_rate_limited():
    g = python_gate()
    try:
        s = RawSession(g.url)
        s.call("tools/call", {"name": "log_stderr", "arguments": {"lines": 500}})
        time.sleep(1.5)
        s.call("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        log = g.log()
        logged = log.count("stdio worker stderr: stderr line")
        assert 1 <= logged <= 40, logged
        assert "lines not logged (rate limit)" in log
    finally:
        g.stop()


# --- server-everything over stdio ------------------------------------------


def test_server_everything_over_stdio():
    from mcp import Client

    g = StdioGate([str(harness.NODE22), str(harness.SERVER_EVERYTHING), "stdio"])
    try:
        async def run() -> dict:
            got: dict = {"progress": []}

            async def on_progress(p, total, message):
                got["progress"].append(p)

            with anyio.fail_after(60):
                async with Client(g.url, mode="legacy") as c:
                    got["tools"] = [t.name for t in (await c.list_tools()).tools]
                    got["sum"] = text_of(await c.call_tool("get-sum", {"a": 2, "b": 3}))
                    got["long"] = text_of(await c.call_tool(
                        "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress))
                    got["prompts"] = [p.name for p in (await c.list_prompts()).prompts]
            return got

        got = anyio.run(run)
    finally:
        g.stop()
    assert "get-sum" in got["tools"] and "5" in got["sum"]
    assert len(got["progress"]) >= 3, got
    assert got["prompts"]


# --- the SDKs' own real-client checks ----------------------------------------


@pytest.mark.parametrize("server", ["python", "server-everything"])
def test_the_typescript_and_python_sdk_clients(server):
    """conformance/clients/ts_client.mjs (TypeScript SDK) and py_client.py
    (Python SDK, legacy mode): initialize, tools, progress, sampling and
    elicitation round trips, the GET stream, DELETE, against per-session
    stdio workers."""
    from conftest import run_json

    command = ([str(harness.VENV_PY), str(harness.STDIO_SERVER)] if server == "python"
               else [str(harness.NODE22), str(harness.SERVER_EVERYTHING), "stdio"])
    g = StdioGate(command)
    try:
        rc, data, err = run_json([harness.NODE22, harness.CLIENTS / "ts_client.mjs", g.url])
        assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
        assert data["protocol_version"] == "2025-11-25" and data["session_id"]
        assert data["progress"]["notifications"] >= 3, data
        assert data["sampling"]["callback_calls"] == 1 and data["elicitation"]["callback_calls"] == 1, data
        assert data["get_stream"] == {"status": 200, "opened": True}, data
        assert data["delete_status"] == 200 and data["session_after_delete"] is None
        rc, data, err = run_json([harness.VENV_PY, harness.CLIENTS / "py_client.py", g.url, "--mode", "legacy"])
        assert rc == 0, f"rc={rc} {data.get('errors')} {err[-2000:]}"
        assert data["sampling"]["callback_calls"] == 1 and data["elicitation"]["callback_calls"] == 1, data
        # Each session had its own worker, ended with its session.
        log = g.log()
        assert log.count("stdio worker serves a new session") >= 2
        assert "stopping stdio worker: its session ended" in log
    finally:
        g.stop()


# --- the bubblewrap sandbox --------------------------------------------------


def bwrap_or_fail() -> None:
    if not Path("/usr/bin/bwrap").exists() and not Path("/bin/bwrap").exists():
        if os.environ.get("MCPGATE_REQUIRED"):
            pytest.fail("bubblewrap is not installed (scripts/bootstrap.sh bwrap installs it)")
        pytest.skip("bubblewrap is not installed")


def test_the_bwrap_sandbox_has_no_network_and_a_read_only_root():
    bwrap_or_fail()
    writable = harness.scratch_dir() / "sandbox-writable"
    writable.mkdir()
    outside = harness.ROOT / "target" / f"bwrap-probe-{uuid.uuid4().hex[:8]}"
    g = python_gate(f'sandbox = "bwrap"\nsandbox_writable = ["{writable}"]\n')
    try:
        s = RawSession(g.url)
        call = lambda tool, args: s.call("tools/call", {"name": tool, "arguments": args})["result"]["content"][0]["text"]
        assert call("try_write", {"path": str(writable / "in.txt")}) == "written"
        assert (writable / "in.txt").read_text() == "probe\n"
        assert "Read-only file system" in call("try_write", {"path": str(outside)})
        assert not outside.exists()
        assert "Read-only file system" in call("try_write", {"path": f"/tmp/bwrap-probe-{uuid.uuid4().hex[:8]}"})
        assert call("try_write", {"path": f"/var/tmp/scratch-{uuid.uuid4().hex[:8]}"}) == "written"
        # mcpgate's own port, on the host's loopback: unreachable from inside.
        port = int(g.url.split(":")[2].split("/")[0])
        assert call("try_connect", {"port": port}).startswith("error"), "the sandbox has no network"
        me = json.loads(call("whoami", {}))
        assert me["start_fds"] == [0, 1, 2]
    finally:
        g.stop()
    # With sandbox_network, the same probe connects.
    g = python_gate('sandbox = "bwrap"\nsandbox_network = true\n')
    try:
        s = RawSession(g.url)
        port = int(g.url.split(":")[2].split("/")[0])
        assert s.call("tools/call", {"name": "try_connect", "arguments": {"port": port}}
                      )["result"]["content"][0]["text"] == "connected"
    finally:
        g.stop()


def test_check_and_run_refuse_a_sandbox_that_is_not_installed():
    """`check` and `run` say so when bubblewrap is asked for and missing
    (MCPGATE_BWRAP names where it would be)."""
    config = harness.write_config_text('[upstreams.default]\ncommand = ["true"]\nsandbox = "bwrap"\n')
    env = {**os.environ, "MCPGATE_BWRAP": "/nonexistent/bwrap"}
    for cmd in (["check", "--config", str(config)], ["run", "--config", str(config), "--workers", "1"]):
        r = subprocess.run([str(harness.mcpgate_bin()), *cmd], capture_output=True, text=True, env=env, timeout=30)
        assert r.returncode == 1, (cmd, r.stdout, r.stderr)
        assert "upstreams.default: sandbox = \"bwrap\" asks for bubblewrap, which is not installed" in r.stderr, r.stderr


def test_a_reload_that_changes_the_pool_replaces_its_processes_after_their_calls():
    """A reload that changes a stdio pool's settings builds it anew: a call
    in flight on the old processes finishes there, then they exit; the
    next call spawns new ones."""
    g = python_gate(env={"ROUND": "first"})
    try:
        _, before = modern(g.url, "tools/call", {"name": "whoami", "arguments": {}}, name="whoami")
        slow: dict = {}

        def slow_call():
            slow["answer"] = modern(g.url, "tools/call", {"name": "slow", "arguments": {"seconds": 2}},
                                    name="slow", rid=7)[1]

        t = threading.Thread(target=slow_call)
        t.start()
        time.sleep(0.5)
        g.config.write_text(g.config.read_text().replace('ROUND = "first"', 'ROUND = "second"'))
        done = subprocess.run([str(harness.mcpgate_bin()), "reload", "--config", str(g.config)],
                              capture_output=True, text=True, timeout=60)
        _, after = modern(g.url, "tools/call", {"name": "whoami", "arguments": {}}, name="whoami", rid=8)
        t.join(timeout=30)
        exited = harness.wait_for(lambda: metric(g.metrics(), "mcpgate_stdio_workers_total", event="exited") >= 1)
        # The line comes once every old process is gone, up to one 20 ms
        # poll after the last exit the metric counts.
        retired = harness.wait_for(lambda: "the replaced pool's stdio workers stopped" in g.log())
        log = g.log()
    finally:
        g.stop()
    assert done.returncode == 0, done.stderr
    pid = lambda a: json.loads(a["result"]["content"][0]["text"])["pid"]  # noqa: E731
    assert pid(before) != pid(after)
    assert "result" in slow["answer"], slow
    assert exited
    assert retired, log
