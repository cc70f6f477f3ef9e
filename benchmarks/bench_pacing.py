"""Budget pacing: runs that spend the budget the server announces, beside even pacing.

Every figure runs twice in the same process against the local server: once as users run it
(default arguments: the budget each answer announces is spent at once, then the window's end
awaited), and once under even pacing, the previous client's pace: starts ``window / Limit``
apart whatever budget is left (what this client still falls back to after recurring 429s).

(p1) 5,000 rows, default arguments, Flameup's documented 120 a minute, a fresh window:
     target at most 1.5 s and zero 429s.
(p2) the nightly sync: 1,000,000 rows (100,000 with ``--quick``) synced once, 1% changed,
     synced again with ``upsert_file(state=...)`` at 120 a minute: target at most 12 s.
(p3) a long job, 300 requests at 120 a minute: target two windows plus 5 s and zero 429s
     (with ``--quick`` the window is 6 s instead of 60: the client learns it from Reset).
(p4) a sliding-window log and a token bucket at 10 per 2 s: 40 requests within 2.5x the
     policy's floor (10 at once, then 10 a window: 6 s), at most 3 429s.
(p5) two processes on one key at 10 per 2 s, 20 requests each: both complete, nothing lost,
     the 429s they waste counted.
(p6) a server whose clock is 30 s behind or ahead of ours, 40 requests under 10 per 5 s
     windows, beside the same server with an agreeing clock: target within 1.5x + 3 s, at most
     4 429s, nothing lost (before Reset was read on the server's clock: 107.9 s ahead).

::

    python -m benchmarks.bench_pacing            # about 8 minutes
    python -m benchmarks.bench_pacing --quick    # about a minute

``main(quick)`` returns the figures as a flat dict.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

import flameup_pandas  # noqa: F401  (registers df.flameup)
from benchmarks.bench_memory import ROW_GROUP
from benchmarks.bench_sync import change_plans, customer_table
from flameup_pandas import upsert_file
from flameup_pandas._send.client import fingerprint
from flameup_pandas._send.pacing import _SHARED, RateLimiter
from flameup_pandas.testing import DOCUMENTED_LIMIT, Faults, FlameupServer

NEVER_REACHED = 1_000_000
"""A server limit announced in the headers and never reached (for the sync's first run)."""
BATCH = 100


class EvenPacing(RateLimiter):
    """The baseline: request starts evenly ``window / Limit`` apart, whatever the budget left.

    That is the pace this limiter falls back to when 429s recur, so the baseline is the
    limiter itself with that fallback on from the start of every run.
    """

    def new_run(self) -> None:
        with self._cond:
            self.conservative = True


@contextmanager
def even_pacing(server: FlameupServer) -> Iterator[None]:
    """Runs against ``server`` in this process use :class:`EvenPacing` while inside."""
    key = fingerprint(server.api_key, server.base_url)
    _SHARED[key] = EvenPacing()
    try:
        yield
    finally:
        del _SHARED[key]


def frame(n: int, prefix: str = "p") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "userId": [f"{prefix}{i:07d}" for i in range(n)],
            "email": [f"{prefix}{i}@example.com" for i in range(n)],
            "plan": ["pro", "free"] * (n // 2) + ["pro"] * (n % 2),
        }
    )


def timed_upsert(server: FlameupServer, df: pd.DataFrame) -> dict[str, Any]:
    """``df.flameup.upsert`` with default arguments; seconds, requests, 429s, rows stored, and
    when each request arrived (seconds from the start: the docs plot the pacing from them)."""
    started, wall = time.perf_counter(), time.time()
    result = df.flameup.upsert(api_key=server.api_key, base_url=server.base_url, progress=False)
    seconds = time.perf_counter() - started
    arrivals = [r.started_at - wall for r in server.requests if r.path.endswith("/people/batch")]
    return {
        "times": [round(t, 3) for t in arrivals],
        "seconds": seconds,
        "requests": server.request_count("/people/batch"),
        "http_429": server.request_count("/people/batch", status=429),
        "delivered": int(result["flameup_status"].isin(["created", "updated"]).sum()),
    }


