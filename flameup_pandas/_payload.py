"""Canonical rows -> people dicts and JSON bodies, column by column.

Each column is converted once, vectorised (``to_numpy``, ``tolist``, numpy's datetime
formatting), and only then zipped into one dict per row; there is no per-row ``apply``. A
value JSON cannot hold (inf, bytes, a time span, an arbitrary object) becomes a problem of its
row, which is then not sent.

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
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, cast

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ._mapping import trait_name
from .exceptions import NaiveTimestampError

__all__ = [
    "Payloads",
    "build_people",
    "content_hashes",
    "encode_batch",
    "identity_key",
    "identity_keys",
]

TOP_LEVEL = ("userId", "email", "phone")
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_FRACTION_UNITS = (("ms", 10**6), ("us", 10**3), ("ns", 1))
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


class _Unsendable(Exception):
    """A value JSON cannot hold; the message says why."""


@dataclass(frozen=True)
class Payloads:
    """The people to send, by row position, and why some cannot be sent.

    ``people[i]`` is the person dict of row ``i``, or None where the row was skipped or has a
    value that cannot be sent; ``problems[i]`` says why for the latter.
    """

    people: list[dict[str, Any] | None]
    problems: dict[int, str]


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


# -- assembly -------------------------------------------------------------------------------


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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building a million acyclic dicts.

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


@dataclass
class _Column:
    key: str
    is_trait: bool
    converted: _Converted


def _columns(canonical: pd.DataFrame, naive: str) -> list[_Column]:
    out = []
    for position, name in enumerate(canonical.columns):
        name = str(name)
        series = canonical.iloc[:, position]
        is_trait = name not in TOP_LEVEL
        converted = _convert(series, naive, name if not is_trait else f"traits.{trait_name(name)}")
        if not is_trait:
            _require_strings(converted, name)
        out.append(_Column(trait_name(name) if is_trait else name, is_trait, converted))
    return out


def _drop_missing(
    people: list[Any], columns: list[_Column], dropped: np.ndarray, send_nulls: bool
) -> None:
    """Take missing values out of the people (or leave them as null with send_nulls)."""
    for column in columns:
        if send_nulls and column.key != "userId":
            continue
        for position in np.flatnonzero(column.converted.missing & ~dropped).tolist():
            person = people[position]
            del (person["traits"] if column.is_trait else person)[column.key]
    traits = [c for c in columns if c.is_trait]
    if traits and not send_nulls:
        present = np.zeros(len(people), dtype=np.int64)
        for column in traits:
            present += ~column.converted.missing
        for position in np.flatnonzero((present == 0) & ~dropped).tolist():
            del people[position]["traits"]


def _identity_missing(columns: list[_Column], n_rows: int) -> np.ndarray:
    has = np.zeros(n_rows, dtype=bool)
    for column in columns:
        if not column.is_trait and column.key in ("userId", "email"):
            has |= ~column.converted.missing
    return ~has


def build_people(
    canonical: pd.DataFrame,
    *,
    skip: np.ndarray | None = None,
    send_nulls: bool = False,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> Payloads:
    """The people dicts of a canonical frame, exactly as they will be sent.

    ``skip`` marks rows not to build (already invalid): their entry is None. Rows with a value
    JSON cannot hold are None too, with the reason in ``problems``.

    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "score": [1.5, float("inf")],
    ...                       "plan": ["pro", None]})
    >>> payloads = build_people(frame)
    >>> payloads.people
    [{'userId': 'u1', 'traits': {'score': 1.5, 'plan': 'pro'}}, None]
    >>> payloads.problems
    {1: 'traits.score: inf is not valid JSON'}
    """
    n_rows = len(canonical)
    skipped = np.zeros(n_rows, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    columns = _columns(canonical, naive_timestamps)
    problems: dict[int, list[str]] = {}
    for column in columns:
        for position, why in column.converted.problems.items():
            if not skipped[position]:
                problems.setdefault(position, []).append(why)
    for position in np.flatnonzero(_identity_missing(columns, n_rows) & ~skipped).tolist():
        problems.setdefault(position, []).append("no userId or email")
    dropped = skipped.copy()
    dropped[list(problems)] = True
    maker = _record_maker(
        [c.key for c in columns if not c.is_trait], [c.key for c in columns if c.is_trait]
    )
    ordered = [c for c in columns if not c.is_trait] + [c for c in columns if c.is_trait]
    with _gc_paused():
        if ordered:
            people: list[Any] = list(map(maker, *(c.converted.values for c in ordered)))
        else:
            people = [{} for _ in range(n_rows)]
        _drop_missing(people, columns, dropped, send_nulls)
    for position in np.flatnonzero(dropped).tolist():
        people[position] = None
    return Payloads(people, {p: "; ".join(why) for p, why in sorted(problems.items())})


# -- bodies, hashes, identities -------------------------------------------------------------


def encode_batch(people: Sequence[Mapping[str, Any]]) -> bytes:
    """The JSON body of one batch request.

    >>> encode_batch([{"userId": "u1"}])
    b'{"people":[{"userId":"u1"}]}'
    """
    return orjson.dumps({"people": people if isinstance(people, list) else list(people)})


def content_hashes(people: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
    """A stable int64 fingerprint per person (0 for None), to tell changed people apart.

    blake2b (8 bytes) of the person's JSON with sorted keys, read little-endian: the same on
    every machine, process and version.

    >>> content_hashes([{"userId": "u1"}, None]).tolist()
    [7249378761026338362, 0]
    """
    dumps, option, blake2b = orjson.dumps, orjson.OPT_SORT_KEYS, hashlib.blake2b
    zero = bytes(8)
    digests = b"".join(
        [
            zero if p is None else blake2b(dumps(p, option=option), digest_size=8).digest()
            for p in people
        ]
    )
    return np.frombuffer(digests, dtype="<i8").astype(np.int64)


def identity_key(person: Mapping[str, Any]) -> str:
    """The key two rows share when they are the same person.

    >>> identity_key({"userId": "u1", "email": "A@x.io"}), identity_key({"email": "A@x.io"})
    ('u:u1', 'e:a@x.io')
    """
    user_id = person.get("userId")
    if user_id:
        return f"u:{user_id}"
    email = person.get("email")
    if email:
        return f"e:{str(email).lower()}"
    raise ValueError("a person without userId or email has no identity")


def identity_keys(people: Sequence[Mapping[str, Any] | None]) -> list[str | None]:
    """identity_key per position (None for None)."""
    return [None if p is None else identity_key(p) for p in people]
