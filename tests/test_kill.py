"""A run killed with SIGKILL and run again loses no row and resends only what was in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd

from flameup_pandas._run.state import SyncState
from flameup_pandas.testing import FlameupServer

from .test_upsert import customers

ROWS = 6000
CONCURRENCY = 2


def run_cli(server: FlameupServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flameup_pandas.cli",
            "upsert",
            *args,
            "--no-progress",
            "--concurrency",
            str(CONCURRENCY),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_run_then_rerun_completes_without_loss(tmp_path):
    path, state = tmp_path / "c.parquet", tmp_path / "state.parquet"
    customers(ROWS).to_parquet(path)
    # 15 requests a second, announced: the 60-request job takes about 4 s, long enough to kill
    # it midway (the client spends each second's budget, then waits for the next)
    with FlameupServer(rate_limit=15, rate_window=1.0) as server:
        first = run_cli(server, str(path), "--state", str(state))
        deadline = time.monotonic() + 60
        while server.request_count(status=200) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        acknowledged = server.request_count(status=200)
        assert 20 <= acknowledged < ROWS // 100, "the kill should land mid-run"

        server.reset_requests()
        second = run_cli(server, str(path), "--state", str(state))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err

        stored = server.people()
        assert len(stored) == ROWS and stored["external_id"].is_unique
        resent = server.request_count(status=200)
        # everything not acknowledged before the kill, plus at most the batches handed out and
        # not yet in the journal: two per place in flight (Stream), the one being recorded
        # among them (CI, loaded: 41 = 60 - 23 + 4, one over the old bound of CONCURRENCY + 1)
        assert resent <= ROWS // 100 - acknowledged + 2 * CONCURRENCY
        assert len(pd.read_parquet(state)) == ROWS


FULL_DISK = """
import resource, signal, sys
import pandas as pd
from flameup_pandas import StateError, upsert

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
frame = pd.DataFrame({"userId": [f"u{i}" for i in range(500)], "plan": "pro"})
try:
    upsert(frame, state=sys.argv[1], concurrency=1, progress=False)
except StateError as exc:
    print(exc)
"""


def test_a_journal_append_the_disk_cannot_hold_stops_the_run_and_leaves_whole_lines(tmp_path):
    state = tmp_path / "state.parquet"
    with FlameupServer(rate_limit=None) as server:
        env = {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
        # room for one batch's lines (about 15 KB) and part of the next's
        run = subprocess.run(
            [sys.executable, "-c", FULL_DISK, str(state), "24000"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "cannot append to the journal of the sync state" in run.stdout, run.stderr
        assert "the run stopped" in run.stdout
        assert server.request_count("/people/batch") < 5  # it stopped at the failed record
        journal = state.with_name(state.name + ".journal")
        recorded = journal.read_bytes() if journal.exists() else b""
        assert recorded.endswith(b"\n") or not recorded  # nothing torn left behind
        with SyncState.open(state) as sync:  # (whole lines: it reads)
            known = len(sync)
        assert known == 100  # the one batch whose lines were written
        # the rerun sends the people not recorded, skips the one batch recorded
        frame = pd.DataFrame({"userId": [f"u{i}" for i in range(500)], "plan": "pro"})
        result = frame.flameup.upsert(
            state=state, api_key=server.api_key, base_url=server.base_url, progress=False
        )
        counts = result["flameup_status"].value_counts().to_dict()
        assert counts["skipped"] == known
        assert counts["skipped"] + counts["updated"] + counts["created"] == 500
        assert len(server.people()) == 500
