"""How fast rows become request bodies: the column encoder against the way users do it today.

Every side starts from the same 9-column customer table (``bench_memory.customers``: ids,
emails, names, time zone, locale, plan, a float with 5% missing, a UTC timestamp) and ends
with JSON bodies of 100 people; the baseline everywhere is what users write today,
``to_dict("records")`` and ``json.dumps`` per 100 (``default=str`` for the timestamps):

- ``encode``: :func:`encode_people` then the bodies (what a run does after validation),
  against ``to_dict`` + ``json.dumps`` of the same frame;
- ``frame``: ``df.flameup.upsert(dry_run=True)``: a frame through the one engine (one
  chunk: validation, encoding, identity keys, result columns), against ``to_dict`` +
  ``json.dumps``;
- ``to_people``: ``df.flameup.to_people()`` (validation, encoding, and dicts decoded from the
  bytes), against ``to_dict`` alone plus ``json.dumps`` (the figure of the accessor issue);
- ``file``: ``upsert_file(path, dry_run=True)`` on a parquet file (reading, validation,
  encoding, identity keys, results), against ``pd.read_parquet`` + ``to_dict`` +
  ``json.dumps``; and the same dry run with a sync state, which adds the content hashes;
- ``planned``: what each Spark executor runs (``plan_batches`` over Spark's 10,000-row
  batches, gathered into pieces of 50,000, and its frames turned into Arrow as Spark does;
  JSON and content hashes built, as in a sync with a state), against the same baseline on the
  same rows;
- ``observers``: the same dry run with the OpenTelemetry API imported and neither it nor
  OpenLineage configured (as shipped: the observers check and step aside), against the same
  dry run with the observer hook bypassed; runs alternate, the median of each side is kept;
- ``polars``: for the record, polars' ``struct.json_encode`` of the same rows (not the bytes we
  send: it writes missing values as null and its own timestamp format), beside our encoder.

Run ``python -m benchmarks.bench_conversion`` (1,000,000 rows) or ``--quick`` (100,000 rows);
``main(quick)`` returns the figures. One core, same run, same rows; the machine is shared, so
read the ratios, not the times.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flameup_pandas import upsert_file
from flameup_pandas._people.encode import encode_people
from flameup_pandas._people.outgoing import encode_batch
from flameup_pandas._run.plan import BATCH_SIZE, Rules

from .bench_memory import customer_file, customers

BATCH = 100
SPARK_BATCH = 10_000


def make_frame(n_rows: int) -> pd.DataFrame:
    """The customer table as a pandas frame (``userId`` named so)."""
    frame: pd.DataFrame = customers(0, n_rows).to_pandas()
    return frame.rename(columns={"user_id": "userId"})


def _bodies(records: list[dict[str, Any]]) -> int:
    return sum(
        len(json.dumps({"people": records[i : i + BATCH]}, default=str))
        for i in range(0, len(records), BATCH)
    )


def _baseline(df: pd.DataFrame) -> int:
    return _bodies(df.to_dict("records"))


def _encode(df: pd.DataFrame) -> int:
    payloads = encode_people(df)
    positions = np.flatnonzero(payloads.present)
    return sum(
        len(encode_batch(payloads.outgoing(positions[start : start + BATCH_SIZE])))
        for start in range(0, len(positions), BATCH_SIZE)
    )


def _to_people(df: pd.DataFrame) -> int:
    return len(df.flameup.to_people())


def _dict_and_json(df: pd.DataFrame) -> int:
    return _bodies(df.to_dict("records"))


def _file_baseline(path: Path) -> int:
    return _bodies(pd.read_parquet(path).to_dict("records"))


def _planned(df: pd.DataFrame) -> int:
    """What a Spark executor runs: Spark's 10,000-row Arrow batches (with the ``row`` column,
    as ``mapInArrow`` hands them over) through ``plan_batches``, which gathers them into
    pieces of 50,000 and hands each back in Spark's types. A sync with a state: JSON and
    content hashes are built. Turning the frame into batches is timed too (a few ms)."""
    import pyarrow as pa

    from flameup_pandas.spark._executors import plan_batches

    def batches() -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.append_column("row", pa.array(np.arange(len(df), dtype=np.int64)))
        yield from table.to_batches(max_chunksize=SPARK_BATCH)

    rules = Rules(mapping={"userId": "userId"})
    return sum(piece.num_rows for piece in plan_batches(batches(), rules=rules))


def _polars(df: pd.DataFrame) -> int:
    import polars as pl

    frame = pl.from_pandas(df)
    return len(frame.select(pl.struct(pl.all()).struct.json_encode()).to_series())


def _timed(fn: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def _pair(figures: dict[str, Any], name: str, ours: float, base: float, n_rows: int) -> None:
    figures[f"{name}_seconds"] = round(ours, 3)
    figures[f"{name}_rows_per_second"] = round(n_rows / ours)
    figures[f"{name}_baseline_seconds"] = round(base, 3)
    figures[f"{name}_baseline_rows_per_second"] = round(n_rows / base)
    figures[f"{name}_speedup"] = round(base / ours, 1)


def main(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; returns rows, seconds and rows/s of each side, and the ratios."""
    n_rows = 100_000 if quick else 1_000_000
    df = make_frame(n_rows)
    figures: dict[str, Any] = {"rows": n_rows, "columns": df.shape[1]}
    ours, base = _timed(_encode, df), _timed(_baseline, df)
    figures["ours_seconds"], figures["baseline_seconds"] = round(ours, 3), round(base, 3)
    figures["ours_rows_per_second"] = round(n_rows / ours)
    figures["baseline_rows_per_second"] = round(n_rows / base)
    figures["speedup"] = round(base / ours, 1)
    # warm, as the file figure is: pandera's first validation in a process imports its
    # hypothesis strategies (and with them pytest and trio), about 0.5 s, once
    _to_people(df.head(1_000))
    _pair(figures, "to_people", _timed(_to_people, df), _timed(_dict_and_json, df), n_rows)
    _pair(figures, "frame", _timed(_frame_dry_run, df), _timed(_baseline, df), n_rows)
    path = customer_file(n_rows)
    upsert_file(path, dry_run=True, progress=False)  # warm: imports, page cache
    base = _timed(_file_baseline, path)
    _pair(figures, "file", _timed(_dry_run, path, None), base, n_rows)
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state.parquet"
        _pair(figures, "file_state", _timed(_dry_run, path, state), base, n_rows)
    figures.update(_observers(path, 3 if quick else 5))
    if importlib.util.find_spec("pyspark") is not None:
        _pair(figures, "planned", _timed(_planned, df), _timed(_baseline, df), n_rows)
    if importlib.util.find_spec("polars") is not None:
        figures["polars_json_encode_seconds"] = round(_timed(_polars, df), 3)
        figures["encode_only_seconds"] = round(_timed(encode_people, df), 3)
    return figures


