"""Spark sync of a large table, then of the same table with 1% changed, beside upsert_file.

A customer table is generated in Spark (``spark.range`` plus columns), synced with
``flameup_pandas.spark.upsert(sdf, state=...)`` into a local Flameup server (rate limit off,
run in its own process so it does not share the driver's GIL), then synced again after the
``plan`` of every hundredth row changed. The same two tables, written to parquet, go through
the pandas file path (``upsert_file(path, state=...)``) into a second fresh server. For each
run it prints the rows that reached the driver (Spark) or were read by the one process
(pandas), the requests made, and the wall time::

    python -m benchmarks.bench_spark            # 5,000,000 rows (sending them takes minutes)
    python -m benchmarks.bench_spark --quick    # 200,000 rows

Planning alone (no server, nothing sent), the figure issue 17 asks of the Spark path: a dry
run, ``flameup_pandas.spark.upsert(sdf, dry_run=True)``, of the first table, and one with a sync
state of the first table over the second (1% changed: the diff of a nightly sync), beside
``upsert_file(path, dry_run=True)`` of the same parquet files, with and without that state.
Each is timed ``REPEATS`` times (the machine is shared). The state is made here, without a
server, from the executors' own planning (as if every valid row had been sent)::

    python -m benchmarks.bench_spark --dry-run          # 5,000,000 rows
    python -m benchmarks.bench_spark --dry-run --quick  # 200,000 rows
    python -m benchmarks.bench_spark --dry-run --keep DIR   # tables and state kept in DIR

The driver's memory while the rows to send reach it (fetched, not sent; a 1 GiB driver),
against its heap before, after a GC each time::

    python -m benchmarks.bench_spark --driver-heap          # 5,000,000 rows

With ``--keep``, a second run finds the tables and state in ``DIR`` and only times the dry
runs, with the public API alone: run this file as a script with ``PYTHONPATH`` pointing at
another checkout to time that version on the very same files.

Spark runs in ``local[2]``; ``main(quick)`` returns the figures as a dict (the dry runs'
under ``dry_*`` keys), ``dry_run_main(quick, keep)`` those of the dry runs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flameup_pandas
from flameup_pandas import upsert_file

FULL_ROWS = 5_000_000
QUICK_ROWS = 200_000
CHANGED_EVERY = 100  # 1% of the rows
REPEATS = 2


@contextmanager
def local_server(folder: Path) -> Iterator[dict[str, Any]]:
    """A local Flameup server (a rate limit never reached, SQLite file) in a child process."""
    command = [
        sys.executable,
        "-m",
        "flameup_pandas.testing",
        "--rate-limit",
        "1000000",  # announced in the headers as Flameup does, never reached
        "--db",
        str(folder / "flameup.db"),
    ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        found: dict[str, str] = {}
        assert child.stdout is not None
        while len(found) < 2:
            line = child.stdout.readline()
            if not line:
                raise RuntimeError("the local Flameup server did not start")
            name, _, value = line.strip().partition("=")
            if name in ("FLAMEUP_BASE_URL", "FLAMEUP_API_KEY"):
                found[name] = value
        yield {
            "base_url": found["FLAMEUP_BASE_URL"],
            "api_key": found["FLAMEUP_API_KEY"],
            "rate_limit": None,
            "allow_http": True,
            "concurrency": 4,
        }
    finally:
        child.terminate()
        child.wait(timeout=30)


def spark_session(partitions: int, memory: str = "3g") -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("flameup-bench-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.driver.memory", memory)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def customers(spark: Any, n_rows: int, partitions: int, changed: bool) -> Any:
    """``n_rows`` customers; with ``changed``, every hundredth has another plan."""
    from pyspark.sql import functions as f

    ids = f.col("id")
    plan = f.when(ids % 2 == 0, "pro").otherwise("free")
    if changed:
        plan = f.when(ids % CHANGED_EVERY == 7, "enterprise").otherwise(plan)
    return spark.range(n_rows, numPartitions=partitions).select(
        f.concat(f.lit("u"), ids.cast("string")).alias("user_id"),
        f.concat(f.lit("person"), ids.cast("string"), f.lit("@example.com")).alias("email"),
        f.concat(f.lit("Name"), ids.cast("string")).alias("first_name"),
        plan.alias("plan"),
        (ids / 10).alias("score"),
    )


def timed_spark(sdf: Any, state: Path, target: dict[str, Any]) -> dict[str, Any]:
    from flameup_pandas import spark as flameup_spark

    started = time.perf_counter()
    run = flameup_spark.upsert(sdf, state=state, **target)
    figures = run.summary.to_dict()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "to_driver": figures["rows_to_driver"],
        "requests": figures["requests"],
        "sent_ok": figures["created"] + figures["updated"],
    }


def timed_file(path: Path, state: Path, rows: int, target: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    figures = upsert_file(path, state=state, progress=False, **target).to_dict()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "to_driver": rows,
        "requests": figures["requests"],
        "sent_ok": figures["created"] + figures["updated"],
    }


def write_tables(spark: Any, folder: Path, rows: int, partitions: int) -> dict[str, Any]:
    """The first and second tables as parquet datasets in ``folder`` (kept if already there)."""
    tables = {}
    for name, changed in (("first", False), ("second", True)):
        path = folder / f"{name}.parquet"
        if not (path / "_SUCCESS").exists():
            customers(spark, rows, partitions, changed).write.mode("overwrite").parquet(str(path))
        tables[name] = spark.read.parquet(str(path))
    return tables


def write_state(sdf: Any, path: Path) -> None:
    """A sync state of ``sdf`` as if each valid row had been sent (ids ``fp-<row>``), made from
    the executors' planning without a server (the library's own functions, so it needs the
    current version; ``--keep`` lets another version reuse the file)."""
    import functools

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as f

    from flameup_pandas._run.plan import Rules
    from flameup_pandas._run.state import STATE_SCHEMA
    from flameup_pandas.spark._executors import PLANNED_DDL, plan_batches

    plan = functools.partial(plan_batches, rules=Rules())
    planned = sdf.select(f.monotonically_increasing_id().alias("row"), *sdf.columns)
    sent = (
        planned.mapInArrow(plan, PLANNED_DDL)
        .where(f.col("flameup_status").isNull())
        .select(
            "identity",
            "identity_hash",
            "content_hash",
            f.concat(f.lit("fp-"), f.col("row").cast("string")).alias("flameup_id"),
        )
    )
    staging = path.with_name(path.name + ".parts")
    sent.write.mode("overwrite").parquet(str(staging))
    table = pq.read_table(staging)
    when = pa.array([time.time_ns() // 1000] * table.num_rows, pa.int64())
    table = table.append_column("synced_at", when.cast(pa.timestamp("us", tz="UTC")))
    for name in ("fields", "sent", "source_hash"):  # none kept: as a Spark run records them
        table = table.append_column(name, pa.nulls(table.num_rows, STATE_SCHEMA.field(name).type))
    pq.write_table(table.select(STATE_SCHEMA.names).cast(STATE_SCHEMA), path)


def dry_runs(tables: dict[str, Any], folder: Path, repeats: int = REPEATS) -> dict[str, Any]:
    """Wall time of each dry run (Spark and file, without and with the state), ``repeats``
    times each in turn; ``dry_<run>_seconds`` is the best, ``dry_<run>_all`` lists them all."""
    from flameup_pandas import spark as flameup_spark

    state = folder / "state.parquet"
    runs = {
        "spark": lambda: flameup_spark.upsert(tables["first"], dry_run=True).summary,
        "spark_state": lambda: (
            flameup_spark.upsert(tables["second"], dry_run=True, state=state).summary
        ),
        "file": lambda: upsert_file(folder / "first.parquet", dry_run=True, progress=False),
        "file_state": lambda: upsert_file(
            folder / "second.parquet", dry_run=True, progress=False, state=state
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            summary = run()
            times[name].append(round(time.perf_counter() - started, 1))
            out[f"dry_{name}_would_send"] = summary.to_dict()["would_send"]
            print(f"dry run {name}: {times[name][-1]} s", file=sys.stderr, flush=True)
    for name, seconds in times.items():
        out[f"dry_{name}_seconds"] = min(seconds)
        out[f"dry_{name}_all"] = seconds
    return out


def dry_run_main(quick: bool = False, keep: Path | None = None) -> dict[str, Any]:
    """The dry runs alone; with ``keep``, tables and state are made there once and reused."""
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    rows = QUICK_ROWS if quick else FULL_ROWS
    partitions = 4 if quick else 16
    out: dict[str, Any] = {"rows": rows, "changed_rows": rows // CHANGED_EVERY}
    out["library"] = str(Path(flameup_pandas.__file__).parent)  # which checkout was timed
    spark = spark_session(partitions)
    try:
        with tempfile.TemporaryDirectory(prefix="flameup-bench-spark-") as tmp:
            folder = Path(tmp) if keep is None else keep
            folder.mkdir(parents=True, exist_ok=True)
            tables = write_tables(spark, folder, rows, partitions)
            if not (folder / "state.parquet").exists():
                write_state(tables["first"], folder / "state.parquet")
            out.update(dry_runs(tables, folder))
    finally:
        spark.stop()
    return out


def main(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    rows = QUICK_ROWS if quick else FULL_ROWS
    partitions = 4 if quick else 16
    out: dict[str, Any] = {"rows": rows, "changed_rows": rows // CHANGED_EVERY}
    spark = spark_session(partitions)
    try:
        with tempfile.TemporaryDirectory(prefix="flameup-bench-spark-") as tmp:
            folder = Path(tmp)
            tables = write_tables(spark, folder, rows, partitions)
            write_state(tables["first"], folder / "state.parquet")
            out.update(dry_runs(tables, folder))
            (folder / "spark").mkdir()
            with local_server(folder / "spark") as target:
                for name in ("first", "second"):
                    figures = timed_spark(tables[name], folder / "spark.state", target)
                    print(f"spark.upsert {name}: {figures}", file=sys.stderr, flush=True)
                    out.update({f"spark_{name}_{k}": v for k, v in figures.items()})
            (folder / "pandas").mkdir()
            with local_server(folder / "pandas") as target:
                for name in ("first", "second"):
                    figures = timed_file(
                        folder / f"{name}.parquet", folder / "pandas.state", rows, target
                    )
                    print(f"upsert_file {name}: {figures}", file=sys.stderr, flush=True)
                    out.update({f"pandas_{name}_{k}": v for k, v in figures.items()})
    finally:
        spark.stop()
    return out


def driver_heap(quick: bool = False, heap: str = "1g") -> dict[str, Any]:
    """The driver's JVM heap (after a GC) while every row of the first table reaches it to be
    sent, against the heap before: nothing is sent (no server), the rows are only fetched."""
    from flameup_pandas._run.options import split_options
    from flameup_pandas.spark import _decide, _driver, _executors

    warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
    rows = QUICK_ROWS if quick else FULL_ROWS
    spark = spark_session(4 if quick else 16, memory=heap)
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()

    def used() -> int:
        spark.sparkContext._jvm.java.lang.System.gc()
        return int(runtime.totalMemory() - runtime.freeMemory()) >> 20

    try:
        sdf = customers(spark, rows, 4 if quick else 16, changed=False)
        rules, _, _ = split_options("bench", {})
        needs = _executors.Needs(payloads=True, hashes=True, fields=True)
        decided = _decide.decide(_executors.planned(sdf, rules, needs), None, with_state=True)
        decided = _decide.checkpoint(decided)
        to_send = _decide.statuses(decided, dry_run=False).where("flameup_status is null")
        total, before, peak, fetched = to_send.count(), used(), 0, 0
        started = time.monotonic()
        for number, chunk in enumerate(_driver._chunks(to_send, total, with_state=True)):
            fetched += len(chunk.plan.labels)
            if number % 50 == 0:
                peak = max(peak, used())
        seconds = time.monotonic() - started
        return {
            "rows": fetched,
            "heap": heap,
            "before_mib": before,
            "peak_mib": peak,
            "after_mib": used(),
            "seconds": round(seconds, 1),
        }
    finally:
        spark.stop()


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['rows']:,} rows; the second run after {figures['changed_rows']:,} changed",
        f"{'run':<22}{'rows to driver':>16}{'requests':>12}{'sent ok':>12}{'wall s':>10}",
    ]
    for path, label in (("spark", "spark.upsert"), ("pandas", "upsert_file")):
        for name in ("first", "second"):
            f = {
                k.removeprefix(f"{path}_{name}_"): v
                for k, v in figures.items()
                if k.startswith(f"{path}_{name}_")
            }
            lines.append(
                f"{label + ' ' + name:<22}{f['to_driver']:>16,}{f['requests']:>12,}"
                f"{f['sent_ok']:>12,}{f['seconds']:>10}"
            )
    return "\n".join([*lines, dry_run_report(figures)])


def dry_run_report(figures: dict[str, Any]) -> str:
    lines = [
        f"dry runs (planning only), {figures['rows']:,} rows; with a state: "
        f"{figures['changed_rows']:,} changed",
        f"{'run':<34}{'would send':>12}{'best s':>10}  all s",
    ]
    if "library" in figures:
        lines.insert(1, f"flameup_pandas from {figures['library']}")
    for name, label in (
        ("spark", "spark.upsert(dry_run=True)"),
        ("spark_state", "spark.upsert(dry_run, state)"),
        ("file", "upsert_file(dry_run=True)"),
        ("file_state", "upsert_file(dry_run, state)"),
    ):
        lines.append(
            f"{label:<34}{figures[f'dry_{name}_would_send']:>12,}"
            f"{figures[f'dry_{name}_seconds']:>10}  {figures[f'dry_{name}_all']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--dry-run", action="store_true", help="time the dry runs alone")
    parser.add_argument("--keep", type=Path, help="with --dry-run: make or reuse files here")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--driver-heap", action="store_true", help="the driver's heap while the rows reach it"
    )
    args = parser.parse_args()
    if args.driver_heap:
        figures = driver_heap(args.quick)
        print(
            ", ".join(
                f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in figures.items()
            )
        )
    elif args.dry_run:
        figures = dry_run_main(args.quick, args.keep)
        print(dry_run_report(figures))
    else:
        figures = main(args.quick)
        print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
