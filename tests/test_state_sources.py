"""Source hashes: a rerun knows the rows it sent before, as they are, without validating or
encoding them again; every decision stays what the people alone would give.

Each scenario runs twice from the same first run: once with the state as written (its source
hashes known) and once with the source hashes erased (the people's content hashes decide, as
in a state from an earlier version). Both must send the same bodies and give the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import flameup_pandas
from flameup_pandas._people import schema
from flameup_pandas._people.fingerprint import source_hashes
from flameup_pandas._run.plan import Rules
from flameup_pandas._run.state import SyncState
from flameup_pandas.exceptions import ChangeGuardError

from .conftest import target
from .test_upsert import customers

Run = Callable[[pd.DataFrame, Path, Any], pd.DataFrame]


def erase_sources(state: Path, copy: Path) -> None:
    table = pq.read_table(state)
    at = table.schema.get_field_index("source_hash")
    pq.write_table(table.set_column(at, "source_hash", pa.nulls(len(table), pa.int64())), copy)


def on_frames(frame: pd.DataFrame, state: Path, server: Any, **options: Any) -> pd.DataFrame:
    return frame.flameup.upsert(state=state, **target(server), **options)


def on_files(frame: pd.DataFrame, state: Path, server: Any, **options: Any) -> pd.DataFrame:
    path = state.with_suffix(".source.parquet")
    frame.reset_index(drop=True).to_parquet(path)
    results = state.with_suffix(".results.parquet")
    flameup_pandas.upsert_file(
        path, state=state, chunk_rows=50, results=results, **target(server), **options
    )
    return pd.read_parquet(results)


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each validation of the run checked."""
    counts: list[int] = []
    real = schema.validate_people

    def counting(canonical: pd.DataFrame, *args: Any) -> Any:
        counts.append(len(canonical))
        return real(canonical, *args)

    monkeypatch.setattr("flameup_pandas._run.plan.validate_people", counting)
    return counts


def compare(
    factory: Any,
    tmp_path: Path,
    first: pd.DataFrame,
    second: pd.DataFrame,
    run: Callable[..., pd.DataFrame],
    **options: Any,
) -> tuple[pd.DataFrame, list[Any]]:
    """``second`` after ``first``, with and without source hashes in the state: (results,
    people sent) of the former, once checked equal to the latter's."""
    outcomes = []
    for erase in (False, True):
        server = factory(rate_limit=None)
        state = tmp_path / f"state-{erase}.parquet"
        run(first, state, server, **options)
        if erase:
            erase_sources(state, state)
        server.reset_requests()
        results = run(second, state, server, **options)
        sent = [orjson.loads(b) for b in server.request_bodies("/people/batch")]
        shown = results[["flameup_status", "flameup_error"]].assign(
            has_id=results["flameup_id"].notna()
        )
        # batches go out several at a time: what was sent, in any order, and what stayed
        people = sorted(
            orjson.dumps(p, option=orjson.OPT_SORT_KEYS) for b in sent for p in b["people"]
        )
        held = {u: (server.person(u) or {}).get("attributes") for u in second["user_id"]}
        outcomes.append((shown, sent, people, held))
    pd.testing.assert_frame_equal(outcomes[0][0], outcomes[1][0])
    assert outcomes[0][2:] == outcomes[1][2:]
    return outcomes[0][:2]


def changed(frame: pd.DataFrame, rows: list[int], plan: str = "enterprise") -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, "plan"] = plan
    return frame


def synced(factory: Any, folder: Path, run: Any, frame: pd.DataFrame, validated: list[int]):
    """A server and a state after ``run`` synced ``frame`` once, the counters cleared."""
    server = factory(rate_limit=None)
    state = folder / "synced.parquet"
    run(frame, state, server)
    validated.clear()
    server.reset_requests()
    return server, state


@pytest.mark.parametrize("run", [on_frames, on_files], ids=["frame", "file"])
def test_a_rerun_validates_only_the_rows_it_does_not_know(
    flameup_server_factory, tmp_path, run, validated
):
    first = customers(300)
    server, state = synced(flameup_server_factory, tmp_path, run, first, validated)
    results = run(changed(first, [5, 250]), state, server)
    assert sum(validated) == 2
    assert results["flameup_status"].value_counts().to_dict() == {"skipped": 298, "updated": 2}
    assert results["flameup_id"].notna().all()
    sent = [p["userId"] for b in server.request_bodies() for p in orjson.loads(b)["people"]]
    assert sent == ["u5", "u250"]


