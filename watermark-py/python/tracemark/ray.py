"""Detection and the pooled audit over a Ray Dataset, with the answer of one machine, exactly.

``pip install './watermark-py[ray]'``. A corpus too large for one machine (a crawl snapshot, or
an audit whose distinct tuples outgrow its memory) is read as a Ray Dataset (JSONL or Parquet;
token ids or text) and scanned in two stages:

1. ``map_batches``: each Arrow batch goes to the Rust core with the GIL released, which
   tokenizes text with the profile's tokenizer, applies the per-document rules (too little
   context, windows seen in the prompt) and emits each scored (seed, token) tuple with its
   green bit, tagged with the partition a hash of the tuple picks.
2. a shuffle by partition (``groupby("part").map_groups``): each distinct tuple is judged in
   exactly one place, where it is counted once, whatever shard or document it came from.

The partitions' counts are summed and the exact binomial p-value is computed once from the
sums. Per-shard p-values, or per-shard deduplication, would not be the one-machine answer:
deduplication is corpus-wide. A worker that dies is retried by Ray; a retried task replaces
its whole output, so nothing is counted twice.

The profile is given by path and opened on each worker (with its key file and tokenizer):
on a cluster of several machines, it must be readable at that path on each.

>>> import ray, tracemark.ray as tr                                   # doctest: +SKIP
>>> ds = tr.read("s3://bucket/crawl/*.parquet")                         # doctest: +SKIP
>>> tr.detect_corpus(ds, "keys/profile.toml").log10_p_value             # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tracemark._native import InputError, Score, Watermark
from tracemark._native import _shard_batch as shard_batch
from tracemark._native import _tally_partition as tally_partition

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

__all__ = [
    "ANSWER_FIELDS",
    "DOCUMENT_FIELDS",
    "Fields",
    "PooledResult",
    "audit_outputs",
    "detect_corpus",
    "pool",
    "read",
    "scored_tuples",
]

_Path = Union[str, "os.PathLike[str]"]

#: Partitions of the shuffle when none is given: a few per CPU of a small cluster. More
#: partitions mean less memory per reducer (16 bytes per distinct tuple of its partition).
DEFAULT_PARTITIONS = 16
#: Documents per map batch.
DEFAULT_BATCH_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class Fields:
    """Which columns hold a document's body and prompt, as ids or text. A row takes the first
    column of each tuple that is present (not null) there, ids before text, as the CLI does."""

    body_ids: Tuple[str, ...]
    body_text: Tuple[str, ...]
    prompt_ids: Tuple[str, ...] = ("prompt_tokens",)
    prompt_text: Tuple[str, ...] = ("prompt",)


#: The documents of ``tracemark detect``: ``tokens``, else ``text``.
DOCUMENT_FIELDS = Fields(body_ids=("tokens",), body_text=("text",))
#: The answers of ``tracemark audit --suspect``: ``response_tokens``, ``tokens`` or
#: ``completion_tokens``, else ``response``, ``completion`` or ``text``.
ANSWER_FIELDS = Fields(
    body_ids=("response_tokens", "tokens", "completion_tokens"),
    body_text=("response", "completion", "text"),
)


@dataclasses.dataclass(frozen=True)
class PooledResult:
    """The pooled test over every document, with the fields of ``tracemark audit --json``."""

    spec: str
    key_fingerprint: str
    documents: int
    tokens: int
    score: Score
    fpr: float
    watermarked: bool
    #: Tokens left out, by reason: too_little_context, repeated, in_prompt, earlier_in_text,
    #: not_in_filter.
    skipped: Dict[str, int]
    partitions: int

    @property
    def scored(self) -> int:
        return self.score.scored

    @property
    def green(self) -> int:
        return self.score.green

    @property
    def log10_p_value(self) -> float:
        return self.score.log10_p_value

    @property
    def p_value(self) -> float:
        return self.score.p_value

    def to_dict(self) -> Dict[str, Any]:
        """The report as ``tracemark audit --json`` names its fields."""
        out: Dict[str, Any] = {
            "spec": self.spec,
            "key_fingerprint": self.key_fingerprint,
            "tokens": self.tokens,
            "documents": self.documents,
        }
        out.update(self.score.to_dict())
        out.update(fpr=self.fpr, watermarked=self.watermarked, skipped=dict(self.skipped))
        return out


@functools.lru_cache(maxsize=4)
def _watermark(profile: str) -> Watermark:
    """The profile's watermark, opened once per worker process."""
    return Watermark.from_profile(profile)


