"""Canonical rows -> each person's JSON bytes, content hash and identity key, column by column.

Each column is turned once into one JSON text per row, as an Arrow array (see :mod:`._wire`:
strings, numbers, booleans and timestamps without a Python object per value; any other column
value by value), and a person is the concatenation of its fields' texts, built for the whole
column at once. No dict is built on the way to the wire: :class:`Payloads` holds the bytes
each person is sent as, the same JSON with keys sorted (what content hashes are taken of, so
a state written before this encoder was used still matches), and the identity fields. The
dicts are built only when asked for (``to_people``), a column at a time. A value JSON cannot
hold (inf, bytes, a time span, an arbitrary object) becomes a problem of its row, which is then
not sent.

Conversions, chosen once for the whole package:

- missing values (None, NaN, pd.NA, NaT) are left out of the person; with ``send_nulls=True``
  they are sent as null, except ``userId``, which is never null;
- numpy and pandas scalars become plain ``int``, ``float``, ``bool`` and ``str``; integers must
  fit in 64 bits (JSON readers lose larger ones);
- time-zone-aware timestamps become ISO 8601 in UTC with a ``Z`` (``2024-01-02T03:04:05Z``),
  keeping milli-, micro- or nanoseconds only when present; naive ones raise
  :class:`~flameup_pandas.exceptions.NaiveTimestampError` unless ``naive_timestamps="utc"``;
- dates become ``YYYY-MM-DD``;
- ``Decimal`` becomes a JSON number (a float: digits past ~15 are lost, so convert to ``str``
  first when they matter);
- lists, tuples, numpy arrays and dicts with string keys are sent as JSON arrays and objects;
  missing values inside them become null.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import NaiveTimestampError
from .identity import identity_key_array
from .mapping import trait_name
from .wire import (
    BINARY,
    blake2b_hashes,
    bool_texts,
    concat_pieces,
    drop_byte,
    json_list,
    needs_escape,
    number_texts,
    quoted,
    string_texts,
    text_array,
    timestamp_texts,
    with_nulls,
)

__all__ = [
    "Outgoing",
    "Payloads",
    "as_outgoing",
    "build_people",
    "content_hashes",
    "encode_batch",
    "encode_people",
]

TOP_LEVEL = ("userId", "email", "phone")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_FRACTION_UNITS = (("ms", 10**6), ("us", 10**3), ("ns", 1))
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


class _Unsendable(Exception):
    """A value JSON cannot hold; the message says why."""


@dataclass
class _Converted:
    """One column as JSON-ready Python values (None where missing) and its row problems."""

    values: list[Any]
    missing: np.ndarray
    problems: dict[int, str]


# -- scalar conversion (object columns and nested values) -----------------------------------


def _iso_timestamp(value: dt.datetime, naive: str, label: str) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        if naive != "utc":
            raise _naive_error(label)
        stamp = stamp.tz_localize("UTC")
    utc = stamp.tz_convert("UTC").tz_localize(None).to_datetime64()
    return str(_iso_utc(np.array([utc]))[0])


def _naive_error(label: str) -> NaiveTimestampError:
    return NaiveTimestampError(
        f"column {label!r} holds timestamps without a time zone; localize it "
        "(series.dt.tz_localize(...)) or pass naive_timestamps='utc' to treat them as UTC"
    )


def _scalar(value: Any, naive: str, label: str) -> Any:
    """``value`` as a JSON-ready Python value, or _Unsendable."""
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise _Unsendable(f"{value} does not fit in 64 bits")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Unsendable(f"{value} is not valid JSON")
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return _other_scalar(value, naive, label)


def _other_scalar(value: Any, naive: str, label: str) -> Any:
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else _iso_timestamp(pd.Timestamp(value), naive, label)
    if isinstance(value, np.timedelta64 | dt.timedelta):
        raise _Unsendable("a time span (timedelta) is not valid JSON; convert it first")
    if isinstance(value, np.generic):
        return _scalar(value.item(), naive, label)
    if isinstance(value, str | bool | int | float):
        return _scalar(_plain(value), naive, label)
    if isinstance(value, dt.datetime):
        return _iso_timestamp(value, naive, label)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        if not value.is_finite():
            raise _Unsendable(f"{value} is not valid JSON")
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise _Unsendable("bytes are not valid JSON; decode them to str first")
    if isinstance(value, np.ndarray):
        return _scalar(value.tolist(), naive, label)
    if isinstance(value, list | tuple):
        return [_nested(v, naive, label) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise _Unsendable("a dict with non-string keys is not valid JSON")
        return {str(k): _nested(v, naive, label) for k, v in value.items()}
    raise _Unsendable(f"a {type(value).__name__} value is not valid JSON")


def _plain(value: Any) -> Any:
    """A subclass of str/bool/int/float as the plain type (orjson is strict about these)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _nested(value: Any, naive: str, label: str) -> Any:
    """Inside a list or dict a missing value is a JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return _scalar(value, naive, label)


# -- column conversion ----------------------------------------------------------------------


def _iso_utc(values: np.ndarray) -> np.ndarray:
    """datetime64 values (UTC, any unit) as ISO 8601 strings ending in Z; NaT gives junk.

    numpy's own formatting costs about a microsecond a value, so whole seconds are built from
    two small tables instead: one string per distinct day and one per second of the day.
    """
    unit = np.datetime_data(values.dtype)[0]
    if unit not in _NS_PER_UNIT:
        values = values.astype("datetime64[ns]")
        unit = "ns"
    per_second = 10**9 // _NS_PER_UNIT[unit]
    ticks = np.where(np.isnat(values), 0, values.view(np.int64))
    fraction = ticks % per_second
    seconds = (ticks - fraction) // per_second
    second_of_day = seconds % 86_400
    codes, days = pd.factorize((seconds - second_of_day) // 86_400)
    day_strings = np.char.add(np.datetime_as_string(np.asarray(days, dtype="datetime64[D]")), "T")
    out = np.char.add(day_strings[codes], _time_table()[second_of_day])
    fraction_ns = fraction * _NS_PER_UNIT[unit]
    remaining = fraction != 0
    if remaining.any():
        out = out.astype(object)  # the longer strings would not fit the fixed width
    for name, ns in _FRACTION_UNITS:
        fits = remaining & (fraction_ns % ns == 0)
        if fits.any():
            out[fits] = np.datetime_as_string(values[fits], unit=cast(Any, name), timezone="UTC")
            remaining &= ~fits
    return out


@functools.cache
def _time_table() -> np.ndarray:
    """ "HH:MM:SSZ" for every second of a day."""
    return np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86_400)])


def _with_nones(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    if not missing.any():
        return values.tolist()  # type: ignore[no-any-return]
    out = values.astype(object)
    out[missing] = None
    return out.tolist()  # type: ignore[no-any-return]


def _problems_at(positions: np.ndarray, label: str, why: str) -> dict[int, str]:
    return {int(p): f"{label}: {why}" for p in positions}


def _floats(values: np.ndarray, label: str) -> _Converted:
    missing = np.isnan(values)
    infinite = np.isinf(values)
    problems: dict[int, str] = {}
    if infinite.any():
        for p in np.flatnonzero(infinite):
            problems[int(p)] = f"{label}: {values[p]} is not valid JSON"
        missing = missing | infinite
    return _Converted(_with_nones(values, missing), missing, problems)


def _datetimes(series: pd.Series, naive: str, label: str) -> _Converted:
    missing = series.isna().to_numpy(dtype=bool)
    if series.dt.tz is None:
        if naive != "utc" and not missing.all():
            raise _naive_error(label)
        utc = series
    else:
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return _Converted(_with_nones(_iso_utc(utc.to_numpy()), missing), missing, {})


def _missing_objects(values: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(pd.isna(values), dtype=bool)
    except ArithmeticError:  # a signalling-NaN Decimal, on which pandas' isna raises
        return np.array([_scalar_missing(v) for v in values], dtype=bool)


def _scalar_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating | Decimal):
        return bool(value.is_nan()) if isinstance(value, Decimal) else bool(np.isnan(value))
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return False


def _objects(values: np.ndarray, naive: str, label: str) -> _Converted:
    """Any Python objects, one by one (only for columns no faster path fits)."""
    missing = _missing_objects(values)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "boolean", "empty"):
        return _verified(_with_nones(values, missing), missing, naive, label)
    out: list[Any] = [None] * len(values)
    problems: dict[int, str] = {}
    for position, (value, absent) in enumerate(zip(values.tolist(), missing.tolist(), strict=True)):
        if absent:
            continue
        try:
            out[position] = _scalar(value, naive, label)
        except _Unsendable as why:
            problems[position] = f"{label}: {why}"
    return _verified(out, missing, naive, label, problems)


def _verified(
    values: list[Any],
    missing: np.ndarray,
    naive: str,
    label: str,
    problems: dict[int, str] | None = None,
) -> _Converted:
    """Check with one orjson call that the column encodes; find the culprits when not."""
    problems = problems or {}
    try:
        orjson.dumps(values)
    except (TypeError, orjson.JSONEncodeError):
        for position, value in enumerate(values):
            if position in problems or value is None:
                continue
            try:
                orjson.dumps(value)
            except (TypeError, orjson.JSONEncodeError) as error:
                problems[position] = f"{label}: not valid JSON ({error})"
    if problems:
        positions = np.fromiter(problems, dtype=np.int64, count=len(problems))
        missing = missing.copy()
        missing[positions] = True
        for position in problems:
            values[position] = None
    return _Converted(values, missing, problems)


def _masked(series: pd.Series, label: str) -> _Converted:
    """Nullable numbers and booleans (pandas' masked or arrow-backed)."""
    missing = series.isna().to_numpy(dtype=bool)
    kind = series.dtype.kind
    if kind == "f":
        return _floats(series.to_numpy(dtype=np.float64, na_value=np.nan), label)
    numpy_dtype = {"b": np.bool_, "u": np.uint64, "i": np.int64}[kind]
    values = series.to_numpy(dtype=numpy_dtype, na_value=numpy_dtype(0))
    return _Converted(_with_nones(values, missing), missing, {})


def _arrow(series: pd.Series, naive: str, label: str) -> _Converted:
    pa_type = cast(pd.ArrowDtype, series.dtype).pyarrow_dtype
    if (
        pa.types.is_integer(pa_type)
        or pa.types.is_floating(pa_type)
        or pa.types.is_boolean(pa_type)
    ):
        return _masked(series, label)
    if pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type):
        missing = series.isna().to_numpy(dtype=bool)
        return _Converted(_object_values(series), missing, {})
    if pa.types.is_timestamp(pa_type):
        tz = pa_type.tz
        target: Any = pd.DatetimeTZDtype(pa_type.unit, tz) if tz else f"datetime64[{pa_type.unit}]"
        return _datetimes(series.astype(target), naive, label)
    values = np.empty(len(series), dtype=object)
    values[:] = pa.array(series.array).to_pylist()
    return _objects(values, naive, label)


