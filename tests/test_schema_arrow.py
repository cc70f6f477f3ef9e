"""Arrow-backed string columns take vectorised shortcuts in validation (checks judged once per
distinct value, a strip skipped when no value can need it, a length bound from bytes): each
must give exactly what the per-value Python path gives on the same values as an object column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flameup_pandas._people.schema import PeopleSchema, ValidationResult, validate_people

ARROW = pd.StringDtype("pyarrow")
FIELDS = ["userId", "email", "phone", "first_name", "timezone", "locale", "avatar_url"]


def _both(data: dict[str, list[object]]) -> tuple[ValidationResult, ValidationResult]:
    """validate_people of the same values as object columns and as Arrow-backed strings."""
    as_object = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})
    as_arrow = pd.DataFrame({k: pd.Series(v, dtype=ARROW) for k, v in data.items()})
    return validate_people(as_object), validate_people(as_arrow)


def _same(data: dict[str, list[object]]) -> None:
    reference, arrow = _both(data)
    pd.testing.assert_frame_equal(arrow.report, reference.report)
    assert arrow.invalid.tolist() == reference.invalid.tolist()
    for name in data:
        assert _values(arrow.frame[name]) == _values(reference.frame[name]), name


def _values(series: pd.Series) -> list[object]:
    """The cleaned values, any missing value as None."""
    return [None if v is None or v is pd.NA or v != v else v for v in series.tolist()]


_pieces = st.sampled_from(
    [
        "",
        " ",
        "\u00a0",
        "\u2003",
        "\x1f",
        "\t",
        "é",
        "日本",
        "a",
        "@",
        ".",
        "x@y.io",
        "UTC",
        "Europe/Berlin",
        "en-US",
        "pt_BR",
        "https://cdn.example.com/a.png",
        "http://",
        "-",
        "_",
        "\x7f",
    ]
)
_texts = st.lists(_pieces, max_size=4).map("".join)
_cells = st.one_of(st.none(), _texts)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(FIELDS), st.lists(_cells, min_size=1, max_size=8), min_size=1
    ).filter(lambda d: len({len(v) for v in d.values()}) == 1)
)
def test_arrow_columns_clean_and_judge_exactly_as_python_does(
    data: dict[str, list[object]],
) -> None:
    _same(data)


@pytest.mark.parametrize("repeat", [1, 3_000])
def test_few_distinct_values_over_many_rows_are_judged_per_row(repeat: int) -> None:
    """Past the sample size, a column of few distinct values is judged once per value; a
    value that first appears late and a column many-valued after the sample still count."""
    n = 2 * repeat + 5
    timezones = (["UTC", "Europe/Berlin"] * repeat + ["Mars/Base", None, "UTC", "UTC", "x"])[:n]
    locales = (["en-US", "pt_BR"] * repeat + ["english", "de", None, "e", "zh-Hant-TW"])[:n]
    emails = [f"u{i}@example.com" for i in range(n - 2)] + ["nope", None]
    user_ids = [f"  u{i}" if i % 1000 == 7 else f"u{i}" for i in range(n)]
    _same(
        {
            "userId": list(user_ids),
            "email": list(emails),
            "timezone": list(timezones),
            "locale": list(locales),
        }
    )
    late: dict[str, list[object]] = {
        "userId": [f"u{i}" for i in range(5_000)],
        "locale": ["en"] * 2_500 + [f"l{i}" for i in range(2_500)],  # many values, late
    }
    _same(late)


def test_length_limits_count_characters_not_bytes() -> None:
    """Bytes within the limit prove characters are; past it, characters are counted."""
    ok, too_long = "é" * 255, "é" * 256  # 510 and 512 bytes
    data: dict[str, list[object]] = {"userId": [ok, too_long, "u3"]}
    _same(data)
    report = validate_people(pd.DataFrame({"userId": pd.Series(data["userId"], dtype=ARROW)}))
    assert report.report["row"].tolist() == [1]
    assert report.report["check"].tolist() == ["max_length(255)"]


def test_the_schema_alone_still_requires_an_identity() -> None:
    """Outside validate_people (which reports identity itself), PeopleSchema keeps the rule."""
    frame = pd.DataFrame({"userId": pd.Series(["u1", None], dtype=ARROW), "plan": ["a", "b"]})
    with pytest.raises(Exception, match="identity_required"):
        PeopleSchema.validate(frame)
    result = validate_people(frame)
    assert result.report["check"].tolist() == ["identity_required"]
    assert result.invalid.tolist() == [False, True]
    assert np.array_equal(result.invalid, np.array([False, True]))


def test_sliced_and_many_chunked_columns_are_judged_by_their_own_values() -> None:
    """A slice of an Arrow column starts inside its buffers and a concatenation holds several
    chunks: the shortcuts read each chunk's own offsets, not the buffers' start."""
    clean: list[object] = ["ok", None, "u1"] * 1_000  # the first chunks need no strip
    values = clean + [" lead", "ok", "", None, "tz", "trail ", "é", "x"] * 25
    zones: list[object] = ["UTC", "Mars/Base", None, "Europe/Berlin"] * 800
    whole = pd.DataFrame(
        {"userId": pd.Series(values, dtype=ARROW), "timezone": pd.Series(zones, dtype=ARROW)}
    )
    for start in (0, 1, 5, 2_501):
        part = whole.iloc[start:]
        chunked = pd.concat([part.iloc[:7], part.iloc[7:400], part.iloc[400:]])
        assert chunked["userId"].array.__arrow_array__().num_chunks > 1
        for frame in (part, chunked):
            got = validate_people(frame)
            want = validate_people(frame.astype(object))
            pd.testing.assert_frame_equal(got.report, want.report)
            assert _values(got.frame["userId"]) == _values(want.frame["userId"])
