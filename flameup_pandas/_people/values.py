"""The value registry: what each input value means and is sent to Flameup as, decided here.

Each input type has one :class:`Rule`, found by a column's dtype (:func:`rule_for`) or a
value's Python type (:func:`rule_of`). A rule holds its column encoder (a whole column to one
JSON text per row, from :mod:`flameup_pandas._people.column_encoders`), its per-value encoder
(one value to a JSON-ready Python value, for object columns and the elements of lists and
maps), and, for a type JSON cannot carry, its refusal: every present value of it makes its row
``invalid``, with the column named. :func:`column_texts` encodes a column by its rule. The
text sent is the text hashed (keys sorted for objects), so a value means one thing to the
wire, the sync state and the plan.

Every source reaches the registry as a pandas frame whose columns keep their types (Arrow
sources as ``pd.ArrowDtype`` columns: see :func:`flameup_pandas._run.sources.arrow_frame`);
people, events, the schema, CSV inference and the plan ask it. :func:`is_missing` and
:func:`is_string` are the one meaning of "missing" and "a string";
:func:`~flameup_pandas._people.wire.timestamp_texts` is the one timestamp formatter. The
documentation's value table is rendered from :data:`RULES` (docs/_ext/value_rules.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from .column_encoders import (
    RepeatedKeys,
    Texts,
    decoded,
    naive_error,
    number_texts,
    python_values,
    refused_texts,
    string_texts,
    timestamp_column,
)
from .wire import text_array, timestamp_texts

__all__ = [
    "RULES",
    "Rule",
    "Unsendable",
    "category_values",
    "column_texts",
    "column_values",
    "decimal_text",
    "is_missing",
    "is_string",
    "is_text",
    "plain_strings",
    "read_back",
    "rule_for",
    "rule_of",
    "scalar",
]


class Unsendable(Exception):
    """A value JSON cannot hold; the message says why."""


def is_missing(value: Any) -> bool:
    """The one meaning of "missing": None, ``pd.NA``, ``NaT``, NaN (float, numpy, Decimal).

    >>> [is_missing(v) for v in (None, float("nan"), Decimal("NaN"), pd.NaT, 0, "")]
    [True, True, True, True, False, False]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    if isinstance(value, Decimal):
        return value.is_nan()
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    return False


def is_string(value: Any) -> bool:
    """The one meaning of "a string": a ``str`` (a subclass too), never bytes or a category."""
    return isinstance(value, str)


Naive = str


def _integer(value: Any, naive: Naive, label: str) -> Any:
    value = int(value)
    if not -(2**63) <= value < 2**64:  # signed or not; JSON readers lose more
        raise Unsendable(f"{value} does not fit in 64 bits")
    return value


def _float(value: Any, naive: Naive, label: str) -> Any:
    # a float32's shortest text, as its float64 twin: 0.1, never 0.10000000149011612
    value = float(str(value)) if type(value) in (np.float32, np.float16) else float(value)
    if math.isnan(value):
        return None
    if not math.isfinite(value):
        raise Unsendable(f"{value} is not valid JSON")
    return value


def _timestamp(value: Any, naive: Naive, label: str) -> Any:
    stamp = pd.Timestamp(value)
    if is_missing(stamp):
        return None
    if stamp.tzinfo is None:
        if naive != "utc":
            raise naive_error(label)
    else:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return timestamp_texts(np.array([stamp.to_datetime64()]))[0].as_py()[1:-1].decode()


def decimal_text(value: Decimal) -> Any:
    """A decimal as the JSON number of its own digits, never through a float, in one
    canonical text whatever its scale (``0.1``, ``0.10`` and ``0.1000000000`` are ``0.1``),
    so the same value is the same bytes and hash from every path.

    >>> [orjson.dumps(decimal_text(Decimal(d))) for d in ("0.1000000000", "1E+2", "-0.0")]
    [b'0.1', b'100', b'0']
    """
    if value.is_nan():
        return None
    if not value.is_finite():
        raise Unsendable(f"{value} is not valid JSON")
    if value.is_zero():
        return orjson.Fragment(b"0")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return orjson.Fragment(text.encode())


def read_back(text: str | bytes) -> Any:
    """JSON as sent, read back as Python values: a number a float cannot hold exactly (a
    decimal's digits) as a ``Decimal``, so a plan shows what was sent.

    >>> read_back(b'{"a":0.5,"b":12345678901234567.89}')
    {'a': 0.5, 'b': Decimal('12345678901234567.89')}
    """
    return json.loads(text, parse_float=_exact_number)


def _exact_number(text: str) -> float | Decimal:
    number = float(text)
    return number if Decimal(repr(number)) == Decimal(text) else Decimal(text)


