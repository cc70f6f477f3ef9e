"""A track run: rows -> events -> one request each -> result columns, never an event twice.

1. Every row is judged by the event rules (:func:`~flameup_pandas._people.events.plan_events`);
   a row that breaks one is ``invalid`` and nothing is sent for it.
2. Rows with the same event key as an earlier row are ``skipped``, naming that row.
3. With a state (:class:`~flameup_pandas._run.event_state.EventState`), an event Flameup
   confirmed in an earlier run is ``skipped`` (its id is given back); one an earlier run may
   have sent (``pending`` after a kill, ``uncertain``) is looked up in the listing first and
   sent only when absent.
4. Each event is sent by :class:`~flameup_pandas._send.track.EventSender` through the run's
   client and the key's shared rate budget: ``sent``, ``rejected``, ``failed`` or
   ``uncertain``. The state records ``pending`` before each request and the outcome after.
5. ``max_duration``: once that many seconds have passed no new event is started; the rest are
   ``skipped`` ("not sent: max_duration ...") and a rerun with the same state continues.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._people.events import Event, EventPlan, EventRules, plan_events
from .._send.delivery import IN_FLIGHT, NOT_SENT
from .._send.track import EventOutcome, EventSender
from ..exceptions import UpsertInterrupted
from .event_state import OPEN_STATUSES, EventState
from .interrupt import Stopped, interruptible, shielded
from .options import Delivery

__all__ = ["TrackRun", "track_frame"]

logger = logging.getLogger("flameup_pandas")

DOCUMENTED_RATE = 120
"""Requests a minute Flameup gives a key: what the run's duration is estimated from."""


@dataclass(frozen=True)
class TrackRun:
    """What a track run keeps: its state, where the listing is, when to stop."""

    state: str | Path | None = None
    workspace_id: str | None = None
    max_duration: float | None = None
    max_resends: int = 3


@dataclass
class _Rows:
    """The three result columns, filled as the run goes."""

    n: int
    in_flight: int | None = None
    """The position of the event being sent (or looked up), if any."""
    ids: list[str | None] = field(init=False)
    statuses: list[str | None] = field(init=False)
    errors: list[str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [None] * self.n
        self.statuses = [None] * self.n
        self.errors = [None] * self.n

    def set(
        self, i: int, status: str, event_id: str | None = None, error: str | None = None
    ) -> None:
        self.statuses[i], self.ids[i], self.errors[i] = status, event_id, error


def track_frame(
    df: pd.DataFrame, *, rules: EventRules, delivery: Delivery, run: TrackRun
) -> pd.DataFrame:
    """Send every row of ``df`` as an event; ``df`` with the three result columns added."""
    plan = plan_events(df, rules, dt.datetime.now(dt.UTC))
    rows = _Rows(len(df))
    labels = df.index.tolist()
    to_send = _first_of_each(plan, rows, labels)
    state = EventState.open(run.state) if run.state is not None else None
    try:
        if state is not None:
            to_send = _not_confirmed(plan, to_send, state, rows)
        if to_send:
            with interruptible():
                _send_all(plan, to_send, rows, state, delivery, run)
    except Stopped as stop:
        _settle_interrupted(rows)
        raise UpsertInterrupted(
            f"interrupted ({stop}): the rows not answered are failed; with state= a rerun "
            "sends only what Flameup does not hold",
            result=_result(df, rows),
            signal=stop.signum,
        ) from None
    finally:
        if state is not None:
            state.close()
    return _result(df, rows)


def _result(df: pd.DataFrame, rows: _Rows) -> pd.DataFrame:
    out = df.copy()
    out["flameup_event_id"] = pd.Series(rows.ids, index=df.index, dtype=object)
    out["flameup_status"] = pd.Series(rows.statuses, index=df.index, dtype=object)
    out["flameup_error"] = pd.Series(rows.errors, index=df.index, dtype=object)
    return out


def _first_of_each(plan: EventPlan, rows: _Rows, labels: list[object]) -> list[int]:
    """Positions of the valid rows to send; invalid rows and repeats of a key are settled."""
    first: dict[str, int] = {}
    for i, event in enumerate(plan.events):
        if event is None:
            rows.set(i, "invalid", error=plan.reasons[i])
        elif event.key in first:
            rows.set(i, "skipped", error=f"the same event as row {labels[first[event.key]]!r}")
        else:
            first[event.key] = i
    return list(first.values())


def _not_confirmed(
    plan: EventPlan, positions: list[int], state: EventState, rows: _Rows
) -> list[int]:
    """The positions whose events the state does not hold as sent; those settle as skipped."""
    left = []
    for i in positions:
        event = plan.events[i]
        assert event is not None
        if state.status(event.key) == "sent":
            rows.set(i, "skipped", state.event_id(event.key), "already sent (in the state)")
        else:
            left.append(i)
    return left


def _send_all(
    plan: EventPlan,
    positions: list[int],
    rows: _Rows,
    state: EventState | None,
    delivery: Delivery,
    run: TrackRun,
) -> None:
    minutes = len(positions) / DOCUMENTED_RATE
    logger.info(
        "sending %d events, one request each: about %.0f minutes at Flameup's %d a minute",
        len(positions),
        minutes,
        DOCUMENTED_RATE,
    )
    sender = delivery.open()
    started = time.monotonic()
    try:
        events = EventSender(sender.deliverer, run.workspace_id, run.max_resends)
        for n, i in enumerate(positions):
            if run.max_duration is not None and time.monotonic() - started >= run.max_duration:
                _out_of_time(positions[n:], rows, run.max_duration)
                return
            event = plan.events[i]
            assert event is not None
            rows.in_flight = i
            outcome = _deliver(event, events, state)
            with shielded():  # the state and the row are settled together
                if state is not None:
                    _remember(state, event, outcome)
                rows.set(i, outcome.status, outcome.event_id, outcome.error)
                rows.in_flight = None
    finally:
        sender.close()


def _deliver(event: Event, events: EventSender, state: EventState | None) -> EventOutcome:
    """One event: looked up first when an earlier run may have sent it, then sent."""
    if state is not None and state.status(event.key) in OPEN_STATUSES:
        known = events.resolve(event, "an earlier run may have sent it")
        if known is not None:
            return known
    if state is not None:
        with shielded():
            state.record(event.key, "pending")
    return events.send(event)


def _remember(state: EventState, event: Event, outcome: EventOutcome) -> None:
    if outcome.status == "sent":
        state.record(event.key, "sent", outcome.event_id)
    elif outcome.status == "uncertain":
        state.record(event.key, "uncertain")
    else:
        state.record(event.key, "clear")


def _settle_interrupted(rows: _Rows) -> None:
    """After Ctrl-C or SIGTERM: the event in flight may be stored, the others were not sent."""
    for i in range(rows.n):
        if rows.statuses[i] is None:
            rows.set(i, "failed", error=IN_FLIGHT if i == rows.in_flight else NOT_SENT)


def _out_of_time(positions: list[int], rows: _Rows, limit: float) -> None:
    why = f"not sent: max_duration ({limit:g} s) reached; a rerun with the same state sends it"
    for i in positions:
        rows.set(i, "skipped", error=why)
