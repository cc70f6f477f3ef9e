"""Client-side pacing under Flameup's per-key rate limit, so that a steady run never sees a 429.

Flameup allows a number of requests per key per minute (120 by default) and says how many are
left on every answer (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``). Quota is requests, and
a 429 is a request wasted, so :class:`RateLimiter` does two things:

- it spaces request *starts* evenly, ``60 / rate`` seconds apart, the first one at once. Points
  that far apart can never put more than ``rate`` requests in any 60-second window, whether
  the server's windows are fixed, aligned or sliding;
- it obeys what the server says: ``Remaining: 0`` stops everyone until ``Reset``; a low
  ``Remaining`` spreads what is left over the time left in the window; a ``Limit`` lower than
  ours is adopted; and after a 429 the engine calls :meth:`RateLimiter.hold_until`.

Threads reserve their start time under a lock and sleep outside it, so waiters never queue
behind one another's sleep. A hold that arrives while a thread sleeps is seen when it wakes:
a thread whose slot falls before the hold reserves a new one after it.

One limiter per key and base URL in a process (:func:`shared_limiter`), so several frames upserted
at once with the same key share one budget.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping

from ._retry import header, parse_reset

__all__ = ["WINDOW", "RateLimiter", "shared_limiter"]

WINDOW = 60.0
"""Seconds in the window that ``rate_per_minute`` and ``X-RateLimit-Limit`` count over."""

_SPACING_SLACK = 1e-6
"""Added to every interval so float rounding never squeezes rate+1 starts into one window."""


def _parse_count(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        count = int(float(value.strip()))
    except (ValueError, OverflowError):
        return None
    return count if count >= 0 else None


class RateLimiter:
    """Thread-safe pacer for one API key: spaces request starts evenly at ``rate_per_minute`` and
    obeys what the server says in ``X-RateLimit-*`` headers, so a steady run never sees a 429.

    ``rate_per_minute=None`` means no pacing of our own; what the server says (a ``Limit``,
    ``Remaining``, ``Reset``) and :meth:`hold_until` are still obeyed. ``clock`` (monotonic),
    ``wall`` (Unix time) and ``sleep`` are injectable so tests need no real time.

    >>> now = [0.0]
    >>> limiter = RateLimiter(120, clock=lambda: now[0], wall=lambda: now[0],
    ...                       sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> [round(limiter.acquire(), 3) for _ in range(3)]
    [0.0, 0.5, 0.5]
    """

    def __init__(
        self,
        rate_per_minute: float | None = 120,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        _check_rate(rate_per_minute)
        self._configured = rate_per_minute
        self._server_limit: float | None = None
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last = -math.inf  # the latest slot handed out (monotonic)
        self._blocked_until = -math.inf  # no slot before this (monotonic)
        self._spread_interval = 0.0  # a wider spacing the server asked for...
        self._spread_until = -math.inf  # ...until its window resets (monotonic)
        self._window_reset: float | None = None  # the server window we last heard of (wall)
        self._window_remaining = 0

    @property
    def rate_per_minute(self) -> float | None:
        """The pace in force: ours, or the server's ``X-RateLimit-Limit`` when that is lower."""
        with self._lock:
            return self._effective_rate()

    def set_rate(self, rate_per_minute: float | None) -> None:
        """Change our own pace (a server limit seen earlier still applies when it is lower)."""
        _check_rate(rate_per_minute)
        with self._lock:
            self._configured = rate_per_minute

    def acquire(self) -> float:
        """Block until this caller may send; return the seconds it was held back.

        Slots are handed out in call order, ``60 / rate`` seconds apart, never before a hold.
        """
        with self._lock:
            start = now = self._clock()
            slot = self._reserve(now)
        while True:
            if slot > now:
                self._sleep(slot - now)
            with self._lock:
                if self._blocked_until <= slot:
                    return max(0.0, slot - start)
                # A hold arrived while we slept and covers our slot: queue again after it.
                now = self._clock()
                slot = self._reserve(now)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read ``X-RateLimit-Limit/Remaining/Reset`` from an answer (a 429's too).

        ``Remaining == 0``: nobody sends before ``Reset``. A low ``Remaining``: what is left is
        spread over the time left in the window. A ``Limit`` lower than our rate is adopted.
        Answers may arrive out of order, so within one window the lowest ``Remaining`` wins and
        answers about an older window are ignored.
        """
        limit = _parse_count(header(headers, "X-RateLimit-Limit"))
        remaining = _parse_count(header(headers, "X-RateLimit-Remaining"))
        reset_value = header(headers, "X-RateLimit-Reset")
        with self._lock:
            now_wall = self._wall()
            if limit is not None and limit > 0:
                self._server_limit = float(limit)
            reset = None if reset_value is None else parse_reset(reset_value, now_wall)
            if remaining is None or reset is None or reset <= now_wall:
                return
            if self._window_reset is not None:
                if reset < self._window_reset:
                    return  # an answer about a window that has already ended
                if reset == self._window_reset:
                    remaining = min(remaining, self._window_remaining)
            self._window_reset, self._window_remaining = reset, remaining
            now = self._clock()
            reset_at = now + (reset - now_wall)
            if remaining == 0:
                self._blocked_until = max(self._blocked_until, reset_at)
            else:
                self._spread(now, reset_at, remaining)

    def hold_until(self, wall_time: float) -> None:
        """No request starts before ``wall_time`` (Unix seconds): called after a 429."""
        with self._lock:
            held = self._clock() + (wall_time - self._wall())
            self._blocked_until = max(self._blocked_until, held)

    def _effective_rate(self) -> float | None:
        rates = [r for r in (self._configured, self._server_limit) if r is not None]
        return min(rates) if rates else None

    def _interval(self) -> float:
        rate = self._effective_rate()
        return 0.0 if rate is None else WINDOW / rate + _SPACING_SLACK

    def _reserve(self, now: float) -> float:
        slot = max(now, self._blocked_until, self._last + self._interval())
        if slot < self._spread_until:
            slot = max(slot, self._last + self._spread_interval)
        self._last = slot
        return slot

    def _spread(self, now: float, reset_at: float, remaining: int) -> None:
        """Widen the spacing until ``reset_at`` if our pace would send more than ``remaining``."""
        interval = self._interval()
        first = max(now, self._blocked_until, self._last + interval)
        time_left = reset_at - first
        if time_left <= 0:
            return
        planned = math.inf if interval == 0 else math.ceil(time_left / interval)
        if planned > remaining:
            self._spread_interval = time_left / remaining
            self._spread_until = reset_at
        else:
            self._spread_interval, self._spread_until = 0.0, -math.inf


def _check_rate(rate_per_minute: float | None) -> None:
    if rate_per_minute is not None and not (math.isfinite(rate_per_minute) and rate_per_minute > 0):
        raise ValueError(
            f"rate_per_minute must be a positive number or None, not {rate_per_minute}"
        )


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()
_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")


def shared_limiter(key: str, rate_per_minute: float | None) -> RateLimiter:
    """The process-wide :class:`RateLimiter` for ``key``; its rate is set to ``rate_per_minute``.

    ``key`` is a fingerprint of the API key and base URL (SHA-256 hex), never the key itself:
    limiters live for the whole process. Calling again with another rate updates the rate.
    """
    if not _FINGERPRINT.fullmatch(key):
        raise ValueError("shared_limiter needs a SHA-256 hex fingerprint, not a raw API key")
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None:
            limiter = _SHARED[key] = RateLimiter(rate_per_minute)
        elif limiter._configured != rate_per_minute:
            limiter.set_rate(rate_per_minute)
        return limiter
