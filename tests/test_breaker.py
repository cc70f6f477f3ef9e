"""When Flameup cannot be reached: fail fast before any answer, stop early mid-run.

The bounds on elapsed time (45 s, 150 s) are the issue's generous "ends within" figures, not
speed goals: a run that retried every batch to exhaustion would take minutes to hours.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flameup_pandas import RetryPolicy, TransportError
from flameup_pandas._send.breaker import Breaker
from flameup_pandas.airflow import RunStoppedError, upsert_file_task
from flameup_pandas.cli import main
from flameup_pandas.testing import Faults, FlameupServer

from .conftest import target
from .test_upsert import customers

FAST = RetryPolicy(backoff_factor=0.01, backoff_max=0.05)
STOPPED = "the run stopped because Flameup was unreachable since "
KEY = "ws_test_acme_secret." + "a" * 64


def closed_port() -> int:
    """A port on 127.0.0.1 that nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port on 127.0.0.1 that listens and never accepts, its backlog already full: a new
    connection's handshake never completes (the kernel drops the SYN), as with a firewall
    that drops packets or a host that is down. Yields the port."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        filler.connect(("127.0.0.1", port))  # takes the one place the queue has
        yield port


# -- the breaker and the policy, no network ----------------------------------------------------


def test_a_healthy_answer_ends_the_streak() -> None:
    breaker = Breaker(threshold=2, clock=lambda: 100.0)
    breaker.failed_attempt("HTTP 503")
    assert breaker.gave_up() is False
    breaker.answered(healthy=True)
    assert breaker.gave_up() is False
    assert breaker.gave_up() is True
    assert breaker.opened.is_set() and breaker.gave_up() is False  # opens once


def test_the_reason_says_since_when_and_why() -> None:
    clock = iter([1_700_000_000.0, 1_700_000_500.0])
    breaker = Breaker(threshold=1, clock=lambda: next(clock))
    breaker.answered(healthy=False)
    breaker.failed_attempt("HTTP 503")
    breaker.failed_attempt("connection refused")
    assert breaker.gave_up()
    assert breaker.reached
    assert breaker.reason == (
        STOPPED + "2023-11-14 22:13:20 UTC (1 batches in a row spent their retries; "
        "last: connection refused)"
    )


def test_no_threshold_never_stops() -> None:
    breaker = Breaker(threshold=None)
    assert not any(breaker.gave_up() for _ in range(100))
    assert breaker.reason is None


def test_first_contact_budget_counts_attempts_and_time() -> None:
    policy = RetryPolicy(first_contact_attempts=3, first_contact_elapsed=30.0)
    for n in range(2):
        policy = policy.increment(error=ConnectionError(), now=float(n))
    assert not policy.first_contact_spent(now=1.0, wait=1.0)
    assert policy.first_contact_spent(now=1.0, wait=29.0)
    assert policy.increment(error=ConnectionError(), now=2.0).first_contact_spent(2.0, 0.0)


@pytest.mark.parametrize(
    "fields", [{"first_contact_attempts": 0}, {"first_contact_elapsed": -1}, {"outage_batches": 0}]
)
def test_impossible_budgets_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


# -- nothing reached yet: fail fast ------------------------------------------------------------


def test_a_closed_port_fails_fast_naming_url_and_cause_for_any_number_of_rows() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        customers(20_000).flameup.upsert(
            api_key=KEY, base_url=f"http://127.0.0.1:{port}/api/v1", progress=False
        )
    assert time.monotonic() - started < 45
    assert str(info.value) == (
        f"cannot reach http://127.0.0.1:{port}/api/v1: connection refused; "
        "check FLAMEUP_BASE_URL and the network"
    )
    assert info.value.unreachable and "secret" not in str(info.value)


