"""Bad input raises a clear exception with the core's message, never crashes."""

import numpy as np
import pytest

import tracemark


@pytest.fixture
def wm(small_profile):
    return tracemark.Watermark.from_profile(small_profile)


def test_exception_hierarchy():
    for cls in (tracemark.ProfileError, tracemark.InputError):
        assert issubclass(cls, tracemark.TracemarkError)
    assert issubclass(tracemark.TracemarkError, ValueError)


def test_bad_profiles(tmp_path, small_profile):
    with pytest.raises(tracemark.ProfileError, match="missing.toml"):
        tracemark.Profile.load(tmp_path / "missing.toml")
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("this is = = not toml")
    with pytest.raises(tracemark.ProfileError, match="malformed profile"):
        tracemark.Watermark.from_profile(garbage)
    # The profile's key replaced by another: refused by fingerprint, the key never shown.
    other = tmp_path / "keys"
    other.mkdir()
    text = small_profile.read_text()
    (other / "profile.toml").write_text(text)
    secret = "ab" * 32
    (other / "tracemark.key").write_text("tracemark-key-v1\n" + secret + "\n")
    (other / "tracemark.key").chmod(0o600)  # a key others can read is refused, as ssh does
    with pytest.raises(tracemark.ProfileError, match="does not match the profile") as e:
        tracemark.Watermark.from_profile(other / "profile.toml")
    assert secret[:16] not in str(e.value)
    (other / "tracemark.key").write_text("tracemark-key-v1\nzz" + secret[2:] + "\n")
    with pytest.raises(tracemark.ProfileError, match="not 64 hex digits") as e:
        tracemark.Watermark.from_profile(other / "profile.toml")
    assert secret[2:18] not in str(e.value)


def test_wrong_logits(wm):
    with pytest.raises(tracemark.InputError, match="logits row has 999 entries but the vocabulary has 1000 tokens"):
        wm.apply(np.zeros(999, dtype=np.float32), [1, 2])
    with pytest.raises(TypeError, match="float32.*float64"):
        wm.apply(np.zeros(1000), [1, 2])
    with pytest.raises(TypeError, match="float32.*list"):
        wm.apply([0.0] * 1000, [1, 2])
    with pytest.raises(tracemark.InputError, match="C-contiguous"):
        wm.apply(np.zeros(2000, dtype=np.float32)[::2], [1, 2])
    with pytest.raises(tracemark.InputError, match="3 dimensions"):
        wm.apply(np.zeros((1, 1, 1000), dtype=np.float32), [1, 2])
    with pytest.raises(tracemark.InputError, match="2 rows but 3 contexts"):
        wm.apply(np.zeros((2, 1000), dtype=np.float32), [[1, 2]] * 3)
    frozen = np.zeros(1000, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(tracemark.InputError, match="cannot be written"):
        wm.apply(frozen, [1, 2])


def test_wrong_token_ids(wm):
    row = np.zeros(1000, dtype=np.float32)
    with pytest.raises(tracemark.InputError, match="token id 1000 is outside the vocabulary of 1000 tokens"):
        wm.apply(row, [1, 1000])
    with pytest.raises(tracemark.InputError, match="-1 is not a valid token id"):
        wm.apply(row, [1, -1])
    with pytest.raises(TypeError, match="integer array"):
        wm.apply(row, np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="string"):
        wm.detect("some text")
    with pytest.raises(tracemark.InputError, match="empty input"):
        wm.detect([])
    with pytest.raises(tracemark.InputError, match="false-positive rate"):
        wm.detect([1, 2, 3], fpr=0.0)
    with pytest.raises(tracemark.InputError, match="1 documents but 2 prompts"):
        wm.detect_batch([[1, 2, 3]], prompts=[[1], [2]])
    with pytest.raises(tracemark.InputError, match="offsets"):
        wm.detect_flat(np.arange(10, dtype=np.uint32), np.array([0, 5, 11]))
    assert np.all(row == 0)


def test_bad_parameters_and_missing_tokenizer(tmp_path, small_profile):
    with pytest.raises(tracemark.InputError, match="gamma 1.5"):
        tracemark.Scheme(gamma=1.5)
    with pytest.raises(tracemark.InputError, match="seeding"):
        tracemark.Scheme(seeding="sideways")
    with pytest.raises(tracemark.InputError, match="width 1"):
        tracemark.Scheme(seeding="self-seeded", width=1)
    # A small profile binds no tokenizer: text detection is refused with the core's reason.
    wm = tracemark.Watermark.from_profile(small_profile)
    with pytest.raises(tracemark.ProfileError, match="binds no tokenizer"):
        wm.detect_text("hello there")
    key = tracemark.Profile.load(small_profile).key_file
    bare = tracemark.Watermark.from_key_file(key, 1000)
    with pytest.raises(tracemark.ProfileError, match="from_profile"):
        bare.detect_text("hello there")
    with pytest.raises(tracemark.InputError, match="vocabulary size 0"):
        tracemark.Watermark.from_key_file(key, 0)
