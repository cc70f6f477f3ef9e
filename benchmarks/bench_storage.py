"""Object storage: the nightly resync with source and state on S3 beside the same run on local
files, the requests a run makes of the store, and memory streaming a parquet object from S3.

S3 is moto's server (``moto_server``, in a process of its own so it takes no time from the
run's) on loopback; its request log counts what each run asked of the store. Figures:

- ``resync``: 1% of the rows changed, source and state local, then the same on S3; both
  start from the state a first full sync leaves (:func:`built_state`; uploaded as is for S3,
  the format is the same), and the resyncs go to a server announcing Flameup's 120 requests
  a minute (the changed rows fit in one window's budget);
- ``store requests``: those of the S3 resync, and of a rerun with nothing to send;
- ``memory``: peak RSS of a dry run streaming the parquet object from S3, beside
  ``pd.read_parquet`` of the same file on disk (``bench_memory``'s subprocess measure).

Run ``python -m benchmarks.bench_storage`` (1,000,000 rows; 5,000,000 for memory) or
``--quick`` (100,000; 500,000: the memory ratio means little at that size, where the imports
are most of the peak). ``main(quick)`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.bench_memory import customer_file, measure
from benchmarks.bench_sync import change_plans, customer_table
from flameup_pandas import upsert_file
from flameup_pandas.testing import FlameupServer

BUCKET = "flameup-bench"


@contextmanager
def moto_server(log: Path) -> Iterator[dict[str, str]]:
    """``moto_server`` on a free loopback port; the AWS environment pointing at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    with open(log, "w") as out:
        server = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def store_requests(log: Path) -> dict[str, int]:
    """Requests in moto's log so far, by method."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        for method in ("GET", "PUT", "POST", "DELETE", "HEAD"):
            if f'"{method} /' in line:
                counts[method] = counts.get(method, 0) + 1
    return counts


def _sync(source: str, state: str, rate_limit: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flameup-bench-db-") as tmp:
        server = FlameupServer(rate_limit=rate_limit, db=Path(tmp) / "flameup.db")
        with server:
            started = time.perf_counter()
            summary = upsert_file(
                source,
                state=state,
                api_key=server.api_key,
                base_url=server.base_url,
                progress=False,
            ).to_dict()
    summary["wall_s"] = round(time.perf_counter() - started, 2)
    return summary


def built_state(source: Path, state: Path) -> None:
    """The state a first full sync of ``source`` leaves (every person created), recorded as the
    engine records it, without sending: the resyncs start from it, and building it through a
    server (a request per 100 rows) would be most of the benchmark's time."""
    from flameup_pandas._run.plan import Rules
    from flameup_pandas._run.sources import open_rows
    from flameup_pandas._run.state import SyncState
    from flameup_pandas._send.delivery import PersonOutcome

    rules = Rules()
    with SyncState.open(state) as sync:
        for frame in open_rows(str(source)).frames():
            plan = rules.plan(frame, labels=frame.index)
            pending = plan.pending()
            hashes = plan.skip_unchanged(sync)[pending]
            fields = plan.payloads.field_hashes(pending)
            lists = None if fields is None else fields.lists().to_pylist()
            created = [PersonOutcome("created", f"bench-{label}") for label in pending.tolist()]
            sync.record_outcomes(plan.keys_at(pending), hashes, created, lists)


def _upload(fs: Any, local: Path, key: str) -> str:
    fs.put_file(str(local), f"{BUCKET}/{key}")
    return f"s3://{BUCKET}/{key}"


def main(quick: bool = False) -> dict[str, Any]:
    rows, memory_rows = (100_000, 500_000) if quick else (1_000_000, 5_000_000)
    work = Path(tempfile.mkdtemp(prefix="flameup-bench-storage-"))
    log = work / "moto.log"
    try:
        table = customer_table(rows)
        first, second = work / "first.parquet", work / "second.parquet"
        pq.write_table(table, first, row_group_size=100_000)
        changed, n_changed = change_plans(table, 0.01)
        pq.write_table(changed, second, row_group_size=100_000)
        local_state, built = work / "local.state.parquet", work / "built.state.parquet"
        built_state(first, built)
        shutil.copyfile(built, local_state)
        local = _sync(str(second), str(local_state), 120)
        with moto_server(log) as env:
            os.environ.update(env)
            import fsspec

            fs = fsspec.filesystem("s3", skip_instance_cache=True)
            fs.mkdir(BUCKET)
            s3_second = _upload(fs, second, "c.parquet")
            s3_state = _upload(fs, built, "s3.state.parquet")
            before = sum(store_requests(log).values())
            remote = _sync(s3_second, s3_state, 120)
            resync = store_requests(log)
            resync_total = sum(resync.values()) - before
            before = sum(resync.values())
            idle = _sync(s3_second, s3_state, 120)
            after = store_requests(log)
            idle_total = sum(after.values()) - before
            idle_puts = after.get("PUT", 0) - resync.get("PUT", 0)
            big = customer_file(memory_rows)
            s3_big = _upload(fs, big, "big.parquet")
            baseline = measure("read_parquet", big)
            local_dry = measure("dry_run", big)
            s3_dry = measure("dry_run", s3_big, env)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": rows,
        "changed_rows": n_changed,
        "local_resync_s": local["wall_s"],
        "s3_resync_s": remote["wall_s"],
        "resync_ratio": round(remote["wall_s"] / local["wall_s"], 2),
        "resync_sent": remote.get("created", 0) + remote.get("updated", 0),
        "resync_store_requests": resync_total,
        "idle_store_requests": idle_total,
        "idle_store_puts": idle_puts,
        "idle_sent": idle.get("created", 0) + idle.get("updated", 0),
        "memory_rows": memory_rows,
        "read_parquet_peak_mib": baseline["peak_mib"],
        "local_stream_peak_mib": local_dry["peak_mib"],
        "s3_stream_peak_mib": s3_dry["peak_mib"],
        "s3_stream_ratio": round(s3_dry["peak_mib"] / baseline["peak_mib"], 2),
        "local_stream_ratio": round(local_dry["peak_mib"] / baseline["peak_mib"], 2),
        "s3_stream_s": s3_dry["seconds"],
        "local_stream_s": local_dry["seconds"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(main(parser.parse_args().quick), indent=2))
