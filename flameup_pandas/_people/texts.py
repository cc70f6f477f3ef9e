"""One column -> one JSON text per row, by the fastest path its type allows.

Strings, numbers, booleans and whole-second timestamps are written column-wise (see
:mod:`flameup_pandas._people.wire`); every other column goes value by value through the
rules of :mod:`flameup_pandas._people.values`. Both give the same text for the same value:
the column-wise paths are only faster ways to apply the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .values import Converted, convert, utc_instants
from .wire import (
    BINARY,
    bool_texts,
    needs_escape,
    number_texts,
    quoted,
    string_texts,
    text_array,
    timestamp_texts,
    with_nulls,
)

__all__ = ["Texts", "column_texts"]


@dataclass
class Texts:
    """One column as JSON texts per row (null where missing or unsendable) and its problems.

    When ``quote`` is set, ``texts`` holds plain strings that need no escaping and each JSON
    text is the string in quotes (added while the person is assembled, not in a pass of its
    own). ``sorted_texts`` differs from the JSON texts only for values holding objects, whose
    keys a content hash takes in sorted order; ``strings`` keeps a string column's values
    (userId and email are read from it for identities and results); ``values`` keeps the
    Python values of a column converted value by value (what ``to_people`` shows).
    """

    texts: pa.Array
    missing: np.ndarray
    problems: dict[int, str]
    sorted_texts: pa.Array | None = None
    strings: pa.Array | None = None
    quote: bool = False
    values: list[Any] | None = None

    def json(self) -> pa.Array:
        """The JSON text per row, null where missing."""
        return quoted(self.texts) if self.quote else self.texts


def column_texts(series: pd.Series, naive: str, label: str, top: bool) -> Texts:
    """One column as JSON texts, by the fastest path its dtype allows.

    A top-level field must hold strings, so only string columns take a fast path there.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_dictionary(dtype.pyarrow_dtype):
        series = _decoded(series)
        dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_texts(series, naive, label, top)
    if isinstance(dtype, pd.SparseDtype):
        return column_texts(cast(Any, series).sparse.to_dense(), naive, label, top)
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


def _decoded(series: pd.Series) -> pd.Series:
    """An Arrow dictionary column as a categorical (the values it stands for)."""
    array = pa.array(series.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pd.Series(array.to_pandas(), index=series.index)


_STRING_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
_NUMBER_TYPES = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)


def _arrow_type_is(dtype: pd.ArrowDtype, kinds: tuple[Callable[[Any], bool], ...]) -> bool:
    """Whether an Arrow-backed column's type is one of ``kinds`` (``pa.types`` predicates)."""
    return any(kind(dtype.pyarrow_dtype) for kind in kinds)


