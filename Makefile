# mcpgate: the two commands a fresh machine needs are `make run` and `make test`.
# Everything they install is cached under .cache/ (git-ignored).

SHELL := /bin/bash
include mk/tools.mk

CARGO ?= cargo
DEMO_UPSTREAM_ADDR ?= 127.0.0.1:9100
CONFIG ?= config.example.toml

.PHONY: run test lint unit-test build-debug build-release negative-suite clean-cache \
	bench bench-quick evidence evidence-check fuzz supply-chain bench-tools criterion conn-memory

# Starts the bundled demo upstream on 127.0.0.1:9100/mcp and mcpgate in front of
# it on 127.0.0.1:8080/mcp (policy: config.example.toml). Ctrl-C stops both.
run:
	scripts/bootstrap.sh cmake
	$(CARGO) build --release -p mcpgate -p bench
	scripts/run-demo.sh target/release $(CONFIG) $(DEMO_UPSTREAM_ADDR)

# The whole suite: formatting, lints, unit tests, then the real binary against
# real MCP software (negative suite, SDK clients, official conformance suites).
test: bootstrap lint unit-test build-debug evidence-check
	MCPGATE_REQUIRED=1 MCPGATE_BIN=target/debug/mcpgate DEMO_UPSTREAM_BIN=target/debug/demo-upstream \
	  $(VENV_PY) -m pytest -v -s -p no:cacheprovider conformance/tests $(CONFORMANCE_PYTEST_FLAGS)
	MCPGATE_BIN=target/debug/mcpgate scripts/validate-deploy.sh
	$(MAKE) --no-print-directory bench-quick BENCH_PROFILE=debug

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

# === Evidence: benchmarks, fuzzing, supply chain (issue 5) ===
# Every number in evidence/ comes from these targets; nothing there is edited
# by hand. Load tests run on loopback only, bounded in time, and stop by
# themselves. See evidence/REPORT.md for what each figure means.

BENCH_PROFILE ?= release
BENCH_BIN := target/$(BENCH_PROFILE)
BENCH_CARGO_FLAGS := $(if $(filter release,$(BENCH_PROFILE)),--release,)
# make fuzz SECONDS=N (per target); `make evidence` uses the same default.
FUZZ_SECONDS := $(or $(SECONDS),60)

bench-tools:
	scripts/bootstrap.sh cmake
	scripts/bench-tools.sh

# All scenarios (under 15 minutes on 2 cores) into evidence/bench/*.json; the
# profile scenario needs perf and strace (Debian packages) and inferno
# (cached under .cache/cargo-tools).
bench: bench-tools
	scripts/bench-tools.sh --profile
	scripts/cargo-tools.sh inferno
	$(CARGO) build --release -p mcpgate -p bench
	MCPBENCH_COMMAND="make bench" target/release/mcpbench run --out evidence/bench

# Smoke run of every scenario (well under 2 minutes) into target/bench-quick/;
# `make test` runs it with BENCH_PROFILE=debug on the debug build.
bench-quick: bench-tools
	$(CARGO) build $(BENCH_CARGO_FLAGS) -p mcpgate -p bench
	MCPBENCH_COMMAND="make bench-quick" $(BENCH_BIN)/mcpbench run --quick --out target/bench-quick

# Filter-chain, JWT and content-guard micro-benchmarks (criterion, results under target/criterion/).
criterion:
	$(CARGO) bench -p filters --bench chain --bench jwt --bench content

# Every fuzz target for SECONDS seconds: evidence/fuzz.json.
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS) evidence/fuzz.json

# Per-connection RSS of mcpgate, bare pingora and nginx in one run:
# evidence/connection-memory.json.
conn-memory: bench-tools
	$(CARGO) build --release -p mcpgate -p bench
	$(VENV_PY) scripts/conn-memory.py evidence/connection-memory.json

# SBOM, cargo audit (offline, ../shared/advisory-db) and cargo deny.
supply-chain:
	scripts/supply-chain.sh ../shared/advisory-db

# Everything, then evidence/bundle.json, the SVG plots and REPORT.md.
evidence: bench criterion fuzz supply-chain conn-memory bootstrap
	target/release/mcpbench evidence --dir evidence --made-by "make evidence"
	$(VENV_PY) scripts/validate-evidence.py evidence

# The committed bundle validates against the schema (part of `make test`).
evidence-check: bootstrap
	$(VENV_PY) scripts/validate-evidence.py evidence
