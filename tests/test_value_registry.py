"""The value registry (issue 30): one meaning of each value, from every source.

Each test here is a reproducer of issue 30 that failed before the registry, run against the
local server: an Arrow-backed categorical identity, a DuckDB INTERVAL, an empty CSV cell, a
decimal's scale, a pandas Period or Interval written to parquet, and naive timestamps on the
command line.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flameup_pandas import upsert_arrow, upsert_file
from flameup_pandas._people.encode import encode_people
from flameup_pandas._people.values import RULES, decimal_text, is_missing, rule_for, scalar
from flameup_pandas.cli import main

from .conftest import target


def people_sent(server: Any) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    for body in server.request_bodies("/people/batch"):
        people += json.loads(body, parse_float=Decimal)["people"]
    return people


def results_of(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def test_an_arrow_backed_categorical_identity_is_sent(flameup_server, tmp_path):
    frame = pd.DataFrame({"userId": pd.Categorical(["u1", "u2"]), "plan": ["pro", "free"]})
    frame.to_parquet(tmp_path / "people.parquet")
    backed = pd.read_parquet(tmp_path / "people.parquet", dtype_backend="pyarrow")
    assert isinstance(backed["userId"].dtype, pd.ArrowDtype)  # a dictionary, Arrow-backed
    result = backed.flameup.upsert(**target(flameup_server))
    assert result["flameup_status"].tolist() == ["created", "created"]
    assert sorted(p["userId"] for p in people_sent(flameup_server)) == ["u1", "u2"]
    assert backed.flameup.validate().empty


def test_integer_ids_in_an_arrow_backed_categorical_are_sent_as_in_a_pandas_one():
    ids = pd.Series([7, 8, None])
    arrow = pd.Series(pd.arrays.ArrowExtensionArray(pa.array([7, 8, None]).dictionary_encode()))
    frames = [pd.DataFrame({"userId": column}) for column in (ids.astype("category"), arrow)]
    assert [f.flameup.to_people() for f in frames] == [[{"userId": "7"}, {"userId": "8"}]] * 2


def test_a_duckdb_interval_makes_its_rows_invalid_and_the_run_goes_on(flameup_server, tmp_path):
    relation = duckdb.connect().sql(
        "SELECT * FROM (VALUES ('u1', INTERVAL 3 DAY), ('u2', NULL)) t(userId, span)"
    )
    summary = upsert_arrow(relation, **target(flameup_server, results=tmp_path / "r.parquet"))
    assert summary.counts["invalid"] == 1 and summary.counts["created"] == 1
    results = results_of(tmp_path / "r.parquet")
    assert "traits.span" in results["flameup_error"][0]
    assert "time span" in results["flameup_error"][0]
    assert people_sent(flameup_server) == [{"userId": "u2"}]


def test_an_empty_csv_cell_in_a_text_column_is_missing(flameup_server, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text('userId,name,n\nu1,,\nu2,bob,3\nu3,"",4\n')
    upsert_file(path, **target(flameup_server))
    assert people_sent(flameup_server) == [
        {"userId": "u1"},
        {"userId": "u2", "traits": {"name": "bob", "n": 3}},
        {"userId": "u3", "traits": {"n": 4}},
    ]
    empty = pd.read_csv(path).flameup.to_people()[0]
    assert empty == {"userId": "u1"}  # as pandas reads it


def test_a_decimal_is_one_text_whatever_its_scale(flameup_server, tmp_path):
    from_pandas = pd.DataFrame({"userId": ["u1"], "d": [Decimal("0.1")]})
    wide = pa.table({"userId": ["u1"], "d": pa.array([Decimal("0.1")], pa.decimal128(38, 10))})
    pq.write_table(wide, tmp_path / "wide.parquet")
    state = tmp_path / "people.state.parquet"
    from_pandas.flameup.upsert(**target(flameup_server, state=state))
    flameup_server.reset_requests()
    summary = upsert_file(tmp_path / "wide.parquet", **target(flameup_server, state=state))
    assert summary.counts["skipped"] == 1  # one state serves both paths: nothing resent
    assert flameup_server.request_bodies("/people/batch") == []
    canonical = wide.to_pandas(types_mapper=pd.ArrowDtype)
    assert encode_people(canonical).wire.to_pylist() == encode_people(from_pandas).wire.to_pylist()
    assert encode_people(canonical).wire.to_pylist() == [b'{"userId":"u1","traits":{"d":0.1}}']


def pandas_typed_table(registered: bool) -> pa.Table:
    """A Period and an Interval column as pandas writes them to Arrow: its extension types
    (registered) or their storage with the field metadata naming them (not registered)."""
    frame = pd.DataFrame(
        {
            "userId": ["u1", "u2"],
            "period": pd.period_range("2024-01", periods=2, freq="M"),
            "span": pd.interval_range(0, 2),
        }
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if registered:
        return table
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if isinstance(kind, pa.ExtensionType):
            meta = {
                b"ARROW:extension:name": kind.extension_name.encode(),
                b"ARROW:extension:metadata": kind.__arrow_ext_serialize__(),
            }
            field = pa.field(field.name, kind.storage_type, metadata=meta)
            column = pa.chunked_array([c.storage for c in column.chunks], kind.storage_type)
        fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


@pytest.mark.parametrize("registered", [True, False])
def test_a_pandas_period_or_interval_from_arrow_is_invalid_never_its_storage(
    registered, flameup_server, tmp_path
):
    table = pandas_typed_table(registered)
    pq.write_table(table, tmp_path / "typed.parquet")
    runs = [
        lambda: upsert_arrow(table, **target(flameup_server, results=tmp_path / "r.parquet")),
        lambda: upsert_file(
            tmp_path / "typed.parquet", **target(flameup_server, results=tmp_path / "r.parquet")
        ),
    ]
    for run in runs:
        summary = run()
        assert summary.counts["invalid"] == 2
        error = results_of(tmp_path / "r.parquet")["flameup_error"][0]
        assert "traits.period: Period" in error and "traits.span: Interval" in error
    backed = pd.read_parquet(tmp_path / "typed.parquet", dtype_backend="pyarrow")
    result = backed.flameup.upsert(**target(flameup_server))
    assert result["flameup_status"].tolist() == ["invalid", "invalid"]
    assert flameup_server.request_bodies("/people/batch") == []


def test_the_command_line_takes_naive_timestamps_as_utc(
    flameup_server, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    path = tmp_path / "people.parquet"
    pd.DataFrame({"userId": ["u1"], "seen": pd.to_datetime(["2024-01-02 03:04:05"])}).to_parquet(
        path
    )
    assert main(["upsert", str(path), "--no-progress"]) == 2
    assert "--naive-timestamps utc" in capsys.readouterr().err
    assert main(["upsert", str(path), "--no-progress", "--naive-timestamps", "utc"]) == 0
    assert people_sent(flameup_server) == [
        {"userId": "u1", "traits": {"seen": "2024-01-02T03:04:05Z"}}
    ]


# -- the registry itself ---------------------------------------------------------------------


def test_every_rule_is_in_the_documentation_table():
    assert all(rule.input and rule.sent_as for rule in RULES)


@pytest.mark.parametrize(
    ("dtype", "refused"),
    [
        (pd.ArrowDtype(pa.month_day_nano_interval()), True),
        (pd.ArrowDtype(pa.duration("s")), True),
        (np.dtype("timedelta64[ns]"), True),
        (pd.PeriodDtype("M"), True),
        (pd.IntervalDtype("int64"), True),
        (pd.ArrowDtype(pa.dictionary(pa.int8(), pa.string())), False),
        (pd.ArrowDtype(pa.decimal128(38, 10)), False),
    ],
)
def test_a_dtype_has_one_rule(dtype, refused):
    rule = rule_for(dtype)
    assert (rule.value is None and rule.refusal is not None) == refused


def test_one_meaning_of_missing_per_value_and_per_column():
    values = [None, float("nan"), np.float32("nan"), pd.NA, pd.NaT, Decimal("NaN"), "", 0]
    assert [is_missing(v) for v in values] == [True] * 6 + [False, False]
    assert [scalar(v, "error", "x") is None for v in values] == [True] * 6 + [False, False]


def test_decimal_text_keeps_every_digit_and_drops_only_trailing_zeros():
    cases = {"0.1000000000": b"0.1", "1E+2": b"100", "-0.0": b"0", "1.50": b"1.5"}
    for given, text in cases.items():
        assert decimal_text(Decimal(given)).__class__.__name__ == "Fragment"
        assert (
            pd.Series([Decimal(given)]).pipe(
                lambda s: encode_people(pd.DataFrame({"userId": ["u"], "d": s})).wire[0].as_py()
            )
            == b'{"userId":"u","traits":{"d":' + text + b"}}"
        )
    digits = "12345678901234567890123456789012345678.9"
    assert orjson.dumps(decimal_text(Decimal(digits + "000"))) == digits.encode()


def test_arrow_backed_dtypes_send_what_their_numpy_twins_send(tmp_path):
    frame = pd.DataFrame(
        {
            "userId": pd.Categorical(["u1", "u2", "u3"]),
            "email": ["a@example.com", None, "c@example.com"],
            "timezone": pd.Categorical(["Europe/Berlin", None, "UTC"]),
            "visits": pd.array([1, None, 3], dtype="Int64"),
            "score": [0.5, float("nan"), 2.0],
            "vip": pd.array([True, None, False], dtype="boolean"),
            "seen": pd.to_datetime(
                ["2024-01-02 03:04:05.5", None, "2024-01-02"], format="ISO8601", utc=True
            ),
            "plan": pd.Categorical(["pro", "free", None]),
        }
    )
    frame.to_parquet(tmp_path / "people.parquet")
    numpy = pd.read_parquet(tmp_path / "people.parquet")
    arrow = pd.read_parquet(tmp_path / "people.parquet", dtype_backend="pyarrow")
    assert encode_people(arrow).wire.to_pylist() == encode_people(numpy).wire.to_pylist()
    assert arrow.flameup.to_people() == numpy.flameup.to_people() == frame.flameup.to_people()
    assert arrow.flameup.validate().empty and numpy.flameup.validate().empty


def test_a_plan_shows_a_decimal_as_sent_not_through_a_float(flameup_server, tmp_path):
    state = tmp_path / "people.state.parquet"
    before = pd.DataFrame({"userId": ["u1"], "balance": [Decimal("12345678901234567.89")]})
    before.flameup.upsert(state=state, state_values=True, **target(flameup_server))
    after = before.assign(balance=[Decimal("12345678901234567.99")])
    planned = after.flameup.plan(state=state, state_values=True)
    assert planned.loc[0, "flameup_before"] == {"balance": Decimal("12345678901234567.89")}
    assert planned.loc[0, "flameup_after"] == {"balance": Decimal("12345678901234567.99")}


class _BigId(pa.ExtensionType):
    """Another library's extension type (no pandas twin) over int64."""

    def __init__(self) -> None:
        super().__init__(pa.int64(), "test.big_id")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> _BigId:
        return cls()


