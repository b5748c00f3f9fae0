"""tracemark.ray on a local Ray cluster: the same counts and p-value as one machine, exactly.

The reference is `tracemark audit --suspect --json` (the CLI) for the audit, and the core's
corpus-wide detection (`Watermark.detect_batch(corpus_dedup=True)`, merged) for detection. The
inputs are a few thousand documents: human text from the test corpus, with repeated documents
and prompts quoting their answers, and watermarked token ids written with the hook, spread over
several files (JSONL, and Parquet for detection) so that the same tuples reach different shards.

Skipped when Ray is not installed, unless TRACEMARK_REQUIRE_RAY=1 (as `make test-ray` sets).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import tracemark
from conftest import require_model, run_cli

if os.environ.get("TRACEMARK_REQUIRE_RAY") == "1":
    import ray  # noqa: F401
else:
    pytest.importorskip("ray.data")

import tracemark.ray as tr

#: Longest any one test may take (a hung cluster fails the test instead of the run).
TEST_SECONDS = 600
HUMAN_DOCUMENTS = 2500
WATERMARKED_DOCUMENTS = 300
FILES = 5


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A local Ray cluster (two CPUs on 127.0.0.1), shut down whatever happens."""
    import ray
    import ray.data

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def bounded_time() -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test ran past {TEST_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def human_texts(n: int) -> List[str]:
    corpus = os.environ.get("TRACEMARK_CORPUS") or "/work/shared/corpora/human-dev.jsonl.gz"
    if not Path(corpus).exists():
        pytest.skip(f"the human corpus is not at {corpus} (set TRACEMARK_CORPUS)")
    texts: List[str] = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            if text.strip():
                texts.append(text)
            if len(texts) == n:
                break
    return texts


def watermarked_ids(wm: tracemark.Watermark, n_docs: int, length: int, seed: int) -> List[List[int]]:
    """Token ids written with the watermark: at each step, 8 random candidates, green ones
    favoured by the scheme's delta (softmax), so about 60% of the tokens are green."""
    rng = np.random.default_rng(seed)
    delta = wm.scheme.delta
    docs = []
    for _ in range(n_docs):
        ids = [int(t) for t in rng.integers(0, wm.vocab_size, wm.context_width)]
        while len(ids) < length:
            candidates = rng.integers(0, wm.vocab_size, 8)
            bonus = np.array([delta if wm.is_green(ids, int(c)) else 0.0 for c in candidates])
            p = np.exp(bonus) / np.exp(bonus).sum()
            ids.append(int(rng.choice(candidates, p=p)))
        docs.append(ids)
    return docs


def suspect_outputs(wm: tracemark.Watermark) -> List[Dict[str, Any]]:
    """Lines of a suspect's outputs: text answers (some repeated, some whose prompt quotes the
    answer's start) and watermarked ids answers (some repeated)."""
    texts = human_texts(HUMAN_DOCUMENTS)
    lines: List[Dict[str, Any]] = []
    for i, text in enumerate(texts):
        if i % 3 == 0:
            lines.append({"prompt": text[: len(text) // 3], "response": text})
        elif i % 3 == 1:
            lines.append({"prompt": texts[i - 1][:80], "response": text})
        else:
            lines.append({"response": text})
        if i % 7 == 0:
            lines.append({"response": text})
    marked = watermarked_ids(wm, WATERMARKED_DOCUMENTS, 120, seed=17)
    for i, ids in enumerate(marked):
        line: Dict[str, Any] = {"response_tokens": ids}
        if i % 2 == 0:
            line["prompt_tokens"] = ids[20:40]
        lines.append(line)
        if i % 5 == 0:
            lines.append({"response_tokens": ids[30:]})
    rng = np.random.default_rng(3)
    order = rng.permutation(len(lines))
    return [lines[i] for i in order]


def write_jsonl(path: Path, lines: List[Dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def split_files(tmp: Path, name: str, lines: List[Dict[str, Any]]) -> List[str]:
    """The lines over FILES files (round robin), so that shards interleave documents."""
    paths = []
    for k in range(FILES):
        paths.append(str(write_jsonl(tmp / f"{name}-{k}.jsonl", lines[k::FILES])))
    return paths


@pytest.fixture(scope="module")
def audit_input(cli: Path, model_profile: Path, tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, List[str], Dict[str, Any]]:
    """The suspect's outputs in one file (for the CLI) and in FILES files (for Ray), and the
    CLI's report on them."""
    require_model()
    wm = tracemark.Watermark.from_profile(model_profile)
    tmp = tmp_path_factory.mktemp("ray-audit")
    lines = suspect_outputs(wm)
    whole = write_jsonl(tmp / "suspect.jsonl", lines)
    out = run_cli(cli, "audit", "--profile", str(model_profile), "--suspect", str(whole), "--json").stdout
    return whole, split_files(tmp, "suspect", lines), json.loads(out)


def assert_same_audit(result: tr.PooledResult, want: Dict[str, Any]) -> None:
    got = result.to_dict()
    for field in ("spec", "key_fingerprint", "documents", "tokens", "scored", "green", "gamma", "fpr", "watermarked"):
        assert got[field] == want[field], field
    # Bit for bit: the same counts through the same exact tail.
    for field in ("log10_p_value", "p_value", "z_score", "green_fraction"):
        assert got[field] == want[field], field
    assert got["skipped"] == want["skipped"]


def test_audit_on_ray_equals_the_cli(cluster: Any, model_profile: Path, audit_input: Any) -> None:
    _, paths, want = audit_input
    # The input is large enough that tuples repeat across shards and the verdict is firm.
    assert want["documents"] > 3000 and want["skipped"]["repeated"] > 10_000
    assert want["skipped"]["in_prompt"] > 1000 and want["watermarked"]
    result = tr.audit_outputs(tr.read(paths), model_profile, partitions=7, batch_size=200)
    assert_same_audit(result, want)


def test_the_partition_count_does_not_change_the_answer(cluster: Any, model_profile: Path, audit_input: Any) -> None:
    _, paths, want = audit_input
    one = tr.audit_outputs(tr.read(paths), model_profile, partitions=1, batch_size=500)
    assert_same_audit(one, want)


def test_a_worker_killed_mid_run_is_retried_and_the_answer_stays_exact(
    cluster: Any, model_profile: Path, audit_input: Any, tmp_path: Path
) -> None:
    _, paths, want = audit_input
    marker = str(tmp_path / "killed-once")

    def die_once(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        # Fused with the scoring map into one task: the process dies holding scored tuples.
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return batch
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        return batch

    tuples = tr.scored_tuples(tr.read(paths), model_profile, fields=tr.ANSWER_FIELDS, partitions=5, batch_size=200)
    tuples = tuples.map_batches(die_once, batch_format="numpy")
    result = tr.pool(tuples, model_profile, partitions=5)
    killed = Path(marker).read_text()
    assert killed.isdigit() and int(killed) != os.getpid(), "a worker process was killed"
    assert_same_audit(result, want)


def test_detection_on_ray_equals_corpus_wide_detection(cluster: Any, model_profile: Path, tmp_path: Path) -> None:
    wm = tracemark.Watermark.from_profile(model_profile)
    texts = human_texts(1500)
    docs: List[Dict[str, Any]] = []
    for i, text in enumerate(texts):
        doc: Dict[str, Any] = {"text": text}
        if i % 4 == 0:
            doc["prompt"] = text[: len(text) // 2]
        docs.append(doc)
        if i % 6 == 0:
            docs.append({"text": text})
    for ids in watermarked_ids(wm, 100, 100, seed=5):
        docs.append({"tokens": ids, "prompt_tokens": ids[10:20]})
        docs.append({"tokens": ids[::-1] + ids})

    # The reference, in one process: each tuple once across the corpus.
    bodies = [d["tokens"] if "tokens" in d else wm.encode(d["text"]) for d in docs]
    prompts = [
        d.get("prompt_tokens") or (wm.encode(d["prompt"]) if d.get("prompt", "").strip() else None) for d in docs
    ]
    detections = wm.detect_batch(bodies, prompts, corpus_dedup=True)
    want = tracemark.Score.merge(detections)
    ignored = {k: sum(d.ignored[k] for d in detections) for k in ("too_little_context", "repeated", "in_prompt")}
    assert ignored["repeated"] > 5000 and ignored["in_prompt"] > 1000

    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = split_files(tmp_path, "docs", docs)
    parquet = []
    for k in range(FILES):
        path = tmp_path / f"docs-{k}.parquet"
        # Every field in every file, null where a document lacks it (from_pylist would take
        # the fields of the first row only).
        part = docs[k::FILES]
        columns = {name: [d.get(name) for d in part] for name in ("text", "tokens", "prompt", "prompt_tokens")}
        pq.write_table(pa.table(columns), path)
        parquet.append(str(path))
    for paths in (jsonl, parquet):
        result = tr.detect_corpus(tr.read(paths), model_profile, partitions=4, batch_size=300)
        assert (result.scored, result.green) == (want.scored, want.green)
        assert result.log10_p_value == want.log10_p_value and result.p_value == want.p_value
        assert result.documents == len(docs) and result.tokens == sum(d.tokens for d in detections)
        assert {k: result.skipped[k] for k in ignored} == ignored
        assert result.skipped["earlier_in_text"] == result.skipped["not_in_filter"] == 0


def test_bad_input_is_refused_with_the_row(cluster: Any, model_profile: Path, tmp_path: Path) -> None:
    import ray.data

    wm = tracemark.Watermark.from_profile(model_profile)
    bad = ray.data.from_items([{"tokens": [1, 2, 3]}, {"tokens": [5, wm.vocab_size + 3]}])
    with pytest.raises(Exception, match="vocabulary"):
        tr.detect_corpus(bad, model_profile)
    nobody = ray.data.from_items([{"title": "no body"}])
    with pytest.raises(Exception, match="none of the columns"):
        tr.detect_corpus(nobody, model_profile)
    with pytest.raises(tracemark.InputError, match="partitions"):
        tr.scored_tuples(bad, model_profile, partitions=0)


def test_the_context_rule_turned_off_matches_the_in_process_audit(cluster: Any, model_profile: Path) -> None:
    import ray.data

    wm = tracemark.Watermark.from_profile(model_profile)
    responses = watermarked_ids(wm, 60, 80, seed=11)
    rows = [{"response_tokens": r, "prompt_tokens": r[5:25]} for r in responses] + [{"response_tokens": r[10:]} for r in responses[:20]]
    for exclude_context in (True, False):
        audit = tracemark.Audit(wm, exclude_context=exclude_context)
        audit.add_outputs([row["response_tokens"] for row in rows], [row.get("prompt_tokens") for row in rows])
        want = audit.report()
        result = tr.audit_outputs(ray.data.from_items(rows), model_profile, exclude_context=exclude_context, partitions=3)
        got = result.to_dict()
        for field in ("documents", "tokens", "scored", "green", "log10_p_value", "skipped"):
            assert got[field] == want[field], (exclude_context, field)
        assert (want["skipped"]["in_prompt"] > 0) == exclude_context
