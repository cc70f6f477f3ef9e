"""upsert_file: parquet and CSV streamed in record batches, results written as they come."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds

from flameup_pandas import upsert_file

from .conftest import both_shapes, target
from .test_upsert import customers


@both_shapes
def test_parquet_file_streams_in_chunks_with_full_batches(flameup_server, to_server, tmp_path):
    path = tmp_path / "customers.parquet"
    df = customers(1050)
    df.loc[7, "email"] = "broken"
    df.to_parquet(path)
    results = tmp_path / "results.parquet"
    summary = upsert_file(path, results=results, chunk_rows=130, **to_server)
    assert summary.counts["created"] == 1049 and summary.counts["invalid"] == 1
    sizes = [r.people_count for r in flameup_server.requests]
    assert sorted(sizes, reverse=True) == [100] * 10 + [49]
    out = pd.read_parquet(results).sort_values("row")
    assert list(out["row"]) == list(range(1050))
    assert list(out.columns) == [
        "row",
        "userId",
        "email",
        "flameup_id",
        "flameup_status",
        "flameup_error",
    ]
    assert out.loc[out["row"] == 7, "flameup_status"].item() == "invalid"
    stored = flameup_server.people().set_index("external_id")["id"]
    ok = out[out["flameup_status"] == "created"]
    assert list(ok["flameup_id"]) == list(stored.loc[ok["userId"]])


def test_csv_keeps_leading_zeros_in_identities(flameup_server, to_server, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("userId,email,score\n00123,a@example.com,5\n00124,b@example.com,6\n")
    summary = upsert_file(path, **to_server)
    assert summary.counts["created"] == 2
    assert flameup_server.person("00123")["attributes"] == {"score": 5}


def test_directory_and_dataset_sources(flameup_server, to_server, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    customers(60).to_parquet(folder / "a.parquet")
    customers(60, start=60).to_parquet(folder / "b.parquet")
    assert upsert_file(folder, **to_server).counts["created"] == 120
    assert upsert_file(ds.dataset(folder), **to_server).counts["updated"] == 120


@both_shapes
def test_file_state_sends_only_changes(flameup_server, to_server, tmp_path):
    path, state = tmp_path / "c.parquet", tmp_path / "state.parquet"
    df = customers(500)
    df.to_parquet(path)
    upsert_file(path, state=state, **to_server)
    df.loc[42, "plan"] = "changed"
    df.to_parquet(path)
    flameup_server.reset_requests()
    summary = upsert_file(path, state=state, **to_server)
    assert summary.counts["skipped"] == 499 and summary.counts["updated"] == 1
    assert flameup_server.request_count() == 1


def test_dry_run_file_sends_nothing(flameup_server, to_server, tmp_path):
    path = tmp_path / "c.parquet"
    customers(10).to_parquet(path)
    summary = upsert_file(path, dry_run=True, **to_server)
    assert summary.extra["would_send"] == 10
    assert flameup_server.requests == []


def test_repeated_identity_across_record_batches_ends_with_the_last_row(flameup_server, tmp_path):
    path, state = tmp_path / "c.parquet", tmp_path / "s.parquet"
    df = customers(1000)
    # u7 again at rows 400 and 900, u8 again at row 950: later record batches of 300 rows
    df.loc[400, ["user_id", "plan"]] = ["u7", "second"]
    df.loc[900, ["user_id", "plan"]] = ["u7", "third"]
    df.loc[950, ["user_id", "plan"]] = ["u8", "later"]
    df.to_parquet(path)
    results = tmp_path / "r.parquet"
    summary = upsert_file(
        path, results=results, state=state, chunk_rows=300, **target(flameup_server, concurrency=4)
    )
    assert flameup_server.person("u7")["attributes"]["plan"] == "third"
    assert flameup_server.person("u8")["attributes"]["plan"] == "later"
    out = pd.read_parquet(results).set_index("row")["flameup_status"]
    assert len(out) == 1000
    assert out[900] == "updated" and out[950] == "updated"
    assert out[400] == "skipped"  # set aside, then superseded by row 900
    assert summary.counts["skipped"] == 1
    # a rerun: the earlier rows of u7 differ from the state (which holds row 900), so they go
    # again, and row 900 must then go after them, or the server would end with an old row
    again = upsert_file(
        path, results=results, state=state, chunk_rows=300, **target(flameup_server)
    )
    assert flameup_server.person("u7")["attributes"]["plan"] == "third"
    assert flameup_server.person("u8")["attributes"]["plan"] == "later"
    # rows 7 and 8 (first rows of u7, u8) and then 900 and 950 (their last rows) went again
    assert again.counts["skipped"] == 1000 - 4


def test_a_guarded_rerun_sends_a_repeated_identity_again_with_its_bytes(flameup_server, tmp_path):
    # the change guard keeps only the bytes of the rows to send; an unchanged row repeating a
    # person an earlier chunk sends goes again after it, so its bytes are kept too (it crashed)
    path, state = tmp_path / "c.parquet", tmp_path / "s.parquet"
    df = customers(1000)
    df.loc[400, ["user_id", "plan"]] = ["u7", "second"]
    df.loc[900, ["user_id", "plan"]] = ["u7", "third"]
    df.to_parquet(path)
    upsert_file(path, state=state, chunk_rows=300, **target(flameup_server))
    again = upsert_file(path, state=state, chunk_rows=300, max_changes=10, **target(flameup_server))
    assert flameup_server.person("u7")["attributes"]["plan"] == "third"
    assert again.counts["updated"] == 2 and again.counts["skipped"] == 998
