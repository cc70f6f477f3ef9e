"""PeopleSchema and validate_people: every problem reported in one pass, never raised."""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.typing import Series

from flameup_pandas._people.schema import PeopleSchema, row_reasons, validate_people

MISSING = [None, np.nan, pd.NA, pd.NaT]


def problems(frame: pd.DataFrame, schema: Any = None) -> list[tuple[int, Any, str]]:
    report = validate_people(frame, schema).report
    return list(zip(report["row"], report["column"], report["check"], strict=True))


def test_a_clean_frame_has_an_empty_report_with_the_report_columns() -> None:
    frame = pd.DataFrame(
        {
            "userId": ["u1", "u2"],
            "email": ["a@example.com", None],
            "phone": ["+49 30 1234", None],
            "first_name": ["Ann", None],
            "avatar_url": ["https://cdn.example.com/a.png", "http://x.io"],
            "timezone": ["Europe/Berlin", "UTC"],
            "locale": ["en-US", "zh-Hant-TW"],
            "plan": ["pro", 3],
        }
    )
    result = validate_people(frame)
    assert list(result.report.columns) == ["row", "column", "check", "value"]
    assert result.report.empty
    assert result.invalid.tolist() == [False, False]


def test_identity_required_per_row_and_blank_counts_as_missing() -> None:
    frame = pd.DataFrame({"userId": ["u1", None, "  ", None], "email": [None, "a@x.io", "", None]})
    assert problems(frame) == [(2, None, "identity_required"), (3, None, "identity_required")]


def test_identity_required_without_any_identity_column() -> None:
    assert problems(pd.DataFrame({"plan": ["a"]})) == [(0, None, "identity_required")]


def _email_of_length(n: int) -> str:
    """A plausible address of ``n`` characters (labels within their 63)."""
    labels = ["b" * 63] * 3
    return "a@" + ".".join(labels) + "." + "c" * (n - 2 - 64 * 3 - 4) + ".com"


@pytest.mark.parametrize(
    ("column", "good", "bad", "check"),
    [
        ("userId", "u" * 255, "u" * 256, "max_length(255)"),
        ("email", _email_of_length(254), _email_of_length(255), "max_length(254)"),
        ("phone", "1" * 50, "1" * 51, "max_length(50)"),
        ("email", "first.last+tag@sub.example.co", "x@", "email_plausible"),
        ("email", "ünï@exämple.de", "a b@example.com", "email_plausible"),
        ("email", "a@b.io", "a@@b.io", "email_plausible"),
        ("email", "a@b.io", "a@localhost", "email_plausible"),
        ("timezone", "America/Argentina/Buenos_Aires", "Mars/Olympus", "iana_timezone"),
        ("timezone", "UTC", "utc", "iana_timezone"),
        ("locale", "pt_BR", "english", "locale_tag"),
        ("locale", "es-419", "e", "locale_tag"),
        ("avatar_url", "HTTPS://example.com", "ftp://example.com/a.png", "http_url"),
        ("avatar_url", "https://example.com:8443/a?b#c", "https:///nohost", "http_url"),
        ("first_name", "Ann", 5, "string_type"),
        ("userId", "u", 1.5, "string_type"),
        ("email", "a@b.io", b"a@b.io", "string_type"),
    ],
)
def test_each_rule(column: str, good: Any, bad: Any, check: str) -> None:
    frame = pd.DataFrame({"userId": ["u0", "u1"], column: pd.Series([good, bad], dtype=object)})
    assert problems(frame) == [(1, column, check)]


def test_missing_values_never_break_a_rule() -> None:
    columns = ["userId", "email", "phone", "timezone", "locale", "avatar_url", "last_name"]
    frame = pd.DataFrame({c: pd.Series(["u1", *MISSING], dtype=object) for c in columns})
    frame["email"] = pd.Series(["a@b.io", *MISSING], dtype=object)
    frame["timezone"] = pd.Series(["UTC", *MISSING], dtype=object)
    frame["locale"] = pd.Series(["en", *MISSING], dtype=object)
    frame["avatar_url"] = pd.Series(["http://a.io", *MISSING], dtype=object)
    report = validate_people(frame).report
    assert set(report["check"]) == {"identity_required"}
    assert report["row"].tolist() == [1, 2, 3, 4]


