"""The events endpoints: ``POST /track``, the older ``POST /workspaces/{id}/events`` and the
listing ``GET /workspaces/{id}/events``.

``POST /track`` takes ``external_id`` (``userId`` is its deprecated alias) or ``email``,
``event``, ``parameters`` (``properties`` is an alias) and ``timestamp`` (ISO 8601; now when
absent; a time without an offset is read as UTC) and answers 200 ``{"success": true,
"event_id": "evt_..."}``. Every event is stored: Flameup documents no idempotency key, so the
same event sent twice is two events. The person is looked up by external id, else email, and
not created (``person_id`` is null when there is none). Timestamps are stored normalised to
UTC with microseconds (``2026-01-02T03:04:05.000000Z``).

The listing answers ``{"events": [...], "total", "limit", "offset"}``, oldest stored first,
filtered by ``user_id`` (the external id or email the event was sent with), ``event`` and
``since``/``until`` (ISO 8601, inclusive).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._answers import Answer, envelope_error, simple_error, validation_error
from ._endpoints import Exchange, paging
from ._store import EventFilters, Store

__all__ = ["EventEndpoints", "normal_timestamp"]

MAX_EVENT_NAME = 255
MAX_USER = 255


class EventEndpoints:
    """The handlers of the events API over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def track(self, ex: Exchange, _: str | None) -> Answer:
        return self._record(ex, ("external_id", "userId", "email"))

    def track_legacy(self, ex: Exchange, workspace: str | None) -> Answer:
        if workspace != self.store.workspace_id:
            return envelope_error(404, "NOT_FOUND", "Workspace not found", ex.request_id)
        return self._record(ex, ("userId", "external_id", "email"))

    def list_events(self, ex: Exchange, workspace: str | None) -> Answer:
        if workspace != self.store.workspace_id:
            return envelope_error(404, "NOT_FOUND", "Workspace not found", ex.request_id)
        pages = paging(ex.args)
        if isinstance(pages, Answer):
            return pages
        limit, offset = pages
        problems: dict[str, str] = {}
        since, until = (_query_time(ex.args, name, problems) for name in ("since", "until"))
        if problems:
            return validation_error("Invalid query parameters", problems)
        filters = EventFilters(ex.args.get("user_id"), ex.args.get("event"), since, until)
        events, total = self.store.events_page(limit, offset, filters)
        return Answer(200, {"events": events, "total": total, "limit": limit, "offset": offset})

    def _record(self, ex: Exchange, identity_keys: tuple[str, ...]) -> Answer:
        body, error = ex.json()
        if error is not None:
            return simple_error(400, "Bad Request", error)
        problems: dict[str, str] = {}
        user = _identity(body, identity_keys, problems)
        name = body.get("event")
        if not isinstance(name, str) or not name.strip():
            problems["event"] = "Required"
        elif len(name) > MAX_EVENT_NAME:
            problems["event"] = f"Must be at most {MAX_EVENT_NAME} characters"
        parameters = body.get("parameters", body.get("properties", {}))
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            problems["parameters"] = "Must be an object"
        timestamp = None
        if body.get("timestamp") is not None:
            timestamp = normal_timestamp(body["timestamp"])
            if timestamp is None:
                problems["timestamp"] = "Must be an ISO 8601 date-time"
        if problems or user is None:
            return validation_error("The event is invalid", problems)
        stored = self.store.add_event(user, name, parameters, timestamp)
        return Answer(200, {"success": True, "event_id": stored["id"]})


def _identity(body: dict[str, Any], keys: tuple[str, ...], problems: dict[str, str]) -> str | None:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_USER:
            problems[key] = f"Must be a non-empty string of at most {MAX_USER} characters"
            return None
        return value
    problems["external_id"] = "Required (external_id or email)"
    return None


def normal_timestamp(value: Any) -> str | None:
    """An ISO 8601 date-time as stored (UTC, microseconds, ``Z``); None if it is not one.

    >>> normal_timestamp("2026-01-02T04:04:05+01:00")
    '2026-01-02T03:04:05.000000Z'
    >>> normal_timestamp("yesterday") is None
    True
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    utc = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _query_time(args: dict[str, str], name: str, problems: dict[str, str]) -> str | None:
    raw = args.get(name)
    if raw is None:
        return None
    value = normal_timestamp(raw)
    if value is None:
        problems[name] = "Must be an ISO 8601 date-time"
    return value
