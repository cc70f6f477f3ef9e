"""JSON text built column by column in Arrow arrays: the bytes each person is sent as.

Every function here takes whole columns and returns a ``large_binary`` array with one JSON
text per row (null where none), without a Python object per value, and exactly the bytes
``orjson.dumps`` writes for the same values (numbers are orjson's own texts, cut out of its
dump of the whole numpy column; strings are quoted while a person is assembled, and only the
few that need it escaped by orjson).

Why not polars' ``struct.json_encode`` or DuckDB's ``to_json`` (about as fast, see
``benchmarks/bench_conversion.py``): they write missing values as ``null`` and timestamps
their own way, and are optional extras. Arrow's cost is per row and argument of a join, so
constants are merged; its ``null_handling="skip"`` loses rows whose values are all null
(pyarrow 26), hence the leading commas and :func:`drop_byte`.

Content hashes stay blake2b of the sorted-key JSON so every state written earlier still
matches; a vectorised hash would turn every stored hash stale.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BINARY",
    "blake2b_hashes",
    "bool_texts",
    "bools",
    "concat_pieces",
    "drop_byte",
    "json_list",
    "needs_escape",
    "null_mask",
    "number_texts",
    "offsets_and_data",
    "quoted",
    "replaced",
    "scattered",
    "string_texts",
    "text_array",
    "timestamp_texts",
    "with_nulls",
]

BINARY = pa.large_binary()
_COMMA, _QUOTE, _BACKSLASH, _CONTROL_END = 44, 34, 92, 32
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _scalar(data: bytes) -> pa.Scalar:
    return pa.scalar(data, BINARY)


def text_array(texts: Sequence[bytes | None]) -> pa.Array:
    return pa.array(texts, BINARY)


def bools(judged: Any, missing: bool = False) -> np.ndarray:
    """An Arrow boolean array as numpy, nulls (missing values) as ``missing``."""
    return np.asarray(pc.fill_null(judged, missing).to_numpy(zero_copy_only=False), dtype=bool)


def null_mask(array: Any) -> np.ndarray:
    return np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def offsets_and_data(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets (int64, ``len + 1``) and data bytes of a binary or string array."""
    width = np.int64 if array.type in (BINARY, pa.large_string()) else np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=width)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2] or b"", dtype=np.uint8)
    return offsets.astype(np.int64), data