def test_cleaning_strips_blanks_from_known_fields_only() -> None:
    frame = pd.DataFrame(
        {"userId": [" u1\t"], "email": [" a@b.io "], "timezone": [" UTC "], "plan": [" pro "]}
    )
    result = validate_people(frame)
    assert result.report.empty
    assert result.frame.iloc[0].tolist() == ["u1", "a@b.io", "UTC", " pro "]


def test_input_frame_is_not_modified_and_index_becomes_positional() -> None:
    frame = pd.DataFrame({"userId": [" u1 ", "u2"]}, index=["x", "x"])
    result = validate_people(frame)
    assert frame["userId"].tolist() == [" u1 ", "u2"]
    assert isinstance(result.frame.index, pd.RangeIndex)


@pytest.mark.parametrize(
    "dtype",
    ["object", "str", "string", "string[pyarrow]", "category"],
)
def test_any_string_dtype_gives_the_same_report(dtype: str) -> None:
    frame = pd.DataFrame(
        {
            "userId": pd.Series(["u1", None, "u3"], dtype=dtype),
            "email": pd.Series(["bad", "a@b.io", None], dtype=dtype),
            "timezone": pd.Series(["UTC", "Nowhere", None], dtype=dtype),
        }
    )
    assert problems(frame) == [(0, "email", "email_plausible"), (1, "timezone", "iana_timezone")]


def test_odd_object_columns_become_report_rows() -> None:
    frame = pd.DataFrame(
        {
            "userId": pd.Series([b"u1", Decimal("1.5"), ["u"], {"a": 1}, "ok"], dtype=object),
            "email": pd.Series([1, 2.5, True, object(), "a@b.io"], dtype=object),
            "locale": pd.Series([math.inf, None, "en", 3, "de"], dtype=object),
        }
    )
    result = validate_people(frame)
    assert result.invalid.tolist() == [True, True, True, True, False]
    assert set(result.report["check"]) == {"string_type"}


def test_numeric_columns_in_string_fields_fail_string_type() -> None:
    frame = pd.DataFrame({"userId": ["a", "b"], "first_name": [1.5, np.nan]})
    assert problems(frame) == [(0, "first_name", "string_type")]


def test_user_subclass_adds_rules_with_pandera_check_names() -> None:
    class MySchema(PeopleSchema):
        plan: Series[str] = pa.Field(isin=["free", "pro"])

    frame = pd.DataFrame({"userId": ["u1", "u2"], "email": ["x@", None], "plan": ["pro", "gold"]})
    assert problems(frame, MySchema) == [
        (0, "email", "email_plausible"),
        (1, "plan", "isin(['free', 'pro'])"),
    ]


def test_user_dataframe_schema_runs_alongside_people_schema() -> None:
    schema = pa.DataFrameSchema({"age": pa.Column(int, pa.Check.ge(0), nullable=True)})
    frame = pd.DataFrame(
        {"userId": ["u1", "u2", "u3"], "email": ["a@b.io", "x@", None], "age": [3, -1, 5]}
    )
    assert problems(frame, schema) == [
        (1, "email", "email_plausible"),
        (1, "age", "greater_than_or_equal_to(0)"),
    ]


def test_a_missing_required_column_of_the_users_schema_marks_every_row() -> None:
    class MySchema(PeopleSchema):
        plan: Series[str]

    result = validate_people(pd.DataFrame({"userId": ["a", "b"]}), MySchema)
    assert result.invalid.tolist() == [True, True]
    assert set(result.report["column"]) == {"plan"}
    assert set(result.report["check"]) == {"column_in_dataframe"}


def test_a_user_check_that_raises_becomes_report_rows_not_an_exception() -> None:
    """pandera reports a check that raised once for the column: every row is marked."""

    class Fragile(PeopleSchema):
        plan: Series[Any] = pa.Field(nullable=True)

        @pa.check("plan", name="plan_upper", element_wise=True)
        @classmethod
        def _upper(cls, value: Any) -> bool:
            return bool(value.isupper())

    result = validate_people(pd.DataFrame({"userId": ["a", "b"], "plan": ["PRO", 3]}), Fragile)
    assert result.invalid.tolist() == [True, True]
    assert set(result.report["check"]) == {"plan_upper"}
    assert "isupper" in str(result.report["value"][0])


def test_a_broken_user_schema_is_reported_on_every_row() -> None:
    class Broken(PeopleSchema):
        @pa.check("nonexistent", name="never")
        @classmethod
        def _never(cls, series: pd.Series) -> pd.Series:
            return series.notna()

    result = validate_people(pd.DataFrame({"userId": ["a", "b"]}), Broken)
    assert result.invalid.tolist() == [True, True]
    assert set(result.report["check"]) == {"schema_error"}


