"""A track run killed with SIGKILL and run again sends every event exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from flameup_pandas.testing import FlameupServer

EVENTS = 60


def run_cli(server: FlameupServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "flameup_pandas.cli", "track", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def settled(server: FlameupServer) -> None:
    """Wait (up to 5 s) until the server logs no new request for 0.3 s."""
    deadline, seen = time.monotonic() + 5, -1
    while seen != (seen := server.request_count()) and time.monotonic() < deadline:
        time.sleep(0.3)


def test_sigkill_mid_run_then_rerun_sends_each_event_once(tmp_path: Path) -> None:
    path, state = tmp_path / "events.parquet", tmp_path / "events.state"
    start = pd.Timestamp("2026-01-01", tz="UTC")
    pd.DataFrame(
        {
            "userId": [f"u{i}" for i in range(EVENTS)],
            "timestamp": [start + pd.Timedelta(minutes=i) for i in range(EVENTS)],
            "amount": range(EVENTS),
        }
    ).to_parquet(path)
    # 15 requests a second, announced: 60 events take about 4 s, long enough to kill midway
    with FlameupServer(rate_limit=15, rate_window=1.0) as server:
        args = [str(path), "--event", "purchase", "--state", str(state)]
        args += ["--workspace-id", server.workspace_id]
        first = run_cli(server, *args)
        deadline = time.monotonic() + 60
        while len(server.events()) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        settled(server)  # a request the killed run sent may still be answering
        before = len(server.events())
        assert 20 <= before < EVENTS, "the kill should land mid-run"

        server.reset_requests()
        second = run_cli(server, *args)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        stored = server.events()
        assert len(stored) == EVENTS and stored["user_id"].is_unique
        # every event not stored before the kill is posted once; a POST answered 429 (the
        # rerun starts inside the killed run's rate window, whose use it cannot know) stored
        # nothing and is retried
        posted = server.request_count("/track", method="POST")
        refused = server.request_count("/track", status=429, method="POST")
        assert posted - refused == EVENTS - before, (posted, refused, before)
