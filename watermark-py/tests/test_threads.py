"""One Watermark hammered from many threads gives the single-threaded answers, without deadlock
(the GIL is released inside the hook and the detector, and a shared TupleSet is locked only
with the GIL released). The pool runs in a child process with a timeout, so that a deadlock
fails the test instead of hanging it."""

import subprocess
import sys

SCRIPT = r'''
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import tracemark

wm = tracemark.Watermark.from_profile(sys.argv[1])
rng = np.random.default_rng(3)
rows = rng.normal(size=(64, wm.vocab_size)).astype(np.float32)
contexts = rng.integers(0, wm.vocab_size, size=(64, 5))
docs = [rng.integers(0, wm.vocab_size, size=500) for _ in range(16)]
want_rows = [wm.applied(rows[i], contexts[i]) for i in range(64)]
want_docs = [wm.detect(d).to_dict() for d in docs]
seen = tracemark.TupleSet()


def job(i):
    got = wm.applied(rows[i % 64], contexts[i % 64])
    assert got.tobytes() == want_rows[i % 64].tobytes()
    assert wm.detect(docs[i % 16]).to_dict() == want_docs[i % 16]
    wm.detect_batch([docs[i % 16]], seen=seen)
    assert len(seen) > 0
    return i


with ThreadPoolExecutor(max_workers=8) as pool:
    assert sorted(pool.map(job, range(400))) == list(range(400))
# Every document's tuples were inserted once, whatever the interleaving.
assert len(seen) == sum(d.scored for d in wm.detect_batch(docs, corpus_dedup=True))
print("ok")
'''


def test_pool_hammering_one_watermark(small_profile):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(small_profile)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
