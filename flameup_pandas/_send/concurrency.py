"""How many requests are in flight at once: as many as the server copes with, or a fixed number.

The rate budget says how many requests may *start*; latency decides how many should be in
flight. :class:`InFlight` learns it by additive increase and multiplicative decrease (as TCP and
adaptive concurrency limiters do): a healthy answer to a request sent while every place was
taken, within twice the run's fastest answer plus 10 ms, earns a place (doubling each round
trip from 4 until the first cut, then about one a round trip), up to :data:`MAX_IN_FLIGHT`; a
502/503/504, a request with no answer, or latency above twice the fastest recent answer plus
50 ms halves it (never below 1, one cut per round trip). ``concurrency=N`` fixes it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_IN_FLIGHT", "START", "InFlight", "Slot"]

MAX_IN_FLIGHT = 32
START = 4
CUT = 0.5
LATENCY_RISE = 2.0
LATENCY_SLACK = 0.05
"""Loopback answers in milliseconds vary by more than twice without any strain."""
FASTEST_OF = 50  # answers the fastest recent one is taken from
RECENT_WEIGHT = 0.25  # of each answer in the recent average of latency (a moving average)


@dataclass(frozen=True)
class Slot:
    """A place taken by one request: when, and how often the places had been filled before."""

    taken: float
    filled: int


class InFlight:
    """The places for requests in flight, shared by a run's threads: ``fixed`` of them, or
    (None) as many as the module's rules adapt to."""

    def __init__(
        self, fixed: int | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if fixed is not None and fixed < 1:
            raise ValueError(f"concurrency must be at least 1, got {fixed}")
        self.fixed = fixed
        self._ceiling = float(fixed or MAX_IN_FLIGHT)
        self._limit = float(fixed or START)
        self._threshold = self._ceiling  # slow start below it, one place a round trip above
        self._clock = clock
        self._cond = threading.Condition()
        self.in_flight = 0
        self.peak = 0
        """The most requests that were in flight at once."""
        self._filled = 0  # times a request took the last free place
        self._cut_at = -math.inf
        self._fastest: deque[float] = deque(maxlen=FASTEST_OF)
        self._recent: float | None = None
        self._base = math.inf  # the run's fastest answer

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    @property
    def limit(self) -> int:
        with self._cond:
            return self._places()

    def enter(self, stop: threading.Event | None = None) -> Slot | None:
        """Wait for a place and take it; None (no place taken) once ``stop`` is set."""
        with self._cond:
            stopped = stop.is_set if stop is not None else lambda: False
            while self.in_flight >= self._places() and not stopped():
                self._cond.wait(timeout=0.1)
            if stopped():
                return None
            slot = Slot(self._clock(), self._filled)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight >= self._places():
                self._filled += 1
            return slot

    def leave(
        self, slot: Slot | None, *, latency: float | None = None, strain: bool = False
    ) -> None:
        """A request ended: ``latency`` seconds for a healthy answer (None: no timing to
        learn from), ``strain`` for a sign the server is overloaded."""
        if slot is None:
            return
        with self._cond:
            self.in_flight = max(0, self.in_flight - 1)
            if self.fixed is None and slot.taken >= self._cut_at:
                if strain:
                    self._cut()
                elif latency is not None:
                    self._learn(slot, latency)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every thread waiting for a place (to see that the run stopped)."""
        with self._cond:
            self._cond.notify_all()

    def _places(self) -> int:
        return max(1, math.floor(self._limit))

    def _learn(self, slot: Slot, latency: float) -> None:
        self._fastest.append(latency)
        recent = latency if self._recent is None else self._recent
        self._recent = (1 - RECENT_WEIGHT) * recent + RECENT_WEIGHT * latency
        self._base = min(self._base, latency)
        if self._recent > LATENCY_RISE * min(self._fastest) + LATENCY_SLACK:
            self._cut()
        # a place is earned when every place was taken while it was out and no queue builds
        # (an answer within twice the run's fastest, plus 10 ms: more would wait in the server)
        elif self._filled > slot.filled and latency <= LATENCY_RISE * self._base + 0.01:
            step = 1.0 if self._limit < self._threshold else 1.0 / self._limit
            self._limit = min(self._ceiling, self._limit + step)

    def _cut(self) -> None:
        self._limit = max(1.0, self._limit * CUT)
        self._threshold = self._limit
        self._cut_at = self._clock()
        self._recent = None
