#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each and records, per
# target, executions, crashes and corpus growth in evidence/fuzz.json.
#   scripts/fuzz.sh [SECONDS] [OUT_JSON]      (make fuzz SECONDS=N)
# cargo-fuzz needs nightly flags: this stable toolchain is used with
# RUSTC_BOOTSTRAP=1. New inputs go to a scratch directory; the committed
# corpus (fuzz/corpus/<target>) is only read, unless MERGE=1, which merges
# what increased coverage back into it. A crash is copied to
# fuzz/regressions/<target>/<artifact name>, which `cargo test` replays.
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
OUT=${2:-evidence/fuzz.json}
ROOT=$PWD
scripts/cargo-tools.sh cargo-fuzz || exit 1
export PATH="$ROOT/.cache/cargo-tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build 2>&1 | tail -3 || exit 1
TARGETS=$(cargo fuzz list)
RESULTS=$(mktemp -d)
for t in $TARGETS; do
  work=$(mktemp -d)
  mkdir -p "artifacts/$t" "regressions/$t"
  before=$(ls "artifacts/$t" | sort)
  start=$(date +%s.%N)
  cargo fuzz run "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 \
    -max_len=65536 -timeout=10 > "$RESULTS/$t.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  after=$(ls "artifacts/$t" | sort)
  new_crashes=$(comm -13 <(echo "$before") <(echo "$after") | grep -v '^$' || true)
  for c in $new_crashes; do cp "artifacts/$t/$c" "regressions/$t/$c"; done
  if [ "${MERGE:-0}" = 1 ]; then
    cargo fuzz run "$t" "corpus/$t" "$work" -- -merge=1 > "$RESULTS/$t.merge.log" 2>&1 || true
  fi
  new_units=$(ls "$work" | wc -l)
  rm -rf "$work"
  python3 - "$RESULTS/$t.log" "$t" "$rc" "$start" "$end" "$new_units" "$(ls corpus/$t | wc -l)" "$new_crashes" > "$RESULTS/$t.json" <<'PY'
import json, re, sys
log, name, rc, start, end, new_units, corpus, crashes = sys.argv[1:9]
text = open(log, errors="replace").read()
def stat(key):
    m = re.findall(r"stat::%s:\s*(\d+)" % key, text)
    return int(m[-1]) if m else None
execs = stat("number_of_executed_units")
if execs is None:
    pulses = re.findall(r"^#(\d+)\s", text, re.M)
    execs = int(pulses[-1]) if pulses else 0
secs = float(end) - float(start)
cov = re.findall(r"^#\d+\s.*?cov: (\d+)", text, re.M)
crash_list = [c for c in crashes.split() if c]
print(json.dumps({
    "target": name,
    "executions_count": execs,
    "wall_s": round(secs, 1),
    "executions_per_s": round(execs / secs, 1) if secs > 0 else 0,
    "crashes_count": len(crash_list),
    "crash_artifacts": crash_list,
    "exit_code": int(rc),
    "coverage_edges_count": int(cov[-1]) if cov else None,
    "peak_rss_bytes": (stat("peak_rss_mb") or 0) * 1024 * 1024,
    "new_units_count": int(new_units),
    "corpus_files_count": int(corpus),
    "log_tail": text.strip().splitlines()[-3:],
}))
PY
  echo "fuzz $t: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["executions_count"], "execs,", d["crashes_count"], "crashes")' "$RESULTS/$t.json")" >&2
done
cd "$ROOT"
mkdir -p "$(dirname "$OUT")"
python3 - "$RESULTS" "$SECS" "$OUT" <<'PY'
import json, os, subprocess, sys, time
res, secs, out = sys.argv[1:4]
targets = [json.load(open(os.path.join(res, f))) for f in sorted(os.listdir(res)) if f.endswith(".json")]
def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
json.dump({
    "command": "make fuzz SECONDS=%s" % secs,
    "seconds_per_target_s": int(secs),
    "finished_unix_s": int(time.time()),
    "toolchain": ver(["rustc", "-V"]) + " (RUSTC_BOOTSTRAP=1)",
    "cargo_fuzz_version": ver([".cache/cargo-tools/bin/cargo-fuzz", "--version"]),
    "sanitizer": "address (cargo-fuzz default)",
    "targets": targets,
    "total_executions_count": sum(t["executions_count"] for t in targets),
    "total_crashes_count": sum(t["crashes_count"] for t in targets),
}, open(out, "w"), indent=2)
open(out, "a").write("\n")
PY
rm -rf "$RESULTS"
echo "fuzz: wrote $OUT" >&2
