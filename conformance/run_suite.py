#!/usr/bin/env python3
"""Run the official MCP conformance suite's server scenarios against a URL.

    run      --suite 0.1.16 --url URL                    one target, prints its pass list
    compare  --suite all --direct URL --proxied URL      both targets + diff; non-zero exit on regression
    spawn    --suite all [--direct-only] [--upstream reference|everything]
             starts the upstream (and mcpgate in front of it, under config.example.toml
             as shipped but for its listen address and upstream URL) itself, then compares
    list     --suite 0.2.0-alpha.12                      scenario list only

Suites: "0.1.16" (every server scenario of that package) and "0.2.0-alpha.12" (the
server scenarios `list --requirements 2026-07-28` names, plus its pending ones, all run
with --spec-version 2026-07-28, plus server-session-lifecycle at 2025-11-25); "all" = both.

Each scenario runs as its own `node22 dist/index.js server --scenario X` process with a
timeout; its checks.json decides its status:
  pass  no FAILURE and at least one SUCCESS      warn  no FAILURE, only WARNING/INFO
  skip  nothing but SKIPPED/INFO                  fail  a FAILURE check
  error timed out or wrote no checks.json
"pass" and "warn" count as passing. compare fails when a scenario passing direct ranks
lower through the proxy, or when a MUST_PASS_PROXIED scenario is not passing through it.
Run with the venv python (.cache/venv/bin/python); it only needs the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

SUITES = ("0.1.16", "0.2.0-alpha.12")
MODERN = "2026-07-28"
MUST_PASS_PROXIED = {
    "0.1.16": {"dns-rebinding-protection"},
    "0.2.0-alpha.12": {"dns-rebinding-protection", "http-header-validation"},
}
RANK = {"pass": 4, "warn": 3, "skip": 2, "fail": 1, "error": 0}
PASSING = ("pass", "warn")


@dataclass
class Scenario:
    name: str
    spec_version: str | None = None  # --spec-version for the CLI, None = its default


@dataclass
class Result:
    scenario: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # "check-id: message"
    checks: dict[str, str] = field(default_factory=dict)  # "id|name" -> status
    seconds: float = 0.0


def node_cli(suite: str, *args: str) -> list[str]:
    return [str(harness.NODE22), str(harness.CONFORMANCE[suite]), *args]


def scenarios(suite: str) -> list[Scenario]:
    if suite == "0.1.16":
        out = subprocess.run(node_cli(suite, "list", "--server"), capture_output=True, text=True, check=True).stdout
        return [Scenario(m) for m in re.findall(r"^\s+- (\S+)", out, re.M)]
    out = subprocess.run(node_cli(suite, "list", "--requirements", MODERN), capture_output=True, text=True, check=True).stdout
    server_part = out.split("Server scenarios", 1)[1].split("Client scenarios", 1)[0]
    names = re.findall(r"^\s+- (\S+)\s*$", server_part, re.M)
    pending = out.split("pending", 1)[1] if "pending (" in out else ""
    names += [n for n in re.findall(r"^\s+- (\S+) \[server\]", pending, re.M) if n not in names]
    return [Scenario(n, MODERN) for n in names] + [Scenario("server-session-lifecycle")]


def classify(checks: list[dict]) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.get("status", "?")] = counts.get(c.get("status", "?"), 0) + 1
    if counts.get("FAILURE"):
        return "fail", counts
    if counts.get("SUCCESS"):
        return "pass", counts
    if counts.get("WARNING"):
        return "warn", counts
    return ("skip" if checks else "error"), counts


def run_scenario(suite: str, sc: Scenario, url: str, out: Path, timeout: float) -> Result:
    out.mkdir(parents=True, exist_ok=True)
    cmd = node_cli(suite, "server", "--url", url, "--scenario", sc.name, "-o", str(out))
    if sc.spec_version:
        cmd += ["--spec-version", sc.spec_version]
    if suite != "0.1.16":
        cmd += ["--timeout", str(int(timeout * 1000))]
    t0 = time.monotonic()
    with open(out / "cli.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout + 15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Result(sc.name, "error", failures=[f"timed out after {timeout + 15:.0f}s"], seconds=time.monotonic() - t0)
    files = sorted(out.glob(f"server-{sc.name}-*/checks.json"))
    if not files:
        tail = (out / "cli.log").read_text(errors="replace").strip().splitlines()[-3:]
        return Result(sc.name, "error", failures=["no checks.json: " + " | ".join(tail)], seconds=time.monotonic() - t0)
    checks = json.loads(files[-1].read_text())
    status, counts = classify(checks)
    failures = [
        " ".join(f"{c['id']}: {c.get('errorMessage') or c.get('description', '')}".split())[:300]
        for c in checks
        if c.get("status") == "FAILURE"
    ]
    keyed: dict[str, str] = {}
    for c in checks:
        key = f"{c.get('id')}|{c.get('name')}"
        n = sum(1 for k in keyed if k == key or k.startswith(key + "#"))
        keyed[f"{key}#{n}" if n else key] = c.get("status", "?")
    return Result(sc.name, status, counts, failures, keyed, time.monotonic() - t0)


def run_suite(suite: str, url: str, label: str, out_root: Path, timeout: float, deadline: float, only: set[str] | None = None) -> dict[str, Result]:
    results: dict[str, Result] = {}
    t_end = time.monotonic() + deadline
    for sc in scenarios(suite):
        if only and sc.name not in only:
            continue
        if time.monotonic() > t_end:
            results[sc.name] = Result(sc.name, "error", failures=[f"not run: suite deadline {deadline:.0f}s passed"])
            continue
        results[sc.name] = r = run_scenario(suite, sc, url, out_root / suite / label / sc.name, timeout)
        if os.environ.get("CONFORMANCE_VERBOSE"):
            print(f"  [{label}] {sc.name}: {r.status} ({r.seconds:.1f}s)", file=sys.stderr)
    return results


def passing(results: dict[str, Result]) -> list[str]:
    return [n for n, r in results.items() if r.status in PASSING]


def print_run(suite: str, label: str, url: str, results: dict[str, Result]) -> None:
    ok = passing(results)
    print(f"\n== conformance {suite} [{label}] {url}: {len(ok)}/{len(results)} passing")
    for name, r in results.items():
        mark = "PASS" if r.status in PASSING else r.status.upper()
        extra = f"  ({r.status})" if r.status == "warn" else ""
        print(f"  {mark:5} {name}{extra}")
        for f in r.failures[:3]:
            print(f"          - {f}")


def compare(suite: str, direct: dict[str, Result], proxied: dict[str, Result]) -> list[str]:
    problems = []
    print(f"\n== diff {suite} (direct -> through mcpgate)")
    same = True
    for name, d in direct.items():
        p = proxied.get(name)
        p_status = p.status if p else "error"
        if p_status != d.status:
            same = False
            print(f"  {name}: {d.status} -> {p_status}")
            for f in (p.failures if p else [])[:3]:
                print(f"          - {f}")
        if d.status in PASSING and RANK[p_status] < RANK[d.status]:
            problems.append(f"{name}: {d.status} direct, {p_status} through mcpgate")
        elif d.status in PASSING and p:
            lost = [k.split("|")[0] for k, s in d.checks.items() if s == "SUCCESS" and p.checks.get(k) not in (None, "SUCCESS")]
            if lost:
                print(f"  {name}: checks no longer SUCCESS through mcpgate: {', '.join(lost)}")
    for name in sorted(MUST_PASS_PROXIED[suite] & direct.keys()):
        p = proxied.get(name)
        if p is None or p.status not in PASSING:
            problems.append(f"{name}: must pass through mcpgate, got {p.status if p else 'missing'}")
    if same:
        print("  (identical scenario statuses)")
    return problems


def dump_json(path: Path, payload: dict) -> None:
    def enc(r: Result) -> dict:
        return {"status": r.status, "counts": r.counts, "failures": r.failures, "seconds": round(r.seconds, 2)}

    data = {s: {label: {n: enc(r) for n, r in res.items()} for label, res in runs.items()} for s, runs in payload.items()}
    path.write_text(json.dumps(data, indent=2))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("run", "compare", "spawn", "list"))
    ap.add_argument("--suite", default="all", choices=(*SUITES, "all"))
    ap.add_argument("--url", help="run: target URL")
    ap.add_argument("--direct", help="compare: upstream URL")
    ap.add_argument("--proxied", help="compare: mcpgate URL in front of the same upstream")
    ap.add_argument("--label", default="target", help="run: label for the target")
    ap.add_argument("--direct-only", action="store_true", help="spawn: no mcpgate, just the direct run")
    ap.add_argument("--upstream", default="reference", choices=("reference", "everything"), help="spawn: which upstream")
    ap.add_argument("--out", type=Path, help="results folder (default: a new temp dir)")
    ap.add_argument("--json", type=Path, help="write a JSON summary here")
    ap.add_argument("--timeout", type=float, default=45.0, help="seconds per scenario")
    ap.add_argument("--only", help="comma-separated scenario names to run (default: all)")
    ap.add_argument("--deadline", type=float, default=900.0, help="seconds per suite run, then the rest is 'error'")
    args = ap.parse_args()

    suites = list(SUITES) if args.suite == "all" else [args.suite]
    only = set(args.only.split(",")) if args.only else None
    if args.mode == "list":
        for s in suites:
            for sc in scenarios(s):
                print(f"{s}\t{sc.name}\t{sc.spec_version or 'default'}")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="mcpgate-conformance-"))
    print(f"results under {out}")
    if args.mode == "spawn":
        harness.set_scratch_dir(out / "logs")  # the spawned processes' logs and config
    procs: list[harness.Upstream] = []
    try:
        if args.mode == "spawn":
            up = harness.start_reference() if args.upstream == "reference" else harness.start_everything()
            procs.append(up)
            args.direct = up.url
            if not args.direct_only:
                gate = harness.start_mcpgate_example(up.url)
                procs.append(gate)
                args.proxied = gate.url
        if args.mode == "run":
            if not args.url:
                ap.error("run needs --url")
            payload = {}
            for s in suites:
                res = run_suite(s, args.url, args.label, out, args.timeout, args.deadline, only)
                print_run(s, args.label, args.url, res)
                payload[s] = {args.label: res}
                print(f"conformance {s}: {args.label} {len(passing(res))}/{len(res)}")
            if args.json:
                dump_json(args.json, payload)
            return 0 if all(len(passing(r[args.label])) == len(r[args.label]) for r in payload.values()) else 1
        if not args.direct or (not args.proxied and not args.direct_only):
            ap.error("compare needs --direct and --proxied")
        payload, problems, summary = {}, [], []
        for s in suites:
            direct = run_suite(s, args.direct, "direct", out, args.timeout, args.deadline, only)
            print_run(s, "direct", args.direct, direct)
            payload[s] = {"direct": direct}
            if args.direct_only:
                summary.append(f"conformance {s}: direct {len(passing(direct))}/{len(direct)}")
                continue
            proxied = run_suite(s, args.proxied, "mcpgate", out, args.timeout, args.deadline, only)
            print_run(s, "through mcpgate", args.proxied, proxied)
            payload[s]["mcpgate"] = proxied
            problems += [f"[{s}] {p}" for p in compare(s, direct, proxied)]
            summary.append(f"conformance {s}: direct {len(passing(direct))}/{len(direct)}, through mcpgate {len(passing(proxied))}/{len(proxied)}")
        if args.json:
            dump_json(args.json, payload)
        print()
        for p in problems:
            print(f"REGRESSION {p}")
        for line in summary:
            print(line)
        return 1 if problems else 0
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
