"""Batch detection over an Arrow ``list<uint32>`` (or any integer list) column.

Any Arrow producer works (pyarrow, polars, DuckDB, ...): objects that export the Arrow PyCapsule
interface (``__arrow_c_array__`` / ``__arrow_c_stream__``) are imported through pyarrow, which is
needed only here (``pip install tracemark[arrow]``). The ids are read zero-copy where the column
already holds them as one flat buffer, and scored by ``Watermark.detect_flat``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import numpy as np

if TYPE_CHECKING:
    from tracemark._native import Detection, TupleSet, Watermark


def _chunks(column: Any) -> List[Any]:
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("tracemark.detect_arrow needs pyarrow: pip install 'tracemark[arrow]'") from e
    if isinstance(column, pa.ChunkedArray):
        return list(column.chunks)
    if isinstance(column, pa.Array):
        return [column]
    if hasattr(column, "__arrow_c_stream__"):
        return list(pa.chunked_array(column).chunks)
    if hasattr(column, "__arrow_c_array__"):
        return [pa.array(column)]
    raise TypeError(f"expected an Arrow list array or an object with the Arrow PyCapsule interface, got {type(column).__name__}")


def detect_arrow(
    watermark: "Watermark",
    column: Any,
    *,
    fpr: Optional[float] = None,
    corpus_dedup: bool = False,
    seen: Optional["TupleSet"] = None,
) -> List["Detection"]:
    """One Detection per row of a ``list<integer>`` column; null rows are an error.

    With ``corpus_dedup`` the whole column shares one tuple set (chunks included); pass a
    ``TupleSet`` as ``seen`` to carry it across calls when a corpus is streamed in batches.
    """
    import pyarrow as pa

    from tracemark._native import InputError, TupleSet

    if corpus_dedup and seen is None:
        seen = TupleSet()
    results: List["Detection"] = []
    for chunk in _chunks(column):
        if not (pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type)):
            raise InputError(f"expected a list<uint32> column, got {chunk.type}")
        if chunk.null_count:
            raise InputError(f"the column has {chunk.null_count} null rows; drop or fill them first")
        # Offsets are absolute into `values` (they include a slice's offset), so the full
        # child buffer is passed and each document is read at its own range.
        offsets = chunk.offsets.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        values = chunk.values
        if not pa.types.is_integer(values.type):
            raise InputError(f"expected integer token ids, got {values.type}")
        ids = values.to_numpy(zero_copy_only=False)
        results.extend(watermark.detect_flat(ids, offsets, fpr=fpr, seen=seen))
    return results
