"""Budget pacing against the local server: every rate policy, two processes on one key, and
``rate_limit`` reaching the limiter the same way from every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import flameup_pandas
from flameup_pandas._send.client import fingerprint
from flameup_pandas._send.pacing import _SHARED
from flameup_pandas.airflow import upsert_file_task
from flameup_pandas.cli import main
from flameup_pandas.testing import Faults, FlameupServer


def _frame(n: int, prefix: str = "p") -> pd.DataFrame:
    return pd.DataFrame(
        {"userId": [f"{prefix}{i}" for i in range(n)], "plan": ["pro"] * n},
    )


def _where(server: FlameupServer) -> dict[str, Any]:
    return {"api_key": server.api_key, "base_url": server.base_url, "progress": False}


def test_default_arguments_send_a_5000_row_frame_within_the_announced_budget() -> None:
    with FlameupServer() as server:  # Flameup's documented 120 a minute, fixed windows
        result = _frame(5_000).flameup.upsert(**_where(server))
        assert (result["flameup_status"] == "created").all()
        assert server.request_count(status=429) == 0
        assert server.request_count() == 50
        # the budget, not a trickle: every request inside the one window it opened
        starts = sorted(r.started_at for r in server.requests)
        assert starts[-1] - starts[0] < 60


@pytest.mark.parametrize("policy", ["fixed", "sliding", "bucket"])
def test_every_server_policy_is_followed_with_almost_no_429(policy: Any) -> None:
    """25 requests at 10 per 2 s: three budgets' worth, each spent, then waited for."""
    with FlameupServer(rate_limit=10, rate_window=2.0, rate_policy=policy) as server:
        result = _frame(2_500).flameup.upsert(**_where(server))
        assert (result["flameup_status"] == "created").all()
        assert len(server.people()) == 2_500
        assert server.request_count(status=429) <= 3
        assert result.flameup.summary().to_dict()["rate_limited"] <= 3


@pytest.mark.parametrize("offset", [-30.0, 30.0])
def test_a_server_on_another_clock_is_paced_by_its_own_date(offset: float) -> None:
    """25 requests at 10 per 2 s from a server whose clock is 30 s off ours: Reset is read on
    its clock (from Date), so a window is believed to end when it does, not 30 s later (ahead),
    and a Reset is not taken for a stale one (behind: a storm of 429s)."""
    faults = Faults(clock_offset=offset)
    with FlameupServer(rate_limit=10, rate_window=2.0, faults=faults) as server:
        result = _frame(2_500).flameup.upsert(**_where(server))
        limiter = _SHARED[fingerprint(server.api_key, server.base_url)]
        window = limiter.window
        assert window is not None
        assert window.reset - time.monotonic() <= 2.0 + 1.0  # the window, plus Reset's rounding
        assert (result["flameup_status"] == "created").all()
        assert len(server.people()) == 2_500
        assert server.request_count(status=429) <= 4


TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    import flameup_pandas

    summary = flameup_pandas.upsert_file(sys.argv[1], progress=False)
    print(summary.to_dict()["created"], summary.to_dict()["rate_limited"])
    """
)


def test_two_processes_on_one_key_both_finish_and_lose_nothing(tmp_path: Path) -> None:
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.parquet")
        _frame(2_000, prefix=name).to_parquet(paths[-1], index=False)
    with FlameupServer(rate_limit=10, rate_window=2.0) as server:
        env = {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", TWO_PROCESSES, str(path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in paths
        ]
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
        assert [int(out.split()[0]) for out, _ in outputs] == [2_000, 2_000]
        assert len(server.people()) == 4_000
        # They see each other in Remaining: a sender blind to the other would have one of its
        # requests refused for each one sent (about 40 429s). Two to seven are usual; a
        # process stalled on a loaded machine acts on a Remaining the other has spent, so the
        # bound is one refusal for every two sent.
        assert server.request_count(status=429) <= 20


def _cap_after(server: FlameupServer) -> float | None:
    return _SHARED[fingerprint(server.api_key, server.base_url)].rate_per_minute


@pytest.mark.parametrize("entry", ["frame", "polars", "file", "arrow", "airflow", "cli"])
def test_rate_limit_is_the_same_cap_from_every_entry_point(
    entry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame(150)
    path = tmp_path / "people.parquet"
    frame.to_parquet(path, index=False)
    with FlameupServer(rate_limit=1_000) as server:
        where = {**_where(server), "rate_limit": 900}
        if entry == "frame":
            frame.flameup.upsert(**where)
        elif entry == "polars":
            pl.from_pandas(frame).flameup.upsert(**where)
        elif entry == "file":
            flameup_pandas.upsert_file(path, **where)
        elif entry == "arrow":
            flameup_pandas.upsert_arrow(pa.Table.from_pandas(frame), **where)
        elif entry == "airflow":
            upsert_file_task(path, **where)
        else:
            monkeypatch.setenv("FLAMEUP_API_KEY", server.api_key)
            monkeypatch.setenv("FLAMEUP_BASE_URL", server.base_url)
            assert main(["upsert", str(path), "--rate-limit", "900", "--no-progress"]) == 0
        assert _cap_after(server) == 900
        assert len(server.people()) == 150
        assert server.request_count() == 2