def _observers(path: Path, pairs: int) -> dict[str, Any]:
    """The dry run with the observers unconfigured against the same with their hook bypassed,
    alternating; medians of each side and their ratio."""
    from flameup_pandas._send import observe

    if importlib.util.find_spec("opentelemetry") is not None:
        import opentelemetry.trace  # noqa: F401 - installed and imported, nothing configured
    shipped = observe.run
    ours, base = [], []
    try:
        for _ in range(pairs):
            ours.append(_timed(_dry_run, path, None))
            observe.run = lambda kind, operation, source, delivery, call: call()  # type: ignore[assignment]
            base.append(_timed(_dry_run, path, None))
            observe.run = shipped
    finally:
        observe.run = shipped
    mine, theirs = float(np.median(ours)), float(np.median(base))
    # the hooks' own cost, free of the machine's noise: many runs and requests that do nothing
    calls = 20_000
    start = time.perf_counter()
    for _ in range(calls):
        observe.run("people", "dry_run", path, None, lambda: None)
    per_run = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for _ in range(calls):
        observe.request(lambda: None, waited=0.0, retries=0)  # type: ignore[arg-type,return-value]
    return {
        "observers_seconds": round(mine, 3),
        "observers_baseline_seconds": round(theirs, 3),
        "observers_overhead": round(mine / theirs, 3),
        "observers_hook_us_per_run": round(per_run * 1e6, 1),
        "observers_hook_us_per_request": round((time.perf_counter() - start) / calls * 1e6, 2),
        "observers_dry_run_us": round(theirs * 1e6),
        "observers_hook_percent": float(f"{100 * per_run / theirs:.2g}"),
    }


def _frame_dry_run(df: pd.DataFrame) -> None:
    df.flameup.upsert(dry_run=True, progress=False)


def _dry_run(path: Path, state: Path | None) -> None:
    upsert_file(path, dry_run=True, progress=False, state=state)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    figures = main(quick=parser.parse_args().quick)
    width = max(map(len, figures))
    sys.stdout.write("".join(f"{k:<{width}}  {v:,}\n" for k, v in figures.items()))
