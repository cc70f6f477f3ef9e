"""The engine: the one run behind every entry point, in bounded memory.

Every source becomes chunks of rows as pandas frames (:mod:`flameup_pandas._run.sources`: a
frame given to ``upsert()`` is one chunk, labelled by its own index; a file, a dataset or any
Arrow stream is read in record batches and numbered from 0). Each chunk is validated, encoded
and diffed against the sync state on its own (:mod:`flameup_pandas._run.plan`); its people join
one stream of full batches of 100 (batches cross chunk boundaries, so only the run's last
request is short), and every row's outcome goes to the sinks (:mod:`flameup_pandas._run.sinks`):
the results file and the result frame, in input order, and the state. Neither the table nor its
results are ever held whole.

A repeated identity ends as it does in a frame: the last row wins. Within a chunk the earlier
rows are skipped; a row whose identity was already sent from an earlier chunk is set aside and
sent after every request in flight has been answered, so requests sent concurrently can never
land in the wrong order (the earlier row then reports what happened to it, and the later one
``updated``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .._people.encode import FieldHashes, Payloads
from .._people.identity import HashRuns
from .._people.outgoing import Outgoing
from .._send.delivery import PersonOutcome, count_failed
from ..exceptions import ConfigurationError, UpsertInterrupted
from .changes import ChangeGuard
from .interrupt import deliver_all, interrupted, interruptible, shielded
from .options import Delivery, Run
from .plan import BATCH_SIZE, UNCHANGED, Plan, Rules, Sender
from .progress import Meter, open_progress
from .result import RunReport, SharedEmails, Summary, record_run
from .sinks import ResultsWriter
from .sources import Rows
from .state import SyncState

__all__ = ["assemble", "upsert_frame", "upsert_rows"]

logger = logging.getLogger("flameup_pandas")

SAMPLE = 5  # people a dry run shows


@dataclass
class _Chunk:
    """One record batch's plan while its people are in flight.

    A chunk of repeats set aside (see :class:`Repeats`) has an ``origin``: for each of its
    rows, the plan and position it was read at, where its outcome is also recorded (so the
    results file lists it in input order).
    """

    plan: Plan
    hashes: np.ndarray | None
    origin: list[tuple[Plan, int]] | None = None
    fields: pa.Array | None = None  # each row's field hashes (list<uint32>), for the state
    sent: pa.Array | None = None  # each row's JSON (keys sorted), kept with state_values=True


Planner = Callable[[pd.DataFrame, Plan, SyncState | None, FieldHashes | None], None]
"""A sink of decisions: called with each chunk's frame and plan (rows still pending are the
ones a run would send) before anything is sent, the state, and the field hashes of the
pending rows (None without a state)."""


def upsert_frame(df: pd.DataFrame, *, rules: Rules, delivery: Delivery, run: Run) -> pd.DataFrame:
    """Upsert every row of ``df``; return it with flameup_id, flameup_status, flameup_error.

    The frame is one chunk of the engine's stream (its index labels the rows). On Ctrl-C or
    SIGTERM raises :class:`UpsertInterrupted` whose ``result`` is this frame with every row
    answered so far; the rest are ``failed`` (see :mod:`flameup_pandas._run.interrupt`).
    """
    if run.results is not None:
        raise ConfigurationError(
            "upsert() returns its results as a frame; results= is for upsert_file and "
            "upsert_arrow (write the frame it returns with .to_parquet(...))"
        )
    plans: list[Plan] = []
    rows = Rows((frame for frame in [df]), total=len(df), labelled=True)
    try:
        summary = upsert_rows(
            rows, rules=rules, delivery=delivery, run=run, written=plans.append, sample=0
        )
    except UpsertInterrupted as stop:
        result = assemble(df, plans)
        if isinstance(stop.result, Summary) and stop.result.run is not None:
            record_run(result, stop.result.run)
        raise UpsertInterrupted(str(stop), result=result, signal=stop.signal) from None
    result = assemble(df, plans)
    if summary.run is not None:
        record_run(result, summary.run)
    return result


def assemble(df: pd.DataFrame, plans: list[Plan]) -> pd.DataFrame:
    """The input frame, same index and order, with the three result columns set."""

    def column(name: str) -> pd.Series:
        values = [getattr(plan, name) for plan in plans]
        joined = np.concatenate(values) if values else np.full(len(df), None, dtype=object)
        return pd.Series(joined, index=df.index, dtype=object)

    result = df.copy(deep=False)
    result["flameup_id"] = column("flameup_id")
    result["flameup_status"] = column("status")
    result["flameup_error"] = column("error")
    return result


def upsert_rows(
    rows: Rows,
    *,
    rules: Rules,
    delivery: Delivery,
    run: Run,
    written: Callable[[Plan], None] | None = None,
    sample: int = SAMPLE,
    planner: Planner | None = None,
) -> Summary:
    """Stream opened ``rows`` through the engine: the one run behind every entry point.

    Each chunk is planned (validated, encoded, diffed against the state), its people join one
    stream of full batches of 100, and every row's outcome goes to the sinks: the results file,
    the state, and ``written`` (called with each chunk's plan once all its rows are settled,
    in input order). A dry run's summary shows ``sample`` people as they would be sent; a
    ``planner`` (dry runs only) records each chunk's decisions instead of sending.

    With a change guard (``max_changes``/``max_creates`` of ``run``) every chunk is planned
    first and kept as it will be sent (its decisions, and the bytes of the people to send:
    see :meth:`Payloads.for_sending <flameup_pandas._people.encode.Payloads.for_sending>`);
    the guard then refuses (:class:`~flameup_pandas.ChangeGuardError`, before any request
    and before a results file is written) or the kept chunks are sent: the source is read,
    validated and encoded once. On
    Ctrl-C or SIGTERM the results file and the state are closed with every row answered so
    far, and :class:`UpsertInterrupted` is raised with the summary of those rows.
    """
    guard = ChangeGuard(run.max_changes, run.max_creates) if run.guarded else None
    if planner is not None and (guard is not None or not run.dry_run):
        raise ValueError("a planner records what a dry run would send: pass dry_run=True")
    sender = None if run.dry_run else delivery.open()
    try:
        return _drive(rows, rules, sender, run, written, sample, planner or guard, guard)
    finally:
        if sender is not None:
            sender.close()


def _drive(
    rows: Rows,
    rules: Rules,
    sender: Sender | None,
    run: Run,
    written: Callable[[Plan], None] | None,
    sample_size: int,
    planner: Planner | None = None,
    guard: ChangeGuard | None = None,
) -> Summary:
    with interruptible():
        started = time.monotonic()
        sync = None
        if run.state is not None:
            sync = SyncState.open(run.state, filesystem=run.storage)
        total = rows.total
        bar = open_progress(
            run.progress,
            total,
            requests=None if sender is None else sender.requests,
            in_flight=None if sender is None else sender.in_flight,
        )
        stopped: KeyboardInterrupt | None = None
        shared = SharedEmails()
        writer: ResultsWriter | None = None
        try:
            chunks: Iterator[_Chunk] = (
                _plan_chunk(frame, rules, sync, run, shared, planner) for frame in rows.frames()
            )
            if guard is not None:
                chunks = _planned_ahead(chunks, guard)
            writer = ResultsWriter(run.results, filesystem=run.storage, written=written)
            would_send, sample = _plan_and_send(chunks, sender, sync, writer, bar, sample_size)
        except KeyboardInterrupt as exc:
            stopped, would_send, sample = exc, 0, []
        finally:
            with shielded():
                rows.batches.close()
                bar.close()
                if writer is not None:
                    writer.close()
                if sync is not None:
                    sync.close()
    if writer is None:  # stopped while planning ahead: nothing was sent or written
        writer = ResultsWriter(None)
    elapsed = time.monotonic() - started
    if sender is None:
        report = RunReport(elapsed=elapsed, dry_run=True, warnings=shared.top())
        extra = {"would_send": would_send}
        summary = Summary(writer.counts, report, extra, tuple(sample), writer.reasons.top())
    else:
        report = sender.report(elapsed, warnings=shared.top())
        summary = Summary(writer.counts, report, reasons=writer.reasons.top())
    if stopped is not None:
        finished = summary.rows - writer.unfinished
        raise interrupted(stopped, summary, finished=finished, rows=total) from None
    return summary


def _planned_ahead(chunks: Iterator[_Chunk], guard: ChangeGuard) -> Iterator[_Chunk]:
    """Every chunk planned and kept as it will be sent, once the guard let the run through
    (it raises before anything is sent otherwise)."""
    kept = []
    for chunk in chunks:
        plan = chunk.plan
        plan.payloads = plan.payloads.for_sending(plan.pending())
        kept.append(chunk)
    guard.check()
    return iter(kept)


def _plan_and_send(
    chunks: Iterator[_Chunk],
    sender: Sender | None,
    sync: SyncState | None,
    writer: ResultsWriter,
    bar: Meter,
    sample_size: int = SAMPLE,
) -> tuple[int, list[Any]]:
    """Send (or, with no sender, sample) the people of every planned chunk; (would_send,
    sample)."""
    would_send = 0
    sample: list[Any] = []
    if sender is None:
        for chunk in chunks:
            pending = chunk.plan.pending()
            would_send += len(pending)
            if len(sample) < sample_size:  # (taking bytes makes the chunk's: only while needed)
                wanted = pending[: sample_size - len(sample)]
                sample.extend(chunk.plan.payloads.take(wanted).people)
            chunk.plan.mark_dry_run()
            with shielded():
                writer.track(chunk.plan)
                writer.add(chunk.plan, np.arange(len(chunk.plan.status)))
            bar.update(len(chunk.plan.status))
        return would_send, sample
    later: list[_Chunk] = []
    batches = _batches(chunks, writer, bar, Repeats(later))
    _deliver(sender, batches, sync, writer, bar)
    if later:
        # Repeats of people sent earlier in the file go once all those are answered,
        # so the last row of each identity is the one that stays (as in a frame).
        final = _repeats_chunk(later)
        _deliver(sender, _batches(iter([final]), writer, bar, None), sync, writer, bar)
    return would_send, sample


def _plan_chunk(
    frame: pd.DataFrame,
    rules: Rules,
    sync: SyncState | None,
    run: Run,
    shared: SharedEmails,
    planner: Planner | None = None,
) -> _Chunk:
    plan = rules.plan(frame, labels=frame.index)
    shared.add(plan.payloads.user_ids, plan.payloads.emails, plan.pending(), plan.labels)
    hashes = fields = lists = sent = None
    if sync is not None:
        hashes = plan.payloads.content_hashes() if run.full_refresh else plan.skip_unchanged(sync)
        pending = plan.pending()
        fields = plan.payloads.field_hashes(pending)
        if fields is not None:
            lists = _scattered(fields.lists(), pending, len(plan.status))
        if run.state_values and not run.dry_run:
            texts = plan.payloads.hashed.take(pa.array(pending)).cast(pa.large_string())
            sent = _scattered(texts, pending, len(plan.status))
    if planner is not None:
        planner(frame, plan, sync, fields)
    return _Chunk(plan, hashes, fields=lists, sent=sent)


def _scattered(lists: pa.Array, positions: np.ndarray, n: int) -> pa.Array:
    """``lists`` (one per position) placed at ``positions`` of ``n`` rows, null elsewhere."""
    where = np.zeros(n, dtype=np.int64)
    where[positions] = np.arange(len(positions))
    absent = np.ones(n, dtype=bool)
    absent[positions] = False
    return lists.take(pa.array(where, mask=absent))


Member = tuple[_Chunk, int]


def _batches(
    chunks: Iterator[_Chunk], writer: ResultsWriter, bar: Meter, repeats: Repeats | None
) -> Iterator[tuple[list[Member], list[Outgoing]]]:
    """Full batches across chunk boundaries; rows settled without sending are written at once.

    A request may carry the end of one chunk and the start of the next: each person travels
    with its (chunk, position) so its outcome goes back to its own plan. People whose identity
    was already sent earlier in this run are handed to ``repeats`` instead.
    """
    carry: list[Member] = []
    people: list[Outgoing] = []
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
        # a batch's people are taken only when it is due: a chunk of a million rows (a whole
        # frame) never holds a million outgoing people at once
        start = 0
        while start < len(pending):
            take = pending[start : start + BATCH_SIZE - len(carry)]
            start += len(take)
            carry.extend((chunk, p) for p in take.tolist())
            people.extend(chunk.plan.payloads.outgoing(take))
            if len(carry) == BATCH_SIZE:
                yield carry, people
                carry, people = [], []
    if carry:
        yield carry, people


def _deliver(
    sender: Sender,
    batches: Iterator[tuple[list[Member], list[Outgoing]]],
    sync: SyncState | None,
    writer: ResultsWriter,
    bar: Meter,
) -> None:

    def settle(members: list[Member], outcomes: list[PersonOutcome]) -> None:
        for chunk, positions, chunk_outcomes in _by_chunk(members, outcomes):
            _settle(chunk, positions, chunk_outcomes, sync, writer)
        bar.update(len(members), failed=count_failed(outcomes))

    deliver_all(sender.deliverer.stream(batches), settle)


class Repeats:
    """Finds people whose identity was already sent earlier in this run, and sets them aside.

    Identities seen so far are kept as 64-bit hashes (:class:`HashRuns`, 8 bytes a person),
    never as a set of strings.
    """

    def __init__(self, later: list[_Chunk]) -> None:
        self._sent = HashRuns()
        self._later = later

    def set_aside(self, chunk: _Chunk, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split a chunk's rows into those to send now and repeats set aside for later.

        A repeat is a row whose identity was sent earlier in this run: pending, or skipped as
        unchanged (the server now holds the earlier row, so the later one must go again).
        """
        plan = chunk.plan
        unchanged = np.flatnonzero((plan.status == "skipped") & (plan.error == UNCHANGED))
        candidates = np.concatenate([pending, unchanged])
        hashes = plan.identity_hashes[candidates]
        again = self._sent.contains(hashes)
        now = ~again[: len(pending)]
        self._sent.add(hashes[: len(pending)][now])
        aside = candidates[again]
        if len(aside):
            self._later.append(_subset(chunk, np.sort(aside)))
        return pending[now], aside


