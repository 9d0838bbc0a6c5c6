#!/usr/bin/env bash
# Installs the cargo tools the evidence needs into .cache/cargo-tools (idempotent:
# a tool already present at the pinned version is skipped). Usage:
#   scripts/cargo-tools.sh [cargo-fuzz] [cargo-cyclonedx] [cargo-audit] [cargo-deny] [inferno]
# With no argument, installs the first four (inferno, the flame graph tools, only
# when named). Prints nothing for tools already cached.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=.cache/cargo-tools
mkdir -p "$ROOT"

declare -A VERSION=(
  [cargo-fuzz]=0.13.2
  [cargo-cyclonedx]=0.5.9
  [cargo-audit]=0.22.2
  [cargo-deny]=0.20.2
  [inferno]=0.12.8
)
# The binary that shows a tool is installed, where it is not the tool's name.
declare -A BIN=(
  [inferno]=inferno-flamegraph
)

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(cargo-fuzz cargo-cyclonedx cargo-audit cargo-deny)

for t in "${tools[@]}"; do
  v=${VERSION[$t]:?unknown tool $t}
  stamp="$ROOT/.$t-$v"
  if [ -x "$ROOT/bin/${BIN[$t]:-$t}" ] && [ -f "$stamp" ]; then
    continue
  fi
  echo "installing $t $v into $ROOT (compiles from source, a few minutes)" >&2
  cargo install --locked --root "$ROOT" --version "$v" "$t" >&2
  touch "$stamp"
done
