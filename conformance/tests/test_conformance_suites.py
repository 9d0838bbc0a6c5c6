"""The official conformance suites against the reference upstream, direct and through mcpgate.

Run with -s to see both pass lists (they are also printed with capture disabled).
"""

from __future__ import annotations

import json
import socket
import subprocess
import tomllib

import harness
import pytest

SUITES = ["0.1.16", "0.2.0-alpha.12"]

# Transparency by default: mcpgate runs under config.example.toml as shipped,
# with only its listen address and upstream URL substituted (a free port, the
# reference upstream); every other key, tenants and [admin] included, is as a
# user gets it. No scenario that passes direct may fail through it.


@pytest.fixture(scope="module")
def conformance_gate(upstreams):
    admin = tomllib.loads(harness.EXAMPLE_CONFIG.read_text()).get("admin", {}).get("address")
    if admin:
        host, _, port = admin.rpartition(":")
        with socket.socket() as s:
            if s.connect_ex((host.strip("[]"), int(port))) == 0:
                pytest.fail(f"{admin}, the [admin] address config.example.toml ships with, is taken by another "
                            "process (a `make run`?); this comparison runs the shipped config and needs it")
    gate = harness.start_mcpgate_example(upstreams("reference").url)
    yield gate
    gate.stop()


# Tool governance on, letting everything through: [access] with an allow-all
# rule (every list and capability is judged, every call judged) and
# [tools] validate_arguments (every call checked against the listed schema).
# The pass set must not change.
GOVERNANCE_ON = """
[access]
default = "deny"

[[access.rules]]
tools = ["*"]
prompts = ["*"]
resources = ["*"]
action = "allow"

[content.poisoning]
action = "hide"

[content.output_schema]
action = "block"

[content.secrets]
in_arguments = true

[content.pii]
in_arguments = true

[content.limits]
max_result_bytes = 4194304
max_stream_events = 10000
"""


@pytest.fixture(scope="module")
def governed_gate(upstreams):
    port = harness.free_port()
    text = harness.substitute_toml(
        harness.EXAMPLE_CONFIG.read_text(),
        {("listen", "address"): f"127.0.0.1:{port}", ("upstream", "url"): upstreams("reference").url,
         ("admin", "address"): f"127.0.0.1:{harness.free_port()}"},
    )
    assert text.count("validate_arguments = false") == 1
    text = text.replace("validate_arguments = false", "validate_arguments = true") + GOVERNANCE_ON
    gate = harness.start_mcpgate_with(harness.write_config_text(text), port, workers=1)
    yield gate
    gate.stop()


def test_the_comparison_config_is_the_shipped_one():
    """Only `[listen] address` and `[upstream] url` differ from config.example.toml."""
    shipped = harness.EXAMPLE_CONFIG.read_text()
    ours = harness.example_config(1234, "http://127.0.0.1:1/mcp").read_text()
    changed = [(a, b) for a, b in zip(shipped.splitlines(), ours.splitlines()) if a != b]
    assert len(shipped.splitlines()) == len(ours.splitlines())
    assert [b for _, b in changed] == ['address = "127.0.0.1:1234"', 'url = "http://127.0.0.1:1/mcp"'], changed
    a, b = tomllib.loads(shipped), tomllib.loads(ours)
    a["listen"]["address"], a["upstream"]["url"] = b["listen"]["address"], b["upstream"]["url"]
    assert a == b


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


def compare_without_regressions(suite: str, direct: str, proxied: str, tmp_path, capsys, how: str) -> dict:
    """Runs `suite` direct and through `proxied`; nothing that passes direct
    may fail through it. Returns the comparison's results."""
    rc, out = run_suite(
        ["compare", "--suite", suite, "--direct", direct, "--proxied", proxied, "--out", str(tmp_path),
         "--json", str(tmp_path / "c.json")],
        capsys,
    )
    regressions = [line for line in out.splitlines() if line.startswith("REGRESSION")]
    assert rc == 0, "\n".join(regressions) or out[-3000:]
    data = json.loads((tmp_path / "c.json").read_text())[suite]
    passing = ("pass", "warn")
    failing_through = {name: data["mcpgate"].get(name, {"status": "missing"}) for name, r in data["direct"].items()
                       if r["status"] in passing and data["mcpgate"].get(name, {}).get("status") not in passing}
    assert not failing_through, f"pass direct, fail through mcpgate {how}: {failing_through}"
    return data


