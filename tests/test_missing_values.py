"""Missing values stay missing, whatever the column's dtype and the pandas version.

None, NaN, pd.NA and NaT in identities and traits are left out of people (never sent as the
strings "None", "nan" or "<NA>"), never judged by the string rules, and give the same identity
keys and content hashes as the same people built from plain Python values. On pandas 2,
``astype("str")`` turns None into "None": these tests run on pandas 2 and 3 in CI.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flameup_pandas._run.plan import Rules

from .reference import content_hashes

DTYPES: dict[str, Any] = {
    "object": object,
    "str": "str",  # pandas' str dtype on pandas 3, object on pandas 2
    "string[python]": "string[python]",
    "string[pyarrow]": "string[pyarrow]",
    "arrow": pd.ArrowDtype(pa.string()),
    "category": "category",
}
MISSING = (None, np.nan, pd.NA, pd.NaT)
BLANK = ("", "  ")  # identities and known traits: stripped, then missing
NAMES = ("userId", "email", "first_name", "plan")
NEVER_SENT = ("None", "nan", "NaN", "<NA>", "NaT")

dtypes = st.sampled_from(sorted(DTYPES))


@st.composite
def columns(draw: st.DrawFn) -> dict[str, Any]:
    """Per column: its dtype, and per row a present value or a missing marker."""
    n = draw(st.integers(min_value=1, max_value=12))
    absent = st.sampled_from(MISSING + BLANK)
    absent_custom = st.sampled_from(MISSING)  # a custom trait's "" is a value, sent as is
    rows = range(n)
    return {
        "n": n,
        "dtypes": {name: DTYPES[draw(dtypes)] for name in NAMES},
        "userId": [draw(st.one_of(absent, st.just(f" u{i} "))) for i in rows],
        "email": [draw(st.one_of(absent, st.just(f"p{i}@example.com"))) for i in rows],
        "first_name": [draw(st.one_of(absent, st.sampled_from(["Ada", " Bo "]))) for _ in rows],
        "plan": [draw(st.one_of(absent_custom, st.sampled_from(["pro", ""]))) for _ in rows],
    }


def _column(values: list[Any], dtype: Any) -> pd.Series:
    if isinstance(dtype, pd.ArrowDtype):  # arrow refuses NaN in strings: come via pandas' NA
        return pd.Series(values, dtype="string[pyarrow]").astype(dtype)
    return pd.Series(values, dtype=dtype)


def _frame(data: dict[str, Any], dtypes: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({name: _column(data[name], dtypes[name]) for name in NAMES})


def _present(value: Any, strip: bool) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip() if strip else value
    return value if value or not strip else None


def _expected(data: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The person of each row, built from plain Python values (None: the row has no identity)."""
    people: list[dict[str, Any] | None] = []
    for i in range(data["n"]):
        person: dict[str, Any] = {}
        for name in ("userId", "email"):
            if (value := _present(data[name][i], strip=True)) is not None:
                person[name] = value
        traits = {}
        if (value := _present(data["first_name"][i], strip=True)) is not None:
            traits["first_name"] = value
        if (value := _present(data["plan"][i], strip=False)) is not None:
            traits["plan"] = value
        if traits:
            person["traits"] = traits
        people.append(person if person else None)
    return people


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in _walk(item)]
    return [value]


settings_ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(data=columns())
def test_missing_values_are_never_sent_in_any_dtype(data):
    frame = _frame(data, data["dtypes"])
    expected = _expected(data)
    people = frame.flameup.to_people()
    assert people == [p for p in expected if p is not None and _has_identity(p)]
    for person in people:
        assert not set(_walk(person)) & set(NEVER_SENT)


@settings_
@given(data=columns())
def test_validate_reports_only_rows_without_identity_in_any_dtype(data):
    frame = _frame(data, data["dtypes"])
    expected = _expected(data)
    report = frame.flameup.validate()
    assert report["check"].tolist() == ["identity_required"] * len(report)
    no_identity = [i for i, p in enumerate(expected) if p is None or not _has_identity(p)]
    assert report["index"].tolist() == no_identity
    assert not set(report["value"].dropna().astype(object)) & set(NEVER_SENT)


def _has_identity(person: dict[str, Any]) -> bool:
    return "userId" in person or "email" in person


@settings_
@given(data=columns(), other=dtypes)
def test_keys_and_content_hashes_do_not_depend_on_the_dtype(data, other):
    """The same people give the same identity keys and hashes as plain Python dicts would."""
    plans = [
        Rules().plan(_frame(data, data["dtypes"])),
        Rules().plan(_frame(data, dict.fromkeys(data["dtypes"], DTYPES[other]))),
    ]
    expected = [p if p is not None and _has_identity(p) else None for p in _expected(data)]
    keys = [
        None if p is None else f"u:{p['userId']}" if "userId" in p else f"e:{p['email']}"
        for p in expected
    ]
    for plan in plans:
        assert plan.key_array.to_pylist() == keys
        assert content_hashes(plan.payloads.people).tolist() == content_hashes(expected).tolist()


def test_the_reported_example_on_every_dtype():
    """The issue's frame: missing ids are left out, and row 0 is sent by its userId alone."""
    for dtype in DTYPES.values():
        df = pd.DataFrame(
            {
                "user_id": _column(["u1", None, np.nan], dtype),
                "email": _column([None, "b@example.com", "c@example.com"], dtype),
            }
        )
        assert df.flameup.to_people() == [
            {"userId": "u1"},
            {"email": "b@example.com"},
            {"email": "c@example.com"},
        ], dtype
        assert df.flameup.validate().empty, dtype
