"""The official conformance suites against the reference upstream, direct and through mcpgate.

Run with -s to see both pass lists (they are also printed with capture disabled).
"""

from __future__ import annotations

import json
import subprocess

import harness
import pytest

SUITES = ["0.1.16", "0.2.0-alpha.12"]

# The one policy change from the defaults for this run: scenario
# server-sse-multiple-streams negotiates 2025-11-25 and then sends raw requests
# with `MCP-Protocol-Version: 2025-03-26`. The spec lets a server accept any
# supported version there; mcpgate's default is stricter (exactly the negotiated
# version), so the comparison runs with the spec's rule.
CONFORMANCE_POLICY = '\n[protocol]\nsession_version_header = "allowlisted"\n'


@pytest.fixture(scope="module")
def conformance_gate(upstreams):
    gate = harness.start_mcpgate(upstreams("reference").url, extra_toml=CONFORMANCE_POLICY)
    yield gate
    gate.stop()
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
def test_compare_direct_vs_mcpgate(suite, upstreams, conformance_gate, tmp_path, capsys):
    ref, gate = upstreams("reference"), conformance_gate
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


# Scenario -> suites it is run from. The upstream is the demo upstream with its
# own defences off (`--allow-any-origin --lax-headers`): it fails both direct,
# and mcpgate alone must make them pass.
GATE_ENFORCED = {"0.1.16": ["dns-rebinding-protection"], "0.2.0-alpha.12": ["dns-rebinding-protection", "http-header-validation"]}


@pytest.fixture(scope="module")
def lax_upstream_and_gate():
    port = harness.free_port()
    up = harness.Proc("demo-upstream-lax", [harness.demo_upstream_bin(), "--listen", f"127.0.0.1:{port}",
                                            "--allow-any-origin", "--lax-headers"])
    up.wait_port(port)
    url = f"http://127.0.0.1:{port}/mcp"
    gate = harness.start_mcpgate(url)
    yield url, gate.url
    gate.stop()
    up.stop()


@pytest.mark.parametrize("suite", SUITES)
def test_gateway_enforces_what_the_upstream_does_not(suite, lax_upstream_and_gate, tmp_path, capsys):
    direct, proxied = lax_upstream_and_gate
    only = ",".join(GATE_ENFORCED[suite])
    results = {}
    for label, url in (("direct", direct), ("mcpgate", proxied)):
        run_suite(["run", "--suite", suite, "--url", url, "--label", label, "--only", only,
                   "--out", str(tmp_path / label), "--json", str(tmp_path / f"{label}.json")], capsys)
        results[label] = json.loads((tmp_path / f"{label}.json").read_text())[suite][label]
    for name in GATE_ENFORCED[suite]:
        assert results["direct"][name]["status"] == "fail", f"{name} should fail against the lax upstream alone"
        assert results["mcpgate"][name]["status"] == "pass", f"{name} must pass through mcpgate: {results['mcpgate'][name]}"
