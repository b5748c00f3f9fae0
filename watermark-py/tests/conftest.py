"""Shared fixtures: the Rust CLI (the reference), and profiles it makes.

The CLI is found through TRACEMARK_BIN (the Makefile sets it), else in the workspace's target/.
Tests that need the default model's tokenizer are skipped when the model is not cached, unless
TRACEMARK_REQUIRE_MODEL=1 (as `make test` sets), where they fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[2]


def _find_cli() -> Path | None:
    given = os.environ.get("TRACEMARK_BIN")
    if given:
        path = Path(given)
        if not path.is_absolute():
            path = REPO / path
        if not path.exists():
            raise FileNotFoundError(f"TRACEMARK_BIN={given} does not exist; run `cargo build -p verifier-cli`")
        return path
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "tracemark"
        if path.exists():
            return path
    return None


@pytest.fixture(scope="session")
def cli() -> Path:
    path = _find_cli()
    if path is None:
        pytest.skip("the tracemark CLI is not built (cargo build -p verifier-cli, or set TRACEMARK_BIN)")
    return path


def run_cli(cli: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"tracemark {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def cli_detect(cli: Path, profile: Path, docs: List[Dict[str, Any]], tmp: Path, *extra: str) -> List[Dict[str, Any]]:
    """`tracemark detect --json` on a JSONL file of `docs`; one dict per document."""
    path = tmp / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = run_cli(cli, "detect", "--profile", str(profile), "--json", *extra, str(path)).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def small_profile(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile over a 1000-token vocabulary (no tokenizer), default scheme."""
    out = tmp_path_factory.mktemp("small") / "keys"
    run_cli(cli, "keygen", "--out", str(out), "--vocab-size", "1000")
    return out / "profile.toml"


@pytest.fixture(scope="session")
def self_seeded_profile(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("selfseeded") / "keys"
    run_cli(cli, "keygen", "--out", str(out), "--vocab-size", "5000", "--seeding", "self-seeded", "--width", "4", "--gamma", "0.5", "--delta", "3")
    return out / "profile.toml"


def default_model() -> Path | None:
    """The cached default GGUF, as scripts/fetch-model.sh would print it (without fetching)."""
    cache = os.environ.get("TRACEMARK_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tracemark"
    )
    path = Path(cache) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


def require_model() -> Path:
    path = default_model()
    if path is None:
        if os.environ.get("TRACEMARK_REQUIRE_MODEL") == "1":
            raise FileNotFoundError("the default model is not cached; run `make model`")
        pytest.skip("the default model is not cached (make model)")
    return path


@pytest.fixture(scope="session")
def model_profile(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile bound to the default model's tokenizer (vocabulary 49152), as `keygen` makes it,
    with a fixed key in place of the random one: the engine tests then generate and score the same
    tokens on every run (a fresh key once left a 158-token watermarked answer at log10 p -5.2,
    short of the 1e-6 its test demands)."""
    require_model()
    out = tmp_path_factory.mktemp("model") / "keys"
    run_cli(cli, "keygen", "--out", str(out))
    key = bytes([0x5A]) * 32
    key_file = out / "tracemark.key"
    key_file.write_text(f"tracemark-key-v1\n{key.hex()}\n")
    key_file.chmod(0o600)
    fingerprint = hashlib.sha256(b"tracemark/key-fingerprint/v1" + key).hexdigest()[:16]
    profile = out / "profile.toml"
    lines = profile.read_text().splitlines(keepends=True)
    profile.write_text("".join(
        f'key_fingerprint = "{fingerprint}"\n' if line.startswith("key_fingerprint") else line for line in lines
    ))
    return profile
