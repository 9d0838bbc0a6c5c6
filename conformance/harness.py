"""Start/stop the real MCP processes the conformance harness talks to.

Every process runs in its own session (process group) and is killed as a group,
with its output in a log file whose tail is shown when it fails to come up.
Paths follow scripts/bootstrap.sh (everything under .cache/).

Temporary files (process logs, mcpgate configs) go to `scratch_dir()`: under
pytest, the directory conformance/tests/conftest.py gives the current test or
fixture scope (removed when its tests pass, kept and named in the report when
one fails); elsewhere one `mcpgate-test-*` directory per process, removed at exit.
"""

from __future__ import annotations

import atexit
import json
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
NODE22 = CACHE / "bin" / "node22"
VENV_PY = CACHE / "venv" / "bin" / "python"
NPM = CACHE / "npm"
CONFORMANCE = {
    "0.1.16": NPM / "conformance-0.1.16/node_modules/@modelcontextprotocol/conformance/dist/index.js",
    "0.2.0-alpha.12": NPM / "conformance-0.2.0-alpha.12/node_modules/@modelcontextprotocol/conformance/dist/index.js",
}
SERVER_EVERYTHING = NPM / "server-everything-2026.8.31/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
SERVER_FILESYSTEM = NPM / "server-filesystem-2026.8.31/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
STDIO_SERVER = ROOT / "conformance/upstreams/stdio_server.py"
TS_SDK_V1_DIR = NPM / "sdk-1.32.2"
REFERENCE_SERVER = ROOT / "conformance/upstreams/reference_server.py"
HOSTILE_SERVER = ROOT / "conformance/upstreams/hostile_server.py"
RAW_HOSTILE_SERVER = ROOT / "conformance/upstreams/raw_hostile_server.py"
OTLP_RECEIVER = ROOT / "conformance/upstreams/otlp_receiver.py"
CLIENTS = ROOT / "conformance/clients"


EXAMPLE_CONFIG = ROOT / "config.example.toml"

# Prefix of every temporary directory the harness makes. mcpgate's own runtime
# directories are `mcpgate-<16 hex digits>`; this prefix never looks like one.
SCRATCH_PREFIX = "mcpgate-test-"
_scratch: Path | None = None
_process_scratch: Path | None = None


def set_scratch_dir(path: Path | None) -> Path | None:
    """Make `path` the directory new temporary files go to; returns the previous one."""
    global _scratch
    previous, _scratch = _scratch, path
    return previous


@contextlib.contextmanager
def scratch_in(path: Path) -> Iterator[Path]:
    """Temporary files made inside the block go to `path`."""
    previous = set_scratch_dir(path)
    try:
        yield path
    finally:
        set_scratch_dir(previous)


def scratch_dir() -> Path:
    """The directory temporary files go to now (created when missing)."""
    global _process_scratch
    if _scratch is not None:
        _scratch.mkdir(parents=True, exist_ok=True)
        return _scratch
    if _process_scratch is None:
        _process_scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
        atexit.register(shutil.rmtree, _process_scratch, True)
    return _process_scratch


