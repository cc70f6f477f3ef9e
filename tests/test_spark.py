"""flameup_pandas.spark.upsert: planned on executors, diffed in Spark, sent from the driver."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

# The test extra installs pyspark: a missing pyspark is a failure here, never a skip.
import pyspark  # noqa: F401
import pytest

from flameup_pandas import RetryPolicy
from flameup_pandas import spark as flameup_spark
from flameup_pandas._send.delivery import IN_FLIGHT, NOT_SENT
from flameup_pandas.testing import Faults

from .conftest import target
from .reference import planned_rows
from .test_upsert import customers

# pyspark 4.3 warns at every pandas conversion that it "does not yet fully support pandas >=
# 3.0.0"; the runs below are the check that what we use works.
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)


def to_spark(spark, df: pd.DataFrame, partitions: int = 3):
    return spark.createDataFrame(df).repartition(partitions)


def collect(results) -> pd.DataFrame:
    """Through Arrow: pyspark's toPandas() trips a pandas 3 deprecation warning."""
    return results.toArrow().to_pandas()


def test_rows_fetched_a_partition_at_a_time_are_each_sent_once(spark, flameup_server, monkeypatch):
    """The driver fetches the rows to send in bounded partitions, as Arrow, and cuts them into
    chunks: across both boundaries every row is sent once and keeps its own outcome."""
    from flameup_pandas.spark import _driver

    monkeypatch.setattr(_driver, "FETCH_ROWS", 300)  # 1,000 rows: 4 partitions
    monkeypatch.setattr(_driver, "CHUNK_ROWS", 70)  # a partition's batch: several chunks
    df = customers(1_000)
    run = flameup_spark.upsert(to_spark(spark, df), **target(flameup_server))
    assert run.summary.counts["created"] == 1_000
    assert run.summary.to_dict()["rows_to_driver"] == 1_000
    batches = [r for r in flameup_server.requests if r.path.endswith("/people/batch")]
    assert sum(r.people_count for r in batches) == 1_000
    out = collect(run.results).set_index("userId")
    stored = flameup_server.people().set_index("external_id")
    assert sorted(stored.index) == sorted(df["user_id"])
    assert list(out.loc[stored.index, "flameup_id"]) == list(stored["id"])
    assert flameup_server.person("u999")["attributes"]["plan"] == df.loc[999, "plan"]


def test_every_row_gets_a_status_and_invalid_rows_are_never_sent(spark, flameup_server):
    df = customers(300)
    df["signed_up"] = pd.Timestamp("2024-05-01 12:30", tz="UTC")
    df.loc[7, "email"] = "not-an-email"
    df.loc[9, ["user_id", "email"]] = [None, None]
    df.loc[11, "user_id"] = "u12"  # the same person as row 12, maybe in another partition
    run = flameup_spark.upsert(to_spark(spark, df), **target(flameup_server))
    out = collect(run.results)
    assert len(out) == 300 and out["row"].is_unique
    assert run.summary.counts == {
        "created": 297,
        "updated": 0,
        "invalid": 2,
        "rejected": 0,
        "failed": 0,
        "skipped": 1,
    }
    assert run.summary.to_dict()["rows_to_driver"] == 297
    invalid = out[out["flameup_status"] == "invalid"].set_index("userId")
    assert "email" in invalid.loc["u7", "flameup_error"]
    assert "no userId or email" in invalid["flameup_error"].to_string()
    skipped = out[out["flameup_status"] == "skipped"]
    assert skipped["flameup_error"].str.startswith("duplicate identity: row ").all()
    stored = flameup_server.people().set_index("external_id")
    assert len(stored) == 297 and "u7" not in stored.index
    created = out[out["flameup_status"] == "created"].set_index("userId")
    assert list(created["flameup_id"]) == list(stored.loc[created.index, "id"])
    assert flameup_server.person("u1")["attributes"]["signed_up"] == "2024-05-01T12:30:00Z"


def test_nothing_is_lost_under_faults(spark, flameup_server, tmp_path):
    flameup_server.set_faults(
        Faults(error_rate=0.1, error_after_store_rate=0.05, drop_rate=0.05, seed=11)
    )
    results = tmp_path / "results"
    run = flameup_spark.upsert(
        to_spark(spark, customers(1000)),
        results=results,
        retry=RetryPolicy(backoff_factor=0.01),
        **target(flameup_server),
    )
    assert run.results == str(results)
    out = pd.read_parquet(results)
    assert len(out) == 1000
    assert set(out["flameup_status"]) <= {"created", "updated"}
    assert run.summary.run.retries > 0
    stored = flameup_server.people().set_index("external_id")
    assert len(stored) == 1000 and stored.index.is_unique
    ids = out.set_index("userId")["flameup_id"]
    assert (ids.loc[stored.index] == stored["id"]).all()


