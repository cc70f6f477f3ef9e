"""PeopleSchema (pandera) and the validation report.

:func:`validate_people` cleans a canonical frame (see :mod:`._mapping`), runs pandera's lazy
validation and turns every failure into one row of a plain report frame, so a bad row is data,
never an exception. Cleaning is limited to what is clearly intended: surrounding blanks are
stripped from the identity fields and the known traits, and a value that is then empty counts as
missing (it is not sent). Nothing else is rewritten.

Every built-in check is vectorised and copes with any dtype: object columns mixing strings,
numbers and bytes, pandas' ``str`` dtype, arrow-backed strings and categoricals. A value that
is not a string where a string is needed fails ``string_type``; the other string rules only
judge strings. Missing values (None, NaN, pd.NA, NaT) never break a rule.

On Arrow-backed strings (what cleaning leaves a string column as) the checks run as Arrow
kernels and skip work they can prove unneeded (:func:`_by_distinct`, :func:`_may_need_strip`,
:func:`_max_length_check`), each giving exactly what the per-value path gives
(tests/test_schema_arrow.py).
"""

from __future__ import annotations

import contextlib
import functools
import re
import warnings
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc


@contextlib.contextmanager
def _quiet_pyspark() -> Iterator[None]:
    """pandera imports pyspark.pandas whenever pyspark is installed (at import and again when
    it first validates), and pyspark 4 warns about pandas 3 there: the warning concerns
    pyspark's pandas API, which we never use, so it is silenced for exactly those calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        yield


with _quiet_pyspark():
    import pandera.pandas as pa
    from pandera.errors import SchemaError, SchemaErrors
    from pandera.typing import Series

from .column_encoders import string_array  # noqa: E402
from .emails import plausible_email, plausible_emails  # noqa: E402
from .person import KNOWN_TRAITS, TOP_LEVEL  # noqa: E402
from .values import category_values, is_missing, is_text, plain_strings  # noqa: E402
from .wire import bools, null_mask, offsets_and_data  # noqa: E402

__all__ = [
    "REPORT_COLUMNS",
    "STRING_FIELDS",
    "PeopleSchema",
    "ValidationResult",
    "row_reasons",
    "validate_people",
]

REPORT_COLUMNS = ("row", "column", "check", "value")
STRING_FIELDS: tuple[str, ...] = (*TOP_LEVEL, *(t for t in KNOWN_TRAITS if t != "phone"))

# Written for both Python's re (object columns) and RE2 (arrow-backed strings): no \s or \d,
# whose meaning differs between the two.
_BLANK = r" \t\r\n\f\v"
LOCALE_PATTERN = (  # language, then optional script, region and variants (BCP 47, _ or -)
    r"[A-Za-z]{2,3}([-_][A-Za-z]{4})?([-_]([A-Za-z]{2}|[0-9]{3}))?"
    r"([-_]([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
)
URL_PATTERN = (
    rf"[hH][tT][tT][pP][sS]?://[^/?#@{_BLANK}]+(@[^/?#@{_BLANK}]+)?(:[0-9]*)?([/?#][^{_BLANK}]*)?"
)

_MESSAGES = {
    "identity_required": "no userId or email (one of them is required)",
    "string_type": "not a string",
    "email_plausible": "not a plausible email address",
    "iana_timezone": "not an IANA time zone name",
    "locale_tag": "not a plausible locale tag (like en, en-US, pt_BR)",
    "http_url": "not an http(s) URL with a host",
}
_MAX_LENGTH = re.compile(r"max_length\((\d+)\)")
_SHOWN_VALUE = 60
# A column whose first _SAMPLE values hold at most _FEW distinct ones (time zones, locales) is
# judged once per distinct value instead of once per row.
_SAMPLE, _FEW = 2_000, 100
_ARROW_STRINGS = (pyarrow.string(), pyarrow.large_string())


@functools.cache
def iana_timezones() -> frozenset[str]:
    """The IANA time zone names this system knows (read once)."""
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _iana_timezone_array() -> pyarrow.Array:
    return pyarrow.array(sorted(iana_timezones()), pyarrow.string())


def arrow_strings(series: pd.Series) -> pyarrow.ChunkedArray | None:
    """The Arrow array behind an Arrow-backed string column (no copy), else None."""
    dtype = series.dtype
    pandas_arrow = isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    if not pandas_arrow and getattr(dtype, "pyarrow_dtype", None) not in _ARROW_STRINGS:
        return None
    arrow = series.array.__arrow_array__()
    return arrow if isinstance(arrow, pyarrow.ChunkedArray) else pyarrow.chunked_array([arrow])


def _by_distinct(strings: pyarrow.ChunkedArray, judge: Any) -> pyarrow.ChunkedArray | pyarrow.Array:
    """``judge`` (an Arrow kernel over strings) of every value; for a column of few distinct
    values it judges each distinct value once, then looks the rows up."""
    sample = strings.slice(0, _SAMPLE)
    if len(strings) > _SAMPLE and pc.count_distinct(sample).as_py() <= _FEW:
        distinct = pc.unique(strings)
        if len(distinct) <= _SAMPLE:  # a column few at first can still be many in all
            passed = distinct.filter(pc.fill_null(judge(distinct), False))
            return pc.is_in(strings, value_set=passed)
    return judge(strings)


def _may_need_strip(strings: pyarrow.ChunkedArray) -> bool:
    """Could a value be empty or begin or end with a blank? A look at first and last bytes
    only: a printable ASCII byte (33-126) is never white space, any other byte might be."""
    for chunk in strings.chunks:
        if len(chunk) == 0:
            continue
        offsets, data = offsets_and_data(chunk)
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        if chunk.null_count:
            if (~null_mask(chunk) & ~filled).any():  # an empty string
                return True
        elif not filled.all():
            return True
        edges = np.concatenate([data[starts[filled]], data[ends[filled] - 1]])
        if ((edges <= 32) | (edges >= 127)).any():
            return True
    return False


def _string_check(series: pd.Series) -> pd.Series:
    _, is_str = plain_strings(series)
    return pd.Series(is_str | series.isna().to_numpy(dtype=bool), index=series.index)


def _strings_check(
    by_arrow: Callable[[pyarrow.ChunkedArray], np.ndarray],
    by_pandas: Callable[[pd.Series], np.ndarray],
) -> Callable[[pd.Series], pd.Series]:
    """A check that passes what is not a string and judges the strings: Arrow-backed ones
    by ``by_arrow`` (kernels), the others by ``by_pandas`` (pandas' string methods)."""

    def check(series: pd.Series) -> pd.Series:
        strings, is_str = plain_strings(series)
        arrow = arrow_strings(strings)
        ok = by_arrow(arrow) if arrow is not None else by_pandas(strings)
        return pd.Series(~is_str | ok, index=series.index)

    return check


def _pattern_check(pattern: str) -> Callable[[pd.Series], pd.Series]:
    anchored = f"^(?:{pattern})$"
    return _strings_check(
        lambda arrow: bools(_by_distinct(arrow, lambda a: pc.match_substring_regex(a, anchored))),
        lambda strings: strings.str.fullmatch(pattern).to_numpy(dtype=bool, na_value=False),
    )


_email_check = _strings_check(  # plausible addresses (:mod:`.emails`): one Arrow pass
    plausible_emails,
    lambda strings: np.fromiter(map(plausible_email, strings), dtype=bool, count=len(strings)),
)
_timezone_check = _strings_check(
    lambda arrow: bools(pc.is_in(arrow, value_set=_iana_timezone_array())),
    lambda strings: strings.isin(iana_timezones()).to_numpy(dtype=bool),
)


def _max_length_check(series: pd.Series, limit: int) -> pd.Series:
    arrow = arrow_strings(series)
    if arrow is not None:  # no character is shorter than a byte: bytes within limit suffice
        longest = pc.max(pc.binary_length(arrow)).as_py()
        if longest is None or longest <= limit:
            return pd.Series(True, index=series.index)
    lengths = plain_strings(series)[0].str.len().to_numpy(dtype=np.int64, na_value=0)
    return pd.Series(lengths <= limit, index=series.index)


def _present(series: pd.Series) -> np.ndarray:
    """Not missing and, when a string, not blank."""
    present = series.notna().to_numpy(dtype=bool)
    strings, is_str = plain_strings(series)
    arrow = arrow_strings(strings)
    if not is_str.any() or (arrow is not None and not _may_need_strip(arrow)):
        return present
    return present & ~(strings.str.strip() == "").to_numpy(dtype=bool, na_value=False)


def identity_present(frame: pd.DataFrame) -> np.ndarray:
    """Per row: does it have a userId or an email (not missing, not blank)?"""
    present = np.zeros(len(frame), dtype=bool)
    for name in ("userId", "email"):
        if name in frame.columns:
            present |= _present(frame[name])
    return present


_JUDGES: list[tuple[tuple[str, ...], Callable[[pd.Series], pd.Series]]] = []
"""PeopleSchema's column checks, for :func:`_people_schema_passes`."""


def _column_check(*columns: str, name: str, judge: Callable[[pd.Series], pd.Series]) -> Any:
    _JUDGES.append((columns, judge))

    def check(cls: Any, series: pd.Series) -> pd.Series:
        return judge(series)

    return pa.check(*columns, name=name, error=name, element_wise=False)(classmethod(check))


def _length_check(column: str, limit: int) -> Any:
    return _column_check(
        column, name=f"max_length({limit})", judge=functools.partial(_max_length_check, limit=limit)
    )


class PeopleSchema(pa.DataFrameModel):
    """The rules a person must meet, on canonical column names (``userId``, ``email``, ...).

    Every column is optional and nullable, and other columns (custom traits) pass, so a
    subclass only adds what it cares about:

    >>> class MySchema(PeopleSchema):
    ...     plan: Series[str] = pa.Field(isin=["free", "pro"])
    >>> frame = pd.DataFrame({"userId": ["u1", "u2"], "plan": ["pro", "gold"]})
    >>> validate_people(frame, MySchema).report
       row column                  check value
    0    1   plan  isin(['free', 'pro'])  gold

    ``identity_required`` (a userId or an email in every row) is checked by
    :func:`validate_people` itself, since pandera cannot report a row whose values are all
    missing.
    """

    userId: Series[Any] = pa.Field(nullable=True, required=False)
    email: Series[Any] = pa.Field(nullable=True, required=False)
    phone: Series[Any] = pa.Field(nullable=True, required=False)
    first_name: Series[Any] = pa.Field(nullable=True, required=False)
    last_name: Series[Any] = pa.Field(nullable=True, required=False)
    avatar_url: Series[Any] = pa.Field(nullable=True, required=False)
    timezone: Series[Any] = pa.Field(nullable=True, required=False)
    locale: Series[Any] = pa.Field(nullable=True, required=False)

    class Config:
        strict = False
        coerce = False

    _string_type = _column_check(*STRING_FIELDS, name="string_type", judge=_string_check)
    _user_id_length = _length_check("userId", 255)
    _email_length = _length_check("email", 254)
    _phone_length = _length_check("phone", 50)
    _email_plausible = _column_check("email", name="email_plausible", judge=_email_check)
    _iana_timezone = _column_check("timezone", name="iana_timezone", judge=_timezone_check)
    _locale_tag = _column_check("locale", name="locale_tag", judge=_pattern_check(LOCALE_PATTERN))
    _http_url = _column_check("avatar_url", name="http_url", judge=_pattern_check(URL_PATTERN))

    @pa.dataframe_check(name="identity_required", error="identity_required")
    @classmethod
    def _identity_required(cls, frame: pd.DataFrame) -> pd.Series:
        return pd.Series(identity_present(frame), index=frame.index)


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate_people` found.

    ``frame`` is the cleaned canonical frame (positional RangeIndex), ``report`` one row per
    problem (``row``, ``column``, ``check``, ``value``) and ``invalid`` a bool per row: True
    where the row must not be sent.
    """

    frame: pd.DataFrame
    report: pd.DataFrame
    invalid: np.ndarray


def _clean_strings(series: pd.Series) -> pd.Series:
    series = category_values(series)
    if is_text(series.dtype):
        arrow = arrow_strings(series)
        if arrow is not None and not _may_need_strip(arrow):
            return series  # nothing to strip, nothing empty: the column as it is
        stripped = series.str.strip()
        return stripped.mask(stripped == "")
    if series.dtype == object:
        values = [(v.strip() or None) if isinstance(v, str) else v for v in series.to_numpy()]
        cleaned = pd.Series(values, index=series.index, dtype=object)
        # only strings (and missing values) become Arrow-backed strings, by the encoder's own
        # test, so later checks run vectorised; others (lone surrogates too) stay as they are
        strings = string_array(cleaned)
        if strings is not None:
            return pd.Series(pd.arrays.ArrowExtensionArray(strings), index=series.index)
        return cleaned
    return series


def _quiet_nans(series: pd.Series) -> pd.Series:
    """Signalling-NaN Decimals as plain missing values: pandas' isna raises on them."""
    if not (isinstance(series.dtype, np.dtype) and series.dtype == object):
        return series
    try:
        series.isna()
    except ArithmeticError:
        values = [None if is_missing(v) else v for v in series.to_numpy()]
        return pd.Series(values, index=series.index, dtype=object)
    return series


def clean_frame(canonical: pd.DataFrame) -> pd.DataFrame:
    """The canonical frame with its string fields cleaned, over a positional RangeIndex."""
    frame = canonical.reset_index(drop=True)
    data = {name: _quiet_nans(frame[name]) for name in frame.columns}
    data.update({name: _clean_strings(data[name]) for name in STRING_FIELDS if name in data})
    return pd.DataFrame(data, index=frame.index, copy=False) if data else frame


def _report(rows: Any, checks: Any, columns: Any = None, values: Any = None) -> pd.DataFrame:
    """Report rows (``columns`` and ``values``: None in every row unless given)."""
    nones = [None] * len(rows)
    return pd.DataFrame(
        {
            "row": np.asarray(rows, dtype=np.int64),
            "column": pd.Series(nones if columns is None else columns, dtype=object),
            "check": pd.Series(checks, dtype=object),
            "value": pd.Series(nones if values is None else values, dtype=object),
        }
    )


def _whole_frame(n_rows: int, column: Any, check: str, value: Any) -> pd.DataFrame:
    """A failure that concerns every row (a missing column, a dtype, a check that broke)."""
    return _report(np.arange(n_rows), [check] * n_rows, [column] * n_rows, [value] * n_rows)


def _from_failure_cases(cases: pd.DataFrame, n_rows: int) -> pd.DataFrame:
    """pandera's failure_cases as report rows (identity_required is ours: see PeopleSchema)."""
    cases = cases[cases["check"].astype(str) != "identity_required"]
    has_row = cases["index"].notna().to_numpy(dtype=bool)
    row_level = cases["schema_context"].astype(str).to_numpy() == "DataFrameSchema"
    cells = cases[has_row & ~row_level]
    rows = cases[has_row & row_level].drop_duplicates(["index", "check"])
    parts = [
        _report(
            cells["index"],
            cells["check"].astype(str).tolist(),
            cells["column"].tolist(),
            cells["failure_case"].tolist(),
        ),
        _report(rows["index"], rows["check"].astype(str).tolist()),
    ]
    for case in cases[~has_row].itertuples(index=False):
        column: Any = case.column if isinstance(case.column, str) else None
        if str(case.check) == "column_in_dataframe":
            column = case.failure_case
        parts.append(_whole_frame(n_rows, column, str(case.check), case.failure_case))
    return pd.concat(parts, ignore_index=True)


def _people_schema_passes(frame: pd.DataFrame) -> bool:
    """Does every row pass PeopleSchema's column checks, judged as pandera judges them
    (missing values pass)? Its columns are optional and of any type, so those checks are all
    it would report beyond identity_required, which :func:`validate_people` reports itself:
    a frame that passes costs no pandera run (a third of a dry run's validation)."""
    try:
        for columns, judge in _JUDGES:
            for column in (c for c in columns if c in frame.columns):
                series = frame[column]
                if not (judge(series).to_numpy(dtype=bool) | series.isna().to_numpy()).all():
                    return False
    except Exception:  # odd data: pandera reports it
        return False
    return True


def _run_schema(schema: Any, frame: pd.DataFrame) -> pd.DataFrame:
    if schema is PeopleSchema and _people_schema_passes(frame):
        return _report([], [])
    try:
        with _quiet_pyspark():
            schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        return _from_failure_cases(errors.failure_cases, len(frame))
    except SchemaError as error:
        return _whole_frame(len(frame), None, "schema_error", str(error))
    except Exception as error:  # a user's check that breaks on odd data must not stop a run
        return _whole_frame(len(frame), None, "schema_error", f"{type(error).__name__}: {error}")
    return _report([], [])


def _schemas(schema: Any) -> list[Any]:
    if schema is None:
        return [PeopleSchema]
    if isinstance(schema, type) and issubclass(schema, PeopleSchema):
        return [schema]
    return [PeopleSchema, schema]


def validate_people(
    canonical: pd.DataFrame, schema: type[pa.DataFrameModel] | pa.DataFrameSchema | None = None
) -> ValidationResult:
    """Clean and check a canonical frame; report every problem in one pass, never raise.

    ``schema`` is the user's own rules: a :class:`PeopleSchema` subclass, or any other pandera
    model or ``DataFrameSchema``, which then runs alongside PeopleSchema. A failure that
    concerns a whole column (missing, wrong dtype, a check that raised) marks every row.

    >>> frame = pd.DataFrame({"userId": [" u1 ", None], "email": ["a@example.com", "x@"]})
    >>> result = validate_people(frame)
    >>> result.frame["userId"].tolist()[0], result.invalid.tolist()
    ('u1', [False, True])
    >>> row_reasons(result.report, 2)
    [None, "email: not a plausible email address (value 'x@')"]
    """
    frame = clean_frame(canonical)
    missing = np.flatnonzero(~identity_present(frame))
    parts = [_report(missing, ["identity_required"] * len(missing))]
    parts += [_run_schema(s, frame) for s in _schemas(schema)]
    report = pd.concat(parts, ignore_index=True)
    report = report.drop_duplicates(["row", "column", "check"], ignore_index=True)
    report = report.sort_values("row", kind="stable", ignore_index=True)
    invalid = np.zeros(len(frame), dtype=bool)
    invalid[report["row"].to_numpy(dtype=np.int64)] = True
    return ValidationResult(frame=frame, report=report, invalid=invalid)


def describe_check(check: str) -> str:
    """A readable sentence for a check name.

    >>> describe_check("max_length(255)"), describe_check("isin(['a'])")
    ('longer than 255 characters', "fails isin(['a'])")
    """
    if check in _MESSAGES:
        return _MESSAGES[check]
    if match := _MAX_LENGTH.fullmatch(check):
        return f"longer than {match.group(1)} characters"
    return f"fails {check}"


def _shown(value: Any) -> str:
    text = repr(value)
    return f" (value {text})" if len(text) <= _SHOWN_VALUE else ""


def row_reasons(
    report: pd.DataFrame, n_rows: int, messages: Mapping[str, str] | None = None
) -> list[str | None]:
    """Per row position: its problems in one readable line, or None when it has none
    (``messages``: the texts of checks that :func:`describe_check` does not know; events').

    >>> report = pd.DataFrame({"row": [1, 1], "column": ["email", "userId"],
    ...                        "check": ["email_plausible", "max_length(255)"],
    ...                        "value": ["x@", "u" * 300]})
    >>> row_reasons(report, 2)
    [None, "email: not a plausible email address (value 'x@'); userId: longer than 255 characters"]
    """
    reasons: dict[int, list[str]] = {}
    listed = (report[name].tolist() for name in REPORT_COLUMNS)
    for row, column, check, value in zip(*listed, strict=True):
        if not 0 <= row < n_rows:
            continue
        check = str(check)
        text = (messages or {}).get(check) or describe_check(check)
        if check == "json_value":  # the value is the reason, maybe already naming its column
            text = str(value) if str(value).startswith(f"{column}:") else f"{column}: {value}"
        elif column is not None and (isinstance(column, str) or not pd.isna(column)):
            shown = "" if value is None or check.startswith("max_length") else _shown(value)
            text = f"{column}: {text}{shown}"
        reasons.setdefault(int(row), []).append(text)
    lines: list[str | None] = [None] * n_rows
    for row, texts in reasons.items():
        lines[row] = "; ".join(texts)
    return lines