def _string_array(series: pd.Series) -> pa.Array | None:
    """A string column as an Arrow array (missing as null), or None when it is not one."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        if not _arrow_type_is(dtype, _STRING_TYPES):
            return None
    elif pd.api.types.is_object_dtype(dtype):
        if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
            return None
    elif not (pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)):
        return None
    try:
        strings = pa.array(series, from_pandas=True).cast(pa.large_string())
    except (pa.ArrowException, UnicodeError, TypeError, ValueError):
        return None  # lone surrogates and the like: the general path reports them
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if strings.offset:
        # a slice (a chunk of a larger batch, df.iloc[5:]) starts at offset 0 here: pyarrow 20's
        # if_else and casts of a sliced large_string give garbage
        return pa.concat_arrays([strings])
    return strings


def _strings_texts(strings: pa.Array) -> Texts:
    missing = np.asarray(strings.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if len(needs_escape(strings)):
        return Texts(string_texts(strings), missing, {}, strings=strings)
    return Texts(strings.cast(BINARY), missing, {}, strings=strings, quote=True)


def _number_texts(values: np.ndarray, missing: np.ndarray, label: str) -> Texts:
    problems: dict[int, str] = {}
    if values.dtype.kind == "f":
        infinite = np.isinf(values)
        for p in np.flatnonzero(infinite).tolist():
            problems[p] = f"{label}: {values[p]} is not valid JSON"
        missing = missing | infinite
        values = np.where(missing, values.dtype.type(0), values)
    texts = bool_texts(values) if values.dtype.kind == "b" else number_texts(values)
    return Texts(with_nulls(texts, missing), missing, problems)


def _numpy_numbers(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Numbers and booleans (numpy, masked or Arrow) as numpy values and a missing mask.

    Integers stay integers of their own signedness whatever nulls stand beside them; floats
    keep their width (a float32 is written as the shortest text of the float32); NaN is
    missing as null is.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        if not _arrow_type_is(dtype, _NUMBER_TYPES):
            return None
    elif not (
        dtype.kind in "biuf"
        and (isinstance(dtype, np.dtype) or pd.api.types.is_extension_array_dtype(dtype))
    ):
        return None
    kind = dtype.kind
    target: Any = {"b": np.bool_, "u": np.uint64, "i": np.int64, "f": np.float64}[kind]
    if kind == "f" and _float_width(series) < 8:
        target = np.float32
    if isinstance(dtype, np.dtype):
        values: np.ndarray = series.to_numpy().astype(target, copy=False)
        missing = np.isnan(values) if kind == "f" else np.zeros(len(values), dtype=bool)
        return values, missing
    if kind == "f":
        values = series.to_numpy(dtype=target, na_value=np.nan)
        return values, np.isnan(values)
    missing = series.isna().to_numpy(dtype=bool)
    return series.to_numpy(dtype=target, na_value=target(0)), missing


def _float_width(series: pd.Series) -> int:
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        return int(dtype.pyarrow_dtype.bit_width // 8)
    numpy_type: Any = getattr(dtype, "numpy_dtype", dtype)
    return int(np.dtype(numpy_type).itemsize)


def _timestamp_texts(series: pd.Series, naive: str, label: str) -> Texts | None:
    """Datetime columns (numpy, tz-aware or arrow-backed) as ISO 8601 UTC texts."""
    stamps = utc_instants(series, naive, label)
    if stamps is None:
        return None
    utc, missing = stamps
    whole = utc.astype("datetime64[s]") == utc
    if not whole[~missing].all():
        return None  # sub-second values: numpy's formatting, row by row (see values.iso_utc)
    texts = timestamp_texts(np.where(missing, np.datetime64(0, "s"), utc))
    return Texts(with_nulls(texts, missing), missing, {})


def _categorical_texts(series: pd.Series, naive: str, label: str, top: bool) -> Texts:
    categories = column_texts(pd.Series(series.cat.categories), naive, label, top)
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

    return Texts(
        texts=categories.texts.take(take),
        missing=missing,
        problems=problems,
        sorted_texts=pick(categories.sorted_texts),
        strings=pick(categories.strings),
        quote=categories.quote,
        values=None if categories.values is None else _taken(categories.values, codes, missing),
    )


def _taken(values: list[Any], codes: np.ndarray, missing: np.ndarray) -> list[Any]:
    table = np.empty(len(values) + 1, dtype=object)
    table[: len(values)] = values
    return table[np.where(missing, len(values), codes)].tolist()  # type: ignore[no-any-return]


def _require_strings(converted: Converted, label: str) -> None:
    """Top-level fields are strings; anything else is a problem of its row."""
    for position, value in enumerate(converted.values):
        if value is not None and type(value) is not str:
            shown = (
                orjson.dumps(value).decode() if isinstance(value, orjson.Fragment) else repr(value)
            )
            converted.problems.setdefault(position, f"{label}: not a string ({shown})")


def _general_texts(series: pd.Series, naive: str, label: str, top: bool) -> Texts:
    """Any other column, value by value through the rules of :mod:`.values`."""
    converted = convert(series, naive, label)
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
    missing = converted.missing
    return Texts(
        texts=text_array(texts),
        missing=missing,
        problems=converted.problems,
        sorted_texts=text_array(sorted_texts) if nested else None,
        strings=strings,
        values=[None if missing[p] else v for p, v in enumerate(converted.values)],
    )


def strings_of(texts: Texts, n_rows: int, dropped: np.ndarray) -> pa.Array:
    """A top-level string column's values (null where the row is dropped), for identities."""
    if texts.strings is None:
        return pa.nulls(n_rows, pa.large_string())
    return pc.if_else(pa.array(dropped), pa.scalar(None, pa.large_string()), texts.strings)
