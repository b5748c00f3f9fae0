"""The hook from Python gives the logits the Rust core specifies, bit for bit."""

import numpy as np
import pytest

import tracemark
from conftest import REPO, cli_detect

SPEC_KEYS = [bytes(range(32)), bytes([0xA5] * 32)]
SPEC_FINGERPRINTS = ["3aeb63a1f554054b", "d98a7f67dca35e24"]


def _spec_rows():
    text = (REPO / "WATERMARK-SPEC.md").read_text().split("## Test vectors")[1]
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| key"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    assert len(rows) >= 20
    return rows


def _key_file(tmp_path, index):
    path = tmp_path / f"key{index}.key"
    path.write_text("tracemark-key-v1\n" + SPEC_KEYS[index].hex() + "\n")
    path.chmod(0o600)  # a key others can read is refused, as ssh does
    return path


def test_every_spec_vector_through_the_hook(tmp_path):
    """WATERMARK-SPEC.md's vectors (checked on the Rust side by tests/spec_vectors.rs) hold for
    rows biased from Python: the token's logit gets exactly +δ when the spec says green."""
    for row in _spec_rows():
        key, seeding, width, gamma, context, token, _seed, _value, verdict = row
        scheme = tracemark.Scheme(seeding, int(width), float(gamma), 2.0)
        wm = tracemark.Watermark.from_key_file(_key_file(tmp_path, int(key)), 50_000, scheme)
        assert wm.key_fingerprint == SPEC_FINGERPRINTS[int(key)]
        ctx = [int(x) for x in context.split()]
        logits = np.zeros(50_000, dtype=np.float32)
        wm.apply(logits, ctx)
        assert logits[int(token)] == (2.0 if verdict == "green" else 0.0), row
        assert wm.is_green(ctx, int(token)) == (verdict == "green"), row
        # Every entry is either untouched or exactly +δ, and about γ of them are green.
        assert set(np.unique(logits)) <= {0.0, 2.0}


@pytest.mark.parametrize("profile_fixture", ["small_profile", "self_seeded_profile"])
def test_hook_agrees_with_the_rust_detector_token_by_token(request, cli, tmp_path, profile_fixture):
    """At every scored position of a text, the Python-biased row has +δ on the next token
    exactly when the Rust CLI's detector calls that token green."""
    profile = request.getfixturevalue(profile_fixture)
    wm = tracemark.Watermark.from_profile(profile)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, wm.vocab_size, size=600).tolist()
    [report] = cli_detect(cli, profile, [{"tokens": tokens}], tmp_path, "--tokens")
    statuses = report["token_statuses"]
    delta = np.float32(wm.scheme.delta)
    checked = 0
    for i, status in enumerate(statuses):
        if status not in ("green", "red"):
            continue
        row = np.zeros(wm.vocab_size, dtype=np.float32)
        wm.apply(row, tokens[:i])
        assert (row[tokens[i]] == delta) == (status == "green"), (i, status)
        checked += 1
    assert checked > 500


def test_batch_equals_rows_and_context_forms_agree(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(5, wm.vocab_size + 7)).astype(np.float32)  # padded lm_head
    contexts = rng.integers(0, wm.vocab_size, size=(5, 9))
    want = batch.copy()
    for r in range(5):
        wm.apply(want[r], contexts[r].tolist())
    for form in (contexts, contexts.astype(np.int32), contexts.astype(np.uint32), contexts.tolist(),
                 [np.asarray(c, dtype=np.intc) for c in contexts]):
        got = wm.applied(batch, form)
        assert got.tobytes() == want.tobytes()
    # Padding columns are never touched; `applied` leaves its input alone.
    assert np.array_equal(want[:, wm.vocab_size:], batch[:, wm.vocab_size:])
    before = batch.copy()
    wm.applied(batch, contexts)
    assert batch.tobytes() == before.tobytes()
    # A strided view can be biased through `applied`.
    view = batch[:, : wm.vocab_size + 3][::2]
    assert wm.applied(view, contexts[::2]).shape == view.shape


def test_short_context_leaves_the_row_alone(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    row = np.full(wm.vocab_size, 1.5, dtype=np.float32)
    wm.apply(row, [3])  # the default scheme needs 2 preceding tokens
    assert np.all(row == 1.5)
    assert wm.is_green([3], 4) is None
