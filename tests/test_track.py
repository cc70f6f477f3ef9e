"""df.flameup.track(): rows become events, one request each, and no event is sent twice."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

import flameup_pandas  # also registers df.flameup
from flameup_pandas import NaiveTimestampError, RetryPolicy, StateError
from flameup_pandas._events.state import EventState
from flameup_pandas.testing import Faults, FlameupServer

QUICK = RetryPolicy(total=3, backoff_factor=0.001, backoff_max=0.01, max_elapsed=30)
T0 = pd.Timestamp("2026-01-02T03:04:05.123456", tz="UTC")


def events_frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(n)],
            "timestamp": [T0 + pd.Timedelta(seconds=i) for i in range(n)],
            "amount": [Decimal("12.50")] * n,
            "plan": ["pro"] * n,
        }
    )


def to(server: FlameupServer, **extra: Any) -> dict[str, Any]:
    return {
        "api_key": server.api_key,
        "base_url": server.base_url,
        "rate_limit": None,
        "retry": QUICK,
        "workspace_id": server.workspace_id,
        "progress": False,
        **extra,
    }


def stored_events(server: FlameupServer) -> pd.DataFrame:
    """The stored events by time: events go out several at once, so they are stored in the
    order their requests arrive, not the frame's."""
    return server.events().sort_values("timestamp", kind="stable", ignore_index=True)


def posts(server: FlameupServer) -> int:
    return server.request_count("/track", method="POST")


