"""Engine adapters: lazy imports, and the same rows as `Watermark.apply`."""

import enum
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import tracemark
from tracemark.adapters.llama_cpp import LlamaCppWatermark


def test_importing_the_package_and_adapters_imports_no_engine():
    code = (
        "import sys, tracemark, tracemark.adapters.llama_cpp, tracemark.adapters.transformers, tracemark.adapters.vllm\n"
        "heavy = [m for m in ('llama_cpp', 'torch', 'transformers', 'vllm', 'pyarrow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_llama_cpp_processor_biases_in_place(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    proc = LlamaCppWatermark(wm)
    rng = np.random.default_rng(5)
    input_ids = rng.integers(0, 1000, size=300).astype(np.intc)
    scores = rng.normal(size=1000).astype(np.single)
    want = wm.applied(scores, input_ids.tolist())
    out = proc(input_ids, scores)
    assert out is scores and out.tobytes() == want.tobytes()


class Move(enum.Enum):  # stands in for vllm's MoveDirectionality
    UNIDIRECTIONAL = 0
    SWAP = 1


def _update(removed=(), added=(), moved=(), batch_size=0):
    return SimpleNamespace(removed=list(removed), added=list(added), moved=list(moved), batch_size=batch_size)


def test_vllm_processor_follows_the_persistent_batch(small_profile, monkeypatch):
    from tracemark.adapters import vllm as adapter

    monkeypatch.setenv(adapter.PROFILE_ENV, str(small_profile))
    monkeypatch.setenv(adapter.OPT_OUT_ENV, "all")  # the operator lets requests opt out
    monkeypatch.delenv(adapter.OPT_OUT_KEYS_ENV, raising=False)
    cls = adapter.WatermarkLogitsProcessor
    proc = cls(None, "cpu", False)
    wm = proc.watermark
    assert proc.is_argmax_invariant() is False
    on = SimpleNamespace(extra_args=None)
    off = SimpleNamespace(extra_args={"tracemark": False})
    cls.validate_params(on)
    with pytest.raises(ValueError):
        cls.validate_params(SimpleNamespace(extra_args={"tracemark": "yes"}))
    out0, out1, out2 = [5, 6, 7], [8], []
    prompt2 = [40, 41, 42]
    proc.update_state(_update(added=[(0, on, [1, 2], out0), (1, off, [3, 4], out1), (2, on, prompt2, out2)], batch_size=3))
    rng = np.random.default_rng(9)

    def check(logits, expected_contexts):
        want = logits.copy()
        for row, ctx in expected_contexts.items():
            wm.apply(want[row], ctx)
        got = proc.apply(logits)
        assert got.tobytes() == want.tobytes()

    check(rng.normal(size=(3, 1000)).astype(np.float32), {0: out0, 2: prompt2})
    out2.append(9)  # the engine appends to the live output list
    check(rng.normal(size=(3, 1000)).astype(np.float32), {0: out0, 2: [42, 9]})
    proc.update_state(None)
    # Swap rows 0 and 2, then move row 0 (ex-2) to row 1 (replacing the opted-out request).
    proc.update_state(_update(moved=[(0, 2, Move.SWAP)]))
    check(rng.normal(size=(3, 1000)).astype(np.float32), {2: out0, 0: [42, 9]})
    proc.update_state(_update(moved=[(0, 1, Move.UNIDIRECTIONAL)]))
    check(rng.normal(size=(3, 1000)).astype(np.float32), {2: out0, 1: [42, 9]})
    proc.update_state(_update(removed=[2]))
    check(rng.normal(size=(2, 1000)).astype(np.float32), {1: [42, 9]})


def test_vllm_device_path_biases_the_rows_the_host_path_does(small_profile, monkeypatch):
    """The GPU branch (tracemark.torch_green, no host copy), run here on CPU tensors, gives the
    rows of the Rust host path, for the watermarked rows only."""
    torch = pytest.importorskip("torch")
    from tracemark.adapters import vllm as adapter

    monkeypatch.setenv(adapter.PROFILE_ENV, str(small_profile))
    monkeypatch.delenv(adapter.OPT_OUT_ENV, raising=False)
    monkeypatch.delenv(adapter.OPT_OUT_KEYS_ENV, raising=False)
    proc = adapter.WatermarkLogitsProcessor(None, "cpu", False)
    on = SimpleNamespace(extra_args=None)
    proc.update_state(_update(added=[(0, on, [1, 2], [5, 6, 7]), (2, on, [40, 41, 42], [])], batch_size=3))
    logits = torch.randn(3, 1000, generator=torch.Generator().manual_seed(3))
    host = proc.apply(logits.clone())
    indices = [0, 2]
    device = proc._apply_on_device(logits.clone(), [proc._context(i) for i in indices], indices)
    assert torch.equal(device, host)
    assert torch.equal(device[1], logits[1])  # the row not watermarked is left alone


def test_vllm_opt_out_is_ignored_unless_the_operator_allows_it(small_profile, monkeypatch):
    from tracemark.adapters import vllm as adapter

    monkeypatch.setenv(adapter.PROFILE_ENV, str(small_profile))
    monkeypatch.delenv(adapter.OPT_OUT_ENV, raising=False)
    monkeypatch.delenv(adapter.OPT_OUT_KEYS_ENV, raising=False)
    cls = adapter.WatermarkLogitsProcessor
    plain = SimpleNamespace(extra_args={"tracemark": False})
    # As the OpenAI server passes it (vllm_xargs carry strings and numbers only).
    keyed = SimpleNamespace(extra_args={"tracemark": "false", "tracemark_opt_out_key": "team-eval"})
    wrong = SimpleNamespace(extra_args={"tracemark": False, "tracemark_opt_out_key": "team-evil"})
    with pytest.raises(ValueError):
        cls.validate_params(SimpleNamespace(extra_args={"tracemark": False, "tracemark_opt_out_key": 7}))
    rng = np.random.default_rng(14)

    def watermarked_rows(proc):
        """Rows the processor changed, after three requests asked to opt out."""
        outs = ([1, 2], [3, 4], [5, 6])
        proc.update_state(_update(added=[(0, plain, [], outs[0]), (1, keyed, [], outs[1]), (2, wrong, [], outs[2])]))
        logits = rng.normal(size=(3, 1000)).astype(np.float32)
        before = logits.copy()
        proc.apply(logits)
        return [row for row in range(3) if logits[row].tobytes() != before[row].tobytes()]

    # Default: nobody may opt out; every request is watermarked and the attempts are counted.
    default = cls(None, "cpu", False)
    assert default.opt_out == adapter.OptOutPolicy()
    assert watermarked_rows(default) == [0, 1, 2]
    assert default.ignored_opt_outs == 3
    # The operator lists an opt-out key: only the request that sends it opts out.
    monkeypatch.setenv(adapter.OPT_OUT_KEYS_ENV, "team-eval, other")
    assert watermarked_rows(cls(None, "cpu", False)) == [0, 2]
    # The same through the constructor, which wins over the environment.
    by_code = cls(None, "cpu", False, opt_out=adapter.OptOutPolicy.with_keys(["team-evil"]))
    assert watermarked_rows(by_code) == [0, 1]
    # A global switch lets every request opt out; a value other than "all" does not.
    monkeypatch.delenv(adapter.OPT_OUT_KEYS_ENV)
    monkeypatch.setenv(adapter.OPT_OUT_ENV, "yes")
    assert watermarked_rows(cls(None, "cpu", False)) == [0, 1, 2]
    monkeypatch.setenv(adapter.OPT_OUT_ENV, "all")
    assert watermarked_rows(cls(None, "cpu", False)) == []


def test_vllm_processor_needs_a_profile(monkeypatch):
    from tracemark.adapters import vllm as adapter

    monkeypatch.delenv(adapter.PROFILE_ENV, raising=False)
    with pytest.raises(tracemark.ProfileError, match=adapter.PROFILE_ENV):
        adapter.WatermarkLogitsProcessor(None, "cpu", False)


def test_transformers_processor(small_profile):
    torch = pytest.importorskip("torch")
    from tracemark.adapters.transformers import TracemarkLogitsProcessor

    wm = tracemark.Watermark.from_profile(small_profile)
    proc = TracemarkLogitsProcessor(wm)
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 1000, (4, 17), generator=gen)
    scores = torch.randn(4, 1000, generator=gen)
    want = wm.applied(scores.numpy(), input_ids.numpy())
    got = proc(input_ids, scores.clone())
    assert np.array_equal(got.numpy(), want)
    # Other dtypes take the CPU float32 round trip and come back in their own dtype.
    low = scores.to(torch.bfloat16)
    half = proc(input_ids, low.clone())
    assert half.dtype == torch.bfloat16
    want_low = wm.applied(low.float().numpy(), input_ids.numpy())
    assert torch.equal(half, torch.from_numpy(want_low).to(torch.bfloat16))