def test_a_connect_timeout_fails_fast_naming_url_and_cause() -> None:
    """End to end: the handshake itself never completes, so every attempt ends in the connect
    timeout (not a refusal, not a read timeout)."""
    with full_backlog() as port:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            customers(2_000).flameup.upsert(
                api_key=KEY,
                base_url=f"http://127.0.0.1:{port}/api/v1",
                timeout=(0.2, 5.0),
                retry=FAST,
                progress=False,
            )
        assert time.monotonic() - started < 45
    assert str(info.value) == (
        f"cannot reach http://127.0.0.1:{port}/api/v1: no connection within the connect "
        "timeout; check FLAMEUP_BASE_URL and the network"
    )
    assert info.value.unreachable and KEY not in str(info.value)


def test_an_unresolvable_host_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match="name not resolved") as info:
        customers(5_000).flameup.upsert(
            api_key=KEY, base_url="https://flameup.invalid/api/v1", progress=False
        )
    assert time.monotonic() - started < 45
    assert str(info.value).startswith("cannot reach https://flameup.invalid/api/v1: ")


def test_a_tls_failure_fails_fast(flameup_server: FlameupServer) -> None:
    https = flameup_server.base_url.replace("http://", "https://")  # the server speaks http
    with pytest.raises(TransportError, match="TLS handshake failed"):
        customers(300).flameup.upsert(api_key=KEY, base_url=https, progress=False)


def test_dropped_connections_before_any_answer_fail_fast_and_nothing_else_is_sent(
    flameup_server: FlameupServer,
) -> None:
    flameup_server.set_faults(Faults(down_after=0))
    with pytest.raises(TransportError, match="connection closed without an answer"):
        customers(5_000).flameup.upsert(**target(flameup_server, retry=FAST))
    assert flameup_server.request_count() == RetryPolicy().first_contact_attempts


def test_a_key_that_does_not_look_like_a_flameup_key_is_warned_about_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flameup_pandas"), pytest.raises(TransportError):
        customers(1).flameup.upsert(
            api_key="abc", base_url=f"http://127.0.0.1:{closed_port()}/api/v1", progress=False
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0].startswith("the API key does not look like a Flameup key")
    assert "abc" not in " ".join(r.getMessage() for r in caplog.records)


