"""The per-key rate limit: ``limit`` requests per ``window`` seconds, kept by one of three policies.

- ``fixed`` (Flameup's, documented; the default): a key's window opens with its first counted
  request and lasts ``window`` seconds; the next counted request after that opens a new one.
  ``Remaining`` is what is left of the window, ``Reset`` when it ends.
- ``sliding`` (a sliding-window log): a request is allowed when fewer than ``limit`` counted
  requests of the key arrived in the last ``window`` seconds. ``Remaining`` is ``limit`` minus
  those, ``Reset`` when the oldest of them leaves the window (a slot frees up).
- ``bucket`` (a token bucket): ``limit`` tokens, refilled continuously at ``limit / window`` a
  second; a request takes one. ``Remaining`` is the whole tokens left, ``Reset`` when the
  bucket is full again.

Refused requests (429) are never counted. ``Reset`` is a Unix second, rounded up, so that at
``Reset`` what it promises has happened.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["DOCUMENTED_LIMIT", "RATE_POLICIES", "RateLimiter", "RatePolicy", "RateState"]

DOCUMENTED_LIMIT = 120
"""Requests a minute per key that Flameup documents."""

_ROUNDING = 1e-9
"""A refill that float arithmetic leaves a hair short of a whole token still counts as one."""

RatePolicy = Literal["fixed", "sliding", "bucket"]
RATE_POLICIES: tuple[RatePolicy, ...] = ("fixed", "sliding", "bucket")


@dataclass(frozen=True)
class RateState:
    """The outcome of one check and the values of the X-RateLimit-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    """Unix seconds (rounded up): when the window ends (fixed), a slot frees (sliding), or
    the bucket is full (bucket)."""

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Counts requests per key index under ``policy``; ``limit=None`` lets everything through.

    ``clock`` (Unix seconds) is injectable so the policies can be tested without waiting.

    >>> now = [1000.0]
    >>> bucket = RateLimiter(2, window=2.0, policy="bucket", clock=lambda: now[0])
    >>> [bucket.check(0).allowed for _ in range(3)]
    [True, True, False]
    >>> now[0] += 1.0  # one token back (2 per 2 s)
    >>> state = bucket.check(0)
    >>> state.allowed, state.remaining, state.reset
    (True, 0, 1003)
    """

    def __init__(
        self,
        limit: int | None,
        window: float = 60.0,
        policy: RatePolicy = "fixed",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate_limit must be at least 1 or None")
        if not window > 0:
            raise ValueError("rate_window must be positive")
        if policy not in RATE_POLICIES:
            raise ValueError(f"rate_policy must be one of {', '.join(RATE_POLICIES)}: {policy!r}")
        self.limit = limit
        self.window = window
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._fixed: dict[int, tuple[float, int]] = {}  # key -> (window start, used)
        self._logs: dict[int, deque[float]] = {}  # key -> counted arrivals in the window
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, as of)

    def check(self, key_index: int) -> RateState | None:
        """Count one request of this key if it fits; None when the limit is off."""
        if self.limit is None:
            return None
        with self._lock:
            return self._policy_state(key_index, self.limit, self._clock(), take=True)

    def windows(self) -> dict[int, RateState]:
        """Each key's state now, counting nothing (a key with nothing counted has none)."""
        limit, now = self.limit, self._clock()
        if limit is None:
            return {}
        with self._lock:
            keys = set(self._fixed) | set(self._logs) | set(self._buckets)
            states = {k: self._policy_state(k, limit, now, take=False) for k in keys}
        return {k: state for k, state in states.items() if state is not None}

    def _policy_state(self, key_index: int, limit: int, now: float, take: bool) -> RateState | None:
        """The key's state under the policy, after taking one request if ``take`` and it fits;
        None when ``take`` is False and the key has nothing counted."""
        if self.policy == "fixed":
            return self._fixed_state(key_index, limit, now, take)
        if self.policy == "sliding":
            return self._sliding_state(key_index, limit, now, take)
        return self._bucket_state(key_index, limit, now, take)

    def _fixed_state(self, key_index: int, limit: int, now: float, take: bool) -> RateState | None:
        start, used = self._fixed.get(key_index, (now, 0))
        if now >= start + self.window:
            start, used = now, 0
        if not take:
            return (
                None
                if used == 0
                else RateState(used < limit, limit, limit - used, math.ceil(start + self.window))
            )
        allowed = used < limit
        used += allowed
        self._fixed[key_index] = (start, used)
        return RateState(allowed, limit, limit - used, math.ceil(start + self.window))

    def _sliding_state(
        self, key_index: int, limit: int, now: float, take: bool
    ) -> RateState | None:
        log = self._logs.setdefault(key_index, deque())
        while log and log[0] <= now - self.window:
            log.popleft()
        allowed = len(log) < limit
        if take and allowed:
            log.append(now)
        if not log:
            return None
        return RateState(allowed, limit, limit - len(log), math.ceil(log[0] + self.window))

    def _bucket_state(self, key_index: int, limit: int, now: float, take: bool) -> RateState | None:
        per_second = limit / self.window
        tokens, as_of = self._buckets.get(key_index, (float(limit), now))
        tokens = min(float(limit), tokens + (now - as_of) * per_second)
        allowed = tokens >= 1.0 - _ROUNDING
        if take:
            tokens = max(0.0, tokens - 1.0) if allowed else tokens
            self._buckets[key_index] = (tokens, now)
        elif tokens >= limit - _ROUNDING:
            return None  # full: nothing counted any more
        full_at = now + (limit - tokens) / per_second
        return RateState(allowed, limit, math.floor(tokens), math.ceil(full_at))

    def storm_state(self, seconds: float) -> RateState:
        """The headers of a 429 forced by a fault storm that ends in ``seconds``."""
        limit = self.limit if self.limit is not None else DOCUMENTED_LIMIT
        return RateState(False, limit, 0, math.ceil(self._clock() + seconds))