def _object_values(series: pd.Series) -> list[Any]:
    """A string column's values as Python objects, None where missing."""
    values: list[Any] = cast(Any, series).to_numpy(dtype=object, na_value=None).tolist()
    return values


def _categorical(series: pd.Series, naive: str, label: str) -> _Converted:
    categories = _convert(pd.Series(series.cat.categories), naive, label)
    codes = series.cat.codes.to_numpy()
    missing = codes < 0
    table = np.array([*categories.values, None], dtype=object)
    values = table[np.where(missing, len(categories.values), codes)].tolist()
    problems: dict[int, str] = {}
    if categories.problems:
        bad = np.fromiter(categories.problems, dtype=np.int64)
        for position in np.flatnonzero(np.isin(codes, bad)):
            problems[int(position)] = categories.problems[int(codes[position])]
        missing = missing | np.isin(codes, bad)
    return _Converted(values, missing, problems)


def _convert(series: pd.Series, naive: str, label: str) -> _Converted:
    """One column as JSON-ready values, by the fastest path its dtype allows."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(series, naive, label)
    if isinstance(dtype, pd.SparseDtype):
        return _convert(cast(Any, series).sparse.to_dense(), naive, label)
    if isinstance(dtype, pd.ArrowDtype):
        return _arrow(series, naive, label)
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return _datetimes(series, naive, label)
    if dtype.kind == "m":
        missing = series.isna().to_numpy(dtype=bool)
        why = "a time span (timedelta) is not valid JSON; convert it first"
        problems = _problems_at(np.flatnonzero(~missing), label, why)
        return _Converted([None] * len(series), np.ones(len(series), dtype=bool), problems)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        missing = series.isna().to_numpy(dtype=bool)
        values = _object_values(series)
        if getattr(dtype, "storage", "pyarrow") == "pyarrow":
            return _Converted(values, missing, {})
        return _verified(values, missing, naive, label)
    if isinstance(dtype, np.dtype) and dtype.kind in "biu":
        numbers = series.to_numpy()
        return _Converted(numbers.tolist(), np.zeros(len(numbers), dtype=bool), {})
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return _floats(series.to_numpy(), label)
    if pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "biuf":
        return _masked(series, label)
    return _objects(series.to_numpy(dtype=object), naive, label)


def _require_strings(converted: _Converted, label: str) -> None:
    """Top-level fields are strings; anything else is a problem of its row."""
    for position, value in enumerate(converted.values):
        if value is not None and type(value) is not str:
            converted.problems.setdefault(position, f"{label}: not a string ({value!r})")


# -- one column as JSON text ----------------------------------------------------------------


@dataclass
class _Texts:
    """One column as JSON texts per row (null where missing or unsendable) and its problems.

    When ``quote`` is set, ``texts`` holds plain strings that need no escaping and each JSON
    text is the string in quotes (added while the person is assembled, not in a pass of its
    own). ``sorted_texts`` differs from the JSON texts only for values holding objects, whose
    keys a content hash takes in sorted order; ``strings`` keeps a string column's values
    (userId and email are read from it for identities and results).
    """

    texts: pa.Array
    missing: np.ndarray
    problems: dict[int, str]
    sorted_texts: pa.Array | None = None
    strings: pa.Array | None = None
    quote: bool = False

    def json(self) -> pa.Array:
        """The JSON text per row, null where missing."""
        return quoted(self.texts) if self.quote else self.texts


def _string_array(series: pd.Series) -> pa.Array | None:
    """A string column as an Arrow array (missing as null), or None when it is not one."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        if not (pa.types.is_string(pa_type) or pa.types.is_large_string(pa_type)):
            return None
    elif pd.api.types.is_object_dtype(dtype):
        if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
            return None
    elif not (pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)):
        return None
    try:
        strings = pa.array(series, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError, TypeError, ValueError):
        return None  # lone surrogates and the like: the general path reports them
    if isinstance(strings, pa.ChunkedArray):
        return strings.combine_chunks()
    return strings


