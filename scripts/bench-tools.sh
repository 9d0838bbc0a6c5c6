#!/usr/bin/env bash
# What the benchmarks need besides the workspace binaries: nginx (Debian
# package) as the reverse-proxy baseline. Idempotent; without root or apt the
# benchmarks still run and record nginx as unavailable.
set -uo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bench-tools: installing nginx (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null 2>&1; } \
    || echo "bench-tools: nginx could not be installed; benchmarks will record it as unavailable" >&2
  # The package may start a system nginx on port 80: the benchmarks run their
  # own, so leave the system one as the package set it up.
else
  echo "bench-tools: nginx missing and not root: benchmarks will record it as unavailable" >&2
fi
exit 0
