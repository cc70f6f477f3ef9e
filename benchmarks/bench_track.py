"""Events through the engine: throughput beside people's, requests per event, duplicates under
faults, 429s at a paced limit; each scenario on a fresh local server, in the same process.

(e1) the limit raised (1,000,000 a minute, announced; no cap of ours): events a second of
     ``df.flameup.track()`` beside people requests a second of ``df.flameup.upsert()``
     (batches of 100) over the same number of requests, both with the default places in
     flight. Target: events/s at least 0.9x people requests/s (the per-event cost is the
     request, not our code). Also shown: the same events with a state (a ``pending`` line
     synced before each request), and the floor of the request itself: the same bodies
     POSTed by 8 threads with plain requests.
(e2) no faults: POST /track requests per event sent. Target exactly 1.00.
(e3) a fault soak with a state: 10% of answers dropped after the event was stored, 10% a 500
     after storing, 5% dropped before, 5% a 500 before; then reruns with the same state and
     no faults until every row settles. Duplicates (events stored twice): target 0.
(e4) a paced limit of 20 a second (1 s window): 429s answered over the whole run. Target 0.

::

    python -m benchmarks.bench_track            # about a minute
    python -m benchmarks.bench_track --quick

``main(quick)`` returns the figures as a flat dict.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import RetryPolicy
from flameup_pandas.testing import Faults, FlameupServer

RAISED = 1_000_000
"""The server's limit a minute where it is "off": announced, so the client spends it (a server
that announces none is taken at Flameup's documented 120 a minute)."""
QUICK_RETRY = RetryPolicy(total=5, backoff_factor=0.01, backoff_max=0.1, max_elapsed=60)


def events(n: int, start: int = 0) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-01-02T03:04:05", tz="UTC")
    return pd.DataFrame(
        {
            "userId": [f"u{i:07d}" for i in range(start, start + n)],
            "timestamp": [t0 + pd.Timedelta(seconds=i) for i in range(start, start + n)],
            "amount": [float(i % 100) for i in range(start, start + n)],
            "plan": ["pro"] * n,
        }
    )


def people(requests: int) -> pd.DataFrame:
    n = requests * 100
    return pd.DataFrame(
        {
            "userId": [f"p{i:07d}" for i in range(n)],
            "email": [f"p{i}@example.com" for i in range(n)],
            "plan": ["pro"] * n,
        }
    )


def _to(server: FlameupServer, **extra: Any) -> dict[str, Any]:
    return {"api_key": server.api_key, "base_url": server.base_url, **extra}


def _track_rate(df: pd.DataFrame, state: bool) -> tuple[float, int, int]:
    """One track of ``df`` on a fresh server: events a second, events sent, POSTs made."""
    with FlameupServer(rate_limit=RAISED) as server, tempfile.TemporaryDirectory() as folder:
        kept = Path(folder) / "events.state" if state else None
        started = time.perf_counter()
        result = df.flameup.track(
            event="e", state=kept, workspace_id=server.workspace_id, **_to(server)
        )
        seconds = time.perf_counter() - started
        sent = int((result["flameup_status"] == "sent").sum())
        return sent / seconds, sent, server.request_count("/track", method="POST")


def _people_rate(frame: pd.DataFrame) -> float:
    with FlameupServer(rate_limit=RAISED) as server:
        started = time.perf_counter()
        frame.flameup.upsert(progress=False, **_to(server))
        seconds = time.perf_counter() - started
        return server.request_count("/people/batch") / seconds


def _bare_rate(df: pd.DataFrame, threads: int) -> float:
    """The floor of the request itself: the same events' bodies POSTed by ``threads`` threads
    with plain requests sessions, no validation, keys, budget or state."""
    import concurrent.futures
    import threading

    import orjson
    import requests

    bodies = [
        orjson.dumps({"external_id": u, "event": "e", "timestamp": t.isoformat(), "parameters": {}})
        for u, t in zip(df["userId"], df["timestamp"], strict=True)
    ]
    local = threading.local()
    with FlameupServer(rate_limit=RAISED) as server:
        headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}

        def post(body: bytes) -> int:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return int(
                local.session.post(
                    f"{server.base_url}/track", data=body, headers=headers
                ).status_code
            )

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, bodies))
        return len(bodies) / (time.perf_counter() - started)


def throughput(n: int, repeats: int) -> dict[str, Any]:
    """(e1) and (e2): events/s, with and without a state, beside people requests/s and the
    bare request's rate (the best of ``repeats`` runs each, after a warm-up)."""
    df = events(n)
    _track_rate(events(20), state=True)  # imports and first calls out of the timings
    _people_rate(people(2))
    runs = [_track_rate(df, state=False) for _ in range(repeats)]
    rate, sent, posts = max(runs)
    out: dict[str, Any] = {
        "throughput_events": n,
        "events_per_second": rate,
        "events_sent": sent,
        "requests_per_event": posts / max(1, sent),
        "state_events_per_second": max(_track_rate(df, state=True)[0] for _ in range(repeats)),
        "people_requests_per_second": max(_people_rate(people(n)) for _ in range(repeats)),
        "bare_posts_per_second": max(_bare_rate(df, 8) for _ in range(repeats)),
    }
    out["events_ratio"] = out["events_per_second"] / out["people_requests_per_second"]
    out["state_ratio"] = out["state_events_per_second"] / out["people_requests_per_second"]
    out["bare_ratio"] = out["events_per_second"] / out["bare_posts_per_second"]
    return out