def test_an_extension_type_pandas_does_not_know_is_sent_as_its_storage_exactly(flameup_server):
    big = 2**53 + 1  # a float64 holds it as 2**53
    ids = pa.ExtensionArray.from_storage(_BigId(), pa.array([big, None], pa.int64()))
    table = pa.table({"userId": ["u1", "u2"], "ref": ids})
    frame = pd.DataFrame(
        {"userId": ["u1", "u2"], "ref": pd.Series(pd.arrays.ArrowExtensionArray(ids))}
    )
    assert frame.flameup.to_people() == [
        {"userId": "u1", "traits": {"ref": big}},
        {"userId": "u2"},
    ]
    assert frame.flameup.upsert(**target(flameup_server))["flameup_status"].tolist() == [
        "created",
        "created",
    ]
    assert upsert_arrow(table, **target(flameup_server)).counts["updated"] == 2
    for sent in (people_sent(flameup_server)[:2], people_sent(flameup_server)[2:]):
        assert [p.get("traits", {}).get("ref") for p in sent] == [big, None]


def test_a_dictionary_holding_a_null_is_sent_as_its_values(flameup_server):
    # Arrow allows a null inside a dictionary (pandas refuses it as a category): it crashed
    # the conversion to pandas; its rows are missing, the others their values exactly
    big = 2**53 + 1
    # (int32 indices: the type pandas' own categoricals have, so fixing it changes no type)
    codes = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, None, 0], pa.int32()), pa.array([big, None])
    )
    other = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array([5]))
    column = pa.chunked_array([codes[:2], codes[2:], other])
    table = pa.table({"userId": [f"u{i}" for i in range(5)], "ref": column})
    frame = pd.DataFrame(
        {"userId": ["u0", "u1", "u2", "u3"], "ref": pd.arrays.ArrowExtensionArray(codes)}
    )
    expected = [big, None, None, big]
    assert [p.get("traits", {}).get("ref") for p in frame.flameup.to_people()] == expected
    assert upsert_arrow(table, **target(flameup_server)).counts["created"] == 5
    sent = sorted(people_sent(flameup_server), key=lambda p: p["userId"])
    assert [p.get("traits", {}).get("ref") for p in sent] == [*expected, 5]
