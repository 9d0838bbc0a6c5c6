"""Start/stop the real MCP processes the conformance harness talks to.

Every process runs in its own session (process group) and is killed as a group,
with its output in a log file whose tail is shown when it fails to come up.
Paths follow scripts/bootstrap.sh (everything under .cache/).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
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
TS_SDK_V1_DIR = NPM / "sdk-1.32.2"
REFERENCE_SERVER = ROOT / "conformance/upstreams/reference_server.py"
CLIENTS = ROOT / "conformance/clients"


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

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        self.cmd = [str(c) for c in cmd]
        fd, log = tempfile.mkstemp(prefix=f"mcpgate-{name}-", suffix=".log")
        self.log = Path(log)
        with os.fdopen(fd, "wb") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
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


def write_mcpgate_config(upstream_url: str, port: int, extra_toml: str = "") -> Path:
    fd, path = tempfile.mkstemp(prefix="mcpgate-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(
            f'[listen]\naddress = "127.0.0.1:{port}"\npath = "/mcp"\n\n'
            f'[upstream]\nurl = "{upstream_url}"\n{extra_toml}'
        )
    return Path(path)


def start_mcpgate(upstream_url: str, port: int | None = None, extra_toml: str = "", workers: int | None = None) -> Upstream:
    """`mcpgate run` in front of `upstream_url`; `workers` None: the default (one per core)."""
    binary = mcpgate_bin()
    if not binary.exists():
        raise FileNotFoundError(f"mcpgate binary not found at {binary} (build it or set MCPGATE_BIN)")
    port = port or free_port()
    config = write_mcpgate_config(upstream_url, port, extra_toml)
    cmd = [binary, "run", "--config", config] + (["--workers", str(workers)] if workers else [])
    proc = Proc("mcpgate", cmd, env={"RUST_LOG": os.environ.get("RUST_LOG", "info")})
    proc.wait_port(port, timeout=20)
    return Upstream(proc, port)
