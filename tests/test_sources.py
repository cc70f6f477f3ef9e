"""upsert_arrow: real engines (DuckDB, ADBC SQLite, polars, Delta) streamed through the engine."""

from __future__ import annotations

import adbc_driver_sqlite.dbapi as adbc_sqlite
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from hypothesis import given
from hypothesis import strategies as st

from flameup_pandas import ConfigurationError, upsert_arrow
from flameup_pandas._run.sources import open_rows, rechunked

from .conftest import target
from .test_upsert import customers

CUSTOMERS_SQL = """
    SELECT 'u' || i AS user_id, 'person' || i || '@example.com' AS email,
           'Name' || i AS first_name, CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END AS plan,
           i / 10 AS score
    FROM range({n}) t(i)
"""


def stored_attributes(server, user_id):
    return server.person(user_id)["attributes"]


def test_duckdb_relation_streams_in_full_batches_with_results(flameup_server, tmp_path):
    con = duckdb.connect()
    rel = con.sql(CUSTOMERS_SQL.format(n=1050))
    results = tmp_path / "r.parquet"
    summary = upsert_arrow(rel, results=results, chunk_rows=130, **target(flameup_server))
    assert summary.counts["created"] == 1050
    sizes = sorted((r.people_count for r in flameup_server.requests), reverse=True)
    assert sizes == [100] * 10 + [50]
    out = pd.read_parquet(results).sort_values("row")
    assert list(out["row"]) == list(range(1050))
    assert list(out["userId"]) == [f"u{i}" for i in range(1050)]
    person = flameup_server.person("u41")
    assert person["first_name"] == "Name41" and person["email"] == "person41@example.com"
    assert person["attributes"] == {"plan": "free", "score": 4.1}


def test_duckdb_record_batch_reader_rerun_sends_only_changes(flameup_server, tmp_path):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE customers AS {CUSTOMERS_SQL.format(n=500)}")
    state = tmp_path / "state.parquet"
    query = "SELECT * FROM customers ORDER BY user_id"
    first = upsert_arrow(
        con.sql(query).to_arrow_reader(batch_size=64), state=state, **target(flameup_server)
    )
    assert first.counts["created"] == 500
    con.execute("UPDATE customers SET plan = 'changed' WHERE user_id = 'u42'")
    flameup_server.reset_requests()
    again = upsert_arrow(
        con.sql(query).to_arrow_reader(batch_size=64), state=state, **target(flameup_server)
    )
    assert again.counts["skipped"] == 499 and again.counts["updated"] == 1
    assert flameup_server.request_count() == 1
    assert stored_attributes(flameup_server, "u42")["plan"] == "changed"


def test_duckdb_dry_run_sends_nothing_and_shows_people(flameup_server):
    rel = duckdb.sql(CUSTOMERS_SQL.format(n=30))
    summary = upsert_arrow(rel, dry_run=True, **target(flameup_server))
    assert summary.extra["would_send"] == 30
    assert summary.sample[0]["userId"] == "u0"
    assert flameup_server.requests == []


def test_adbc_sqlite_cursor_through_a_real_driver(flameup_server, tmp_path):
    with adbc_sqlite.connect(str(tmp_path / "crm.db")) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE crm (customer_no TEXT, mail TEXT, tier TEXT, visits INTEGER)")
        cur.executemany(
            "INSERT INTO crm VALUES (?, ?, ?, ?)",
            [(f"c{i:05d}", f"c{i}@example.com", "gold" if i % 3 else None, i) for i in range(250)],
        )
        conn.commit()
        cur.execute("SELECT * FROM crm WHERE visits >= 10")
        summary = upsert_arrow(
            cur.fetch_record_batch(),
            mapping={"userId": "customer_no", "email": "mail"},
            **target(flameup_server),
        )
    assert summary.counts["created"] == 240
    assert flameup_server.person("c00010")["attributes"] == {"tier": "gold", "visits": 10}
    assert flameup_server.person("c00012")["attributes"] == {"visits": 12}  # NULL: not sent
    assert flameup_server.person("c00009") is None


