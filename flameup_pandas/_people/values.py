"""The value rules: what each input value is sent to Flameup as, decided here and only here.

Every source reaches the encoder as a pandas frame whose columns keep their types (Arrow
sources as ``pd.ArrowDtype`` columns, dictionaries as categoricals: see
:func:`flameup_pandas._run.sources.arrow_frame`), so one set of rules serves every path. The
column-wise encoders of :mod:`flameup_pandas._people.texts` give, for the types they take,
exactly the text these per-value rules give (tests/test_value_rules.py holds them to it).

:data:`VALUE_RULES` is the table the documentation shows.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..exceptions import NaiveTimestampError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "VALUE_RULES",
    "Converted",
    "Unsendable",
    "convert",
    "decimal_json",
    "iso_utc",
    "naive_error",
    "scalar",
]

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""Integers are sent when they fit in 64 bits (signed or unsigned): JSON readers lose more."""

VALUE_RULES: tuple[tuple[str, str], ...] = (
    (
        (
            "text (`object` strings, `str`, `string[python]`, `string[pyarrow]`, Arrow `string` and"
            " `large_string`, polars `String`)"
        ),
        "a JSON string, unchanged",
    ),
    (
        (
            "categorical, dictionary and Enum columns (pandas `category`, Arrow dictionaries, "
            "polars `Categorical` and `Enum`)"
        ),
        "their values, by the rule of the values' type; identities and known fields too",
    ),
    (
        (
            "integers of any width, signed or not (numpy, pandas nullable `Int64` and friends, "
            "Arrow, polars, including polars `Int128` where the value fits in 64 bits)"
        ),
        (
            "a JSON integer with every digit, whatever nulls stand beside it in the column; a value"
            " that does not fit makes the row `invalid`, with the reason"
        ),
    ),
    (
        "`float64`",
        "the shortest JSON number that reads back as the same float (`1.5`, `1e+16`)",
    ),
    (
        "`float32`",
        (
            "the shortest text that reads back as the same float32 (`0.1`, not "
            "`0.10000000149011612`)"
        ),
    ),
    (
        "decimals (`decimal.Decimal`, Arrow `decimal128`/`decimal256`, polars `Decimal`)",
        (
            "a JSON number written from the decimal's own digits, never through a float "
            "(`12345678901234567.89`)"
        ),
    ),
    (
        "booleans",
        "`true` or `false`",
    ),
    (
        "timestamps with a time zone",
        (
            "ISO 8601 text in UTC, with as many fractional digits as needed "
            "(`2024-06-01T10:30:05.123Z`)"
        ),
    ),
    (
        "timestamps without a time zone",
        (
            "refused ({exc}`~flameup_pandas.exceptions.NaiveTimestampError`) unless "
            '`naive_timestamps="utc"` declares them UTC'
        ),
    ),
    (
        "dates",
        "ISO 8601 date text (`2024-01-02`)",
    ),
    (
        "lists and arrays",
        "JSON arrays, each element by these rules",
    ),
    (
        "dicts, structs, and maps with string keys",
        (
            "JSON objects, each value by these rules; a map with other keys makes the row "
            "`invalid`, with the reason"
        ),
    ),
    (
        "missing: `NaN`, `None`, `pd.NA`, `NaT`, Arrow and polars nulls (polars `NaN` too)",
        (
            "left out of the person, so what Flameup holds is kept; with `send_nulls=True`, JSON "
            "`null`, which clears it"
        ),
    ),
    (
        "`inf` and `-inf`",
        "the row is `invalid`: JSON has no infinity",
    ),
    (
        (
            "types with no JSON meaning: `Period`, `Interval`, time of day, timedelta, bytes, "
            "arbitrary objects"
        ),
        (
            "the row is `invalid`, with a reason naming the column and the type, the same from "
            "every path; never ordinals or reprs"
        ),
    ),
)
"""What each input type is sent as: (input, sent as), in Markdown; the documentation's value
rules page renders this table (docs/_ext/value_rules.py), so the two cannot drift."""

_FRACTION_UNITS = (("ms", 10**6), ("us", 10**3), ("ns", 1))
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


class Unsendable(Exception):
    """A value JSON cannot hold; the message says why."""


@dataclass
class Converted:
    """One column as JSON-ready Python values (None where missing) and its row problems."""

    values: list[Any]
    missing: np.ndarray
    problems: dict[int, str]


def naive_error(label: str) -> NaiveTimestampError:
    return NaiveTimestampError(
        f"column {label!r} holds timestamps without a time zone; localize it "
        "(series.dt.tz_localize(...)) or pass naive_timestamps='utc' to treat them as UTC"
    )


def no_json_meaning(kind: str) -> Unsendable:
    return Unsendable(f"{kind} values have no JSON meaning; convert them first")


# -- one value -------------------------------------------------------------------------------


def scalar(value: Any, naive: str, label: str) -> Any:
    """``value`` as a JSON-ready Python value (None when missing), or :class:`Unsendable`.

    >>> orjson.dumps(scalar(Decimal("0.10"), "error", "x"))
    b'0.10'
    >>> scalar(np.float32(0.1), "error", "x")
    0.1
    """
    kind = type(value)
    if kind is str or kind is bool:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise Unsendable(f"{value} does not fit in 64 bits")
        return value
    if kind is float:
        if math.isnan(value):
            return None
        if not math.isfinite(value):
            raise Unsendable(f"{value} is not valid JSON")
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return _other(value, naive, label)


