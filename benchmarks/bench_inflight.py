"""Requests in flight against a server with real latency: the adaptive default beside fixed
numbers, each run on a fresh local server (a fresh rate window) in the same process.

(l1) Flameup's 120 a minute, 0.25 s a request, 100 requests (10,000 rows) in a fresh window:
     the budget allows them all at once. Defaults beside ``concurrency=16``: target within 1.5x
     (+0.5 s); ``concurrency=4`` (the previous default) shown too.
(l2) a custom 3,000 a minute, 0.3 s a request, 200 requests (100 with ``--quick``): the same.
(l3) a server that sheds load above 6 requests at once (503), 0.25 s a request, 200 requests
     (100 with ``--quick``): defaults beside ``concurrency=6``: target within 1.5x (+1 s), at
     most 10% of the answers 503, nothing lost.

Times are the wall time of ``df.flameup.upsert()``; each line also says how many requests the
run had in flight at most, and its 429s and 503s::

    python -m benchmarks.bench_inflight            # about two minutes
    python -m benchmarks.bench_inflight --quick

``main(quick)`` returns the figures as a flat dict.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pandas as pd

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas.testing import DOCUMENTED_LIMIT, Faults, FlameupServer

BATCH = 100


def frame(requests: int) -> pd.DataFrame:
    n = requests * BATCH
    return pd.DataFrame(
        {
            "userId": [f"u{i:07d}" for i in range(n)],
            "email": [f"u{i}@example.com" for i in range(n)],
            "plan": ["pro"] * n,
        }
    )


def timed(
    df: pd.DataFrame, concurrency: int | None, faults: Faults, rate_limit: int
) -> dict[str, Any]:
    """One upsert on a fresh server: seconds, most in flight, 429s, 503s, rows lost."""
    with FlameupServer(rate_limit=rate_limit, faults=faults) as server:
        started = time.perf_counter()
        result = df.flameup.upsert(
            api_key=server.api_key,
            base_url=server.base_url,
            concurrency=concurrency,
            progress=False,
        )
        seconds = time.perf_counter() - started
        summary = result.flameup.summary().to_dict()
        return {
            "seconds": seconds,
            "in_flight": summary["in_flight"],
            "requests": server.request_count("/people/batch"),
            "http_429": server.request_count("/people/batch", status=429),
            "http_503": server.request_count("/people/batch", status=503),
            "lost": len(df) - len(server.people()),
        }


def scenario(
    key: str, requests: int, faults: Faults, rate_limit: int, fixed: tuple[int, ...]
) -> dict[str, Any]:
    """The defaults and each fixed concurrency on the same rows; flat figures under ``key``."""
    df = frame(requests)
    out: dict[str, Any] = {f"{key}_requests_needed": requests}
    for concurrency in (None, *fixed):
        name = "auto" if concurrency is None else f"c{concurrency}"
        for figure, value in timed(df, concurrency, faults, rate_limit).items():
            out[f"{key}_{name}_{figure}"] = value
    base = fixed[0]
    out[f"{key}_ratio"] = out[f"{key}_auto_seconds"] / out[f"{key}_c{base}_seconds"]
    out[f"{key}_503_share"] = out[f"{key}_auto_http_503"] / max(1, out[f"{key}_auto_requests"])
    return out


def main(quick: bool = False) -> dict[str, Any]:
    many = 100 if quick else 200
    found: dict[str, Any] = {"quick": int(quick)}
    found.update(
        scenario("l1", 100, Faults(latency=0.25), DOCUMENTED_LIMIT, fixed=(16, 4)),
        l1_latency_s=0.25,
    )
    found.update(scenario("l2", many, Faults(latency=0.3), 3_000, fixed=(16, 4)), l2_latency_s=0.3)
    found.update(
        scenario("l3", many, Faults(latency=0.25, overload_above=6), 1_000_000, fixed=(6,)),
        l3_latency_s=0.25,
    )
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}


def table(f: dict[str, Any]) -> str:
    lines = [
        f"{'figure':<46}{'latency':>8}{'auto s':>8}{'in flight':>10}{'fixed s':>9}"
        f"{'ratio':>7}{'429':>5}{'503':>5}{'lost':>5}  target"
    ]
    for key, name, base, target in (
        ("l1", "(l1) 100 requests, 120/min", 16, "<= 1.5x + 0.5 s of x16"),
        ("l2", f"(l2) {f['l2_requests_needed']} requests, 3,000/min", 16, "<= 1.5x + 0.5 s"),
        ("l3", f"(l3) {f['l3_requests_needed']} requests, 503 above 6", 6, "<= 1.5x + 1 s of x6"),
    ):
        lines.append(
            f"{name:<46}{f[f'{key}_latency_s']:>8}{f[f'{key}_auto_seconds']:>8.2f}"
            f"{f[f'{key}_auto_in_flight']:>10}{f[f'{key}_c{base}_seconds']:>9.2f}"
            f"{f[f'{key}_ratio']:>7.2f}{f[f'{key}_auto_http_429']:>5}"
            f"{f[f'{key}_auto_http_503']:>5}{f[f'{key}_auto_lost']:>5}  {target}"
        )
    lines.append(
        f"previous default (x4): l1 {f['l1_c4_seconds']:.2f} s, l2 {f['l2_c4_seconds']:.2f} s"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    sys.stdout.write(table(main(quick=parser.parse_args().quick)) + "\n")
