#!/usr/bin/env bash
# Supply-chain evidence, offline:
#   evidence/sbom/mcpgate.cdx.json        CycloneDX 1.5 SBOM of the mcpgate binary (cargo-cyclonedx)
#   evidence/supply-chain/audit.json       cargo audit against ../shared/advisory-db (no fetch)
#   evidence/supply-chain/deny.txt         cargo deny --offline check licenses bans sources
#   evidence/supply-chain/summary.json     the counts, decisions and exit codes
# Installs the cargo tools into .cache/cargo-tools on first use.
#   scripts/supply-chain.sh [ADVISORY_DB]   (default ../shared/advisory-db)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DB=${1:-../shared/advisory-db}
OUT=evidence/supply-chain
mkdir -p "$OUT" evidence/sbom
scripts/cargo-tools.sh cargo-cyclonedx cargo-audit cargo-deny || exit 1
export PATH="$ROOT/.cache/cargo-tools/bin:$PATH"

# SBOM: cargo-cyclonedx writes one <bin>_bin.cdx.json beside each crate's
# Cargo.toml; keep mcpgate's, remove the rest.
cargo cyclonedx --manifest-path proxy/Cargo.toml --format json --spec-version 1.5 \
  --describe binaries -q > "$OUT/cyclonedx.log" 2>&1
sbom_rc=$?
mv -f proxy/mcpgate_bin.cdx.json evidence/sbom/mcpgate.cdx.json 2>/dev/null
for m in $(cargo metadata --no-deps --format-version 1 2>/dev/null | python3 -c \
  'import json,sys,os; [print(os.path.dirname(p["manifest_path"])) for p in json.load(sys.stdin)["packages"]]'); do
  rm -f "$m"/*_bin.cdx.json
done
# The crates the binary uses, by cargo's own account, to check the SBOM against.
cargo tree -p mcpgate -e normal,build --prefix none --format '{p}' 2>/dev/null \
  | sed 's/ (.*//; s/ (\*)//' | sort -u > "$OUT/cargo-tree.txt"

if [ -d "$DB" ]; then
  cargo audit --db "$DB" --no-fetch --stale --json > "$OUT/audit.json" 2> "$OUT/audit.log"
  audit_rc=$?
else
  echo "{}" > "$OUT/audit.json"
  echo "advisory database $DB not found" > "$OUT/audit.log"
  audit_rc=127
fi

cargo deny --offline check licenses bans sources > "$OUT/deny.txt" 2>&1
deny_rc=$?

python3 - "$OUT" "$sbom_rc" "$audit_rc" "$deny_rc" "$DB" <<'PY'
import json, os, re, subprocess, sys, time, tomllib
out, sbom_rc, audit_rc, deny_rc, db = sys.argv[1:6]
sbom = json.load(open("evidence/sbom/mcpgate.cdx.json")) if os.path.exists("evidence/sbom/mcpgate.cdx.json") else {}
comps = sbom.get("components", [])
in_sbom = {f'{c["name"]} v{c["version"]}' for c in comps}
tree = {l.strip() for l in open(os.path.join(out, "cargo-tree.txt")) if l.strip()}
own = {"mcpgate", "filters", "policies"}
tree_deps = {t for t in tree if t.split(" v")[0] not in own}
no_license = sorted(f'{c["name"]} {c["version"]}' for c in comps if not c.get("licenses"))
audit = json.load(open(os.path.join(out, "audit.json")))
decisions = {d["id"]: d.get("reason", "") for d in tomllib.load(open("deny.toml", "rb")).get("advisories", {}).get("ignore", []) if isinstance(d, dict)}
warnings = []
for kind, items in (audit.get("warnings") or {}).items():
    for w in items:
        adv = w.get("advisory") or {}
        warnings.append({
            "kind": kind,
            "id": adv.get("id"),
            "package": w["package"]["name"],
            "version": w["package"]["version"],
            "title": adv.get("title"),
            "decision": decisions.get(adv.get("id"), "no decision recorded"),
        })
vulns = audit.get("vulnerabilities") or {}
deny_text = open(os.path.join(out, "deny.txt")).read()
summary = {
    "command": "scripts/supply-chain.sh (make evidence)",
    "finished_unix_s": int(time.time()),
    "sbom": {
        "file": "evidence/sbom/mcpgate.cdx.json",
        "spec_version": sbom.get("specVersion"),
        "components_count": len(comps),
        "components_without_license_count": len(no_license),
        "components_without_license": no_license,
        "cargo_tree_crates_count": len(tree_deps),
        "cargo_tree_crates_missing_from_sbom": sorted(tree_deps - in_sbom),
        "exit_code": int(sbom_rc),
    },
    "audit": {
        "advisory_db": db,
        "advisories_count": (audit.get("database") or {}).get("advisory-count"),
        "lockfile_dependencies_count": (audit.get("lockfile") or {}).get("dependency-count"),
        "vulnerabilities_count": vulns.get("count"),
        "vulnerabilities": [v.get("advisory", {}).get("id") for v in vulns.get("list", [])],
        "warnings": warnings,
        "exit_code": int(audit_rc),
    },
    "deny": {
        "checks": "licenses bans sources",
        "result_line": (deny_text.strip().splitlines() or [""])[-1],
        "allowed_licenses": tomllib.load(open("deny.toml", "rb"))["licenses"]["allow"],
        "exit_code": int(deny_rc),
    },
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
open(os.path.join(out, "summary.json"), "a").write("\n")
print(f'supply chain: SBOM {len(comps)} components; audit {vulns.get("count")} vulnerabilities, {len(warnings)} warnings; deny: {summary["deny"]["result_line"]}', file=sys.stderr)
PY
