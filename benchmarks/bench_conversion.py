"""How fast frames become request bodies: our columnar conversion against the naive way.

Both sides start from the same 9-column frame and end with JSON bodies of 100 people:

- ours: ``build_people`` (columnar) and ``encode_batch`` (orjson) per 100;
- baseline: ``df.to_dict("records")`` and ``json.dumps`` per 100 (``default=str`` for the
  timestamps, which json cannot encode on its own).

Also times ``content_hashes`` over the people. Run ``python benchmarks/bench_conversion.py``
(1,000,000 rows) or with ``--quick`` (100,000 rows); ``main(quick)`` returns the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from flameup_pandas._payload import build_people, content_hashes, encode_batch

BATCH = 100


def make_frame(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A realistic frame: ids, emails, names, a plan, numbers, a timestamp, a flag."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n_rows)
    score = rng.random(n_rows) * 100
    score[rng.random(n_rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "userId": pd.Series(ids).map("u{}".format),
            "email": pd.Series(ids).map("user{}@example.com".format),
            "first_name": rng.choice(["Ann", "Bo", "Chidi", "Dana", "Eitan"], n_rows),
            "last_name": rng.choice(["Lee", "Okafor", "Silva", "Novak"], n_rows),
            "plan": rng.choice(["free", "pro", "team"], n_rows),
            "score": score,
            "logins": rng.integers(0, 10_000, n_rows),
            "signed_up": pd.Timestamp("2020-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 10**8, n_rows), unit="s"),
            "active": rng.random(n_rows) < 0.7,
        }
    )


def _ours(df: pd.DataFrame) -> int:
    people = build_people(df).people
    sent = [p for p in people if p is not None]
    return sum(len(encode_batch(sent[i : i + BATCH])) for i in range(0, len(sent), BATCH))


def _baseline(df: pd.DataFrame) -> int:
    records = df.to_dict("records")
    return sum(
        len(json.dumps({"people": records[i : i + BATCH]}, default=str))
        for i in range(0, len(records), BATCH)
    )


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; returns rows, seconds and rows per second of each side, and the ratio."""
    n_rows = 100_000 if quick else 1_000_000
    df = make_frame(n_rows)
    ours = _timed(_ours, df)
    baseline = _timed(_baseline, df)
    people = build_people(df).people
    hashing = _timed(content_hashes, people)
    return {
        "rows": n_rows,
        "columns": df.shape[1],
        "ours_seconds": round(ours, 3),
        "ours_rows_per_second": round(n_rows / ours),
        "baseline_seconds": round(baseline, 3),
        "baseline_rows_per_second": round(n_rows / baseline),
        "speedup": round(baseline / ours, 1),
        "hash_seconds": round(hashing, 3),
        "hash_rows_per_second": round(n_rows / hashing),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    figures = main(quick=parser.parse_args().quick)
    width = max(map(len, figures))
    sys.stdout.write("".join(f"{k:<{width}}  {v:,}\n" for k, v in figures.items()))
