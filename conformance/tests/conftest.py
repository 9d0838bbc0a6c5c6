"""Fixtures: real upstreams on free loopback ports, and mcpgate in front of them.

Upstreams (session-scoped, each in its own process group, killed at teardown):
  reference   conformance/upstreams/reference_server.py (PyPI mcp 2.3.0, both revisions)
  everything  npm @modelcontextprotocol/server-everything (2025-11-25 only)
  demo        target/debug/demo-upstream (Rust, bench/); skipped when not built
`gate_for(upstream)` starts `$MCPGATE_BIN run --config <tmp.toml>` (default
target/debug/mcpgate) once per upstream. A missing binary skips the through-mcpgate
tests unless MCPGATE_REQUIRED=1; a binary that does not come up fails them.

Temporary files: one directory per run, `$TMPDIR/mcpgate-test-*`, with one
subdirectory per test module and one per test. Whatever a test, a fixture or
harness.py writes (process logs, mcpgate configs, `tmp_path`, which is the
test's own directory here) goes to the directory of its scope: a test's while
it runs, a module- or session-scoped fixture's while it is set up. A test's
directory is removed when the test passes and kept when it fails, and the
failure report says "kept logs in DIR"; the module and run directories (logs
of shared upstreams and gates) are removed at their end unless a test in them
failed. A run that passes leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402

# --- temporary files: one directory per scope, removed unless a test failed ---


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)[:100] or "_"


class Scratch:
    """The hooks behind the directories described above. Registered as a plugin
    of its own (pytest_configure below): hooks in a conftest only see the nodes
    under its directory, and a session-scoped fixture belongs to the Session."""

    NAME = "mcpgate-test-scratch"

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.failed: set[Path] = set()
        self.kept: list[tuple[str, Path]] = []

    def root(self) -> Path:
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix=harness.SCRATCH_PREFIX))
        return self.run_dir

    def scope_dir(self, node) -> Path:
        """The directory of `node`'s temporary files: the run's for the session
        (and anything above a module), the module's, or the test's."""
        if isinstance(node, pytest.Item):
            module = node.getparent(pytest.Module)
            return (self.scope_dir(module) if module else self.root()) / _safe(node.name)
        if isinstance(node, pytest.Module):
            return self.root() / _safe(Path(node.name).stem)
        module = node.getparent(pytest.Module) if node is not None else None
        return self.scope_dir(module) if module else self.root()

    def dirs_of(self, item: pytest.Item) -> list[Path]:
        return [self.scope_dir(item), self.scope_dir(item.getparent(pytest.Module)), self.root()]

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        with harness.scratch_in(self.scope_dir(request.node)):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        with harness.scratch_in(self.scope_dir(item)):
            result = yield
        own, module, _ = self.dirs_of(item)
        if own not in self.failed:
            shutil.rmtree(own, ignore_errors=True)
        # Module-scoped fixtures are torn down with the module's last test.
        last_of_module = nextitem is None or nextitem.getparent(pytest.Module) is not item.getparent(pytest.Module)
        if last_of_module and module not in self.failed:
            shutil.rmtree(module, ignore_errors=True)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.failed:
            own = self.scope_dir(item)
            self.failed.update(self.dirs_of(item))
            if (item.nodeid, own) not in self.kept:
                self.kept.append((item.nodeid, own))
            report.sections.append(
                ("mcpgate-test files", f"kept logs in {own} (shared fixtures' logs: {self.root()})")
            )
        return report

    def pytest_sessionfinish(self, session, exitstatus):
        if self.run_dir is not None and not self.failed and exitstatus in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter):
        if self.kept:
            terminalreporter.section("kept temporary files")
            for nodeid, path in self.kept:
                terminalreporter.write_line(f"kept logs in {path}  ({nodeid})")
        elif self.run_dir is not None and self.run_dir.exists():
            terminalreporter.write_line(f"kept logs in {self.run_dir} (the run did not pass)")


def pytest_configure(config):
    if not config.pluginmanager.has_plugin(Scratch.NAME):
        config.pluginmanager.register(Scratch(), Scratch.NAME)


@pytest.fixture
def tmp_path() -> Path:
    """The test's own directory (removed when it passes), instead of pytest's."""
    return harness.scratch_dir()


STARTERS = {
    "reference": harness.start_reference,
    "everything": harness.start_everything,
    "demo": harness.start_demo_upstream,
}


@pytest.fixture(scope="session")
def upstreams():
    started: dict[str, harness.Upstream | None] = {}
    home = harness.scratch_dir()  # started on first use, but they live as long as the run

    def get(name: str) -> harness.Upstream:
        if name not in started:
            with harness.scratch_in(home):
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
    home = harness.scratch_dir()

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
                with harness.scratch_in(home):
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
