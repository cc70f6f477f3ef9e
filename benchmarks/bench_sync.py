"""Incremental sync: requests of a rerun after 1% of rows changed, against the full first run.

A customer table (the one ``bench_memory`` generates) is written to parquet and synced with
``upsert_file(path, state=...)`` into a local Flameup server (rate limit off); then the
``plan`` trait of 1% of the rows, picked at random, is changed and the file synced again with
the same state, the nightly resync, through the same server announcing Flameup's 120 requests
a minute. Its baseline is a dry run of the same changed file (no state), timed in the same
run. Each run is a process of its own, as a job is, beside the server's (Flameup is not in the
job's process: a server in it would take the job's GIL for every request it answers). Prints
the requests, rows sent and wall time of both runs, the resync against the dry run, the size of
the state file, and how fast content hashes fingerprint the people::

    python -m benchmarks.bench_sync            # 1,000,000 rows
    python -m benchmarks.bench_sync --quick    # 100,000 rows

``main(quick)`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_memory import PLANS, ROW_GROUP, customers
from flameup_pandas._people.encode import encode_people
from flameup_pandas._people.mapping import canonical_frame, resolve_mapping
from flameup_pandas.testing import DOCUMENTED_LIMIT, FlameupServer

NEVER_REACHED = 1_000_000
"""The local server's rate limit: announced in its headers, as Flameup does, never reached (a
server without one sends no rate headers, and the client then assumes the documented 120 a
minute)."""

CHANGED_FRACTION = 0.01


def customer_table(n_rows: int) -> pa.Table:
    """``n_rows`` customers, generated a row group at a time."""
    return pa.concat_tables(
        customers(start, min(ROW_GROUP, n_rows - start)) for start in range(0, n_rows, ROW_GROUP)
    )


def change_plans(table: pa.Table, fraction: float, seed: int = 1) -> tuple[pa.Table, int]:
    """``table`` with the plan of ``fraction`` of its rows (random, distinct) set to another."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(table.num_rows, size=max(1, round(table.num_rows * fraction)), replace=False)
    plans = np.asarray(table["plan"].to_pylist(), dtype=object)
    following = {plan: PLANS[(i + 1) % len(PLANS)] for i, plan in enumerate(PLANS)}
    plans[rows] = [following[p] for p in plans[rows]]
    column = table.schema.get_field_index("plan")
    return table.set_column(column, "plan", pa.array(plans, pa.string())), len(rows)


RUN = textwrap.dedent(
    """
    import json, sys, time
    from flameup_pandas import upsert_file

    path, state = sys.argv[1:]
    started = time.perf_counter()
    if state:  # the key and URL from FLAMEUP_API_KEY and FLAMEUP_BASE_URL
        summary = upsert_file(path, state=state, rate_limit=None, progress=False).to_dict()
    else:
        summary = upsert_file(path, dry_run=True, progress=False).to_dict()
    summary["wall_s"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary))
    """
)


def _run(path: Path, state: Path | None, server: FlameupServer | None) -> dict[str, Any]:
    """The summary of ``upsert_file(path, state=state)`` (a dry run without a server), run in
    a process of its own, and its seconds (``wall_s``, from the call to its return)."""
    env = dict(os.environ)
    if server is not None:
        env |= {"FLAMEUP_API_KEY": server.api_key, "FLAMEUP_BASE_URL": server.base_url}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(path), str(state or "")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return summary


def _sync(path: Path, state: Path, server: FlameupServer) -> dict[str, Any]:
    return _run(path, state, server)


def _dry_run(path: Path) -> float:
    """Seconds of a dry run of the file (reading, validating, encoding; no state)."""
    return float(_run(path, None, None)["wall_s"])


def hash_speed(table: pa.Table) -> tuple[int, float]:
    """People and seconds the content hashes of the table's people take (from their bytes,
    as a run takes them)."""
    frame = table.to_pandas()
    payloads = encode_people(canonical_frame(frame, resolve_mapping(list(frame.columns))))
    started = time.perf_counter()
    payloads.content_hashes()
    return len(payloads), time.perf_counter() - started


def main(quick: bool = False) -> dict[str, Any]:
    """Sync, change 1%, sync again; the figures of both runs as a dict."""
    n_rows = 100_000 if quick else 1_000_000
    table = customer_table(n_rows)
    changed, n_changed = change_plans(table, CHANGED_FRACTION)
    with tempfile.TemporaryDirectory(prefix="flameup-sync-") as tmp:
        first_file, second_file, state, db = (
            Path(tmp) / name for name in ("v1.parquet", "v2.parquet", "state.parquet", "flameup.db")
        )
        pq.write_table(table, first_file, row_group_size=ROW_GROUP)
        pq.write_table(changed, second_file, row_group_size=ROW_GROUP)
        with FlameupServer(rate_limit=NEVER_REACHED, db=db) as server:
            first = _sync(first_file, state, server)
        state_bytes = state.stat().st_size
        dry_seconds = _dry_run(second_file)
        with FlameupServer(rate_limit=DOCUMENTED_LIMIT, db=db) as server:
            second = _sync(second_file, state, server)
    people, hash_s = hash_speed(table)
    sent_first = first["created"] + first["updated"]
    sent_second = second["created"] + second["updated"]
    return {
        "rows": n_rows,
        "changed_rows": n_changed,
        "first_requests": first["requests"],
        "first_sent": sent_first,
        "first_seconds": first["wall_s"],
        "second_requests": second["requests"],
        "second_sent": sent_second,
        "second_skipped": second["skipped"],
        "second_seconds": second["wall_s"],
        "dry_run_seconds": dry_seconds,
        "resync_over_dry_run": round(second["wall_s"] / dry_seconds, 2),
        "requests_ratio": round(second["requests"] / first["requests"], 4),
        "target_ratio": CHANGED_FRACTION,
        "state_bytes": state_bytes,
        "state_bytes_per_person": round(state_bytes / max(1, sent_first), 1),
        "hash_people": people,
        "hash_seconds": round(hash_s, 3),
        "hash_rows_per_second": round(people / hash_s),
    }


def _report(f: dict[str, Any]) -> str:
    first = f"1: full sync of {f['rows']:,} rows"
    second = f"2: after {f['changed_rows']:,} rows changed"
    return "\n".join(
        [
            f"{'run':<34}{'requests':>10}{'rows sent':>12}{'seconds':>10}",
            f"{first:<34}{f['first_requests']:>10,}{f['first_sent']:>12,}{f['first_seconds']:>10}",
            f"{second:<34}{f['second_requests']:>10,}{f['second_sent']:>12,}"
            f"{f['second_seconds']:>10}",
            f"run 2 / a dry run of its file ({f['dry_run_seconds']} s): "
            f"{f['resync_over_dry_run']} (target at most 2.5)",
            f"requests run 2 / run 1: {f['requests_ratio']} (target about {f['target_ratio']}); "
            f"{f['second_skipped']:,} rows skipped as unchanged",
            f"state file: {f['state_bytes'] / 2**20:.1f} MiB ({f['state_bytes_per_person']} bytes "
            f"a person); content_hashes: {f['hash_rows_per_second']:,} people/s "
            f"({f['hash_people']:,} in {f['hash_seconds']} s)",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    print(_report(main(quick=parser.parse_args().quick)))