def test_a_rerun_keeping_values_makes_the_changed_people_alone(to_server, tmp_path, validated):
    first = customers(300)
    state = tmp_path / "s.parquet"
    first.flameup.upsert(state=state, state_values=True, **to_server)
    validated.clear()
    results = changed(first, [5]).flameup.upsert(state=state, state_values=True, **to_server)
    assert sum(validated) == 1
    assert results["flameup_status"].value_counts().to_dict() == {"skipped": 299, "updated": 1}
    kept = pq.read_table(state).to_pandas().set_index("identity")["sent"]
    assert orjson.loads(kept["u:u5"])["traits"]["plan"] == "enterprise"
    assert orjson.loads(kept["u:u6"])["traits"]["plan"] == "pro"


def test_the_state_knows_every_row_sent_by_its_source_hash(to_server, tmp_path):
    frame = customers(120)
    state = tmp_path / "s.parquet"
    frame.flameup.upsert(state=state, **to_server)
    hashes = source_hashes(frame, Rules().source_key)
    assert hashes is not None
    identities = Rules().plan(frame).identity_hashes
    with SyncState.open(state) as sync:
        known = sync.sent_from(hashes)
        assert known.positions.tolist() == list(range(120))
        assert known.identities.tolist() == identities.tolist()  # each row's own person
        assert known.ids().tolist() == [str(sync.frame()["flameup_id"][i]) for i in range(120)]
        reordered = sync.sent_from(hashes[::-1])
        assert reordered.identities.tolist() == identities[::-1].tolist()
        assert len(sync.sent_from(hashes + 1).positions) == 0  # rows never sent


@pytest.mark.parametrize("run", [on_frames, on_files], ids=["frame", "file"])
@pytest.mark.parametrize(
    "second",
    [
        pytest.param(lambda f: changed(f, [5, 250]), id="two-changed"),
        # the known row first, a changed row of the same person last: the last row wins
        pytest.param(lambda f: pd.concat([f, changed(f, [5]).loc[[5]]]), id="known-then-changed"),
        # a changed row first, the known row last: nothing changes
        pytest.param(lambda f: pd.concat([changed(f, [5]).loc[[5]], f]), id="changed-then-known"),
        pytest.param(lambda f: pd.concat([f, f.loc[[7, 8]]]), id="known-twice"),
        # a person changed in the first chunk of a file, known again in a later one: the last
        # row is sent again after the first, with its own people's bytes
        pytest.param(
            lambda f: pd.concat([changed(f, [130]).loc[[130]], f]), id="known-after-a-change"
        ),
        pytest.param(lambda f: f.assign(email=f["email"].str.upper()), id="emails-cased"),
        pytest.param(lambda f: f.iloc[::-1], id="reordered"),
    ],
)
def test_source_hashes_decide_as_the_people_would(flameup_server_factory, tmp_path, run, second):
    first = customers(300)
    first.loc[3, "email"] = "not-an-email"  # invalid: never recorded, invalid again
    results, _ = compare(flameup_server_factory, tmp_path, first, second(first), run)
    assert "invalid" in set(results["flameup_status"])


@pytest.mark.parametrize("run", [on_frames, on_files], ids=["frame", "file"])
def test_a_guarded_rerun_knows_rows_too(flameup_server_factory, tmp_path, run, validated):
    first = customers(300)
    second = pd.concat([changed(first, [130, 140]).loc[[130, 140]], first])
    _, sent = compare(flameup_server_factory, tmp_path, first, second, run, max_changes=5)
    # a frame's last rows win at once (nothing changes); a file's chunks send the two changes,
    # then the last rows of those people again
    assert len(sent) == (2 if run is on_files else 0)
    server, state = synced(flameup_server_factory, tmp_path, run, first, validated)
    results = run(first, state, server, max_changes=5)
    assert sum(validated) == 0
    assert set(results["flameup_error"]) == {"unchanged since last sync"}
    with pytest.raises(ChangeGuardError):
        run(changed(first, list(range(10))), state, server, max_changes=5)