def test_an_outage_stops_the_driver_early_and_the_state_keeps_what_landed(
    spark, flameup_server, tmp_path
):
    """The breaker of the shared engine: Flameup down after 4 requests."""
    state = tmp_path / "state.parquet"
    sdf = to_spark(spark, customers(2000))
    flameup_server.set_faults(Faults(down_after=4, down_mode="refuse"))
    fast = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)
    run = flameup_spark.upsert(sdf, state=state, retry=fast, **target(flameup_server))
    out = collect(run.results)
    assert run.summary.stopped is not None
    assert run.summary.counts["created"] == 400 == len(flameup_server.people())
    assert run.summary.counts["failed"] == 1600 == (out["flameup_status"] == "failed").sum()
    flameup_server.set_faults(None)
    flameup_server.reset_requests()
    again = flameup_spark.upsert(sdf, state=state, retry=fast, **target(flameup_server))
    assert (again.summary.counts["created"], again.summary.counts["skipped"]) == (1600, 400)
    assert flameup_server.request_count() == 16


def test_state_round_trip_pandas_to_spark_to_pandas(spark, flameup_server, tmp_path):
    """One state file serves both paths: each run sends only what changed since the last."""
    state = tmp_path / "state.parquet"
    to_server = target(flameup_server)
    df = customers(400)
    assert (df.flameup.upsert(state=state, **to_server)["flameup_status"] == "created").all()

    df.loc[[3, 250, 399], "plan"] = "changed in pandas"
    flameup_server.reset_requests()
    run = flameup_spark.upsert(to_spark(spark, df), state=state, **to_server)
    assert run.summary.counts["updated"] == 3 and run.summary.counts["skipped"] == 397
    assert run.summary.to_dict()["rows_to_driver"] == 3
    assert flameup_server.request_count() == 1
    unchanged = collect(run.results).set_index("userId").loc["u4"]
    assert unchanged["flameup_error"] == "unchanged since last sync"
    assert unchanged["flameup_id"] == flameup_server.person("u4")["id"]

    df.loc[[10, 20], "plan"] = "changed in spark"
    run = flameup_spark.upsert(to_spark(spark, df), state=state, **to_server)
    assert run.summary.counts["updated"] == 2 and run.summary.to_dict()["rows_to_driver"] == 2

    df.loc[[30], "plan"] = "changed again"
    flameup_server.reset_requests()
    result = df.flameup.upsert(state=state, **to_server)
    assert list(result.index[result["flameup_status"] == "updated"]) == [30]
    assert flameup_server.request_count() == 1
    assert flameup_server.person("u20")["attributes"]["plan"] == "changed in spark"


def test_a_state_on_s3_is_read_and_written_by_the_driver(spark, flameup_server, s3):
    """This Spark has no S3 filesystem of its own: the driver reads and writes the state object
    through the storage layer and the executors get its columns with the plan; a rerun sends
    only what changed, and the pandas path reads the same state."""
    state = s3.uri("spark/state.parquet")
    df = customers(300)
    first = flameup_spark.upsert(to_spark(spark, df), state=state, **target(flameup_server))
    assert first.summary.counts["created"] == 300
    assert len(s3.read_parquet("spark/state.parquet")) == 300
    assert not [k for k in s3.keys("spark/") if ".journal" in k or ".lock" in k]

    df.loc[[5, 123], "plan"] = "changed in spark"
    flameup_server.reset_requests()
    s3.wire.reset()
    again = flameup_spark.upsert(to_spark(spark, df), state=state, **target(flameup_server))
    assert (again.summary.counts["updated"], again.summary.counts["skipped"]) == (2, 298)
    assert flameup_server.request_count() == 1
    reads = [p for m, p in s3.wire.requests if m == "GET" and p.endswith("/spark/state.parquet")]
    assert len(reads) == 1  # once, by the driver

    flameup_server.reset_requests()
    result = df.flameup.upsert(state=state, **target(flameup_server))
    assert (result["flameup_status"] == "skipped").all()
    assert flameup_server.request_count() == 0