def _subset(chunk: _Chunk, positions: np.ndarray) -> _Chunk:
    """The rows at ``positions`` of a chunk, as a chunk of their own (labels kept)."""
    plan = Plan.start(
        chunk.plan.payloads.take(positions), [chunk.plan.labels[p] for p in positions]
    )
    hashes = None if chunk.hashes is None else chunk.hashes[positions]
    at = pa.array(positions)
    fields = None if chunk.fields is None else chunk.fields.take(at)
    sent = None if chunk.sent is None else chunk.sent.take(at)
    return _Chunk(plan, hashes, [(chunk.plan, p) for p in positions.tolist()], fields, sent)


def _repeats_chunk(later: list[_Chunk]) -> _Chunk:
    """All set-aside repeats as one chunk; among them, too, the last row of an identity wins."""
    labels = [label for c in later for label in c.plan.labels]
    plan = Plan.start(Payloads.concat([c.plan.payloads for c in later]), labels)
    plan.skip_duplicates("last")
    hashes = None
    if all(c.hashes is not None for c in later):
        hashes = np.concatenate([c.hashes for c in later if c.hashes is not None])
    fields = None
    if all(c.fields is not None for c in later):
        fields = pa.concat_arrays([c.fields for c in later if c.fields is not None])
    sent = None
    if all(c.sent is not None for c in later):
        sent = pa.concat_arrays([c.sent for c in later if c.sent is not None])
    origins = [origin for c in later for origin in c.origin or []]
    return _Chunk(plan, hashes, origins, fields, sent)