def _strings_texts(strings: pa.Array) -> _Texts:
    missing = np.asarray(strings.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if len(needs_escape(strings)):
        return _Texts(string_texts(strings), missing, {}, strings=strings)
    return _Texts(strings.cast(BINARY), missing, {}, strings=strings, quote=True)


def _number_texts(values: np.ndarray, missing: np.ndarray, label: str) -> _Texts:
    problems: dict[int, str] = {}
    if values.dtype.kind == "f":
        infinite = np.isinf(values)
        for p in np.flatnonzero(infinite).tolist():
            problems[p] = f"{label}: {values[p]} is not valid JSON"
        missing = missing | infinite
        values = np.where(missing, 0.0, values)
    texts = bool_texts(values) if values.dtype.kind == "b" else number_texts(values)
    return _Texts(with_nulls(texts, missing), missing, problems)


def _numpy_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Numbers and booleans (numpy, masked or arrow-backed) as numpy values and a missing mask."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        if not (
            pa.types.is_integer(pa_type)
            or pa.types.is_floating(pa_type)
            or pa.types.is_boolean(pa_type)
        ):
            return None
    elif not (
        dtype.kind in "biuf"
        and (isinstance(dtype, np.dtype) or pd.api.types.is_extension_array_dtype(dtype))
    ):
        return None
    kind = dtype.kind
    target = {"b": np.bool_, "u": np.uint64, "i": np.int64, "f": np.float64}[kind]
    if isinstance(dtype, np.dtype):
        values: np.ndarray = series.to_numpy().astype(target, copy=False)
        missing = np.isnan(values) if kind == "f" else np.zeros(len(values), dtype=bool)
        return values, missing
    missing = series.isna().to_numpy(dtype=bool)
    fill = np.nan if kind == "f" else target(0)
    return series.to_numpy(dtype=target, na_value=fill), missing


