"""vLLM's own watermarking functions still compute what the committed vectors say (run in the
environment scripts/vllm-venv.sh makes; skipped where vLLM is not installed, unless
TRACEMARK_REQUIRE_VLLM=1, as `make test-vllm` sets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "data" / "vllm-philox-vectors.json"


def _need_vllm() -> None:
    try:
        import vllm.v1.watermarking  # noqa: F401
    except ImportError:
        if os.environ.get("TRACEMARK_REQUIRE_VLLM") == "1":
            raise
        pytest.skip("vLLM is not installed (scripts/vllm-venv.sh makes an environment with it)")


def test_vllm_regenerates_the_committed_vectors(tmp_path):
    _need_vllm()
    out = tmp_path / "vectors.json"
    subprocess.run([sys.executable, str(REPO / "scripts" / "vllm-vectors.py"), str(out)], check=True, timeout=600)
    fresh = json.loads(out.read_text())
    committed = json.loads(VECTORS.read_text())
    # The generator line names the torch build; everything else must be identical.
    fresh.pop("generator")
    committed.pop("generator")
    for section in ("philox_blocks", "derive_watermark_key", "prf", "detect"):
        assert fresh[section] == committed[section], section
    assert fresh == committed


def test_the_vllm_adapter_loads_in_vllm():
    """vLLM accepts the processor class: it subclasses vLLM's LogitsProcessor."""
    _need_vllm()
    from vllm.v1.sample.logits_processor import LogitsProcessor

    from tracemark.adapters import vllm as adapter

    assert issubclass(adapter.WatermarkLogitsProcessor, LogitsProcessor)
