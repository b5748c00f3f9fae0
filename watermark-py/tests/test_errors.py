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


def test_huge_token_ids_are_out_of_range(wm):
    row = np.zeros(1000, dtype=np.float32)
    # Ints beyond 64 bits are ints all the same: the message says out of range, not "not an int".
    for big in (2**70, -(2**70), 2**64, 2**32):
        with pytest.raises(tracemark.InputError, match="not a valid token id: out of range"):
            wm.apply(row, [1, big])
        with pytest.raises(tracemark.InputError, match="out of range"):
            wm.detect([1, 2, big])
    with pytest.raises(tracemark.InputError, match="out of range"):
        wm.is_green([1, 2], 2**70)
    with pytest.raises(tracemark.InputError, match="5000000000 is not a valid token id: out of range"):
        wm.detect(np.array([1, 2, 5_000_000_000], dtype=np.uint64))
    with pytest.raises(TypeError, match="must be ints, got str"):
        wm.is_green([1, 2], "7")
    assert np.all(row == 0)


def test_mappings_and_sets_are_not_token_sequences(wm):
    row = np.zeros(1000, dtype=np.float32)
    # A dict has a length and d[0] may even exist: refused before it is read, not a KeyError.
    with pytest.raises(TypeError, match=r"sequence of ints.*got a mapping \(dict\)"):
        wm.apply(row, {0: 1, 1: 2})
    with pytest.raises(TypeError, match="mapping"):
        wm.apply(row, {5: 1})
    with pytest.raises(TypeError, match="mapping"):
        wm.detect({0: 1, 1: 2, 2: 3})
    with pytest.raises(TypeError, match="mapping"):
        wm.detect([1, 2, 3], prompt={0: 4})
    with pytest.raises(TypeError, match="got set"):
        wm.detect({1, 2, 3})
    # Batches of documents or contexts: a dict would otherwise be read by its keys.
    with pytest.raises(TypeError, match=r"contexts.*mapping"):
        wm.apply(np.zeros((2, 1000), dtype=np.float32), {0: [1, 2], 1: [3, 4]})
    with pytest.raises(TypeError, match=r"documents.*mapping"):
        wm.detect_batch({0: [1, 2, 3]})
    with pytest.raises(TypeError, match=r"prompts.*mapping"):
        wm.detect_batch([[1, 2, 3]], prompts={0: [4]})
    with pytest.raises(TypeError, match=r"documents.*string"):
        wm.detect_batch("1 2 3")
    assert np.all(row == 0)


KEY_READER = r"""
import resource, sys
# If the key file were read to its end, /dev/zero would fill memory: fail fast instead.
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import tracemark
try:
    tracemark.Watermark.from_key_file(sys.argv[1], 1000)
except tracemark.ProfileError as e:
    print("refused:", e)
"""


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_key_file_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path, kind):
    import os
    import subprocess
    import sys

    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        path = tmp_path / "tracemark.key"
        os.mkfifo(path)  # nobody writes: opening it to read would wait forever
    else:
        path = "/dev/zero"  # never ends
        if not os.path.exists(path):
            pytest.skip("no /dev/zero on this platform")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    try:
        result = subprocess.run(
            [sys.executable, "-c", KEY_READER, str(path)], capture_output=True, text=True, timeout=60, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"Watermark.from_key_file hung on a {kind}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused:") and "not a regular file" in result.stdout, result.stdout
    assert str(path) in result.stdout
