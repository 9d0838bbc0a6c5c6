"""The operator's files in deploy/: the Prometheus alert rules and the
Grafana dashboard.

- `promtool check rules` and `promtool test rules` (Debian's prometheus
  package, unpacked by scripts/bootstrap.sh) on deploy/prometheus/.
- The dashboard against deploy/grafana/dashboard.schema.json (JSON Schema
  2020-12), unique panel ids, panels inside the 24-column grid and not
  overlapping, and every query parsed by promtool (as a recording rule).
- Every metric the rules and the dashboard name is one mcpgate exposes: a
  real scrape of the admin listener, plus the families a scrape shows only
  once they have a sample (read from the source, where they are declared).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import httpx
import pytest

import harness

PROMTOOL = harness.ROOT / ".cache/bin/promtool"
DEPLOY = harness.ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana/mcpgate.json"
SCHEMA = DEPLOY / "grafana/dashboard.schema.json"
RULES = DEPLOY / "prometheus/alerts.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    if not PROMTOOL.exists():
        if os.environ.get("MCPGATE_REQUIRED") == "1":
            pytest.fail(f"{PROMTOOL} missing: run scripts/bootstrap.sh promtool")
        pytest.skip("promtool not installed (scripts/bootstrap.sh promtool)")
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=60,
                          cwd=RULES.parent)


def queries() -> list[tuple[str, str]]:
    d = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]


def test_alert_rules_check_and_pass_their_unit_tests():
    r = promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0 and "SUCCESS: 7 rules found" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", "alerts.test.yml")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_the_dashboard_is_a_valid_grafana_dashboard(tmp_path):
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    d = json.loads(DASHBOARD.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(d), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
    # Each query parses: promtool checks it as a recording rule, with the
    # dashboard's variables given values.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"mcpgate:dashboard_query_{i}",
         "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*")}
        for i, (_, expr) in enumerate(queries())]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps(rules))
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0 and f"SUCCESS: {len(queries())} rules found" in r.stdout, r.stdout + r.stderr


def declared_metrics() -> set[str]:
    """Families the proxy declares (a vector with no sample yet is not in a scrape)."""
    names: set[str] = set()
    for f in (harness.ROOT / "proxy/src").rglob("*.rs"):
        names |= set(re.findall(r'"(mcpgate_[a-z_]+)"', f.read_text()))
    return names


def test_every_metric_the_rules_and_dashboard_name_exists():
    port, admin = harness.free_port(), harness.free_port()
    config = harness.write_config_text(
        f'[listen]\naddress = "127.0.0.1:{port}"\n[upstream]\nurl = "http://127.0.0.1:9/mcp"\n'
        f'[admin]\naddress = "127.0.0.1:{admin}"\n')
    g = harness.start_mcpgate_with(config, port, workers=1, admin=admin)
    try:
        scrape = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=10).text
    finally:
        g.stop()
    scraped = set(re.findall(r"^# TYPE (mcpgate_[a-z_]+) ", scrape, re.M))
    # Gauges read at scrape time are always there.
    assert {"mcpgate_in_flight", "mcpgate_upstream_breaker_open", "mcpgate_upstream_healthy",
            "mcpgate_workers_unreachable"} <= scraped, scraped
    known = scraped | declared_metrics()
    exprs = [e for _, e in queries()]
    exprs += re.findall(r"expr: (.+(?:\n {12,}.+)*)", RULES.read_text())
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\b(mcpgate_[a-z_]+)", e))
    base = {re.sub(r"_(bucket|count|sum)$", "", m) if m.endswith(("_bucket", "_count", "_sum")) else m for m in used}
    missing = sorted(m for m in base if m not in known)
    assert not missing, missing
    assert len(used) >= 15, used