def read(paths: Union[str, Sequence[str]], **read_args: Any) -> "ray.data.Dataset":
    """A Dataset of the JSONL (``.jsonl``, ``.json``, maybe gzipped) or Parquet files at
    ``paths``; other keyword arguments go to Ray's reader."""
    import ray.data

    listed = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    names = [os.fspath(p) for p in listed]
    if names and all(n.rstrip("/").endswith(".parquet") for n in names):
        return ray.data.read_parquet(names, **read_args)
    return ray.data.read_json(names, **read_args)


def _first_present(batch: "pa.Table", names: Sequence[str], want_text: bool) -> Optional["pa.Array"]:
    """The columns of ``names`` in ``batch``, merged row by row (the first not null wins);
    None when the batch has none of them (or only all-null ones)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays: List[pa.Array] = []
    for name in names:
        if name not in batch.column_names:
            continue
        column = batch.column(name).combine_chunks()
        if pa.types.is_null(column.type):
            continue
        ok = (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) if want_text else (
            pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        )
        if not ok:
            kind = "a string" if want_text else "a list of token ids"
            raise InputError(f"column {name!r} must hold {kind}, got {column.type}")
        if want_text and pa.types.is_string(column.type):
            column = column.cast(pa.large_string())
        if not want_text and pa.types.is_list(column.type):
            column = column.cast(pa.large_list(column.type.value_type))
        arrays.append(column)
    if not arrays:
        return None
    if len(arrays) == 1:
        return arrays[0]
    kinds = {a.type for a in arrays}
    if len(kinds) > 1:
        arrays = [a.cast(pa.large_list(pa.int64())) for a in arrays]
    return pc.coalesce(*arrays)


def _buffers(array: Optional["pa.Array"], want_text: bool) -> Optional[Tuple[Any, Any, Any]]:
    """(values, offsets, valid) of a list or string array, for the core."""
    if array is None:
        return None
    import pyarrow as pa

    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    if want_text:
        # A large_string array's buffers: validity, int64 offsets, UTF-8 bytes. The offsets are
        # absolute into the bytes; a slice starts `array.offset` entries in.
        _, offset_buffer, data = array.buffers()
        offsets = np.frombuffer(offset_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
        values = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    else:
        # Offsets are absolute into the whole child array (a slice's offset included).
        offsets = array.offsets.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        child = array.values
        if pa.types.is_null(child.type):
            # Only empty lists (JSON `[]` everywhere in the batch): no ids at all.
            return np.zeros(0, np.uint32), offsets, valid
        if not pa.types.is_integer(child.type):
            raise InputError(f"token ids must be integers, got {child.type}")
        if child.null_count:
            raise InputError("a list of token ids holds a null id")
        values = child.to_numpy(zero_copy_only=False)
    return values, offsets, valid


def _shard(
    batch: "pa.Table", *, profile: str, partitions: int, fields: Fields, exclude_context: bool
) -> Dict[str, np.ndarray]:
    """Stage 1 on one batch: its scored tuples and count rows (see ``shard_batch``)."""
    columns = {
        "body_ids": _buffers(_first_present(batch, fields.body_ids, False), False),
        "body_text": _buffers(_first_present(batch, fields.body_text, True), True),
        "prompt_ids": _buffers(_first_present(batch, fields.prompt_ids, False), False),
        "prompt_text": _buffers(_first_present(batch, fields.prompt_text, True), True),
    }
    if columns["body_ids"] is None and columns["body_text"] is None:
        if batch.num_rows == 0:
            columns["body_ids"] = (np.zeros(0, np.uint32), np.zeros(1, np.int64), None)
        else:
            wanted = ", ".join(fields.body_ids + fields.body_text)
            raise InputError(f"a batch has none of the columns {wanted}")
    return shard_batch(_watermark(profile), partitions, exclude_context=exclude_context, **columns)


def _tally(group: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Stage 2 on one partition: its distinct tuples counted, and its count rows summed."""
    counts = tally_partition(
        np.ascontiguousarray(group["seed"], dtype=np.uint64),
        np.ascontiguousarray(group["token"], dtype=np.uint32),
        np.ascontiguousarray(group["green"], dtype=np.bool_),
    )
    return {name: np.array([value], dtype=np.uint64) for name, value in counts.items()}