def _by_chunk(
    members: list[Member], outcomes: list[PersonOutcome]
) -> Iterator[tuple[_Chunk, list[int], list[PersonOutcome]]]:
    groups: dict[int, tuple[_Chunk, list[int], list[PersonOutcome]]] = {}
    for (chunk, position), outcome in zip(members, outcomes, strict=True):
        group = groups.setdefault(id(chunk), (chunk, [], []))
        group[1].append(position)
        group[2].append(outcome)
    yield from groups.values()


def _settle(
    chunk: _Chunk,
    positions: list[int],
    outcomes: list[PersonOutcome],
    sync: SyncState | None,
    writer: ResultsWriter,
) -> None:
    chunk.plan.apply(positions, outcomes)
    if sync is not None and chunk.hashes is not None:
        at = pa.array(positions, pa.int64())
        fields = None if chunk.fields is None else chunk.fields.take(at).to_pylist()
        sent = None if chunk.sent is None else chunk.sent.take(at).to_pylist()
        keys = chunk.plan.keys_at(positions)
        sync.record_outcomes(keys, chunk.hashes[positions], outcomes, fields, sent)
    _record(chunk, np.asarray(positions, dtype=np.int64), writer)


def _record(chunk: _Chunk, positions: np.ndarray, writer: ResultsWriter) -> None:
    """Settled rows to the results: a chunk of repeats settles them where they were read."""
    if chunk.origin is None:
        writer.add(chunk.plan, positions)
        return
    groups: dict[int, tuple[Plan, list[int], list[int]]] = {}
    for mine in positions.tolist():
        plan, theirs = chunk.origin[mine]
        group = groups.setdefault(id(plan), (plan, [], []))
        group[1].append(theirs)
        group[2].append(mine)
    for plan, theirs, mine in groups.values():
        plan.status[theirs] = chunk.plan.status[mine]
        plan.error[theirs] = chunk.plan.error[mine]
        plan.flameup_id[theirs] = chunk.plan.flameup_id[mine]
        writer.add(plan, np.asarray(theirs, dtype=np.int64))
