"""Corpus-scale detection on Ray: tokens/s and peak memory per worker, with 1 and 2 workers.

Usage: python scripts/ray-scale.py --profile keys/profile.toml [--tokens 40e6] [--workers 1 2]

The corpus: the human test corpus tokenized once with the profile's tokenizer, then copied with
each copy's ids shifted (so that copies share the corpus's statistics, not its tuples) until it
holds --tokens ids, written as Parquet (list<uint32>) files. Each worker count gets a local Ray
cluster of N CPUs on 127.0.0.1, warmed up on one file, which runs `tracemark.ray.detect_corpus`
over a quarter of the files and then over all of them: the difference of the two times is the
marginal cost of tokens, without a job's fixed costs. The workers' peak resident memory (VmHWM)
is read before the cluster is shut down, and every result is checked against the one-process
answer (`Watermark.detect_batch(corpus_dedup=True)`, merged).

Prints a table, then the extrapolation to a 1e13-token crawl from the measured per-core rate.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import tracemark
import tracemark.ray as tr

CRAWL_TOKENS = 1e13


def corpus_ids(wm: tracemark.Watermark, corpus: Path, tokens: int, files: int, out: Path) -> Tuple[List[str], List[np.ndarray]]:
    """Writes the corpus as `files` Parquet files; returns their paths and the documents."""
    base: List[np.ndarray] = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            if text.strip():
                ids = np.asarray(wm.encode(text), dtype=np.uint32)
                if len(ids):
                    base.append(ids)
    docs: List[np.ndarray] = []
    total, copy = 0, 0
    while total < tokens:
        shift = np.uint32(copy * 7919)
        for ids in base:
            docs.append((ids + shift) % np.uint32(wm.vocab_size))
            total += len(ids)
            if total >= tokens:
                break
        copy += 1
    paths = []
    for k in range(files):
        part = docs[k::files]
        column = pa.array([d for d in part], type=pa.list_(pa.uint32()))
        path = out / f"corpus-{k}.parquet"
        pq.write_table(pa.table({"tokens": column}), path)
        paths.append(str(path))
    return paths, docs


def worker_peaks() -> Dict[int, int]:
    """Peak resident bytes (VmHWM) of each live Ray worker process of this user."""
    peaks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            # Ray sets a worker's title to `ray::IDLE`, `ray::MapBatches(...)`, `ray::Hash...`
            # (shuffle actors), which replaces its command line.
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            is_worker = cmdline.startswith(b"ray::") or b"default_worker.py" in cmdline
            if not is_worker or os.stat(f"/proc/{pid}").st_uid != os.getuid():
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(pid)] = int(line.split()[1]) * 1024
        except OSError:
            continue
    return peaks


def run(
    corpora: List[List[str]], profile: str, workers: int, partitions: int
) -> Tuple[List[Tuple[tr.PooledResult, float]], Dict[int, int]]:
    """Each corpus (a list of files) detected on one local cluster of `workers` CPUs: the
    results with their wall seconds, and the workers' peak memory at the end."""
    import ray
    import ray.data

    ray.init(
        address="local",
        num_cpus=workers,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        object_store_memory=2 << 30,
    )
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        # Warm-up on one file, untimed: starts the worker processes and opens the profile in them,
        # costs a long-running cluster pays once.
        tr.detect_corpus(tr.read(corpora[0][:1]), profile, partitions=partitions)
        timed = []
        for paths in corpora:
            started = time.perf_counter()
            # One map task per block: the files are split so that every worker has blocks.
            dataset = tr.read(paths).repartition(4 * workers)
            result = tr.detect_corpus(dataset, profile, partitions=partitions, batch_size=2048)
            timed.append((result, time.perf_counter() - started))
        peaks = worker_peaks()
    finally:
        ray.shutdown()
    return timed, peaks