def test_each_row_is_sent_as_one_event(flameup_server: FlameupServer) -> None:
    df = events_frame()
    result = df.flameup.track(event="purchase", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent"] * 3
    assert result.drop(columns=["flameup_event_id", "flameup_status", "flameup_error"]).equals(df)
    stored = stored_events(flameup_server)
    assert stored["id"].tolist() == result["flameup_event_id"].tolist()
    assert stored["user_id"].tolist() == ["u0", "u1", "u2"]
    assert stored["timestamp"][0] == "2026-01-02T03:04:05.123456Z"
    assert stored["parameters"][0] == {"amount": 12.5, "plan": "pro"}
    assert posts(flameup_server) == 3
    assert orjson.loads(flameup_server.request_bodies("/track")[0]) == {
        "external_id": "u0",
        "event": "purchase",
        "parameters": {"amount": 12.50, "plan": "pro"},
        "timestamp": "2026-01-02T03:04:05.123456Z",
    }


def test_email_identity_event_column_and_named_parameters(flameup_server: FlameupServer) -> None:
    df = pd.DataFrame(
        {
            "email": ["a@example.com", "b@example.com"],
            "what": ["signed_up", "churned"],
            "when": ["2026-01-01T00:00:00+02:00", "2026-01-01T00:00:00Z"],
            "n": pd.array([1, None], dtype="Int64"),
            "secret": ["x", "y"],
        }
    )
    result = df.flameup.track(
        event_column="what", timestamp="when", exclude=["secret"], **to(flameup_server)
    )
    assert result["flameup_status"].tolist() == ["sent", "sent"]
    stored = stored_events(flameup_server)
    assert stored["event"].tolist() == ["signed_up", "churned"]
    assert stored["parameters"].tolist() == [{"n": 1}, {}]  # missing values are left out
    assert stored["timestamp"].tolist() == [
        "2025-12-31T22:00:00.000000Z",
        "2026-01-01T00:00:00.000000Z",
    ]


def test_every_rule_a_row_breaks_is_listed_and_nothing_is_sent_for_it(
    flameup_server: FlameupServer,
) -> None:
    future = pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1)
    df = pd.DataFrame(
        {
            "userId": ["u1", None, "u3", "u4", "u5"],
            "email": [None, "not-an-email", None, None, None],
            "name": ["ok", "ok", "", "x" * 256, "ok"],
            "timestamp": [T0, T0, future, "2026-01-01T00:00:00", "later"],
            "score": [1.0, float("inf"), 1.0, 1.0, 1.0],
        }
    )
    report = df.flameup.validate_events(event_column="name")
    assert sorted(map(tuple, report[["index", "check"]].values.tolist())) == sorted(
        [
            (1, "email_plausible"),
            (1, "json_value"),
            (2, "event_name"),
            (2, "not_in_future"),
            (3, "event_name"),
            (3, "timestamp_time_zone"),
            (4, "timestamp_format"),
        ]
    )
    result = df.flameup.track(event_column="name", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent"] + ["invalid"] * 4
    assert "score" in result["flameup_error"][1] and "email" in result["flameup_error"][1]
    assert posts(flameup_server) == 1


def test_a_row_without_a_timestamp_name_or_id_is_invalid_not_a_crash() -> None:
    """Missing required values were let through (then NaT failed the whole run)."""
    df = pd.DataFrame(
        {
            "userId": ["u1", "u2", "u3"],
            "name": [None, "ok", "ok"],
            "timestamp": [T0, None, T0],
            "order": ["o1", "o2", None],
        }
    )
    report = df.flameup.validate_events(event_column="name", event_id_column="order")
    assert report[["index", "check"]].values.tolist() == [
        [0, "event_required"],
        [1, "timestamp_required"],
        [2, "event_id_required"],
    ]


def test_a_naive_timestamp_column_is_refused_unless_declared_utc(
    flameup_server: FlameupServer,
) -> None:
    df = events_frame().assign(timestamp=lambda d: d["timestamp"].dt.tz_localize(None))
    with pytest.raises(NaiveTimestampError, match="timestamp"):
        df.flameup.track(event="e", **to(flameup_server))
    result = df.flameup.track(event="e", naive_timestamps="utc", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent"] * 3
    assert stored_events(flameup_server)["timestamp"][0] == "2026-01-02T03:04:05.123456Z"


def test_bad_keywords_fail_before_anything_is_sent(flameup_server: FlameupServer) -> None:
    df = events_frame()
    with pytest.raises(ValueError, match="exactly one"):
        df.flameup.track(**to(flameup_server))
    with pytest.raises(ValueError, match="event="):
        df.flameup.track(event=" ", **to(flameup_server))
    with pytest.raises(TypeError, match="concurency"):
        df.flameup.track(event="e", concurency=2, **to(flameup_server))
    assert posts(flameup_server) == 0


def test_a_repeated_row_is_skipped_naming_the_row_sent(flameup_server: FlameupServer) -> None:
    df = pd.concat([events_frame(2), events_frame(1)]).set_axis(["a", "b", "c"])
    result = df.flameup.track(event="e", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent", "sent", "skipped"]
    assert result.loc["c", "flameup_error"] == "the same event as row 'a'"
    assert posts(flameup_server) == 2


def test_an_id_column_is_the_event_key(flameup_server: FlameupServer) -> None:
    df = events_frame(3).assign(order=["o1", "o1", "o2"])
    result = df.flameup.track(event="e", event_id_column="order", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent", "skipped", "sent"]
    assert "order" not in stored_events(flameup_server)["parameters"][0]


def test_a_rerun_with_the_state_sends_nothing(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    state = tmp_path / "events.state"
    df = events_frame()
    first = df.flameup.track(event="e", state=state, **to(flameup_server))
    again = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert again["flameup_status"].tolist() == ["skipped"] * 3
    assert again["flameup_event_id"].tolist() == first["flameup_event_id"].tolist()
    more = pd.concat([df, events_frame(4).iloc[3:]], ignore_index=True)
    third = more.flameup.track(event="e", state=state, **to(flameup_server))
    assert third["flameup_status"].tolist() == ["skipped"] * 3 + ["sent"]
    assert posts(flameup_server) == 4 and len(stored_events(flameup_server)) == 4


def test_a_state_written_before_registry_timestamps_resends_nothing(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    """Keys used to hash the timestamp as six-digit text: a state written then still knows
    the events it holds, sent (skipped) or pending (looked up), and none is sent twice."""
    t0 = pd.Timestamp("2026-01-02T03:04:05", tz="UTC")
    df = pd.DataFrame(
        {
            "userId": ["u0", "u1", "u2"],
            "timestamp": [t0 + pd.Timedelta(seconds=i) for i in range(3)],
        }
    ).assign(plan="pro")
    sent = df.iloc[:2].flameup.track(event="e", **to(flameup_server))

    def old_key(i: int) -> str:
        text = f"2026-01-02T03:04:0{5 + i}.000000Z"
        content = orjson.dumps(
            ["u", f"u{i}", "e", text, {"plan": "pro"}], option=orjson.OPT_SORT_KEYS
        )
        return "h:" + hashlib.blake2b(content, digest_size=16).hexdigest()

    lines = [
        {"key": old_key(0), "status": "sent", "event_id": sent["flameup_event_id"][0]},
        {"key": old_key(1), "status": "pending"},
    ]
    state = tmp_path / "events.state"
    state.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    result = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert result["flameup_status"].tolist() == ["skipped", "sent", "sent"]
    assert result["flameup_event_id"][:2].tolist() == sent["flameup_event_id"].tolist()
    assert posts(flameup_server) == 3 and len(stored_events(flameup_server)) == 3
    again = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert again["flameup_status"].tolist() == ["skipped"] * 3 and posts(flameup_server) == 3


def test_a_state_in_use_is_refused(flameup_server: FlameupServer, tmp_path: Path) -> None:
    state = tmp_path / "events.state"
    with EventState.open(state), pytest.raises(StateError, match="in use"):
        events_frame().flameup.track(event="e", state=state, **to(flameup_server))


def test_an_event_left_pending_by_a_killed_run_is_looked_up_not_resent(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    """kill -9 after the request left and before its answer was recorded: the state says
    pending; the next run finds it in the listing and sends only what is absent."""
    state = tmp_path / "events.state"
    df = events_frame(2)
    df.iloc[:1].flameup.track(event="e", **to(flameup_server))  # stored, answer never recorded
    from flameup_pandas._events.rules import EventRules, plan_events

    plan = plan_events(df, EventRules(event="e"), dt.datetime.now(dt.UTC))
    with EventState.open(state) as kept:
        for event in plan.events:
            assert event is not None
            kept.record(event.key, "pending")
    with state.open("ab") as f:
        f.write(b'{"key": "torn')  # the kill came mid-line
    flameup_server.reset_requests()
    result = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent", "sent"]
    assert posts(flameup_server) == 1  # only the absent one
    assert len(stored_events(flameup_server)) == 2
    assert result["flameup_event_id"][0] == stored_events(flameup_server)["id"][0]


def test_lost_answers_are_resolved_through_the_listing_never_twice(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    """Stored-then-lost answers (dropped, 500 after store), lost requests and plain errors:
    each event is stored at most once; what could not be told is uncertain, and a rerun
    with the state settles it, still once."""
    state = tmp_path / "events.state"
    df = events_frame(40)
    flameup_server.set_faults(
        Faults(
            drop_after_store_rate=0.2,
            error_after_store_rate=0.15,
            drop_rate=0.1,
            error_rate=0.1,
            seed=11,
        )
    )
    first = df.flameup.track(event="e", state=state, **to(flameup_server))
    stored = stored_events(flameup_server)
    assert not stored["user_id"].duplicated().any()
    statuses = first["flameup_status"]
    assert set(statuses) <= {"sent", "uncertain", "failed"}
    sent = first[statuses == "sent"]
    assert set(sent["flameup_event_id"]) <= set(stored["id"])
    lost = [r for r in flameup_server.requests if r.path.endswith("/track") and r.stored]
    assert any(r.status is None or r.status >= 500 for r in lost)  # answers were lost
    flameup_server.set_faults(None)
    second = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert set(second["flameup_status"]) <= {"sent", "skipped"}
    final = stored_events(flameup_server)
    assert len(final) == 40 and not final["user_id"].duplicated().any()


def test_uncertain_when_the_listing_cannot_tell_then_settled_by_a_rerun(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    state = tmp_path / "events.state"
    df = events_frame(1)
    flameup_server.set_faults(Faults(drop_after_store_rate=1.0))
    first = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert first["flameup_status"].tolist() == ["uncertain"]
    assert "listing could not tell" in first["flameup_error"][0]
    assert posts(flameup_server) == 1 and len(stored_events(flameup_server)) == 1
    flameup_server.set_faults(None)
    second = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert second["flameup_status"].tolist() == ["sent"]
    assert second["flameup_event_id"][0] == stored_events(flameup_server)["id"][0]
    assert posts(flameup_server) == 1 and len(stored_events(flameup_server)) == 1


def test_without_a_workspace_id_it_is_read_from_a_person(flameup_server: FlameupServer) -> None:
    """The listing's workspace comes from a listed person; with no person it cannot tell."""
    from flameup_pandas._events.rules import EventRules, plan_events
    from flameup_pandas._events.send import EventSender
    from flameup_pandas._run.options import Delivery

    df = events_frame(1)
    [event] = plan_events(df, EventRules(event="e"), dt.datetime.now(dt.UTC)).events
    assert event is not None
    sender = Delivery(
        api_key=flameup_server.api_key, base_url=flameup_server.base_url, retry=QUICK
    ).open()
    try:
        events = EventSender(sender.deliverer)
        unknown = events.resolve(event, "checking")
        assert unknown is not None and unknown.status == "uncertain"
        assert "workspace_id" in (unknown.error or "")
        pd.DataFrame({"userId": ["someone"]}).flameup.upsert(
            api_key=flameup_server.api_key, base_url=flameup_server.base_url, progress=False
        )
        assert events.resolve(event, "checking") is None  # not stored: safe to send
        sent = events.send(event)
        assert sent.status == "sent"
        assert events.resolve(event, "checking") == sent  # found in the listing
        assert events.workspace_id == flameup_server.workspace_id
    finally:
        sender.close()


def test_a_key_without_events_write_stops_the_run_after_one_request(
    flameup_server: FlameupServer,
) -> None:
    """A 403 stops the run instead of failing every row."""
    from flameup_pandas import AuthenticationError

    people_only = flameup_server.add_key(["people:read", "people:write", "people:list"])
    with pytest.raises(AuthenticationError):
        events_frame(2).flameup.track(event="e", **to(flameup_server, api_key=people_only))
    assert posts(flameup_server) == 1


def test_max_duration_stops_early_and_a_rerun_continues(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    state = tmp_path / "events.state"
    df = events_frame(3)
    first = df.flameup.track(event="e", state=state, max_duration=0, **to(flameup_server))
    assert first["flameup_status"].tolist() == ["skipped"] * 3
    assert "max_duration" in first["flameup_error"][0]
    second = df.flameup.track(event="e", state=state, **to(flameup_server))
    assert second["flameup_status"].tolist() == ["sent"] * 3


def test_the_api_key_never_appears_in_results(flameup_server: FlameupServer) -> None:
    flameup_server.set_faults(Faults(drop_after_store_rate=1.0))
    result = events_frame(1).flameup.track(event="e", **to(flameup_server))
    assert flameup_server.api_key not in result.to_string()
    assert np.all(result["flameup_status"] == "uncertain")


def test_a_missing_column_is_a_mapping_error(flameup_server: FlameupServer) -> None:
    from flameup_pandas import MappingError

    with pytest.raises(MappingError, match="when"):
        events_frame().flameup.track(event="e", timestamp="when", **to(flameup_server))
    with pytest.raises(MappingError, match="neither"):
        events_frame().drop(columns="userId").flameup.validate_events(event="e")


def test_track_and_upsert_in_one_process_share_the_keys_budget(
    flameup_server_factory: Any,
) -> None:
    """Run together on one key, they pace under one limiter: the server answers no 429."""
    import threading

    server = flameup_server_factory(rate_limit=15, rate_window=1.0)
    kw = {"api_key": server.api_key, "base_url": server.base_url, "retry": QUICK}
    people = pd.DataFrame({"userId": [f"p{i}" for i in range(1500)]})
    upserted: list[pd.DataFrame] = []
    worker = threading.Thread(
        target=lambda: upserted.append(people.flameup.upsert(progress=False, **kw))
    )
    worker.start()
    tracked = events_frame(20).flameup.track(event="e", workspace_id=server.workspace_id, **kw)
    worker.join()
    assert tracked["flameup_status"].tolist() == ["sent"] * 20
    assert set(upserted[0]["flameup_status"]) == {"created"}
    assert server.request_count(status=429) == 0


def test_the_report_names_the_users_own_columns() -> None:
    df = pd.DataFrame({"who": ["u1"], "what": [""], "when": [pd.Timestamp("2026-01-01", tz="UTC")]})
    report = df.flameup.validate_events(user_id="who", event_column="what", timestamp="when")
    assert report[["column", "check"]].values.tolist() == [["what", "event_name"]]


def test_ctrl_c_returns_the_rows_answered_and_a_rerun_sends_each_event_once(
    flameup_server_factory: Any, tmp_path: Path
) -> None:
    import gc
    import os
    import signal
    import threading
    import time
    import warnings

    from flameup_pandas import UpsertInterrupted

    server = flameup_server_factory(rate_limit=10, rate_window=1.0)
    state = tmp_path / "events.state"
    df = events_frame(40)
    options = to(server, state=state)

    def interrupt_after_three() -> None:
        deadline = time.monotonic() + 60
        while len(server.events()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt_after_three)
    killer.start()
    # Events go out from the main thread: a signal that lands while an answer is being read
    # leaves that response's socket to the garbage collector (a ResourceWarning, off by
    # default). Collected here, so that it cannot surface in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(UpsertInterrupted) as stop:
            df.flameup.track(event="e", **options)
        killer.join()
        partial, signum = stop.value.result, stop.value.signal
        del stop
        gc.collect()
    assert signum == signal.SIGINT
    statuses = partial["flameup_status"]
    # events stored with their answers still on the way: failed, "may have been stored"
    assert set(statuses) <= {"sent", "failed"} and (statuses == "sent").sum() >= 1
    assert partial["flameup_error"][statuses == "failed"].str.startswith("interrupted").all()
    rest = df.flameup.track(event="e", **options)
    assert set(rest["flameup_status"]) <= {"sent", "skipped"}
    stored = server.events()
    assert len(stored) == 40 and stored["user_id"].is_unique


def most_at_once(server: FlameupServer, path: str = "/track") -> int:
    """The most requests to ``path`` the server was answering at the same moment."""
    marks = []
    for r in server.requests:
        if r.path.endswith(path) and r.method == "POST":
            marks += [(r.started_at, 1), (r.started_at + r.duration, -1)]
    most = now = 0
    for _, step in sorted(marks, key=lambda m: (m[0], m[1])):
        now += step
        most = max(most, now)
    return most


def test_events_go_several_at_once_and_results_keep_the_frames_order(
    flameup_server: FlameupServer,
) -> None:
    """One request per event, several in flight (the engine's places), results in input
    order whatever order the answers come in."""
    flameup_server.set_faults(Faults(latency=0.05, latency_jitter=0.05, seed=3))
    df = events_frame(24).set_axis([f"r{i}" for i in range(24)])
    result = df.flameup.track(event="e", concurrency=4, **to(flameup_server))
    assert result.index.tolist() == df.index.tolist()
    assert result["flameup_status"].tolist() == ["sent"] * 24
    stored = flameup_server.events().set_index("id")
    assert stored.loc[result["flameup_event_id"], "user_id"].tolist() == df["userId"].tolist()
    assert posts(flameup_server) == 24  # exactly one request per event
    assert 2 <= most_at_once(flameup_server) <= 4


def test_a_dry_run_keys_and_checks_the_state_and_sends_nothing(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    state = tmp_path / "events.state"
    df = events_frame(3)
    df.flameup.track(event="e", state=tmp_path / "fresh.state", dry_run=True, **to(flameup_server))
    assert not (tmp_path / "fresh.state").exists()  # a dry run writes no state, not even its header
    df.iloc[:1].flameup.track(event="e", state=state, **to(flameup_server))
    flameup_server.reset_requests()
    bad = pd.concat([df, df.iloc[:1].assign(userId=None)], ignore_index=True)
    dry = bad.flameup.track(event="e", state=state, dry_run=True, **to(flameup_server))
    assert dry["flameup_status"].tolist() == ["skipped", "skipped", "skipped", "invalid"]
    assert dry["flameup_error"].tolist()[:3] == [
        "already sent (in the state)",
        "dry run: would be sent",
        "dry run: would be sent",
    ]
    assert flameup_server.requests == []  # not one request, not even a lookup
    sent = bad.flameup.track(event="e", state=state, **to(flameup_server))
    assert sent["flameup_status"].tolist() == ["skipped", "sent", "sent", "invalid"]


def test_progress_is_reported_as_rows_settle(
    flameup_server: FlameupServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Progress in log style ends with the rows done and the requests made, as for people."""
    import logging

    from flameup_pandas import Progress

    df = pd.concat([events_frame(150), events_frame(1)], ignore_index=True)
    with caplog.at_level(logging.INFO, logger="flameup_pandas"):
        result = df.flameup.track(event="e", **to(flameup_server, progress=Progress(style="log")))
    assert result["flameup_status"].value_counts().to_dict() == {"sent": 150, "skipped": 1}
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("track: 151/151 rows (100%), 150 requests") for line in lines)
    assert "up to 151 events, one request each: about 76 s at Flameup's 120 a minute" in lines


def test_a_repeat_of_an_earlier_chunks_event_names_that_row(flameup_server: FlameupServer) -> None:
    """Chunks labelled by their own index: a repeat found from the earlier chunk's key hashes
    still names the row that sent the event."""
    from flameup_pandas._events.kind import Events
    from flameup_pandas._events.rules import EventRules
    from flameup_pandas._run.engine import Rows, assemble, run_rows
    from flameup_pandas._run.options import Delivery, EventSending, Run

    df = events_frame(3).set_axis(["a", "b", "c"])
    chunks = [df.iloc[:2], pd.concat([df.iloc[2:], df.iloc[:1]]).set_axis(["c", "a2"])]
    written: list[Any] = []
    options = to(flameup_server)
    run_rows(
        Rows((c for c in chunks), labelled=True),
        Events(EventRules(event="e"), EventSending(workspace_id=flameup_server.workspace_id)),
        delivery=Delivery(api_key=options["api_key"], base_url=options["base_url"]),
        run=Run(progress=False),
        written=written.append,
    )
    result = assemble(pd.concat(chunks), written, "flameup_event_id")
    assert result["flameup_status"].tolist() == ["sent", "sent", "sent", "skipped"]
    assert result.loc["a2", "flameup_error"] == "the same event as row 'a'"
    assert posts(flameup_server) == 3


@pytest.mark.parametrize("column", ["user_id", "external_id"])
def test_a_frame_that_upserts_can_be_tracked_with_no_extra_keyword(
    flameup_server: FlameupServer, column: str
) -> None:
    """The identity column under any name upsert takes (userId, user_id, external_id) is who
    the event is for; before, a ``user_id`` column raised MappingError unless named."""
    df = events_frame(2).rename(columns={"userId": column})
    df.flameup.upsert(**{k: v for k, v in to(flameup_server).items() if k != "workspace_id"})
    result = df.flameup.track(event="e", **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent", "sent"]
    assert sorted(stored_events(flameup_server)["user_id"]) == ["u0", "u1"]
    assert column not in stored_events(flameup_server)["parameters"][0]


@pytest.mark.parametrize("column", ["user_id", "external_id"])
def test_validate_events_judges_a_frame_as_track_does(column: str) -> None:
    """validate_events takes the identity under upsert's names as track does (it raised
    MappingError for a frame track sends), and reports a missing one under that name."""
    df = events_frame(3).rename(columns={"userId": column})
    df.loc[1, column] = None
    report = df.flameup.validate_events(event="e")
    assert report[["index", "check"]].values.tolist() == [[1, "identity_required"]]
    assert flameup_pandas.validate_events(df.drop(index=1), event="e").empty


def test_track_takes_upserts_mapping_of_the_identity(flameup_server: FlameupServer) -> None:
    """``mapping=`` names the identity columns for track as for upsert; other fields are
    refused with a clear error."""
    from flameup_pandas import MappingError

    df = events_frame(1).rename(columns={"userId": "customer"})
    result = df.flameup.track(event="e", mapping={"userId": "customer"}, **to(flameup_server))
    assert result["flameup_status"].tolist() == ["sent"]
    with pytest.raises(MappingError, match="userId, email"):
        df.flameup.track(event="e", mapping={"plan": "customer"}, **to(flameup_server))


def test_max_duration_stops_upsert_too(flameup_server: FlameupServer) -> None:
    """``max_duration`` means the same for upsert as for track: no request starts after it;
    the rows left are skipped, and a rerun with the state sends them."""
    df = pd.DataFrame({"userId": [f"u{i}" for i in range(250)]})
    options = {k: v for k, v in to(flameup_server).items() if k != "workspace_id"}
    result = df.flameup.upsert(max_duration=0, **options)
    assert result["flameup_status"].eq("skipped").all()
    assert result["flameup_error"].iloc[0].startswith("not sent: max_duration (0 s) reached")
    assert flameup_server.request_count("/people/batch") == 0
