"""The per-key rate limit: a fixed window of ``window`` seconds, ``limit`` requests in it.

A key's window opens with its first counted request and lasts ``window`` seconds; the next
counted request after that opens a new one. Refused requests (429) are not counted.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["DOCUMENTED_LIMIT", "RateLimiter", "RateState"]

DOCUMENTED_LIMIT = 120
"""Requests a minute per key that Flameup documents."""


@dataclass(frozen=True)
class RateState:
    """The outcome of one check and the values of the X-RateLimit-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    """Unix seconds (rounded up) when the current window ends."""

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Counts requests per key index; ``limit=None`` lets everything through."""

    def __init__(self, limit: int | None, window: float = 60.0) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate_limit must be at least 1 or None")
        if window <= 0:
            raise ValueError("rate_window must be positive")
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._windows: dict[int, tuple[float, int]] = {}

    def check(self, key_index: int) -> RateState | None:
        """Count one request of this key if it fits; None when the limit is off."""
        if self.limit is None:
            return None
        now = time.time()
        with self._lock:
            start, used = self._windows.get(key_index, (now, 0))
            if now >= start + self.window:
                start, used = now, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            self._windows[key_index] = (start, used)
        reset = math.ceil(start + self.window)
        return RateState(allowed, self.limit, self.limit - used, reset)

    def windows(self) -> dict[int, RateState]:
        """The windows open now, by key index (a key whose window ended has none)."""
        limit, now = self.limit, time.time()
        if limit is None:
            return {}
        with self._lock:
            windows = dict(self._windows)
        return {
            key_index: RateState(used < limit, limit, limit - used, math.ceil(start + self.window))
            for key_index, (start, used) in windows.items()
            if now < start + self.window
        }

    def storm_state(self, seconds: float) -> RateState:
        """The headers of a 429 forced by a fault storm that ends in ``seconds``."""
        limit = self.limit if self.limit is not None else DOCUMENTED_LIMIT
        return RateState(False, limit, 0, math.ceil(time.time() + seconds))
