"""The server's log of what it was asked: one `RecordedRequest` per HTTP request."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["RecordedRequest", "RequestLog"]


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


class RequestLog:
    """A thread-safe, append-only list of recorded requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._items.append(record)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
