"""Hugging Face transformers: a ``LogitsProcessor`` for ``model.generate``.

    from transformers import LogitsProcessorList
    from tracemark.adapters.transformers import TracemarkLogitsProcessor

    proc = TracemarkLogitsProcessor.from_profile("keys/profile.toml", device=model.device)
    out = model.generate(**inputs, logits_processor=LogitsProcessorList([proc]))

``__call__(input_ids, scores)`` takes torch tensors of shape (B, T) and (B, V). A float32 CPU
tensor is biased in place by the Rust hook through a zero-copy numpy view. Any other tensor (GPU,
float16, bfloat16) is biased in place on its own device by the torch hook
(``tracemark.torch_green``: the same function in tensor ops, no host copy) when the processor has
one: ``from_profile`` makes it, or pass a ``TorchGreenList``. A processor made from a plain
``Watermark`` cannot (the compiled ``Watermark`` never hands out its key), and takes a round trip
instead: copied to the CPU as float32, biased, and copied back. Either way δ is added in float32
and rounded once to the tensor's dtype, so both give the same result. The profile's tokenizer
must be the model's (``tracemark keygen --tokenizer tokenizer.json``), or the detector will not
find the watermark.

The class follows transformers' ``LogitsProcessor`` protocol without inheriting from it, so that
importing this module does not import torch or transformers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    import torch

    from tracemark._native import Watermark
    from tracemark.torch_green import TorchGreenList


class TracemarkLogitsProcessor:
    """Adds δ to the green logits of every row of a (B, V) scores tensor."""

    def __init__(self, watermark: Union["Watermark", "TorchGreenList"]) -> None:
        hook = getattr(watermark, "apply_", None)
        self.device_hook: Optional["TorchGreenList"] = watermark if hook is not None else None  # type: ignore[assignment]
        self.watermark: "Watermark" = watermark.watermark if self.device_hook is not None else watermark  # type: ignore[union-attr,assignment]
        self._width = self.watermark.context_width

    @classmethod
    def from_profile(cls, path: Union[str, "os.PathLike[str]"], device: Any = None) -> "TracemarkLogitsProcessor":
        """A processor with the torch hook on `device` (the model's; CPU when omitted)."""
        from tracemark.torch_green import TorchGreenList

        return cls(TorchGreenList.from_profile(path, device))

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        import torch

        if scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.is_contiguous():
            # Shares memory with `scores`: biased in place, no copy.
            contexts = input_ids[:, -self._width :].detach().to("cpu").numpy()
            self.watermark.apply(scores.detach().numpy(), contexts)
            return scores
        hook = self.device_hook
        if hook is not None:
            if hook.device != scores.device:
                hook = self.device_hook = hook.to(scores.device)
            with torch.no_grad():
                hook.apply_(scores, input_ids)
            return scores
        contexts = input_ids[:, -self._width :].detach().to("cpu").numpy()
        host = scores.detach().to(device="cpu", dtype=torch.float32).contiguous()
        self.watermark.apply(host.numpy(), contexts)
        return host.to(device=scores.device, dtype=scores.dtype)
