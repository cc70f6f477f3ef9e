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

Spark runs in ``local[2]``; ``main(quick)`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
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

from flameup_pandas import upsert_file

FULL_ROWS = 5_000_000
QUICK_ROWS = 200_000
CHANGED_EVERY = 100  # 1% of the rows


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


def spark_session(partitions: int) -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("flameup-bench-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.driver.memory", "3g")
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
            tables = {}
            for name, changed in (("first", False), ("second", True)):
                path = str(folder / f"{name}.parquet")
                customers(spark, rows, partitions, changed).write.parquet(path)
                tables[name] = spark.read.parquet(path)
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
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    print(report(main(parser.parse_args().quick)))