def _list(value: Any, naive: Naive, label: str) -> Any:
    if isinstance(value, np.ndarray):
        # tolist() turns datetime64[ns] values into integers: those stay numpy scalars
        value = list(value) if value.dtype.kind in "mM" else value.tolist()
    return [scalar(v, naive, label) for v in value]


def _mapping(value: Any, naive: Naive, label: str) -> Any:
    if not all(isinstance(k, str) for k in value):
        raise Unsendable("a map or dict with keys that are not strings is not a JSON object")
    return {str(k): scalar(v, naive, label) for k, v in value.items()}


@dataclass(frozen=True)
class Rule:
    """One input type: how it is recognised, encoded and shown in the documentation.

    A column's dtype is the rule's when it is one of ``pandas`` (dtype classes), of
    ``numpy`` (kind letters, for numpy and pandas' masked dtypes) or, Arrow-backed, its Arrow
    type passes one of ``arrow`` (``pa.types`` predicates); a value is the rule's when its
    type is one of ``types``. ``column`` encodes a whole column (None, or when it returns
    None: value by value through ``value``); a rule without ``value`` refuses its values,
    for ``refusal``. ``input`` and ``sent_as`` are the documentation's row, in Markdown.
    """

    input: str
    sent_as: str
    types: tuple[type, ...] = ()
    pandas: tuple[type, ...] = ()
    numpy: str = ""
    arrow: tuple[Callable[[Any], bool], ...] = ()
    column: Callable[[pd.Series, Naive, str], Texts | None] | None = None
    value: Callable[[Any, Naive, str], Any] | None = None
    refusal: str | None = None

    def takes(self, dtype: Any) -> bool:
        if isinstance(dtype, pd.ArrowDtype):
            return any(kind(dtype.pyarrow_dtype) for kind in self.arrow)
        if isinstance(dtype, self.pandas):
            return True
        numpy_type = getattr(dtype, "numpy_dtype", dtype)
        return isinstance(numpy_type, np.dtype) and numpy_type.kind in self.numpy


def no_meaning(kind: str) -> str:
    return f"{kind} values have no JSON meaning; convert them first"


def _extension(name: str) -> Callable[[Any], bool]:
    """An Arrow extension type by name (pandas' Period and Interval written to Arrow)."""
    return lambda kind: getattr(kind, "extension_name", None) == name


_T = pa.types
_REFUSED = "the row is `invalid`, with a reason naming the column"

