"""One meaning of a value: what each input type is sent as, from every path.

Each case here was seen going wrong on at least one path (issue 22): the same customers sent
from a pandas frame, a polars frame, a pyarrow Table, a parquet or CSV file and a DuckDB query
must reach Flameup as the same bytes. Every test talks HTTP to the local server and reads the
request bodies it received.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flameup_pandas
from flameup_pandas import upsert_arrow, upsert_file

from .conftest import target


def people_sent(server: Any) -> list[dict[str, Any]]:
    """Every person of every batch the server received, parsed with exact numbers."""
    people: list[dict[str, Any]] = []
    for body in server.request_bodies("/people/batch"):
        people += json.loads(body, parse_float=Decimal)["people"]
    return people


def raw_people(server: Any) -> list[bytes]:
    """The request bodies as bytes, for byte-for-byte comparisons across paths."""
    return server.request_bodies("/people/batch")


def send(path: str, table: pa.Table, server: Any, tmp_path: Path, **extra: Any) -> Any:
    """Send ``table`` through one path; return what that path returns."""
    options = target(server, **extra)
    if path == "pandas":
        return table.to_pandas(types_mapper=pd.ArrowDtype).flameup.upsert(**options)
    if path == "polars":
        return pl.from_arrow(table).flameup.upsert(**options)  # type: ignore[union-attr]
    if path == "arrow":
        return upsert_arrow(table, **options)
    if path == "parquet":
        pq.write_table(table, tmp_path / "people.parquet")
        return upsert_file(tmp_path / "people.parquet", **options)
    if path == "duckdb":
        connection = duckdb.connect()
        connection.register("people", table)
        return upsert_arrow(connection.sql("SELECT * FROM people"), **options)
    raise AssertionError(path)


ARROW_PATHS = ("pandas", "polars", "arrow", "parquet", "duckdb")


@pytest.mark.parametrize("path", ARROW_PATHS)
def test_nan_is_missing_on_every_path_and_never_erases_a_stored_value(
    path, flameup_server, tmp_path
):
    flameup_server_options = target(flameup_server)
    pd.DataFrame({"userId": ["u1"], "score": [5.0]}).flameup.upsert(**flameup_server_options)
    flameup_server.reset_requests()
    table = pa.table({"userId": ["u1"], "score": pa.array([math.nan], pa.float64())})
    send(path, table, flameup_server, tmp_path)
    assert people_sent(flameup_server) == [{"userId": "u1"}]
    assert flameup_server.person("u1")["attributes"]["score"] == 5.0


@pytest.mark.parametrize("path", ARROW_PATHS)
def test_integers_stay_integers_beside_nulls(path, flameup_server, tmp_path):
    table = pa.table(
        {
            "userId": pa.array([12345678901234567, 2, None], pa.int64()),
            "email": [None, None, "c@example.com"],
            "big": pa.array([2**53 + 1, None, -(2**62)], pa.int64()),
            "small": pa.array([7, None, 1], pa.int8()),
            "unsigned": pa.array([2**64 - 1, None, 0], pa.uint64()),
        }
    )
    send(path, table, flameup_server, tmp_path)
    assert raw_people(flameup_server) == [
        b'{"people":[{"userId":"12345678901234567","traits":{"big":9007199254740993,"small":7,'
        b'"unsigned":18446744073709551615}},{"userId":"2"},{"email":"c@example.com","traits":'
        b'{"big":-4611686018427387904,"small":1,"unsigned":0}}]}'
    ]


@pytest.mark.parametrize("path", ARROW_PATHS)
def test_decimals_keep_their_digits(path, flameup_server, tmp_path):
    table = pa.table(
        {
            "userId": ["u1", "u2"],
            "balance": pa.array(
                [Decimal("12345678901234567.89"), Decimal("-0.10")], pa.decimal128(20, 2)
            ),
        }
    )
    send(path, table, flameup_server, tmp_path)
    assert raw_people(flameup_server) == [
        b'{"people":[{"userId":"u1","traits":{"balance":12345678901234567.89}},'
        b'{"userId":"u2","traits":{"balance":-0.1}}]}'
    ]


def test_decimal_objects_in_pandas_and_nested_keep_their_digits(flameup_server):
    df = pd.DataFrame(
        {
            "userId": ["u1", "u2"],
            "balance": [Decimal("12345678901234567.89"), Decimal("NaN")],
            "history": [[Decimal("0.10"), None], {"last": Decimal("1E+2")}],
        }
    )
    people = df.flameup.to_people()
    assert people[0]["traits"]["balance"] == Decimal("12345678901234567.89")
    df.flameup.upsert(**target(flameup_server))
    assert raw_people(flameup_server) == [
        b'{"people":[{"userId":"u1","traits":{"balance":12345678901234567.89,'
        b'"history":[0.1,null]}},{"userId":"u2","traits":{"history":{"last":100}}}]}'
    ]


@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_timestamps_in_a_numpy_array_cell_are_sent_as_a_list_of_them_is(unit, flameup_server):
    stamps = np.array(["2024-01-01T00:00:00", "2024-01-02T03:04:05.5"], f"datetime64[{unit}]")
    as_list = [pd.Timestamp(s, tz="UTC") for s in stamps]
    df = pd.DataFrame({"userId": ["a", "b"], "seen": [stamps, as_list]})
    df.flameup.upsert(naive_timestamps="utc", **target(flameup_server))  # numpy's are naive
    sent = {p["userId"]: p["traits"]["seen"] for p in people_sent(flameup_server)}
    fraction = "" if unit == "s" else ".500"
    assert sent["a"] == sent["b"] == ["2024-01-01T00:00:00Z", f"2024-01-02T03:04:05{fraction}Z"]


def test_float32_sends_the_shortest_text_of_the_float32(flameup_server, tmp_path):
    values = pa.array([0.1, None, 3.4028234663852886e38, 1e-7], pa.float32())
    table = pa.table({"userId": ["a", "b", "c", "d"], "ratio": values})
    expected = [
        b'{"people":[{"userId":"a","traits":{"ratio":0.1}},{"userId":"b"},'
        b'{"userId":"c","traits":{"ratio":3.4028235e+38}},{"userId":"d","traits":{"ratio":1e-7}}]}'
    ]
    for path in ARROW_PATHS:
        flameup_server.reset_requests()
        send(path, table, flameup_server, tmp_path)
        assert raw_people(flameup_server) == expected, path
    flameup_server.reset_requests()
    pd.DataFrame({"userId": ["a"], "ratio": np.array([0.1], np.float32)}).flameup.upsert(
        **target(flameup_server)
    )
    assert people_sent(flameup_server) == [{"userId": "a", "traits": {"ratio": Decimal("0.1")}}]


@pytest.mark.parametrize("path", ARROW_PATHS)
def test_a_map_with_string_keys_is_an_object(path, flameup_server, tmp_path):
    kind = pa.map_(pa.string(), pa.int64())
    table = pa.table({"userId": ["u1"], "counts": pa.array([[("k1", 1), ("k2", 2)]], kind)})
    send(path, table, flameup_server, tmp_path)
    assert people_sent(flameup_server) == [
        {"userId": "u1", "traits": {"counts": {"k1": 1, "k2": 2}}}
    ]


def test_a_map_with_other_keys_makes_the_row_invalid():
    kind = pa.map_(pa.int64(), pa.int64())
    table = pa.table({"userId": ["u1", "u2"], "counts": pa.array([[(1, 1)], None], kind)})
    result = table.to_pandas(types_mapper=pd.ArrowDtype).flameup.upsert(dry_run=True)
    assert result["flameup_status"].tolist() == ["invalid", "skipped"]
    assert "counts" in result["flameup_error"][0] and "keys" in result["flameup_error"][0]


@pytest.mark.parametrize("path", ["pandas", "polars"])
def test_categorical_identities_and_known_fields_are_sent(path, flameup_server):
    data = {"userId": ["u1", "u2"], "email": ["a@example.com", "b@example.com"]}
    data["timezone"] = ["Europe/Paris", "UTC"]
    if path == "pandas":
        df = pd.DataFrame(data).astype("category")
        result = df.flameup.upsert(**target(flameup_server))
        statuses = result["flameup_status"].tolist()
    else:
        frame = pl.DataFrame(data).with_columns(
            pl.col("userId").cast(pl.Categorical),
            pl.col("email").cast(pl.Enum(["a@example.com", "b@example.com"])),
            pl.col("timezone").cast(pl.Categorical),
        )
        statuses = frame.flameup.upsert(**target(flameup_server))["flameup_status"].to_list()
    assert statuses == ["created", "created"]
    assert people_sent(flameup_server)[0] == {
        "userId": "u1",
        "email": "a@example.com",
        "traits": {"timezone": "Europe/Paris"},
    }


def test_polars_int128_is_sent_exactly_where_it_fits():
    frame = pl.DataFrame({"userId": ["u1", "u2"], "n": pl.Series([2**62, 2**100], dtype=pl.Int128)})
    result = frame.flameup.upsert(dry_run=True)
    assert result["flameup_status"].to_list() == ["skipped", "invalid"]
    assert "traits.n" in result["flameup_error"][1] and "64 bits" in result["flameup_error"][1]
    assert frame.flameup.to_people() == [{"userId": "u1", "traits": {"n": 2**62}}]


def no_json_meaning() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": ["u1", "u2"],
            "period": pd.period_range("2024-01", periods=2, freq="M"),
            "span": pd.interval_range(0, 2),
        }
    )


def test_types_without_json_meaning_give_the_same_reason_from_pandas_and_polars():
    df = no_json_meaning()
    pandas_errors = df.flameup.upsert(dry_run=True)["flameup_error"].tolist()
    polars_errors = pl.from_pandas(df).flameup.upsert(dry_run=True)["flameup_error"].to_list()
    assert pandas_errors == polars_errors
    assert "traits.period" in pandas_errors[0] and "Period" in pandas_errors[0]
    assert "traits.span" in pandas_errors[0] and "Interval" in pandas_errors[0]


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array([dt.time(1, 2), None]), "time"),
        (pa.array([dt.timedelta(seconds=3), None]), "timedelta"),
        (pa.array([b"x", None]), "bytes"),
    ],
)
def test_types_without_json_meaning_make_the_row_invalid_on_arrow_paths(column, kind, tmp_path):
    table = pa.table({"userId": ["u1", "u2"], "odd": column})
    pandas_error = table.to_pandas(types_mapper=pd.ArrowDtype).flameup.upsert(dry_run=True)
    summary = upsert_arrow(table, dry_run=True, results=tmp_path / "r.parquet", progress=False)
    results = pq.read_table(tmp_path / "r.parquet").to_pandas()
    assert summary.counts["invalid"] == 1
    assert results["flameup_error"][0] == pandas_error["flameup_error"][0]
    assert "traits.odd" in results["flameup_error"][0] and kind in results["flameup_error"][0]


def test_a_polars_object_column_names_its_type(tmp_path):
    frame = pl.DataFrame({"userId": ["u1"], "thing": pl.Series([object()], dtype=pl.Object)})
    summary = upsert_arrow(frame, dry_run=True, results=tmp_path / "r.parquet", progress=False)
    error = pq.read_table(tmp_path / "r.parquet")["flameup_error"][0].as_py()
    assert summary.counts["invalid"] == 1
    assert "traits.thing" in error and "object" in error and "bytes" not in error


def test_every_rule_a_row_breaks_is_listed(flameup_server):
    df = pd.DataFrame({"userId": ["u1"], "email": ["nope"], "score": [math.inf]})
    result = df.flameup.upsert(**target(flameup_server))
    error = result["flameup_error"][0]
    assert "email" in error and "traits.score: inf" in error
    report = df.flameup.validate()
    assert sorted(report["column"]) == ["email", "score"]


def test_the_results_file_keeps_identities_of_invalid_rows_in_input_order(flameup_server, tmp_path):
    table = pa.table(
        {
            "userId": ["u0", "u1", "u2", "u3"],
            "email": ["a@example.com", "nope", "c@example.com", "d@example.com"],
        }
    )
    results = tmp_path / "results.parquet"
    upsert_arrow(table, results=results, **target(flameup_server))
    written = pq.read_table(results).to_pydict()
    assert written["row"] == [0, 1, 2, 3]
    assert written["userId"] == ["u0", "u1", "u2", "u3"]
    assert written["email"] == ["a@example.com", "nope", "c@example.com", "d@example.com"]
    assert written["flameup_status"] == ["created", "invalid", "created", "created"]


@pytest.mark.parametrize(
    ("column", "field"),
    [("Email", "email"), ("First_Name", "first_name"), ("phone ", "phone"), ("user-id", "userId")],
)
def test_a_column_named_like_a_known_field_gets_a_warning(column, field):
    df = pd.DataFrame({"userId": ["u1"], column: ["x"]})
    if field == "userId":
        df = pd.DataFrame({"email": ["a@example.com"], column: ["x"]})
    with pytest.warns(flameup_pandas.FieldNameWarning, match=f"mapping=.*{field}.*{column!r}"):
        df.flameup.to_people()


class TestCsv:
    """A CSV cell means what it says: inference never rewrites one."""

    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "people.csv"
        path.write_text(text)
        return path

    def test_cells_that_would_not_read_back_the_same_stay_text(self, flameup_server, tmp_path):
        path = self.write(
            tmp_path,
            "userId,zip,sign,price,sci,count,ratio\n"
            "u1,02134,+1,1.50,1e3,7,0.5\n"
            "u2,10001,2,2.25,2e3,,1.25\n",
        )
        upsert_file(path, **target(flameup_server))
        assert people_sent(flameup_server) == [
            {
                "userId": "u1",
                "traits": {
                    "zip": "02134",
                    "sign": "+1",
                    "price": "1.50",
                    "sci": "1e3",
                    "count": 7,
                    "ratio": Decimal("0.5"),
                },
            },
            {
                "userId": "u2",
                "traits": {
                    "zip": "10001",
                    "sign": "2",
                    "price": "2.25",
                    "sci": "2e3",
                    "ratio": Decimal("1.25"),
                },
            },
        ]

    def test_validate_reads_the_file_as_upsert_does(self, tmp_path):
        from flameup_pandas.cli import main

        path = self.write(tmp_path, "userId,zip\n00123,00123\n")
        summary = upsert_file(path, dry_run=True, results=tmp_path / "r.parquet", progress=False)
        assert summary.sample == ({"userId": "00123", "traits": {"zip": "00123"}},)
        assert main(["validate", str(path)]) == 0

    def test_column_types_override_inference(self, flameup_server, tmp_path):
        path = self.write(tmp_path, "userId,zip,code\nu1,02134,7\n")
        upsert_file(path, column_types={"zip": "int64", "code": "string"}, **target(flameup_server))
        assert people_sent(flameup_server) == [
            {"userId": "u1", "traits": {"zip": 2134, "code": "7"}}
        ]


def test_a_state_written_by_one_path_serves_every_other(flameup_server, tmp_path):
    table = pa.table(
        {
            "userId": ["u1", "u2"],
            "n": pa.array([1, None], pa.int64()),
            "plan": pa.array(["pro", "free"]).dictionary_encode(),
            "balance": pa.array([Decimal("1.10"), None], pa.decimal128(5, 2)),
        }
    )
    state = tmp_path / "state.parquet"
    send("polars", table, flameup_server, tmp_path, state=state)
    for path in ARROW_PATHS:
        flameup_server.reset_requests()
        send(path, table, flameup_server, tmp_path, state=state)
        assert raw_people(flameup_server) == [], path


def test_rows_sent_wrongly_before_are_resent_once_with_the_right_value(flameup_server, tmp_path):
    """A state from before the one engine recorded ``{"n": 7.0}`` for an Arrow integer beside a
    null; its hash no longer matches, so that person is resent once, as 7; a person whose
    value was sent right (a string) stays skipped."""
    from flameup_pandas._people.identity import identity_hashes

    from .reference import content_hashes

    old = [
        {"userId": "u1", "traits": {"n": 7.0}},  # what the Arrow path sent before
        {"userId": "u2", "traits": {"plan": "pro"}},  # sent right
    ]
    state = tmp_path / "state.parquet"
    pq.write_table(
        pa.table(
            {
                "identity": ["u:u1", "u:u2"],
                "identity_hash": identity_hashes(["u:u1", "u:u2"]),
                "content_hash": content_hashes(old),
                "flameup_id": ["id1", "id2"],
                "synced_at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 2),
            }
        ),
        state,
    )
    table = pa.table({"userId": ["u1", "u2"], "n": pa.array([7, None]), "plan": [None, "pro"]})
    first = upsert_arrow(table, state=state, **target(flameup_server))
    assert first.counts["skipped"] == 1
    assert raw_people(flameup_server) == [b'{"people":[{"userId":"u1","traits":{"n":7}}]}']
    flameup_server.reset_requests()
    upsert_arrow(table, state=state, **target(flameup_server))
    assert raw_people(flameup_server) == []


def test_content_hashes_match_across_paths_for_each_type():
    """The bytes a state hashes are the bytes sent: equal bodies mean equal hashes."""
    table = pa.table({"userId": ["u1"], "n": pa.array([1], pa.int32())})
    frames = [
        table.to_pandas(),
        table.to_pandas(types_mapper=pd.ArrowDtype),
        pl.from_arrow(table).to_pandas(),  # type: ignore[union-attr]
    ]
    bodies = {orjson.dumps(f.flameup.to_people()) for f in frames}
    assert bodies == {b'[{"userId":"u1","traits":{"n":1}}]'}
