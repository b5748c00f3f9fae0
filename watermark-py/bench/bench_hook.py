"""Per-step cost of the Python hook, call overhead included, against Hugging Face transformers'
WatermarkLogitsProcessor (the same work: γ = 0.25, δ = 2, context of the previous tokens) when
torch and transformers are installed. One thread each. Prints a table; `make bench-python`.

Each step biases one (V,) row (or a (1, V) tensor for transformers) after a context that changes
every step, as in generation. Times are medians over repeats of many steps.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tracemark
from tracemark.adapters.llama_cpp import LlamaCppWatermark

SIZES = (49_152, 128_256)
STEPS = 400
REPEATS = 7


def per_step(fn, steps: int = STEPS, repeats: int = REPEATS) -> float:
    """Median seconds per call of fn(i) over `repeats` runs of `steps` calls."""
    fn(0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            fn(i)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def tracemark_rows(key: Path, vocab: int):
    wm = tracemark.Watermark.from_key_file(key, vocab)
    rng = np.random.default_rng(0)
    row = rng.normal(size=vocab).astype(np.float32)
    ids = rng.integers(0, vocab, size=4096)
    context = ids.tolist()
    apply_list = per_step(lambda i: wm.apply(row, context[i % 4000 : i % 4000 + 2]))
    proc = LlamaCppWatermark(wm)
    long_ids = ids.astype(np.intc)  # llama-cpp passes the whole context, here 4096 ids
    llama = per_step(lambda i: proc(long_ids[: 100 + i % 3000], row))
    return apply_list, llama


def hf_row(vocab: int):
    try:
        import torch
        from transformers.generation import WatermarkLogitsProcessor
    except ImportError:
        return None
    torch.set_num_threads(1)
    proc = WatermarkLogitsProcessor(vocab_size=vocab, device="cpu", greenlist_ratio=0.25, bias=2.0,
                                    seeding_scheme="lefthash", context_width=1)
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(1, vocab, generator=gen)
    ids = torch.randint(0, vocab, (1, 4096), generator=gen)
    with torch.no_grad():
        return per_step(lambda i: proc(ids[:, i % 4000 : i % 4000 + 2], scores), steps=100)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "bench.key"
        key.write_text("tracemark-key-v1\n" + os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        print(f"tracemark {tracemark.__version__}, Python {sys.version.split()[0]}, numpy {np.__version__}")
        header = f"{'V':>7}  {'Watermark.apply':>16}  {'llama-cpp adapter':>18}  {'HF WatermarkLogitsProcessor':>28}  {'speed-up':>9}"
        print(header)
        print("-" * len(header))
        for vocab in SIZES:
            apply_s, llama_s = tracemark_rows(key, vocab)
            hf = hf_row(vocab)
            hf_cell = f"{hf * 1e6:,.1f} µs" if hf else "not installed"
            speed = f"{hf / llama_s:.1f}x" if hf else "-"
            print(f"{vocab:>7}  {apply_s * 1e6:>13,.1f} µs  {llama_s * 1e6:>15,.1f} µs  {hf_cell:>28}  {speed:>9}")
        print("per step, one row, call overhead included; speed-up = HF / llama-cpp adapter (the slower tracemark path)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
