"""The engine: the one run behind every entry point, for every kind of record, in bounded memory.

A kind (:mod:`flameup_pandas._run.kind`) judges, keys and diffs each chunk and says what a
request carries; the engine does the rest, once. Sources become chunks
(:mod:`flameup_pandas._run.sources`), whose rows join one stream of full requests (requests
cross chunk boundaries), and every row's outcome goes to the sinks
(:mod:`flameup_pandas._run.sinks`) in input order: neither the table nor its results are held
whole.

A repeated person ends as in a frame, the last row winning: a row whose identity was sent from
an earlier chunk waits until every request in flight is answered, so concurrent requests never
land out of order. A repeated event is sent once. After ``max_duration`` seconds no request
starts and the rows left are ``skipped``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._people.identity import HashRuns
from .._send import observe
from ..exceptions import ConfigurationError, UpsertInterrupted
from .interrupt import deliver_all, interrupted, interruptible, shielded
from .kind import Chunk, Kind
from .options import Delivery, Run
from .plan import DRY_RUN, Decisions, Sender, joined
from .progress import DOCUMENTED_RATE, Meter, duration, open_progress
from .result import RunReport, Summary, tell
from .sinks import ResultsWriter
from .sources import Rows

__all__ = ["Decided", "Rows", "assemble", "run_frame", "run_rows"]

logger = logging.getLogger("flameup_pandas")

SAMPLE = 5  # rows a dry run shows


@dataclass
class Decided:
    """Chunks decided before the engine (by Spark's executors), every row to send, recorded in
    ``sync``; the caller opens and closes it and observes the run (its counts include the
    rows settled before the engine)."""

    chunks: Iterator[Chunk]
    total: int | None = None
    sync: Any = None  # the kind's state


def run_frame(df: pd.DataFrame, kind: Kind, *, delivery: Delivery, run: Run) -> pd.DataFrame:
    """Run every row of ``df`` as ``kind``; return it with the three result columns.

    The frame is one chunk of the engine's stream (its index labels the rows). On Ctrl-C or
    SIGTERM raises :class:`UpsertInterrupted` whose ``result`` is this frame with every row
    answered so far; the rest are ``failed`` (see :mod:`flameup_pandas._run.interrupt`).
    """
    if run.results is not None:
        raise ConfigurationError(
            f"{kind.name}() returns its results as a frame; results= is for the functions "
            "that read files and streams (write the frame it returns with .to_parquet(...))"
        )
    plans: list[Decisions] = []
    rows = Rows((frame for frame in [df]), total=len(df), labelled=True)
    try:
        summary = run_rows(rows, kind, delivery=delivery, run=run, written=plans.append, sample=0)
    except UpsertInterrupted as stop:
        report = stop.result.run if isinstance(stop.result, Summary) else None
        result = assemble(df, plans, kind.id_column, report)
        raise UpsertInterrupted(str(stop), result=result, signal=stop.signal) from None
    return assemble(df, plans, kind.id_column, summary.run)


def assemble(
    df: pd.DataFrame,
    plans: list[Decisions],
    id_column: str = "flameup_id",
    report: RunReport | None = None,
) -> pd.DataFrame:
    """The input frame, same index and order, with the three result columns set (and the
    run's ``report`` recorded for it)."""

    def column(name: str) -> pd.Series:
        values = joined([getattr(plan, name) for plan in plans], len(df))
        return pd.Series(values, index=df.index, dtype=object)

    result = df.copy(deep=False)
    result[id_column] = column("flameup_id")
    result["flameup_status"] = column("status")
    result["flameup_error"] = column("error")
    if report is not None:
        tell(result, "run", report)
    return result


def run_rows(
    rows: Rows | Decided,
    kind: Kind,
    *,
    delivery: Delivery,
    run: Run,
    written: Callable[[Any], None] | None = None,
    sample: int = SAMPLE,
) -> Summary:
    """Stream opened ``rows`` through the engine as ``kind`` (see the module): the one run behind
    every entry point. ``written`` gets each chunk's decisions once all its rows are settled, in
    input order; a dry run's summary shows ``sample`` rows as they would be sent.
    """

    def drive() -> Summary:
        sender = None if run.dry_run else delivery.open()
        try:
            return _drive(rows, kind, sender, run, written, sample)
        finally:
            if sender is not None:
                sender.close()

    if isinstance(rows, Decided):  # its caller observes the whole run
        return drive()
    records = "people" if kind.name == "upsert" else "events"
    planning = getattr(kind, "planner", None) is not None and run.dry_run
    operation = "plan" if planning else "dry_run" if run.dry_run else kind.name
    # observers (lineage, tracing): the run's one hook, flameup_pandas._send.observe
    return observe.run(records, operation, rows.source, delivery, drive)


def _drive(
    rows: Rows | Decided,
    kind: Kind,
    sender: Sender | None,
    run: Run,
    written: Callable[[Any], None] | None,
    sample_size: int,
) -> Summary:
    with interruptible():
        started = time.monotonic()
        state = rows.sync if isinstance(rows, Decided) else kind.open_state(run)
        bar = open_progress(
            run.progress,
            rows.total,
            desc=kind.name,
            requests=None if sender is None else sender.requests,
            in_flight=None if sender is None else sender.in_flight,
        )
        stopped: KeyboardInterrupt | None = None
        writer: ResultsWriter | None = None
        try:
            chunks = (
                rows.chunks
                if isinstance(rows, Decided)
                else kind.ahead(_planned(rows, kind, state))
            )
            writer = ResultsWriter(run.results, kind, filesystem=run.storage, written=written)
            if sender is None:
                would_send, sample = _dry_run(chunks, kind, writer, bar, sample_size)
            else:
                if rows.total and kind.batch_size == 1:
                    logger.info(
                        "up to %d %s, one request each: about %s at Flameup's %d a minute",
                        rows.total,
                        kind.rows,
                        duration(60 * rows.total / DOCUMENTED_RATE),
                        DOCUMENTED_RATE,
                    )
                _send(chunks, kind, sender, state, writer, bar, (started, run.max_duration))
                would_send, sample = 0, []
        except KeyboardInterrupt as exc:
            stopped, would_send, sample = exc, 0, []
        finally:
            with shielded():
                bar.close()
                if writer is not None:
                    writer.close()
                if isinstance(rows, Rows):  # a Decided source's state is its caller's
                    rows.batches.close()
                    if state is not None:
                        state.close()
    if writer is None:  # stopped while planning ahead: nothing was sent or written
        writer = ResultsWriter(None, kind)
    elapsed = time.monotonic() - started
    if sender is None:
        report = RunReport(elapsed=elapsed, dry_run=True, warnings=kind.warnings())
    else:
        report = sender.report(elapsed, warnings=kind.warnings())
    extra = {"would_send": would_send} if sender is None else {}
    summary = kind.summary(
        Summary(writer.counts, report, extra, tuple(sample), writer.reasons.top())
    )
    if stopped is not None:
        finished = summary.rows - writer.unfinished
        raise interrupted(stopped, summary, finished=finished, rows=rows.total, what=kind.name)
    return summary


def _planned(rows: Rows, kind: Kind, state: Any) -> Iterator[Chunk]:
    """Each frame planned, neither held past its turn: a chunk's memory is let go before the
    next one is read (a streaming run's peak is about one chunk)."""
    for frame in rows.frames():
        chunk = kind.plan(frame, state)
        del frame
        yield chunk
        del chunk


def _dry_run(
    chunks: Iterator[Chunk], kind: Kind, writer: ResultsWriter, bar: Meter, sample_size: int
) -> tuple[int, list[Any]]:
    """Every planned chunk settled as a dry run would: (rows that would be sent, a sample)."""
    would_send = 0
    sample: list[Any] = []
    repeats = None if kind.later else Repeats(kind, None)
    for chunk in chunks:
        pending = chunk.plan.pending()
        if repeats is not None:
            pending, _ = repeats.set_aside(chunk, pending)
        would_send += len(pending)
        if len(sample) < sample_size:  # (taking bytes makes the chunk's: only while needed)
            sample.extend(kind.sample(chunk, pending[: sample_size - len(sample)]))
        chunk.plan.mark(chunk.plan.pending(), "skipped", DRY_RUN)
        with shielded():
            writer.track(chunk.plan)
            writer.add(chunk.plan, np.arange(len(chunk.plan.status)))
        bar.update(len(chunk.plan.status))
        del chunk, pending  # settled: let it go before the next chunk is read
    return would_send, sample


def _send(
    chunks: Iterator[Chunk],
    kind: Kind,
    sender: Sender,
    state: Any,
    writer: ResultsWriter,
    bar: Meter,
    limit: tuple[float, float | None],
) -> None:
    """Send the rows of every planned chunk, repeats set aside last; ``limit``: the run's start
    and ``max_duration``, after which no request starts (the rest are skipped)."""
    work, failed = kind.worker(sender, state)
    started, seconds = limit
    deadline = None if seconds is None else started + seconds
    late = f"not sent: max_duration ({seconds or 0:g} s) reached; a rerun with the state sends it"

    def settle(members: list[Member], outcomes: list[Any]) -> None:
        for chunk, positions, at in _grouped(members):
            kind.settle(chunk, positions, [outcomes[i] for i in at], state)
            _record(chunk, np.asarray(positions, dtype=np.int64), writer)
        bar.update(len(members), failed=sum(o.status == "failed" for o in outcomes))

    def in_time(batches: Iterator[Batch]) -> Iterator[Batch]:
        for members, items in batches:
            if deadline is None or time.monotonic() < deadline:
                yield members, items
                continue
            for chunk, positions, _ in _grouped(members):
                chunk.plan.mark(np.asarray(positions), "skipped", late)
                with shielded():
                    _record(chunk, np.asarray(positions, dtype=np.int64), writer)
            bar.update(len(members))

    def deliver(batches: Iterator[Batch]) -> None:
        deliver_all(sender.deliverer.stream(in_time(batches), work, failed), settle)

    later: list[Chunk] = []
    deliver(_batches(chunks, kind, writer, bar, Repeats(kind, later)))
    if later:  # (see the module docstring)
        deliver(_batches(iter([kind.joined(later)]), kind, writer, bar, None))


Member = tuple[Chunk, int]
Batch = tuple[list[Member], list[Any]]


def _batches(
    chunks: Iterator[Chunk], kind: Kind, writer: ResultsWriter, bar: Meter, repeats: Repeats | None
) -> Iterator[Batch]:
    """Full requests across chunk boundaries, each row with its (chunk, position) so its
    outcome goes back to its own decisions; rows settled unsent are written at once, repeats
    handed to ``repeats``."""
    carry: list[Member] = []
    items: list[Any] = []
    for chunk in chunks:
        pending = chunk.plan.pending()
        aside = np.array([], dtype=np.int64)
        if repeats is not None:
            pending, aside = repeats.set_aside(chunk, pending)
        unsent = np.concatenate([pending, aside])
        settled = np.setdiff1d(np.arange(len(chunk.plan.status)), unsent, assume_unique=True)
        with shielded():
            if chunk.origin is None:
                writer.track(chunk.plan)
            _record(chunk, settled, writer)
        bar.update(len(settled))
        # a request's items are taken only when it is due: a chunk of a million rows (a
        # whole frame) never holds a million outgoing people at once
        start = 0
        while start < len(pending):
            take = pending[start : start + kind.batch_size - len(carry)]
            start += len(take)
            carry.extend((chunk, p) for p in take.tolist())
            items.extend(kind.items(chunk, take))
            if len(carry) == kind.batch_size:
                yield carry, items
                carry, items = [], []
    if carry:
        yield carry, items


def _grouped(pairs: list[tuple[Any, int]]) -> Iterator[tuple[Any, list[int], list[int]]]:
    """(owner, position) pairs by owner (a chunk, or a chunk's decisions): each owner, its
    positions, and their places in ``pairs``."""
    groups: dict[int, tuple[Any, list[int], list[int]]] = {}
    for at, (owner, position) in enumerate(pairs):
        group = groups.setdefault(id(owner), (owner, [], []))
        group[1].append(position)
        group[2].append(at)
    yield from groups.values()


class Repeats:
    """Finds rows met earlier in this run (a person's identity, an event's key) by 64-bit hash.
    People's repeats are set aside in ``later`` until every earlier request is answered;
    events' are skipped, naming the row met first."""

    def __init__(self, kind: Kind, later: list[Chunk] | None) -> None:
        self._kind = kind
        self._met = HashRuns()
        self._later = later

    def set_aside(self, chunk: Chunk, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's rows to send now, and repeats set aside: rows whose identity was met
        earlier in this run, pending or skipped by the state (Flameup holds the earlier row)."""
        plan = chunk.plan
        again = np.flatnonzero((plan.status == "skipped") & (plan.error == self._kind.again))
        candidates = np.concatenate([pending, again])
        hashes = plan.identity_hashes[candidates]
        if self._kind.later:
            seen = self._met.contains(hashes)
            now = ~seen[: len(pending)]
            self._met.add(hashes[: len(pending)][now])
            aside = candidates[seen]
            if len(aside) and self._later is not None:
                self._later.append(self._kind.subset(chunk, np.sort(aside)))
            return pending[now], aside
        firsts = self._met.labels_of(hashes)
        seen = np.array([label is not None for label in firsts], dtype=bool)
        for position, label in zip(candidates.tolist(), firsts, strict=True):
            if label is not None:
                plan.mark(position, "skipped", f"the same event as row {label!r}")
                plan.flameup_id[position] = None
        new = candidates[~seen]
        self._met.add(hashes[~seen], [plan.labels[p] for p in new.tolist()])
        return pending[~seen[: len(pending)]], np.array([], dtype=np.int64)


def _record(chunk: Chunk, positions: np.ndarray, writer: ResultsWriter) -> None:
    """Settled rows to the results: a chunk of repeats settles them where they were read."""
    if chunk.origin is None:
        writer.add(chunk.plan, positions)
        return
    for plan, theirs, at in _grouped([chunk.origin[mine] for mine in positions.tolist()]):
        mine = positions[at]
        plan.status[theirs] = chunk.plan.status[mine]
        plan.error[theirs] = chunk.plan.error[mine]
        plan.flameup_id[theirs] = chunk.plan.flameup_id[mine]
        writer.add(plan, np.asarray(theirs, dtype=np.int64))
