"""The torch hook (tracemark.torch_green) against the Rust hook, bit for bit, on CPU float32.

Skipped when torch is not installed, unless TRACEMARK_REQUIRE_TORCH=1 (`make test-torch` sets
it), where a missing torch fails instead.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

import tracemark

if os.environ.get("TRACEMARK_REQUIRE_TORCH") == "1":
    import torch
else:
    torch = pytest.importorskip("torch")

from tracemark.torch_green import TorchGreenList, key_fingerprint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CASES = 240


def write_key(directory: Path, key: bytes, name: str = "key") -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"tracemark-key-v1\n{key.hex()}\n")
    return path


def green_list(directory: Path, key: bytes, vocab: int, scheme: tracemark.Scheme) -> TorchGreenList:
    return TorchGreenList.from_key_file(write_key(directory, key), vocab, scheme)


def spec_vectors() -> List[Tuple[str, ...]]:
    text = (REPO / "WATERMARK-SPEC.md").read_text()
    section = text.split("## Test vectors", 1)[1]
    rows = re.findall(r"^\| ([01]) \| (previous|self-seeded) \| (\d+) \| ([\d.]+) \| ([\d ]+) \| (\d+) \| ([0-9a-f]{16}) \| ([0-9a-f]{4}) \| (green|red) \|$", section, re.M)
    assert len(rows) >= 20, "the spec's test-vector table did not parse"
    return rows


def test_spec_test_vectors(tmp_path):
    keys = {"0": bytes(range(32)), "1": bytes([0xA5] * 32)}
    assert key_fingerprint(keys["0"]) == "3aeb63a1f554054b"
    for key, seeding, width, gamma, context, token, seed, value, verdict in spec_vectors():
        scheme = tracemark.Scheme(seeding, int(width), float(gamma), 2.0)
        green = green_list(tmp_path / f"k{key}", keys[key], 50000, scheme)
        window = torch.tensor([[int(t) for t in context.split()]])
        seeds, values, greens = green.decide(window, torch.tensor([int(token)]))
        assert f"{int(seeds[0]) & (2**64 - 1):016x}" == seed
        assert f"{int(values[0]):04x}" == value
        assert bool(greens[0]) == (verdict == "green")


def random_case(rng: random.Random) -> Tuple[bytes, tracemark.Scheme, int, int]:
    key = bytes(rng.getrandbits(8) for _ in range(32))
    if not any(key):
        key = b"\x01" + key[1:]
    seeding = rng.choice(["previous", "self-seeded"])
    width = rng.randint(2 if seeding == "self-seeded" else 1, 4)
    gamma = rng.choice([0.25, 0.5, rng.uniform(0.01, 0.99)])
    delta = rng.choice([2.0, rng.uniform(0.25, 6.0)])
    # Odd sizes, sizes around the 32-token block, and a few larger ones.
    vocab = rng.choice([rng.randint(1, 40), rng.randint(1, 700) | 1, rng.randint(1000, 5000)])
    pad = rng.choice([0, 0, rng.randint(1, 40)])
    return key, tracemark.Scheme(seeding, width, gamma, delta), vocab, pad


def test_torch_hook_equals_rust_hook_bit_for_bit(tmp_path):
    """Random keys, both seedings, widths 1..4, odd and padded vocabularies, ragged contexts
    (some too short to decide): same biased logits (bit patterns) and same green mask."""
    rng = random.Random(20261130)
    np_rng = np.random.default_rng(14)
    for case in range(CASES):
        key, scheme, vocab, pad = random_case(rng)
        green = green_list(tmp_path / f"c{case}", key, vocab, scheme)
        wm = green.watermark
        batch = rng.randint(1, 4)
        contexts = [[rng.randrange(vocab) for _ in range(rng.randint(0, 6))] for _ in range(batch)]
        raw = (np_rng.standard_normal((batch, vocab + pad)) * 8).astype(np.float32)
        want = raw.copy()
        for row, context in zip(want, contexts):
            wm.apply(row, np.asarray(context, dtype=np.int64))
        got = torch.from_numpy(raw.copy())
        green.apply_(got, contexts)
        assert np.array_equal(got.numpy().view(np.uint32), want.view(np.uint32)), f"case {case}: {scheme!r} V={vocab}"
        decided = [i for i, c in enumerate(contexts) if len(c) >= wm.context_width]
        if decided:
            windows = torch.tensor([contexts[i][len(contexts[i]) - wm.context_width :] for i in decided])
            mask = green.green_mask(windows).numpy()
            changed = want[decided, :vocab] != raw[decided, :vocab]
            assert np.array_equal(mask, changed), f"case {case}"


def test_tensor_contexts_and_row_subsets(tmp_path):
    """(B, T) id tensors take their last context_width columns; `rows` biases only those rows."""
    scheme = tracemark.Scheme("self-seeded", 3, 0.5, 1.5)
    green = green_list(tmp_path, bytes(range(1, 33)), 3001, scheme)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 3001, (5, 9), generator=gen)
    raw = torch.randn(5, 3008, generator=gen)
    want = green.watermark.applied(raw.numpy(), ids.numpy())
    got = green.apply_(raw.clone(), ids)
    assert np.array_equal(got.numpy().view(np.uint32), want.view(np.uint32))
    subset = raw.clone()
    green.apply_(subset, ids[[1, 4]], rows=[1, 4])
    assert torch.equal(subset[[0, 2, 3]], raw[[0, 2, 3]])
    assert np.array_equal(subset[[1, 4]].numpy(), want[[1, 4]])
    # The vLLM form: ragged id lists for some rows; a row with too little context is left alone.
    ragged = raw.clone()
    green.apply_(ragged, [[5, 6, 7, 8], [1]], rows=torch.tensor([3, 0]))
    assert np.array_equal(ragged[3].numpy(), green.watermark.applied(raw[3].numpy(), [5, 6, 7, 8]))
    assert torch.equal(ragged[[0, 1, 2, 4]], raw[[0, 1, 2, 4]])
    # Too little context everywhere: nothing changes.
    short = raw.clone()
    green.apply_(short, ids[:, :1])
    assert torch.equal(short, raw)


def test_low_precision_rows_match_the_host_round_trip(tmp_path):
    green = green_list(tmp_path, bytes([9] * 32), 777, tracemark.Scheme())
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 777, (3, 4), generator=gen)
    for dtype in (torch.bfloat16, torch.float16):
        low = (torch.randn(3, 780, generator=gen) * 10).to(dtype)
        want = green.watermark.applied(low.float().numpy(), ids.numpy())
        got = green.apply_(low.clone(), ids)
        assert got.dtype == dtype
        assert torch.equal(got, torch.from_numpy(want).to(dtype))


def test_gamma_halfway_between_thresholds_rounds_as_rust_does(tmp_path):
    """γ·65536 = 1000.5 is threshold 1001 (half away from zero), where Python's round gives 1000."""
    green = green_list(tmp_path, bytes([6] * 32), 20000, tracemark.Scheme("previous", 1, 1000.5 / 65536, 2.0))
    assert green.threshold == 1001
    raw = torch.zeros(1, 20000)
    for token in range(200):
        row = green.apply_(raw.clone(), [[token]])
        assert np.array_equal(row.numpy(), green.watermark.applied(raw.numpy(), [[token]]))


