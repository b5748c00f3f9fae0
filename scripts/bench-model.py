"""`make bench-model`: tracemark's generation speed beside llama.cpp's, in one run.

Both engines run the same GGUF file (the default model) with 2 threads, one sequence at a time,
on the same chat-formatted prompts, and generate the same number of tokens at temperature 1 with
top-p 0.95 (prompt evaluation included in both timings). The tracemark side is the Rust example
`generation_bench` at batch 1 (without the watermark, so that only the engines differ); the
llama.cpp side is llama-cpp-python's token generator. Rounds alternate between the engines so
that both see the same machine load.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

TOKENS = int(os.environ.get("BENCH_TOKENS", "64"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
THREADS = 2
PROMPTS = [f"Write a few sentences about the number {i}." for i in range(4)]


def tracemark_tokens_per_second(example: Path, fast: bool) -> float:
    """One run of the Rust example at batch 1; its plain (unwatermarked) rate. `fast`: candle's
    fast Q8_0 kernel, which quantizes activations per 256 values (less faithful)."""
    env = dict(os.environ, BENCH_BATCH="1", BENCH_ROUNDS="1", BENCH_TOKENS=str(TOKENS),
               BENCH_FAST_MATMUL="1" if fast else "0")
    out = subprocess.run([str(example)], env=env, check=True, capture_output=True, text=True).stdout
    match = re.search(r"^\| without \| ([0-9.]+) \|", out, re.M)
    if match is None:
        sys.exit(f"error: unexpected output of {example}:\n{out}")
    return float(match.group(1))


def llama_cpp_tokens_per_second(llm, prompts: list[list[int]]) -> float:
    """Tokens per second of llama.cpp over every prompt, `TOKENS` tokens each (stop tokens are
    not honoured, as `min_tokens` does on the tracemark side)."""
    start = time.perf_counter()
    generated = 0
    for prompt in prompts:
        for n, _ in enumerate(llm.generate(prompt, temp=1.0, top_p=0.95, top_k=0, min_p=0.0), 1):
            if n == TOKENS:
                break
        generated += TOKENS
    return generated / (time.perf_counter() - start)


def main() -> None:
    from llama_cpp import Llama

    model, example = sys.argv[1], Path(sys.argv[2])
    llm = Llama(model_path=model, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=512,
                verbose=False, seed=1)
    chat = [
        llm.tokenize(
            f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n".encode(), add_bos=False, special=True
        )
        for p in PROMPTS
    ]
    ours, fast, theirs = [], [], []
    for _ in range(ROUNDS):
        ours.append(tracemark_tokens_per_second(example, fast=False))
        fast.append(tracemark_tokens_per_second(example, fast=True))
        theirs.append(llama_cpp_tokens_per_second(llm, chat))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"default model, one sequence, {THREADS} threads, {TOKENS} tokens per answer, "
          f"{len(PROMPTS)} prompts, {ROUNDS} alternating rounds (tokens/s, prompt included)")
    print("| engine | tokens/s (mean) | rounds |")
    print("|---|---|---|")
    print(f"| tracemark (candle, Q8_0 re-quantized) | {mean(ours):.1f} | "
          + ", ".join(f"{x:.1f}" for x in ours) + " |")
    print(f"| tracemark, fast matmul (less faithful) | {mean(fast):.1f} | "
          + ", ".join(f"{x:.1f}" for x in fast) + " |")
    print(f"| llama.cpp (llama-cpp-python {__import__('llama_cpp').__version__}, the file's Q4_1) | "
          f"{mean(theirs):.1f} | " + ", ".join(f"{x:.1f}" for x in theirs) + " |")
    print(f"tracemark / llama.cpp: {mean(ours) / mean(theirs):.2f} (default), "
          f"{mean(fast) / mean(theirs):.2f} (fast matmul)")


if __name__ == "__main__":
    main()
