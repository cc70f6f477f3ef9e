"""Per-row statuses (created, updated, invalid, rejected, failed, skipped) and the run summary.

A :class:`Summary` also groups the reasons rows need attention, each with its count and up to
three example rows, and warns of rows sent that may not do what was meant (two userIds sharing
one email). ``docs/behaviour/statuses.md`` has the table.
"""

from __future__ import annotations

import html
import re
import weakref
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._people.emails import shared_emails

__all__ = [
    "RESULT_COLUMNS",
    "STATUSES",
    "Reason",
    "ReasonTally",
    "RunReport",
    "SharedEmails",
    "Summary",
    "TrackSummary",
    "run_of",
    "summarize",
]

STATUSES = ("created", "updated", "invalid", "rejected", "failed", "skipped")
DELIVERED = frozenset({"created", "updated"})
RESULT_COLUMNS = ("flameup_id", "flameup_status", "flameup_error")
PROBLEMS = ("invalid", "rejected", "failed", "uncertain")  # uncertain: events only
TOP_REASONS = 10  # reasons a summary keeps and shows
EXAMPLES = 3  # example rows per reason
_KEPT_REASONS = 1_000  # distinct reasons a tally follows; the rest count as "other reasons"
_RETRY_FIGURES = re.compile(r" over [\d.]+ s \([^)]*\)")
_SHOWN_VALUE = re.compile(r" \(value .*?\)(?=; |$)")


@dataclass(frozen=True)
class Reason:
    """Why some rows are invalid, rejected or failed: how many, and a few of them."""

    status: str
    reason: str
    count: int
    examples: tuple[Hashable, ...] = ()
    """Up to three row labels (index labels of a frame, row numbers of a file)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "examples": [plain_label(label) for label in self.examples]}

    def line(self, count_width: int = 0) -> str:
        """``invalid  3  email: not a plausible email (rows 17, 256, 1024)``."""
        shown = some(self.examples, self.count)
        rows = f" ({'row' if self.count == 1 else 'rows'} {shown})" if self.examples else ""
        return f"{self.status:<8} {self.count:>{count_width},}  {self.reason}{rows}"


def some(examples: Iterable[object], count: int) -> str:
    """A few examples of ``count`` things, and an ellipsis when there are more.

    >>> some([17, 256], 5)
    '17, 256, …'
    """
    shown = [str(e) for e in examples]
    return ", ".join(shown) + (", …" if count > len(shown) else "")


def reason_key(error: object) -> str:
    """The reason rows are grouped by: the error without the values and retry figures that
    differ from row to row.

    >>> reason_key("HTTP 503: down; gave up after 9 attempts over 12.3 s (9 errors, 0 limited)")
    'HTTP 503: down; gave up after 9 attempts'
    >>> reason_key("email: not a plausible email address (value 'x@'); locale: not a locale tag")
    'email: not a plausible email address; locale: not a locale tag'
    """
    if error is None or (isinstance(error, float) and error != error):
        return "(no reason given)"
    return _SHOWN_VALUE.sub("", _RETRY_FIGURES.sub("", str(error)))


class ReasonTally:
    """Counts reasons as rows settle, in bounded memory (a file may have millions of rows)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[int, list[Hashable]]] = {}

    def add(
        self, statuses: Iterable[object], errors: Iterable[object], labels: Iterable[Hashable]
    ) -> None:
        for status, error, label in zip(statuses, errors, labels, strict=True):
            if status not in PROBLEMS:
                continue
            key = (str(status), reason_key(error))
            if key not in self._seen and len(self._seen) >= _KEPT_REASONS:
                key = (str(status), "(other reasons)")
            count, examples = self._seen.get(key, (0, []))
            if len(examples) < EXAMPLES:
                examples.append(label)
            self._seen[key] = (count + 1, examples)

    def top(self, n: int = TOP_REASONS) -> tuple[Reason, ...]:
        reasons = [Reason(*key, count, tuple(shown)) for key, (count, shown) in self._seen.items()]
        reasons.sort(key=lambda reason: (-reason.count, PROBLEMS.index(reason.status)))
        return tuple(reasons[:n])


