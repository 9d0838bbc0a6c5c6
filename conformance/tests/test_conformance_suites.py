"""The official conformance suites against the reference upstream, direct and through mcpgate.

Run with -s to see both pass lists (they are also printed with capture disabled).
"""

from __future__ import annotations

import json
import subprocess

import harness
import pytest

SUITES = ["0.1.16", "0.2.0-alpha.12"]
RUN_SUITE = harness.ROOT / "conformance/run_suite.py"


def run_suite(args: list[str], capsys, timeout: float = 1500) -> tuple[int, str]:
    proc = subprocess.run(
        [str(harness.VENV_PY), str(RUN_SUITE), *args], capture_output=True, text=True, timeout=timeout
    )
    with capsys.disabled():
        print(f"\n$ run_suite.py {' '.join(args)}\n{proc.stdout}{proc.stderr[-3000:]}")
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("suite", SUITES)
def test_reference_passes_direct(suite, upstreams, tmp_path, capsys):
    """Guards the reference upstream itself: every scenario passes direct."""
    ref = upstreams("reference")
    rc, _ = run_suite(["run", "--suite", suite, "--url", ref.url, "--label", "direct", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")], capsys)
    data = json.loads((tmp_path / "r.json").read_text())[suite]["direct"]
    failing = {n: r["failures"][:1] for n, r in data.items() if r["status"] not in ("pass", "warn")}
    assert rc == 0 and not failing, failing


@pytest.mark.parametrize("suite", SUITES)
def test_compare_direct_vs_mcpgate(suite, upstreams, gate_for, tmp_path, capsys):
    ref, gate = upstreams("reference"), gate_for("reference")
    rc, out = run_suite(
        ["compare", "--suite", suite, "--direct", ref.url, "--proxied", gate.url, "--out", str(tmp_path), "--json", str(tmp_path / "c.json")],
        capsys,
    )
    regressions = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    assert rc == 0, "\n".join(regressions) or out[-3000:]
    data = json.loads((tmp_path / "c.json").read_text())[suite]
    assert data["mcpgate"]["dns-rebinding-protection"]["status"] == "pass"
    if suite != "0.1.16":
        assert data["mcpgate"]["http-header-validation"]["status"] == "pass"
