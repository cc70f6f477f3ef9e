"""A track run: chunks of rows -> events -> one request each -> result columns, never twice.

Events go through the engine's delivery (:meth:`Deliverer.stream_each
<flameup_pandas._send.delivery.Deliverer.stream_each>`): the same worker threads, places in
flight (adapted to the server, or ``concurrency=N``), the key's shared rate budget, retries and
breaker as people's batches, one event per request. For every chunk of rows (a frame is one
chunk; a file is read in record batches):

1. Every row is judged by the event rules (:func:`~flameup_pandas._people.events.plan_events`);
   a row that breaks one is ``invalid`` and nothing is sent for it.
2. A row with the same event key as an earlier row (of this chunk or an earlier one) is
   ``skipped``, naming that row.
3. With a state (:class:`~flameup_pandas._run.event_state.EventState`), an event Flameup
   confirmed in an earlier run is ``skipped`` (its id is given back); one an earlier run may
   have sent (``pending`` after a kill, ``uncertain``) is looked up in the listing first and
   sent only when absent.
4. ``dry_run``: the rest are ``skipped`` ("dry run: would be sent"); nothing is sent, and the
   state is read, never written.
5. Otherwise each event is sent by :class:`~flameup_pandas._send.track.EventSender`:
   ``sent``, ``rejected``, ``failed`` or ``uncertain``. The state records ``pending`` (on
   disk) before each request and the outcome after.
6. ``max_duration``: once that many seconds have passed no new event is started; the rest are
   ``skipped`` ("not sent: max_duration ...") and a rerun with the same state continues.

Answers arrive in any order; each chunk's result columns are handed on (``written``) once
every row of it and of the chunks before it is settled, so results keep the input's order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._people.events import Event, EventRules, plan_events
from .._people.identity import find_sorted
from .._send import observe
from .._send.delivery import IN_FLIGHT, NOT_SENT
from .._send.track import EventOutcome, EventSender
from ..exceptions import UpsertInterrupted
from .event_state import OPEN_STATUSES, EventState
from .interrupt import Stopped, deliver_all, interruptible, shielded
from .options import Delivery, TrackRun
from .plan import Sender
from .progress import Meter, duration, open_progress
from .storage import atomic_output, resolve

__all__ = ["DRY_RUN", "EventResults", "TrackSummary", "track_chunks", "track_frame"]

logger = logging.getLogger("flameup_pandas")

DOCUMENTED_RATE = 120
"""Requests a minute Flameup gives a key: what the run's duration is estimated from."""
DRY_RUN = "dry run: would be sent"


@dataclass
class _Chunk:
    """One chunk of rows and its three result columns, filled as the run goes."""

    frame: pd.DataFrame
    events: list[Event | None]
    meter: Meter | None = None
    """Told of every row as it settles (the progress bar or log)."""
    left: int = 0
    """Rows not settled yet."""
    ids: list[str | None] = field(init=False)
    statuses: list[str | None] = field(init=False)
    errors: list[str | None] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.frame)
        self.ids, self.statuses, self.errors = [None] * n, [None] * n, [None] * n
        self.left = n

    def set(
        self, i: int, status: str, event_id: str | None = None, error: str | None = None
    ) -> None:
        if self.statuses[i] is None:
            self.left -= 1
            if self.meter is not None:
                self.meter.update(1, failed=int(status == "failed"))
        self.statuses[i], self.ids[i], self.errors[i] = status, event_id, error

    def result(self) -> pd.DataFrame:
        """The chunk's frame with the three result columns (rows never settled: not sent)."""
        for i, status in enumerate(self.statuses):
            if status is None:
                self.set(i, "failed", error=NOT_SENT)
        out = self.frame.copy()
        index = self.frame.index
        out["flameup_event_id"] = pd.Series(self.ids, index=index, dtype=object)
        out["flameup_status"] = pd.Series(self.statuses, index=index, dtype=object)
        out["flameup_error"] = pd.Series(self.errors, index=index, dtype=object)
        return out


Item = tuple[_Chunk, int]
"""A row waiting for its answer: its chunk and position."""


