"""Detection from Python reports the same fields and numbers as `tracemark detect --json`."""

import numpy as np
import pytest

import tracemark
from conftest import cli_detect


def _watermarked(wm, rng, n, prompt):
    """A text written greedily from random logits through the hook: strongly watermarked."""
    context = list(prompt)
    for _ in range(n):
        logits = rng.normal(scale=1.0, size=wm.vocab_size).astype(np.float32)
        wm.apply(logits, context)
        context.append(int(np.argmax(logits)))
    return context[len(prompt):]


def _docs(wm):
    rng = np.random.default_rng(11)
    prompt = rng.integers(0, wm.vocab_size, size=12).tolist()
    marked = _watermarked(wm, rng, 300, prompt)
    plain = rng.integers(0, wm.vocab_size, size=300).tolist()
    repetitive = (plain[:20] * 10)[:150]
    return [
        {"tokens": marked, "prompt_tokens": prompt},
        {"tokens": plain},
        {"tokens": repetitive, "prompt_tokens": plain[:30]},
        {"tokens": plain[:40] + marked[:120] + plain[40:140]},  # a pasted passage
    ]


def _strip(report):
    return {k: v for k, v in report.items() if k not in ("source", "id")}


@pytest.mark.parametrize("windowed", [False, True])
def test_token_ids_match_the_cli(cli, small_profile, tmp_path, windowed):
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = _docs(wm)
    extra = ("--windowed",) if windowed else ()
    reports = cli_detect(cli, small_profile, docs, tmp_path, *extra)
    assert len(reports) == len(docs)
    for doc, report in zip(docs, reports):
        d = wm.detect(np.asarray(doc["tokens"], dtype=np.uint32), doc.get("prompt_tokens"), windowed=windowed)
        assert d.to_dict() == _strip(report)
        assert (d.scored, d.green, d.z_score, d.log10_p_value, d.p_value) == (
            report["scored"], report["green"], report["z_score"], report["log10_p_value"], report["p_value"])
        assert d.key_fingerprint == report["key_fingerprint"] and d.spec == tracemark.SPEC_VERSION
        assert d.ignored == report["ignored"]
    assert reports[0]["watermarked"] and not reports[1]["watermarked"]


def test_text_matches_the_cli(cli, model_profile, tmp_path):
    wm = tracemark.Watermark.from_profile(model_profile)
    text = "Tides rise and fall twice a day because the Moon pulls on the oceans. " * 3
    path = tmp_path / "answer.txt"
    path.write_text(text)
    from conftest import run_cli
    import json

    [report] = [json.loads(l) for l in run_cli(cli, "detect", "--profile", str(model_profile), "--json", str(path)).stdout.splitlines()]
    d = wm.detect_text(text)
    assert d.to_dict() == _strip(report)
    assert d.tokens == len(wm.encode(text))


def test_batch_statistics_add_up_and_shards_merge(small_profile):
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = [d["tokens"] for d in _docs(wm)]
    docs = docs + [docs[1]]  # an exact duplicate document
    # Per-document mode is `detect` on each document.
    single = [wm.detect(d) for d in docs]
    batch = wm.detect_batch(docs)
    assert [b.to_dict() for b in batch] == [s.to_dict() for s in single]
    # Corpus-wide dedup: the duplicate scores nothing new; counts add up; shards with a shared
    # TupleSet give the same documents as one call.
    corpus = wm.detect_batch(docs, corpus_dedup=True)
    assert corpus[-1].scored == 0 and corpus[-1].ignored["repeated"] > 0
    seen = tracemark.TupleSet()
    sharded = wm.detect_batch(docs[:2], seen=seen) + wm.detect_batch(docs[2:], seen=seen)
    assert [a.to_dict() for a in sharded] == [b.to_dict() for b in corpus]
    assert len(seen) == sum(c.scored for c in corpus)
    total = tracemark.Score.merge(corpus)
    assert total.scored == sum(c.scored for c in corpus)
    assert total.green == sum(c.green for c in corpus)
    assert total == tracemark.Score(total.scored, total.green, corpus[0].gamma)
    assert total == tracemark.Score.merge([tracemark.Score.merge(corpus[:2]), tracemark.Score.merge(corpus[2:])])
    # The Arrow layout gives the same results.
    values = np.concatenate([np.asarray(d, dtype=np.uint32) for d in docs])
    offsets = np.cumsum([0] + [len(d) for d in docs]).astype(np.int32)
    flat = wm.detect_flat(values, offsets, corpus_dedup=True)
    assert [a.to_dict() for a in flat] == [b.to_dict() for b in corpus]


def test_arrow_column(small_profile):
    pa = pytest.importorskip("pyarrow")
    wm = tracemark.Watermark.from_profile(small_profile)
    docs = [d["tokens"] for d in _docs(wm)]
    column = pa.chunked_array([pa.array(docs[:2], type=pa.list_(pa.uint32())), pa.array(docs[2:], type=pa.list_(pa.uint32()))])
    got = tracemark.detect_arrow(wm, column, corpus_dedup=True)
    want = wm.detect_batch(docs, corpus_dedup=True)
    assert [a.to_dict() for a in got] == [b.to_dict() for b in want]
    sliced = pa.array(docs, type=pa.list_(pa.uint32())).slice(1, 2)
    assert [a.to_dict() for a in tracemark.detect_arrow(wm, sliced)] == [wm.detect(d).to_dict() for d in docs[1:3]]


def test_merge_refuses_mixed_gamma():
    with pytest.raises(tracemark.InputError, match="gamma"):
        tracemark.Score.merge([tracemark.Score(10, 5, 0.25), tracemark.Score(10, 5, 0.5)])
