"""Hugging Face transformers: a ``LogitsProcessor`` for ``model.generate``.

    from transformers import LogitsProcessorList
    from tracemark.adapters.transformers import TracemarkLogitsProcessor

    wm = tracemark.Watermark.from_profile("keys/profile.toml")
    out = model.generate(**inputs, logits_processor=LogitsProcessorList([TracemarkLogitsProcessor(wm)]))

``__call__(input_ids, scores)`` takes torch tensors of shape (B, T) and (B, V). The hook runs on
the CPU, in Rust: a float32 CPU tensor is biased in place through a zero-copy numpy view; any
other tensor (GPU, float16, bfloat16) takes a documented round trip: copied to the CPU as
float32, biased, and copied back to its device and dtype (the addition of δ is done in float32,
then rounded once to the tensor's dtype). Only the last ``context_width`` ids of each row are
copied. The profile's tokenizer must be the model's (``tracemark keygen --tokenizer
tokenizer.json``), or the detector will not find the watermark.

The class follows transformers' ``LogitsProcessor`` protocol without inheriting from it, so that
importing this module does not import torch or transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from tracemark._native import Watermark


class TracemarkLogitsProcessor:
    """Adds δ to the green logits of every row of a (B, V) scores tensor."""

    def __init__(self, watermark: "Watermark") -> None:
        self.watermark = watermark
        self._width = watermark.context_width

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        import torch

        contexts = input_ids[:, -self._width :].detach().to("cpu").numpy()
        if scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.is_contiguous():
            # Shares memory with `scores`: biased in place, no copy.
            self.watermark.apply(scores.detach().numpy(), contexts)
            return scores
        host = scores.detach().to(device="cpu", dtype=torch.float32).contiguous()
        self.watermark.apply(host.numpy(), contexts)
        return host.to(device=scores.device, dtype=scores.dtype)
