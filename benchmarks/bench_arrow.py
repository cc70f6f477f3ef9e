"""``upsert_arrow`` from a DuckDB query: peak memory against ``.df()``, speed against a file.

One query generates a 9-column customer table in DuckDB (user_id, email, first_name,
last_name, timezone, locale, plan, lifetime_value, signed_up_at). Each job runs in a fresh
subprocess, measured by its own high-water mark (``VmHWM``), so peaks never mix:

- ``df``: ``duckdb.sql(query).df()``, the result materialised as pandas: the baseline for
  memory;
- ``stream``: ``upsert_arrow(duckdb.sql(query), dry_run=True, results=...)``: the relation
  streamed through validation, conversion and results, everything but the network;
- ``file``: ``upsert_file(path, dry_run=True, results=...)`` on the same rows written to
  parquet by DuckDB beforehand: the baseline for speed (rows a second).

Run ``python -m benchmarks.bench_arrow`` (5,000,000 rows) or ``--quick`` (300,000).
``main(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_memory import CACHE, FIRST, LAST, LOCALES, PLANS, ZONES, _status_mib

TARGET_MEMORY_RATIO = 0.2
TARGET_SPEED_RATIO = 0.9


def _pick(values: list[str], salt: int) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"[{listed}][1 + (hash(i + {salt}) % {len(values)})::BIGINT]"


def customers_query(rows: int) -> str:
    """A query producing ``rows`` customers, the same rows every time."""
    return f"""
        SELECT 'u' || i AS user_id,
               lower({_pick(FIRST, 1)}) || '.' || i || '@example.com' AS email,
               {_pick(FIRST, 1)} AS first_name,
               {_pick(LAST, 2)} AS last_name,
               {_pick(ZONES, 3)} AS timezone,
               {_pick(LOCALES, 4)} AS locale,
               {_pick(PLANS, 5)} AS plan,
               CASE WHEN hash(i) % 20 = 0 THEN NULL
                    ELSE round((hash(i + 6) % 100000)::BIGINT / 100.0, 2) END AS lifetime_value,
               TIMESTAMPTZ '2018-01-01 00:00:00+00'
                   + to_seconds((hash(i + 7) % (7 * 365 * 86400))::BIGINT) AS signed_up_at
        FROM range({rows}) t(i)
    """


def parquet_of(rows: int) -> Path:
    """The query's rows as a parquet file (cached in the temp dir), written by DuckDB."""
    import duckdb

    path = CACHE / f"duckdb-customers-{rows}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with duckdb.connect() as con:
            con.execute(
                f"COPY ({customers_query(rows)}) TO '{partial}' "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)"
            )
        os.replace(partial, path)
    return path


def _child(mode: str, rows: int, path: str, results: str) -> dict[str, Any]:
    """Run one job in this (fresh) process; its own peak RSS, seconds and rows."""
    import duckdb

    from flameup_pandas import upsert_arrow, upsert_file

    before = _status_mib("VmRSS")
    started = time.perf_counter()
    con = duckdb.connect()
    if mode == "df":
        done = len(con.sql(customers_query(rows)).df())
    elif mode == "stream":
        summary = upsert_arrow(
            con.sql(customers_query(rows)), dry_run=True, results=results, progress=False
        )
        done = summary.to_dict()["rows"]
    else:
        summary = upsert_file(path, dry_run=True, results=results, progress=False)
        done = summary.to_dict()["rows"]
    seconds = time.perf_counter() - started
    return {
        "rows": done,
        "seconds": round(seconds, 2),
        "rows_per_second": round(done / seconds),
        "rss_before_mib": round(before, 1),
        "peak_mib": round(_status_mib("VmHWM"), 1),
    }


def measure(mode: str, rows: int, path: Path) -> dict[str, Any]:
    """``mode`` run in a subprocess of its own; its figures."""
    with tempfile.TemporaryDirectory(prefix="flameup-bench-") as tmp:
        command = [sys.executable, "-m", "benchmarks.bench_arrow", "--child", mode, str(rows)]
        command += [str(path), str(Path(tmp) / "results.parquet")]
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            check=False,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(quick: bool = False) -> dict[str, Any]:
    """Measure the three jobs side by side; the figures as a dict."""
    rows = 300_000 if quick else 5_000_000
    path = parquet_of(rows)
    df = measure("df", rows, path)
    stream = measure("stream", rows, path)
    file = measure("file", rows, path)
    return {
        "rows": rows,
        "df_peak_mib": df["peak_mib"],
        "df_seconds": df["seconds"],
        "stream_peak_mib": stream["peak_mib"],
        "stream_seconds": stream["seconds"],
        "stream_rss_before_mib": stream["rss_before_mib"],
        "memory_ratio": round(stream["peak_mib"] / df["peak_mib"], 3),
        "stream_rows_per_second": stream["rows_per_second"],
        "file_rows_per_second": file["rows_per_second"],
        "file_peak_mib": file["peak_mib"],
        "speed_ratio": round(stream["rows_per_second"] / file["rows_per_second"], 3),
        "target_memory_ratio": TARGET_MEMORY_RATIO,
        "target_speed_ratio": TARGET_SPEED_RATIO,
    }


def _report(figures: dict[str, Any]) -> str:
    rows = figures["rows"]
    return "\n".join(
        [
            f"{rows:,} rows from DuckDB",
            f"peak RSS: upsert_arrow dry run {figures['stream_peak_mib']:,.0f} MiB, "
            f".df() {figures['df_peak_mib']:,.0f} MiB: ratio {figures['memory_ratio']:.3f} "
            f"(target <= {TARGET_MEMORY_RATIO})",
            f"rows/s: upsert_arrow {figures['stream_rows_per_second']:,}, upsert_file on the "
            f"same rows as parquet {figures['file_rows_per_second']:,}: ratio "
            f"{figures['speed_ratio']:.3f} (target >= {TARGET_SPEED_RATIO})",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300,000 rows instead of 5,000,000")
    parser.add_argument(
        "--child", nargs=4, metavar=("MODE", "ROWS", "PATH", "RESULTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        mode, rows, path, results = args.child
        print(json.dumps(_child(mode, int(rows), path, results)))
    else:
        print(_report(main(quick=args.quick)))