def track_frame(
    df: pd.DataFrame, *, rules: EventRules, delivery: Delivery, run: TrackRun
) -> pd.DataFrame:
    """Send every row of ``df`` as an event; ``df`` with the three result columns added.

    On Ctrl-C or SIGTERM raises :class:`UpsertInterrupted` whose ``result`` is this frame with
    every row answered so far (the others ``failed``).
    """
    results: list[pd.DataFrame] = []
    try:
        track_chunks(
            iter([df]),
            rules=rules,
            delivery=delivery,
            run=run,
            written=results.append,
            total=len(df),
        )
    except UpsertInterrupted as stop:
        raise UpsertInterrupted(
            str(stop), result=_joined(df, results), signal=stop.signal
        ) from None
    return _joined(df, results)


def _joined(df: pd.DataFrame, results: list[pd.DataFrame]) -> pd.DataFrame:
    if results:
        return results[0]
    return _Chunk(df, [None] * len(df)).result()


def track_chunks(
    frames: Iterator[pd.DataFrame],
    *,
    rules: EventRules,
    delivery: Delivery,
    run: TrackRun,
    written: Callable[[pd.DataFrame], None],
    total: int | None = None,
    source: Any = None,
) -> None:
    """Track every chunk of ``frames``; ``written`` gets each chunk's result frame, in order.

    ``total`` (rows, when known) goes into the estimate logged before sending and the
    progress bar. On Ctrl-C or SIGTERM every chunk read so far is handed to ``written`` (rows
    not answered ``failed``) and :class:`UpsertInterrupted` is raised. ``source`` (what the
    frames were read from) is for the run's observers.
    """
    counts: Counter[str] = Counter()

    def tally(frame: pd.DataFrame) -> None:
        counts.update(frame["flameup_status"].astype(str).tolist())
        written(frame)

    def track() -> Counter[str]:
        _track_chunks(frames, rules, delivery, run, tally, total)
        return counts

    # observers (lineage, tracing): the run's one hook, flameup_pandas._send.observe
    observe.run("events", "dry_run" if run.dry_run else "track", source, delivery, track)


def _track_chunks(
    frames: Iterator[pd.DataFrame],
    rules: EventRules,
    delivery: Delivery,
    run: TrackRun,
    written: Callable[[pd.DataFrame], None],
    total: int | None,
) -> None:
    sender = None if run.dry_run else delivery.open()
    state = bar = None
    order: deque[_Chunk] = deque()

    def flush() -> None:
        while order and order[0].left == 0:
            written(order.popleft().result())

    try:
        state = EventState.open(run.state, filesystem=run.filesystem) if run.state else None
        bar = open_progress(
            run.progress,
            total,
            desc="track",
            requests=None if sender is None else sender.requests,
            in_flight=None if sender is None else sender.in_flight,
        )
        with interruptible():
            planned = _planned(frames, rules, state, order, run.dry_run, flush, bar)
            if sender is None:
                for _ in planned:
                    pass  # a dry run settles every row while planning
            else:
                _send_all(planned, state, sender, run, flush, total)
            flush()
    except Stopped as stop:
        with shielded():
            while order:
                written(order.popleft().result())
        raise UpsertInterrupted(
            f"interrupted ({stop}): the rows not answered are failed; with state= a rerun "
            "sends only what Flameup does not hold",
            signal=stop.signum,
        ) from None
    finally:
        with shielded():
            if bar is not None:
                bar.close()
            if state is not None:
                state.close()
            if sender is not None:
                sender.close()


