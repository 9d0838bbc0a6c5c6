#!/usr/bin/env bash
# What the benchmarks need besides the workspace binaries, from Debian's
# packages: nginx (the reverse-proxy baseline) and, with --profile (`make
# bench`), perf (the profile scenario's flame graphs) and strace (its
# system-call counts; quick runs skip that scenario). Idempotent; without
# root or apt the benchmarks still run and record what is missing as
# unavailable.
set -uo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${1:-}" = --profile ]; then
  command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  for pkg in "${missing[@]}"; do
    echo "bench-tools: installing $pkg (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null 2>&1; } \
      || echo "bench-tools: $pkg could not be installed; benchmarks will record it as unavailable" >&2
  done
  # The nginx package may start a system nginx on port 80: the benchmarks
  # run their own, so leave the system one as the package set it up.
else
  echo "bench-tools: ${missing[*]} missing and not root: benchmarks will record them as unavailable" >&2
fi
exit 0
