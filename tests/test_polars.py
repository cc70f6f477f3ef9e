"""df.flameup on polars frames: the same engine and results, polars in and polars out."""

from __future__ import annotations

import datetime as dt

# The test extra installs polars: a missing polars is a failure here, never a skip.
import polars as pl
import pytest

from flameup_pandas import RetryPolicy
from flameup_pandas._polars import register
from flameup_pandas.testing import Faults

from .conftest import target
from .test_upsert import customers

register()  # what ``import flameup_pandas`` does when polars is installed (idempotent)


def frame(n: int, start: int = 0) -> pl.DataFrame:
    return pl.from_pandas(customers(n, start))


def test_upsert_keeps_the_frame_and_adds_three_columns(flameup_server, to_server):
    df = frame(150)
    result = df.flameup.upsert(**to_server)
    assert isinstance(result, pl.DataFrame)
    assert result.columns == [*df.columns, "flameup_id", "flameup_status", "flameup_error"]
    assert result.select(df.columns).equals(df)
    assert result["flameup_status"].to_list() == ["created"] * 150
    stored = flameup_server.people().set_index("external_id")["id"]
    assert result["flameup_id"].to_list() == list(stored.loc[df["user_id"].to_list()])
    summary = result.flameup.summary()
    assert summary.counts["created"] == 150 and summary.run.requests == 2


def test_invalid_rows_are_reported_and_never_sent(flameup_server, to_server):
    df = frame(5).with_columns(
        pl.when(pl.col("user_id") == "u1")
        .then(pl.lit("nope"))
        .otherwise(pl.col("email"))
        .alias("email")
    )
    report = df.flameup.validate()
    assert report.select("row", "column").rows() == [(1, "email")]
    result = df.flameup.upsert(**to_server)
    assert result["flameup_status"].to_list() == ["created", "invalid", *["created"] * 3]
    assert "email" in result["flameup_error"][1]
    assert flameup_server.person("u1") is None
    assert result.flameup.summary().counts["invalid"] == 1


def test_values_cross_through_arrow_without_changing_type(flameup_server, to_server):
    """Integers with nulls stay integers, dates stay dates: no float or timestamp detour."""
    df = pl.DataFrame(
        {
            "userId": ["u1", "u2"],
            "visits": [3, None],
            "birthday": [dt.date(1990, 5, 17), None],
            "seen": [dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC), None],
        }
    )
    assert df.flameup.to_people() == [
        {
            "userId": "u1",
            "traits": {"visits": 3, "birthday": "1990-05-17", "seen": "2024-01-01T09:00:00Z"},
        },
        {"userId": "u2"},
    ]
    df.flameup.upsert(**to_server)
    assert flameup_server.person("u1")["attributes"]["visits"] == 3


def test_nothing_is_lost_under_faults(flameup_server, to_server):
    flameup_server.set_faults(
        Faults(error_rate=0.1, error_after_store_rate=0.05, drop_rate=0.05, seed=5)
    )
    result = frame(800).flameup.upsert(retry=RetryPolicy(backoff_factor=0.01), **to_server)
    assert set(result["flameup_status"].to_list()) <= {"created", "updated"}
    stored = flameup_server.people().set_index("external_id")
    assert len(stored) == 800
    assert result["flameup_id"].to_list() == list(stored.loc[result["user_id"].to_list(), "id"])
    assert result.flameup.summary().run.retries > 0


def test_an_outage_stops_the_run_early_and_the_summary_says_why(flameup_server, to_server):
    flameup_server.set_faults(Faults(down_after=3))
    fast = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)
    result = frame(1000).flameup.upsert(retry=fast, **to_server)
    statuses = result["flameup_status"].to_list()
    assert statuses.count("created") == 300 == len(flameup_server.people())
    assert statuses.count("failed") == 700
    stopped = result.flameup.summary().stopped
    assert stopped is not None and "unreachable since" in stopped


def test_unchanged_rows_are_not_sent_on_a_rerun(flameup_server, tmp_path):
    state = tmp_path / "state.parquet"
    df = frame(300)
    df.flameup.upsert(state=state, **target(flameup_server))
    flameup_server.reset_requests()
    changed = df.with_columns(
        pl.when(pl.col("user_id") == "u7")
        .then(pl.lit("new"))
        .otherwise(pl.col("plan"))
        .alias("plan")
    )
    result = changed.flameup.upsert(state=state, **target(flameup_server))
    assert result.flameup.summary().counts["skipped"] == 299
    assert result.filter(pl.col("flameup_status") == "updated")["user_id"].to_list() == ["u7"]
    assert flameup_server.request_count() == 1


def test_summary_needs_a_result_frame():
    with pytest.raises(ValueError, match="flameup_status"):
        frame(2).flameup.summary()