@pytest.mark.parametrize("suite", SUITES)
def test_compare_direct_vs_mcpgate(suite, upstreams, conformance_gate, tmp_path, capsys):
    ref, gate = upstreams("reference"), conformance_gate
    data = compare_without_regressions(suite, ref.url, gate.url, tmp_path, capsys, "under config.example.toml")
    assert data["mcpgate"]["dns-rebinding-protection"]["status"] == "pass"
    if suite != "0.1.16":
        assert data["mcpgate"]["http-header-validation"]["status"] == "pass"


@pytest.mark.parametrize("suite", SUITES)
def test_compare_direct_vs_mcpgate_with_governance_on(suite, upstreams, governed_gate, tmp_path, capsys):
    """The shipped config plus [access] (deny by default, one allow-all rule),
    argument validation, every poisoning rule hiding what it finds, results
    held to their outputSchema and every secret and personal-data rule
    redacting, in results and arguments: nothing that passes direct fails
    through it."""
    ref = upstreams("reference")
    compare_without_regressions(suite, ref.url, governed_gate.url, tmp_path, capsys, "with governance on")


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


# The reference server as mcpgate's own stdio worker (`--stdio`): the same
# fixtures, reached through a stdio pool instead of HTTP. Compared with the
# reference server over HTTP directly.
@pytest.fixture(scope="module")
def stdio_gate():
    port = harness.free_port()
    command = [str(harness.VENV_PY), str(harness.REFERENCE_SERVER), "--stdio"]
    text = (f'[listen]\naddress = "127.0.0.1:{port}"\n[admin]\naddress = "127.0.0.1:{harness.free_port()}"\n'
            f'[upstreams.default]\ncommand = {json.dumps(command)}\nmin_idle = 2\n')
    gate = harness.start_mcpgate_with(harness.write_config_text(text), port, workers=1)
    yield gate
    gate.stop()


# What a stdio worker cannot do that the same server over HTTP does: none.
# (A stdio server never sees the `Mcp-Param-*` headers of SEP-2243; mcpgate
# checks them against the arguments they mirror for it, which
# `http-custom-header-server-validation` in 0.2.0 tests.)
STDIO_GAPS = {"0.1.16": set(), "0.2.0-alpha.12": set()}


@pytest.mark.parametrize("suite", SUITES)
def test_compare_direct_vs_a_stdio_worker(suite, upstreams, stdio_gate, tmp_path, capsys):
    """The official suite against the reference server run as a stdio
    worker through mcpgate, against the same server over HTTP directly:
    the same pass set, but for the scenarios STDIO_GAPS names."""
    ref = upstreams("reference")
    rc, out = run_suite(["compare", "--suite", suite, "--direct", ref.url, "--proxied", stdio_gate.url,
                         "--out", str(tmp_path), "--json", str(tmp_path / "c.json")], capsys)
    data = json.loads((tmp_path / "c.json").read_text())[suite]
    passing = ("pass", "warn")
    lost = {name for name, r in data["direct"].items()
            if r["status"] in passing and data["mcpgate"].get(name, {}).get("status") not in passing}
    assert lost == STDIO_GAPS[suite], f"pass direct, fail through a stdio worker: {sorted(lost)}"
    through = [n for n, r in data["mcpgate"].items() if r["status"] in passing]
    print(f"conformance {suite} through a stdio worker: {len(through)}/{len(data['mcpgate'])} passing "
          f"(direct over HTTP: {sum(r['status'] in passing for r in data['direct'].values())})")