def test_llama_cpp_processor_with_an_account_forces_the_draw(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    settings = {"temperature": 0.8, "top_k": 50, "top_p": 0.95}
    proc = LlamaCppWatermark(wm, account="acct-3", **settings)
    assert proc.account == "acct-3" and LlamaCppWatermark(wm).account is None
    acct = wm.for_account("acct-3")
    rng = np.random.default_rng(6)
    for step in range(20):
        input_ids = rng.integers(0, 1000, size=30 + step).astype(np.intc)
        scores = rng.normal(size=1000).astype(np.single)
        biased = wm.applied(scores, input_ids.tolist())
        want = acct.draw(biased, input_ids, **settings)
        # As llama-cpp-python 0.3.x hands it: a strided view of (id, logit, p) records.
        records = np.zeros(1000, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
        records["logit"] = scores
        for row in (scores.copy(), records["logit"]):
            out = proc(input_ids, row)
            finite = np.flatnonzero(np.isfinite(out))
            assert finite.tolist() == [want], step
            assert out[want] == biased[want]
    # Too little context: biased only, the engine samples.
    short = np.array([4], dtype=np.intc)
    scores = rng.normal(size=1000).astype(np.single)
    assert proc(short, scores.copy()).tobytes() == wm.applied(scores, [4]).tobytes()
    # Settings are checked when the processor is made, by the core's rules.
    with pytest.raises(tracemark.InputError):
        LlamaCppWatermark(wm, account="acct-3", top_p=0.0)
    with pytest.raises(tracemark.InputError, match="account id"):
        LlamaCppWatermark(wm, account="")


def test_transformers_processor_with_an_account_forces_the_draw(small_profile):
    torch = pytest.importorskip("torch")
    from tracemark.adapters.transformers import TracemarkLogitsProcessor

    wm = tracemark.Watermark.from_profile(small_profile)
    settings = {"temperature": 1.1, "top_k": 30, "top_p": None}
    proc = TracemarkLogitsProcessor(wm, account="acct-9", **settings)
    assert proc.account == "acct-9"
    acct = wm.for_account("acct-9")
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 1000, (4, 9), generator=gen)
    for dtype in (torch.float32, torch.bfloat16):
        scores = torch.randn(4, 1000, generator=gen).to(dtype)
        # The draw reads the biased scores as the engine holds them (rounded to their dtype).
        biased = torch.from_numpy(wm.applied(scores.float().numpy(), input_ids.numpy())).to(dtype)
        want = acct.draw_batch(biased.float().numpy(), input_ids.numpy(), **settings)
        out = proc(input_ids, scores.clone())
        assert out.dtype == dtype
        for b, token in enumerate(want):
            finite = torch.nonzero(torch.isfinite(out[b])).flatten().tolist()
            assert finite == [token], (dtype, b)
            assert out[b, token].item() == biased[b, token].item()