def plain_label(label: Hashable) -> Any:
    """A row label as JSON can carry it: numpy scalars become Python ones, the rest text."""
    item = getattr(label, "item", None)
    if callable(item):
        label = item()
    return label if isinstance(label, bool | int | float | str) else str(label)


@dataclass(frozen=True)
class RunReport:
    """What one run did on the wire (requests, retries, 429s, splits, requests in flight at
    once) and how long it took."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    in_flight: int = 0
    """The most of the run's requests that were in flight at once."""
    concurrency: int = 0
    """The fixed ``concurrency=N`` the run was given; 0: the number in flight adapted to the
    server (the default)."""
    elapsed: float = 0.0
    dry_run: bool = False
    stopped: str | None = None
    """Why the run stopped sending before the end (Flameup unreachable); None if it did not."""
    warnings: tuple[Reason, ...] = ()
    """Rows sent that may not do what was meant (one email under different userIds)."""

    @property
    def concurrency_text(self) -> str | int:
        """``"adaptive"``, or the fixed number."""
        return self.concurrency or "adaptive"


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
    #: the top reasons for invalid, rejected and failed rows, most rows first
    reasons: tuple[Reason, ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def warnings(self) -> tuple[Reason, ...]:
        """Rows sent that may not do what was meant: ``2 people share the email x@y.com``."""
        return () if self.run is None else self.run.warnings

    @property
    def problems(self) -> int:
        """Rows that need attention: invalid, rejected, failed (or, for events, uncertain)."""
        return sum(self.counts.get(s, 0) for s in PROBLEMS)

    def to_dict(self) -> dict[str, Any]:
        """Counts and run figures as plain values, plus ``reasons``: a list of
        ``{"status", "reason", "count", "examples"}`` dicts."""
        out = self._figures()
        out["reasons"] = [reason.to_dict() for reason in self.reasons]
        if self.warnings:
            out["warnings"] = [warning.to_dict() for warning in self.warnings]
        return out

    def _figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, **self.counts}
        if self.run is not None:
            for name in ("requests", "retries", "rate_limited", "splits"):
                out[name] = getattr(self.run, name)
            if not self.run.dry_run:
                out.update(in_flight=self.run.in_flight, concurrency=self.run.concurrency_text)
            out.update(elapsed_s=round(self.run.elapsed, 3), dry_run=self.run.dry_run)
            if self.run.stopped is not None:
                out["stopped"] = self.run.stopped
        out.update(self.extra)
        return out

    def reason_lines(self) -> list[str]:
        """The reasons table as text lines, warnings last (empty when no row needs attention)."""
        shown = (*self.reasons, *self.warnings)
        width = max((len(f"{r.count:,}") for r in shown), default=0)
        return [reason.line(width) for reason in shown]

    @property
    def stopped(self) -> str | None:
        """Why the run stopped sending early (Flameup unreachable), or None."""
        return None if self.run is None else self.run.stopped

    def __str__(self) -> str:
        lines = [
            (k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
            for k, v in self._figures().items()
            if k != "stopped"
        ]
        width = max(len(k) for k, _ in lines)
        text = "\n".join(f"{k:<{width}}  {v:>10}" for k, v in lines)
        if self.reasons or self.warnings:
            text += "\n\nwhy rows need attention:\n" + "\n".join(self.reason_lines())
        return text if self.stopped is None else f"{text}\nstopped early: {self.stopped}"

    def _repr_html_(self) -> str:
        page = html_table(self._figures().items())
        shown = self.reasons + self.warnings
        if shown:
            rows = [(r.status, r.count, r.reason, ", ".join(map(str, r.examples))) for r in shown]
            head = ("status", "rows", "reason", "for example")
            page += "<p>Why rows need attention:</p>" + html_table(rows, head)
        return page


def html_table(rows: Iterable[Sequence[object]], head: Sequence[str] = ()) -> str:
    """``rows`` as an HTML table under a header row of ``head``, numbers right-aligned and text
    left; without ``head``, a table of figures: each row a name and its value."""

    def cell(value: object, tag: str = "td") -> str:
        number = isinstance(value, int) and not isinstance(value, bool)
        align = "right" if tag == "td" and (number or not head) else "left"
        text = f"{value:,}" if number else str(value)
        return f"<{tag} style='text-align:{align}'>{html.escape(text)}</{tag}>"

    lines = ["".join(f"<th>{html.escape(name)}</th>" for name in head)] if head else []
    lines += [cell(row[0], "td" if head else "th") + "".join(map(cell, row[1:])) for row in rows]
    return "<table>" + "".join(f"<tr>{line}</tr>" for line in lines) + "</table>"


@dataclass(frozen=True)
class TrackSummary(Summary):
    """A track run's summary: rows per status (``sent``, ``uncertain``...), the run's figures
    and reasons as for people, and where the per-row results are. ``to_dict()`` holds the
    rows, the statuses that occurred and ``results``.

    >>> TrackSummary({"sent": 2, "invalid": 1}).problems
    1
    """

    results: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, **{s: n for s, n in self.counts.items() if n}}
        if self.results is not None:
            out["results"] = self.results
        return out

    def __str__(self) -> str:
        shown = ", ".join(f"{n:,} {s}" for s, n in self.counts.items() if n)
        return shown or "no rows"


