"""The differential test: generated typed tables sent through every path reach the local server
as byte-identical request bodies, with identical content hashes.

Paths: a pandas frame (Arrow-backed, as ``pd.read_parquet(dtype_backend="pyarrow")`` gives),
a polars frame, a pyarrow Table, a parquet file, a CSV file (for the types CSV holds), a
DuckDB query, and Spark, classic and Spark Connect (``SparkSession.builder.remote``, what
Databricks serverless and shared clusters speak; run in a process of its own, since a Connect
session and a classic one do not share a process).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flameup_pandas import upsert_arrow, upsert_file
from flameup_pandas._people.encode import encode_people
from flameup_pandas._people.mapping import canonical_frame, resolve_mapping
from flameup_pandas._run.sources import arrow_frame, polars_frame
from flameup_pandas.testing import FlameupServer

from .conftest import target

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
INT64 = st.integers(-(2**63), 2**63 - 1)
FLOAT = st.floats(allow_infinity=False) | st.just(math.nan)
DECIMAL = st.decimals(
    min_value=Decimal("-99999999999999999.99"),
    max_value=Decimal("99999999999999999.99"),
    places=2,
    allow_nan=False,
)
NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
WORD = NAME.map(lambda text: "x" + text)  # never a number or a boolean, so CSV keeps it text
STAMP = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)

COLUMNS: dict[str, tuple[pa.DataType, Any, bool]] = {
    # name: (Arrow type, values, whether CSV holds it as it is)
    "text": (pa.string(), TEXT, False),
    "count": (pa.int64(), INT64, True),
    "small": (pa.int16(), st.integers(-(2**15), 2**15 - 1), True),
    "ratio": (pa.float64(), FLOAT, False),
    "ratio32": (pa.float32(), st.floats(width=32, allow_infinity=False), False),
    "flag": (pa.bool_(), st.booleans(), True),
    "money": (pa.decimal128(19, 2), DECIMAL, False),
    "wide": (pa.decimal128(38, 10), DECIMAL, False),  # another scale: the same text
    "word": (pa.string(), WORD, True),  # in CSV, a missing value is an empty cell
    "seen": (pa.timestamp("us", tz="UTC"), STAMP, False),
    "day": (pa.date32(), st.dates(dt.date(1970, 1, 1), dt.date(2100, 1, 1)), False),
    "tags": (pa.list_(pa.string()), st.lists(TEXT, max_size=3), False),
    "plan": (pa.dictionary(pa.int32(), pa.string()), st.sampled_from(["free", "pro"]), False),
}


@st.composite
def tables(draw: Any, csv: bool = False) -> pa.Table:
    rows = draw(st.integers(1, 6))
    names = [n for n, (_, _, in_csv) in COLUMNS.items() if in_csv or not csv]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
    data: dict[str, pa.Array] = {"userId": pa.array([f"u{i}" for i in range(rows)])}
    for name in chosen:
        kind, values, _ = COLUMNS[name]
        cells = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        if pa.types.is_dictionary(kind):
            data[name] = pa.array(cells, pa.string()).dictionary_encode()
        else:
            data[name] = pa.array(cells, kind)
    return pa.table(data)


def bodies_of(server: FlameupServer) -> list[bytes]:
    return server.request_bodies("/people/batch")


def through(path: str, table: pa.Table, server: FlameupServer, folder: Path) -> list[bytes]:
    """The request bodies the server received when ``table`` went through ``path``."""
    server.reset_requests()
    options = target(server)
    if path == "pandas":
        arrow_frame(table).flameup.upsert(**options)
    elif path == "polars":
        pl.from_arrow(table).flameup.upsert(**options)  # type: ignore[union-attr]
    elif path == "arrow":
        upsert_arrow(table, **options)
    elif path == "parquet":
        pq.write_table(table, folder / "t.parquet")
        upsert_file(folder / "t.parquet", **options)
    elif path == "csv":
        pacsv.write_csv(table, folder / "t.csv")
        upsert_file(folder / "t.csv", **options)
    elif path == "duckdb":
        connection = duckdb.connect()
        connection.register("t", table)
        upsert_arrow(connection.sql("SELECT * FROM t"), **options)
    else:
        raise AssertionError(path)
    return bodies_of(server)


def hashes(frame: pd.DataFrame) -> list[int]:
    canonical = canonical_frame(frame, resolve_mapping(list(frame.columns)))
    result: list[int] = encode_people(canonical).content_hashes().tolist()
    return result


SETTINGS = settings(
    max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


@SETTINGS
@given(table=tables())
def test_every_arrow_path_sends_the_same_bytes(table, flameup_server, tmp_path):
    expected = through("pandas", table, flameup_server, tmp_path)
    assert expected  # every row has a userId: something is always sent
    for path in ("polars", "arrow", "parquet", "duckdb"):
        assert through(path, table, flameup_server, tmp_path) == expected, path
    assert hashes(arrow_frame(table)) == hashes(polars_frame(pl.from_arrow(table)))


@SETTINGS
@given(table=tables(csv=True))
def test_a_csv_file_sends_what_the_table_sends(table, flameup_server, tmp_path):
    expected = through("arrow", table, flameup_server, tmp_path)
    assert expected
    assert through("csv", table, flameup_server, tmp_path) == expected


def every_type() -> pa.Table:
    """One table holding every type above, with nulls, NaN and extremes beside values."""
    return pa.table(
        {
            "userId": ["s1", "s2", "s3"],
            "text": ["é 🚀", None, 'say "hi"'],
            "count": pa.array([2**53 + 1, None, -(2**62)], pa.int64()),
            "small": pa.array([7, None, -1], pa.int16()),
            "ratio": pa.array([0.1, math.nan, None], pa.float64()),
            "ratio32": pa.array([0.1, None, 3.4e38], pa.float32()),
            "flag": [True, None, False],
            "money": pa.array(
                [Decimal("12345678901234567.89"), None, Decimal("-0.10")], pa.decimal128(19, 2)
            ),
            "wide": pa.array([Decimal("0.1"), Decimal("-7"), None], pa.decimal128(38, 10)),
            "seen": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC), None, None],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1970, 1, 1)]),
            "tags": pa.array([["a", None], None, []], pa.list_(pa.string())),
            "counts": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
        }
    )


def test_spark_sends_what_every_other_path_sends(spark, flameup_server, tmp_path):
    from flameup_pandas import spark as flameup_spark

    table = every_type()
    expected = through("arrow", table, flameup_server, tmp_path)
    assert expected
    flameup_server.reset_requests()
    sdf = spark.createDataFrame(table).coalesce(1)
    run = flameup_spark.upsert(sdf, **target(flameup_server))
    assert run.summary.counts["updated"] == 3
    assert bodies_of(flameup_server) == expected
    assert through("pandas", table, flameup_server, tmp_path) == expected


CONNECT_RUN = """
import os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
from flameup_pandas import spark as flameup_spark
from tests.test_paths_agree import every_type
spark = (
    SparkSession.builder.remote("local[2]")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "4")
    .getOrCreate()
)
try:
    sdf = spark.createDataFrame(every_type()).coalesce(1)
    run = flameup_spark.upsert(sdf, api_key=sys.argv[1], base_url=sys.argv[2], rate_limit=None)
    print("COUNTS", run.summary.counts["updated"], flush=True)