def both(
    make_server: Callable[[], FlameupServer], df: pd.DataFrame
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same upsert with default arguments and under even pacing, each on a fresh server."""
    with make_server() as server:
        ours = timed_upsert(server, df)
    with make_server() as server, even_pacing(server):
        even = timed_upsert(server, df)
    return ours, even


def figures(prefix: str, ours: dict[str, Any], even: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{prefix}_seconds": ours["seconds"],
        f"{prefix}_even_seconds": even["seconds"],
        f"{prefix}_ratio": ours["seconds"] / even["seconds"],
        f"{prefix}_http_429": ours["http_429"],
        f"{prefix}_even_http_429": even["http_429"],
        f"{prefix}_requests": ours["requests"],
        f"{prefix}_delivered": ours["delivered"],
    }


def small_frame() -> dict[str, Any]:
    """(p1) 5,000 rows at the documented limit, a fresh window; with each request's arrival."""
    ours, even = both(lambda: FlameupServer(rate_limit=DOCUMENTED_LIMIT), frame(5_000))
    return {**figures("p1", ours, even), "p1_times": ours["times"], "p1_even_times": even["times"]}


def long_job(quick: bool) -> dict[str, Any]:
    """(p3) 300 requests at 120 a window of 60 s (6 s with ``quick``)."""
    window = 6.0 if quick else 60.0
    ours, even = both(
        lambda: FlameupServer(rate_limit=DOCUMENTED_LIMIT, rate_window=window), frame(30_000)
    )
    return {
        "p3_window_s": window,
        "p3_target_s": 2 * window + 5,
        **figures("p3", ours, even),
    }


def policies() -> dict[str, Any]:
    """(p4) 40 requests at 10 per 2 s, sliding log and token bucket; the floor is 6 s."""
    out: dict[str, Any] = {"p4_floor_s": 6.0}
    for policy in ("sliding", "bucket"):
        ours, even = both(
            lambda policy=policy: FlameupServer(rate_limit=10, rate_window=2.0, rate_policy=policy),
            frame(4_000),
        )
        found = figures(f"p4_{policy}", ours, even)
        found[f"p4_{policy}_floor_ratio"] = ours["seconds"] / out["p4_floor_s"]
        out.update(found)
    return out


def nightly_sync(quick: bool) -> dict[str, Any]:
    """(p2) full sync (limit never reached), 1% changed, the resync at 120 a minute."""
    rows = 100_000 if quick else 1_000_000
    table = customer_table(rows)
    changed, n_changed = change_plans(table, 0.01)
    with tempfile.TemporaryDirectory(prefix="flameup-nightly-") as tmp:
        folder = Path(tmp)
        db, state = folder / "flameup.db", folder / "state.parquet"
        first, second = folder / "v1.parquet", folder / "v2.parquet"
        pq.write_table(table, first, row_group_size=ROW_GROUP)
        pq.write_table(changed, second, row_group_size=ROW_GROUP)
        with FlameupServer(rate_limit=NEVER_REACHED, db=db) as server:
            upsert_file(
                first,
                state=state,
                api_key=server.api_key,
                base_url=server.base_url,
                progress=False,
            )
        shutil.copy(state, folder / "state-even.parquet")
        runs = []
        for state_file, paced in ((state, False), (folder / "state-even.parquet", True)):
            with FlameupServer(rate_limit=DOCUMENTED_LIMIT, db=db) as server:
                pacing = even_pacing(server) if paced else _nothing()
                with pacing:
                    started = time.perf_counter()
                    summary = upsert_file(
                        second,
                        state=state_file,
                        api_key=server.api_key,
                        base_url=server.base_url,
                        progress=False,
                    ).to_dict()
                    seconds = time.perf_counter() - started
                runs.append(
                    {
                        "seconds": seconds,
                        "requests": summary["requests"],
                        "http_429": server.request_count("/people/batch", status=429),
                        "delivered": summary["created"] + summary["updated"],
                    }
                )
    return {"p2_rows": rows, "p2_changed": n_changed, **figures("p2", runs[0], runs[1])}


@contextmanager
def _nothing() -> Iterator[None]:
    yield


TWO_PROCESSES = textwrap.dedent(
    """
    import sys
    import flameup_pandas

    summary = flameup_pandas.upsert_file(sys.argv[1], progress=False).to_dict()
    print(summary["created"] + summary["updated"], summary["rate_limited"])
    """
)


def two_processes() -> dict[str, Any]:
    """(p5) two processes on one key, 10 per 2 s, 2,000 rows each (20 requests)."""
    with tempfile.TemporaryDirectory(prefix="flameup-two-") as tmp:
        paths = [Path(tmp) / f"{name}.parquet" for name in ("a", "b")]
        for path, name in zip(paths, ("a", "b"), strict=True):
            frame(2_000, prefix=name).to_parquet(path, index=False)
        with FlameupServer(rate_limit=10, rate_window=2.0) as server:
            env = {
                **os.environ,
                "FLAMEUP_API_KEY": server.api_key,
                "FLAMEUP_BASE_URL": server.base_url,
            }
            started = time.perf_counter()
            runs = [
                subprocess.Popen(
                    [sys.executable, "-c", TWO_PROCESSES, str(path)],
                    env=env,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for path in paths
            ]
            outputs = [run.communicate(timeout=300)[0] for run in runs]
            seconds = time.perf_counter() - started
            stored = len(server.people())
            http_429 = server.request_count("/people/batch", status=429)
            requests = server.request_count("/people/batch")
    delivered = [int(out.split()[0]) if out.strip() else 0 for out in outputs]
    return {
        "p5_seconds": seconds,
        "p5_floor_s": 6.0,
        "p5_both_completed": int(all(r.returncode == 0 for r in runs)),
        "p5_delivered": sum(delivered),
        "p5_rows": 4_000,
        "p5_rows_lost": 4_000 - stored,
        "p5_requests": requests,
        "p5_http_429": http_429,
    }


def other_clocks() -> dict[str, Any]:
    """(p6) 40 requests under 10 per 5 s, the server's clock 30 s behind, agreeing, ahead."""
    out: dict[str, Any] = {}
    for name, offset in (("agree", 0.0), ("behind", -30.0), ("ahead", 30.0)):
        faults = Faults(clock_offset=offset)
        with FlameupServer(rate_limit=10, rate_window=5.0, faults=faults) as server:
            run = timed_upsert(server, frame(4_000))
            run["lost"] = 4_000 - len(server.people())
        for figure, value in run.items():
            out[f"p6_{name}_{figure}"] = value
    for name in ("behind", "ahead"):
        out[f"p6_{name}_ratio"] = out[f"p6_{name}_seconds"] / out["p6_agree_seconds"]
    return out


def main(quick: bool = False) -> dict[str, Any]:
    """Every part; the figures (ints and floats) in one flat dict."""
    started = time.perf_counter()
    found: dict[str, Any] = {"quick": int(quick)}
    found.update(small_frame())
    found.update(policies())
    found.update(two_processes())
    found.update(other_clocks())
    found.update(long_job(quick))
    found.update(nightly_sync(quick))
    found["total_seconds"] = time.perf_counter() - started
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}


def table(f: dict[str, Any]) -> str:
    rows = [
        ("(p1) 5,000 rows, defaults, 120/min", "p1", "<= 1.5 s, 0 429s"),
        (f"(p2) resync, {f['p2_changed']:,} of {f['p2_rows']:,} changed", "p2", "<= 12 s"),
        (f"(p3) 300 requests, 120 per {f['p3_window_s']:g} s", "p3", f"<= {f['p3_target_s']:g} s"),
        ("(p4) 40 requests, sliding log 10/2 s", "p4_sliding", "<= 15 s, <= 3 429s"),
        ("(p4) 40 requests, token bucket 10/2 s", "p4_bucket", "<= 15 s, <= 3 429s"),
    ]
    lines = [f"{'figure':<44}{'ours s':>9}{'even s':>9}{'ratio':>8}{'429s':>6}  target"]
    for name, p, target in rows:
        lines.append(
            f"{name:<44}{f[f'{p}_seconds']:>9.2f}{f[f'{p}_even_seconds']:>9.2f}"
            f"{f[f'{p}_ratio']:>8.3f}{f[f'{p}_http_429']:>6}  {target}"
        )
    for name in ("behind", "ahead"):
        lines.append(
            f"(p6) server clock 30 s {name}, 10/5 s: {f[f'p6_{name}_seconds']:.1f} s against "
            f"{f['p6_agree_seconds']:.1f} s agreeing ({f[f'p6_{name}_ratio']:.2f}x), "
            f"{f[f'p6_{name}_http_429']} 429s, {f[f'p6_{name}_lost']} lost "
            "(target <= 1.5x + 3 s, <= 4 429s, 0 lost)"
        )
    lines.append(
        f"(p5) two processes, one key, 10/2 s: {f['p5_seconds']:.1f} s (floor 6 s), "
        f"{f['p5_delivered']:,} of {f['p5_rows']:,} rows delivered, {f['p5_rows_lost']} lost, "
        f"{f['p5_http_429']} 429s in {f['p5_requests']} requests"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    sys.stdout.write(table(main(quick=parser.parse_args().quick)) + "\n")