def scored_tuples(
    dataset: "ray.data.Dataset",
    profile: _Path,
    *,
    fields: Fields = DOCUMENT_FIELDS,
    partitions: int = DEFAULT_PARTITIONS,
    exclude_context: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **map_args: Any,
) -> "ray.data.Dataset":
    """Stage 1, lazily: rows ``part``, ``seed``, ``token``, ``green`` (and each batch's count
    rows). ``exclude_context=False`` turns the prompt rule off (tests and demonstrations
    only: the p-value is then not valid). Other keyword arguments go to ``map_batches``."""
    if partitions < 1:
        raise InputError("partitions must be at least 1")
    _watermark(os.fspath(profile))  # a bad profile fails here, not in a worker
    shard = functools.partial(
        _shard,
        profile=os.fspath(profile),
        partitions=partitions,
        fields=fields,
        exclude_context=exclude_context,
    )
    return dataset.map_batches(
        shard,
        batch_format="pyarrow",
        batch_size=batch_size,
        **map_args,
    )


def pool(tuples: "ray.data.Dataset", profile: _Path, *, partitions: int, fpr: Optional[float] = None) -> PooledResult:
    """Stage 2: shuffles ``scored_tuples`` rows by partition, counts each partition's distinct
    tuples, sums, and computes the exact test once. ``fpr`` defaults to the profile's."""
    watermark = _watermark(os.fspath(profile))
    grouped = tuples.groupby("part", num_partitions=partitions)
    rows = grouped.map_groups(_tally, batch_format="numpy").take_all()
    total: Dict[str, int] = {}
    for row in rows:
        for name, value in row.items():
            total[name] = total.get(name, 0) + int(value)
    scored, green = total.get("scored", 0), total.get("green", 0)
    score = Score(scored, green, watermark.scheme.effective_gamma)
    verdict_fpr = watermark.fpr if fpr is None else fpr
    skipped = {
        "too_little_context": total.get("too_little_context", 0),
        "repeated": total.get("occurrences", 0) - scored,
        "in_prompt": total.get("in_prompt", 0),
        "earlier_in_text": total.get("earlier_in_text", 0),
        "not_in_filter": 0,
    }
    return PooledResult(
        spec=watermark.spec,
        key_fingerprint=watermark.key_fingerprint,
        documents=total.get("documents", 0),
        tokens=total.get("tokens", 0),
        score=score,
        fpr=verdict_fpr,
        watermarked=scored > 0 and score.is_significant(verdict_fpr),
        skipped=skipped,
        partitions=partitions,
    )


def detect_corpus(
    dataset: "ray.data.Dataset",
    profile: _Path,
    *,
    fpr: Optional[float] = None,
    partitions: int = DEFAULT_PARTITIONS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fields: Fields = DOCUMENT_FIELDS,
) -> PooledResult:
    """The pooled test over a corpus with each (seed, token) tuple scored once corpus-wide:
    the sum of the core's ``detect_in_corpus`` over every document (``Watermark.detect_batch``
    with ``corpus_dedup=True``, merged). Rows: ``tokens`` or ``text``, maybe ``prompt_tokens``
    or ``prompt``. An empty document counts as a document of 0 tokens."""
    tuples = scored_tuples(dataset, profile, fields=fields, partitions=partitions, batch_size=batch_size)
    return pool(tuples, profile, partitions=partitions, fpr=fpr)


def audit_outputs(
    dataset: "ray.data.Dataset",
    profile: _Path,
    *,
    fpr: Optional[float] = None,
    exclude_context: bool = True,
    partitions: int = DEFAULT_PARTITIONS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fields: Fields = ANSWER_FIELDS,
) -> PooledResult:
    """The closed-model audit of a suspect's outputs: the numbers of ``tracemark audit
    --suspect OUTPUTS.jsonl --json`` (rows as its lines: ``response``/``response_tokens``,
    maybe ``prompt``/``prompt_tokens``)."""
    tuples = scored_tuples(
        dataset, profile, fields=fields, partitions=partitions, exclude_context=exclude_context, batch_size=batch_size
    )
    return pool(tuples, profile, partitions=partitions, fpr=fpr)
