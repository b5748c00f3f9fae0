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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tracemark._native import Watermark


class LlamaCppWatermark:
    """Adds the watermark's δ to the green logits of each step (a llama-cpp-python ``LogitsProcessor``)."""

    def __init__(self, watermark: "Watermark") -> None:
        self.watermark = watermark
        self._width = watermark.context_width

    def __call__(self, input_ids: "npt.NDArray[np.intc]", scores: "npt.NDArray[np.single]") -> "npt.NDArray[np.single]":
        context = input_ids[-self._width :]
        if scores.flags.c_contiguous and scores.flags.writeable:
            self.watermark.apply(scores, context)
            return scores
        return self.watermark.applied(scores, context)


def logits_processor_list(watermark: "Watermark"):  # -> llama_cpp.LogitsProcessorList
    """``LogitsProcessorList([LlamaCppWatermark(watermark)])``; imports llama_cpp."""
    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([LlamaCppWatermark(watermark)])