def test_a_guarded_rerun_without_results_sends_what_one_with_results_sends(
    flameup_server_factory, tmp_path
):
    # without results the rows a rerun skips unread have no identity fields made; those it
    # sends again (the last rows of people an earlier chunk sent) have theirs
    first = customers(300)
    second = pd.concat([changed(first, [130, 140]).loc[[130, 140]], first])
    bodies = []
    for results in (True, False):
        server = flameup_server_factory(rate_limit=None)
        state = tmp_path / f"state-{results}.parquet"
        on_files(first, state, server)
        server.reset_requests()
        path = tmp_path / "second.parquet"
        second.reset_index(drop=True).to_parquet(path)
        written = tmp_path / "results.parquet" if results else None
        summary = flameup_pandas.upsert_file(
            path, state=state, chunk_rows=50, results=written, max_changes=5, **target(server)
        )
        assert (summary.counts["updated"], summary.counts["skipped"]) == (4, 298)
        bodies.append(sorted(server.request_bodies("/people/batch")))
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize(
    "options",
    [
        {"send_nulls": True},
        {"traits": ["plan"]},
        {"mapping": {"userId": "user_id", "traits.x": "plan"}},
    ],
    ids=["send_nulls", "traits", "mapping"],
)
def test_other_rules_do_not_know_the_rows(flameup_server_factory, tmp_path, options, validated):
    first = customers(200)
    server, state = synced(flameup_server_factory, tmp_path, on_frames, first, validated)
    results = on_frames(first, state, server, **options)
    assert sum(validated) == 200  # every row checked again, then decided by its people
    expected = {"skipped"} if "send_nulls" in options else {"updated"}
    assert set(results["flameup_status"]) == expected


def test_a_state_without_source_hashes_learns_them_on_a_rerun(to_server, tmp_path, validated):
    frame = customers(150)
    state = tmp_path / "s.parquet"
    frame.flameup.upsert(state=state, **to_server)
    erase_sources(state, state)
    frame.flameup.upsert(state=state, dry_run=True, **to_server)
    assert pq.read_table(state)["source_hash"].null_count == 150  # a dry run writes nothing
    validated.clear()
    results = frame.flameup.upsert(state=state, **to_server)
    assert sum(validated) == 150
    assert (results["flameup_error"] == "unchanged since last sync").all()
    assert pq.read_table(state)["source_hash"].null_count == 0
    validated.clear()
    again = frame.flameup.upsert(state=state, **to_server)
    assert sum(validated) == 0
    assert (again["flameup_error"] == "unchanged since last sync").all()


def test_columns_without_a_binary_form_leave_the_people_to_decide(to_server, tmp_path, validated):
    frame = customers(40).assign(tags=[["a", str(i)] for i in range(40)])
    state = tmp_path / "s.parquet"
    frame.flameup.upsert(state=state, **to_server)
    assert pq.read_table(state)["source_hash"].null_count == 40
    validated.clear()
    results = frame.flameup.upsert(state=state, **to_server)
    assert sum(validated) == 40
    assert (results["flameup_error"] == "unchanged since last sync").all()


@pytest.mark.parametrize(
    "column",
    [
        pd.array([1, None, 3], dtype="Int64"),
        pd.array([True, False, None], dtype="boolean"),
        pd.to_datetime(["2024-01-01", None, "2024-03-01"], utc=True),
        pd.Categorical(["a", "b", None]),
        pd.array([1.5, None, float("nan")], dtype="float64[pyarrow]"),
        np.array([0.0, -0.0, 1e300]),
    ],
    ids=["Int64", "boolean", "datetime", "categorical", "arrow-float", "numpy-float"],
)
def test_a_changed_value_of_any_type_changes_the_source_hash(column):
    frame = pd.DataFrame({"userId": ["u1", "u2", "u3"], "x": column})
    hashes = source_hashes(frame, ())
    assert hashes is not None and len(set(hashes.tolist())) == 3
    other = frame.copy()
    other.loc[0, "x"] = frame.loc[1, "x"]
    moved = source_hashes(other, ())
    assert moved is not None
    assert moved[0] != hashes[0] and moved[1:].tolist() == hashes[1:].tolist()


@pytest.mark.parametrize(
    "values",
    [
        pa.array([1, None, 3, None, 5]),
        pa.array([True, None, False, None, True]),
        pa.array(["a", None, "b", None, "c"]),
        pa.array([b"a", None, b"b", None, b"c"], pa.large_binary()),
    ],
    ids=["int", "bool", "string", "binary"],
)
def test_a_column_read_part_way_hashes_as_the_same_values_read_whole(values):
    def frame(cells: pa.Array) -> pd.DataFrame:
        return pd.DataFrame({"x": pd.Series(pd.arrays.ArrowExtensionArray(cells))})

    part = source_hashes(frame(values.slice(1)), ())
    whole = source_hashes(frame(pa.array(values.to_pylist()[1:], values.type)), ())
    assert part is not None and part.tolist() == whole.tolist()
