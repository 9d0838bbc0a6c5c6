# mcpgate: the two commands a fresh machine needs are `make run` and `make test`.
# Everything they install is cached under .cache/ (git-ignored).

SHELL := /bin/bash
include mk/tools.mk

CARGO ?= cargo
DEMO_UPSTREAM_ADDR ?= 127.0.0.1:9100
CONFIG ?= config.example.toml

.PHONY: run test lint unit-test build-debug build-release negative-suite clean-cache

# Starts the bundled demo upstream on 127.0.0.1:9100/mcp and mcpgate in front of
# it on 127.0.0.1:8080/mcp (policy: config.example.toml). Ctrl-C stops both.
run:
	scripts/bootstrap.sh cmake
	$(CARGO) build --release -p mcpgate -p bench
	scripts/run-demo.sh target/release $(CONFIG) $(DEMO_UPSTREAM_ADDR)

# The whole suite: formatting, lints, unit tests, then the real binary against
# real MCP software (negative suite, SDK clients, official conformance suites).
test: bootstrap lint unit-test build-debug
	MCPGATE_REQUIRED=1 MCPGATE_BIN=target/debug/mcpgate DEMO_UPSTREAM_BIN=target/debug/demo-upstream \
	  $(VENV_PY) -m pytest -v -s -p no:cacheprovider conformance/tests $(CONFORMANCE_PYTEST_FLAGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test:
	$(CARGO) test --workspace

build-debug:
	$(CARGO) build -p mcpgate -p bench

build-release:
	$(CARGO) build --release -p mcpgate -p bench

# Only the table-driven negative suite against the real binary.
negative-suite: bootstrap build-debug
	MCPGATE_REQUIRED=1 MCPGATE_BIN=target/debug/mcpgate DEMO_UPSTREAM_BIN=target/debug/demo-upstream \
	  $(VENV_PY) -m pytest -v -p no:cacheprovider conformance/tests/test_negative_suite.py

clean-cache:
	rm -rf .cache
