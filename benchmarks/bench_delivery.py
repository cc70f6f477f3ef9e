"""Delivery against the local Flameup server: quota used, pace kept, throughput, and the naive loop.

Everything runs in one process against :class:`~flameup_pandas.testing.FlameupServer` on
loopback, through ``df.flameup.upsert()``, and prints each figure beside its baseline:

(a) requests made / the minimum possible, ``ceil(valid rows / 100)``: target 1.00 without
    faults (1% of the rows are invalid and must not leave half-empty batches behind). The same
    ratio under the fault soak's faults shows what retries cost.
(b) a cap of ours, ``rate_limit=1,200``, against a server allowing 1,200 a minute: the most
    of our requests the server saw in any 60 s, over the cap (or over the job, when the job is
    smaller): target 1.000 (the cap used in full, never overstepped) and zero 429s. The full
    run sends 1,450 requests and so crosses into a second minute; the quick run stays inside
    one and shows the cap does not slow a job smaller than it.
(c) throughput with 300 ms of server latency at 3,000 requests a minute and 16 concurrent
    requests: target >= 0.90 of the limit.
(d) the job done the way users do it today: a plain loop posting ``df.to_dict("records")``
    chunks with requests, no retries, no pacing. Rows it loses (to 429s, to batches refused
    whole because one row is bad, to 5xx and dropped connections) and requests it makes, beside
    ours, on (d1) the same server as (b), (d2) Flameup's documented 120 a minute, and (d3) the
    fault soak's faults.

Rates are measured from the server's log (arrival times of the first and last request), so
the client's own validation and conversion time does not count against the pace::

    python benchmarks/bench_delivery.py            # ~3 minutes
    python benchmarks/bench_delivery.py --quick    # under a minute

``main(quick)`` returns the figures as a flat dict for report runners.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import requests

import flameup_pandas  # noqa: F401  (registers df.flameup)
from flameup_pandas import RetryPolicy
from flameup_pandas.testing import DOCUMENTED_LIMIT, Faults, FlameupServer

BATCH = 100
INVALID_SHARE = 0.01
FAST_RETRY = RetryPolicy(backoff_factor=0.01, backoff_max=0.2)
SOAK_FAULTS = Faults(
    error_rate=0.05,
    error_after_store_rate=0.05,
    drop_rate=0.025,
    drop_after_store_rate=0.025,
    latency=0.002,
    latency_jitter=0.01,
    storm_rate=0.01,
    seed=20_000,
)
PACED_LIMIT = 1_200  # (b), requests a minute: 10x Flameup's documented 120
LATENCY_LIMIT = 3_000  # (c)
LATENCY = 0.3
LATENCY_CONCURRENCY = (16, 20)  # 16 x (60 / 0.3 s) = 3,200 a minute leaves 7% for overheads
UNLIMITED = 1_000_000  # a server limit no run reaches


# -- data --------------------------------------------------------------------------------------


def make_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` distinct people, 1% of them invalid (bad email, no identity, overlong userId).

    Returns the frame and a bool per row: True for the rows that can be sent.
    """
    rng = np.random.default_rng(seed)
    numbers = range(n)
    df = pd.DataFrame(
        {
            "userId": [f"bench-{i:07d}" for i in numbers],
            "email": [f"person{i}@example.com" for i in numbers],
            "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara"], n),
            "plan": rng.choice(["free", "pro", "team"], n),
            "score": rng.integers(0, 10_000, n),
        }
    )
    invalid = np.sort(rng.choice(n, round(n * INVALID_SHARE), replace=False))
    bad_email, no_identity, long_id = np.array_split(invalid, 3)
    df.loc[bad_email, "email"] = [f"not-an-email-{i}" for i in bad_email]
    df.loc[no_identity, ["userId", "email"]] = None
    df.loc[long_id, "userId"] = [f"{i}-" + "x" * 300 for i in long_id]
    valid = np.ones(n, dtype=bool)
    valid[invalid] = False
    return df, valid


def rows_for_requests(requests_wanted: int) -> int:
    """Rows whose valid part fills exactly ``requests_wanted`` full batches (or just under)."""
    return math.floor(requests_wanted * BATCH / (1 - INVALID_SHARE))


# -- measuring ---------------------------------------------------------------------------------