def _planned(
    frames: Iterator[pd.DataFrame],
    rules: EventRules,
    state: EventState | None,
    order: deque[_Chunk],
    dry_run: bool,
    flush: Callable[[], None],
    meter: Meter,
) -> Iterator[Item]:
    """Each chunk judged, its rows that need no request settled; the rest, one by one."""
    earlier = _Seen()
    for frame in frames:
        plan = plan_events(frame, rules, dt.datetime.now(dt.UTC))
        chunk = _Chunk(frame, plan.events, meter)
        order.append(chunk)
        labels = frame.index.tolist()
        keys = [event.key for event in plan.events if event is not None]
        hashes = key_hashes(keys)
        seen_at = dict(zip(keys, earlier.first_labels(hashes), strict=True))
        first: dict[str, object] = {}  # this chunk's event keys -> label of the row sending it
        for i, event in enumerate(plan.events):
            if event is None:
                chunk.set(i, "invalid", error=plan.reasons[i])
            elif event.key in first or seen_at[event.key] is not None:
                row = first.get(event.key, seen_at[event.key])
                chunk.set(i, "skipped", error=f"the same event as row {row!r}")
            elif state is not None and state.status(event.key) == "sent":
                first[event.key] = labels[i]
                chunk.set(i, "skipped", state.event_id(event.key), "already sent (in the state)")
            else:
                first[event.key] = labels[i]
                if dry_run:
                    chunk.set(i, "skipped", error=DRY_RUN)
                else:
                    yield chunk, i
        earlier.add(key_hashes(list(first)), list(first.values()))
        flush()


def key_hashes(keys: list[str]) -> np.ndarray:
    """Each event key as a 64-bit hash (what :class:`_Seen` keeps of it)."""
    digests = b"".join(hashlib.blake2b(k.encode(), digest_size=8).digest() for k in keys)
    return np.frombuffer(digests, dtype=np.uint64).copy()


