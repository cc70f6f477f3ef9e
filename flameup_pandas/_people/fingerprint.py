"""Source hashes: a 64-bit hash of each row as read, before it is validated or encoded.

A rerun with a state knows a row sent before, unchanged, by its source hash and skips its
validation and encoding (most of a nightly resync's work). The hash is keyed by all else that
makes the row's person (the package version, the run's rules, the columns' names and types).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._version import __version__
from .wire import concat_pieces, offsets_and_data

__all__ = ["source_hashes"]

_BINARY = pa.large_binary()
_TEXTS = (pa.binary(), _BINARY)  # (a text column's cells: its UTF-8)


def source_hashes(frame: pd.DataFrame, rules: Sequence[Any]) -> np.ndarray | None:
    """Each row's source hash (int64, never 0) under ``rules``; None when a column has no
    fixed binary form (nested values, Python objects other than strings). A row is the
    length of each cell (4 bytes, -1 where missing), the bytes of its fixed-width values
    (zeros where missing), then its texts' bytes, hashed with SipHash.

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "n": [1, 2]})
    >>> a, b = source_hashes(frame, ()), source_hashes(frame.iloc[::-1], ())
    >>> bool(a[0] == b[1]), bool(a[0] == a[1]), bool(source_hashes(frame, ("x",))[0] == a[0])
    (True, False, False)
    """
    n = len(frame)
    found = [_cells(series) for _, series in frame.items()]
    cells_of = [cells for cells in found if cells is not None]
    if not found or len(cells_of) < len(found):
        return None
    widths = [0 if c.type in _TEXTS else c.type.byte_width for _, c in cells_of]
    # numpy over the Arrow buffers, not a kernel a column: each kernel call lets go of the GIL,
    # and a run's sending threads take it for as long as they may
    block = np.zeros((n, 4 * len(found) + sum(widths)), dtype=np.uint8)
    lengths = block[:, : 4 * len(found)].view("<i4")
    texts: list[pa.Array] = []
    at = 4 * len(found)
    for i, ((_, cells), width) in enumerate(zip(cells_of, widths, strict=True)):
        missing = None
        if cells.null_count:
            bits = np.unpackbits(np.frombuffer(cells.buffers()[0], np.uint8), bitorder="little")
            missing = bits[cells.offset : cells.offset + n] == 0
        if not width:
            offsets, data = offsets_and_data(cells)  # (a missing cell's bytes follow its -1)
            lengths[:, i] = np.diff(offsets)
            texts.append(
                pa.Array.from_buffers(_BINARY, n, [None, *map(pa.py_buffer, (offsets, data))])
            )
        else:
            values = np.frombuffer(cells.buffers()[1], np.uint8, n * width, cells.offset * width)
            block[:, at : at + width] = values.reshape(n, width)
            lengths[:, i] = width
            if missing is not None:
                block[missing, at : at + width] = 0
            at += width
        if missing is not None:
            lengths[missing, i] = -1
    columns = [
        (repr(name), series.dtype.name, str(kind))
        for (name, series), (kind, _) in zip(frame.items(), cells_of, strict=True)
    ]
    starts = np.arange(n + 1, dtype=np.int64) * block.shape[1]
    heads = pa.Array.from_buffers(_BINARY, n, [None, *map(pa.py_buffer, (starts, block))])
    key = hashlib.blake2b(repr((__version__, tuple(rules), columns)).encode(), digest_size=8)
    rows = concat_pieces([heads, *texts], n).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(rows, categorize=False, hash_key=key.hexdigest()).view(np.int64)
    hashes[hashes == 0] = 1  # 0 stands for "none"
    return hashes


def _cells(series: pd.Series) -> tuple[pa.DataType, pa.Array] | None:
    """A column's Arrow type and its cells: text as binary (its UTF-8), else a fixed-width
    array (booleans as int8); None for a type with no such form (objects, nested)."""
    try:
        cells = pa.array(series)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    kind = cells.type
    if series.dtype == object and kind not in (pa.string(), pa.large_string()):
        return None  # Python objects other than strings: their type is not the column's
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.chunk(0) if cells.num_chunks == 1 else cells.combine_chunks()
    if pa.types.is_dictionary(kind):
        cells = cells.dictionary_decode()
        kind = cells.type
    texts = {pa.string(): pa.binary(), pa.large_string(): _BINARY, pa.binary(): pa.binary()}
    if kind in texts or kind == _BINARY:
        return kind, cells.view(texts.get(kind, _BINARY))
    if pa.types.is_boolean(kind):
        return kind, cells.cast(pa.int8())
    if not (pa.types.is_primitive(kind) or pa.types.is_decimal(kind)):
        return None  # nested, or of no fixed width
    return kind, cells