def scratch_file(prefix: str, suffix: str) -> tuple[int, Path]:
    """A new file in scratch_dir(): (open fd, path)."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=scratch_dir())
    return fd, Path(path)


def mcpgate_bin() -> Path:
    return Path(os.environ.get("MCPGATE_BIN", ROOT / "target/debug/mcpgate"))


def demo_upstream_bin() -> Path:
    return Path(os.environ.get("DEMO_UPSTREAM_BIN", ROOT / "target/debug/demo-upstream"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own process group, logging to a temp file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                 preexec_fn: Callable[[], None] | None = None):
        self.name = name
        self.cmd = [str(c) for c in cmd]
        fd, self.log = scratch_file(f"{name}-", ".log")
        with os.fdopen(fd, "wb") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {port} within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.popen.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.popen.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Upstream:
    """A started server: its process, port and MCP URL."""

    def __init__(self, proc: Proc, port: int, path: str = "/mcp"):
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}{path}"

    def stop(self) -> None:
        self.proc.stop()


def start_reference(port: int | None = None) -> Upstream:
    port = port or free_port()
    proc = Proc("reference", [VENV_PY, REFERENCE_SERVER, "--port", str(port)])
    proc.wait_port(port)
    return Upstream(proc, port)


def start_hostile(*args: str, port: int | None = None) -> tuple[Upstream, Path]:
    """The hostile Python SDK server (conformance/upstreams/hostile_server.py)
    with `args`, and the file where it records every request it handles."""
    port = port or free_port()
    fd, record = scratch_file("hostile-record-", ".jsonl")
    os.close(fd)
    proc = Proc("hostile", [VENV_PY, HOSTILE_SERVER, "--port", str(port), "--record", record, *args])
    proc.wait_port(port)
    return Upstream(proc, port), record


def start_raw_hostile(port: int | None = None) -> tuple[Upstream, Path]:
    """The raw-HTTP hostile server (conformance/upstreams/raw_hostile_server.py)
    and the file where it records every message it receives."""
    port = port or free_port()
    fd, record = scratch_file("raw-hostile-record-", ".jsonl")
    os.close(fd)
    proc = Proc("raw-hostile", [VENV_PY, RAW_HOSTILE_SERVER, "--port", str(port), "--record", record])
    proc.wait_port(port)
    return Upstream(proc, port), record


def start_otlp_receiver(*args: str, port: int | None = None) -> tuple[Upstream, Path]:
    """The OTLP/HTTP trace receiver (conformance/upstreams/otlp_receiver.py,
    on the official OpenTelemetry protobuf definitions) with `args`, and the
    file where it records every span it receives, one JSON line each."""
    port = port or free_port()
    fd, record = scratch_file("otlp-spans-", ".jsonl")
    os.close(fd)
    proc = Proc("otlp-receiver", [VENV_PY, OTLP_RECEIVER, "--port", str(port), "--record", record, *args])
    proc.wait_port(port)
    return Upstream(proc, port), record


def start_everything(port: int | None = None) -> Upstream:
    port = port or free_port()
    proc = Proc("server-everything", [NODE22, SERVER_EVERYTHING, "streamableHttp"], env={"PORT": str(port)})
    proc.wait_port(port)
    return Upstream(proc, port)


def start_demo_upstream(port: int | None = None) -> Upstream | None:
    """The Rust demo upstream from bench/, or None when it has not been built."""
    binary = demo_upstream_bin()
    if not binary.exists():
        return None
    port = port or free_port()
    proc = Proc("demo-upstream", [binary, "--listen", f"127.0.0.1:{port}"])
    proc.wait_port(port)
    return Upstream(proc, port)


def write_config_text(text: str, prefix: str = "mcpgate-") -> Path:
    """`text` in a new .toml file in scratch_dir()."""
    fd, path = scratch_file(prefix, ".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def write_mcpgate_config(upstream_url: str, port: int, extra_toml: str = "") -> Path:
    return write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\npath = "/mcp"\n\n'
        f'[upstream]\nurl = "{upstream_url}"\n{extra_toml}'
    )


def substitute_toml(text: str, values: dict[tuple[str, str], str]) -> str:
    """`text` with the string values of the given (table, key)s replaced, each
    in place on its one line, so comments, order and every other key stay as
    they are. Each key must be set exactly once, as a plain string; the result
    must parse to the same document with only those values changed."""
    lines = text.splitlines(keepends=True)
    table = ""
    found: dict[tuple[str, str], int] = {}
    for i, line in enumerate(lines):
        head = re.match(r"\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
        if head:
            table = head.group(1)
            continue
        m = re.match(r'(\s*([A-Za-z0-9_-]+)\s*=\s*)"[^"\\]*"(.*)$', line, re.S)
        if m and (table, m.group(2)) in values:
            if (table, m.group(2)) in found:
                raise ValueError(f"[{table}] {m.group(2)} is set twice")
            found[(table, m.group(2))] = i
            lines[i] = f'{m.group(1)}"{values[(table, m.group(2))]}"{m.group(3)}'
    missing = [f"[{t}] {k}" for t, k in values if (t, k) not in found]
    if missing:
        raise ValueError(f"not set as a plain string: {', '.join(missing)}")
    out = "".join(lines)
    expected = tomllib.loads(text)
    for (t, k), v in values.items():
        expected[t][k] = v
    if tomllib.loads(out) != expected:
        raise ValueError("substitution changed more than the given keys")
    return out


def example_config(listen_port: int, upstream_url: str, more: dict[tuple[str, str], str] | None = None) -> Path:
    """config.example.toml as shipped, with only `[listen] address`, `[upstream] url`
    (and the keys in `more`) replaced, written to scratch_dir()."""
    values = {("listen", "address"): f"127.0.0.1:{listen_port}", ("upstream", "url"): upstream_url, **(more or {})}
    return write_config_text(substitute_toml(EXAMPLE_CONFIG.read_text(), values), prefix="config-example-")


def start_mcpgate_with(config: Path, port: int, workers: int | None = None,
                       admin: int | None = None) -> Upstream:
    """`mcpgate run --config CONFIG`, listening on `port` (as the config says)
    and, when `admin` is given, on that admin port too: the supervisor binds
    the MCP port before its workers start, and worker 0 opens the admin
    listener a moment later, so a command sent at once could find it closed."""
    binary = mcpgate_bin()
    if not binary.exists():
        raise FileNotFoundError(f"mcpgate binary not found at {binary} (build it or set MCPGATE_BIN)")
    cmd = [binary, "run", "--config", config] + (["--workers", str(workers)] if workers else [])
    proc = Proc("mcpgate", cmd, env={"RUST_LOG": os.environ.get("RUST_LOG", "info")})
    proc.wait_port(port, timeout=20)
    if admin is not None:
        proc.wait_port(admin, timeout=20)
    return Upstream(proc, port)


def start_mcpgate(upstream_url: str, port: int | None = None, extra_toml: str = "", workers: int | None = None,
                  admin: int | None = None) -> Upstream:
    """`mcpgate run` in front of `upstream_url`; `workers` None: the default (one per core);
    `admin`: an admin port the config names, waited for too."""
    port = port or free_port()
    return start_mcpgate_with(write_mcpgate_config(upstream_url, port, extra_toml), port, workers, admin)


def start_mcpgate_admin(upstream_url: str, extra_toml: str = "", workers: int | None = None) -> tuple[Upstream, int]:
    """`start_mcpgate` with an admin listener (`[admin]` on a free port): the
    gate and the admin port, for `scrape`."""
    admin = free_port()
    toml = f'[admin]\naddress = "127.0.0.1:{admin}"\n{extra_toml}'
    return start_mcpgate(upstream_url, extra_toml=toml, workers=workers, admin=admin), admin


def scrape(admin: int) -> str:
    """The admin listener's /metrics text."""
    import httpx

    return httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=10).text


def wait_for(pred: Callable[[], object], timeout: float = 10.0) -> object:
    """`pred()` once it is truthy, polling every 50 ms; its last value after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := pred():
            return got
        time.sleep(0.05)
    return pred()


async def sdk_calls(url: str, mode: str, *tools: tuple[str, dict]) -> list:
    """Through the official Python SDK client (`mode` "legacy" or "auto"):
    list the tools, then call each; each result, or the MCPError it raised."""
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    out = []
    async with Client(url, mode=mode) as c:
        await c.list_tools()
        for name, args in tools:
            try:
                out.append(await c.call_tool(name, args))
            except MCPError as e:
                out.append(e)
    return out


def start_mcpgate_example(upstream_url: str, port: int | None = None, workers: int | None = None) -> Upstream:
    """`mcpgate run` under config.example.toml as shipped, in front of `upstream_url`."""
    port = port or free_port()
    return start_mcpgate_with(example_config(port, upstream_url), port, workers)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of Prometheus counter `name` over the series of `text` that
    carry every label given."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


def records(path: Path) -> list[dict]:
    """The requests the hostile server recorded (`--record`)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
