"""How many batches of 100 people a second the local Flameup server takes (rate limit off).

A plain ``requests.Session`` loop in the same process (so client and server share one
core's worth of GIL) posts batches, half of them new people and half updates of people
already stored, and reports batches and people per second, plus the time spent inside the
server's WSGI app (validation and SQLite)::

    python benchmarks/bench_server.py            # full run
    python benchmarks/bench_server.py --quick    # a few seconds

``main(quick)`` returns the figures as a dict for report runners.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import requests

from flameup_pandas.testing import FlameupServer

BATCH_SIZE = 100


def _batch(start: int) -> dict[str, Any]:
    return {
        "people": [
            {
                "userId": f"user-{i}",
                "email": f"user{i}@example.com",
                "traits": {"first_name": "Ada", "last_name": f"L{i}", "plan": "pro", "score": i},
            }
            for i in range(start, start + BATCH_SIZE)
        ]
    }


def _run(server: FlameupServer, batches: int) -> float:
    """Post ``batches`` batches; returns the seconds taken. Every other batch is an update."""
    bodies = [_batch((n // 2) * BATCH_SIZE) for n in range(batches)]
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {server.api_key}"
        url = f"{server.base_url}/people/batch"
        started = time.perf_counter()
        for body in bodies:
            answer = session.post(url, json=body, timeout=10)
            answer.raise_for_status()
        return time.perf_counter() - started


def main(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    batches = 200 if quick else 2000
    with FlameupServer(rate_limit=None) as server:
        _run(server, 20)  # warm up
        server.reset_requests()
        seconds = _run(server, batches)
        stored = len(server.people())
        in_server = sum(r.duration for r in server.requests)
    return {
        "batches": batches,
        "batch_size": BATCH_SIZE,
        "seconds": round(seconds, 3),
        "batches_per_second": round(batches / seconds, 1),
        "people_per_second": round(batches * BATCH_SIZE / seconds),
        "people_stored": stored,
        "server_ms_per_batch": round(in_server / batches * 1000, 2),
        "server_batches_per_second": round(batches / in_server, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    figures = main(quick=parser.parse_args().quick)
    print(
        f"{figures['batches_per_second']} batches of {figures['batch_size']} people a second"
        f" ({figures['people_per_second']} people/s; {figures['batches']} batches in"
        f" {figures['seconds']} s, rate limit off)\n"
        f"time inside the server's WSGI app: {figures['server_ms_per_batch']} ms a batch"
        f" ({figures['server_batches_per_second']} batches/s if HTTP and the client were free)"
    )
