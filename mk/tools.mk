# Real MCP software for conformance and real-client tests, cached under .cache/ by
# scripts/bootstrap.sh. Include from the main Makefile:  include mk/tools.mk
# Paths are relative to the repo root (run make from there).

TOOLS_CACHE   := .cache
NODE22        := $(TOOLS_CACHE)/bin/node22
VENV          := $(TOOLS_CACHE)/venv
VENV_PY       := $(VENV)/bin/python
NPM_DIR       := $(TOOLS_CACHE)/npm

# One npm prefix per pinned package; the package itself is in <dir>/node_modules/<name>.
CONFORMANCE_0_1_16_DIR  := $(NPM_DIR)/conformance-0.1.16
CONFORMANCE_0_2_0_DIR   := $(NPM_DIR)/conformance-0.2.0-alpha.12
SERVER_EVERYTHING_DIR   := $(NPM_DIR)/server-everything-2026.8.31
TS_SDK_V1_DIR           := $(NPM_DIR)/sdk-1.32.2
TS_CLIENT_V2_DIR        := $(NPM_DIR)/client-2.4.0
TS_SERVER_V2_DIR        := $(NPM_DIR)/server-2.4.0
OIDC_PROVIDER_DIR       := $(NPM_DIR)/oidc-provider-9.13.3

CONFORMANCE_0_1_16 := $(CONFORMANCE_0_1_16_DIR)/node_modules/@modelcontextprotocol/conformance/dist/index.js
CONFORMANCE_0_2_0  := $(CONFORMANCE_0_2_0_DIR)/node_modules/@modelcontextprotocol/conformance/dist/index.js
SERVER_EVERYTHING  := $(SERVER_EVERYTHING_DIR)/node_modules/@modelcontextprotocol/server-everything/dist/index.js

MCPGATE_BIN ?= target/debug/mcpgate
# Extra pytest flags, e.g. CONFORMANCE_PYTEST_FLAGS="-k py_client -x"
CONFORMANCE_PYTEST_FLAGS ?=

.PHONY: bootstrap reference-upstream conformance-direct conformance-compare real-clients conformance-tests

# Install/refresh everything above (near-instant when cached).
bootstrap:
	scripts/bootstrap.sh

# Run the Python reference upstream in the foreground: make reference-upstream PORT=3001
reference-upstream: bootstrap
	$(VENV_PY) conformance/upstreams/reference_server.py --port $(or $(PORT),3001)

# Both suites directly against a freshly started reference upstream (no mcpgate).
conformance-direct: bootstrap
	$(VENV_PY) conformance/run_suite.py spawn --suite all --direct-only

# Both suites direct vs through mcpgate (starts reference upstream + $(MCPGATE_BIN)).
conformance-compare: bootstrap
	MCPGATE_BIN=$(MCPGATE_BIN) $(VENV_PY) conformance/run_suite.py spawn --suite all

# Real SDK clients (Python mcp 2.3.0, TypeScript SDK 1.32.2) direct and through mcpgate.
real-clients: bootstrap
	MCPGATE_BIN=$(MCPGATE_BIN) $(VENV_PY) -m pytest -v conformance/tests/test_real_clients.py $(CONFORMANCE_PYTEST_FLAGS)

# Everything under conformance/tests (real clients + both conformance suites).
conformance-tests: bootstrap
	MCPGATE_BIN=$(MCPGATE_BIN) $(VENV_PY) -m pytest -v -s conformance/tests $(CONFORMANCE_PYTEST_FLAGS)
