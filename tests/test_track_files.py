"""track_file() and ``flameup-pandas track``: files and Arrow sources sent as events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from flameup_pandas import track_file
from flameup_pandas.cli import main
from flameup_pandas.testing import FlameupServer


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": ["u1", "u2", None],
            "timestamp": [
                "2026-01-02T03:04:05Z",
                "2026-01-02T03:04:06+01:00",
                "2026-01-02T00:00:00Z",
            ],
            "zip": ["02134", "10001", "94103"],
            "amount": [1, 2, 3],
        }
    )


@pytest.fixture
def env(flameup_server: FlameupServer, monkeypatch: pytest.MonkeyPatch) -> FlameupServer:
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    return flameup_server


def statuses(results: Path) -> list[str]:
    return pd.read_parquet(results)["flameup_status"].tolist()


def test_a_csv_file_keeps_its_text_and_sends_each_row_once(
    env: FlameupServer, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    rows().to_csv(path, index=False)
    out = tmp_path / "r.parquet"
    options = {"event": "visit", "state": tmp_path / "s", "rate_limit": None, "results": out}
    summary = track_file(path, **options)
    assert summary.to_dict() == {"rows": 3, "sent": 2, "invalid": 1, "results": str(out)}
    assert statuses(out) == ["sent", "sent", "invalid"]
    stored = env.events().sort_values("timestamp")
    assert stored["parameters"].tolist() == [
        {"zip": "10001", "amount": 2},
        {"zip": "02134", "amount": 1},
    ]
    track_file(path, **options)
    assert statuses(out) == ["skipped", "skipped", "invalid"]
    assert len(env.events()) == 2


def test_parquet_and_arrow_sources_send_what_a_frame_sends(
    env: FlameupServer, tmp_path: Path
) -> None:
    frame = rows().assign(
        timestamp=lambda d: pd.to_datetime(d["timestamp"], utc=True, format="ISO8601")
    )
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    track_file(path, event="a", rate_limit=None, results=tmp_path / "r.parquet")
    track_file(pa.Table.from_pandas(frame), event="b", rate_limit=None, results=tmp_path / "b")
    from_frame = frame.flameup.track(event="c", rate_limit=None)
    assert statuses(tmp_path / "b") == ["sent", "sent", "invalid"]
    assert from_frame["flameup_status"].tolist() == ["sent", "sent", "invalid"]
    stored = env.events().sort_values(["event", "timestamp"])
    by_name = {name: group["parameters"].tolist() for name, group in stored.groupby("event")}
    assert by_name["a"] == by_name["b"] == by_name["c"]
    assert set(stored.groupby("event")["timestamp"].apply(tuple)) == {
        ("2026-01-02T02:04:06.000000Z", "2026-01-02T03:04:05.000000Z")
    }
    written = pd.read_parquet(tmp_path / "r.parquet")
    assert written["flameup_status"].tolist() == ["sent", "sent", "invalid"]


def test_the_command_sends_a_file_and_says_what_became_of_it(
    env: FlameupServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.csv"
    rows().to_csv(path, index=False)
    state = str(tmp_path / "events.state")
    assert main(["track", str(path), "--event", "visit", "--state", state]) == 1  # one invalid
    assert "2 sent, 1 invalid" in capsys.readouterr().out
    code = main(["track", str(path), "--event", "visit", "--state", state, "--max-failed", "1"])
    assert code == 0
    assert "1 invalid, 2 skipped" in capsys.readouterr().out
    assert len(env.events()) == 2


def test_the_command_dry_run_sends_nothing(
    env: FlameupServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.csv"
    rows().to_csv(path, index=False)
    results = str(tmp_path / "r.parquet")
    code = main(["track", str(path), "--event", "v", "--dry-run", "--results", results])
    assert code == 1  # the invalid row
    assert "1 invalid, 2 skipped" in capsys.readouterr().out
    assert pd.read_parquet(results)["flameup_error"].tolist()[:2] == ["dry run: would be sent"] * 2
    assert env.requests == []


def test_a_file_is_sent_batch_by_batch_and_a_repeat_across_batches_is_skipped(
    env: FlameupServer, tmp_path: Path
) -> None:
    """Read in record batches of 2: the third batch repeats the first row's event."""
    frame = pd.concat([rows().iloc[:2]] * 3, ignore_index=True)
    frame["amount"] = [1, 2, 3, 4, 1, 2]
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    out = tmp_path / "r.parquet"
    summary = track_file(path, event="v", chunk_rows=2, results=out, rate_limit=None)
    assert summary.to_dict() == {"rows": 6, "sent": 4, "skipped": 2, "results": str(out)}
    written = pd.read_parquet(out)
    assert written["row"].tolist() == list(range(6))
    assert written["flameup_status"].tolist() == ["sent"] * 4 + ["skipped"] * 2
    assert written["flameup_error"].tolist()[4:] == [
        "the same event as row 0",
        "the same event as row 1",
    ]
    assert len(env.events()) == 4


