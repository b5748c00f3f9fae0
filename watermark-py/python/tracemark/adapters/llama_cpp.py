"""llama-cpp-python: a ``logits_processor`` callable.

    from llama_cpp import Llama, LogitsProcessorList
    from tracemark.adapters.llama_cpp import LlamaCppWatermark

    wm = tracemark.Watermark.from_profile("keys/profile.toml")
    llm = Llama(model_path=...)
    out = llm.create_completion(prompt, logits_processor=LogitsProcessorList([LlamaCppWatermark(wm)]))

llama-cpp-python calls the processor with the whole context (``input_ids``, numpy intc) and the
next token's logits (numpy float32), and uses the row it returns. In 0.3.x that row is a strided
view of llama.cpp's candidate array (id, logit, p records, ids in vocabulary order), so it is
biased into a fresh contiguous row and returned; a contiguous, writable row is biased in place.
Only the last ``context_width`` ids are read, so a step costs the same at any context length.

With an account (``LlamaCppWatermark(wm, account="acct-7", temperature=0.8, top_p=0.95)``), the
processor also *chooses* the token: after the bias it draws the account's token
(``Watermark.draw``: the exponential-minimum draw with the account's uniforms, distributed
exactly as softmax(biased logits / temperature) after top-k and top-p) and returns a row in
which every other logit is -inf, so whatever llama.cpp's sampler then does, it picks that token.
The processor's ``temperature``, ``top_k`` and ``top_p`` define the distribution; llama.cpp's own
sampler settings (``temp``, ``top_k``, ``top_p``, ``min_p``, penalties: they run after the
processor) no longer matter. Do not combine it with a grammar: llama.cpp applies the grammar
after the processor, and a grammar that rejects the drawn token leaves nothing to sample. While
the context is shorter than the watermark's window nothing is drawn and llama.cpp samples as
usual. With ``temperature=0`` the draw is the argmax (greedy: no account signal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from tracemark._native import Watermark


class LlamaCppWatermark:
    """Adds the watermark's δ to the green logits of each step (a llama-cpp-python ``LogitsProcessor``);
    with an account, also forces the account's draw (see the module's documentation)."""

    def __init__(
        self,
        watermark: "Watermark",
        *,
        account: Optional[str] = None,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
    ) -> None:
        if account is not None:
            watermark = watermark.for_account(account)
        self.watermark = watermark
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self._width = watermark.context_width
        if watermark.account is not None:
            # Checks the settings by the core's rules now rather than at the first token.
            watermark.draw(np.zeros(watermark.vocab_size, dtype=np.float32), [], temperature=temperature, top_k=top_k, top_p=top_p)

    @property
    def account(self) -> Optional[str]:
        """The account whose draws this processor forces; None when it only biases."""
        return self.watermark.account

    def __call__(self, input_ids: "npt.NDArray[np.intc]", scores: "npt.NDArray[np.single]") -> "npt.NDArray[np.single]":
        context = input_ids[-self._width :]
        if scores.flags.c_contiguous and scores.flags.writeable:
            self.watermark.apply(scores, context)
            row = scores
        else:
            row = self.watermark.applied(scores, context)
        if self.watermark.account is None:
            return row
        token = self.watermark.draw(row, context, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        if token is not None:
            kept = row[token]
            row.fill(-np.inf)
            row[token] = kept
        return row


def logits_processor_list(
    watermark: "Watermark",
    *,
    account: Optional[str] = None,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    top_p: Optional[float] = None,
):  # -> llama_cpp.LogitsProcessorList
    """``LogitsProcessorList([LlamaCppWatermark(watermark, ...)])``; imports llama_cpp."""
    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([LlamaCppWatermark(watermark, account=account, temperature=temperature, top_k=top_k, top_p=top_p)])
