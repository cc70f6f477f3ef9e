"""How progress is shown: log lines where there is no terminal, a bar where there is one."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from flameup_pandas import Progress
from flameup_pandas._run.progress import LogMeter, Meter, open_progress
from flameup_pandas.testing import FlameupServer

from .test_upsert import customers

LINE = re.compile(
    r"upsert: [\d,]+/[\d,]+ rows \(\d+%\), [\d,]+ requests, up to \d+ in flight, [\d,]+ failed"
    r"(, [\d,]+ rows/s)?(, about .+ left|, in .+)?$"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_log_line_says_rows_share_requests_failures_speed_and_time_left():
    clock = Clock()
    meter = LogMeter(1_000_000, requests=lambda: 1_200, clock=clock)
    clock.now += 60
    meter.update(120_000)
    assert meter.line(clock.now) == (
        "upsert: 120,000/1,000,000 rows (12%), 1,200 requests, 0 failed, 2,000 rows/s, "
        "about 7 min left"
    )


def test_log_records_come_at_most_every_interval_and_once_at_the_end(caplog):
    clock = Clock()
    meter = LogMeter(3_500, every=10, requests=lambda: 35, clock=clock)
    with caplog.at_level(logging.INFO, logger="flameup_pandas.progress"):
        for _ in range(35):
            clock.now += 1
            meter.update(100, failed=1)
        meter.close()
        meter.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # at 10, 20 and 30 s, then the end
    assert all(
        r.name == "flameup_pandas.progress" and r.levelno == logging.INFO for r in caplog.records
    )
    assert lines[0].startswith("upsert: 1,000/3,500 rows (28%), 35 requests, 10 failed, 100 rows/s")
    assert (
        lines[-1] == "upsert: 3,500/3,500 rows (100%), 35 requests, 35 failed, 100 rows/s, in 35 s"
    )
    assert not any("\r" in line for line in lines)


def test_where_there_is_no_terminal_progress_is_log_lines_and_a_bar_only_when_asked():
    # Under pytest stderr is captured: not a terminal, not a notebook.
    assert isinstance(open_progress(True, 1_000), LogMeter)
    assert isinstance(open_progress(Progress(style="log"), None), LogMeter)
    assert not isinstance(open_progress(Progress(style="bar"), 1_000), LogMeter)
    assert type(open_progress(False, 1_000)) is Meter
    assert type(open_progress(True, 100)) is Meter  # one request: nothing to watch
    with pytest.raises(ValueError, match="style"):
        Progress(style="fancy")  # type: ignore[arg-type]


def test_a_frame_upsert_logs_its_progress_at_the_end(caplog, flameup_server):
    df = customers(500)
    with caplog.at_level(logging.INFO, logger="flameup_pandas.progress"):
        df.flameup.upsert(
            api_key=flameup_server.api_key, base_url=flameup_server.base_url, rate_limit=None
        )
    [line] = [r.getMessage() for r in caplog.records if r.name == "flameup_pandas.progress"]
    assert re.match(r"upsert: 500/500 rows \(100%\), 5 requests, up to [1-4] in flight, 0 f", line)


def test_a_log_line_says_how_many_requests_were_in_flight_at_most() -> None:
    meter = LogMeter(1_000, requests=lambda: 12, in_flight=lambda: 16, clock=lambda: 5.0)
    meter.update(500)
    assert meter.line(5.0).endswith(", 12 requests, up to 16 in flight, 0 failed")


def _cli(server: FlameupServer, path: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flameup_pandas.cli",
        "upsert",
        str(path),
        "--rate-limit",
        "60000",
        *extra,
    ]


def _env(server: FlameupServer) -> dict[str, str]:
    return {**os.environ, "FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}


def test_cli_with_stderr_a_pipe_logs_progress_lines_without_carriage_returns(tmp_path):
    path = tmp_path / "c.parquet"
    customers(3_000).to_parquet(path)
    with FlameupServer(rate_limit=None) as server:
        done = subprocess.run(
            _cli(server, path, "--progress-every", "0.05"),
            env=_env(server),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("INFO upsert: ")]
    assert lines, done.stderr
    assert all(LINE.search(line) for line in lines), lines
    assert lines[-1].startswith("INFO upsert: 3,000/3,000 rows (100%), 30 requests, up to ")
    assert " in flight, 0 failed" in lines[-1]
    assert server.api_key not in done.stderr


def test_cli_with_stderr_a_terminal_draws_a_bar(tmp_path):
    path = tmp_path / "c.parquet"
    customers(3_000).to_parquet(path)
    primary, secondary = pty.openpty()
    # A terminal 24 rows by 100 columns (a fresh pseudo-terminal has no size).
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with FlameupServer(rate_limit=None) as server:
        process = subprocess.Popen(
            _cli(server, path),
            env=_env(server),
            stdout=subprocess.PIPE,
            stderr=secondary,
        )
        os.close(secondary)
        seen = _read_until_closed(primary, process, limit=120)
    assert process.returncode == 0, seen
    assert "\r" in seen
    assert "3000/3000" in seen and "|" in seen and "row/s" in seen
    assert "INFO upsert" not in seen


def _read_until_closed(fd: int, process: subprocess.Popen[bytes], limit: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the other side closed: EIO on Linux
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        process.communicate(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(fd)
        if process.poll() is None:
            process.kill()
    return b"".join(chunks).decode(errors="replace")