def test_polars_dataframe_and_lazyframe(flameup_server, to_server):
    frame = pl.from_pandas(customers(300))
    assert upsert_arrow(frame, **to_server).counts["created"] == 300
    lazy = (
        frame.lazy()
        .filter(pl.col("plan") == "pro")
        .with_columns(pl.lit("renamed").alias("plan"))
        .rename({"first_name": "given"})
    )
    summary = upsert_arrow(lazy, exclude=["given"], chunk_rows=40, **to_server)
    assert summary.counts["updated"] == 150
    assert stored_attributes(flameup_server, "u2")["plan"] == "renamed"
    assert stored_attributes(flameup_server, "u3")["plan"] == "free"


def test_polars_repeated_identity_across_batches_ends_with_the_last_row(flameup_server):
    df = customers(600)
    df.loc[350, ["user_id", "plan"]] = ["u7", "second"]
    df.loc[590, ["user_id", "plan"]] = ["u7", "third"]
    summary = upsert_arrow(
        pl.from_pandas(df), chunk_rows=100, **target(flameup_server, concurrency=4)
    )
    assert stored_attributes(flameup_server, "u7")["plan"] == "third"
    assert summary.counts["skipped"] == 1 and summary.counts["created"] == 598


def test_delta_table_dataset(flameup_server, to_server, tmp_path):
    write_deltalake(tmp_path / "delta", pa.Table.from_pandas(customers(120), preserve_index=False))
    write_deltalake(
        tmp_path / "delta",
        pa.Table.from_pandas(customers(30, start=120), preserve_index=False),
        mode="append",
    )
    dataset = DeltaTable(tmp_path / "delta").to_pyarrow_dataset()
    assert upsert_arrow(dataset, **to_server).counts["created"] == 150
    assert flameup_server.person("u149")["first_name"] == "Name149"


def test_pyarrow_table_with_invalid_rows_reported(flameup_server, to_server, tmp_path):
    df = customers(20)
    df.loc[3, "email"] = "broken"
    results = tmp_path / "r.parquet"
    table = pa.Table.from_pandas(df, preserve_index=False)
    summary = upsert_arrow(table, results=results, chunk_rows=7, **to_server)
    assert summary.counts == {**summary.counts, "created": 19, "invalid": 1}
    out = pd.read_parquet(results).set_index("row")
    assert out.loc[3, "flameup_status"] == "invalid" and "email" in out.loc[3, "flameup_error"]


def test_a_path_or_a_non_arrow_object_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="use upsert_file"):
        upsert_arrow(str(tmp_path / "c.parquet"), dry_run=True)
    with pytest.raises(ConfigurationError, match="cannot read rows from a list"):
        upsert_arrow([{"userId": "a"}], dry_run=True)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), max_size=12),
    rows=st.integers(min_value=1, max_value=40),
)
def test_rechunked_keeps_every_row_in_order_in_full_pieces(sizes, rows):
    batches, start = [], 0
    for size in sizes:
        batches.append(pa.record_batch({"n": pa.array(range(start, start + size), pa.int64())}))
        start += size
    pieces = list(rechunked(iter(batches), rows))
    assert [v for p in pieces for v in p.column("n").to_pylist()] == list(range(start))
    assert all(len(p) == rows for p in pieces[:-1]) and all(0 < len(p) <= rows for p in pieces)


def test_stream_reader_is_closed_when_the_run_stops_early():
    reader = duckdb.sql(CUSTOMERS_SQL.format(n=1000)).to_arrow_reader(batch_size=100)
    rows = open_rows(reader, chunk_rows=100)
    next(rows.batches)
    rows.batches.close()
    with pytest.raises((OSError, pa.ArrowInvalid, ValueError)):
        reader.read_next_batch()


def test_a_slice_of_an_arrow_backed_frame_sends_each_row_as_itself(flameup_server, to_server):
    """Strings that start inside their buffer (a slice) are read from where they start: pyarrow
    20's if_else and casts of a sliced large_string gave NUL bytes, every identity one."""
    frame = customers(20).astype("string[pyarrow]").iloc[14:]
    result = frame.flameup.upsert(**to_server)
    assert result["flameup_status"].eq("created").all()
    assert len(flameup_server.people()) == 6
    for user_id, email in zip(frame["user_id"], frame["email"], strict=True):
        assert flameup_server.person(user_id)["email"] == email
