"""The column encoders: a whole column -> one JSON text per row, as :class:`Texts`.

Strings, numbers, booleans and timestamps are written column-wise (by
:mod:`flameup_pandas._people.wire`); a column of a type JSON cannot carry becomes one problem
per present value. Which encoder a column gets, and how the other columns are written value
by value, is the value registry's to say (:mod:`flameup_pandas._people.values`), which
imports this module and never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import NaiveTimestampError
from .wire import (
    BINARY,
    bool_texts,
    json_list,
    needs_escape,
    null_mask,
    quoted,
    timestamp_texts,
    with_nulls,
)
from .wire import number_texts as _numbers
from .wire import string_texts as _escaped

__all__ = [
    "RepeatedKeys",
    "Texts",
    "decoded",
    "naive_error",
    "number_texts",
    "python_values",
    "refused_texts",
    "string_array",
    "string_texts",
    "timestamp_column",
    "utc_instants",
]


class RepeatedKeys:
    """Stands for a map that names one key twice (it has no JSON object)."""


def naive_error(label: str) -> NaiveTimestampError:
    return NaiveTimestampError(
        f"column {label!r} holds timestamps without a time zone; localize it "
        "(series.dt.tz_localize(...)), pass naive_timestamps='utc' (on the command line: "
        "--naive-timestamps utc) to treat them as UTC"
    )


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

    def taken(self, codes: np.ndarray) -> Texts:
        """These texts (of a categorical's categories) at each row's code; -1 is missing."""
        missing = codes < 0
        problems: dict[int, str] = {}
        if self.problems:
            hit = np.isin(codes, np.fromiter(self.problems, dtype=np.int64))
            problems = {p: self.problems[int(codes[p])] for p in np.flatnonzero(hit).tolist()}
            missing = missing | hit
        take = pa.array(np.where(missing, 0, codes), mask=missing)

        def pick(texts: pa.Array | None) -> pa.Array | None:
            return None if texts is None else texts.take(take)

        values = None
        if self.values is not None:
            table = np.empty(len(self.values) + 1, dtype=object)
            table[: len(self.values)] = self.values
            values = table[np.where(missing, len(self.values), codes)].tolist()
        return Texts(
            self.texts.take(take),
            missing,
            problems,
            pick(self.sorted_texts),
            pick(self.strings),
            self.quote,
            values,
        )

    def python(self, exact: bool = True) -> list[Any]:
        """The values as Python objects (None where missing), decoded in one call.

        Values converted one by one are taken as they were converted, numbers written from a
        decimal's digits as ``Decimal`` when ``exact`` (a float would lose the digits sent),
        else as the JSON fragments they are sent as.
        """
        if self.values is not None:
            return [_decimals(v) for v in self.values] if exact else self.values
        if self.quote and self.strings is not None:
            return cast(list[Any], self.strings.to_pylist())
        return cast(list[Any], orjson.loads(json_list(self.texts)))


def _decimals(value: Any) -> Any:
    if isinstance(value, orjson.Fragment):
        return Decimal(orjson.dumps(value).decode())
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    if isinstance(value, dict):
        return {k: _decimals(v) for k, v in value.items()}
    return value


def decoded(series: pd.Series) -> pd.Series:
    """An Arrow dictionary or extension column as pandas' twin of its values (a categorical,
    a ``Period`` column...), or its storage where pandas has none."""
    array = pa.array(series.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array.type, pa.ExtensionType) and pandas_twin(array.type) is None:
        # its storage, in Arrow: pandas makes integers beside a missing value floats
        return pd.Series(pd.arrays.ArrowExtensionArray(array.storage), index=series.index)
    return pd.Series(null_free_dictionary(array).to_pandas(), index=series.index)


def null_free_dictionary(values: Any) -> Any:
    """A dictionary (chunked) array with every missing value in its indices (Arrow allows a null
    in the dictionary itself, a category pandas refuses); any other array as it is."""
    kind = values.type
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    if not pa.types.is_dictionary(kind) or not any(c.dictionary.null_count for c in chunks):
        return values
    return pc.dictionary_encode(values.cast(kind.value_type))


def pandas_twin(kind: pa.ExtensionType) -> Any:
    """The pandas dtype of an Arrow extension type, None if pandas has none."""
    try:
        return kind.to_pandas_dtype()
    except NotImplementedError:  # an extension type of another library's
        return None


def string_array(series: pd.Series) -> pa.Array | None:
    """A string column as an Arrow array (missing as null), or None when it is not one."""
    inferred = pd.api.types.infer_dtype(series, skipna=True) if series.dtype == object else None
    if inferred not in (None, "string", "empty"):
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


def string_texts(series: pd.Series, naive: str, label: str) -> Texts | None:
    """The text rule's column encoder (None for values Arrow cannot hold: value by value)."""
    strings = string_array(series)
    if strings is None:
        return None
    if len(needs_escape(strings)):
        return Texts(_escaped(strings), null_mask(strings), {}, strings=strings)
    return Texts(strings.cast(BINARY), null_mask(strings), {}, strings=strings, quote=True)


