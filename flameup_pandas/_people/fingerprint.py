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
import pyarrow.compute as pc

from .._version import __version__
from .wire import concat_pieces

__all__ = ["source_hashes"]

_BINARY = pa.large_binary()


def source_hashes(frame: pd.DataFrame, rules: Sequence[Any]) -> np.ndarray | None:
    """Each row's source hash (int64, never 0) under ``rules``; None when a column has no
    fixed binary form (nested values, Python objects other than strings). Each cell is its
    length (4 bytes, -1 where missing) and its bytes; a row's are hashed with SipHash.

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "n": [1, 2]})
    >>> a, b = source_hashes(frame, ()), source_hashes(frame.iloc[::-1], ())
    >>> bool(a[0] == b[1]), bool(a[0] == a[1]), bool(source_hashes(frame, ("x",))[0] == a[0])
    (True, False, False)
    """
    pieces: list[bytes | pa.Array] = []
    columns = []
    for name, series in frame.items():
        found = _cells(series)
        if found is None:
            return None
        kind, cells = found
        columns.append((repr(name), series.dtype.name, str(kind)))
        lengths = pc.fill_null(pc.binary_length(cells), -1).to_numpy().astype("<i4")
        heads = pa.Array.from_buffers(pa.binary(4), len(lengths), [None, pa.py_buffer(lengths)])
        pieces += [heads.cast(_BINARY), pc.fill_null(cells, pa.scalar(b"", _BINARY))]
    key = hashlib.blake2b(repr((__version__, tuple(rules), columns)).encode(), digest_size=8)
    rows = concat_pieces(pieces, len(frame)).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(rows, categorize=False, hash_key=key.hexdigest()).view(np.int64)
    hashes[hashes == 0] = 1  # 0 stands for "none"
    return hashes


def _cells(series: pd.Series) -> tuple[pa.DataType, pa.Array] | None:
    """A column's Arrow type and its cells as bytes (null where missing): text as its UTF-8,
    a fixed-width value as its bytes; None for a type with no such form (objects, nested)."""
    try:
        cells = pa.array(series)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    kind = cells.type
    if series.dtype == object and kind not in (pa.string(), pa.large_string()):
        return None  # Python objects other than strings: their type is not the column's
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    if pa.types.is_dictionary(kind):
        cells = cells.dictionary_decode()
        kind = cells.type
    if kind in (pa.string(), pa.large_string(), pa.binary(), _BINARY):
        return kind, cells.cast(_BINARY)
    cells = cells.cast(pa.int8()) if pa.types.is_boolean(kind) else cells
    if not (pa.types.is_primitive(kind) or pa.types.is_decimal(kind)):
        return None  # nested, or of no fixed width
    width = pa.binary(cells.type.bit_width // 8)
    fixed = pa.Array.from_buffers(width, len(cells), cells.buffers()[:2], offset=cells.offset)
    return kind, fixed.cast(_BINARY)