def test_rerun_and_dry_run_send_nothing_unchanged(spark, flameup_server, tmp_path):
    state = tmp_path / "state.parquet"
    sdf = to_spark(spark, customers(200))
    first = flameup_spark.upsert(sdf, state=state, **target(flameup_server))
    assert first.summary.counts["created"] == 200
    flameup_server.reset_requests()
    again = flameup_spark.upsert(sdf, state=state, **target(flameup_server))
    assert again.summary.counts["skipped"] == 200
    assert again.summary.to_dict()["rows_to_driver"] == 0
    changed = customers(201)
    changed.loc[5, "plan"] = "new"
    dry = flameup_spark.upsert(
        to_spark(spark, changed), state=state, dry_run=True, **target(flameup_server)
    )
    assert dry.summary.extra == {"would_send": 2}
    assert flameup_server.requests == []


def test_a_dry_run_without_state_settles_every_row_and_sends_nothing(spark, flameup_server):
    """No state and no sending: the executors build neither content hashes nor JSON."""
    df = customers(120)
    df.loc[3, "email"] = "broken"
    df.loc[8, "user_id"] = "u9"
    dry = flameup_spark.upsert(to_spark(spark, df), dry_run=True, **target(flameup_server))
    assert dry.summary.extra == {"would_send": 118}
    assert dry.summary.counts["skipped"] == 119 and dry.summary.counts["invalid"] == 1
    out = collect(dry.results).set_index("row").sort_index()
    assert out.loc[out["flameup_status"] == "invalid", "email"].tolist() == ["broken"]
    assert (out["flameup_error"] == "dry run: would be sent").sum() == 118
    assert flameup_server.requests == []


def test_timestamps_without_zone_need_a_choice(spark, flameup_server):
    sdf = spark.sql("select 'u1' as userId, timestamp_ntz'2024-01-01 10:00:00' as seen")
    with pytest.raises(ValueError, match="without a time zone"):
        flameup_spark.upsert(sdf, **target(flameup_server))
    run = flameup_spark.upsert(sdf, naive_timestamps="utc", **target(flameup_server))
    assert run.summary.counts["created"] == 1
    assert flameup_server.person("u1")["attributes"]["seen"] == "2024-01-01T10:00:00Z"