def _timestamp_texts(series: pd.Series, naive: str, label: str) -> _Texts | None:
    """Datetime columns (numpy, tz-aware or arrow-backed) as ISO 8601 UTC texts."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        if not pa.types.is_timestamp(pa_type):
            return None
        tz = pa_type.tz
        target: Any = pd.DatetimeTZDtype(pa_type.unit, tz) if tz else f"datetime64[{pa_type.unit}]"
        series = series.astype(target)
    elif not (isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M"):
        return None
    missing = series.isna().to_numpy(dtype=bool)
    if series.dt.tz is None:
        if naive != "utc" and not missing.all():
            raise _naive_error(label)
        utc = series.to_numpy()
    else:
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    whole = utc.astype("datetime64[s]") == utc
    if not whole[~missing].all():
        return None  # sub-second values: numpy's formatting, row by row (see _iso_utc)
    texts = timestamp_texts(np.where(missing, np.datetime64(0, "s"), utc))
    return _Texts(with_nulls(texts, missing), missing, {})


def _categorical_texts(series: pd.Series, naive: str, label: str, top: bool) -> _Texts:
    categories = _column_texts(pd.Series(series.cat.categories), naive, label, top)
    codes = series.cat.codes.to_numpy()
    missing = codes < 0
    problems: dict[int, str] = {}
    if categories.problems:
        bad = np.fromiter(categories.problems, dtype=np.int64)
        hit = np.isin(codes, bad)
        for position in np.flatnonzero(hit).tolist():
            problems[position] = categories.problems[int(codes[position])]
        missing = missing | hit
    take = pa.array(np.where(missing, 0, codes), mask=missing)

    def pick(texts: pa.Array | None) -> pa.Array | None:
        return None if texts is None else texts.take(take)

    return _Texts(
        texts=categories.texts.take(take),
        missing=missing,
        problems=problems,
        sorted_texts=pick(categories.sorted_texts),
        strings=pick(categories.strings),
        quote=categories.quote,
    )


def _general_texts(series: pd.Series, naive: str, label: str, top: bool) -> _Texts:
    """Any other column, value by value through the Python conversion (see _convert)."""
    converted = _convert(series, naive, label)
    if top:
        _require_strings(converted, label)
    dumps, sort = orjson.dumps, orjson.OPT_SORT_KEYS
    texts: list[bytes | None] = []
    sorted_texts: list[bytes | None] = []
    nested = False
    for position, value in enumerate(converted.values):
        if value is None or position in converted.problems:
            texts.append(None)
            sorted_texts.append(None)
            continue
        texts.append(dumps(value))
        if isinstance(value, dict | list):
            nested = True
            sorted_texts.append(dumps(value, option=sort))
        else:
            sorted_texts.append(texts[-1])
    strings = None
    if top:
        strings = pa.array(
            [v if isinstance(v, str) else None for v in converted.values], pa.large_string()
        )
    return _Texts(
        texts=text_array(texts),
        missing=converted.missing,
        problems=converted.problems,
        sorted_texts=text_array(sorted_texts) if nested else None,
        strings=strings,
    )


def _column_texts(series: pd.Series, naive: str, label: str, top: bool) -> _Texts:
    """One column as JSON texts, by the fastest path its dtype allows.

    Strings, numbers, booleans and whole-second timestamps are encoded column-wise (see
    :mod:`._wire`); anything else goes value by value. A top-level field must hold strings,
    so only string columns take a fast path there.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_texts(series, naive, label, top)
    if isinstance(dtype, pd.SparseDtype):
        return _column_texts(cast(Any, series).sparse.to_dense(), naive, label, top)
    strings = _string_array(series)
    if strings is not None:
        return _strings_texts(strings)
    if not top:
        numbers = _numpy_numbers(series)
        if numbers is not None:
            return _number_texts(*numbers, label)
        stamps = _timestamp_texts(series, naive, label)
        if stamps is not None:
            return stamps
    return _general_texts(series, naive, label, top)


