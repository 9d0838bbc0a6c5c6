"""Fixtures: real upstreams on free loopback ports, and mcpgate in front of them.

Upstreams (session-scoped, each in its own process group, killed at teardown):
  reference   conformance/upstreams/reference_server.py (PyPI mcp 2.3.0, both revisions)
  everything  npm @modelcontextprotocol/server-everything (2025-11-25 only)
  demo        target/debug/demo-upstream (Rust, bench/); skipped when not built
`gate_for(upstream)` starts `$MCPGATE_BIN run --config <tmp.toml>` (default
target/debug/mcpgate) once per upstream. A missing binary skips the through-mcpgate
tests unless MCPGATE_REQUIRED=1; a binary that does not come up fails them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

STARTERS = {
    "reference": harness.start_reference,
    "everything": harness.start_everything,
    "demo": harness.start_demo_upstream,
}


@pytest.fixture(scope="session")
def upstreams():
    started: dict[str, harness.Upstream | None] = {}

    def get(name: str) -> harness.Upstream:
        if name not in started:
            started[name] = STARTERS[name]()
        up = started[name]
        if up is None:
            if os.environ.get("MCPGATE_REQUIRED") == "1":
                pytest.fail(f"{name} upstream not available: {harness.demo_upstream_bin()} not built")
            pytest.skip(f"{name} upstream not available (binary not built: {harness.demo_upstream_bin()})")
        return up

    yield get
    for up in started.values():
        if up is not None:
            up.stop()


@pytest.fixture(scope="session")
def gate_for(upstreams):
    gates: dict[str, harness.Upstream] = {}
    broken: dict[str, str] = {}

    def get(name: str) -> harness.Upstream:
        if name in broken:
            pytest.fail(broken[name])
        if name not in gates:
            if not harness.mcpgate_bin().exists() and os.environ.get("MCPGATE_REQUIRED") != "1":
                pytest.skip(f"mcpgate binary not found at {harness.mcpgate_bin()} (set MCPGATE_BIN or build it)")
            try:
                # "NAME-h2": mcpgate speaking HTTP/2 (h2c) to that upstream.
                upstream, _, variant = name.partition("-")
                extra = "http2 = true\n" if variant == "h2" else ""
                gates[name] = harness.start_mcpgate(upstreams(upstream).url, extra_toml=extra)
            except (RuntimeError, FileNotFoundError) as e:
                broken[name] = f"mcpgate did not start in front of {name}: {e}"
                pytest.fail(broken[name])
        return gates[name]

    yield get
    for g in gates.values():
        g.stop()


@pytest.fixture
def url_for(upstreams, gate_for):
    """url_for(upstream, route) -> MCP URL; route is "direct", "mcpgate" or "mcpgate-h2"
    (mcpgate with `http2 = true` towards the upstream; only the demo upstream speaks h2c)."""

    def get(name: str, route: str) -> str:
        if route == "mcpgate-h2":
            return gate_for(f"{name}-h2").url
        return gate_for(name).url if route == "mcpgate" else upstreams(name).url

    return get


def run_json(cmd: list[str], timeout: float = 120.0) -> tuple[int, dict, str]:
    """Run a client script in its own process group; return (rc, parsed stdout JSON, stderr)."""
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return -9, {"errors": [f"timed out after {timeout}s"]}, err
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        data = {"errors": [f"unparseable output: {out[-2000:]}"]}
    return proc.returncode, data, err
