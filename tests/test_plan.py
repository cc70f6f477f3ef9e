"""Plans: what a run would do to each row and field, sending nothing; the change guard."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flameup_pandas
from flameup_pandas import ChangeGuardError, PlanSummary
from flameup_pandas._run.state import STATE_SCHEMA, SyncState

from .test_upsert import customers


def synced(tmp_path, to_server, n=20):
    """A state that holds ``customers(n)`` as sent, and the frame."""
    state = tmp_path / "people.state.parquet"
    df = customers(n)
    df.flameup.upsert(state=state, **to_server)
    return state, df


def test_plan_returns_the_input_with_three_columns_and_sends_nothing(
    flameup_server, to_server, tmp_path
):
    state, df = synced(tmp_path, to_server)
    flameup_server.reset_requests()
    planned = df.flameup.plan(state=state, **to_server)
    assert list(planned.columns) == [*df.columns, *flameup_pandas._run.changes.PLAN_COLUMNS]
    assert planned.index.equals(df.index)
    pd.testing.assert_frame_equal(planned[df.columns], df)
    assert (planned["flameup_action"] == "unchanged").all()
    assert flameup_server.request_count() == 0


def test_every_action_and_the_fields_that_change(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=6)
    df = df.copy()
    df.loc[1, "plan"] = "enterprise"  # one field
    df.loc[2, ["plan", "score"]] = ["enterprise", 99.0]  # two fields
    df.loc[3, "email"] = "not-an-email"  # invalid
    extra = customers(1, start=100)  # a new person
    dupe = df.loc[[4]].assign(first_name="Twin")  # the same identity twice: the last row wins
    frame = pd.concat([df, extra, dupe], ignore_index=True)
    flameup_server.reset_requests()
    planned = frame.flameup.plan(state=state)
    assert planned["flameup_action"].tolist() == [
        "unchanged",
        "update",
        "update",
        "invalid",
        "skipped",
        "unchanged",
        "create",
        "update",
    ]
    assert planned.loc[1, "flameup_changes"] == ["plan"]
    assert sorted(planned.loc[2, "flameup_changes"]) == ["plan", "score"]
    assert planned.loc[7, "flameup_changes"] == ["first_name"]
    assert sorted(planned.loc[6, "flameup_changes"]) == [
        "email",
        "first_name",
        "plan",
        "score",
        "userId",
    ]
    assert planned.loc[0, "flameup_changes"] is None
    assert "email" in planned.loc[3, "flameup_error"]
    assert "duplicate identity" in planned.loc[4, "flameup_error"]
    assert flameup_server.request_count() == 0


def test_a_field_left_out_is_not_a_change(to_server, tmp_path):
    """Traits not sent are kept by Flameup (merged): a missing value changes nothing."""
    state, df = synced(tmp_path, to_server, n=3)
    df = df.astype({"score": "float64"}).copy()
    df.loc[0, "score"] = float("nan")
    planned = df.flameup.plan(state=state)
    assert planned.loc[0, "flameup_action"] == "update"
    assert planned.loc[0, "flameup_changes"] == []


def test_the_summary_counts_actions_and_the_fields_that_change_most(to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=30)
    df = df.copy()
    df.loc[0:9, "plan"] = "free-trial"
    df.loc[0:2, "score"] = -1.0
    summary = df.flameup.plan(state=state).flameup.summary()
    assert isinstance(summary, PlanSummary)
    assert summary.actions == {
        "create": 0,
        "update": 10,
        "unchanged": 20,
        "invalid": 0,
        "skipped": 0,
    }
    assert [(f.field, f.count) for f in summary.fields] == [("plan", 10), ("score", 3)]
    assert summary.fields[0].examples == (0, 1, 2)
    text = str(summary)
    assert "update 10" in text and "plan" in text and "10 people" in text
    assert "<table>" in summary._repr_html_()


def test_a_state_written_before_fields_were_kept_plans_updates_with_changes_unknown(
    to_server, tmp_path
):
    state, df = synced(tmp_path, to_server, n=4)
    old = pq.read_table(state).drop_columns(["fields"])  # today's files have no fields column
    pq.write_table(old, state)
    df = df.copy()
    df.loc[0, "plan"] = "enterprise"
    planned = df.flameup.plan(state=state)
    assert planned["flameup_action"].tolist() == ["update", "unchanged", "unchanged", "unchanged"]
    assert planned.loc[0, "flameup_changes"] is None
    summary = planned.flameup.summary()
    assert summary.unknown == 1
    # the next sync writes the new form: then the plan knows
    df.flameup.upsert(state=state, **to_server)
    df.loc[0, "score"] = 5.5
    assert df.flameup.plan(state=state).loc[0, "flameup_changes"] == ["score"]


def test_without_a_state_every_person_plans_as_an_update_with_changes_unknown():
    planned = customers(3).flameup.plan()
    assert planned["flameup_action"].tolist() == ["update"] * 3
    assert planned["flameup_changes"].isna().all()


def test_the_state_records_field_hashes_through_the_journal(to_server, tmp_path):
    state, _ = synced(tmp_path, to_server, n=5)
    with SyncState.open(state) as sync:
        fields = sync.frame()["fields"]
    assert all(len(f) == 4 for f in fields)  # email, first_name, plan, score (not userId)
    assert pq.read_schema(state).equals(STATE_SCHEMA)


def test_plan_file_and_plan_arrow_number_rows_from_zero(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=10)
    changed = df.copy()
    changed.loc[7, "plan"] = "enterprise"
    path = tmp_path / "people.parquet"
    changed.to_parquet(path)
    flameup_server.reset_requests()
    from_file = flameup_pandas.plan_file(path, state=state, chunk_rows=3)
    from_arrow = flameup_pandas.plan_arrow(pa.Table.from_pandas(changed), state=state)
    for planned in (from_file, from_arrow):
        assert list(planned.index) == list(range(10))
        assert planned.loc[7, "flameup_changes"] == ["plan"]
        assert (planned["flameup_action"] == "unchanged").sum() == 9
    assert flameup_server.request_count() == 0


def test_a_plan_refuses_a_results_file(tmp_path):
    with pytest.raises(flameup_pandas.ConfigurationError, match="results="):
        flameup_pandas.plan_arrow(pa.table({"userId": ["a"]}), results=tmp_path / "r.parquet")


def test_the_guard_refuses_before_any_request(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=40)
    df = df.copy()
    df.loc[0:9, "plan"] = "free"  # 10 of 40 would change (the half that were free stay so)
    flameup_server.reset_requests()
    with pytest.raises(ChangeGuardError) as caught:
        df.flameup.upsert(state=state, max_changes="5%", **to_server)
    assert flameup_server.request_count() == 0
    message = str(caught.value)
    assert "update 5 of 40 people" in message  # rows 0, 2, 4, 6, 8 were pro
    assert "plan" in message and "5 people" in message
    assert caught.value.plan["flameup_action"].value_counts()["update"] == 5


def test_the_guard_lets_a_run_within_its_limit_through(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=40)
    df = df.copy()
    df.loc[0, "plan"] = "enterprise"
    result = df.flameup.upsert(state=state, max_changes=1, **to_server)
    assert result["flameup_status"].value_counts().to_dict() == {"skipped": 39, "updated": 1}


def test_creates_count_only_against_max_creates(flameup_server, to_server, tmp_path):
    state = tmp_path / "s.parquet"
    df = customers(10)
    result = df.flameup.upsert(state=state, max_changes=0, **to_server)
    assert (result["flameup_status"] == "created").all()
    with pytest.raises(ChangeGuardError, match=r"create 5 of 15 people"):
        customers(15).flameup.upsert(state=state, max_creates=0.2, **to_server)


def test_the_guard_on_a_file(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=10)
    path = tmp_path / "people.parquet"
    df.assign(plan="gold").to_parquet(path)
    flameup_server.reset_requests()
    with pytest.raises(ChangeGuardError):
        flameup_pandas.upsert_file(path, state=state, max_changes=0.5, **to_server)
    assert flameup_server.request_count() == 0


def test_the_guard_plans_a_stream_read_once_and_sends_what_it_planned(
    flameup_server, to_server, tmp_path
):
    """One pass: the guard plans a stream that can be read only once, then sends the rows it
    planned without reading the stream again."""
    state, df = synced(tmp_path, to_server, n=10)
    table = pa.Table.from_pandas(df.assign(plan="gold"), preserve_index=False)
    flameup_server.reset_requests()
    with pytest.raises(ChangeGuardError, match="update 10 of 10"):
        flameup_pandas.upsert_arrow(_once(table), state=state, max_changes=5, **to_server)
    assert flameup_server.request_count() == 0
    changed = df.copy()
    changed.loc[3, "plan"] = "gold"
    summary = flameup_pandas.upsert_arrow(
        _once(pa.Table.from_pandas(changed, preserve_index=False)),
        state=state,
        max_changes=1,
        results=tmp_path / "results.parquet",
        **to_server,
    )
    assert summary.counts["updated"] == 1 and summary.counts["skipped"] == 9
    assert flameup_server.request_count() == 1
    assert flameup_server.person("u3")["attributes"]["plan"] == "gold"
    results = pd.read_parquet(tmp_path / "results.parquet")
    assert results["row"].tolist() == list(range(10))
    assert results.loc[3, "flameup_status"] == "updated"


def _once(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


@pytest.mark.parametrize(
    ("limit", "problem"),
    [(-1, ValueError), (1.5, ValueError), ("five", ValueError), (True, TypeError)],
)
def test_bad_limits_fail_before_any_row_is_read(limit, problem):
    with pytest.raises(problem):
        customers(1).flameup.upsert(max_changes=limit)


def test_the_airflow_task_fails_before_sending_with_the_plan_in_its_log(
    flameup_server, to_server, tmp_path, caplog
):
    import logging

    from flameup_pandas.airflow import upsert_file_task

    state, df = synced(tmp_path, to_server, n=10)
    path = tmp_path / "people.parquet"
    df.assign(plan="gold").to_parquet(path)
    flameup_server.reset_requests()
    target = {k: v for k, v in to_server.items() if k in ("api_key", "base_url")}
    with (
        caplog.at_level(logging.ERROR, logger="flameup_pandas.airflow"),
        pytest.raises(ChangeGuardError),
    ):
        upsert_file_task(path, state=state, max_changes="10%", **target)
    assert flameup_server.request_count() == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "would update 10 of 10 people" in logged and "plan" in logged


def test_polars_plan_and_its_summary(to_server, tmp_path):
    pl = pytest.importorskip("polars")
    state, df = synced(tmp_path, to_server, n=4)
    frame = pl.from_pandas(df).with_columns(
        pl.when(pl.col("user_id") == "u1").then(pl.lit("gold")).otherwise("plan").alias("plan")
    )
    planned = frame.flameup.plan(state=state)
    assert planned.columns == [*frame.columns, "flameup_action", "flameup_changes", "flameup_error"]
    assert planned["flameup_action"].to_list() == ["unchanged", "update", "unchanged", "unchanged"]
    assert planned["flameup_changes"].to_list()[1] == ["plan"]
    summary = planned.flameup.summary()
    assert summary.actions["update"] == 1 and summary.fields[0].field == "plan"


def test_complete_source_lists_the_people_the_state_has_and_the_source_lost(to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=10)
    kept = df.drop(index=[2, 5, 6]).copy()
    kept.loc[0, "email"] = "broken"  # invalid, but still here: not gone
    summary = kept.flameup.plan(state=state, complete_source=True).flameup.summary()
    assert summary.gone == 3
    assert summary.gone_examples == ("u2", "u5", "u6")
    assert "gone 3" in str(summary) and "nothing is deleted" in str(summary)
    assert df.flameup.plan(state=state).flameup.summary().gone is None  # not asked


def test_complete_source_of_an_empty_file_says_everyone_is_gone(to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=4)
    path = tmp_path / "empty.parquet"
    df.iloc[:0].to_parquet(path)
    planned = flameup_pandas.plan_file(path, state=state, complete_source=True)
    assert len(planned) == 0
    assert planned.flameup.summary().gone == 4


def test_complete_source_needs_a_state():
    with pytest.raises(flameup_pandas.ConfigurationError, match="state="):
        customers(2).flameup.plan(complete_source=True)


def test_against_flameup_reads_the_people_to_send_and_says_the_cost_first(
    flameup_server, to_server, tmp_path, caplog
):
    import logging

    state, df = synced(tmp_path, to_server, n=6)
    df = df.copy()
    df.loc[1, "plan"] = "enterprise"
    df.loc[2, "score"] = 42.0
    frame = pd.concat([df, customers(1, start=50)], ignore_index=True)
    flameup_server.reset_requests()
    with caplog.at_level(logging.WARNING, logger="flameup_pandas"):
        planned = frame.flameup.plan(state=state, against="flameup", **to_server)
    assert "reading 3 people from Flameup: 3 requests" in caplog.text  # the price first
    # Flameup holds 6 people: one page of its listing is cheaper than three GETs
    assert "through its listing of 6 people: 1 request (100 people a page)" in caplog.text
    assert flameup_server.request_count() == 1
    assert flameup_server.request_count(method="GET", path_suffix="/people") == 1
    assert planned.loc[1, "flameup_changes"] == ["plan"]
    assert planned.loc[1, "flameup_before"] == {"plan": "free"}
    assert planned.loc[1, "flameup_after"] == {"plan": "enterprise"}
    assert planned.loc[2, "flameup_before"] == {"score": 0.2}
    assert planned.loc[6, "flameup_action"] == "create"
    assert planned.loc[6, "flameup_before"]["plan"] is None
    assert planned.loc[0, "flameup_before"] is None  # unchanged: not read


def test_against_flameup_with_a_sample_reads_only_that_many(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=10)
    changed = df.assign(plan="gold")
    flameup_server.reset_requests()
    planned = changed.flameup.plan(state=state, against="flameup", sample=4, **to_server)
    assert flameup_server.request_count() == 1  # the listing's one page holds all ten
    assert planned["flameup_before"].notna().sum() == 4
    assert (planned["flameup_action"] == "update").all()
    with pytest.raises(ValueError, match="sample"):
        changed.flameup.plan(state=state, against="flameup", sample=0, **to_server)


def test_state_values_show_before_and_after_with_no_request(flameup_server, to_server, tmp_path):
    state = tmp_path / "people.state.parquet"
    df = customers(6)
    df.flameup.upsert(state=state, state_values=True, **to_server)
    changed = df.copy()
    changed.loc[1, "plan"] = "gold"
    changed.loc[3, ["plan", "score"]] = ["gold", 9.5]
    frame = pd.concat([changed, customers(1, start=40)], ignore_index=True)
    flameup_server.reset_requests()
    planned = frame.flameup.plan(state=state, state_values=True)
    assert flameup_server.request_count() == 0
    assert planned.loc[1, "flameup_before"] == {"plan": "free"}
    assert planned.loc[1, "flameup_after"] == {"plan": "gold"}
    assert planned.loc[3, "flameup_before"] == {"plan": "free", "score": 0.3}
    assert planned.loc[3, "flameup_after"] == {"plan": "gold", "score": 9.5}
    assert planned.loc[0, "flameup_before"] is None  # unchanged
    assert planned.loc[6, "flameup_before"]["plan"] is None  # a create: nothing before
    assert planned.loc[6, "flameup_after"]["plan"] == "pro"
    summary = planned.flameup.summary()
    assert summary.fields[0].values[0] == ("'free'", "'gold'", 2)
    assert "plan: 'free' -> 'gold'  2 people" in str(summary)
    assert "flameup_before" not in frame.flameup.plan(state=state).columns  # not asked


def test_a_run_without_state_values_leaves_no_stale_values(flameup_server, to_server, tmp_path):
    """People sent by a run that keeps no values lose the values the state held for them:
    a plan never shows a value that was not the last one sent."""
    state = tmp_path / "people.state.parquet"
    df = customers(4)
    df.flameup.upsert(state=state, state_values=True, **to_server)
    df.assign(plan=["gold", "pro", "pro", "free"]).flameup.upsert(state=state, **to_server)
    kept = pd.read_parquet(state).set_index("identity")["sent"]
    assert kept.isna()[["u:u0", "u:u1"]].all()  # resent without values
    assert kept.notna()["u:u2"]  # unchanged: what was last sent is still what it holds
    planned = df.assign(plan="silver").flameup.plan(state=state, state_values=True)
    assert planned.loc[0, "flameup_changes"] == ["plan"]
    assert planned.loc[0, "flameup_before"] is None  # changes known, values not kept
    assert planned.loc[2, "flameup_before"] == {"plan": "pro"}


def test_a_state_file_without_values_still_reads(flameup_server, to_server, tmp_path):
    state, df = synced(tmp_path, to_server, n=4)
    pq.write_table(pq.read_table(state).drop_columns(["sent"]), state)
    planned = df.assign(plan="gold").flameup.plan(state=state, state_values=True)
    assert planned.loc[1, "flameup_changes"] == ["plan"]
    assert planned["flameup_before"].isna().all()
    with SyncState.open(state) as sync:
        assert sync.frame()["sent"].isna().all()


def test_state_values_need_a_state():
    with pytest.raises(flameup_pandas.ConfigurationError, match="state="):
        customers(2).flameup.plan(state_values=True)


def test_a_guarded_run_keeps_the_values_it_sends(flameup_server, to_server, tmp_path):
    state = tmp_path / "people.state.parquet"
    df = customers(10)
    df.flameup.upsert(state=state, state_values=True, max_creates=10, **to_server)
    changed = df.copy()
    changed.loc[0, "plan"], changed.loc[9, "plan"] = "gold", "pro"  # were pro and free
    result = changed.flameup.upsert(state=state, state_values=True, max_changes=2, **to_server)
    assert result["flameup_status"].value_counts().to_dict() == {"skipped": 8, "updated": 2}
    planned = changed.assign(plan="free").flameup.plan(state=state, state_values=True)
    assert planned.loc[0, "flameup_before"] == {"plan": "gold"}
    assert planned.loc[9, "flameup_before"] == {"plan": "pro"}


def test_against_flameup_reads_one_by_one_when_the_listing_is_dearer(
    flameup_server, to_server, tmp_path, caplog
):
    """Flameup holds 250 people (3 pages): reading 2 of them one by one, after the first page
    priced the listing, takes 3 requests where the listing would take 3 and more."""
    import logging

    state, df = synced(tmp_path, to_server, n=250)
    changed = df.copy()
    changed.loc[[7, 200], "plan"] = "gold"
    flameup_server.reset_requests()
    with caplog.at_level(logging.WARNING, logger="flameup_pandas"):
        planned = changed.flameup.plan(state=state, against="flameup", **to_server)
    assert "Flameup holds 250 people; 2 more requests, one a person" in caplog.text
    assert "(the rest of the listing would take 2): 3 in all" in caplog.text
    assert flameup_server.request_count(method="GET") == 3
    assert planned.loc[200, "flameup_before"] == {"plan": "pro"}
    assert planned.loc[7, "flameup_after"] == {"plan": "gold"}


def test_against_flameup_through_the_listing_finds_people_by_email(
    flameup_server, to_server, tmp_path
):
    """People sent by email alone are matched to the listing by email, in any case."""
    state = tmp_path / "people.state.parquet"
    df = pd.DataFrame({"email": ["Ann@Example.com", "bob@example.com"], "plan": ["pro", "pro"]})
    df.flameup.upsert(state=state, **to_server)
    changed = df.assign(plan=["gold", "free"])
    flameup_server.reset_requests()
    planned = changed.flameup.plan(state=state, against="flameup", **to_server)
    assert flameup_server.request_count() == 1
    assert planned["flameup_before"].tolist() == [{"plan": "pro"}, {"plan": "pro"}]
    assert planned["flameup_action"].tolist() == ["update", "update"]


def test_polars_plan_keeps_before_and_after(to_server, tmp_path):
    pl = pytest.importorskip("polars")
    state = tmp_path / "people.state.parquet"
    df = customers(4)
    df.flameup.upsert(state=state, state_values=True, **to_server)
    frame = pl.from_pandas(df.assign(plan=["pro", "gold", "pro", "free"]))
    planned = frame.flameup.plan(state=state, state_values=True)
    assert planned["flameup_before"].to_list()[1] == {"plan": "free"}
    assert planned["flameup_after"].to_list()[1] == {"plan": "gold"}
    assert planned.flameup.summary().fields[0].values == (("'free'", "'gold'", 1),)


def test_a_refused_run_writes_no_results_file_and_leaves_the_state(
    flameup_server, to_server, tmp_path
):
    state, df = synced(tmp_path, to_server, n=10)
    path, results = tmp_path / "people.parquet", tmp_path / "results.parquet"
    df.assign(plan="gold").to_parquet(path)
    before = state.read_bytes()
    with pytest.raises(ChangeGuardError):
        flameup_pandas.upsert_file(path, state=state, results=results, max_changes=0.5, **to_server)
    assert not results.exists()
    assert state.read_bytes() == before
