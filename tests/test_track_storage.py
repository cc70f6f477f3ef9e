"""The events state on object storage: a real S3 API (moto's server) on loopback, and
fsspec's memory filesystem (the code path GCS and Azure take)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import fsspec
import pandas as pd
import pytest

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import StateError, track_file, unlock_state
from flameup_pandas._events.rules import EventRules, plan_events
from flameup_pandas._events.state import EventState
from flameup_pandas.testing import FlameupServer

from .s3 import S3  # the s3 fixture is registered in conftest
from .test_track import events_frame, posts, to


def test_state_and_results_on_s3_then_a_rerun_sends_nothing(
    s3: S3,
    flameup_server: FlameupServer,
) -> None:
    source = s3.put_frame(events_frame(30), "in/events.parquet")
    keywords: dict[str, Any] = {
        "event": "e",
        "state": s3.uri("sync/events.state"),
        "results": s3.uri("sync/results.parquet"),
        **to(flameup_server),
    }
    first = track_file(source, **keywords)
    assert first.counts["sent"] == 30
    assert s3.read_parquet("sync/results.parquet")["flameup_status"].eq("sent").all()
    assert not [k for k in s3.keys("sync/") if ".journal" in k or ".lock" in k]
    flameup_server.reset_requests()
    again = track_file(source, **keywords)
    assert again.counts["skipped"] == 30
    assert flameup_server.requests == []
    assert len(flameup_server.events()) == 30


def test_a_run_that_never_closed_its_s3_state_is_locked_out_then_resumed_once(
    s3: S3,
    flameup_server: FlameupServer,
) -> None:
    """A run died after marking two events pending (one of them stored, its answer never
    recorded): its lease keeps the state locked; once unlocked, the next run folds its
    journal, finds the stored event in the listing and sends only the other."""
    state = s3.uri("dead/events.state")
    df = events_frame(2)
    df.iloc[:1].flameup.track(event="e", **to(flameup_server))
    plan = plan_events(df, EventRules(event="e"), dt.datetime.now(dt.UTC))
    dead = EventState.open(state)
    for event in plan.events:
        assert event is not None
        dead.record(event.key, "pending")  # on S3 before this returns
    assert [k for k in s3.keys("dead/") if k.endswith(".jsonl")]
    dead._keeper._stop.set()  # type: ignore[attr-defined]  # the run dies: no close, no renewal
    with pytest.raises(StateError, match="in use by another run"):
        df.flameup.track(event="e", state=state, **to(flameup_server))
    assert "broke the lock" in unlock_state(state)
    flameup_server.reset_requests()
    result = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent", "sent"]
    assert posts(flameup_server) == 1
    stored = flameup_server.events()
    assert len(stored) == 2 and stored["user_id"].is_unique
    assert not [k for k in s3.keys("dead/") if k.endswith(".jsonl")]


def test_an_events_state_on_an_fsspec_filesystem(flameup_server: FlameupServer) -> None:
    memory = fsspec.filesystem("memory", skip_instance_cache=True, global_store=False)
    options = {"state": "/s/events.state", "filesystem": memory, **to(flameup_server)}
    first = events_frame(3).flameup.track(event="e", **options)
    assert first["flameup_status"].tolist() == ["sent"] * 3
    lines = memory.cat("/s/events.state").splitlines()
    assert lines[0] == b'{"key":"keys","status":"registry"}'  # how its keys are made
    assert len(lines) == 4 and all(b'"sent"' in line for line in lines[1:])
    again = events_frame(3).flameup.track(event="e", **options)
    assert again["flameup_status"].tolist() == ["skipped"] * 3
    assert len(pd.unique(flameup_server.events()["user_id"])) == 3


def test_track_file_takes_storage_options_as_upsert_file_does(
    s3: S3, flameup_server: FlameupServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment points nowhere: ``storage_options=`` gives the endpoint and the keys,
    and the source, the events state and the results are on S3 (it was refused before)."""
    import s3fs

    source = s3.put_frame(events_frame(5), "opts/events.parquet")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    s3fs.S3FileSystem.clear_instance_cache()
    given = {"endpoint_url": s3.url, "key": "opts-key", "secret": "opts-secret", "use_ssl": False}
    summary = track_file(
        source,
        event="e",
        state=s3.uri("opts/events.state"),
        results=s3.uri("opts/results.parquet"),
        storage_options=given,
        **to(flameup_server),
    )
    assert summary.counts["sent"] == 5
    fs = s3fs.S3FileSystem(endpoint_url=s3.url, key="opts-key", secret="opts-secret")
    assert fs.exists(f"{s3.bucket}/opts/events.state")
    assert fs.exists(f"{s3.bucket}/opts/results.parquet")