finally:
    spark.stop()
"""


def test_spark_connect_sends_what_every_other_path_sends(flameup_server, tmp_path):
    import subprocess
    import sys

    table = every_type()
    expected = through("arrow", table, flameup_server, tmp_path)
    flameup_server.reset_requests()
    # SPARK_TESTING: the local Connect server binds an ephemeral port (and the client asks the
    # JVM which), not 15002, so suites running side by side (CI's version matrix) never meet.
    # Its Python workers run in a directory of their own: PYTHONPATH makes them import the
    # checkout under test, not whichever copy is installed.
    root = Path(__file__).parent.parent
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CONNECT_RUN, flameup_server.api_key, flameup_server.base_url],
        env={**os.environ, "SPARK_TESTING": "1", "PYTHONPATH": path},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,  # a JVM beside the suite's other workers (CI: three suites on two cores)
        check=False,
    )
    causes = [line for line in done.stderr.splitlines() if "Exception" in line or "Error" in line]
    assert "COUNTS 3" in done.stdout, "\n".join(causes[:12]) + "\n...\n" + done.stderr[-1500:]
    assert bodies_of(flameup_server) == expected


@SETTINGS
@given(values=st.lists(st.none() | DECIMAL, min_size=1, max_size=6))
def test_a_decimal_of_any_scale_sends_the_same_bytes(values, flameup_server, tmp_path):
    users = pa.array([f"u{i}" for i in range(len(values))])
    narrow = pa.table({"userId": users, "d": pa.array(values, pa.decimal128(19, 2))})
    wide = pa.table({"userId": users, "d": pa.array(values, pa.decimal128(38, 10))})
    expected = through("arrow", narrow, flameup_server, tmp_path)
    for path in ("pandas", "polars", "arrow", "parquet", "duckdb"):
        assert through(path, wide, flameup_server, tmp_path) == expected, path
    flameup_server.reset_requests()
    pd.DataFrame({"userId": users.to_pylist(), "d": values}).flameup.upsert(
        **target(flameup_server)
    )
    assert bodies_of(flameup_server) == expected  # Decimal objects in pandas too


def pandas_types() -> pa.Table:
    """A pandas Period and Interval as pandas writes them to Arrow (its extension types)."""
    frame = pd.DataFrame(
        {
            "userId": ["a", "b", "c"],
            "period": pd.array([pd.Period("2024-01", "M"), None, None], dtype="period[M]"),
            "span": pd.arrays.IntervalArray.from_tuples([None, (0, 1), None]),
        }
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


REFUSED = {
    # column: (table, the paths that carry the type, the reason's words)
    "duration": (
        pa.table({"userId": ["a", "b", "c"], "x": pa.array([5, None, 7], pa.duration("s"))}),
        ("pandas", "polars", "arrow", "parquet", "duckdb"),
        "traits.x: timedelta (time span)",
    ),
    "interval": (  # DuckDB's INTERVAL; polars imports none, parquet cannot hold one
        pa.table(
            {
                "userId": ["a", "b", "c"],
                "x": pa.array(
                    [pa.MonthDayNano([1, 2, 3]), None, pa.MonthDayNano([0, 0, 1])],
                    pa.month_day_nano_interval(),
                ),
            }
        ),
        ("pandas", "arrow", "duckdb"),
        "traits.x: timedelta (time span)",
    ),
    "period and interval": (  # DuckDB drops pandas' extension types: it reads their storage
        pandas_types(),
        ("pandas", "polars", "arrow", "parquet"),
        "traits.period: Period|traits.span: Interval",
    ),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_unsendable_types_make_the_same_rows_invalid_on_every_path(kind, flameup_server, tmp_path):
    table, paths, reason = REFUSED[kind]
    refused = [any(c[row].is_valid for c in table.columns[1:]) for row in range(len(table))]
    upsert_arrow(table, **target(flameup_server, results=tmp_path / "r.parquet"))
    errors = pq.read_table(tmp_path / "r.parquet")["flameup_error"].to_pylist()
    named = [any(r in (error or "") for r in reason.split("|")) for error in errors]
    assert named == refused
    expected = through("arrow", table, flameup_server, tmp_path)
    assert len(expected) == 1 and expected[0].count(b"userId") == refused.count(False)
    for path in paths:
        assert through(path, table, flameup_server, tmp_path) == expected, path
