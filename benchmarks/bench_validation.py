"""Validation speed: the stricter email rules beside the previous pattern, in the same run.

The customer table of ``bench_memory`` (1,000,000 rows; 100,000 with ``--quick``; 6% of its
emails have a non-ASCII local part) is mapped to canonical columns once, then validated with
``validate_people`` as every upsert does, the fastest of seven runs taken in turns:

(v1) the whole validation with today's email check, beside the same validation with the
     previous one (``[^@\\s]+@[^@\\s.]+(\\.[^@\\s.]+)+``, one regex): target at most 1.10;
(v2) the email check alone on the same column, beside the previous pattern alone;
(v3) the email check on a column where 1% of the domains are internationalised (``exämple.de``,
     judged in Python after the Arrow pattern), beside the previous pattern on that column.

::

    python -m benchmarks.bench_validation            # about a minute
    python -m benchmarks.bench_validation --quick

``main(quick)`` returns the figures as a flat dict.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa_schema

from benchmarks.bench_sync import customer_table
from flameup_pandas._people.mapping import canonical_frame
from flameup_pandas._people.schema import (
    PeopleSchema,
    _email_check,
    _pattern_check,
    clean_frame,
    validate_people,
)
from flameup_pandas._run.plan import Rules

_BLANK = r" \t\r\n\f\v"
PREVIOUS_EMAIL_PATTERN = rf"[^@{_BLANK}]+@[^@{_BLANK}.]+(\.[^@{_BLANK}.]+)+"
"""The email check before issue 24: something, an @, something with a dot."""
_previous_check = _pattern_check(PREVIOUS_EMAIL_PATTERN)


RUNS = 7
"""Timings of each figure; the fastest counts."""


class PreviousEmails(PeopleSchema):
    """PeopleSchema with the previous email check in place of today's (the baseline)."""

    @pa_schema.check("email", name="email_plausible", error="email_plausible", element_wise=False)
    @classmethod
    def _email_plausible(cls, series: pd.Series) -> pd.Series:
        return _previous_check(series)


def best_of(runs: int, *calls: Callable[[], object]) -> list[float]:
    """The fastest of ``runs`` timings of each call (seconds), the calls taking turns, so a
    machine busy with other work slows each of them alike."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, taken in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            taken.append(time.perf_counter() - started)
    return [min(taken) for taken in times]


def canonical(rows: int) -> pd.DataFrame:
    frame = customer_table(rows).to_pandas()
    return canonical_frame(frame, Rules().fieldmap(list(frame.columns)))


def international(emails: pd.Series, share: float, seed: int = 3) -> pd.Series:
    """``emails`` with the domain of ``share`` of them (at random) made ``exämple.de``."""
    rng = np.random.default_rng(seed)
    values = emails.to_numpy(dtype=object).copy()
    picked = rng.choice(len(values), size=round(len(values) * share), replace=False)
    values[picked] = [v.split("@", 1)[0] + "@exämple.de" for v in values[picked]]
    return clean_frame(pd.DataFrame({"email": pd.Series(values, dtype=object)}))["email"]


def main(quick: bool = False) -> dict[str, Any]:
    rows = 100_000 if quick else 1_000_000
    frame = canonical(rows)
    validate_people(frame)  # warm up: pandera builds its schema, RE2 compiles its patterns
    validate_people(frame, PreviousEmails)
    ours, previous = best_of(
        RUNS, lambda: validate_people(frame), lambda: validate_people(frame, PreviousEmails)
    )
    invalid = int(validate_people(frame).invalid.sum())
    emails = clean_frame(frame)["email"]
    check, check_previous = best_of(
        RUNS, lambda: _email_check(emails), lambda: _previous_check(emails)
    )
    wide = international(emails, 0.01)
    wide_check, wide_previous = best_of(
        RUNS, lambda: _email_check(wide), lambda: _previous_check(wide)
    )
    found = {
        "quick": int(quick),
        "rows": rows,
        "invalid_rows": invalid,
        "v1_seconds": ours,
        "v1_previous_seconds": previous,
        "v1_ratio": ours / previous,
        "v2_seconds": check,
        "v2_previous_seconds": check_previous,
        "v2_ratio": check / check_previous,
        "v3_seconds": wide_check,
        "v3_previous_seconds": wide_previous,
        "v3_ratio": wide_check / wide_previous,
    }
    for key in ("v1", "v2", "v3"):  # the report shows milliseconds
        found[f"{key}_ms"] = 1000 * found[f"{key}_seconds"]
        found[f"{key}_previous_ms"] = 1000 * found[f"{key}_previous_seconds"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in found.items()}


def table(f: dict[str, Any]) -> str:
    lines = [f"{'figure':<58}{'ours s':>9}{'before s':>10}{'ratio':>8}  target"]
    for name, key, target in (
        (f"(v1) validate_people, {f['rows']:,} rows", "v1", "<= 1.10"),
        ("(v2) the email check alone", "v2", "-"),
        ("(v3) the email check, 1% internationalised domains", "v3", "-"),
    ):
        lines.append(
            f"{name:<58}{f[f'{key}_seconds']:>9.3f}{f[f'{key}_previous_seconds']:>10.3f}"
            f"{f[f'{key}_ratio']:>8.3f}  {target}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    sys.stdout.write(table(main(quick=parser.parse_args().quick)) + "\n")
