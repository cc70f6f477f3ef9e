"""The command line's other sources and direction: upsert/validate --sql (DuckDB), export."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from flameup_pandas import read_people, upsert
from flameup_pandas._people.columns import to_frame
from flameup_pandas.cli import main

from .conftest import target
from .test_upsert import customers


@pytest.fixture
def env(flameup_server, monkeypatch):
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    return flameup_server


def test_upsert_sql_filters_renames_and_reruns_send_only_changes(env, tmp_path, capsys):
    customers(300).to_parquet(tmp_path / "c.parquet")
    query = (
        "SELECT user_id AS customer_no, email, plan AS tier "
        f"FROM read_parquet('{tmp_path}/c.parquet') WHERE plan = 'pro'"
    )
    state, results = tmp_path / "s.parquet", tmp_path / "r.parquet"
    args = ["upsert", "--sql", query, "--map", "userId=customer_no", "--no-progress"]
    args += ["--rate-limit", "6000", "--state", str(state), "--results", str(results)]
    assert main(args) == 0
    assert len(env.people()) == 150 and env.person("u2")["attributes"] == {"tier": "pro"}
    assert env.person("u1") is None
    out = pd.read_parquet(results)
    assert sorted(out["row"]) == list(range(150)) and set(out["flameup_status"]) == {"created"}
    env.reset_requests()
    assert main(args) == 0
    assert env.request_count() == 0
    assert "skipped" in capsys.readouterr().out


def test_sql_in_a_duckdb_file_dry_run(env, tmp_path, capsys):
    database = tmp_path / "crm.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute(
            "CREATE TABLE crm AS SELECT 'c' || i AS userId, i AS visits FROM range(40) t(i)"
        )
    query = "SELECT * FROM crm WHERE visits < 25"
    assert main(["upsert", "--sql", query, "--duckdb", str(database), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would send 25 people in 1 requests" in out and '{"userId":"c0"' in out
    assert env.requests == []


def test_validate_sql_reports_bad_rows(env, capsys):
    query = "SELECT 'u' || i AS userId, CASE WHEN i = 3 THEN 'bad' END AS email FROM range(5) t(i)"
    assert main(["validate", "--sql", query]) == 1
    out = capsys.readouterr().out
    assert "5 rows, 1 problems" in out and "bad" in out
    assert env.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "--sql", "SELEC nonsense"], "the query failed"),
        (["upsert", "--sql", "SELECT 1", "--duckdb", "missing.duckdb"], "no such DuckDB"),
    ],
)
def test_source_mistakes_exit_2_with_one_line(env, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_export_writes_what_read_people_reads(env, tmp_path, capsys):
    df = customers(260)
    df["seats"] = pd.array([i if i % 7 else None for i in range(260)], dtype="Int64")
    upsert(df, **target(env))
    # a trait first seen on the last page, and one that turns from integers to text
    upsert(pd.DataFrame({"user_id": ["u259"], "late": ["yes"]}), **target(env))
    upsert(pd.DataFrame({"user_id": ["u258"], "seats": ["many"]}), **target(env))
    out = tmp_path / "people.parquet"
    assert main(["export", str(out), "--no-progress", "--rate-limit", "6000"]) == 0
    assert "260 people written" in capsys.readouterr().out
    exported = to_frame(pq.read_table(out))
    expected = read_people(**target(env))
    pd.testing.assert_frame_equal(exported, expected)
    assert exported.set_index("external_id").loc["u258", "seats"] == "many"


def test_export_status_filter(env, tmp_path, capsys):
    upsert(customers(5), **target(env))
    env.set_status("u3", "bounced")
    out = tmp_path / "bounced.parquet"
    assert main(["export", str(out), "--status", "bounced", "--no-progress"]) == 0
    assert list(pd.read_parquet(out)["external_id"]) == ["u3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upsert", "x.parquet", "--sql", "SELECT 1"], "either a PATH or --sql"),
        (["validate"], "either a PATH or --sql"),
        (["upsert", "x.parquet", "--duckdb", "db.duckdb"], "--duckdb FILE goes with --sql"),
    ],
)
def test_path_and_sql_usage_mistakes_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_query_failing_part_way_exits_2_with_one_line_and_a_readable_results_file(
    env, tmp_path, capsys
):
    query = (
        "SELECT 'u' || i AS userId, CASE WHEN i = 60000 THEN CAST('x' AS INTEGER) ELSE i END AS n"
        " FROM range(100000) t(i)"
    )
    results = tmp_path / "r.parquet"
    args = ["upsert", "--sql", query, "--dry-run", "--results", str(results)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "reading the source failed after" in err and "Could not convert" in err
    assert len(err.strip().splitlines()) == 1
    assert list(pd.read_parquet(results).columns)[:2] == ["row", "userId"]  # closed, readable


def test_an_export_that_fails_leaves_the_earlier_file(env, tmp_path, monkeypatch, capsys):
    upsert(customers(250), **target(env))
    out = tmp_path / "people.parquet"
    out.write_bytes(b"yesterday's export")
    monkeypatch.setenv("FLAMEUP_API_KEY", env.add_key(["people:read", "people:write"]))
    assert main(["export", str(out), "--no-progress"]) == 2
    assert "people:list" in capsys.readouterr().err
    assert out.read_bytes() == b"yesterday's export"
    assert [p.name for p in tmp_path.iterdir()] == ["people.parquet"]  # no scratch left
