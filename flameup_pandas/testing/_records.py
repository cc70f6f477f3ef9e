"""The server's log of what it was asked: one `RecordedRequest` per HTTP request.

The log also keeps the raw request body and answer of the last ``KEPT_BODIES`` requests, for
the web view: references to bytes the server already holds, so keeping them costs an API
request one dictionary insertion, and memory stays bounded however long the server runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["KEPT_BODIES", "Bodies", "RecordedRequest", "RequestLog"]

KEPT_BODIES = 200
"""How many of the latest requests keep their body and answer."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it; never holds the API key.

    ``status`` is None when the connection was dropped without an answer; ``key_index``
    numbers the key used (1 is ``server.api_key``, then the keys of ``add_key()``), None
    when no valid key was sent; ``fault`` names the injected fault, if any.
    """

    method: str
    path: str
    status: int | None
    people_count: int
    key_index: int | None
    started_at: float
    """Unix seconds when the request arrived."""
    duration: float
    """Seconds spent answering it, injected latency included."""
    fault: str | None
    request_id: str
    stored: bool
    """Whether the request changed stored data (a drop or 500 after store included)."""


@dataclass(frozen=True)
class Bodies:
    """The bytes of one request and of its answer (None when the connection was dropped)."""

    request: bytes
    answer: bytes | None


class RequestLog:
    """A thread-safe, append-only list of recorded requests, with the latest bodies."""

    def __init__(self, kept_bodies: int = KEPT_BODIES) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []
        self._bodies: OrderedDict[str, Bodies] = OrderedDict()
        self._kept = kept_bodies

    def add(self, record: RecordedRequest, bodies: Bodies | None = None) -> None:
        with self._lock:
            self._items.append(record)
            if bodies is not None:
                self._bodies[record.request_id] = bodies
                if len(self._bodies) > self._kept:
                    self._bodies.popitem(last=False)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def bodies(self, request_id: str) -> Bodies | None:
        """The body and answer of this request, if it is one of the latest kept."""
        with self._lock:
            return self._bodies.get(request_id)

    def kept_bodies(self) -> dict[str, Bodies]:
        """Every kept body and answer by request id, oldest first."""
        with self._lock:
            return dict(self._bodies)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bodies.clear()
