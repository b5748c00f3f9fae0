# tracemark — `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help demo test lint fmt bench bench-model build model

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## The main job: key, profile, watermarked and plain generations, detection table
	@bash scripts/demo.sh

test: lint ## Every test: fmt, clippy, unit, property, statistical, model end-to-end and doc tests
	@bash scripts/fetch-model.sh >/dev/null
	TRACEMARK_CORPUS="$$(bash scripts/fetch-corpus.sh)" TRACEMARK_REQUIRE_MODEL=1 \
	  $(CARGO) test --workspace --all-features

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Criterion benchmarks (hook, detector, sampler); see benches/README.md
	$(CARGO) bench -p watermark-core

bench-model: model ## Tokens/s of the default model with and without the watermark, in one run
	$(CARGO) run --release -q -p tracemark-model --example generation_bench

model: ## Fetch the default model (SmolLM2-135M-Instruct GGUF) into the cache, checked by SHA-256
	@bash scripts/fetch-model.sh

build: ## Release build of the tracemark binary
	$(CARGO) build --release -p verifier-cli
