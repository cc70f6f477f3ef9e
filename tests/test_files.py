"""upsert_file: parquet and CSV streamed in record batches, results written as they come."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds

from flameup_pandas import upsert_file

from .test_upsert import customers


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