# -- assembly -------------------------------------------------------------------------------


@dataclass
class _Column:
    key: str
    is_trait: bool
    texts: _Texts


def _columns(canonical: pd.DataFrame, naive: str) -> list[_Column]:
    out = []
    for position, name in enumerate(canonical.columns):
        name = str(name)
        series = canonical.iloc[:, position]
        is_trait = name not in TOP_LEVEL
        label = f"traits.{trait_name(name)}" if is_trait else name
        texts = _column_texts(series, naive, label, not is_trait)
        out.append(_Column(trait_name(name) if is_trait else name, is_trait, texts))
    return out


def _field(column: _Column, first: bool, send_nulls: bool, in_sorted: bool) -> list[Any]:
    """The pieces of ``,"key":value`` (no comma when ``first``) per row; empty where missing."""
    texts = column.texts
    head = (b"" if first else b",") + orjson.dumps(column.key) + b":"
    values, quote = texts.texts, b'"' if texts.quote else b""
    if in_sorted and texts.sorted_texts is not None:
        values, quote = texts.sorted_texts, b""
    missing = texts.missing.any() or values.null_count > 0
    if missing and send_nulls and column.key != "userId":
        nulls = pa.scalar(b"null", BINARY)
        values = pc.fill_null(values if not quote else texts.json(), nulls)
        return [head, values]
    if not missing:
        return [head + quote, values, quote]
    piece = concat_pieces([head + quote, values, quote], len(values))
    return [pc.fill_null(piece, pa.scalar(b"", BINARY))]


def _present(column: _Column, send_nulls: bool) -> np.ndarray:
    """Rows where the column's field is written (a missing value too, as null, with send_nulls)."""
    if send_nulls and column.key != "userId":
        return np.ones(len(column.texts.missing), dtype=bool)
    return ~column.texts.missing


