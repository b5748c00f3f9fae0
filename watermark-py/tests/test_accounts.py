"""Accounts through the Python API: `Watermark.for_account` and the account's draw.

The draw must be distributed exactly as softmax(logits / T) after top-k and top-p (the account
changes which random numbers are used, never the distribution). Each statistical check below
runs at level ALPHA = 1e-4 with fixed seeds (so a run is reproducible: 5 checks, a family-wise
false alarm rate under 5e-4 for an implementation that is right), over 20,000 draws after
distinct context windows (the account's uniforms are independent across windows, not across
repeated ones). A check that the same statistic rejects a wrong distribution shows they can
fail.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

import tracemark

ALPHA = 1e-4
DRAWS = 20_000
V = 1000


def gamma_q(s: float, x: float) -> float:
    """The regularized upper incomplete gamma Q(s, x): a series below s + 1, Lentz's continued
    fraction above it."""
    if x <= 0:
        return 1.0
    log_front = s * math.log(x) - x - math.lgamma(s)
    if x < s + 1:
        term = total = 1.0 / s
        n = 1
        while abs(term) > abs(total) * 1e-16:
            term *= x / (s + n)
            total += term
            n += 1
        return max(0.0, 1.0 - math.exp(log_front) * total)
    tiny = 1e-300
    b = x + 1 - s
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        h *= d * c
        if abs(d * c - 1) < 1e-16:
            break
    return math.exp(log_front) * h


def chi2_sf(statistic: float, df: int) -> float:
    return gamma_q(df / 2, statistic / 2)


def test_chi_square_tail_matches_the_closed_form():
    # For even df, Q(k, x) = exp(-x) * sum_{i<k} x^i / i!.
    for df, stat in [(2, 3.0), (10, 4.0), (10, 30.0), (40, 80.0), (100, 60.0)]:
        k, x = df // 2, stat / 2
        exact = math.exp(-x) * sum(x**i / math.factorial(i) for i in range(k))
        assert abs(chi2_sf(stat, df) - exact) <= 1e-12 + 1e-10 * exact, (df, stat)


def kept_probabilities(rows: np.ndarray, temperature: float, top_k, top_p) -> np.ndarray:
    """The sampler's distribution, written independently in numpy: softmax(row / T) in float64,
    the top_k most likely (ties to the lower id), then the smallest most-likely prefix whose
    mass reaches top_p of what is left; renormalised. rows: (B, V) float32."""
    x = rows.astype(np.float64)
    order = np.argsort(-x, axis=1, kind="stable")
    sorted_x = np.take_along_axis(x, order, axis=1)
    w = np.exp((sorted_x - sorted_x[:, :1]) / temperature)
    if top_k is not None:
        w[:, top_k:] = 0.0
    if top_p is not None:
        mass = np.cumsum(w, axis=1)
        target = top_p * mass[:, -1:]
        # Keep a prefix through the first position whose cumulative mass reaches the target.
        cut = np.argmax(mass >= target, axis=1)
        w[np.arange(w.shape[1])[None, :] > cut[:, None]] = 0.0
    p_sorted = w / w.sum(axis=1, keepdims=True)
    p = np.zeros_like(p_sorted)
    np.put_along_axis(p, order, p_sorted, axis=1)
    return p


def distinct_contexts(n: int, seed: int) -> np.ndarray:
    """n distinct two-token windows (the default scheme's width) over a 1000-token vocabulary."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(V * V, size=n, replace=False)
    return np.stack([codes // V, codes % V], axis=1).astype(np.int64)


def draws(wm, rows: np.ndarray, contexts: np.ndarray, **settings) -> np.ndarray:
    out = []
    for start in range(0, len(contexts), 2000):
        batch = rows[start : start + 2000]
        got = wm.draw_batch(np.ascontiguousarray(batch), contexts[start : start + 2000], **settings)
        assert None not in got
        out.extend(got)
    return np.array(out)


def binned(expected: np.ndarray, counts: np.ndarray, floor: float):
    """Tokens expected at least `floor` times each get a bin; the rest share one."""
    big = expected >= floor
    e = list(expected[big]) + [expected[~big].sum()]
    c = list(counts[big]) + [counts[~big].sum()]
    if e[-1] < floor:  # too small a pooled bin: fold it into the smallest other bin
        e[-2] += e.pop()
        c[-2] += c.pop()
    return np.array(e), np.array(c)


def chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    expected, observed = binned(probs * counts.sum(), counts, floor=10.0)
    stat = float(((observed - expected) ** 2 / expected).sum())
    return chi2_sf(stat, len(expected) - 1)


SETTINGS = [
    {"temperature": 1.0},
    {"temperature": 0.7, "top_k": 40},
    {"temperature": 1.3, "top_p": 0.9},
    {"temperature": 0.8, "top_k": 50, "top_p": 0.95},
]


@pytest.fixture(scope="module")
def account(small_profile):
    return tracemark.Watermark.from_profile(small_profile, account="acct-3")


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_draws_from_one_row_follow_its_softmax(account, settings):
    row = (np.random.default_rng(11).normal(size=V) * 2.0).astype(np.float32)
    contexts = distinct_contexts(DRAWS, seed=12)
    got = draws(account, np.broadcast_to(row, (DRAWS, V)), contexts, **settings)
    probs = kept_probabilities(row[None, :], settings["temperature"], settings.get("top_k"), settings.get("top_p"))[0]
    counts = np.bincount(got, minlength=V)
    # Nothing outside the kept set is ever drawn (top-k / top-p are exact, not approximate).
    assert counts[probs == 0].sum() == 0
    p = chi_square_p(counts, probs)
    assert p > ALPHA, f"chi-square p = {p:.3g} for {settings}"


def test_the_chi_square_check_rejects_a_wrong_temperature(account):
    # Draws at T = 1 tested against the distribution at T = 0.7: the check must fail.
    row = (np.random.default_rng(11).normal(size=V) * 2.0).astype(np.float32)
    contexts = distinct_contexts(DRAWS, seed=12)
    got = draws(account, np.broadcast_to(row, (DRAWS, V)), contexts, temperature=1.0)
    wrong = kept_probabilities(row[None, :], 0.7, None, None)[0]
    assert chi_square_p(np.bincount(got, minlength=V), wrong) < ALPHA


def test_draws_after_the_bias_follow_each_contexts_softmax(account):
    """Through the whole Python path: `applied` (the green bias, different in every context),
    then `draw_batch`. Each token's count is a sum of independent Bernoulli(p_c) over the
    contexts c: its mean and variance are exact, and each of the B binned counts must lie
    within the normal band at ALPHA / B (Bonferroni), every expected count at least 100."""
    settings = {"temperature": 0.9, "top_k": 60, "top_p": 0.95}
    rng = np.random.default_rng(21)
    row = (rng.normal(size=V) * 2.0).astype(np.float32)
    contexts = distinct_contexts(DRAWS, seed=22)
    biased = account.applied(np.ascontiguousarray(np.broadcast_to(row, (DRAWS, V))), contexts)
    assert not np.array_equal(biased[0], biased[1])  # the bias depends on the context
    got = draws(account, biased, contexts, **settings)
    probs = kept_probabilities(biased, **settings)
    assert probs[np.arange(DRAWS), got].min() > 0  # every draw is a kept token
    onehot_counts = np.bincount(got, minlength=V).astype(np.float64)
    mean = probs.sum(axis=0)
    var = (probs * (1 - probs)).sum(axis=0)
    big = mean >= 100
    bins_mean = np.append(mean[big], mean[~big].sum())
    bins_count = np.append(onehot_counts[big], onehot_counts[~big].sum())
    # The pooled bin's count is a sum of Bernoulli(sum of its tokens' p_c) over contexts.
    pooled_p = probs[:, ~big].sum(axis=1)
    bins_var = np.append(var[big], (pooled_p * (1 - pooled_p)).sum())
    z = NormalDist().inv_cdf(1 - ALPHA / (2 * len(bins_mean)))
    deviation = np.abs(bins_count - bins_mean) / np.sqrt(bins_var)
    assert deviation.max() < z, f"largest deviation {deviation.max():.2f} sd (band {z:.2f}), {int(big.sum())} tokens binned"


def test_account_binding_and_errors(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    assert wm.account is None
    a3 = wm.for_account("acct-3")
    assert a3.account == "acct-3" and a3.key_fingerprint == wm.key_fingerprint
    assert 'account="acct-3"' in repr(a3) and "account" not in repr(wm)
    row = np.random.default_rng(1).normal(size=V).astype(np.float32)
    # Same green list and detector: the account changes the draw only.
    assert np.array_equal(a3.applied(row, [4, 5]), wm.applied(row, [4, 5]))
    # Accounts draw differently; the same account and context draw the same token.
    contexts = distinct_contexts(200, seed=3)
    ours = a3.draw_batch(np.ascontiguousarray(np.broadcast_to(row, (200, V))), contexts)
    theirs = wm.for_account("acct-4").draw_batch(np.ascontiguousarray(np.broadcast_to(row, (200, V))), contexts)
    assert ours != theirs
    assert [a3.draw(row, c) for c in contexts[:20]] == ours[:20]
    # Too little context: nothing drawn. Greedy: the argmax.
    assert a3.draw(row, [7]) is None
    assert a3.draw(row, [7, 8], temperature=0) == int(np.argmax(row))
    # A strided row (llama-cpp-python hands one) draws as its contiguous copy does.
    records = np.zeros(V, dtype=[("id", np.intc), ("logit", np.single), ("p", np.single)])
    records["logit"] = row
    assert a3.draw(records["logit"], [4, 5]) == a3.draw(row, [4, 5])
    with pytest.raises(tracemark.InputError, match="no account"):
        wm.draw(row, [1, 2])
    for bad in ["", "x" * 129, "a\nb"]:
        with pytest.raises(tracemark.InputError, match="account id"):
            wm.for_account(bad)
    assert wm.for_account("é" * 64).account == "é" * 64  # 128 bytes of UTF-8
    with pytest.raises(tracemark.InputError):
        a3.draw(row, [1, 2], top_k=0)
    with pytest.raises(tracemark.InputError):
        a3.draw(row, [1, 2], top_k=-3)
    with pytest.raises(tracemark.InputError):
        a3.draw(row, [1, 2], top_p=1.5)
    with pytest.raises(tracemark.InputError):
        a3.draw(row, [1, 2], temperature=-1.0)
    with pytest.raises(tracemark.InputError, match="vocabulary"):
        a3.draw(row[:999], [1, 2])
    with pytest.raises(tracemark.InputError):
        a3.draw(np.full(V, -np.inf, dtype=np.float32), [1, 2])
    with pytest.raises(tracemark.InputError):
        a3.draw(np.full(V, np.nan, dtype=np.float32), [1, 2])
    with pytest.raises(tracemark.InputError, match="rows"):
        a3.draw_batch(np.zeros((2, V), dtype=np.float32), [[1, 2]])
    with pytest.raises(TypeError):
        a3.draw(row.astype(np.float64), [1, 2])
    with pytest.raises(tracemark.InputError):
        a3.draw(row, [1, 5000])
    # Padding past the vocabulary is never drawn.
    padded = np.concatenate([row, np.full(24, 50.0, dtype=np.float32)])
    assert a3.draw(padded, [4, 5]) == a3.draw(row, [4, 5])
