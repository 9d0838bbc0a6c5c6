#!/usr/bin/env bash
# Offline schema check of every Kubernetes manifest under deploy/ (issue 6), for `make test`.
# Strict validation against the Kubernetes JSON schemas bundled in the PyPI package
# kubernetes-validate (scripts/requirements-deploy.txt), references between the objects,
# and the TOML of every mcpgate config embedded in a ConfigMap (written under
# .cache/deploy-validate/, path printed; set MCPGATE_BIN=target/debug/mcpgate to also run
# `mcpgate check` on each). One line per document; exits non-zero on any failure.
#
#   scripts/validate-deploy.sh                          # Kubernetes 1.30 and 1.37
#   DEPLOY_K8S_VERSIONS=1.33 scripts/validate-deploy.sh
#
# Idempotent: installs into the git-ignored .cache/venv (made by scripts/bootstrap.sh venv)
# only when .cache/stamps/deploy-validate or the package is missing or the pins changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
PY="$CACHE/venv/bin/python"
REQS="$ROOT/scripts/requirements-deploy.txt"
STAMP="$CACHE/stamps/deploy-validate"
cd "$ROOT"

[[ -x "$PY" ]] || scripts/bootstrap.sh venv

spec="$(sha256sum "$REQS" | cut -c1-16)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$spec" ]] ||
  ! "$PY" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  echo "validate-deploy: installing $(grep -v '^#' "$REQS" | xargs) into .cache/venv"
  # The conformance pins are constraints: this never moves a package they pin.
  "$PY" -m pip install -q --disable-pip-version-check \
    -r "$REQS" -c scripts/requirements-conformance.txt
  mkdir -p "$(dirname "$STAMP")"
  printf '%s' "$spec" >"$STAMP"
fi

rm -rf "$CACHE/deploy-validate"
exec "$PY" scripts/validate-deploy.py deploy --out "$CACHE/deploy-validate" \
  --k8s "${DEPLOY_K8S_VERSIONS:-1.30,1.37}"