def _object(columns: Sequence[_Column], n_rows: int, send_nulls: bool, in_sorted: bool) -> pa.Array:
    """``{...}`` of the columns' fields per row, missing ones left out.

    Each field but the first starts with a comma; rows whose first field is missing would
    then open with ``{,``, so that comma is dropped in those rows alone.
    """
    if in_sorted:
        columns = sorted(columns, key=lambda c: c.key)
    pieces: list[Any] = [b"{"]
    for index, column in enumerate(columns):
        pieces += _field(column, index == 0, send_nulls, in_sorted)
    pieces.append(b"}")
    texts = concat_pieces(pieces, n_rows)
    if len(columns) > 1:
        first_missing = ~_present(columns[0], send_nulls)
        later = np.logical_or.reduce([_present(c, send_nulls) for c in columns[1:]])
        texts = drop_byte(texts, first_missing & later, 1)
    return texts


def _people_texts(
    columns: list[_Column], n_rows: int, dropped: np.ndarray, send_nulls: bool, in_sorted: bool
) -> pa.Array:
    """Each row's person as JSON (keys in canonical or sorted order); null where dropped.

    The traits object is built first and then placed like one more top-level field.
    """
    top = [c for c in columns if not c.is_trait]
    traits = [c for c in columns if c.is_trait]
    if traits:
        inner = _object(traits, n_rows, send_nulls, in_sorted)
        absent = np.zeros(n_rows, dtype=bool)
        if not send_nulls:
            absent = np.logical_and.reduce([c.texts.missing for c in traits])
        texts = _Texts(with_nulls(inner, absent), absent, {})
        top = [*top, _Column("traits", False, texts)]
    return with_nulls(_object(top, n_rows, send_nulls, in_sorted), dropped)


def _record_maker(top: Sequence[str], traits: Sequence[str]) -> Callable[..., dict[str, Any]]:
    """A function building one person from its column values, in canonical order.

    Generated so that CPython builds each dict from a literal, the fastest way it can; keys
    are passed in as constants, never pasted into the source.
    """
    namespace: dict[str, Any] = {}
    params = [f"a{i}" for i in range(len(top) + len(traits))]
    top_items = [f"K{i}: a{i}" for i in range(len(top))]
    trait_items = [f"K{i}: a{i}" for i in range(len(top), len(params))]
    for i, key in enumerate([*top, *traits]):
        namespace[f"K{i}"] = key
    if traits:
        namespace["T"] = "traits"
        top_items.append("T: {" + ", ".join(trait_items) + "}")
    source = f"def make({', '.join(params)}):\n    return {{{', '.join(top_items)}}}\n"
    exec(compile(source, "<flameup_pandas record maker>", "exec"), namespace)
    maker: Callable[..., dict[str, Any]] = namespace["make"]
    return maker


def _python_values(texts: _Texts) -> list[Any]:
    """A column's values as Python objects (None where missing), decoded in one call."""
    if texts.quote and texts.strings is not None:
        values: list[Any] = texts.strings.to_pylist()
        return values
    decoded: list[Any] = orjson.loads(json_list(texts.texts))
    return decoded


def _drop_missing(
    people: list[Any], columns: list[_Column], dropped: np.ndarray, send_nulls: bool
) -> None:
    """Take missing values out of the people (or leave them as null with send_nulls)."""
    for column in columns:
        if send_nulls and column.key != "userId":
            continue
        for position in np.flatnonzero(column.texts.missing & ~dropped).tolist():
            person = people[position]
            del (person["traits"] if column.is_trait else person)[column.key]
    traits = [c for c in columns if c.is_trait]
    if traits and not send_nulls:
        present = np.zeros(len(people), dtype=np.int64)
        for column in traits:
            present += ~column.texts.missing
        for position in np.flatnonzero((present == 0) & ~dropped).tolist():
            del people[position]["traits"]


def _people_dicts(
    columns: list[_Column], n_rows: int, dropped: np.ndarray, send_nulls: bool
) -> list[dict[str, Any] | None]:
    """Each row's person as a dict (None where dropped), from its columns' values.

    The same dicts as decoding each person's bytes, but a column at a time: one decode per
    column and one dict literal per row, which is what :func:`to_people` costs.
    """
    top = [c for c in columns if not c.is_trait]
    traits = [c for c in columns if c.is_trait]
    maker = _record_maker([c.key for c in top], [c.key for c in traits])
    with _gc_paused():
        if columns:
            people: list[Any] = list(map(maker, *(_python_values(c.texts) for c in top + traits)))
        else:
            people = [{} for _ in range(n_rows)]
        _drop_missing(people, columns, dropped, send_nulls)
    for position in np.flatnonzero(dropped).tolist():
        people[position] = None
    return people