def test_the_command_prints_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.parquet"
    customers(500).to_parquet(path)
    port = closed_port()
    monkeypatch.setenv("FLAMEUP_API_KEY", KEY)
    monkeypatch.setenv("FLAMEUP_BASE_URL", f"http://127.0.0.1:{port}/api/v1")
    assert main(["upsert", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"flameup-pandas: error: cannot reach http://127.0.0.1:{port}/api/v1: "
        "connection refused; check FLAMEUP_BASE_URL and the network"
    )


# -- an outage mid-run: the breaker ------------------------------------------------------------


def test_an_outage_mid_run_stops_early_and_a_rerun_sends_only_the_rest(
    flameup_server: FlameupServer, tmp_path: Path
) -> None:
    """20,000 rows, the default retry policy, connections dropped after 30 requests."""
    state = tmp_path / "people.state.parquet"
    df = customers(20_000)
    flameup_server.set_faults(Faults(down_after=30, down_mode="drop"))
    started = time.monotonic()
    result = df.flameup.upsert(**target(flameup_server, state=state))
    assert time.monotonic() - started < 150
    status = result["flameup_status"]
    assert set(status) == {"created", "failed"}
    assert (status == "created").sum() == 3_000 == len(flameup_server.people())
    created = set(result.loc[status == "created", "user_id"])
    assert created == set(flameup_server.people()["external_id"])
    errors = result.loc[status == "failed", "flameup_error"]
    # the batches that spent their retries say so; every other row says the run stopped
    spent = errors[~errors.str.contains(STOPPED)]
    assert spent.str.contains("gave up after 9 attempts").all()
    assert 300 <= len(spent) <= 400
    summary = result.flameup.summary()
    assert summary.stopped is not None and summary.stopped.startswith(STOPPED)
    assert summary.to_dict()["stopped"] == summary.stopped
    assert "stopped early: " + summary.stopped in str(summary)

    flameup_server.set_faults(None)
    flameup_server.reset_requests()
    again = df.flameup.upsert(**target(flameup_server, state=state))
    assert flameup_server.request_count() == 170
    assert (again.loc[status == "failed", "flameup_status"] == "created").all()
    assert (again.loc[status == "created", "flameup_status"] == "skipped").all()
    assert again.flameup.summary().stopped is None
    assert len(flameup_server.people()) == 20_000


def test_the_command_stops_early_writes_every_row_and_exits_1(
    flameup_server: FlameupServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file through the command, the default retry policy, the server refusing connections."""
    path, state, results = tmp_path / "c.parquet", tmp_path / "s.parquet", tmp_path / "r.parquet"
    customers(20_000).to_parquet(path)
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    args = ["upsert", str(path), "--state", str(state), "--results", str(results)]
    flameup_server.set_faults(Faults(down_after=30, down_mode="refuse"))
    started = time.monotonic()
    assert main([*args, "--no-progress", "--rate-limit", "6000"]) == 1
    assert time.monotonic() - started < 150
    assert "flameup-pandas: stopped early: " + STOPPED in capsys.readouterr().err
    rows = pd.read_parquet(results)
    assert len(rows) == 20_000 and rows["row"].is_unique
    assert rows["flameup_status"].value_counts().to_dict() == {"failed": 17_000, "created": 3_000}

    flameup_server.set_faults(None)
    flameup_server.reset_requests()
    assert main([*args, "--no-progress", "--rate-limit", "6000"]) == 0
    assert flameup_server.request_count() == 170
    rows = pd.read_parquet(results)
    assert rows["flameup_status"].value_counts().to_dict() == {"created": 17_000, "skipped": 3_000}


def test_5xx_outage_stops_early_too(flameup_server: FlameupServer) -> None:
    df = customers(3_000)
    df.iloc[:300].flameup.upsert(**target(flameup_server))
    flameup_server.set_faults(Faults(error_rate=1.0, seed=1))
    result = df.flameup.upsert(**target(flameup_server, retry=FAST))
    sent = flameup_server.request_count()
    assert sent <= 3 + (FAST.total + 1) * 4 * 2  # the first 300 rows, then a few batches in flight
    assert (result["flameup_status"] == "failed").all()
    assert "last: HTTP 50" in str(result.flameup.summary().stopped)


def test_outage_batches_none_keeps_every_batch_trying(flameup_server: FlameupServer) -> None:
    df = customers(1_000)
    df.iloc[:100].flameup.upsert(**target(flameup_server))
    flameup_server.set_faults(Faults(error_rate=1.0, seed=1))
    never = RetryPolicy(total=1, backoff_factor=0.001, outage_batches=None)
    result = df.flameup.upsert(**target(flameup_server, retry=never))
    assert flameup_server.request_count() == 1 + 10 * 2
    assert result["flameup_error"].str.contains("gave up after 2 attempts").all()
    assert result.flameup.summary().stopped is None


def test_the_airflow_callable_raises_after_writing_state_and_results(
    flameup_server: FlameupServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, state, results = tmp_path / "c.parquet", tmp_path / "s.parquet", tmp_path / "r.parquet"
    customers(2_000).to_parquet(path)
    monkeypatch.setenv("FLAMEUP_API_KEY", flameup_server.api_key)
    monkeypatch.setenv("FLAMEUP_BASE_URL", flameup_server.base_url)
    flameup_server.set_faults(Faults(down_after=5, down_mode="refuse"))
    options = {"state": state, "results": results, "rate_limit": None, "retry": FAST}
    with pytest.raises(RunStoppedError, match="a retry sends only the rest") as info:
        upsert_file_task(path, **options)
    assert info.value.summary["created"] == 500 and info.value.summary["failed"] == 1_500
    assert len(pd.read_parquet(results)) == 2_000
    flameup_server.set_faults(None)
    flameup_server.reset_requests()
    out = upsert_file_task(path, **options)
    assert (out["created"], out["skipped"], flameup_server.request_count()) == (1_500, 500, 15)


def test_summary_of_a_run_that_went_on_has_no_stopped_entry(to_server: dict[str, object]) -> None:
    summary = customers(3).flameup.upsert(**to_server).flameup.summary()
    assert summary.stopped is None and "stopped" not in summary.to_dict()
    assert "stopped" not in str(summary)
