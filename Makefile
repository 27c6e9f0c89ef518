# Every target installs what it needs into .venv first, so each works on a fresh clone.
# CI (.ci/run) runs `make test` (the README's test command) and `make lint`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Compiled crates are cached outside the clone, so fresh clones on one machine rebuild fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/distilabel-rs/target

.DEFAULT_GOAL := help
.PHONY: help install install-release install-demo demo test test-rust test-python test-engines lint format bench soak fuzz build-release clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python ## Build the Rust extension into .venv with the test extras
	$(BIN)/pip install --quiet 'maturin>=1.9.4,<2'
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --quiet --profile ci --extras test

# Benchmarks measure what a wheel ships: the release profile (fat LTO, one codegen unit;
# a few minutes to build on two cores), not the CI profile.
install-release: $(BIN)/python ## Build the Rust extension into .venv as the release wheel is built, with the test extras
	$(BIN)/pip install --quiet 'maturin>=1.9.4,<2'
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --quiet --release --extras test

DEMO_OUTPUT ?= $(abspath $(VENV))/demo-results.jsonl
INSTALL_LOG := $(abspath $(VENV))/install.log

# The package and what the demo needs (the progress bar), not the test extras; the build's
# output goes to a log, shown only if it fails.
install-demo: $(BIN)/python
	@echo "Building distilabel-rs into $(VENV) (the first build of the Rust extension takes a few minutes; log: $(INSTALL_LOG))..."
	@$(BIN)/pip install --quiet 'maturin>=1.9.4,<2' > $(INSTALL_LOG) 2>&1 || (cat $(INSTALL_LOG); exit 1)
	@VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --quiet --profile ci --extras progress >> $(INSTALL_LOG) 2>&1 || (cat $(INSTALL_LOG); exit 1)

demo: install-demo ## Install, then run the main job: `distilabel-rs generate` on examples/requests.jsonl (local mock server, no key)
	@rm -f $(DEMO_OUTPUT)
	$(BIN)/distilabel-rs generate examples/requests.jsonl -o $(DEMO_OUTPUT) --model demo-model --mock --num-generations 2
	@echo "first result line of $(DEMO_OUTPUT):"
	@head -c 400 $(DEMO_OUTPUT); echo " ..."
	$(BIN)/python examples/quickstart.py

test: install test-rust test-python ## Install, then run the Rust and Python tests

test-rust: ## Rust core and mock server tests (no Python involved)
	cargo test --quiet -p distilabel-rs-core -p distilabel-rs-mock

test-python: ## Python tests, including the differential suite against distilabel 1.5.3
	$(BIN)/python -m pytest tests -q

test-engines: install ## Optional tier: installs torch + transformers (large) into .venv, runs TransformersLLM on a tiny CPU model
	$(BIN)/pip install --quiet 'torch>=2.0.0' 'transformers>=4.34.1'
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests/test_transformers_llm.py -q

lint: install ## cargo fmt/clippy, ruff, mypy, and the native stub checked against the module
	$(BIN)/pip install --quiet 'ruff>=0.6' 'mypy>=1.10'
	cargo fmt --all -- --check
	cargo clippy --quiet --all-targets -- -D warnings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy.stubtest distilabel_rs._core
	$(BIN)/python -m mypy

format: $(BIN)/python ## Format Rust and Python sources
	$(BIN)/pip install --quiet 'ruff>=0.6'
	cargo fmt --all
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-release ## Side-by-side benchmarks against distilabel 1.5.3, on the release build (minutes)
	$(BIN)/python benches/bench_fanout.py
	$(BIN)/python benches/bench_grouping.py
	$(BIN)/python benches/bench_openai.py
	$(BIN)/python benches/bench_providers.py
	$(BIN)/python benches/bench_anthropic.py
	$(BIN)/python benches/bench_inference_endpoints.py
	$(BIN)/python benches/bench_ollama.py
	$(BIN)/python benches/bench_pipeline.py
	$(BIN)/python benches/bench_adaptive.py
	$(BIN)/python benches/bench_command_peers.py

soak: install ## The command over a million requests with 1% failures, a SIGKILL and a resume (minutes; not in CI)
	$(BIN)/python benches/soak_generate.py

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= line_parser response_parsers retry_hints batch_results
# cargo fuzz needs nightly's -Z flags: the nightly toolchain if rustup has one, else stable
# told to accept them (RUSTC_BOOTSTRAP=1).
FUZZ_CARGO = $(if $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo y),cargo +nightly,RUSTC_BOOTSTRAP=1 cargo)

fuzz: ## Fuzz each parser of untrusted input for FUZZ_SECONDS (default 60) each; not in CI
	command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d) || exit 1; \
		CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz $(FUZZ_CARGO) fuzz run $$target $$scratch corpus/$$target \
			-- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=60 || exit 1; \
		rm -rf $$scratch; \
	done

build-release: $(BIN)/python ## Build the release abi3 wheel into dist/
	$(BIN)/pip install --quiet 'maturin>=1.9.4,<2'
	$(BIN)/maturin build --release --out dist

clean: ## Remove .venv and build outputs
	rm -rf $(VENV) dist
