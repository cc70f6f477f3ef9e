"""Sending events: one ``POST /track`` per event, and never a blind resend.

Flameup documents no idempotency key, so :class:`EventSender` resends only what it knows was
not stored: a 429 or a connection never made is retried freely (through the deliverer's request
loop); a lost answer (read timeout, closed connection, 5xx, a 2xx that is not Flameup's) is
looked up in the listing by user, name and timestamp, and sent again only when absent (at most
``max_resends`` times), else ``uncertain`` when the listing cannot tell; 400/409/413/422 are
rejected; 401/403 stop the run. ``docs/guides/events.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .._people.values import scalar
from .._send.client import CLOSED, Answer, FlameupClient, is_page_answer, path_segment
from .._send.delivery import SPLIT_STATUSES, Deliverer, GaveUp, auth_error, stop_error
from ..exceptions import FlameupError, TransportError
from .rules import Event

__all__ = ["EventOutcome", "EventSender"]

logger = logging.getLogger("flameup_pandas")

EVENTS_PAGE = functools.partial(is_page_answer, items="events")
PAGE = 100
MATCH_WINDOW = dt.timedelta(seconds=1)
SAME_TIME = dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class EventOutcome:
    """What became of one event: ``sent``, ``uncertain`` (may be held), ``rejected``, ``failed``."""

    status: str
    event_id: str | None = None
    error: str | None = None


class _AnswerLost(Exception):
    """The request may have reached Flameup, but no answer came back."""


class _CannotTell(Exception):
    """The listing could not say whether an event is stored."""


class EventSender:
    """Sends events one per request, posting through a twin deliverer that retries no 5xx (a 5xx
    may follow a store); ``workspace_id`` None: a listed person's. Thread-safe."""

    def __init__(
        self, deliverer: Deliverer, workspace_id: str | None = None, max_resends: int = 3
    ) -> None:
        self.client: FlameupClient = deliverer.client
        self.reader = deliverer
        self.poster = deliverer.twin(
            dataclasses.replace(deliverer.retry, retry_statuses=frozenset())
        )
        self.workspace_id = workspace_id
        self.max_resends = max_resends

    def send(self, event: Event) -> EventOutcome:
        def post() -> Answer:
            try:
                return self.client.request("POST", "/track", body=event.body)
            except TransportError as exc:
                if exc.unreachable and exc.reason != CLOSED:
                    raise  # never left this machine: the request loop retries it
                raise _AnswerLost(exc.reason) from exc

        lost_times = 0
        while True:
            try:
                answer = self.poster.request(post, "event")
            except GaveUp as exc:
                return EventOutcome("failed", error=str(exc))
            except _AnswerLost as exc:
                why = str(exc)
            else:
                body = answer.body  # the documented shape: an event_id
                if answer.ok and isinstance(body, dict) and isinstance(body.get("event_id"), str):
                    return EventOutcome("sent", body["event_id"])
                if answer.status in (401, 403):
                    raise auth_error(answer, "events:write")
                if answer.status in SPLIT_STATUSES:  # a batch splits on these; an event is refused
                    return EventOutcome("rejected", error=str(answer.error()))
                if not (answer.ok or answer.status >= 500):
                    raise stop_error(answer)
                why = answer.describe() if answer.ok else f"HTTP {answer.status}"
            if (outcome := self.resolve(event, f"answer lost ({why})")) is not None:
                return outcome
            lost_times += 1
            if lost_times > self.max_resends:
                return EventOutcome(
                    "failed", error=f"answer lost {lost_times} times ({why}); not stored"
                )
            logger.info(
                "event %s: answer lost (%s), not in the listing: sending again", event.name, why
            )

    def resolve(self, event: Event, why: str) -> EventOutcome | None:
        """Whether Flameup holds ``event``: ``sent`` (found in the listing), ``uncertain`` (the
        listing could not tell), or None: it is not stored, so sending it is safe."""
        window = {
            "user_id": event.user,
            "event": event.name,
            "since": scalar(event.timestamp - MATCH_WINDOW, "utc", "since"),
            "until": scalar(event.timestamp + MATCH_WINDOW, "utc", "until"),
        }
        wanted = orjson.loads(orjson.dumps(event.parameters))
        try:
            found = next((e for e in self._pages(window) if _same(e, event, wanted)), None)
        except _CannotTell as exc:
            return EventOutcome("uncertain", error=f"{why}; the listing could not tell: {exc}")
        return None if found is None else EventOutcome("sent", str(found.get("id")))

    def listed(self, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every event listed matching ``filters``, page by page; a FlameupError when it cannot."""
        try:
            yield from self._pages(filters)
        except _CannotTell as exc:
            raise FlameupError(f"cannot list events: {exc}") from None

    def _pages(self, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        path, offset = f"/workspaces/{path_segment(self._workspace())}/events", 0
        while True:
            body = self._get(path, {**filters, "limit": PAGE, "offset": offset}, EVENTS_PAGE)
            yield from (e for e in body["events"] if isinstance(e, dict))
            offset += len(body["events"])
            if not body["events"] or offset >= body["total"]:
                return

    def _workspace(self) -> str:
        if self.workspace_id is None:
            people = self._get("/people", {"limit": 1}, is_page_answer)["people"]
            workspace = people[0].get("workspace_id") if people else None
            if not isinstance(workspace, str) or not workspace:
                raise _CannotTell("no workspace id (pass workspace_id=)")
            self.workspace_id = workspace
        return self.workspace_id

    def _get(self, path: str, params: dict[str, Any], readable: Callable[[Answer], bool]) -> Any:
        call = functools.partial(self.client.request, "GET", path, params=params)
        try:
            answer = self.reader.request(call, f"GET {path}", readable)
        except (GaveUp, TransportError) as exc:
            raise _CannotTell(str(exc)) from exc
        if not answer.ok:
            raise _CannotTell(str(answer.error()))
        return answer.body


def _same(listed: dict[str, Any], event: Event, parameters: Any) -> bool:
    try:
        when = dt.datetime.fromisoformat(listed.get("timestamp"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    shown = listed.get("parameters", listed.get("properties")) or {}
    same_time = abs(when - event.timestamp) < SAME_TIME
    return listed.get("event") == event.name and same_time and bool(shown == parameters)