RULES: tuple[Rule, ...] = (
    Rule(
        "text (`object` strings, `str`, `string[python]`, `string[pyarrow]`, Arrow `string` and"
        " `large_string`, polars `String`)",
        "a JSON string, unchanged",
        (str,),
        (pd.StringDtype,),
        arrow=(_T.is_string, _T.is_large_string, _T.is_string_view),
        column=string_texts,
        value=lambda value, naive, label: value if type(value) is str else str(value),
    ),
    Rule(
        "categorical, dictionary and Enum columns (pandas `category`, Arrow dictionaries, "
        "polars `Categorical` and `Enum`), Arrow-backed or not",
        "their values, by the rule of the values' type; identities and known fields too",
        pandas=(pd.CategoricalDtype,),
        arrow=(_T.is_dictionary,),
    ),
    Rule(
        "integers of any width, signed or not (numpy, pandas nullable `Int64` and friends, "
        "Arrow, polars, including polars `Int128` where the value fits in 64 bits)",
        "a JSON integer with every digit, whatever nulls stand beside it in the column; a value"
        " that does not fit makes the row `invalid`, with the reason",
        (int, np.integer),
        numpy="iu",
        arrow=(_T.is_integer,),
        column=number_texts,
        value=_integer,
    ),
    Rule(
        "floats: `float64`, and `float32` (or `float16`)",
        "the shortest JSON number that reads back as the same float (`1.5`, `1e+16`); for a "
        "`float32`, the shortest that reads back as the same float32 (`0.1`, not "
        "`0.10000000149011612`); `inf` and `-inf` make the row `invalid`: JSON has no infinity",
        (float, np.floating),
        numpy="f",
        arrow=(_T.is_floating,),
        column=number_texts,
        value=_float,
    ),
    Rule(
        "decimals (`decimal.Decimal`, Arrow `decimal128`/`decimal256`, polars `Decimal`)",
        "a JSON number written from the decimal's own digits, never through a float, without"
        " trailing zeros (`12345678901234567.89`; `0.10` and a `decimal128(38, 10)` "
        "`0.1000000000` are both `0.1`): a value's bytes and hash do not depend on its scale",
        (Decimal,),
        arrow=(_T.is_decimal,),
        value=lambda value, naive, label: decimal_text(value),
    ),
    Rule(
        "booleans",
        "`true` or `false`",
        (bool, np.bool_),
        numpy="b",
        arrow=(_T.is_boolean,),
        column=number_texts,
        value=lambda value, naive, label: bool(value),
    ),
    Rule(
        "timestamps with a time zone",
        "ISO 8601 text in UTC, with as many fractional digits as needed "
        "(`2024-06-01T10:30:05.123Z`)",
        (dt.datetime, np.datetime64),
        (pd.DatetimeTZDtype,),
        numpy="M",
        arrow=(_T.is_timestamp,),
        column=timestamp_column,
        value=_timestamp,
    ),
    Rule(
        "timestamps without a time zone",
        "refused ({exc}`~flameup_pandas.exceptions.NaiveTimestampError`) unless "
        '`naive_timestamps="utc"` (`--naive-timestamps utc`) declares them UTC',
    ),
    Rule(
        "dates",
        "ISO 8601 date text (`2024-01-02`)",
        (dt.date,),
        arrow=(_T.is_date,),
        value=lambda value, naive, label: value.isoformat(),
    ),
    Rule(
        "lists and arrays",
        "JSON arrays, each element by these rules",
        (list, tuple, np.ndarray),
        arrow=(_T.is_list, _T.is_large_list, _T.is_fixed_size_list),
        value=_list,
    ),
    Rule(
        "dicts, structs, and maps with string keys",
        "JSON objects, each value by these rules; a map with other keys, or naming a key "
        "twice, makes the row `invalid`, with the reason",
        (Mapping,),
        arrow=(_T.is_struct, _T.is_map),
        value=_mapping,
    ),
    Rule(
        "missing: `NaN`, `None`, `pd.NA`, `NaT`, Arrow and polars nulls (polars `NaN` too), "
        "an empty CSV cell",
        "left out of the person, so what Flameup holds is kept; with `send_nulls=True`, JSON "
        "`null`, which clears it",
        (type(None), type(pd.NA), type(pd.NaT)),
        value=lambda value, naive, label: None,
    ),
    Rule(
        "time spans: `timedelta`, Arrow `duration` and intervals (a DuckDB `INTERVAL`), "
        "polars `Duration`",
        _REFUSED,
        (dt.timedelta, np.timedelta64, pd.DateOffset, pa.MonthDayNano),
        numpy="m",
        arrow=(_T.is_duration, _T.is_interval),
        refusal=no_meaning("timedelta (time span)"),
    ),
    Rule(
        "pandas `Period` (in a frame, or written to Arrow or parquet)",
        _REFUSED + ", never its ordinal",
        (pd.Period,),
        (pd.PeriodDtype,),
        arrow=(_extension("pandas.period"),),
        refusal=no_meaning("Period"),
    ),
    Rule(
        "pandas `Interval` (in a frame, or written to Arrow or parquet)",
        _REFUSED + ', never `{"left": ..., "right": ...}`',
        (pd.Interval,),
        (pd.IntervalDtype,),
        arrow=(_extension("pandas.interval"),),
        refusal=no_meaning("Interval"),
    ),
    Rule("time of day", _REFUSED, (dt.time,), arrow=(_T.is_time,), refusal=no_meaning("time")),
    Rule(
        "bytes (Arrow `binary`)",
        _REFUSED,
        (bytes, bytearray, memoryview),
        arrow=(_T.is_binary, _T.is_large_binary, _T.is_fixed_size_binary, _T.is_binary_view),
        refusal="bytes have no JSON meaning; decode them to str first",
    ),
    Rule(
        "a map naming a key twice",
        _REFUSED,
        (RepeatedKeys,),
        refusal="a map that names a key twice is not a JSON object",
    ),
    Rule(
        "anything else (`object` columns of other types, other Arrow extension types)",
        _REFUSED + " and the type, the same from every path; never ordinals or reprs",
    ),
)
"""Every input type's rule, in the order the documentation shows them."""

_OTHER, _TEXT, _CATEGORICAL = RULES[-1], RULES[0], RULES[1]


def is_text(dtype: Any) -> bool:
    """Whether a column's dtype is one of the text rule's (what string methods take)."""
    return _TEXT.takes(dtype)


def rule_for(dtype: Any) -> Rule:
    """The rule of a column's dtype (``object`` columns: the last rule, value by value)."""
    return next((rule for rule in RULES if rule.takes(dtype)), _OTHER)


@functools.cache
def rule_of(kind: Any) -> Rule:
    """The rule of a value's Python type (subclasses by their closest registered type)."""
    exact = next((rule for rule in RULES if kind in rule.types), None)
    return exact or next((rule for rule in RULES if issubclass(kind, rule.types)), _OTHER)


def scalar(value: Any, naive: Naive, label: str) -> Any:
    """``value`` as a JSON-ready Python value (None when missing), or :class:`Unsendable`.

    >>> orjson.dumps(scalar(Decimal("0.10"), "error", "x"))
    b'0.1'
    >>> scalar(np.float32(0.1), "error", "x")
    0.1
    """
    rule = rule_of(cast(Any, type(value)))
    if rule.value is None:
        raise Unsendable(rule.refusal or no_meaning(type(value).__name__))
    return rule.value(value, naive, label)


