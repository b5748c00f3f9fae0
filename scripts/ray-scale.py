"""Corpus-scale detection on Ray: tokens/s and peak memory per worker, with 1 and 2 workers.

Usage: python scripts/ray-scale.py --profile keys/profile.toml [--tokens 20e6] [--workers 1 2]

The corpus: the human test corpus tokenized once with the profile's tokenizer, then copied with
each copy's ids shifted (so that copies share the corpus's statistics, not its tuples) until it
holds --tokens ids, written as Parquet (list<uint32>) files. Each run starts a local Ray cluster
with N CPUs on 127.0.0.1, runs `tracemark.ray.detect_corpus` over the files, and reads each Ray
worker's peak resident memory (VmHWM) before shutting the cluster down. The result of every run
is checked against the one-process answer (`Watermark.detect_batch(corpus_dedup=True)`).

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


def run(paths: List[str], profile: str, workers: int, partitions: int, blocks: int) -> Tuple[tr.PooledResult, float, Dict[int, int]]:
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
        started = time.perf_counter()
        # One map task per block: the files are split so that every worker has blocks to score.
        dataset = tr.read(paths).repartition(blocks)
        result = tr.detect_corpus(dataset, profile, partitions=partitions, batch_size=2048)
        seconds = time.perf_counter() - started
        peaks = worker_peaks()
    finally:
        ray.shutdown()
    return result, seconds, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", required=True, help="profile with a tokenizer (tracemark keygen)")
    parser.add_argument("--corpus", default=os.environ.get("TRACEMARK_CORPUS", "/work/shared/corpora/human-dev.jsonl.gz"))
    parser.add_argument("--tokens", type=float, default=20e6, help="corpus size in token ids")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()

    wm = tracemark.Watermark.from_profile(args.profile)
    with tempfile.TemporaryDirectory(prefix="ray-scale-") as tmp:
        paths, docs = corpus_ids(wm, Path(args.corpus), int(args.tokens), args.files, Path(tmp))
        tokens = sum(len(d) for d in docs)
        started = time.perf_counter()
        reference = tracemark.Score.merge(wm.detect_batch(docs, corpus_dedup=True))
        one_process = time.perf_counter() - started
        del docs
        print(
            f"corpus: {tokens:,} token ids in {args.files} Parquet files; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores; one process without Ray: {tokens / one_process / 1e6:.2f} M tokens/s"
        )
        print("| workers | partitions | seconds | M tokens/s | M tokens/s per worker | peak RSS per worker (MiB) | same answer |")
        print("|---|---|---|---|---|---|---|")
        per_core = []
        for workers in args.workers:
            partitions = 4 * workers
            result, seconds, peaks = run(paths, args.profile, workers, partitions, blocks=4 * workers)
            same = (result.scored, result.green, result.log10_p_value) == (
                reference.scored,
                reference.green,
                reference.log10_p_value,
            )
            rate = tokens / seconds
            per_core.append(rate / workers)
            # The busiest processes: map tasks and shuffle reducers run in Ray worker processes.
            top = sorted(peaks.values(), reverse=True)[: max(workers, 2)]
            rss = ", ".join(f"{p / 2**20:.0f}" for p in top)
            print(
                f"| {workers} | {partitions} | {seconds:.1f} | {rate / 1e6:.2f} | {rate / workers / 1e6:.2f} | {rss} | "
                f"{'yes' if same else 'NO'} |"
            )
        rate = min(per_core)
        core_hours = CRAWL_TOKENS / rate / 3600
        print(
            f"extrapolation: a 1e13-token crawl at {rate / 1e6:.2f} M tokens/s per core (the slowest run) is "
            f"{core_hours:,.0f} core-hours: {core_hours / 1000:,.1f} h on 1,000 cores, {core_hours / 24:,.0f} cores for one day"
        )


if __name__ == "__main__":
    main()
