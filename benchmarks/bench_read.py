"""``read_people`` of a 10,000-person workspace with the default budget, beside the floor.

The people are stored once (under a rate limit never reached) in a server database; then,
each against a fresh local server on that database at Flameup's documented limit (120
requests a minute, so a fresh window):

- ``read_people()`` with its defaults: seconds, requests and rows;
- the baseline: the same pages fetched back to back with plain ``requests`` and no pacing,
  parsing only the JSON: the least any reader can spend against this server.

Run ``python -m benchmarks.bench_read`` (10,000 people, 100 pages) or ``--quick`` (2,000).
``main(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from flameup_pandas import read_people, upsert
from flameup_pandas.testing import DOCUMENTED_LIMIT, FlameupServer

NEVER_REACHED = 1_000_000
"""The local server's rate limit: announced in its headers, as Flameup does, never reached (a
server without one sends no rate headers, and the client then assumes the documented 120 a
minute)."""

TARGET_SECONDS = 3.0


def seed(db: Path, people: int) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(people)],
            "email": [f"person{i}@example.com" for i in range(people)],
            "first_name": ["Ada", "Grace", "Alan", "Edsger"] * (people // 4),
            "plan": ["free", "pro"] * (people // 2),
            "seats": list(range(people)),
        }
    )
    with FlameupServer(rate_limit=NEVER_REACHED, db=db) as server:
        upsert(
            frame, api_key=server.api_key, base_url=server.base_url, rate_limit=None, progress=False
        )


def timed_read(db: Path) -> dict[str, Any]:
    with FlameupServer(rate_limit=DOCUMENTED_LIMIT, db=db) as server:
        started = time.perf_counter()
        people = read_people(api_key=server.api_key, base_url=server.base_url, progress=False)
        seconds = time.perf_counter() - started
        return {
            "seconds": round(seconds, 3),
            "rows": len(people),
            "requests": server.request_count(),
            "http_429": server.request_count(status=429),
        }


def timed_floor(db: Path) -> dict[str, Any]:
    with FlameupServer(rate_limit=DOCUMENTED_LIMIT, db=db) as server, requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {server.api_key}"
        started = time.perf_counter()
        offset, rows = 0, 0
        while True:
            params = {"limit": 100, "offset": offset}
            page = s.get(f"{server.base_url}/people", params=params, timeout=30).json()
            rows += len(page["people"])
            offset += len(page["people"])
            if not page["people"] or offset >= page["total"]:
                break
        return {"seconds": round(time.perf_counter() - started, 3), "rows": rows}


def main(quick: bool = False) -> dict[str, Any]:
    people = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="flameup-bench-read-") as tmp:
        db = Path(tmp) / "flameup.db"
        seed(db, people)
        floor = timed_floor(db)
        ours = timed_read(db)
    return {
        "people": people,
        "read_seconds": ours["seconds"],
        "read_rows": ours["rows"],
        "read_requests": ours["requests"],
        "read_http_429": ours["http_429"],
        "floor_seconds": floor["seconds"],
        "floor_rows": floor["rows"],
        "ratio": round(ours["seconds"] / floor["seconds"], 2),
        "target_seconds": TARGET_SECONDS,
    }


def _report(figures: dict[str, Any]) -> str:
    return (
        f"read_people of {figures['people']:,} people, default budget: "
        f"{figures['read_seconds']} s, {figures['read_requests']} requests "
        f"({figures['read_http_429']} 429s), {figures['read_rows']:,} rows; "
        f"plain requests loop without pacing: {figures['floor_seconds']} s "
        f"(ratio {figures['ratio']}); target <= {TARGET_SECONDS} s and <= 100 requests"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 people instead of 10,000")
    print(_report(main(quick=parser.parse_args().quick)))
