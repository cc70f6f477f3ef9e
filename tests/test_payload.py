"""Columnar conversion of canonical rows into people dicts, JSON bodies and content hashes."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flameup_pandas._people.encode import encode_people as build_people
from flameup_pandas._people.mapping import canonical_frame, resolve_mapping
from flameup_pandas._people.outgoing import encode_batch
from flameup_pandas._people.schema import row_reasons, validate_people
from flameup_pandas.exceptions import MappingError, NaiveTimestampError

from .reference import content_hashes, identity_key, identity_keys


def people(frame: pd.DataFrame, **kwargs: Any) -> list[dict[str, Any] | None]:
    return build_people(frame, **kwargs).people


def test_person_shape_is_exactly_what_is_sent() -> None:
    frame = pd.DataFrame(
        {
            "userId": ["u1"],
            "email": ["a@b.io"],
            "phone": ["+1 555"],
            "first_name": ["Ann"],
            "traits.phone": ["+1 556"],
            "plan": ["pro"],
        }
    )
    assert people(frame) == [
        {
            "userId": "u1",
            "email": "a@b.io",
            "phone": "+1 555",
            "traits": {"first_name": "Ann", "phone": "+1 556", "plan": "pro"},
        }
    ]


def test_missing_values_are_left_out_and_empty_traits_too() -> None:
    frame = pd.DataFrame(
        {
            "userId": ["u1", None, "u3"],
            "email": [None, "b@x.io", "c@x.io"],
            "score": [np.nan, 2.0, np.nan],
            "plan": pd.Series([pd.NA, "pro", None], dtype=object),
            "seen": pd.to_datetime([None, None, None]).tz_localize("UTC"),
        }
    )
    assert people(frame) == [
        {"userId": "u1"},
        {"email": "b@x.io", "traits": {"score": 2.0, "plan": "pro"}},
        {"userId": "u3", "email": "c@x.io"},
    ]


def test_send_nulls_sends_missing_values_as_null_but_never_a_null_user_id() -> None:
    frame = pd.DataFrame({"userId": [None, "u2"], "email": ["a@b.io", None], "plan": [None, "x"]})
    assert people(frame, send_nulls=True) == [
        {"email": "a@b.io", "traits": {"plan": None}},
        {"userId": "u2", "email": None, "traits": {"plan": "x"}},
    ]


def test_numpy_and_pandas_scalars_become_plain_python() -> None:
    frame = pd.DataFrame(
        {
            "userId": ["u1", "u2"],
            "i8": np.array([1, 2], dtype=np.int8),
            "u64": np.array([2**64 - 1, 0], dtype=np.uint64),
            "f32": np.array([1.5, 2.5], dtype=np.float32),
            "b": [True, False],
            "nullable": pd.array([7, None], dtype="Int64"),
            "nbool": pd.array([True, None], dtype="boolean"),
            "nfloat": pd.array([0.5, None], dtype="Float64"),
            "obj": pd.Series([np.int64(5), np.float64(0.25)], dtype=object),
            "cat": pd.Categorical(["x", None]),
        }
    )
    first, second = people(frame)
    assert first == {
        "userId": "u1",
        "traits": {
            "i8": 1,
            "u64": 2**64 - 1,
            "f32": 1.5,
            "b": True,
            "nullable": 7,
            "nbool": True,
            "nfloat": 0.5,
            "obj": 5,
            "cat": "x",
        },
    }
    assert second == {
        "userId": "u2",
        "traits": {"i8": 2, "u64": 0, "f32": 2.5, "b": False, "obj": 0.25},
    }
    for value in [*first["traits"].values(), *second["traits"].values()]:  # type: ignore[index]
        assert type(value) in (int, float, bool, str)


def test_aware_timestamps_become_iso_utc_keeping_sub_seconds_only_when_present() -> None:
    stamps = pd.Series(
        pd.to_datetime(
            ["2024-01-02 04:04:05", "2024-01-02 04:04:05.25", "1960-06-01 01:00:00.000001"],
            format="ISO8601",
        )
    ).dt.tz_localize("Europe/Berlin")
    frame = pd.DataFrame({"userId": ["a", "b", "c"], "at": stamps})
    assert [p["traits"]["at"] for p in people(frame)] == [  # type: ignore[index]
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05.250Z",
        "1960-06-01T00:00:00.000001Z",
    ]


def test_nanoseconds_and_other_units_are_kept() -> None:
    stamps = pd.Series([pd.Timestamp("2024-01-02T03:04:05.000000001", tz="UTC")])
    frame = pd.DataFrame({"userId": ["a"], "at": stamps})
    assert people(frame)[0]["traits"]["at"] == "2024-01-02T03:04:05.000000001Z"  # type: ignore[index]
    frame["at"] = pd.Series([pd.Timestamp("2024-01-02T03:04:05", tz="UTC")]).astype(
        "datetime64[s, UTC]"
    )
    assert people(frame)[0]["traits"]["at"] == "2024-01-02T03:04:05Z"  # type: ignore[index]


def test_naive_timestamps_are_an_error_naming_the_column_unless_utc_is_asked() -> None:
    frame = pd.DataFrame({"userId": ["a"], "seen": pd.to_datetime(["2024-01-02 03:04:05"])})
    with pytest.raises(NaiveTimestampError, match=r"traits\.seen"):
        build_people(frame)
    assert people(frame, naive_timestamps="utc")[0]["traits"] == {  # type: ignore[index]
        "seen": "2024-01-02T03:04:05Z"
    }
    objects = pd.DataFrame({"userId": ["a"], "seen": [dt.datetime(2024, 1, 2)]}, dtype=object)
    with pytest.raises(NaiveTimestampError):
        build_people(objects)


def test_a_naive_column_of_only_missing_values_is_fine() -> None:
    frame = pd.DataFrame({"userId": ["a"], "seen": pd.to_datetime([None])})
    assert people(frame) == [{"userId": "a"}]


def test_object_values_dates_decimals_lists_and_dicts() -> None:
    values = [
        dt.date(2024, 1, 2),
        Decimal("19.99"),
        [1, "a", np.nan, None],
        {"k": [1, 2], "n": np.int64(3)},
        np.array([1, 2]),
        dt.datetime(2024, 1, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        pd.Timestamp("2024-01-02", tz="UTC"),
    ]
    frame = pd.DataFrame({"userId": [f"u{i}" for i in range(len(values))], "v": values})
    assert [p["traits"]["v"] for p in people(frame)] == [  # type: ignore[index]
        "2024-01-02",
        Decimal("19.99"),
        [1, "a", None, None],
        {"k": [1, 2], "n": 3},
        [1, 2],
        "2024-01-02T03:00:00Z",
        "2024-01-02T00:00:00Z",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (math.inf, "traits.v: inf is not valid JSON"),
        (-math.inf, "traits.v: -inf is not valid JSON"),
        (b"raw", "traits.v: bytes have no JSON meaning"),
        (dt.timedelta(seconds=3), "traits.v: timedelta (time span) values have no JSON meaning"),
        (object(), "traits.v: object values have no JSON meaning"),
        (10**30, "does not fit in 64 bits"),
        (Decimal("Infinity"), "Infinity is not valid JSON"),
        ({1: "a"}, "keys that are not strings"),
        ([math.inf], "inf is not valid JSON"),
        ("bad \ud800 surrogate", "traits.v: not valid JSON"),
        (complex(1, 2), "complex"),
    ],
)
def test_values_json_cannot_hold_make_the_row_a_problem(value: Any, reason: str) -> None:
    frame = pd.DataFrame({"userId": ["ok", "bad"], "v": pd.Series(["fine", value], dtype=object)})
    result = build_people(frame)
    assert result.people[0] == {"userId": "ok", "traits": {"v": "fine"}}
    assert result.people[1] is None
    assert reason in result.problems[1]


def test_signalling_nan_decimals_are_missing_values() -> None:
    """pandas' own isna raises on Decimal('sNaN'); it must not stop a run."""
    frame = pd.DataFrame(
        {"userId": ["a", "b"], "v": pd.Series([Decimal("sNaN"), [1]], dtype=object)}
    )
    checked = validate_people(frame)
    assert people(checked.frame) == [{"userId": "a"}, {"userId": "b", "traits": {"v": [1]}}]
    assert people(frame) == [{"userId": "a"}, {"userId": "b", "traits": {"v": [1]}}]


