"""Fault injection: which requests fail, how, and how long every answer waits.

`Faults` is a frozen value: what to inject. `FaultInjector` draws from one seeded random
generator under a lock, so a run of sequential requests meets the same faults every time.
For each API request it draws, in this order: the latency jitter, whether a 429 storm
starts, and one number that picks at most one of the error/drop outcomes.

An outage is not drawn: ``down_after`` requests are answered, then every request meets a
server that is down (its connection closed without an answer) until ``down_for`` seconds have
passed or the faults are replaced. With ``down_mode="refuse"`` the server also stops listening
for that time, so new connections are refused (the server object does that part).
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

__all__ = ["FaultDecision", "FaultInjector", "Faults", "Outcome", "StormAnswer"]


@dataclass(frozen=True)
class Faults:
    """What to inject into API requests; every fault is off by default.

    Shares are probabilities between 0 and 1, drawn per request; the five outcome shares
    (``error_rate``, ``error_after_store_rate``, ``drop_rate``, ``drop_after_store_rate``,
    ``maintenance_rate``) exclude each other and must add up to at most 1.

    >>> Faults(error_rate=0.1, seed=7).error_rate
    0.1
    """

    error_rate: float = 0.0
    """Answered 500 or 503 before anything is stored."""
    error_after_store_rate: float = 0.0
    """Stored (committed), then answered 500: the answer is lost, the data is not."""
    drop_rate: float = 0.0
    """The connection is closed without any answer; nothing is stored."""
    drop_after_store_rate: float = 0.0
    """Stored, then the connection is closed without any answer."""
    maintenance_rate: float = 0.0
    """Answered 200 with a proxy's HTML maintenance page (not JSON); nothing is stored."""
    latency: float = 0.0
    """Seconds added before every answer."""
    latency_jitter: float = 0.0
    """Up to this many more seconds (uniform) added before every answer."""
    storm_rate: float = 0.0
    """Share of requests that start a 429 storm for their key."""
    storm_length: int = 3
    """How many consecutive requests of that key get 429 in a storm (the first included)."""
    storm_retry_after: float = 1.0
    """The Retry-After seconds sent on odd-numbered storms (1st, 3rd, ...); even-numbered
    storms carry only the X-RateLimit-* headers, so a client meets both."""
    seed: int | None = None
    """Seed of the random draws; None for a fresh seed."""
    down_after: int | None = None
    """Requests served before the server goes down (None: it never does). Every API request
    counts, whatever its path or key; the web view's pages do not."""
    down_for: float | None = None
    """Seconds the server stays down (None: until the faults are replaced)."""
    down_mode: Literal["drop", "refuse"] = "drop"
    """While down: ``"drop"`` closes every connection without an answer; ``"refuse"`` also
    stops listening, so new connections are refused (ECONNREFUSED)."""
    overload_above: int | None = None
    """Requests answered at once beyond which the server sheds load: a request that arrives
    while this many are being answered gets 503 (nothing stored, the latency still paid, not
    counted by the rate limit). None: never."""
    clock_offset: float = 0.0
    """Seconds the server's clock is ahead of the client's (negative: behind): its ``Date``
    header and ``X-RateLimit-Reset`` are on that clock, as on a server whose clock drifted."""

    def __post_init__(self) -> None:
        shares = {
            "error_rate": self.error_rate,
            "error_after_store_rate": self.error_after_store_rate,
            "drop_rate": self.drop_rate,
            "drop_after_store_rate": self.drop_after_store_rate,
            "maintenance_rate": self.maintenance_rate,
            "storm_rate": self.storm_rate,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if sum(shares.values()) - self.storm_rate > 1.0:
            raise ValueError("the error and drop shares must add up to at most 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise ValueError("latency and latency_jitter must not be negative")
        if self.storm_length < 1:
            raise ValueError("storm_length must be at least 1")
        if self.down_after is not None and self.down_after < 0:
            raise ValueError("down_after must not be negative")
        if self.down_for is not None and self.down_for < 0:
            raise ValueError("down_for must not be negative")
        if self.down_mode not in ("drop", "refuse"):
            raise ValueError(f"down_mode must be 'drop' or 'refuse', got {self.down_mode!r}")
        if self.overload_above is not None and self.overload_above < 1:
            raise ValueError("overload_above must be at least 1 (or None)")
        if not math.isfinite(self.clock_offset):
            raise ValueError("clock_offset must be a finite number of seconds")

    def draws_nothing(self) -> bool:
        """True when no request needs a random draw (only an outage, an overload threshold or
        a clock offset, or nothing, is set)."""
        outage = {"down_after", "down_for", "down_mode", "seed", "overload_above", "clock_offset"}
        return all(getattr(self, f.name) == f.default for f in fields(self) if f.name not in outage)


class Outcome(enum.Enum):
    """What happens to one request besides its normal handling."""

    NORMAL = "normal"
    ERROR = "error"
    ERROR_AFTER_STORE = "error_after_store"
    DROP = "drop"
    DROP_AFTER_STORE = "drop_after_store"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class StormAnswer:
    """A 429 forced by a storm: with a Retry-After header, or only X-RateLimit-*."""

    retry_after: float | None


@dataclass(frozen=True)
class FaultDecision:
    """Everything the faults decided for one request."""

    delay: float = 0.0
    storm: StormAnswer | None = None
    outcome: Outcome = Outcome.NORMAL
    error_status: int = 500


NO_FAULT = FaultDecision()


class FaultInjector:
    """Draws the fault decision of each request from the seeded generator.

    ``on_down`` is called (outside the lock, in the request's thread) when an outage begins.
    """

    def __init__(
        self, faults: Faults | None = None, on_down: Callable[[Faults], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._storms: dict[int, tuple[int, StormAnswer]] = {}
        self._on_down = on_down
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)
            self._storms.clear()
            self._storm_count = 0
            self._served = 0
            self._down_since: float | None = None
            self._outage_over = False

    @property
    def down(self) -> bool:
        """Whether the server is down now (an outage began and has not ended)."""
        with self._lock:
            return self._is_down(time.monotonic())

    def end_outage(self) -> None:
        """End the current outage; the same faults never start another one."""
        with self._lock:
            if self._down_since is not None:
                self._down_since, self._outage_over = None, True

    def meets_outage(self) -> bool:
        """Count one request; True when it meets a server that is down."""
        with self._lock:
            f, now = self._faults, time.monotonic()
            if self._is_down(now):
                return True
            if f.down_after is None or self._outage_over or self._served < f.down_after:
                self._served += 1
                return False
            self._down_since = now
        if self._on_down is not None:
            self._on_down(f)
        return True

    def _is_down(self, now: float) -> bool:
        if self._down_since is None:
            return False
        down_for = self._faults.down_for
        if down_for is not None and now - self._down_since >= down_for:
            self._down_since, self._outage_over = None, True
            return False
        return True

    def decide(self, key_index: int) -> FaultDecision:
        """The faults for one authenticated request made with key number ``key_index``."""
        with self._lock:
            f = self._faults
            if f.draws_nothing():
                return NO_FAULT
            delay = f.latency + (self._rng.uniform(0, f.latency_jitter) if f.latency_jitter else 0)
            storm = self._storm(f, key_index)
            outcome = self._outcome(f, self._rng.random())
            status = self._rng.choice((500, 503)) if outcome is Outcome.ERROR else 500
            return FaultDecision(delay=delay, storm=storm, outcome=outcome, error_status=status)

    def _storm(self, f: Faults, key_index: int) -> StormAnswer | None:
        left, answer = self._storms.get(key_index, (0, StormAnswer(None)))
        start = self._rng.random() < f.storm_rate if f.storm_rate else False
        if left > 0:
            self._storms[key_index] = (left - 1, answer)
            return answer
        if not start:
            return None
        self._storm_count += 1
        with_retry_after = self._storm_count % 2 == 1
        answer = StormAnswer(f.storm_retry_after if with_retry_after else None)
        self._storms[key_index] = (f.storm_length - 1, answer)
        return answer

    @staticmethod
    def _outcome(f: Faults, draw: float) -> Outcome:
        bounds = (
            (f.error_rate, Outcome.ERROR),
            (f.error_after_store_rate, Outcome.ERROR_AFTER_STORE),
            (f.drop_rate, Outcome.DROP),
            (f.drop_after_store_rate, Outcome.DROP_AFTER_STORE),
            (f.maintenance_rate, Outcome.MAINTENANCE),
        )
        edge = 0.0
        for share, outcome in bounds:
            edge += share
            if draw < edge:
                return outcome
        return Outcome.NORMAL