def batch_log(server: FlameupServer) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/people/batch")]


def most_in_a_minute(log: list[Any]) -> int:
    """The most requests that arrived at the server within any 60 s."""
    starts = sorted(r.started_at for r in log)
    most, first = 0, 0
    for last, at in enumerate(starts):
        while at - starts[first] >= 60.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def request_rate(log: list[Any]) -> float:
    """Requests a minute between the first and the last arrival at the server."""
    starts = sorted(r.started_at for r in log)
    if len(starts) < 2 or starts[-1] == starts[0]:
        return 0.0
    return (len(starts) - 1) / (starts[-1] - starts[0]) * 60.0


@contextmanager
def server(**options: Any) -> Iterator[FlameupServer]:
    with FlameupServer(**options) as running:
        yield running


def ours(
    df: pd.DataFrame,
    srv: FlameupServer,
    *,
    rate_limit: float | None,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Upsert ``df`` with ``df.flameup.upsert``; what it did, and what the server saw."""
    started = time.perf_counter()
    result = df.flameup.upsert(
        api_key=srv.api_key,
        base_url=srv.base_url,
        rate_limit=rate_limit,
        concurrency=concurrency,
        retry=FAST_RETRY,
        progress=False,
    )
    seconds = time.perf_counter() - started
    summary = result.flameup.summary().to_dict()
    log = batch_log(srv)
    return {
        "requests": summary["requests"],
        "server_requests": len(log),
        "http_429": sum(r.status == 429 for r in log),
        "retries": summary["retries"],
        "failed": summary["failed"],
        "delivered": summary["created"] + summary["updated"],
        "stored": len(srv.people()),
        "seconds": seconds,
        "rate_per_minute": request_rate(log),
        "most_in_a_minute": most_in_a_minute(log),
    }


def naive(df: pd.DataFrame, valid: np.ndarray, srv: FlameupServer) -> dict[str, Any]:
    """The loop users write today: chunks of ``to_dict("records")``, one POST each, no retries."""
    lost: Counter[str] = Counter()
    started = time.perf_counter()
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {srv.api_key}"
        url = f"{srv.base_url}/people/batch"
        for start in range(0, len(df), BATCH):
            records = df.iloc[start : start + BATCH].to_dict("records")
            body = {
                "people": [
                    {"userId": r.pop("userId"), "email": r.pop("email"), "traits": r}
                    for r in records
                ]
            }
            rows = int(valid[start : start + BATCH].sum())
            try:
                answer = session.post(url, json=body, timeout=30)
            except requests.exceptions.InvalidJSONError:
                # A missing value is NaN in a to_dict() record, and JSON has no NaN.
                lost["bad_rows"] += rows
                continue
            except requests.RequestException:
                lost["errors"] += rows
                continue
            if answer.status_code == 429:
                lost["429"] += rows
            elif answer.status_code in (400, 422):  # one bad row refuses the whole batch
                lost["bad_rows"] += rows
            elif answer.status_code >= 500:
                lost["errors"] += rows
    seconds = time.perf_counter() - started
    stored = set(srv.people()["external_id"])
    missing = int(sum(uid not in stored for uid in df["userId"][valid]))
    return {
        "requests": len(batch_log(srv)),
        "http_429": srv.request_count(path_suffix="/people/batch", status=429),
        "rows_missing": missing,
        "rows_told_lost": sum(lost.values()),
        "lost_to_429": lost["429"],
        "lost_to_bad_rows": lost["bad_rows"],
        "lost_to_errors": lost["errors"],
        "seconds": seconds,
    }


# -- the four figures --------------------------------------------------------------------------


def only_valid(df: pd.DataFrame, valid: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The valid rows alone: what the naive loop gets when its user filtered the bad rows out."""
    return df[valid].reset_index(drop=True), np.ones(int(valid.sum()), dtype=bool)


def naive_figures(prefix: str, loop: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "http_429", "rows_missing", "lost_to_429", "lost_to_bad_rows")
    figures = {f"{prefix}_naive_{k}": loop[k] for k in keys}
    figures[f"{prefix}_naive_lost_to_errors"] = loop["lost_to_errors"]
    figures[f"{prefix}_naive_seconds"] = loop["seconds"]
    return figures


def quota_use(n: int) -> dict[str, Any]:
    """(a) requests / minimum, with no faults and with the soak's faults; (d0) and (d3)."""
    df, valid = make_frame(n, seed=1)
    minimum = math.ceil(valid.sum() / BATCH)
    with server(rate_limit=UNLIMITED) as srv:
        clean = ours(df, srv, rate_limit=None)
    with server(rate_limit=UNLIMITED, faults=SOAK_FAULTS) as srv:
        faulty = ours(df, srv, rate_limit=None)
    with server(rate_limit=UNLIMITED) as srv:
        unfiltered = naive(df, valid, srv)
    with server(rate_limit=UNLIMITED, faults=SOAK_FAULTS) as srv:
        faults_only = naive(*only_valid(df, valid), srv)
    return {
        "a_rows": n,
        "a_valid_rows": int(valid.sum()),
        "a_min_requests": minimum,
        "a_requests": clean["requests"],
        "a_ratio": clean["requests"] / minimum,
        "a_rows_missing": int(valid.sum()) - clean["stored"],
        "a_faults_requests": faulty["requests"],
        "a_faults_ratio": faulty["requests"] / minimum,
        "a_faults_retries": faulty["retries"],
        "a_faults_429": faulty["http_429"],
        "a_faults_failed": faulty["failed"],
        "a_faults_rows_missing": int(valid.sum()) - faulty["stored"],
        **naive_figures("d0", unfiltered),
        **naive_figures("d3", faults_only),
    }


def pacing(requests_wanted: int) -> dict[str, Any]:
    """(b) our pace at a scaled-up limit, and (d1) the naive loop on the same server."""
    df, valid = make_frame(rows_for_requests(requests_wanted), seed=2)
    with server(rate_limit=PACED_LIMIT) as srv:
        paced = ours(df, srv, rate_limit=PACED_LIMIT)
    with server(rate_limit=PACED_LIMIT) as srv:
        loop = naive(*only_valid(df, valid), srv)
    return {
        "b_limit_per_minute": PACED_LIMIT,
        "b_requests": paced["requests"],
        "b_most_in_a_minute": paced["most_in_a_minute"],
        "b_expected_in_a_minute": min(PACED_LIMIT, paced["server_requests"]),
        "b_ratio": paced["most_in_a_minute"] / min(PACED_LIMIT, paced["server_requests"]),
        "b_http_429": paced["http_429"],
        "b_seconds": paced["seconds"],
        "b_crosses_window": int(paced["seconds"] > 60),
        "b_rows_missing": int(valid.sum()) - paced["stored"],
        **naive_figures("d1", loop),
    }


def latency_throughput(requests_wanted: int, concurrency: int) -> dict[str, Any]:
    """(c) throughput with 300 ms latency at 3,000 a minute, ``concurrency`` requests in flight."""
    df, valid = make_frame(rows_for_requests(requests_wanted), seed=3)
    with server(rate_limit=LATENCY_LIMIT, faults=Faults(latency=LATENCY, seed=3)) as srv:
        run = ours(df, srv, rate_limit=LATENCY_LIMIT, concurrency=concurrency)
    c = f"c{concurrency}"
    return {
        f"{c}_requests": run["requests"],
        f"{c}_rate_per_minute": run["rate_per_minute"],
        f"{c}_ratio": run["rate_per_minute"] / LATENCY_LIMIT,
        f"{c}_http_429": run["http_429"],
        f"{c}_rows_per_second": run["delivered"] / run["seconds"],
        f"{c}_rows_missing": int(valid.sum()) - run["stored"],
    }


def documented_limit_naive(n: int) -> dict[str, Any]:
    """(d2) the naive loop, bad rows filtered out, against Flameup's documented 120 a minute."""
    df, valid = make_frame(n, seed=1)
    with server(rate_limit=DOCUMENTED_LIMIT) as srv:
        loop = naive(*only_valid(df, valid), srv)
    minimum = math.ceil(valid.sum() / BATCH)
    return {
        "d2_limit_per_minute": DOCUMENTED_LIMIT,
        "d2_min_requests": minimum,
        # budget pacing: a window's budget at once, then the next window
        "d2_ours_min_seconds": (math.ceil(minimum / DOCUMENTED_LIMIT) - 1) * 60,
        **naive_figures("d2", loop),
    }


def main(quick: bool = False) -> dict[str, Any]:
    """Run every part; return the figures (ints and floats) in one flat dict."""
    started = time.perf_counter()
    figures: dict[str, Any] = {"quick": int(quick)}
    figures.update(quota_use(5_000 if quick else 20_000))
    figures.update(documented_limit_naive(20_000))
    figures.update(pacing(300 if quick else 1_450))
    figures.update({"c_limit_per_minute": LATENCY_LIMIT, "c_latency_s": LATENCY})
    for concurrency in LATENCY_CONCURRENCY:
        figures.update(latency_throughput(400 if quick else 600, concurrency))
    figures["total_seconds"] = time.perf_counter() - started
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


# -- the table ---------------------------------------------------------------------------------


def table(f: dict[str, Any]) -> str:
    """The figures side by side: ours, the baseline, the ratio, the target."""
    min_a = f["a_min_requests"]
    rows = [
        ("(a) requests, no faults", f["a_requests"], f"{min_a} minimum", f["a_ratio"], "1.00"),
        (
            "(a) requests, soak faults",
            f["a_faults_requests"],
            f"{min_a} minimum",
            f["a_faults_ratio"],
            "-",
        ),
        (
            "(b) most in any 60 s, rate_limit cap, 429s: " + str(f["b_http_429"]),
            f["b_most_in_a_minute"],
            f"{f['b_expected_in_a_minute']} cap/job",
            f["b_ratio"],
            "1.000, 0 429s",
        ),
    ]
    rows += [
        (
            f"(c) requests/min, {f['c_latency_s']:g} s latency, x{n}, 429s: {f[f'c{n}_http_429']}",
            f[f"c{n}_rate_per_minute"],
            f"{f['c_limit_per_minute']} allowed",
            f[f"c{n}_ratio"],
            ">= 0.90",
        )
        for n in LATENCY_CONCURRENCY
    ]
    lines = [f"{'figure':<52}{'ours':>10}  {'baseline':<20}{'ratio':>7}  target"]
    lines += [
        f"{name:<52}{_fmt(value):>10}  {base:<20}{ratio:>7.3f}  {target}"
        for name, value, base, ratio, target in rows
    ]
    lines.append("")
    lines.append(
        f"{'rows lost (valid rows not stored)':<52}{'ours':>10}  {'naive loop':>10}"
        f"  {'naive lost to: 429 / bad rows / 5xx+drops':<44}{'requests ours/naive'}"
    )
    lost = [
        ("(d0) 1% invalid rows sent as they are", f["a_rows_missing"], "d0", f["a_requests"]),
        ("(d1) valid rows, 1,200/min, the job of (b)", f["b_rows_missing"], "d1", f["b_requests"]),
        ("(d2) valid rows, documented 120/min", 0, "d2", f"{f['d2_min_requests']}*"),
        ("(d3) valid rows, soak faults", f["a_faults_rows_missing"], "d3", f["a_faults_requests"]),
    ]
    for name, ours_lost, d, ours_requests in lost:
        why = (
            f"{f[f'{d}_naive_lost_to_429']:,} / {f[f'{d}_naive_lost_to_bad_rows']:,}"
            f" / {f[f'{d}_naive_lost_to_errors']:,}"
        )
        lines.append(
            f"{name:<52}{ours_lost:>10,}  {f[f'{d}_naive_rows_missing']:>10,}  {why:<44}"
            f"{ours_requests} / {f[f'{d}_naive_requests']}"
        )
    lines.append(
        f"* (d2) ours: the minimum, as (a) measures; at 120/min that takes about"
        f" {f['d2_ours_min_seconds']:.0f} s and loses nothing (not run here)."
    )
    window = "crosses a 60 s window" if f["b_crosses_window"] else "inside one 60 s window"
    delivered = ", ".join(f"x{n}: {f[f'c{n}_rows_per_second']:,.0f}" for n in LATENCY_CONCURRENCY)
    lines.append(
        f"(b) ran {f['b_seconds']:.1f} s end to end ({window}); (c) rows/s end to end"
        f" {delivered}; whole benchmark {f['total_seconds']:.0f} s"
    )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run, under a minute")
    sys.stdout.write(table(main(quick=parser.parse_args().quick)) + "\n")