def test_a_user_dataframe_check_reports_rows_without_a_column() -> None:
    class Pair(PeopleSchema):
        @pa.dataframe_check(name="plan_needs_email")
        @classmethod
        def _pair(cls, frame: pd.DataFrame) -> pd.Series:
            return frame["email"].notna() | frame["plan"].isna()

    frame = pd.DataFrame({"userId": ["a", "b"], "email": ["a@b.io", None], "plan": ["x", "y"]})
    assert problems(frame, Pair) == [(1, None, "plan_needs_email")]


def test_row_reasons_reads_like_a_sentence() -> None:
    frame = pd.DataFrame({"userId": ["u" * 300, "ok", None], "email": ["x@", "a@b.io", None]})
    reasons = row_reasons(validate_people(frame).report, 3)
    assert reasons[0] == (
        "userId: longer than 255 characters; email: not a plausible email address (value 'x@')"
    )
    assert reasons[1] is None
    assert reasons[2] == "no userId or email (one of them is required)"


def test_row_reasons_of_an_empty_report() -> None:
    assert row_reasons(validate_people(pd.DataFrame({"userId": ["a"]})).report, 1) == [None]


def test_empty_frames() -> None:
    result = validate_people(pd.DataFrame({"userId": pd.Series([], dtype=object)}))
    assert result.report.empty
    assert len(result.invalid) == 0
    result = validate_people(pd.DataFrame())
    assert result.report.empty
    assert len(result.invalid) == 0


def test_a_hundred_thousand_rows_validate_quickly() -> None:
    """Vectorised checks: far below the per-row speed of Python (a loose bound for CI)."""
    import time

    n = 100_000
    frame = pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(n)],
            "email": [f"user{i}@example.com" for i in range(n)],
            "timezone": ["Europe/Berlin"] * n,
            "locale": ["en-US"] * n,
            "avatar_url": ["https://x.io/a.png"] * n,
        }
    ).astype(object)
    start = time.perf_counter()
    result = validate_people(frame)
    assert time.perf_counter() - start < 5
    assert result.report.empty


# -- property-based -------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.just(np.nan),
    st.just(pd.NA),
    st.just(pd.NaT),
    st.text(max_size=12),
    st.sampled_from(["", " ", "a@b.io", "UTC", "en-US", "https://x.io", "x@", "\u00a0"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=4),
)

_field_names = st.sampled_from(
    ["userId", "email", "phone", "first_name", "timezone", "locale", "avatar_url", "plan"]
)


@st.composite
def odd_frames(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(min_value=0, max_value=6))
    names = draw(st.lists(_field_names, min_size=1, max_size=5, unique=True))
    data = {}
    for name in names:
        values = draw(st.lists(_scalars, min_size=n_rows, max_size=n_rows))
        dtype = draw(st.sampled_from(["object", "category", "str"]))
        series = pd.Series(values, dtype=object)
        if dtype != "object":
            with contextlib.suppress(TypeError, ValueError, UnicodeError, ArithmeticError):
                series = series.astype(dtype)
        data[name] = series
    return pd.DataFrame(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_frames())
def test_odd_frames_never_crash_and_every_problem_row_is_invalid(frame: pd.DataFrame) -> None:
    result = validate_people(frame)
    assert len(result.invalid) == len(frame)
    assert isinstance(result.frame.index, pd.RangeIndex)
    assert set(result.report["row"]) == set(np.flatnonzero(result.invalid))
    reasons = row_reasons(result.report, len(frame))
    assert [r is not None for r in reasons] == result.invalid.tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_frames())
def test_a_frame_passes_the_shortcut_only_where_pandera_reports_nothing(frame) -> None:
    """validate_people skips pandera's run of PeopleSchema for a frame that passes its column
    checks: on odd frames, exactly those on which pandera reports nothing but identity."""
    from flameup_pandas._people import schema

    cleaned = schema.clean_frame(frame)
    try:
        PeopleSchema.validate(cleaned, lazy=True)
        reported = set()
    except pa.errors.SchemaErrors as errors:
        reported = set(errors.failure_cases["check"].astype(str)) - {"identity_required"}
    assert schema._people_schema_passes(cleaned) == (not reported)