def test_the_package_and_this_module_import_without_pyspark():
    """pyspark stays optional: it is imported only when a Spark run starts."""
    code = (
        "import sys; sys.modules['pyspark'] = None; import flameup_pandas; "
        "print('flameup_pandas.spark' in sys.modules); import flameup_pandas.spark"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_planned_rows_use_the_shared_rules_and_hashes():
    """The executor function, called directly: same people and hashes as the pandas path."""
    from flameup_pandas._run.plan import Rules

    from .reference import content_hashes

    df = customers(4)
    df.loc[2, "email"] = "broken"
    planned = planned_rows(Rules(), df, np.arange(100, 104))
    assert list(planned["row"]) == [100, 101, 102, 103]
    assert planned["flameup_status"].tolist()[2] == "invalid"
    people = df.flameup.to_people()
    assert planned["content_hash"].tolist() == [
        *content_hashes(people[:2]),
        0,
        *content_hashes(people[2:]),
    ]
    assert planned["identity"].tolist() == ["u:u0", "u:u1", None, "u:u3"]


def test_the_driver_spends_the_announced_budget_and_takes_the_same_cap(spark, flameup_server):
    """Budget pacing and ``rate_limit`` as in every other entry point: 25 requests at 10 per
    2 s, three budgets' worth, with (almost) no 429; the cap reaches the key's limiter."""
    from flameup_pandas._send.client import fingerprint
    from flameup_pandas._send.pacing import _SHARED
    from flameup_pandas.testing import FlameupServer

    df = pd.DataFrame({"userId": [f"s{i}" for i in range(2_500)]})
    with FlameupServer(rate_limit=10, rate_window=2.0) as server:
        where = {"api_key": server.api_key, "base_url": server.base_url, "rate_limit": 900}
        run = flameup_spark.upsert(to_spark(spark, df), **where)
        assert run.summary.counts["created"] == 2_500
        assert len(server.people()) == 2_500
        assert server.request_count(status=429) <= 3
        assert _SHARED[fingerprint(server.api_key, server.base_url)].rate_per_minute == 900


def test_ctrl_c_on_a_spark_run_keeps_what_was_done(spark, tmp_path):
    """Ctrl-C mid-run: UpsertInterrupted at once, its result the outcomes so far (the rest
    failed, written to results= first); the state holds the acknowledged rows, and a rerun
    sends only the others."""
    import signal

    import pyarrow.parquet as pq

    from flameup_pandas import UpsertInterrupted
    from flameup_pandas.testing import FlameupServer

    from .test_interrupt import Hang, sent_since

    df = customers(2_000)
    state, results = tmp_path / "state.parquet", tmp_path / "results"
    with FlameupServer(rate_limit=None, faults=Faults(latency=0.05)) as server:
        hang = Hang(server, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(UpsertInterrupted) as caught:
            flameup_spark.upsert(
                to_spark(spark, df, partitions=2),
                state=state,
                results=results,
                concurrency=2,
                **target(server),
            )
        assert hang.answered_since() == []
        stop = caught.value
        run = stop.result
        assert isinstance(run, flameup_spark.SparkUpsertResult) and run.results == str(results)
        written = pq.read_table(results).to_pandas()
        assert len(written) == 2_000 and written["row"].is_unique
        created = int((written["flameup_status"] == "created").sum())
        assert created >= 300 and run.summary.counts["created"] == created
        assert set(written["flameup_status"]) == {"created", "failed"}
        assert written["flameup_error"].isin([NOT_SENT, IN_FLIGHT, None]).all()
        assert f"{created:,} of 2,000 rows finished" in str(stop)
        assert len(pq.read_table(state)) == created
        server.set_faults(None)
        since = time.time()  # the hung batches may still be recorded: count only the rerun's
        again = flameup_spark.upsert(to_spark(spark, df), state=state, **target(server))
        assert again.summary.counts["skipped"] == created
        assert sent_since(server, since) == 2_000 - created


def test_the_change_guard_refuses_a_spark_run_before_any_request(spark, flameup_server, tmp_path):
    """max_changes and max_creates count the decisions in Spark, before anything is sent;
    a run the guard lets through sends exactly what it counted."""
    from flameup_pandas import ChangeGuardError

    state = tmp_path / "state.parquet"
    flameup_spark.upsert(to_spark(spark, customers(100)), state=state, **target(flameup_server))
    changed = pd.concat([customers(100), customers(20, start=100)], ignore_index=True)
    changed.loc[:29, "plan"] = "gold"
    sdf = to_spark(spark, changed)
    flameup_server.reset_requests()
    for limits, over in (({"max_changes": 10}, "update 30 of 120"), ({"max_creates": 5}, "20")):
        with pytest.raises(ChangeGuardError, match=over) as caught:
            flameup_spark.upsert(sdf, state=state, **limits, **target(flameup_server))
        assert caught.value.summary.actions["update"] == 30
        assert caught.value.summary.actions["create"] == 20
        assert caught.value.summary.fields[0].field == "plan"
        every = collect(caught.value.plan)
        assert (every["flameup_action"] == "unchanged").sum() == 70
    assert flameup_server.requests == []
    run = flameup_spark.upsert(
        sdf, state=state, max_changes="30%", max_creates=20, **target(flameup_server)
    )
    assert (run.summary.counts["updated"], run.summary.counts["created"]) == (30, 20)
    assert run.summary.counts["skipped"] == 70
    assert run.summary.to_dict()["rows_to_driver"] == 50
    assert flameup_server.request_count() == 1


def test_state_values_kept_by_spark_are_read_by_pandas_and_back(spark, to_server, tmp_path):
    """state_values=True on Spark keeps each person as sent: a pandas plan shows before and
    after from it; a pandas run with it writes what a Spark plan reads the same way."""
    state = str(tmp_path / "people.state.parquet")
    df = customers(6)
    first = flameup_spark.upsert(to_spark(spark, df), state=state, state_values=True, **to_server)
    assert first.summary.counts["created"] == 6
    changed = df.copy()
    changed.loc[2, "plan"] = "gold"  # was pro
    planned = changed.flameup.plan(state=state, state_values=True)
    assert planned.loc[2, "flameup_before"] == {"plan": "pro"}
    assert planned.loc[2, "flameup_after"] == {"plan": "gold"}
    changed.flameup.upsert(state=state, state_values=True, **to_server)
    again = changed.copy()
    again.loc[4, "score"] = 9.5  # was 0.4
    result = flameup_spark.plan(to_spark(spark, again), state=state, state_values=True)
    by_user = result.changes.set_index("userId")
    assert list(by_user.index) == ["u4"]
    assert by_user.loc["u4", "flameup_before"] == {"score": 0.4}
    assert by_user.loc["u4", "flameup_after"] == {"score": 9.5}
    run = flameup_spark.upsert(to_spark(spark, again), state=state, state_values=True, **to_server)
    assert run.summary.counts["updated"] == 1
    assert again.flameup.plan(state=state)["flameup_action"].eq("unchanged").all()


def test_a_complete_source_plan_on_spark_counts_the_people_gone(spark, to_server, tmp_path):
    """complete_source=True: the state's people no row gave (an invalid row still gives
    its identity) are gone, found in Spark, as the pandas plan finds them."""
    state = str(tmp_path / "people.state.parquet")
    df = customers(30)
    flameup_spark.upsert(to_spark(spark, df), state=state, **to_server)
    smaller = df.iloc[5:].copy()
    smaller.loc[7, "email"] = "broken"
    result = flameup_spark.plan(to_spark(spark, smaller), state=state, complete_source=True)
    expected = smaller.flameup.plan(state=state, complete_source=True).flameup.summary()
    assert result.summary.gone == expected.gone == 5
    assert sorted(result.summary.gone_examples) == sorted(set(result.summary.gone_examples))
    assert set(result.summary.gone_examples) <= {f"u{i}" for i in range(5)}
    assert result.summary.actions["invalid"] == 1
    run = flameup_spark.upsert(
        to_spark(spark, smaller), state=state, complete_source=True, **to_server
    )
    assert run.summary.counts["skipped"] == 24


def test_spark_plan_brings_only_the_planned_changes_to_the_driver(spark, to_server, tmp_path):
    """Every action, the changed fields from the state's hashes and before/after from its
    values, decided in Spark: only the creates and updates reach the driver."""
    state = str(tmp_path / "people.state.parquet")
    df = customers(8)
    df.flameup.upsert(state=state, state_values=True, **to_server)
    changed = df.copy()
    changed.loc[1, "plan"] = "gold"  # was free
    changed.loc[2, ["plan", "score"]] = ["gold", 9.5]  # was pro, 0.2
    changed.loc[3, "email"] = "not-an-email"
    frame = pd.concat([changed, customers(1, start=40)], ignore_index=True)
    result = flameup_spark.plan(to_spark(spark, frame), state=state, state_values=True)
    assert result.summary.actions == {
        "create": 1,
        "update": 2,
        "unchanged": 5,
        "invalid": 1,
        "skipped": 0,
    }
    changes = result.changes
    assert len(changes) == 3  # the only rows that reached the driver
    by_user = changes.set_index("userId")
    assert by_user.loc["u1", "flameup_changes"] == ["plan"]
    assert sorted(by_user.loc["u2", "flameup_changes"]) == ["plan", "score"]
    assert by_user.loc["u2", "flameup_before"] == {"plan": "pro", "score": 0.2}
    assert by_user.loc["u2", "flameup_after"] == {"plan": "gold", "score": 9.5}
    assert by_user.loc["u40", "flameup_action"] == "create"
    assert by_user.loc["u40", "flameup_before"]["plan"] is None
    assert result.summary.fields[0].field == "plan" and result.summary.fields[0].count == 2
    every = collect(result.plan).set_index("userId")
    assert every.loc["u3", "flameup_action"] == "invalid"
    assert every.loc["u0", "flameup_action"] == "unchanged"


def test_spark_plan_of_an_old_state_says_changes_unknown(spark, to_server, tmp_path):
    import pyarrow.parquet as pq

    state = tmp_path / "people.state.parquet"
    df = customers(4)
    df.flameup.upsert(state=state, **to_server)
    pq.write_table(pq.read_table(state).drop_columns(["fields", "sent"]), state)
    result = flameup_spark.plan(to_spark(spark, df.assign(plan="gold")), state=str(state))
    assert result.summary.actions["update"] == 4
    assert result.summary.unknown == 4
    assert result.changes["flameup_changes"].isna().all()


def test_a_spark_sync_keeps_field_hashes_so_a_plan_names_the_changes(spark, to_server, tmp_path):
    """The state a Spark run writes is the one a pandas plan reads, fields and all."""
    state = str(tmp_path / "people.state.parquet")
    df = customers(6)
    flameup_spark.upsert(to_spark(spark, df), state=state, **to_server)
    changed = df.copy()
    changed.loc[2, "plan"] = "gold"
    planned = changed.flameup.plan(state=state)
    assert planned["flameup_action"].tolist().count("unchanged") == 5
    assert planned.loc[2, "flameup_changes"] == ["plan"]
    result = flameup_spark.plan(to_spark(spark, changed), state=state)
    assert result.changes["flameup_changes"].tolist() == [["plan"]]


def test_a_spark_run_reports_its_input_files_and_rows_written(
    spark, flameup_server, lineage, tmp_path
):
    """OpenLineage: the frame's files are the input, Flameup's people the output."""
    path = tmp_path / "people.parquet"
    customers(20).to_parquet(path)
    flameup_spark.upsert(spark.read.parquet(str(path)), **target(flameup_server))
    start, complete = lineage
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["inputs"][0]["namespace"] == "file"
    assert complete["inputs"][0]["name"] == str(path.resolve())
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 20