def _top_strings(columns: list[_Column], key: str, n_rows: int, dropped: np.ndarray) -> pa.Array:
    for column in columns:
        if column.key == key and not column.is_trait and column.texts.strings is not None:
            strings = column.texts.strings
            return pc.if_else(pa.array(dropped), pa.scalar(None, pa.large_string()), strings)
    return pa.nulls(n_rows, pa.large_string())


def _identity_missing(columns: list[_Column], n_rows: int) -> np.ndarray:
    has = np.zeros(n_rows, dtype=bool)
    for column in columns:
        if not column.is_trait and column.key in ("userId", "email"):
            has |= ~column.texts.missing
    return ~has


def encode_people(
    canonical: pd.DataFrame,
    *,
    skip: np.ndarray | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> Payloads:
    """Each row's person as the JSON bytes it will be sent as, built column by column.

    ``skip`` marks rows not to build (already invalid): they get no person. Rows with a value
    JSON cannot hold get none either, with the reason in ``problems``.

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "score": [1.5, float("inf")],
    ...                       "plan": ["pro", None]})
    >>> payloads = encode_people(frame)
    >>> payloads.wire.to_pylist()
    [b'{"userId":"u1","traits":{"score":1.5,"plan":"pro"}}', None]
    >>> payloads.problems
    {1: 'traits.score: inf is not valid JSON'}
    """
    n_rows = len(canonical)
    skipped = np.zeros(n_rows, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    columns = _columns(canonical, naive_timestamps)
    problems: dict[int, list[str]] = {}
    for column in columns:
        for position, why in column.texts.problems.items():
            if not skipped[position]:
                problems.setdefault(position, []).append(why)
    for position in np.flatnonzero(_identity_missing(columns, n_rows) & ~skipped).tolist():
        problems.setdefault(position, []).append("no userId or email")
    dropped = skipped.copy()
    dropped[list(problems)] = True
    return Payloads(
        present=~dropped,
        wire_by=functools.partial(_people_texts, columns, n_rows, dropped, send_nulls, False),
        user_ids=_top_strings(columns, "userId", n_rows, dropped),
        emails=_top_strings(columns, "email", n_rows, dropped),
        problems={p: "; ".join(why) for p, why in sorted(problems.items())},
        sorted_by=functools.partial(_people_texts, columns, n_rows, dropped, send_nulls, True),
        people_by=functools.partial(_people_dicts, columns, n_rows, dropped, send_nulls),
    )


class Outgoing(NamedTuple):
    """One person on its way: the JSON bytes sent, and the identity its answer is matched by."""

    json: bytes
    user_id: str | None
    email: str | None


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while decoding a million acyclic dicts.

    Every few hundred new dicts would otherwise trigger a collection that walks all of them,
    which more than doubles the time; dicts of plain values hold no cycles to collect.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Payloads:
    """The people of a frame as columns, by row position, and why some cannot be sent.

    ``present[i]`` says whether row ``i`` has a person (not when it was skipped or has a value
    that cannot be sent: ``problems[i]`` says why for the latter); ``user_ids`` and ``emails``
    are its identity fields as sent. Built only when first asked for, each from the columns:
    :attr:`wire`, each person's JSON bytes as sent (by ``wire_by``); :attr:`hashed`, the
    same with keys sorted, which content hashes are taken of (by ``sorted_by``); and
    :attr:`people`, the dicts (by ``people_by``, else decoded from the bytes).
    """

    present: np.ndarray
    user_ids: pa.Array
    emails: pa.Array
    problems: dict[int, str] = field(default_factory=dict)
    wire_by: Callable[[], pa.Array] | None = field(default=None, repr=False, compare=False)
    sorted_by: Callable[[], pa.Array] | None = field(default=None, repr=False, compare=False)
    people_by: Callable[[], list[dict[str, Any] | None]] | None = field(
        default=None, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.present)

    @functools.cached_property
    def wire(self) -> pa.Array:
        """Each person's JSON bytes as sent (null where the row has no person)."""
        if self.wire_by is None:
            return pa.nulls(len(self), BINARY)
        return self.wire_by()

    @functools.cached_property
    def hashed(self) -> pa.Array:
        """Each person's JSON with keys sorted (what :func:`content_hashes` takes)."""
        if self.sorted_by is None:
            raise ValueError("these payloads were made without their sorted JSON")
        return self.sorted_by()

    @functools.cached_property
    def people(self) -> list[dict[str, Any] | None]:
        """The person dicts (None where there is none): from the columns, or the bytes."""
        if self.people_by is not None:
            return self.people_by()
        texts = self.wire.to_pylist()
        present = [t for t in texts if t is not None]
        with _gc_paused():
            decoded = iter(orjson.loads(b"[" + b",".join(present) + b"]"))
            return [None if t is None else next(decoded) for t in texts]

    def _made(self, name: str) -> bool:
        return name in self.__dict__  # a cached property already computed

    def take(self, positions: np.ndarray) -> Payloads:
        """The rows at ``positions``, as payloads of their own, with their bytes.

        Problems are not carried, nor the sorted JSON unless it was already made (the part
        must not hold on to the whole).
        """
        positions = np.asarray(positions, dtype=np.int64)
        take = pa.array(positions)
        wire = self.wire.take(take) if len(positions) else pa.array([], BINARY)
        hashed = self.hashed.take(take) if self._made("hashed") else None
        return Payloads(
            self.present[positions],
            self.user_ids.take(take),
            self.emails.take(take),
            wire_by=lambda: wire,
            sorted_by=None if hashed is None else lambda: hashed,
        )

    @staticmethod
    def concat(parts: Sequence[Payloads]) -> Payloads:
        """One payloads of several, in order (problems are not carried; see :meth:`take`)."""

        def joined(name: str, kind: pa.DataType) -> pa.Array:
            arrays = [getattr(p, name) for p in parts]
            return pa.concat_arrays(arrays) if arrays else pa.array([], kind)

        made = all(p._made("hashed") for p in parts)
        wire = joined("wire", BINARY)
        return Payloads(
            np.concatenate([np.zeros(0, dtype=bool), *(p.present for p in parts)]),
            joined("user_ids", pa.large_string()),
            joined("emails", pa.large_string()),
            wire_by=lambda: wire,
            sorted_by=functools.partial(joined, "hashed", BINARY) if made else None,
        )

    def keys(self) -> pa.Array:
        """Each person's identity key (``u:<userId>``, else ``e:<email lower-cased>``)."""
        return identity_key_array(self.user_ids, self.emails)

    def content_hashes(self, positions: np.ndarray | None = None) -> np.ndarray:
        """:func:`content_hashes` of the people (at ``positions``), from their bytes."""
        every = positions is None or len(positions) == len(self)  # positions are sorted
        hashed = self.hashed if every else self.hashed.take(pa.array(positions))
        return blake2b_hashes(hashed)

    def outgoing(self, positions: Sequence[int] | np.ndarray) -> list[Outgoing]:
        """The people at ``positions`` as they go out (each must have a person)."""
        take = pa.array(np.asarray(positions, dtype=np.int64))
        return list(
            map(
                Outgoing,
                self.wire.take(take).to_pylist(),
                self.user_ids.take(take).to_pylist(),
                self.emails.take(take).to_pylist(),
            )
        )


def build_people(
    canonical: pd.DataFrame,
    *,
    skip: np.ndarray | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> Payloads:
    """:func:`encode_people`; its ``people`` are the dicts exactly as they will be sent.

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "score": [1.5, float("inf")],
    ...                       "plan": ["pro", None]})
    >>> payloads = build_people(frame)
    >>> payloads.people
    [{'userId': 'u1', 'traits': {'score': 1.5, 'plan': 'pro'}}, None]
    >>> payloads.problems
    {1: 'traits.score: inf is not valid JSON'}
    """
    return encode_people(
        canonical, skip=skip, send_nulls=send_nulls, naive_timestamps=naive_timestamps
    )


# -- bodies, hashes, identities -------------------------------------------------------------


def as_outgoing(person: Mapping[str, Any] | Outgoing) -> Outgoing:
    """A person dict as it goes out (an :class:`Outgoing` is returned as it is)."""
    if isinstance(person, Outgoing):
        return person
    user_id, email = person.get("userId"), person.get("email")
    return Outgoing(
        orjson.dumps(person),
        None if user_id is None else str(user_id),
        None if not email else str(email),
    )


def encode_batch(people: Sequence[Mapping[str, Any] | Outgoing]) -> bytes:
    """The JSON body of one batch request: the people's bytes, joined.

    >>> encode_batch([{"userId": "u1"}])
    b'{"people":[{"userId":"u1"}]}'
    """
    return b'{"people":[' + b",".join(as_outgoing(p).json for p in people) + b"]}"


def content_hashes(people: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """A stable int64 fingerprint per person (0 for None), to tell changed people apart.

    blake2b (8 bytes) of the person's JSON with sorted keys, read little-endian: the same on
    every machine, process and version. :meth:`Payloads.content_hashes` gives the same from
    the column-built bytes.

    >>> content_hashes([{"userId": "u1"}, None]).tolist()
    [7249378761026338362, 0]
    """
    dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS
    return blake2b_hashes(
        text_array([None if p is None else dumps(p, option=option) for p in people])
    )
