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

With an account (``TracemarkLogitsProcessor.from_profile(path, device=..., account="acct-7",
temperature=0.8, top_p=0.95)``), the processor also *chooses* each row's token: after the bias it
draws the account's token (``Watermark.draw_batch``: the exponential-minimum draw with the
account's uniforms, distributed exactly as softmax(biased scores / temperature) after top-k and
top-p) and sets every other score of that row to -inf. transformers applies its own warpers
(temperature, top-k, top-p) after user processors, so ``generate(do_sample=True, ...)`` then
returns that token whatever its settings: the processor's ``temperature``, ``top_k`` and
``top_p`` define the distribution, the engine's no longer matter (greedy decoding and beam
search pick it too). The draw reads a float32 host copy of the biased rows (one device-to-host
copy per step, B × V floats); rows whose context is shorter than the window are left to the
engine's sampler.

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

    def __init__(
        self,
        watermark: Union["Watermark", "TorchGreenList"],
        *,
        account: Optional[str] = None,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
    ) -> None:
        hook = getattr(watermark, "apply_", None)
        self.device_hook: Optional["TorchGreenList"] = watermark if hook is not None else None  # type: ignore[assignment]
        self.watermark: "Watermark" = watermark.watermark if self.device_hook is not None else watermark  # type: ignore[union-attr,assignment]
        if account is not None:
            self.watermark = self.watermark.for_account(account)
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self._width = self.watermark.context_width
        if self.watermark.account is not None:
            import numpy as np

            # Checks the settings by the core's rules now rather than at the first token.
            self.watermark.draw(np.zeros(self.watermark.vocab_size, dtype=np.float32), [], temperature=temperature, top_k=top_k, top_p=top_p)

    @classmethod
    def from_profile(
        cls,
        path: Union[str, "os.PathLike[str]"],
        device: Any = None,
        *,
        account: Optional[str] = None,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
    ) -> "TracemarkLogitsProcessor":
        """A processor with the torch hook on `device` (the model's; CPU when omitted)."""
        from tracemark.torch_green import TorchGreenList

        return cls(TorchGreenList.from_profile(path, device), account=account, temperature=temperature, top_k=top_k, top_p=top_p)

    @property
    def account(self) -> Optional[str]:
        """The account whose draws this processor forces; None when it only biases."""
        return self.watermark.account

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        biased = self._bias(input_ids, scores)
        if self.watermark.account is not None:
            self._force_draws(input_ids, biased)
        return biased

    def _force_draws(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> None:
        """Sets every score but the account's drawn token to -inf, in place, row by row."""
        import torch

        contexts = input_ids[:, -self._width :].detach().to("cpu").numpy()
        host = scores.detach().to(device="cpu", dtype=torch.float32).contiguous()
        tokens = self.watermark.draw_batch(host.numpy(), contexts, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        rows = [b for b, t in enumerate(tokens) if t is not None]
        if not rows:
            return
        index = torch.tensor(rows, device=scores.device, dtype=torch.long)
        drawn = torch.tensor([tokens[b] for b in rows], device=scores.device, dtype=torch.long)
        with torch.no_grad():
            kept = scores[index, drawn].clone()
            scores[index] = float("-inf")
            scores[index, drawn] = kept

    def _bias(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
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
