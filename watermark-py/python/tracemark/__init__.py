"""tracemark: a keyed green-list watermark for language-model sampling, and its detector.

The classes come from the compiled core (``tracemark._native``, Rust): the same hook and the same
exact statistics as the ``tracemark`` command line, bit for bit. Engine adapters live in
``tracemark.adapters`` and import their engine only when used, so ``import tracemark`` needs
nothing but numpy.

>>> import numpy as np, tracemark
>>> wm = tracemark.Watermark.from_profile("keys/profile.toml")   # doctest: +SKIP
>>> logits = np.zeros(wm.vocab_size, dtype=np.float32)            # doctest: +SKIP
>>> wm.apply(logits, [1, 504, 3122])       # in place: +delta on green   # doctest: +SKIP
>>> wm.detect(token_ids).watermarked                              # doctest: +SKIP
"""

from tracemark._native import (
    DEFAULT_FPR,
    Audit,
    SPEC_VERSION,
    Detection,
    InputError,
    Profile,
    ProfileError,
    Scheme,
    Score,
    TracemarkError,
    TupleSet,
    Watermark,
    WindowFilter,
    Windowed,
    __version__,
)
from tracemark.arrow import detect_arrow

__all__ = [
    "Audit",
    "DEFAULT_FPR",
    "SPEC_VERSION",
    "Detection",
    "InputError",
    "Profile",
    "ProfileError",
    "Scheme",
    "Score",
    "TracemarkError",
    "TupleSet",
    "Watermark",
    "WindowFilter",
    "Windowed",
    "__version__",
    "detect_arrow",
]
