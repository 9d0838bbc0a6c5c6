"""Nothing is left behind (issue 10).

`make run` (scripts/run-demo.sh): Ctrl-C stops the demo upstream and mcpgate,
and a port that is already taken is an error before anything is started.

The harness: a test run leaves no temporary files (conftest.py), and a failing
test keeps its directory and names it in the report.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402
from negative.cases import modern, modern_headers  # noqa: E402

RUN_DEMO = harness.ROOT / "scripts/run-demo.sh"
STOP_WITHIN = 15.0  # seconds from Ctrl-C until nothing of the run is left
# mcpgate's own runtime directories (proxy/src/ops/supervisor.rs): not the harness's.
PROXY_RUNTIME_DIR = re.compile(r"mcpgate-[0-9a-f]{16}")


def bin_dir() -> Path:
    """The directory holding both mcpgate and demo-upstream (MCPGATE_BIN's)."""
    d = harness.mcpgate_bin().resolve().parent
    if not ((d / "mcpgate").exists() and (d / "demo-upstream").exists()):
        msg = f"mcpgate and demo-upstream not both built in {d}"
        if os.environ.get("MCPGATE_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_with(*needles: str) -> dict[int, str]:
    """pid -> command line of every live process whose command line contains a needle."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if any(n in cmd for n in needles):
            found[int(entry.name)] = cmd
    return found


def post_quietly(url: str, body: dict, headers: list) -> None:
    try:
        httpx.post(url, json=body, headers=headers, timeout=90)
    except httpx.HTTPError:
        pass


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Demo:
    """`scripts/run-demo.sh BIN_DIR CONFIG UPSTREAM_ADDR` in its own process group
    (as under a terminal), on free ports, under config.example.toml as shipped
    but for its listen, admin and upstream addresses."""

    def __init__(self, up_port: int | None = None, listen_port: int | None = None, admin_port: int | None = None,
                 env: dict[str, str] | None = None):
        self.up_port = up_port or harness.free_port()
        self.listen_port = listen_port or harness.free_port()
        self.admin_port = admin_port or harness.free_port()
        self.upstream = f"127.0.0.1:{self.up_port}"
        self.config = harness.example_config(
            self.listen_port, f"http://{self.upstream}/mcp", {("admin", "address"): f"127.0.0.1:{self.admin_port}"}
        )
        # SIGINT at its default, as under a terminal, even when this test runs
        # with SIGINT ignored (started in the background): a shell cannot trap
        # a signal that was ignored when it started.
        self.proc = harness.Proc("run-demo", [RUN_DEMO, bin_dir(), self.config, self.upstream], cwd=harness.ROOT,
                                 env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.ports = (self.up_port, self.listen_port, self.admin_port)

    def leftovers(self) -> dict[int, str]:
        """Processes of this run: every one names the config or the upstream address."""
        return processes_with(str(self.config), f"--listen {self.upstream}")

    def output(self) -> str:
        return self.proc.log.read_text(errors="replace")

    def cleanup(self) -> None:
        self.proc.stop()
        kill_all(self.leftovers())


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "request-in-flight"])
def test_ctrl_c_stops_the_upstream_and_mcpgate(busy):
    """Ctrl-C: run-demo.sh exits 130 and, within STOP_WITHIN seconds, no process
    of the run is left and none of its ports listens. With a request in flight
    (a tool that answers after 60 s) mcpgate drains for up to its grace period;
    the script waits GATE_STOP_SECS (3 here), then ends it."""
    demo = Demo(env={"GATE_STOP_SECS": "3"} if busy else None)
    try:
        demo.proc.wait_port(demo.listen_port, timeout=30)
        url = f"http://127.0.0.1:{demo.listen_port}/mcp"
        # mcpgate answers, in front of the demo upstream.
        r = httpx.post(url, json=modern("tools/list"), headers=modern_headers("tools/list"), timeout=10)
        assert r.status_code == 200 and "tools" in r.text, r.text[:500]
        if busy:
            slow = modern("tools/call", {"name": "payload", "arguments": {"size": 1, "delay_ms": 60000}})
            threading.Thread(target=post_quietly, args=(url, slow, modern_headers("tools/call", "payload")),
                             daemon=True).start()
            time.sleep(0.5)
        assert listening(demo.up_port) and listening(demo.admin_port)
        running = demo.leftovers()
        assert any("demo-upstream" in c for c in running.values()) and any("mcpgate run" in c for c in running.values()), running

        t0 = time.monotonic()
        os.killpg(demo.proc.popen.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        try:
            rc = demo.proc.popen.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run-demo.sh still running {STOP_WITHIN}s after SIGINT:\n{demo.output()[-3000:]}")
        left, busy = demo.leftovers(), [p for p in demo.ports if listening(p)]
        while (left or busy) and time.monotonic() - t0 < STOP_WITHIN:
            time.sleep(0.2)
            left, busy = demo.leftovers(), [p for p in demo.ports if listening(p)]
        assert not left, f"still running {time.monotonic() - t0:.1f}s after Ctrl-C: {left}\n{demo.output()[-3000:]}"
        assert not busy, f"ports still listening {time.monotonic() - t0:.1f}s after Ctrl-C: {busy}"
        assert rc == 130, f"run-demo.sh exited with {rc} after Ctrl-C:\n{demo.output()[-3000:]}"
    finally:
        demo.cleanup()


@pytest.mark.parametrize("which,how", [("upstream", "listening"), ("upstream", "bound"),
                                       ("listen", "listening"), ("admin", "listening")])
def test_a_taken_port_is_an_error(which, how):
    """A port held by another process: non-zero exit within seconds, the address
    named on stderr, nothing left running. "bound" (bound, not listening) cannot
    be seen from outside: the upstream then fails to bind and the script says so."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    if how == "listening":
        holder.listen(8)
    port = holder.getsockname()[1]
    demo = None
    try:
        demo = Demo(**{{"upstream": "up_port", "listen": "listen_port", "admin": "admin_port"}[which]: port})
        try:
            rc = demo.proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run-demo.sh still running 10s with port {port} taken:\n{demo.output()[-3000:]}")
        out = demo.output()
        assert rc != 0, out
        assert f"127.0.0.1:{port}" in out and "in use" in out, out
        assert "Ctrl-C stops both" not in out, f"it started anyway:\n{out}"
        assert not demo.leftovers(), demo.leftovers()
        others = [p for p in demo.ports if p != port and listening(p)]
        assert not others, f"listening after the error: {others}"
    finally:
        holder.close()
        if demo:
            demo.cleanup()


# --- The harness leaves no temporary files (conftest.py) ---------------------

NESTED = '''
import os
import sys
from pathlib import Path

import pytest

import harness

TMP = Path(os.environ["TMPDIR"])


def under_tmpdir(p):
    return Path(p).is_relative_to(TMP)  # so the outer test sees what is left behind


@pytest.fixture(scope="module")
def sleeper():
    proc = harness.Proc("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.stop()


def test_passes(sleeper, upstreams, gate_for, tmp_path):
    gate = gate_for("demo")  # session-scoped: the demo upstream and mcpgate in front of it
    config = harness.write_mcpgate_config(upstreams("demo").url, 1)
    (tmp_path / "record.jsonl").write_text("{}")
    for p in (sleeper.log, upstreams("demo").proc.log, gate.proc.log, config, tmp_path):
        assert under_tmpdir(p), p
    # RUN/test_nested/test_passes: the test's, the module's and the run's directories.
    assert config.parent == tmp_path
    assert sleeper.log.parent == tmp_path.parent
    assert upstreams("demo").proc.log.parent == gate.proc.log.parent == tmp_path.parent.parent


def test_fails_on_request():
    config = harness.write_mcpgate_config("http://127.0.0.1:1/mcp", 1)
    assert os.environ.get("NESTED_FAIL") != "1", f"failing on request; wrote {config}"
'''


@pytest.fixture
def empty_tmpdir():
    """A fresh TMPDIR for a nested run, with a short path: mcpgate puts its
    workers' Unix sockets under it (at most 108 bytes)."""
    tmp = Path(tempfile.mkdtemp(prefix=harness.SCRATCH_PREFIX + "tmpdir-"))
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def nested_pytest(tmp_path: Path, tmp: Path, fail: bool) -> tuple[int, str]:
    """A pytest run of NESTED, next to a link to conftest.py, with TMPDIR=`tmp`."""
    tests = tmp_path / "nested" / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (tests / "test_nested.py").write_text(NESTED)
    if not (tests / "conftest.py").exists():
        (tests / "conftest.py").symlink_to(Path(__file__).with_name("conftest.py"))
    env = {**os.environ, "TMPDIR": str(tmp), "NESTED_FAIL": "1" if fail else "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tests.parent), str(tests)],
        cwd=harness.ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def harness_entries(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if not PROXY_RUNTIME_DIR.fullmatch(p.name))


def test_a_passing_run_leaves_no_temporary_files(tmp_path, empty_tmpdir):
    bin_dir()
    tmp = empty_tmpdir
    rc, out = nested_pytest(tmp_path, tmp, fail=False)
    assert harness_entries(tmp) == [], f"left behind in TMPDIR: {harness_entries(tmp)}\n{out[-3000:]}"
    assert rc == 0, out


def test_a_failing_test_keeps_its_directory_and_says_where(tmp_path, empty_tmpdir):
    bin_dir()
    tmp = empty_tmpdir
    rc, out = nested_pytest(tmp_path, tmp, fail=True)
    assert rc == 1, out
    kept = sorted(set(re.findall(r"kept logs in (\S+)", out)))
    assert len(kept) == 1, out
    own = Path(kept[0])
    assert own.name == "test_fails_on_request" and own.is_relative_to(tmp), out
    assert [p.suffix for p in own.iterdir()] == [".toml"], list(own.iterdir())
    assert not (own.parent / "test_passes").exists(), "the passing test's directory was kept too"
    run_dir = tmp / own.relative_to(tmp).parts[0]
    assert harness_entries(tmp) == [run_dir.name], harness_entries(tmp)
    assert any(p.suffix == ".log" for p in run_dir.iterdir()), "the shared upstream's log was not kept"