def soak(n: int) -> dict[str, Any]:
    """(e3): stored-then-lost answers, lost requests, errors; reruns until settled."""
    faults = Faults(
        drop_after_store_rate=0.1,
        error_after_store_rate=0.1,
        drop_rate=0.05,
        error_rate=0.05,
        seed=5,
    )
    df = events(n)
    with (
        FlameupServer(rate_limit=RAISED, faults=faults) as server,
        tempfile.TemporaryDirectory() as folder,
    ):
        options = _to(
            server,
            state=Path(folder) / "events.state",
            rate_limit=None,
            retry=QUICK_RETRY,
            workspace_id=server.workspace_id,
        )
        first = df.flameup.track(event="e", **options)
        counts = first["flameup_status"].value_counts()
        lost = sum(
            1
            for r in server.requests
            if r.path.endswith("/track") and r.stored and (r.status is None or r.status >= 500)
        )
        server.set_faults(None)
        reruns = 0
        statuses = first["flameup_status"]
        while not statuses.isin(["sent", "skipped"]).all() and reruns < 5:
            statuses = df.flameup.track(event="e", **options)["flameup_status"]
            reruns += 1
        stored = server.events()
        return {
            "soak_events": n,
            "soak_stored_then_lost": lost,
            "soak_first_uncertain": int(counts.get("uncertain", 0)),
            "soak_first_failed": int(counts.get("failed", 0)),
            "soak_reruns": reruns,
            "soak_settled": int(statuses.isin(["sent", "skipped"]).sum()),
            "soak_stored": len(stored),
            "soak_duplicates": int(stored["user_id"].duplicated().sum()),
        }


def paced(n: int) -> dict[str, Any]:
    """(e4): a limit of 20 a second: the run paces under it and is never refused."""
    df = events(n)
    with FlameupServer(rate_limit=20, rate_window=1.0) as server:
        started = time.perf_counter()
        result = df.flameup.track(
            event="e", workspace_id=server.workspace_id, retry=QUICK_RETRY, **_to(server)
        )
        seconds = time.perf_counter() - started
        return {
            "paced_events": n,
            "paced_sent": int((result["flameup_status"] == "sent").sum()),
            "paced_seconds": seconds,
            "paced_floor_seconds": max(0.0, (n - 20) / 20),  # the first window's 20 go at once
            "paced_events_per_second": n / seconds,
            "paced_http_429": server.request_count(status=429),
        }


def main(quick: bool = False) -> dict[str, Any]:
    found: dict[str, Any] = {"quick": int(quick)}
    found.update(throughput(300 if quick else 1_000, 2))
    found.update(soak(100 if quick else 400))
    found.update(paced(60 if quick else 200))
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}


def table(f: dict[str, Any]) -> str:
    rows = [
        (
            f"(e1) events/s, {f['throughput_events']:,} events, limit raised",
            f"{f['events_per_second']:.0f}",
            f"people requests/s {f['people_requests_per_second']:.0f}",
            f"{f['events_ratio']:.2f}",
            ">= 0.90",
        ),
        (
            "(e1) events/s with a state",
            f"{f['state_events_per_second']:.0f}",
            f"people requests/s {f['people_requests_per_second']:.0f}",
            f"{f['state_ratio']:.2f}",
            "-",
        ),
        (
            "(e1) the same events, bare POSTs (8 threads)",
            f"{f['bare_posts_per_second']:.0f}",
            f"ours {f['events_per_second']:.0f}",
            f"{f['bare_ratio']:.2f}",
            "-",
        ),
        ("(e2) requests per event sent", f"{f['requests_per_event']:.2f}", "1", "", "1.00"),
        (
            f"(e3) duplicates, {f['soak_events']} events, "
            f"{f['soak_stored_then_lost']} stored-then-lost",
            str(f["soak_duplicates"]),
            "0",
            "",
            "0",
        ),
        (
            f"(e4) 429s at 20/s, {f['paced_events']} events",
            str(f["paced_http_429"]),
            "0",
            "",
            "0",
        ),
    ]
    lines = [f"{'figure':<52}{'ours':>8}  {'baseline':<30}{'ratio':>6}  target"]
    lines += [f"{a:<52}{b:>8}  {c:<30}{d:>6}  {e}" for a, b, c, d, e in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events")
    sys.stdout.write(table(main(quick=parser.parse_args().quick)) + "\n")