def number_texts(values: np.ndarray) -> pa.Array:
    """orjson's JSON text of every number of a float64, int64 or uint64 array (no nulls).

    >>> number_texts(np.array([1.0, 0.1, 1e16, -2.5])).to_pylist()
    [b'1.0', b'0.1', b'1e+16', b'-2.5']
    """
    n = len(values)
    if n == 0:
        return pa.array([], BINARY)
    body = np.frombuffer(orjson.dumps(values, option=_NUMPY), dtype=np.uint8)[1:-1]
    commas = np.flatnonzero(body == _COMMA)
    data = np.delete(body, commas)
    offsets = np.concatenate([[0], commas - np.arange(n - 1), [len(data)]], dtype=np.int64)
    return pa.Array.from_buffers(BINARY, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def bool_texts(values: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(values, pa.bool_()), _scalar(b"true"), _scalar(b"false"))


def needs_escape(strings: pa.Array) -> np.ndarray:
    """Positions of the strings that JSON must escape (a quote, backslash or control char)."""
    offsets, data = offsets_and_data(strings)
    used = data[offsets[0] : offsets[-1]]
    bad = (used < _CONTROL_END) | (used == _QUOTE) | (used == _BACKSLASH)
    if not bad.any():
        return np.zeros(0, dtype=np.int64)
    at = np.flatnonzero(bad) + offsets[0]
    return np.unique(np.searchsorted(offsets, at, side="right") - 1)


def string_texts(strings: pa.Array) -> pa.Array:
    """Each string as a JSON string (quoted, escaped as orjson escapes); nulls stay null.

    >>> string_texts(pa.array(["a", None, 'say "hi"'])).to_pylist()
    [b'"a"', None, b'"say \\\\"hi\\\\""']
    """
    strings = strings.cast(pa.large_string())
    texts = quoted(strings)
    escape = needs_escape(strings)
    if len(escape) == 0:
        return texts
    return replaced(texts, escape, [orjson.dumps(v) for v in strings.take(escape).to_pylist()])


def timestamp_texts(utc: np.ndarray) -> pa.Array:
    """UTC datetime64 values (any unit, no NaT) as JSON strings: the one timestamp formatter.

    ``"YYYY-MM-DDTHH:MM:SSZ"``, with as many fractional digits as the value needs (3, 6 or 9).
    Whole seconds come from two small tables (one text per day, one per second of the day)
    gathered with ``take``; the few values with a fraction are numpy's formatting.

    >>> timestamp_texts(np.array(["2024-01-02T03:04:05", "2024-01-02T03:04:05.5"],
    ...                          dtype="datetime64[ms]")).to_pylist()
    [b'"2024-01-02T03:04:05Z"', b'"2024-01-02T03:04:05.500Z"']
    """
    unit = np.datetime_data(utc.dtype)[0]
    seconds = utc.astype("datetime64[s]")
    second_ticks = seconds.view(np.int64)
    second_of_day = second_ticks % 86_400
    days = (second_ticks - second_of_day) // 86_400
    if len(days) and days.max() - days.min() < 4 * len(days):
        first = days.min()  # a table of every day in the range: no sort needed
        uniques, codes = np.arange(first, days.max() + 1), days - first
    else:
        uniques, codes = np.unique(days, return_inverse=True)
    day_texts = pa.array(
        [b'"' + d.encode() + b"T" for d in np.datetime_as_string(uniques.astype("datetime64[D]"))],
        BINARY,
    )
    texts = pc.binary_join_element_wise(
        day_texts.take(pa.array(codes.reshape(-1))),
        _time_table().take(pa.array(second_of_day)),
        _scalar(b""),
    )
    fraction = np.flatnonzero(seconds != utc) if unit != "s" else np.zeros(0, np.int64)
    if len(fraction) == 0:
        return texts
    return replaced(texts, fraction, _fraction_texts(utc[fraction]))


def _fraction_texts(values: np.ndarray) -> list[bytes]:
    """JSON texts of values with a fraction, in the fewest of ms, us or ns digits."""
    ns = (values - values.astype("datetime64[s]")).astype("timedelta64[ns]").view(np.int64)
    out: list[bytes] = [b""] * len(values)
    remaining = np.ones(len(values), dtype=bool)
    for name, step in (("ms", 10**6), ("us", 10**3), ("ns", 1)):
        fits = remaining & (ns % step == 0)
        if fits.any():
            shown = np.datetime_as_string(values[fits], unit=cast(Any, name), timezone="UTC")
            for position, text in zip(np.flatnonzero(fits).tolist(), shown.tolist(), strict=True):
                out[position] = b'"' + text.encode() + b'"'
            remaining &= ~fits
    return out


@functools.cache
def _time_table() -> pa.Array:
    """``HH:MM:SSZ"`` for every second of a day."""
    return pa.array(
        [f'{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"'.encode() for s in range(86_400)],
        BINARY,
    )


def replaced(
    texts: pa.Array, positions: np.ndarray, others: Sequence[bytes] | pa.Array
) -> pa.Array:
    """``texts`` with the values at ``positions`` replaced by ``others``."""
    index = np.arange(len(texts), dtype=np.int64)
    index[positions] = len(texts) + np.arange(len(positions))
    if not isinstance(others, pa.Array):
        others = text_array(others)
    return pa.concat_arrays([texts, others]).take(pa.array(index))


def concat_pieces(pieces: Sequence[bytes | pa.Array], n_rows: int) -> pa.Array:
    """Per row, the pieces concatenated: constant bytes and arrays (which must hold no null).

    One Arrow kernel call for the whole row, constants merged: Arrow's cost is per row and
    argument, so fewer, longer arguments are faster than joining fields one by one.

    >>> concat_pieces([b'{"a":', pa.array([b"1", b"2"], BINARY), b"}"], 2).to_pylist()
    [b'{"a":1}', b'{"a":2}']
    """
    merged: list[bytes | pa.Array] = []
    for piece in pieces:
        if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += piece
        elif not isinstance(piece, bytes) or piece:
            merged.append(piece)
    if not any(isinstance(p, pa.Array) for p in merged):
        return pa.array([b"".join(cast(list[bytes], merged))] * n_rows, BINARY)
    args = [_scalar(p) if isinstance(p, bytes) else p for p in merged]
    if len(args) == 1:
        return args[0]
    return pc.binary_join_element_wise(*args, _scalar(b""))


def drop_byte(texts: pa.Array, rows: np.ndarray, at: int) -> pa.Array:
    """``texts`` with the byte at ``at`` removed in the rows marked by ``rows``."""
    positions = np.flatnonzero(rows)
    if len(positions) == 0:
        return texts
    fixed = pc.binary_replace_slice(texts.take(pa.array(positions)), at, at + 1, b"")
    return replaced(texts, positions, fixed.cast(BINARY))


def json_list(texts: pa.Array) -> bytes:
    """One JSON array of all the texts (null where null), for one ``orjson.loads``.

    >>> json_list(pa.array([b"1", None, b'"a"'], BINARY))
    b'[1,null,"a"]'
    """
    if len(texts) == 0:
        return b"[]"
    listed = concat_pieces([pc.fill_null(texts, _scalar(b"null")), b","], len(texts))
    offsets, data = offsets_and_data(listed)
    return b"[" + data[offsets[0] : offsets[-1] - 1].tobytes() + b"]"


def quoted(strings: pa.Array) -> pa.Array:
    """``"<string>"`` per row, for strings that need no escaping; null stays null."""
    return pc.binary_join_element_wise(
        _scalar(b'"'), strings.cast(BINARY), _scalar(b'"'), _scalar(b"")
    )


def with_nulls(texts: pa.Array, missing: np.ndarray) -> pa.Array:
    if not missing.any():
        return texts
    return pc.if_else(pa.array(missing), pa.scalar(None, BINARY), texts)


def taken(column: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``column`` at ``rows``, each taken from its chunk: Arrow's take of a chunked column of
    texts first joins all its chunks, a copy of the whole column every call.

    >>> taken(pa.chunked_array([["a", "b"], ["c"]]), np.array([2, 0])).to_pylist()
    ['c', 'a']
    """
    chunks = column.chunks
    ends = np.cumsum([len(chunk) for chunk in chunks])
    which = np.searchsorted(ends, rows, side="right")
    order = np.argsort(which, kind="stable")  # the rows chunk by chunk, then as asked
    pieces = [
        chunk.take(pa.array(rows[at] - (ends[k] - len(chunk))))
        for k, chunk in enumerate(chunks)
        if len(at := order[which[order] == k])
    ]
    joined = pa.concat_arrays(pieces) if pieces else pa.array([], column.type)
    back = np.empty(len(rows), dtype=np.int64)
    back[order] = np.arange(len(rows))
    return joined.take(pa.array(back))


def scattered(values: pa.Array, positions: np.ndarray, n: int) -> pa.Array:
    """``values`` (one per position) placed at ``positions`` of ``n`` rows, null elsewhere."""
    where = np.zeros(n, dtype=np.int64)
    where[positions] = np.arange(len(positions))
    absent = np.ones(n, dtype=bool)
    absent[positions] = False
    return values.take(pa.array(where, mask=absent))


_BLAKE2B_8 = hashlib.blake2b(digest_size=8)


def blake2b_hashes(texts: pa.Array) -> np.ndarray:
    """blake2b (8 bytes, read little-endian) of each text as int64; 0 where null."""
    present = texts.drop_null() if texts.null_count else texts
    # Copying a fresh hasher is cheaper than making one (its parameters are set up once):
    # the hashing calls are most of what a sync with a state adds to a dry run.
    fresh, digests = _BLAKE2B_8.copy, bytearray()
    for text in present.to_pylist():
        hasher = fresh()
        hasher.update(text)
        digests += hasher.digest()
    found = np.frombuffer(digests, dtype="<i8").astype(np.int64)
    if not texts.null_count:
        return found
    hashes = np.zeros(len(texts), dtype=np.int64)
    hashes[~null_mask(texts)] = found
    return hashes
