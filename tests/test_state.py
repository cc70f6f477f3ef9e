"""Incremental sync: a rerun sends only what changed; the state survives crashes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import flameup_pandas  # noqa: F401
from flameup_pandas import StateError
from flameup_pandas._people.identity import identity_hashes
from flameup_pandas._run.state import SyncState
from flameup_pandas._send.delivery import PersonOutcome
from flameup_pandas._storage.keeper import LocalKeeper

from .test_upsert import customers


def journal_path(state):
    return state.with_name(state.name + ".journal")


def test_rerun_skips_unchanged_rows_and_sends_changed_ones(flameup_server, to_server, tmp_path):
    state = tmp_path / "people.state.parquet"
    df = customers(300)
    first = df.flameup.upsert(state=state, **to_server)
    assert (first["flameup_status"] == "created").all()
    df.loc[[5, 250], "plan"] = "enterprise"
    flameup_server.reset_requests()
    second = df.flameup.upsert(state=state, **to_server)
    assert second["flameup_status"].value_counts().to_dict() == {"skipped": 298, "updated": 2}
    assert (
        second.loc[second["flameup_status"] == "skipped", "flameup_error"]
        == "unchanged since last sync"
    ).all()
    # skipped rows still carry their known id
    assert list(second["flameup_id"]) == list(first["flameup_id"])
    assert flameup_server.request_count() == 1
    assert flameup_server.person("u5")["attributes"]["plan"] == "enterprise"


def test_full_refresh_ignores_the_state(flameup_server, to_server, tmp_path):
    state = tmp_path / "s.parquet"
    df = customers(10)
    df.flameup.upsert(state=state, **to_server)
    again = df.flameup.upsert(state=state, full_refresh=True, **to_server)
    assert (again["flameup_status"] == "updated").all()


def test_rejected_and_invalid_people_are_not_recorded(flameup_server, to_server, tmp_path):
    state = tmp_path / "s.parquet"
    df = customers(4)
    df.loc[2, "email"] = "bad"
    df.flameup.upsert(state=state, **to_server)
    with SyncState.open(state) as sync:
        assert sorted(sync.frame()["identity"]) == ["u:u0", "u:u1", "u:u3"]


def test_state_is_one_small_parquet_file_after_a_run(to_server, tmp_path):
    state = tmp_path / "s.parquet"
    customers(50).flameup.upsert(state=state, **to_server)
    assert state.exists()
    assert not journal_path(state).exists()
    frame = pd.read_parquet(state)
    assert list(frame.columns) == [
        "identity",
        "identity_hash",
        "content_hash",
        "flameup_id",
        "synced_at",
        "fields",
        "sent",  # null: kept only with state_values=True
        "source_hash",  # the fingerprint of the row each person was sent from
    ]
    assert frame["sent"].isna().all()
    assert frame["source_hash"].notna().all()
    assert len(frame) == 50 and frame["identity"].is_unique


def test_journal_with_a_torn_last_line_is_replayed(tmp_path):
    state = tmp_path / "s.parquet"
    with SyncState.open(state) as sync:
        sync.record_outcomes(
            ["u:a", "u:b"],
            np.array([11, 22]),
            [PersonOutcome("created", "id-a"), PersonOutcome("updated", "id-b")],
        )
        # simulate a kill: the journal stays, never folded
        keeper = sync._keeper
        assert isinstance(keeper, LocalKeeper) and keeper._file is not None
        keeper._file.close()
        keeper._file = None
    journal_path(state).write_bytes(journal_path(state).read_bytes() + b'{"i": "u:c", "h"')
    with SyncState.open(state) as sync:
        keys = identity_hashes(["u:a", "u:b", "u:c", None])
        unchanged, ids = sync.lookup(keys, np.array([11, 99, 1, 0]))
    assert list(unchanged) == [True, False, False, False]
    assert list(ids) == ["id-a", "id-b", None, None]


def test_two_runs_cannot_share_one_state(tmp_path):
    state = tmp_path / "s.parquet"
    with SyncState.open(state), pytest.raises(StateError, match="in use"):
        SyncState.open(state)


def test_a_corrupt_state_file_is_a_clear_error(tmp_path):
    state = tmp_path / "s.parquet"
    state.write_bytes(b"not parquet")
    with pytest.raises(StateError, match="cannot read"):
        SyncState.open(state)