def test_infinite_floats_and_timedeltas_in_typed_columns() -> None:
    frame = pd.DataFrame(
        {
            "userId": ["a", "b", "c"],
            "score": [1.0, math.inf, np.nan],
            "wait": pd.to_timedelta([None, None, 5], unit="s"),
        }
    )
    result = build_people(frame)
    assert result.people[0] == {"userId": "a", "traits": {"score": 1.0}}
    assert result.problems == {
        1: "traits.score: inf is not valid JSON",
        2: "traits.wait: timedelta (time span) values have no JSON meaning; convert them first",
    }


def test_top_level_fields_must_be_strings() -> None:
    frame = pd.DataFrame({"userId": pd.Series(["a", 1.5], dtype=object)})
    result = build_people(frame)
    assert result.people == [{"userId": "a"}, None]
    assert result.problems == {1: "userId: not a string (1.5)"}


def test_rows_without_identity_cannot_be_sent() -> None:
    frame = pd.DataFrame({"userId": ["a", None], "plan": ["x", "y"]})
    result = build_people(frame)
    assert result.people[1] is None
    assert result.problems == {1: "no userId or email"}


def test_skip_leaves_rows_out_but_lists_their_problems() -> None:
    """A row already invalid is not built, but what else it breaks is still listed (every rule
    a row breaks is reported); a missing identity is validation's to report."""
    frame = pd.DataFrame({"userId": ["a", None, "c"], "v": [1.0, math.inf, 2.0]})
    result = build_people(frame, skip=np.array([False, True, False]))
    assert result.people == [
        {"userId": "a", "traits": {"v": 1.0}},
        None,
        {"userId": "c", "traits": {"v": 2.0}},
    ]
    assert result.problems == {1: "traits.v: inf is not valid JSON"}


