"""Per-row statuses and the run summary.

Every input row ends with exactly one status:

==========  ================================================================
created     Flameup created the person with this request
updated     the person existed (or a lost answer's resend found it stored)
invalid     failed our validation; never sent (``flameup_error`` says why)
rejected    Flameup refused this person (its message is in ``flameup_error``)
failed      could not be delivered: retries spent, network down
skipped     deliberately not sent: a duplicate identity, or unchanged since last sync
==========  ================================================================
"""

from __future__ import annotations

import html
import weakref
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "RESULT_COLUMNS",
    "STATUSES",
    "RunReport",
    "Summary",
    "record_run",
    "run_of",
    "summarize",
]

STATUSES = ("created", "updated", "invalid", "rejected", "failed", "skipped")
DELIVERED = frozenset({"created", "updated"})
RESULT_COLUMNS = ("flameup_id", "flameup_status", "flameup_error")


@dataclass(frozen=True)
class RunReport:
    """What one run did on the wire (requests, retries, 429s, splits) and how long it took."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    elapsed: float = 0.0
    dry_run: bool = False
    stopped: str | None = None
    """Why the run stopped sending before the end (Flameup unreachable); None if it did not."""


@dataclass(frozen=True)
class Summary:
    """Counts per status, plus the run's request figures when they are known.

    Shows as a small table in a notebook; ``to_dict()`` is plain JSON-able data for scripts
    and Airflow's XCom.
    """

    counts: dict[str, int]
    run: RunReport | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: a dry run's first few people, exactly as they would be sent (not part of to_dict())
    sample: tuple[dict[str, Any], ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> int:
        """Rows that need attention: invalid, rejected or failed."""
        return sum(self.counts[s] for s in ("invalid", "rejected", "failed"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, **self.counts}
        if self.run is not None:
            out.update(
                requests=self.run.requests,
                retries=self.run.retries,
                rate_limited=self.run.rate_limited,
                splits=self.run.splits,
                elapsed_s=round(self.run.elapsed, 3),
                dry_run=self.run.dry_run,
            )
            if self.run.stopped is not None:
                out["stopped"] = self.run.stopped
        out.update(self.extra)
        return out

    def _lines(self) -> list[tuple[str, str]]:
        return [
            (k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
            for k, v in self.to_dict().items()
        ]

    @property
    def stopped(self) -> str | None:
        """Why the run stopped sending early (Flameup unreachable), or None."""
        return None if self.run is None else self.run.stopped

    def __str__(self) -> str:
        lines = [(k, v) for k, v in self._lines() if k != "stopped"]
        width = max(len(k) for k, _ in lines)
        text = "\n".join(f"{k:<{width}}  {v:>10}" for k, v in lines)
        return text if self.stopped is None else f"{text}\nstopped early: {self.stopped}"

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
            for k, v in self._lines()
        )
        return f"<table>{cells}</table>"


def count_statuses(statuses: pd.Series) -> dict[str, int]:
    counts = statuses.value_counts(dropna=False)
    return {status: int(counts.get(status, 0)) for status in STATUSES}


# Run figures of result frames still alive, by id(frame): the frame itself stays untouched
# (nothing in df.attrs) and an entry goes when its frame is collected.
_RUNS: dict[int, RunReport] = {}


def run_of(frame: object) -> RunReport | None:
    """The run figures recorded for a result frame (pandas or polars), if it is still alive."""
    return _RUNS.get(id(frame))


def record_run(result: object, report: RunReport) -> None:
    key = id(result)
    _RUNS[key] = report
    weakref.finalize(result, _RUNS.pop, key, None)


def summarize(result: pd.DataFrame) -> Summary:
    """The summary of a result frame (one that has a ``flameup_status`` column)."""
    if "flameup_status" not in result.columns:
        raise ValueError(
            "this frame has no flameup_status column: summary() is for the frame "
            "that df.flameup.upsert() returns"
        )
    return Summary(count_statuses(result["flameup_status"]), run_of(result))
