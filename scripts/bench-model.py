"""`make bench-model`: tracemark's generation speed and fidelity beside llama.cpp's, in one run.

Speed. Both engines run the same GGUF file (the default model) with 2 threads (BENCH_THREADS),
one sequence at a time, on the same chat-formatted prompts, and generate the same number of tokens at temperature 1
with top-p 0.95 (prompt evaluation included in both timings). The tracemark side is the Rust
example `generation_bench` at batch 1 (without the watermark, so that only the engines differ),
with each of its kernels; the llama.cpp side is llama-cpp-python's token generator. Rounds
alternate between the engines so that all see the same machine load.

Fidelity. The Rust example `fidelity_bench` scores each tracemark kernel against the model run
with the file's weights in f32 (top-1 agreement and mean KL at every position of a few human
texts) and dumps the texts and the f32 logits; llama.cpp's logits on the same tokens are scored
the same way here (BENCH_FIDELITY=0 skips this part).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKENS = int(os.environ.get("BENCH_TOKENS", "64"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FIDELITY_TEXTS = os.environ.get("BENCH_FIDELITY_TEXTS", "16")
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
PROMPTS = [f"Write a few sentences about the number {i}." for i in range(4)]
KERNELS = [
    ("packed", "tracemark, its own kernel (the default; the file's Q4_1/Q8_0)"),
    ("candle", "tracemark, candle Q8_0 re-quantized (LoadOptions::candle)"),
    ("fast", "tracemark, candle fast matmul (less faithful)"),
]


def tracemark_tokens_per_second(example: Path, kernel: str) -> float:
    """One run of the Rust example at batch 1 with `kernel`; its plain (unwatermarked) rate."""
    env = dict(os.environ, BENCH_BATCH="1", BENCH_ROUNDS="1", BENCH_TOKENS=str(TOKENS),
               BENCH_KERNEL=kernel, CANDLE_NUM_THREADS=str(THREADS), RAYON_NUM_THREADS=str(THREADS))
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


def speed(model: str, example: Path) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=512,
                verbose=False, seed=1)
    chat = [
        llm.tokenize(
            f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n".encode(), add_bos=False, special=True
        )
        for p in PROMPTS
    ]
    ours: dict[str, list[float]] = {kernel: [] for kernel, _ in KERNELS}
    theirs = []
    for _ in range(ROUNDS):
        for kernel, _ in KERNELS:
            ours[kernel].append(tracemark_tokens_per_second(example, kernel))
        theirs.append(llama_cpp_tokens_per_second(llm, chat))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(f"default model, one sequence, {THREADS} threads, {TOKENS} tokens per answer, "
          f"{len(PROMPTS)} prompts, {ROUNDS} alternating rounds (tokens/s, prompt included)")
    print("| engine | tokens/s (mean) | rounds | / llama.cpp |")
    print("|---|---|---|---|")
    for kernel, name in KERNELS:
        xs = ours[kernel]
        print(f"| {name} | {mean(xs):.1f} | " + ", ".join(f"{x:.1f}" for x in xs)
              + f" | {mean(xs) / mean(theirs):.2f} |")
    print(f"| llama.cpp (llama-cpp-python {__import__('llama_cpp').__version__}, the file's Q4_1) | "
          f"{mean(theirs):.1f} | " + ", ".join(f"{x:.1f}" for x in theirs) + " | 1.00 |")


def llama_cpp_fidelity(model: str, dump: Path) -> tuple[float, float, int]:
    """llama.cpp's top-1 agreement and mean KL against the f32 logits that `fidelity_bench`
    dumped, on the same token sequences (all logits of one pass per text)."""
    import numpy as np
    from llama_cpp import Llama

    texts = json.loads((dump / "tokens.json").read_text())
    llm = Llama(model_path=model, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=1024,
                n_batch=1024, logits_all=True, verbose=False, seed=1)
    reference = np.memmap(dump / "reference.f32", dtype="<f4", mode="r").reshape(-1, llm.n_vocab())
    if reference.shape[0] != sum(len(text) for text in texts):
        sys.exit(f"error: {reference.shape[0]} reference rows for {sum(map(len, texts))} tokens")

    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    agree, kl, start = 0, 0.0, 0
    for text in texts:
        llm.reset()
        llm.eval(text)
        ours = log_softmax(np.array(llm.scores[: len(text)], dtype=np.float64))
        ref = log_softmax(np.asarray(reference[start : start + len(text)], dtype=np.float64))
        start += len(text)
        agree += int((ref.argmax(axis=1) == ours.argmax(axis=1)).sum())
        kl += float((np.exp(ref) * (ref - ours)).sum())
    return agree / start, kl / start, start


def fidelity(model: str, fidelity_example: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tracemark-fidelity-") as tmp:
        out = subprocess.run([str(fidelity_example), "--texts", FIDELITY_TEXTS, "--dump", tmp], check=True,
                             capture_output=True, text=True).stdout
        agree, kl, n = llama_cpp_fidelity(model, Path(tmp))
    lines = out.rstrip("\n").split("\n")
    print("\n".join(lines))
    print(f"| llama.cpp (the file's Q4_1, activations per 32 as Q8_1) | {agree * 100:.1f}% | {kl:.4f} |")
    if not lines[0].startswith(f"fidelity against the f32 weights, {n} positions"):
        sys.exit(f"error: {n} llama.cpp positions, but fidelity_bench printed: {lines[0]}")
    packed = re.search(r"^\| tracemark kernel \(packed[^|]*\| ([0-9.]+)% \| ([0-9.]+) \|", out, re.M)
    if packed is None:
        sys.exit(f"error: no packed kernel line in:\n{out}")
    ours_agree, ours_kl = float(packed.group(1)) / 100, float(packed.group(2))
    # Equal fidelity: top-1 agreement within one standard error of a proportion over n
    # positions, and a mean KL no larger (to the printed precision).
    tolerance = (agree * (1 - agree) / n) ** 0.5
    equal = ours_agree >= agree - tolerance and ours_kl <= round(kl, 4)
    print(f"tracemark's kernel is {'at least as' if equal else 'LESS'} faithful as llama.cpp "
          f"(top-1 {ours_agree * 100:.1f}% vs {agree * 100:.1f}%, tolerance {tolerance * 100:.1f} points; "
          f"KL {ours_kl:.4f} vs {kl:.4f})")


def main() -> None:
    model, example, fidelity_example = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    speed(model, example)
    if os.environ.get("BENCH_FIDELITY", "1") != "0":
        print()
        fidelity(model, fidelity_example)


if __name__ == "__main__":
    main()