def test_arrow_backed_columns() -> None:
    frame = pd.DataFrame(
        {
            "userId": pd.Series(["a", "b"], dtype="string[pyarrow]"),
            "n": pd.Series([1, None], dtype="int64[pyarrow]"),
            "s": pd.Series(["x", None], dtype=pd.ArrowDtype(pa.string())),
            "t": pd.Series(
                [pd.Timestamp("2024-01-02", tz="UTC"), None],
                dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC")),
            ),
            "d": pd.Series([dt.date(2024, 1, 2), None], dtype=pd.ArrowDtype(pa.date32())),
            "l": pd.Series([[1, 2], None], dtype=pd.ArrowDtype(pa.list_(pa.int64()))),
        }
    )
    assert people(frame) == [
        {
            "userId": "a",
            "traits": {
                "n": 1,
                "s": "x",
                "t": "2024-01-02T00:00:00Z",
                "d": "2024-01-02",
                "l": [1, 2],
            },
        },
        {"userId": "b"},
    ]


def test_empty_frames() -> None:
    assert build_people(pd.DataFrame({"userId": pd.Series([], dtype=object)})).people == []
    result = build_people(pd.DataFrame(index=range(2)))
    assert result.people == [None, None]


def test_from_a_user_frame_through_mapping_and_validation() -> None:
    df = pd.DataFrame(
        {
            "customer_no": [101, 102, np.nan],
            "Email": [" A@B.io ", "nope", "c@d.io"],
            "tier": pd.Categorical(["pro", "free", "pro"]),
        },
        index=["x", "y", "z"],
    )
    fm = resolve_mapping(
        df.columns, {"userId": "customer_no", "email": "Email", "traits.plan": "tier"}
    )
    checked = validate_people(canonical_frame(df, fm))
    payloads = build_people(checked.frame, skip=checked.invalid)
    assert payloads.people == [
        {"userId": "101", "email": "A@B.io", "traits": {"plan": "pro"}},
        None,
        {"email": "c@d.io", "traits": {"plan": "pro"}},
    ]


