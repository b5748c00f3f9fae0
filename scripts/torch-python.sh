#!/usr/bin/env bash
# Prints a python that has torch and this tree's tracemark package, for `make test-torch` and
# `make bench-torch` (the torch hook, tracemark.torch_green).
#
# The torch is the vLLM environment's (scripts/vllm-venv.sh: PyPI's torch 2.13.0, which runs on
# CPU), so that the two share one 5 GB install. Without that script, torch 2.13.0 is installed
# into the watermark-py environment (scripts/python-venv.sh) instead. Either way the tracemark
# wheel is rebuilt from ./watermark-py and reinstalled (--no-deps), so the tests see this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
pip=(--disable-pip-version-check --quiet)

if [ -n "${TRACEMARK_TORCH_PYTHON:-}" ]; then
  py="$TRACEMARK_TORCH_PYTHON"
elif [ -f scripts/vllm-venv.sh ]; then
  py="$(bash scripts/vllm-venv.sh)"
else
  py="$(bash scripts/python-venv.sh)"
  "$py" -c "import torch" 2>/dev/null || "$py" -m pip install "${pip[@]}" "torch==2.13.0" >&2
fi
"$py" -m pip install "${pip[@]}" "pytest>=7" >&2
"$py" -m pip install "${pip[@]}" --force-reinstall --no-deps ./watermark-py >&2
echo "$py"
