"""Ctrl-C and SIGTERM mid-run: a partial result within seconds, a consistent state, and a rerun
that sends only what was not acknowledged.

Before each signal the server's latency is raised to ``HANG`` seconds, so requests are in
flight when it lands; every wait below is bounded well under ``HANG``, so a run that waited for
a request in flight (or its retries) would fail the test instead of passing slowly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import flameup_pandas
from flameup_pandas import UpsertInterrupted
from flameup_pandas._api import export_people
from flameup_pandas._run.interrupt import IN_FLIGHT, NOT_SENT, Stopped, interruptible, shielded
from flameup_pandas.testing import Faults, FlameupServer, RecordedRequest

from .test_upsert import customers

ROWS = 3_000
CONCURRENCY = 2
HANG = 40.0  # seconds a request takes once the signal is about to come
BOUND = 20.0  # seconds the CLI may take from the signal to its exit (less than HANG)


class Hang:
    """Once ``answered`` batches are answered, make new requests hang, then run ``action``."""

    def __init__(self, server: FlameupServer, answered: int, action: Callable[[], object]) -> None:
        self.server = server
        self.at = float("inf")
        self._answered = answered
        self._action = action
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while self.server.request_count(status=200) < self._answered:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        self.server.set_faults(Faults(latency=HANG))
        self.at = time.time()
        time.sleep(0.6)  # the senders' next requests are now in flight, hanging
        self._action()

    def answered_since(self) -> list[RecordedRequest]:
        """Requests that arrived after the hang began and were answered already: none, as
        long as nobody waited for them."""
        return [r for r in self.server.requests if r.started_at >= self.at]


def sent_since(server: FlameupServer, since: float) -> int:
    """People sent in the batch requests that arrived after ``since`` (Unix seconds)."""
    return sum(
        r.people_count
        for r in server.requests
        if r.path.endswith("/people/batch") and r.started_at >= since
    )


def rerun_sends_only_the_unacknowledged(
    server: FlameupServer, df: pd.DataFrame, state: Path, acknowledged: int
) -> None:
    server.set_faults(None)
    since = time.time()
    again = df.flameup.upsert(
        api_key=server.api_key,
        base_url=server.base_url,
        rate_limit=None,
        state=state,
        progress=False,
    )
    assert sent_since(server, since) == ROWS - acknowledged
    assert (again["flameup_status"] == "skipped").sum() == acknowledged
    assert len(server.people()) == ROWS


def test_ctrl_c_on_a_frame_upsert_raises_with_the_partial_result_at_once(tmp_path):
    df, state = customers(ROWS), tmp_path / "state.parquet"
    before = signal.getsignal(signal.SIGINT)  # Python's, or one another library installed
    with FlameupServer(rate_limit=None, faults=Faults(latency=0.05)) as server:
        hang = Hang(server, 5, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(UpsertInterrupted) as caught:
            df.flameup.upsert(
                api_key=server.api_key,
                base_url=server.base_url,
                rate_limit=None,
                concurrency=CONCURRENCY,
                state=state,
                progress=False,
            )
        assert hang.answered_since() == []  # back without waiting for the requests in flight
        stop = caught.value
        assert isinstance(stop, KeyboardInterrupt) and not isinstance(stop, Exception)
        assert stop.signal == signal.SIGINT
        result = stop.result
        assert result.index.equals(df.index) and list(result.columns[:5]) == list(df.columns)
        status, error = result["flameup_status"], result["flameup_error"]
        acknowledged = int((status == "created").sum())
        in_flight = int((error == IN_FLIGHT).sum())
        assert acknowledged >= 500 and 0 < in_flight <= 2 * CONCURRENCY * 100
        assert (error == NOT_SENT).sum() == ROWS - acknowledged - in_flight
        assert (status[error.isin([IN_FLIGHT, NOT_SENT])] == "failed").all()
        assert f"{acknowledged:,} of {ROWS:,} rows finished" in str(stop)
        assert ".result" in str(stop) and "Ctrl-C" in str(stop)
        assert result.flameup.summary().counts["failed"] == ROWS - acknowledged
        # The state holds exactly the acknowledged rows (not those in flight).
        assert len(pd.read_parquet(state)) == acknowledged
        assert signal.getsignal(signal.SIGINT) is before
        rerun_sends_only_the_unacknowledged(server, df, state, acknowledged)


def test_sigterm_on_a_polars_upsert_gives_a_polars_partial_result(tmp_path):
    df, state = pl.from_pandas(customers(ROWS)), tmp_path / "state.parquet"
    with FlameupServer(rate_limit=None, faults=Faults(latency=0.05)) as server:
        hang = Hang(server, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
        before = signal.getsignal(signal.SIGTERM)
        with pytest.raises(UpsertInterrupted) as caught:
            df.flameup.upsert(
                api_key=server.api_key,
                base_url=server.base_url,
                rate_limit=None,
                concurrency=CONCURRENCY,
                state=state,
                progress=False,
            )
        assert hang.answered_since() == []
        assert signal.getsignal(signal.SIGTERM) is before
        stop = caught.value
        assert stop.signal == signal.SIGTERM and "stopped by SIGTERM" in str(stop)
        result = stop.result
        assert isinstance(result, pl.DataFrame) and result.height == ROWS
        acknowledged = result.filter(pl.col("flameup_status") == "created").height
        assert acknowledged > 0
        assert result.filter(pl.col("flameup_error") == IN_FLIGHT).height > 0
        assert result.flameup.summary().counts["created"] == acknowledged
        assert len(pd.read_parquet(state)) == acknowledged


def run_cli(server: FlameupServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "flameup_pandas.cli", "upsert", *args, "--rate-limit", "60000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_stopped_mid_run_keeps_results_and_state_and_prints_the_summary(tmp_path, signum, code):
    path, state, results = tmp_path / "c.parquet", tmp_path / "s.parquet", tmp_path / "r.parquet"
    df = customers(ROWS)
    df.to_parquet(path)
    with FlameupServer(rate_limit=None, faults=Faults(latency=0.05)) as server:
        process = run_cli(
            server,
            str(path),
            "--state",
            str(state),
            "--results",
            str(results),
            "--concurrency",
            str(CONCURRENCY),
            "--progress-every",
            "0.2",
        )
        hang = Hang(server, 5, lambda: process.send_signal(signum))
        hang.thread.join(timeout=90)
        out, err = process.communicate(timeout=BOUND)
        assert hang.answered_since() == []  # it did not wait for the requests in flight
        assert process.returncode == code, err
        assert "Traceback" not in err
        assert ("Ctrl-C" if signum == signal.SIGINT else "SIGTERM") in err
        assert "rows finished; .result holds them" in err
        # The summary of the rows answered so far, and where they are.
        assert "created" in out and f"per-row results so far: {results}" in out
        written = pd.read_parquet(results)
        # every row read is in the results file, in input order: the unsent ones say so
        assert written["row"].tolist() == list(range(ROWS))
        acknowledged = int((written["flameup_status"] == "created").sum())
        assert acknowledged >= 500
        assert (written["flameup_error"] == IN_FLIGHT).any()
        assert (written["flameup_error"] == NOT_SENT).any()
        assert written["flameup_status"].isin(["created", "failed"]).all()
        assert len(pd.read_parquet(state)) == acknowledged
        rerun_sends_only_the_unacknowledged(server, df, state, acknowledged)


def test_a_signal_in_a_shielded_block_is_raised_when_the_block_ends():
    before = signal.getsignal(signal.SIGTERM)
    finished = []

    def block() -> None:
        with interruptible(), shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, and waits
            finished.append(True)

    with pytest.raises(Stopped) as caught:
        block()
    assert finished == [True] and caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_no_handler_is_installed():
    seen = []
    before = signal.getsignal(signal.SIGINT)  # default, or SIG_IGN in a job started with &

    def run() -> None:
        with interruptible(), shielded():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert seen == [before]
    assert not issubclass(flameup_pandas.UpsertInterrupted, Exception)


def test_sigterm_in_the_airflow_callable_closes_results_and_state_and_says_how_far(
    tmp_path, caplog
):
    from flameup_pandas.airflow import upsert_file_task

    path, state, results = tmp_path / "c.parquet", tmp_path / "s.parquet", tmp_path / "r.parquet"
    customers(ROWS).to_parquet(path)
    with FlameupServer(rate_limit=None, faults=Faults(latency=0.05)) as server:
        hang = Hang(server, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(UpsertInterrupted) as caught:
            upsert_file_task(
                path,
                results=results,
                state=state,
                api_key=server.api_key,
                base_url=server.base_url,
                rate_limit=None,
                concurrency=CONCURRENCY,
            )
        assert hang.answered_since() == []
    stop = caught.value
    assert stop.signal == signal.SIGTERM
    written = pd.read_parquet(results)
    acknowledged = int((written["flameup_status"] == "created").sum())
    assert acknowledged > 0 and stop.result.counts["created"] == acknowledged
    assert len(pd.read_parquet(state)) == acknowledged
    [warning] = [r for r in caplog.records if r.name == "flameup_pandas.airflow"]
    assert "stopped by SIGTERM" in warning.getMessage()
    assert f"created={acknowledged}" in warning.getMessage()


def test_batches_waiting_for_the_budget_are_not_sent_not_in_flight() -> None:
    """The first batch spends the budget (1 a minute); the next two wait for the window in
    their workers. Ctrl-C then: they never went out, so they are "interrupted before sending",
    not "may have been stored" (a rerun need not confirm them)."""
    df = customers(300)
    with FlameupServer(rate_limit=1, rate_window=60.0) as server:

        def interrupt_once_waiting() -> None:
            deadline = time.monotonic() + 30
            while server.request_count(status=200) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.5)  # the workers now wait for the window's end
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_once_waiting, daemon=True).start()
        with pytest.raises(UpsertInterrupted) as caught:
            df.flameup.upsert(api_key=server.api_key, base_url=server.base_url, progress=False)
        assert server.request_count() == 1
    error = caught.value.result["flameup_error"]
    assert (caught.value.result["flameup_status"] == "created").sum() == 100
    assert (error == NOT_SENT).sum() == 200 and (error == IN_FLIGHT).sum() == 0


def _seeded(server: FlameupServer, n: int) -> None:
    people = pd.DataFrame({"userId": [f"r{i:05d}" for i in range(n)], "plan": ["pro"] * n})
    people.flameup.upsert(  # one batch at a time: stored, so listed, in order
        api_key=server.api_key, base_url=server.base_url, concurrency=1, progress=False
    )
    server.reset_requests()
    server.set_faults(Faults(latency=0.05))


def test_ctrl_c_on_read_people_raises_with_the_people_read_so_far() -> None:
    with FlameupServer(rate_limit=None) as server:
        _seeded(server, 1_500)
        hang = Hang(server, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(flameup_pandas.ReadInterrupted) as caught:
            flameup_pandas.read_people(
                api_key=server.api_key, base_url=server.base_url, progress=False
            )
        assert hang.answered_since() == []  # back without waiting for the page in flight
    stop = caught.value
    assert isinstance(stop, KeyboardInterrupt) and stop.signal == signal.SIGINT
    read = stop.result
    assert isinstance(read, pd.DataFrame) and len(read) % 100 == 0 and 300 <= len(read) < 1_500
    assert list(read["external_id"]) == [f"r{i:05d}" for i in range(len(read))]
    assert "id" in read.columns and "plan" in read.columns
    assert f"read_people interrupted (Ctrl-C): {len(read):,} of 1,500 people read" in str(stop)
    assert ".result holds them" in str(stop)


def test_sigterm_on_export_people_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "people.parquet"
    out.write_bytes(b"the export of last week")
    with FlameupServer(rate_limit=None) as server:
        _seeded(server, 1_500)
        hang = Hang(server, 3, lambda: os.kill(os.getpid(), signal.SIGTERM))
        with pytest.raises(flameup_pandas.ReadInterrupted) as caught:
            export_people(out, api_key=server.api_key, base_url=server.base_url, progress=False)
        assert hang.answered_since() == []
    stop = caught.value
    assert stop.signal == signal.SIGTERM and stop.result is None
    assert str(stop).startswith("export_people stopped by SIGTERM: ")
    assert f"nothing was written to {out} (no partial file" in str(stop)
    assert out.read_bytes() == b"the export of last week"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.parquet"]  # no scratch left