def test_encode_batch_is_the_request_body() -> None:
    body = encode_batch([{"userId": "u1", "traits": {"x": 1}}, {"email": "é@x.io"}])
    assert json.loads(body) == {
        "people": [{"userId": "u1", "traits": {"x": 1}}, {"email": "é@x.io"}]
    }
    assert encode_batch(()) == b'{"people":[]}'


def test_content_hashes_ignore_key_order_and_see_any_change() -> None:
    a = {"userId": "u1", "traits": {"x": 1, "y": "z"}}
    b = {"traits": {"y": "z", "x": 1}, "userId": "u1"}
    c = {"userId": "u1", "traits": {"x": 2, "y": "z"}}
    hashes = content_hashes([a, b, c, None])
    assert hashes.dtype == np.int64
    assert hashes[0] == hashes[1] != hashes[2]
    assert hashes[3] == 0


def test_content_hashes_are_pinned_across_versions_and_processes() -> None:
    """The value is stored in sync state files: it must never change."""
    person = {"userId": "u1", "email": "a@b.io", "traits": {"plan": "pro", "n": 1.5}}
    expected = content_hashes([person]).tolist()
    assert content_hashes([{"userId": "u1"}]).tolist() == [7249378761026338362]
    code = (
        f"from tests.reference import content_hashes;print(content_hashes([{person!r}]).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PYTHONPATH": str(Path(__file__).parent.parent)},
        cwd=Path(__file__).parent.parent,
    ).stdout
    assert out.strip() == str(expected)


def test_identity_keys() -> None:
    assert identity_key({"userId": "u1", "email": "A@B.io"}) == "u:u1"
    assert identity_key({"email": "A@B.io"}) == "e:a@b.io"
    assert identity_keys([{"userId": "x"}, None]) == ["u:x", None]
    with pytest.raises(ValueError, match="no identity"):
        identity_key({"traits": {}})


# -- property-based -------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.just(np.nan),
    st.just(pd.NA),
    st.just(pd.NaT),
    st.text(max_size=10),
    st.sampled_from(["", " ", "a@b.io", "u1", "ünï"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=3),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.lists(st.one_of(st.integers(-10, 10), st.text(max_size=3), st.floats()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**65), 2**65), max_size=2),
)

_columns = st.sampled_from(["userId", "email", "phone", "first_name", "plan", "score", 3])


@st.composite
def user_frames(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(min_value=0, max_value=6))
    names = draw(st.lists(_columns, min_size=1, max_size=5, unique=True))
    data: dict[Any, pd.Series] = {}
    for name in names:
        series = pd.Series(draw(st.lists(_values, min_size=n_rows, max_size=n_rows)), dtype=object)
        target = draw(st.sampled_from([None, "infer", "category", "str"]))
        try:
            if target == "infer":
                series = series.infer_objects()
            elif target is not None:
                series = series.astype(target)
        except (TypeError, ValueError, UnicodeError, ArithmeticError):
            pass
        data[name] = series
    return pd.DataFrame(data)


def _round_trip(person: dict[str, Any]) -> Any:
    """The person through JSON, a Decimal as its own digits (as the wire sends it)."""
    return orjson.loads(orjson.dumps(person, default=_decimal_digits))