def number_texts(series: pd.Series, naive: str, label: str) -> Texts:
    """Numbers and booleans (numpy, masked or Arrow) column-wise.

    Integers stay integers of their own signedness whatever nulls stand beside them; floats
    keep their width (a float32 is written as the shortest text of the float32); NaN is
    missing as null is; infinities make their rows invalid.
    """
    dtype = series.dtype
    numpy_type = np.dtype(getattr(dtype, "numpy_dtype", cast(Any, dtype)))  # masked, Arrow: theirs
    kind = numpy_type.kind
    target: Any = {"b": np.bool_, "u": np.uint64, "i": np.int64, "f": np.float64}[kind]
    if kind == "f" and numpy_type.itemsize < 8:
        target = np.float32
    if isinstance(dtype, np.dtype):
        values: np.ndarray = series.to_numpy().astype(target, copy=False)
        missing = np.isnan(values) if kind == "f" else np.zeros(len(values), dtype=bool)
    elif kind == "f":
        values = series.to_numpy(dtype=target, na_value=np.nan)
        missing = np.isnan(values)
    else:
        missing = series.isna().to_numpy(dtype=bool)
        values = series.to_numpy(dtype=target, na_value=target(0))
    problems: dict[int, str] = {}
    if kind == "f":
        infinite = np.isinf(values)
        for p in np.flatnonzero(infinite).tolist():
            problems[p] = f"{label}: {values[p]} is not valid JSON"
        missing = missing | infinite
        values = np.where(missing, values.dtype.type(0), values)
    texts = bool_texts(values) if kind == "b" else _numbers(values)
    return Texts(with_nulls(texts, missing), missing, problems)


def utc_instants(series: pd.Series, naive: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column (numpy, time-zone-aware or Arrow) as naive UTC ``datetime64``
    values and a missing mask.

    Naive timestamps raise :class:`NaiveTimestampError` unless ``naive`` is ``"utc"``. Arrow
    timestamps are read from their own buffer (an Arrow timestamp is a UTC instant whatever
    its zone): pandas' conversion of an Arrow-backed column goes value by value.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        array = pa.array(series.array)
        missing = null_mask(array)
        aware = pa_type.tz is not None
        utc = array.cast(pa.timestamp(pa_type.unit)).to_numpy(zero_copy_only=False)
    else:
        missing = series.isna().to_numpy(dtype=bool)
        aware = series.dt.tz is not None
        if aware:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        utc = series.to_numpy()
    if not aware and naive != "utc" and not missing.all():
        raise naive_error(label)
    return utc, missing


def timestamp_column(series: pd.Series, naive: str, label: str) -> Texts:
    """Datetime columns (numpy, tz-aware or Arrow-backed) as ISO 8601 UTC texts."""
    utc, missing = utc_instants(series, naive, label)
    texts = timestamp_texts(np.where(missing, np.datetime64(0, "s"), utc))
    return Texts(with_nulls(texts, missing), missing, {})


def refused_texts(series: pd.Series, reason: str) -> Texts:
    """A column of a type JSON cannot carry: every present value a problem of its row.
    Missing values are read from Arrow where it holds them: pandas cannot ask every Arrow
    type (an interval's) for them."""
    if isinstance(series.dtype, pd.ArrowDtype):
        missing = null_mask(pa.array(series.array))
    else:
        missing = series.isna().to_numpy(dtype=bool)
    problems = dict.fromkeys(np.flatnonzero(~missing).tolist(), reason)
    return Texts(pa.nulls(len(series), BINARY), np.ones(len(series), dtype=bool), problems)


def python_values(series: pd.Series) -> np.ndarray:
    """A column's values as Python objects in an object array (maps as dicts)."""
    values = np.empty(len(series), dtype=object)
    if isinstance(series.dtype, pd.ArrowDtype):
        array = pa.array(series.array)
        try:
            values[:] = array.to_pylist(maps_as_pydicts="strict")
        except (KeyError, ValueError):  # a map with a repeated key: found value by value
            for position, value in enumerate(array):
                try:
                    values[position] = value.as_py(maps_as_pydicts="strict")
                except (KeyError, ValueError):
                    values[position] = RepeatedKeys()
        return values
    values[:] = series.to_numpy(dtype=object)
    return values