def column_texts(series: pd.Series, naive: Naive, label: str, top: bool) -> Texts:
    """One column as JSON texts, by its rule's column encoder (value by value without one).

    A top-level field must hold strings: only string columns take their encoder there.
    """
    dtype = series.dtype
    if isinstance(dtype, pd.SparseDtype):
        return column_texts(cast(Any, series).sparse.to_dense(), naive, label, top)
    rule = rule_for(dtype)
    if rule is _CATEGORICAL:
        if isinstance(dtype, pd.ArrowDtype):
            series = decoded(series)
        categories = column_texts(pd.Series(series.cat.categories), naive, label, top)
        return categories.taken(series.cat.codes.to_numpy())
    if rule is _OTHER and isinstance(getattr(dtype, "pyarrow_dtype", None), pa.ExtensionType):
        return column_texts(decoded(series), naive, label, top)  # its pandas twin, or storage
    if rule.value is None and rule is not _OTHER:
        return refused_texts(series, f"{label}: {rule.refusal}")
    if rule is _OTHER and _is_object(dtype):
        rule = _TEXT  # an object column of strings only is written as a string column
    texts = None
    if rule.column is not None and (not top or rule is _TEXT):
        texts = rule.column(series, naive, label)
    return _value_texts(series, naive, label, top) if texts is None else texts


def _value_texts(series: pd.Series, naive: Naive, label: str, top: bool) -> Texts:
    """Any other column, value by value through the rules (:func:`scalar`), each value written
    by orjson (which finds what does not encode); a top-level field's values must be strings.
    A value that is there but not sendable is not missing: its row's problem says why."""
    values: list[Any] = python_values(series).tolist()
    missing = np.zeros(len(values), dtype=bool)
    texts: list[bytes | None] = [None] * len(values)
    sorted_texts = list(texts)  # differs from texts for objects alone: keys sorted
    problems: dict[int, str] = {}
    for position, value in enumerate(values):
        values[position] = None
        try:
            value = scalar(value, naive, label)
        except Unsendable as why:
            problems[position] = f"{label}: {why}"
            missing[position] = True
            continue
        if value is None:
            missing[position] = True
            continue
        if top and type(value) is not str:
            problems[position] = f"{label}: not a string ({_shown(value)})"
            continue
        try:
            texts[position] = sorted_texts[position] = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError) as error:
            problems[position] = f"{label}: not valid JSON ({error})"
            continue
        if isinstance(value, dict | list):
            sorted_texts[position] = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        values[position] = value
    strings = None
    if top:
        strings = pa.array([v if isinstance(v, str) else None for v in values], pa.large_string())
    return Texts(
        texts=text_array(texts),
        missing=missing,
        problems=problems,
        sorted_texts=text_array(sorted_texts) if sorted_texts != texts else None,
        strings=strings,
        values=values,
    )


def _shown(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, orjson.Fragment) else repr(value)


def column_values(series: pd.Series, naive: Naive, label: str) -> tuple[list[Any], dict[int, str]]:
    """A column's values as JSON-ready Python values (None where missing or unsendable) and
    its row problems: for events' parameters."""
    texts = column_texts(series, naive, label, top=False)
    return texts.python(exact=False), texts.problems


def plain_strings(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """A column's strings as a string column (same positions, any other value missing) and
    where they are: the one "is a string" of a column, for the schema's checks, which then
    judge every column with pandas' or Arrow's string methods. Categoricals (Arrow-backed too)
    are judged by their values."""
    series = category_values(series)
    if is_text(series.dtype):
        return series, series.notna().to_numpy(dtype=bool)
    is_str = np.zeros(len(series), dtype=bool)
    values = np.full(len(series), None, dtype=object)
    if _is_object(series.dtype):
        values = np.array(series.to_numpy(), dtype=object)  # a writable copy
        is_str = np.fromiter(map(is_string, values), dtype=bool, count=len(values))
        values[~is_str] = None
    return pd.Series(values, index=series.index, dtype=pd.StringDtype("python")), is_str


def category_values(series: pd.Series) -> pd.Series:
    """A categorical column (Arrow-backed too) as its values; any other column as it is."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_dictionary(dtype.pyarrow_dtype):
        array = pa.chunked_array(pa.array(series.array)).cast(dtype.pyarrow_dtype.value_type)
        return pd.Series(pd.arrays.ArrowExtensionArray(array), index=series.index)
    if isinstance(dtype, pd.CategoricalDtype):
        return series.astype(object)
    return series


def _is_object(dtype: Any) -> bool:
    return isinstance(dtype, np.dtype) and dtype == np.dtype(object)