def _decimal_digits(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError


def _as_read_back(value: Any) -> Any:
    """``value`` as JSON reads it back: a Decimal as the number its digits are."""
    if isinstance(value, Decimal):
        return orjson.loads(str(value))
    if isinstance(value, dict):
        return {key: _as_read_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_read_back(item) for item in value]
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_frames(), st.booleans())
def test_odd_frames_every_row_is_a_person_or_has_a_reason(frame: pd.DataFrame, nulls: bool) -> None:
    try:
        fm = resolve_mapping(frame.columns)
    except MappingError:
        return
    checked = validate_people(canonical_frame(frame, fm))
    reasons = row_reasons(checked.report, len(frame))
    payloads = build_people(checked.frame, skip=checked.invalid, send_nulls=nulls)
    assert len(payloads.people) == len(frame)
    for position, person in enumerate(payloads.people):
        if person is None:
            assert reasons[position] is not None or position in payloads.problems
            continue
        assert reasons[position] is None
        assert position not in payloads.problems
        assert isinstance(person.get("userId") or person.get("email"), str)
        assert _round_trip(person) == _as_read_back(person)
        identity_key(person)
    sent = [p for p in payloads.people if p is not None]
    assert len(orjson.loads(encode_batch(sent))["people"]) == len(sent)
    assert len(content_hashes(payloads.people)) == len(frame)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.one_of(
                st.none(),
                st.integers(-(2**63), 2**63 - 1),
                st.floats(allow_nan=False, allow_infinity=False),
            ),
        ),
        max_size=8,
    )
)
def test_typed_columns_round_trip_exactly(rows: list[tuple[str, Any]]) -> None:
    user_ids = [f"u{i}" for i in range(len(rows))]
    frame = pd.DataFrame(
        {
            "userId": user_ids,
            "name": [r[0] for r in rows],
            "n": pd.Series([r[1] for r in rows], dtype=object),
        }
    )
    result = build_people(frame)
    for person, (name, number) in zip(result.people, rows, strict=True):
        if person is None:  # a lone surrogate in the name
            continue
        assert person["traits"]["name"] == name
        assert person["traits"].get("n") == number
        assert _round_trip(person) == _as_read_back(person)


def test_the_bytes_of_some_people_match_those_of_all():
    """What a guarded run keeps of a chunk (the bytes of the people to send, assembled for
    them alone) is byte for byte what the whole chunk's bytes hold for them."""
    from flameup_pandas._run.plan import Rules

    frame = pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(9)],
            "email": [None if i % 4 == 0 else f"p{i}@x.io" for i in range(9)],
            "plan": ["pro", None, "free", "pro", None, "free", "pro", 'é"q', None],
            "score": [1.5, float("nan"), 2.0, 3.25, 4.0, float("nan"), 1.0, 0.1, 7.0],
            "tags": [["a"], None, {"b": 1, "a": 2}, None, [], {}, None, ["x"], None],
        }
    )
    for send_nulls in (False, True):
        plan = Rules(send_nulls=send_nulls).plan(frame)
        some = np.array([0, 2, 5, 8])
        whole = plan.payloads.wire
        for shown in (True, False):
            kept = plan.payloads.for_sending(some, shown)
            taken = kept.wire.take(pa.array(some)).to_pylist()
            assert taken == whole.take(pa.array(some)).to_pylist()
            assert kept.wire.null_count == len(frame) - len(some)
            ids = kept.shown_user_ids.to_pylist()
            assert ids == [f"u{i}" if shown or i in some else None for i in range(9)]


def test_a_person_with_a_decimal_as_to_people_shows_it_goes_out_as_its_digits() -> None:
    person = {"userId": "u1", "traits": {"price": Decimal("12345678901234567.89")}}
    body = encode_batch([person])
    assert body == b'{"people":[{"userId":"u1","traits":{"price":12345678901234567.89}}]}'