class SharedEmails:
    """Warnings of emails shared by different userIds, chunk by chunk (not across chunks): the
    :data:`TOP_REASONS` with the most rows, then one line for the rest."""

    def __init__(self) -> None:
        self._kept: list[Reason] = []
        self._more_emails = self._more_rows = 0

    def add(self, user_ids: pa.Array, emails: pa.Array, positions: np.ndarray, labels: Any) -> None:
        """The people of one chunk to be sent: their userIds and emails, their positions in
        the chunk, labelled by ``labels``."""
        shared = shared_emails(user_ids, emails)
        for email, rows in shared:
            text = f"{len(rows)} people share the email {email}"
            examples = tuple(labels[p] for p in positions[rows[:EXAMPLES]].tolist())
            self._kept.append(Reason("warning", text, len(rows), examples))
        self._kept.sort(key=lambda reason: -reason.count)
        for dropped in self._kept[TOP_REASONS:]:
            self._more_emails += 1
            self._more_rows += dropped.count
        del self._kept[TOP_REASONS:]

    def top(self) -> tuple[Reason, ...]:
        if not self._more_emails:
            return tuple(self._kept)
        text = f"{self._more_emails:,} more emails are each shared by people with different userIds"
        return (*self._kept, Reason("warning", text, self._more_rows))


# What a run told of its result and plan frames still alive (its figures, a plan's people
# gone), by id(frame): the frame itself stays untouched (nothing in df.attrs) and an entry
# goes when its frame is collected.
_TOLD: dict[tuple[str, int], Any] = {}


def tell(frame: object, what: str, value: Any) -> None:
    key = (what, id(frame))
    _TOLD[key] = value
    weakref.finalize(frame, _TOLD.pop, key, None)


def told(frame: object, what: str) -> Any:
    return _TOLD.get((what, id(frame)))


def run_of(frame: object) -> RunReport | None:
    """The run figures recorded for a result frame (pandas or polars), if it is still alive."""
    report: RunReport | None = told(frame, "run")
    return report


def summarize(result: pd.DataFrame) -> Summary:
    """The summary of a result frame (one that has a ``flameup_status`` column)."""
    if "flameup_status" not in result.columns:
        raise ValueError(
            "this frame has no flameup_status column: summary() is for the frame "
            "that df.flameup.upsert() returns"
        )
    statuses = result["flameup_status"]
    errors = result.get("flameup_error", pd.Series(None, index=result.index, dtype=object))
    tally = ReasonTally()
    tally.add(statuses.tolist(), errors.tolist(), result.index)
    found = statuses.value_counts(dropna=False)
    counts = {status: int(found.get(status, 0)) for status in STATUSES}
    return Summary(counts, run_of(result), reasons=tally.top())