def test_bad_inputs_are_input_errors(tmp_path):
    green = green_list(tmp_path, bytes([3] * 32), 100, tracemark.Scheme())
    with pytest.raises(tracemark.InputError, match="outside the vocabulary"):
        green.apply_(torch.zeros(1, 100), [[1, 100]])
    with pytest.raises(tracemark.InputError, match="outside the vocabulary"):
        green.apply_(torch.zeros(1, 100), torch.tensor([[-1, 2]]))
    with pytest.raises(tracemark.InputError, match="lists of token ids"):
        green.apply_(torch.zeros(1, 100), [[1, 2**70]])
    with pytest.raises(tracemark.InputError, match="shorter than the vocabulary"):
        green.apply_(torch.zeros(1, 99), [[1, 2]])
    with pytest.raises(tracemark.InputError, match="contexts for"):
        green.apply_(torch.zeros(2, 100), [[1, 2]])
    with pytest.raises(tracemark.InputError, match="fingerprint"):
        TorchGreenList(green.watermark, bytes([4] * 32))
    assert "key_fingerprint" in repr(green) and bytes([3] * 32).hex() not in repr(green)


def test_from_profile_matches_the_profile_watermark(self_seeded_profile):
    green = TorchGreenList.from_profile(self_seeded_profile)
    wm = tracemark.Watermark.from_profile(self_seeded_profile)
    assert green.key_fingerprint == wm.key_fingerprint
    gen = torch.Generator().manual_seed(8)
    ids = torch.randint(0, wm.vocab_size, (2, 6), generator=gen)
    raw = torch.randn(2, wm.vocab_size, generator=gen)
    assert np.array_equal(green.apply_(raw.clone(), ids).numpy(), wm.applied(raw.numpy(), ids.numpy()))


def test_transformers_processor_takes_the_device_path(self_seeded_profile, monkeypatch):
    """Given a TorchGreenList, the processor biases non-float32 and non-CPU scores with torch
    ops in place (no round trip through the Rust hook); CPU float32 stays zero-copy Rust."""
    from tracemark.adapters.transformers import TracemarkLogitsProcessor

    green = TorchGreenList.from_profile(self_seeded_profile)
    proc = TracemarkLogitsProcessor(green)
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(0, green.vocab_size, (3, 7), generator=gen)
    scores = torch.randn(3, green.vocab_size, generator=gen).to(torch.bfloat16)
    want = green.watermark.applied(scores.float().numpy(), ids.numpy())
    calls = []
    monkeypatch.setattr(green, "apply_", lambda *a, **k: calls.append(1) or TorchGreenList.apply_(green, *a, **k))
    out = proc(ids, scores)
    assert calls and out.data_ptr() == scores.data_ptr()
    assert torch.equal(out, torch.from_numpy(want).to(torch.bfloat16))
    f32 = torch.randn(3, green.vocab_size, generator=gen)
    assert np.array_equal(proc(ids, f32.clone()).numpy(), green.watermark.applied(f32.numpy(), ids.numpy()))
    device_proc = TracemarkLogitsProcessor.from_profile(self_seeded_profile)
    assert isinstance(device_proc.device_hook, TorchGreenList)


@pytest.mark.skipif(os.environ.get("TRACEMARK_TEST_TORCH_COMPILE") != "1", reason="torch.compile takes minutes on CPU; set TRACEMARK_TEST_TORCH_COMPILE=1")
def test_compiled_block_function_gives_the_same_logits(tmp_path):
    rng = random.Random(7)
    for case in range(4):
        key, scheme, vocab, pad = random_case(rng)
        green = green_list(tmp_path / f"c{case}", key, vocab, scheme)
        fused = green.compiled()
        ids = torch.randint(0, vocab, (3, 5), generator=torch.Generator().manual_seed(case))
        raw = torch.randn(3, vocab + pad, generator=torch.Generator().manual_seed(case))
        assert torch.equal(fused.apply_(raw.clone(), ids), green.apply_(raw.clone(), ids))