def test_the_command_needs_one_way_to_name_the_event(
    env: FlameupServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["track", str(tmp_path / "x.csv")])
    assert stop.value.code == 2
    assert "--event" in capsys.readouterr().err


def test_a_polars_frame_is_tracked_like_a_pandas_one(env: FlameupServer) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(rows()).with_columns(
        pl.col("timestamp").str.to_datetime(time_zone="UTC"), pl.lit(float("nan")).alias("nan")
    )
    result = frame.flameup.track(event="visit", rate_limit=None)
    assert isinstance(result, pl.DataFrame)
    assert result["flameup_status"].to_list() == ["sent", "sent", "invalid"]
    assert result.columns[: len(frame.columns)] == frame.columns
    # NaN is missing: left out, as for people
    assert env.events()["parameters"][0] == {"zip": "02134", "amount": 1}


def test_the_airflow_callable_returns_counts_and_fails_past_the_allowance(
    env: FlameupServer, tmp_path: Path
) -> None:
    from flameup_pandas.airflow import TooManyFailedRowsError, track_file_task

    path = tmp_path / "events.csv"
    rows().to_csv(path, index=False)
    state = tmp_path / "events.state"
    counts = track_file_task(path, event="visit", state=state, max_failed=1, rate_limit=None)
    assert counts == {"rows": 3, "sent": 2, "invalid": 1}
    with pytest.raises(TooManyFailedRowsError, match="1 of 3 events") as failed:
        track_file_task(path, event="visit", state=state, rate_limit=None)
    assert failed.value.summary == {"rows": 3, "skipped": 2, "invalid": 1}
    assert len(env.events()) == 2


def test_read_events_pages_the_listing_into_a_frame(env: FlameupServer) -> None:
    from flameup_pandas import read_events

    frame = pd.DataFrame(
        {
            "userId": [f"u{i % 3}" for i in range(130)],
            "timestamp": [
                pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=i) for i in range(130)
            ],
            "n": range(130),
            "id": ["x"] * 130,
        }
    )
    frame.flameup.track(event="view", rate_limit=None, workspace_id=env.workspace_id)
    every = read_events(workspace_id=env.workspace_id, rate_limit=None)
    assert len(every) == 130 and every["id"].is_unique  # two pages of 100
    assert sorted(every["n"].tolist()) == list(range(130))  # stored as answered
    assert every["parameters.id"].eq("x").all()
    assert (
        str(every["timestamp"].dtype) == "datetime64[us, UTC]"
        or every["timestamp"].dt.tz is not None
    )
    some = read_events(
        workspace_id=env.workspace_id,
        user_id="u1",
        since=pd.Timestamp("2026-01-01T00:10:00", tz="UTC").to_pydatetime(),
        until="2026-01-01T00:20:00Z",
        rate_limit=None,
    )
    assert sorted(some["n"].tolist()) == [10, 13, 16, 19]
    assert read_events(workspace_id=env.workspace_id, event="none", rate_limit=None).empty


def test_read_events_without_a_workspace_says_why(env: FlameupServer) -> None:
    from flameup_pandas import FlameupError, read_events

    with pytest.raises(FlameupError, match="workspace_id="):
        read_events(rate_limit=None)  # no person to read the workspace from


def test_ctrl_c_during_a_file_leaves_its_results_and_a_rerun_sends_each_event_once(
    flameup_server_factory: Any, tmp_path: Path
) -> None:
    import gc
    import os
    import signal
    import threading
    import time
    import warnings

    from flameup_pandas import TrackSummary, UpsertInterrupted

    from .test_track import events_frame, to

    # 5 a second: the 40 events take about 8 s, so the interrupt (sent once 3 are stored) lands
    # mid-run even on a loaded machine (at 10 a second, CI's run sometimes ended first)
    server = flameup_server_factory(rate_limit=5, rate_window=1.0)
    path = tmp_path / "events.parquet"
    events_frame(40).to_parquet(path)
    out = tmp_path / "r.parquet"
    options = to(server, state=tmp_path / "events.state", results=out, event="e")

    def interrupt_after_three() -> None:
        deadline = time.monotonic() + 60
        while len(server.events()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt_after_three)
    killer.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(UpsertInterrupted) as stop:
            track_file(path, chunk_rows=10, **options)
        killer.join()
        summary = stop.value.result
        del stop
        gc.collect()
    assert isinstance(summary, TrackSummary)
    written = pd.read_parquet(out)
    assert written["row"].tolist() == list(range(len(written)))  # every row read, in order
    assert summary.rows == len(written) and summary.counts["failed"] >= 1
    assert (
        written["flameup_error"][written["flameup_status"] == "failed"]
        .str.startswith("interrupted")
        .all()
    )
    rest = track_file(path, chunk_rows=10, **options)
    assert rest.counts["sent"] + rest.counts["skipped"] == 40
    stored = server.events()
    assert len(stored) == 40 and stored["user_id"].is_unique
