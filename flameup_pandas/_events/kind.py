"""Events as a kind of record the engine runs (:mod:`flameup_pandas._run.kind`), never twice.

A repeated event key is ``skipped``, naming the row met first; with a state, an event Flameup
confirmed is ``skipped`` and one an earlier run may have sent is looked up before it is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from .._run.kind import Chunk, Work
from .._run.options import EventSending, Run
from .._run.plan import Decisions, Sender
from .._run.result import Reason, Summary, TrackSummary
from .._send.delivery import IN_FLIGHT, NOT_SENT
from .rules import Event, EventRules, plan_events
from .send import EventOutcome, EventSender
from .state import OPEN_STATUSES, EventState

__all__ = ["EVENT_STATUSES", "Events"]

EVENT_STATUSES = ("sent", "uncertain", "invalid", "rejected", "failed", "skipped")
IN_STATE = "already sent (in the state)"
KEYS = "keys"  # a state's first line names how its keys were made (absent: before the registry)
_CUT_SHORT = frozenset({IN_FLIGHT, NOT_SENT})  # interrupted: the state keeps them ``pending``


@dataclass
class EventDecisions(Decisions):
    """One chunk's events (None for an invalid row) and a decision per row."""

    labels: list[Any]
    events: list[Event | None]
    status: np.ndarray
    error: np.ndarray
    flameup_id: np.ndarray
    identity_hashes: np.ndarray  # each event key as 64 bits (0 where none): how repeats are found

    @classmethod
    def start(cls, labels: list[Any], events: list[Event | None]) -> EventDecisions:
        n = len(events)
        valid = [(i, e.key.encode()) for i, e in enumerate(events) if e is not None]
        hashes = np.zeros(n, dtype=np.uint64)
        digests = b"".join(hashlib.blake2b(k, digest_size=8).digest() for _, k in valid)
        hashes[[i for i, _ in valid]] = np.frombuffer(digests, dtype=np.uint64)
        status, error, ids = (np.full(n, None, dtype=object) for _ in range(3))
        return cls(labels, events, status, error, ids, hashes)


class Events:
    """Events of one run; ``results``: the results file its summary names."""

    name = "track"
    rows = "events"
    batch_size = 1
    statuses: tuple[str, ...] = EVENT_STATUSES
    id_column = "flameup_event_id"
    results_schema = pa.schema([])
    later = False
    again = IN_STATE

    def __init__(self, rules: EventRules, sending: EventSending, results: Any = None) -> None:
        self.rules = rules
        self.sending = sending
        self.results = None if results is None else str(results)
        self.marked: set[str] = set()  # keys this run wrote pending for
        self.legacy = False  # the state's keys hash timestamps as six-digit text

    def open_state(self, run: Run) -> EventState | None:
        if run.state is None:
            return None
        state = EventState.open(run.state, filesystem=run.storage)
        self.legacy = bool(state.entries) and KEYS not in state.entries
        if not state.entries and not run.dry_run:  # a dry run leaves the state as it was
            state.record(KEYS, "registry")
        return state

    def known(self, state: EventState, event: Event) -> str:
        """The key ``state`` holds ``event`` under: its own, or in a state written before keys
        hashed the registry's timestamp text, the key that version gave it (when held)."""
        if event.key in state.entries or not self.legacy or not event.key.startswith("h:"):
            return event.key
        stamp = event.timestamp.astimezone(dt.UTC).replace(tzinfo=None)
        old = event.hashed(stamp.isoformat(timespec="microseconds") + "Z")
        return old if old in state.entries else event.key

    def plan(self, frame: pd.DataFrame, state: EventState | None) -> Chunk:
        judged = plan_events(frame, self.rules, dt.datetime.now(dt.UTC))
        plan = EventDecisions.start(frame.index.tolist(), judged.events)
        first: dict[str, Any] = {}  # this chunk's event keys -> label of the row sending it
        for i, event in enumerate(judged.events):
            if event is None:
                plan.mark(i, "invalid", judged.reasons[i])
            elif event.key in first:
                plan.mark(i, "skipped", f"the same event as row {first[event.key]!r}")
            else:
                first[event.key] = plan.labels[i]
                if state is not None and state.status(key := self.known(state, event)) == "sent":
                    plan.mark(i, "skipped", IN_STATE, state.event_id(key))
        return Chunk(plan)

    def ahead(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        return chunks

    def items(self, chunk: Chunk, positions: np.ndarray) -> list[Any]:
        return [chunk.plan.events[p] for p in positions.tolist()]

    def sample(self, chunk: Chunk, positions: np.ndarray) -> list[Any]:
        return [orjson.loads(chunk.plan.events[p].body) for p in positions.tolist()]

    def worker(self, sender: Sender, state: EventState | None) -> tuple[Work, Callable[[str], Any]]:
        """Per event: looked up if an earlier run may have sent it, marked ``pending``, sent."""
        events = EventSender(sender.deliverer, self.sending.workspace_id, self.sending.max_resends)

        def work(item: Sequence[Event]) -> list[EventOutcome]:
            [event] = item
            if state is not None and state.status(self.known(state, event)) in OPEN_STATUSES:
                known = events.resolve(event, "an earlier run may have sent it")
                if known is not None:
                    return [known]
            if state is not None:
                state.record(event.key, "pending")
                self.marked.add(event.key)
            return [events.send(event)]

        return work, lambda error: EventOutcome("failed", error=error)

    def settle(
        self, chunk: Chunk, positions: list[int], outcomes: list[Any], state: EventState | None
    ) -> None:
        for position, outcome in zip(positions, outcomes, strict=True):
            event = chunk.plan.events[position]
            if state is not None and event is not None and outcome.error not in _CUT_SHORT:
                # one this run marked ``pending`` and sent, rejected or failed, is known not
                # stored; one it never sent (the breaker opened first) keeps what was there
                known = outcome.status in ("sent", "uncertain")
                if known or event.key in self.marked:
                    state.record(event.key, outcome.status if known else "clear", outcome.event_id)
                self.marked.discard(event.key)
            chunk.plan.mark(position, outcome.status, outcome.error, outcome.event_id)

    def shown(self, plan: Any, take: pa.Array) -> dict[str, pa.Array]:
        return {}

    def subset(self, chunk: Chunk, positions: np.ndarray) -> Chunk:
        raise NotImplementedError("a repeated event is skipped, never sent later")

    def joined(self, chunks: list[Chunk]) -> Chunk:
        raise NotImplementedError("a repeated event is skipped, never sent later")

    def summary(self, summary: Summary) -> Summary:
        return TrackSummary(
            summary.counts, summary.run, {}, summary.sample, summary.reasons, results=self.results
        )

    def warnings(self) -> tuple[Reason, ...]:
        return ()
