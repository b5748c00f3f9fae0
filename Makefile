# tracemark — `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help demo test lint fmt bench build model

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## The main job: key, profile, watermarked and plain generations, detection table
	@bash scripts/demo.sh

test: lint ## Every test: formatting, clippy, Rust unit/integration/doc tests
	$(CARGO) test --workspace --all-features

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Criterion benchmarks (hook, detector, sampler); see benches/README.md
	$(CARGO) bench -p watermark-core

model: ## Fetch the default model (SmolLM2-135M-Instruct GGUF) into the cache, checked by SHA-256
	@bash scripts/fetch-model.sh

build: ## Release build of the tracemark binary
	$(CARGO) build --release -p verifier-cli