class _Seen:
    """The events of earlier chunks: each key's 64-bit hash and the label of the row that
    carried it, kept as a few sorted arrays merged like a binary counter (as
    :class:`~flameup_pandas._people.identity.HashRuns`), about 16 bytes an event where a dict
    of keys would take ten times that."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def first_labels(self, hashes: np.ndarray) -> list[object]:
        """For each hash, the label of the earlier row with it, or None."""
        found: list[object] = [None] * len(hashes)
        for run, labels in self._runs:
            where, present = find_sorted(run, hashes)
            for i in np.flatnonzero(present).tolist():
                label = labels[where[i]]
                found[i] = label.item() if isinstance(label, np.generic) else label
        return found

    def add(self, hashes: np.ndarray, labels: list[object]) -> None:
        if len(hashes) == 0:
            return
        carried = np.array(labels, dtype=object)
        if carried.dtype == object and all(isinstance(x, int) for x in labels):
            carried = carried.astype(np.int64)  # a file's row numbers: 8 bytes each
        order = np.argsort(hashes, kind="stable")
        self._runs.append((hashes[order], carried[order]))
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            last_hashes, last_labels = self._runs.pop()
            both = np.concatenate([self._runs[-1][0], last_hashes])
            labels_both = np.concatenate([self._runs[-1][1], last_labels])
            order = np.argsort(both, kind="stable")
            self._runs[-1] = (both[order], labels_both[order])


def _send_all(
    planned: Iterator[Item],
    state: EventState | None,
    sender: Sender,
    run: TrackRun,
    flush: Callable[[], None],
    total: int | None,
) -> None:
    if total:
        logger.info(
            "up to %d events, one request each: about %s at Flameup's %d a minute",
            total,
            duration(60 * total / DOCUMENTED_RATE),
            DOCUMENTED_RATE,
        )
    events = EventSender(sender.deliverer, run.workspace_id, run.max_resends)
    marked: set[str] = set()  # keys this run wrote pending for
    work = _worker(events, state, marked)
    items = _in_time(planned, run.max_duration, flush)
    stream = sender.deliverer.stream_each(items, work, _failed)

    def settle(item: Item, outcomes: list[EventOutcome]) -> None:
        (chunk, i), [outcome] = item, outcomes
        event = chunk.events[i]
        if state is not None and event is not None and outcome.error not in _CUT_SHORT:
            _remember(state, event, outcome, event.key in marked)
            marked.discard(event.key)
        chunk.set(i, outcome.status, outcome.event_id, outcome.error)
        flush()

    deliver_all(stream, settle)


_CUT_SHORT = frozenset({IN_FLIGHT, NOT_SENT})
"""Outcomes of an interrupt: the state keeps such an event ``pending`` (a rerun looks it up)."""


def _in_time(
    planned: Iterator[Item], limit: float | None, flush: Callable[[], None]
) -> Iterator[tuple[Item, Sequence[Event]]]:
    """The rows to send, as one-event items, until ``max_duration``; the rest are skipped."""
    started = time.monotonic()
    for chunk, i in planned:
        event = chunk.events[i]
        assert event is not None
        if limit is not None and time.monotonic() - started >= limit:
            why = f"not sent: max_duration ({limit:g} s) reached; a rerun with the state sends it"
            chunk.set(i, "skipped", error=why)
            flush()
            continue
        yield (chunk, i), [event]


def _worker(
    events: EventSender, state: EventState | None, marked: set[str]
) -> Callable[[Sequence[Event]], list[EventOutcome]]:
    """What a sending thread does with one event: look it up first when an earlier run may
    have sent it, mark it ``pending`` (on disk), then send it."""

    def work(item: Sequence[Event]) -> list[EventOutcome]:
        [event] = item
        if state is not None and state.status(event.key) in OPEN_STATUSES:
            known = events.resolve(event, "an earlier run may have sent it")
            if known is not None:
                return [known]
        if state is not None:
            state.record(event.key, "pending")
            marked.add(event.key)
        return [events.send(event)]

    return work


def _failed(error: str) -> EventOutcome:
    return EventOutcome("failed", error=error)


def _remember(state: EventState, event: Event, outcome: EventOutcome, marked: bool) -> None:
    """The outcome into the state. ``marked``: this run wrote ``pending`` and sent it, so a
    rejected or failed event is known not stored; an event this run never sent (the breaker
    opened first) keeps what an earlier run left."""
    if outcome.status == "sent":
        state.record(event.key, "sent", outcome.event_id)
    elif outcome.status == "uncertain":
        state.record(event.key, "uncertain")
    elif marked:
        state.record(event.key, "clear")


EVENT_RESULTS_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("flameup_event_id", pa.string()),
        ("flameup_status", pa.string()),
        ("flameup_error", pa.string()),
    ]
)
EVENT_STATUSES = ("sent", "uncertain", "invalid", "rejected", "failed", "skipped")
EVENT_PROBLEMS = frozenset({"invalid", "rejected", "failed", "uncertain"})


@dataclass(frozen=True)
class TrackSummary:
    """What a file's track run did: rows per status, and where the per-row results are.

    ``to_dict()`` is plain data (fit for Airflow's XCom).

    >>> TrackSummary({"sent": 2, "invalid": 1}).problems
    1
    """

    counts: dict[str, int]
    results: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def problems(self) -> int:
        """Rows that need attention: invalid, rejected, failed or uncertain."""
        return sum(n for status, n in self.counts.items() if status in EVENT_PROBLEMS)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows}
        out.update({status: n for status, n in self.counts.items() if n})
        if self.results is not None:
            out["results"] = self.results
        return out

    def __str__(self) -> str:
        shown = ", ".join(f"{n:,} {s}" for s, n in self.counts.items() if n)
        return shown or "no rows"


class EventResults:
    """Counts each chunk's statuses and appends its rows to a parquet results file (when one
    is named), in input order; the file appears whole when the run closes it."""

    def __init__(self, path: str | Path | None, filesystem: Any = None) -> None:
        self.counts = dict.fromkeys(EVENT_STATUSES, 0)
        self._output = contextlib.ExitStack()
        self._writer: pq.ParquetWriter | None = None
        if path is not None:
            sink = self._output.enter_context(atomic_output(resolve(path, filesystem)))
            self._writer = pq.ParquetWriter(sink, EVENT_RESULTS_SCHEMA, compression="zstd")

    def add(self, result: pd.DataFrame) -> None:
        statuses = result["flameup_status"]
        for status, n in statuses.value_counts().items():
            self.counts[str(status)] = self.counts.get(str(status), 0) + int(n)
        if self._writer is not None:
            table = pa.table(
                {
                    "row": pa.array(result.index.to_numpy(), pa.int64()),
                    **{
                        name: pa.array(result[name].tolist(), pa.string())
                        for name in EVENT_RESULTS_SCHEMA.names[1:]
                    },
                },
                schema=EVENT_RESULTS_SCHEMA,
            )
            self._writer.write_table(table)

    def close(self) -> None:
        with self._output:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