def one_process_stages(paths: List[str], profile: str, partitions: int) -> float:
    """CPU seconds of the two stages' own work (no Ray: the same functions called in turn in
    this process, one core), over the whole corpus."""
    from tracemark.ray import _shard, _tally

    started = time.process_time()
    fields = tr.DOCUMENT_FIELDS
    shards = []
    for path in paths:
        table = pq.read_table(path)
        for batch in table.to_batches(max_chunksize=2048):
            shards.append(_shard(pa.Table.from_batches([batch]), profile=profile, partitions=partitions, fields=fields, exclude_context=True))
    for p in range(partitions):
        group = {name: np.concatenate([s[name][s["part"] == p] for s in shards]) for name in ("seed", "token", "green")}
        _tally(group)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, help="profile with a tokenizer (tracemark keygen)")
    parser.add_argument("--corpus", default=os.environ.get("TRACEMARK_CORPUS", "/work/shared/corpora/human-dev.jsonl.gz"))
    parser.add_argument("--tokens", type=float, default=40e6, help="corpus size in token ids")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()

    wm = tracemark.Watermark.from_profile(args.profile)
    with tempfile.TemporaryDirectory(prefix="ray-scale-") as tmp:
        paths, docs = corpus_ids(wm, Path(args.corpus), int(args.tokens), args.files, Path(tmp))
        # A quarter of the files, and all: the difference of their times is the marginal cost of
        # tokens, free of a job's fixed costs (task and shuffle-actor start-up, file listing).
        quarter = max(1, args.files // 4)
        corpora = [paths[:quarter], paths]
        subsets = [[d for i, d in enumerate(docs) if i % args.files < quarter], docs]
        sizes = [sum(len(d) for d in subset) for subset in subsets]
        started = time.perf_counter()
        references = [tracemark.Score.merge(wm.detect_batch(subset, corpus_dedup=True)) for subset in subsets]
        one_process = time.perf_counter() - started
        del docs, subsets
        stage_cpu = one_process_stages(paths, args.profile, 4)
        print(
            f"corpus: {sizes[1]:,} token ids in {args.files} Parquet files ({sizes[0]:,} in the first {quarter}); "
            f"{platform.machine()}, {os.cpu_count()} cores; one process without Ray: "
            f"{sum(sizes) / one_process / 1e6:.2f} M tokens/s (Watermark.detect_batch), "
            f"{sizes[1] / stage_cpu / 1e6:.2f} M tokens/s per CPU second (the two stages' own work)"
        )
        print(
            "| workers | partitions | seconds (1/4, all) | M tokens/s (all) | marginal M tokens/s "
            "| marginal per worker | peak RSS of the largest workers (MiB) | same answer |"
        )
        print("|---|---|---|---|---|---|---|---|")
        per_core = []
        for workers in args.workers:
            partitions = 4 * workers
            timed, peaks = run(corpora, args.profile, workers, partitions)
            same = all(
                (r.scored, r.green, r.log10_p_value) == (want.scored, want.green, want.log10_p_value)
                for (r, _), want in zip(timed, references)
            )
            (_, small), (_, whole) = timed
            marginal = (sizes[1] - sizes[0]) / max(whole - small, 1e-9)
            per_core.append(marginal / workers)
            top = sorted(peaks.values(), reverse=True)[: max(workers, 2)]
            rss = ", ".join(f"{p / 2**20:.0f}" for p in top)
            print(
                f"| {workers} | {partitions} | {small:.1f}, {whole:.1f} | {sizes[1] / whole / 1e6:.2f} | "
                f"{marginal / 1e6:.2f} | {marginal / workers / 1e6:.2f} | {rss} | {'yes' if same else 'NO'} |"
            )
        rate = min(per_core)
        core_hours = CRAWL_TOKENS / rate / 3600
        print(
            f"extrapolation: a 1e13-token crawl at {rate / 1e6:.2f} M tokens/s per worker core (the lowest "
            f"marginal rate) is {core_hours:,.0f} core-hours: {core_hours / 1000:,.1f} h on 1,000 cores, "
            f"{core_hours / 24:,.0f} cores for one day"
        )


if __name__ == "__main__":
    main()
