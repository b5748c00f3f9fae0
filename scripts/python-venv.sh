#!/usr/bin/env bash
# Makes the Python test environment of watermark-py: a virtual environment at
# ${TRACEMARK_VENV:-watermark-py/.venv} with numpy, pytest, pyarrow, mypy (for stubtest),
# llama-cpp-python and its OpenAI-compatible server (`llama_cpp.server`: the suspect that
# tests/live_endpoint.rs audits through scripts/serve-suspect.py). Prints its python.
#
# llama-cpp-python ships as source and compiles llama.cpp (about 6 minutes on 2 cores). It is
# built once into ${TRACEMARK_CACHE:-~/.cache/tracemark}/wheels and reused from there, with
# GGML_NATIVE off: a native build on a CPU that reports AMX takes ggml's AMX matmul path, which
# crashed here on the default model (SIGSEGV in ggml_backend_amx_mul_mat). pip's own wheel cache
# is bypassed because it keys wheels by version only, not by the build flags.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
venv="${TRACEMARK_VENV:-watermark-py/.venv}"
cache="${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}/wheels"
LLAMA_CPP="llama-cpp-python==0.3.36"
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
pip=(--disable-pip-version-check --quiet)

if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv" >&2
fi
py="$venv/bin/python"
"$py" -m pip install "${pip[@]}" "numpy>=1.21" "pytest>=7" "pyarrow>=14" "mypy>=1.18" >&2

if ! "$py" -c "import llama_cpp" 2>/dev/null; then
  mkdir -p "$cache"
  wheel=$(ls "$cache"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    echo "building $LLAMA_CPP (compiles llama.cpp, about 6 minutes on 2 cores) ..." >&2
    CMAKE_ARGS="$CMAKE_FLAGS" "$py" -m pip wheel "${pip[@]}" --no-deps --no-cache-dir -w "$cache" "$LLAMA_CPP" >&2
    wheel=$(ls "$cache"/llama_cpp_python-0.3.36-*.whl | head -n 1)
  fi
  "$py" -m pip install "${pip[@]}" "$wheel" >&2
fi
# llama-cpp-python's `server` extra, at the versions tests/live_endpoint.rs was run with (the
# extra itself would resolve llama-cpp-python again, from source).
if ! "$py" -c "import llama_cpp.server.app" 2>/dev/null; then
  "$py" -m pip install "${pip[@]}" "fastapi==0.165.0" "uvicorn==0.54.0" "sse-starlette==3.7.0" \
    "starlette-context==0.3.6" "pydantic-settings==2.16.3" "PyYAML==6.0.4" >&2
fi
echo "$py"