def _other(value: Any, naive: str, label: str) -> Any:
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else _iso_timestamp(pd.Timestamp(value), naive, label)
    if isinstance(value, np.timedelta64 | dt.timedelta):
        raise no_json_meaning("timedelta (time span)")
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        # the shortest text of the float32, as its float64 twin: 0.1, never 0.10000000149011612
        return scalar(float(str(value)), naive, label)
    if isinstance(value, np.generic):
        return scalar(value.item(), naive, label)
    if isinstance(value, str | bool | int | float):
        return scalar(_plain(value), naive, label)
    if isinstance(value, dt.datetime):
        return _iso_timestamp(value, naive, label)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return decimal_json(value)
    if isinstance(value, _RepeatedKeys):
        raise Unsendable("a map that names a key twice is not a JSON object")
    if isinstance(value, bytes | bytearray | memoryview):
        raise Unsendable("bytes have no JSON meaning; decode them to str first")
    if isinstance(value, np.ndarray):
        return scalar(value.tolist(), naive, label)
    if isinstance(value, list | tuple):
        return [scalar(v, naive, label) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise Unsendable("a map or dict with keys that are not strings is not a JSON object")
        return {str(k): scalar(v, naive, label) for k, v in value.items()}
    raise no_json_meaning(type(value).__name__)


def decimal_json(value: Decimal) -> Any:
    """A decimal as the JSON number of its own digits (never through a float)."""
    if value.is_nan():
        return None
    if not value.is_finite():
        raise Unsendable(f"{value} is not valid JSON")
    return orjson.Fragment(str(value).encode())


def _plain(value: Any) -> Any:
    """A subclass of str/bool/int/float as the plain type (orjson is strict about these)."""
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _iso_timestamp(value: dt.datetime, naive: str, label: str) -> str:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        if naive != "utc":
            raise naive_error(label)
        stamp = stamp.tz_localize("UTC")
    utc = stamp.tz_convert("UTC").tz_localize(None).to_datetime64()
    return str(iso_utc(np.array([utc]))[0])


# -- one column of values no column-wise encoder takes ---------------------------------------


def convert(series: pd.Series, naive: str, label: str) -> Converted:
    """One column as JSON-ready Python values by the rules above (see :func:`scalar`)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(series, naive, label)
    if isinstance(dtype, pd.SparseDtype):
        return convert(cast(Any, series).sparse.to_dense(), naive, label)
    stamps = utc_instants(series, naive, label)
    if stamps is not None:
        utc, missing = stamps
        return Converted(_with_nones(iso_utc(utc), missing), missing, {})
    return objects(python_values(series), naive, label)


def python_values(series: pd.Series) -> np.ndarray:
    """A column's values as Python objects in an object array (maps as dicts)."""
    values = np.empty(len(series), dtype=object)
    if isinstance(series.dtype, pd.ArrowDtype):
        array = pa.array(series.array)
        try:
            values[:] = array.to_pylist(maps_as_pydicts="strict")
        except (KeyError, ValueError):  # a map with a repeated key: found value by value
            values[:] = [_strict_map(v) for v in array]
        return values
    values[:] = series.to_numpy(dtype=object)
    return values


def _strict_map(value: pa.Scalar) -> Any:
    try:
        return value.as_py(maps_as_pydicts="strict")
    except (KeyError, ValueError):
        return _RepeatedKeys()


class _RepeatedKeys:
    """Stands for a map that names one key twice (it has no JSON object)."""


def objects(values: np.ndarray, naive: str, label: str) -> Converted:
    """Any Python objects, one by one (only for columns no faster path fits)."""
    missing = _missing_objects(values)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "boolean", "empty"):
        return _verified(_with_nones(values, missing), missing, label)
    out: list[Any] = [None] * len(values)
    problems: dict[int, str] = {}
    for position, (value, absent) in enumerate(zip(values.tolist(), missing.tolist(), strict=True)):
        if absent:
            continue
        try:
            out[position] = scalar(value, naive, label)
        except Unsendable as why:
            problems[position] = f"{label}: {why}"
    return _verified(out, missing, label, problems)


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


def _verified(
    values: list[Any], missing: np.ndarray, label: str, problems: dict[int, str] | None = None
) -> Converted:
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
    return Converted(values, missing, problems)


def _categorical(series: pd.Series, naive: str, label: str) -> Converted:
    categories = convert(pd.Series(series.cat.categories), naive, label)
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
    return Converted(values, missing, problems)


def utc_instants(series: pd.Series, naive: str, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A timestamp column (numpy, time-zone-aware or Arrow) as naive UTC ``datetime64``
    values and a missing mask; None when the column holds no timestamps.

    Naive timestamps raise :class:`NaiveTimestampError` unless ``naive`` is ``"utc"``. Arrow
    timestamps are read from their own buffer (an Arrow timestamp is a UTC instant whatever
    its zone): pandas' conversion of an Arrow-backed column goes value by value.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        pa_type = dtype.pyarrow_dtype
        if not pa.types.is_timestamp(pa_type):
            return None
        array = pa.array(series.array)
        missing = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        aware = pa_type.tz is not None
        utc = array.cast(pa.timestamp(pa_type.unit)).to_numpy(zero_copy_only=False)
    elif isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        missing = series.isna().to_numpy(dtype=bool)
        aware = series.dt.tz is not None
        if aware:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        utc = series.to_numpy()
    else:
        return None
    if not aware and naive != "utc" and not missing.all():
        raise naive_error(label)
    return utc, missing


def _with_nones(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    if not missing.any():
        return values.tolist()  # type: ignore[no-any-return]
    out = values.astype(object)
    out[missing] = None
    return out.tolist()  # type: ignore[no-any-return]


def iso_utc(values: np.ndarray) -> np.ndarray:
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
