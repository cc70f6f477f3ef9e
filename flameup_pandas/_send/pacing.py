"""Client-side pacing: when a request may start, and how many may be in flight at once.

:class:`RateLimiter` spends the budget the server announces under Flameup's per-key rate limit.
It models the window that ``X-RateLimit-Limit/-Remaining/-Reset`` describe: requests start while
the lowest ``Remaining`` seen, minus ours in flight, is positive, and wait for ``Reset`` when it
is spent; after a window ends one request goes first and its answer tells the new budget. The
why, the fallbacks and the measurements: ``docs/behaviour/pacing.md``.

The rate budget says how many requests may *start*; latency decides how many should be in
flight: as many as the server copes with, or a fixed number. :class:`InFlight` learns it by
additive increase and multiplicative decrease (as TCP and adaptive concurrency limiters do): a
healthy answer to a request sent while every place was taken, within twice the run's fastest
answer plus 10 ms, earns a place (doubling each round trip from 4 until the first cut, then
about one a round trip), up to :data:`MAX_IN_FLIGHT`; a 502/503/504, a request with no answer,
or latency above twice the fastest recent answer plus 50 ms halves it (never below 1, one cut
per round trip). ``concurrency=N`` fixes it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .retry import header, header_number, parse_reset, parse_retry_after

__all__ = [
    "ASSUMED_LIMIT",
    "MAX_IN_FLIGHT",
    "MAX_WAIT",
    "START",
    "InFlight",
    "RateLimiter",
    "Slot",
    "shared_limiter",
]

CAP_WINDOW = 60.0
"""Seconds that ``rate_per_minute`` (our own cap) counts over."""
ASSUMED_LIMIT = 120
ASSUMED_WINDOW = 60.0
"""Flameup's documented budget, assumed until (or unless) the server tells its own."""
MAX_WAIT = 120.0
"""No header makes a sender wait longer than this at a time (as ``RetryPolicy``'s cap on a
429's wait): after it, one request goes and its answer is read afresh."""
RECURRING_HOLDS = 2


class ServerClock:
    """How far the server's clock is ahead of ours (negative: behind), from ``Date`` headers.

    Not thread-safe on its own: the :class:`RateLimiter` calls it under its lock.

    >>> from email.utils import formatdate
    >>> clock = ServerClock()
    >>> for sent in (1000.1, 1000.6, 1001.3, 1001.9):  # a server 30.4 s ahead, 0.05 s away
    ...     clock.heard(formatdate(sent + 30.4 + 0.025), sent=sent, received=sent + 0.05)
    >>> round(clock.offset, 2)  # no later than the truth: at most a second early
    30.05
    >>> clock.heard(formatdate(4e9), sent=1002.0, received=1002.05)  # one odd answer
    >>> round(clock.offset, 2)  # left out: the highest of the other lower bounds counts
    30.35
    """

    SAMPLES = 16
    """Answers whose bounds are kept (the clocks' drift over that many answers is nil)."""

    def __init__(self) -> None:
        self._bounds: deque[tuple[float, float]] = deque(maxlen=self.SAMPLES)

    def heard(self, date: str | None, *, sent: float, received: float) -> None:
        """An answer's ``Date`` (HTTP date or Unix seconds); ``sent``/``received``: wall time."""
        when = None if date is None else parse_retry_after(date, now_wall=0.0)  # Unix seconds
        if when is not None:
            self._bounds.append((when - received, when + 1.0 - min(sent, received)))

    @property
    def offset(self) -> float:
        """The lowest offset the answers allow (0 while they allow none), so our clock plus
        it is never later than the server's: a window read against it never ends early."""
        if not self._bounds:
            return 0.0
        lowers, uppers = (sorted(bounds) for bounds in zip(*self._bounds, strict=True))
        # Beyond two answers, the most extreme bound on each side is left out (one odd answer).
        odd = int(len(lowers) > 2)
        low, high = lowers[-1 - odd], uppers[odd]
        if low > high:  # answers that disagree beyond one odd one: the middle of them all
            middles = sorted((a + b) / 2 for a, b in self._bounds)
            return middles[len(middles) // 2]
        return 0.0 if low <= 0.0 <= high else low


@dataclass(frozen=True)
class Window:
    """What the server last said about the current window: its end and the budget left."""

    reset_wall: float
    """When it ends, as the server said it (Unix seconds): orders answers about windows."""
    reset: float
    """When it ends on our monotonic clock, at most ``max_wait`` after we heard of it."""
    remaining: int
    """The lowest ``Remaining`` seen for this window."""


_SPAN_SLACK = 1e-6
"""Added to the cap's span: a sleep's float rounding (a start at 1.000000000000007, the next
due at 61.00000000000001) must never fit ``count + 1`` starts in one span."""


def _next_free(starts: deque[float], span: float) -> float:
    """When another start fits, at most ``maxlen`` of ``starts`` in any ``span`` seconds."""
    return starts[0] + span + _SPAN_SLACK if len(starts) == starts.maxlen else -math.inf


class RateLimiter:
    """Thread-safe pacer for one API key: spends the budget the server announces, under an optional
    cap of ours (``rate_per_minute``). :meth:`acquire` before each request, then :meth:`observe`
    its answer's headers (every answer, a 429's too) or :meth:`release` when none came, so the
    requests in flight are always known."""

    def __init__(
        self,
        rate_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        max_wait: float = MAX_WAIT,
    ) -> None:
        if not max_wait > 0:
            raise ValueError(f"max_wait must be positive, not {max_wait}")
        self._cond = threading.Condition()
        self.rate_per_minute: float | None = None
        self._cap: deque[float] | None = None  # our starts, at most the cap's count
        self._cap_span = CAP_WINDOW
        self.set_rate(rate_per_minute)
        self._assumed: deque[float] = deque(maxlen=ASSUMED_LIMIT)
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._max_wait = max_wait
        self.in_flight = 0
        """Our requests started and not yet answered (or given back)."""
        self.window: Window | None = None
        """The server's window as last heard of, or None before any rate headers."""
        self._probing = False  # the first request after a window ended is out
        self._held_until = -math.inf  # after a 429 (monotonic)
        self._limit: int | None = None  # X-RateLimit-Limit, last seen
        self._window_length: float | None = None  # the longest Reset - now seen
        self._last_start = -math.inf
        self._holds = 0  # distinct 429 holds this run
        self.conservative = False
        """True once 429s recurred in this run: starts are spread evenly from then on."""
        self._server_clock = ServerClock()

    def server_time(self) -> float:
        """Now on the server's clock (Unix seconds, by its ``Date``s): what resets are read by."""
        with self._cond:
            return self._wall() + self._server_clock.offset

    def set_rate(self, rate: float | None) -> None:
        """Change our own cap (None: none); starts already made still count against it."""
        if rate is not None and not (isinstance(rate, int | float) and 0 < rate < math.inf):
            raise ValueError(f"rate_per_minute must be a positive number or None, not {rate}")
        with self._cond:
            self.rate_per_minute = rate
            starts, self._cap = self._cap or (), None
            if rate is not None:  # a fractional rate as whole starts over a longer span
                count = max(1, math.floor(rate))  # (2.5 a minute: 2 starts in any 48 s)
                self._cap, self._cap_span = deque(starts, maxlen=count), CAP_WINDOW * count / rate
            self._cond.notify_all()

    def new_run(self) -> None:
        """A run starts: unless another is sending right now, forget the last run's 429s."""
        with self._cond:
            if self.in_flight == 0:
                self._holds, self.conservative = 0, False

    def acquire(self) -> float:
        """Block until a request may start and count it in flight; return the seconds held."""
        started: float | None = None
        while True:
            with self._cond:
                now = self._clock()
                started = now if started is None else started
                when, answers_help = self._next_start(now)
                if when <= now:
                    self._begin(now)
                    return now - started
                if answers_help:
                    # An answer may free the budget before `when`: wait for one (or for `when`).
                    self._cond.wait(timeout=when - now)
                    continue
            self._sleep(when - now)

    def observe(self, headers: Mapping[str, str], elapsed: float = 0.0) -> None:
        """One of our requests got an answer (any status), ``elapsed`` seconds after it was sent."""
        limit, remaining = (
            None if (n := header_number(header(headers, f"X-RateLimit-{name}"))) is None else int(n)
            for name in ("Limit", "Remaining")
        )
        reset_text = header(headers, "X-RateLimit-Reset")
        date = header(headers, "Date")
        with self._cond:
            self.in_flight = max(0, self.in_flight - 1)
            now, now_wall = self._clock(), self._wall()
            self._server_clock.heard(date, sent=now_wall - max(elapsed, 0.0), received=now_wall)
            server_now = now_wall + self._server_clock.offset
            if limit is not None and limit > 0:
                self._limit = limit
                remaining = None if remaining is None else min(remaining, limit)
            reset = parse_reset(reset_text, server_now)
            if remaining is None or reset is None or reset <= server_now:
                # no usable rate headers: a window still running stays as it was; after one
                # ended, the documented budget is assumed until the server says more
                if self.window is None or now >= self.window.reset:
                    self.window, self._probing = None, False
            else:
                self._heard(now, reset, server_now, remaining)
            self._cond.notify_all()

    def release(self) -> None:
        """One of our requests got no answer (a timeout, a dropped connection)."""
        with self._cond:
            self.in_flight = max(0, self.in_flight - 1)
            self._probing = False
            self._cond.notify_all()

    def hold_until(self, wall_time: float) -> None:
        """No request starts before ``wall_time`` (Unix seconds), after a 429; at a second 429
        after a hold ended, the rest of the run is paced conservatively."""
        with self._cond:
            now = self._clock()
            held = now + min(max(0.0, wall_time - self._wall()), self._max_wait)
            if now >= self._held_until:
                self._holds += 1
                self.conservative = self.conservative or self._holds >= RECURRING_HOLDS
            self._held_until = max(self._held_until, held)
            self._cond.notify_all()

    def _next_start(self, now: float) -> tuple[float, bool]:
        """When the next request may start, and whether an answer could make that sooner."""
        at = max(now, self._held_until)
        if self._cap is not None:
            at = max(at, _next_free(self._cap, self._cap_span))
        if self.conservative:
            at = max(at, self._last_start + self._even_spacing(now))
        window = self.window
        if window is None:
            return max(at, _next_free(self._assumed, ASSUMED_WINDOW)), False
        if now >= window.reset:
            if self._probing and self.in_flight > 0:
                return max(at, now + self._max_wait), True
            return at, False
        if window.remaining - self.in_flight > 0:
            return at, False
        return max(at, window.reset), self.in_flight > 0

    def _begin(self, now: float) -> None:
        self.in_flight += 1
        self._last_start = now
        self._assumed.append(now)
        if self._cap is not None:
            self._cap.append(now)
        if self.window is not None and now >= self.window.reset:
            self._probing = True

    def _heard(self, now: float, reset_wall: float, server_now: float, remaining: int) -> None:
        ahead = reset_wall - server_now
        self._window_length = max(self._window_length or 0.0, min(ahead, self._max_wait))
        window = self.window
        if window is not None and now < window.reset and reset_wall < window.reset_wall:
            # An answer about a window that has already ended. (Once ours has ended, any
            # answer is news: a Reset centuries ahead must not shadow every later one.)
            return
        if window is not None and reset_wall == window.reset_wall:
            remaining = min(remaining, window.remaining)
        else:
            self._probing = False
        self.window = Window(reset_wall, now + min(ahead, self._max_wait), remaining)

    def _even_spacing(self, now: float) -> float:
        """Conservative pace: ``Limit`` per learned window, and the budget over the time left."""
        spacing = (self._window_length or ASSUMED_WINDOW) / (self._limit or ASSUMED_LIMIT)
        window = self.window
        if window is not None and now < window.reset:
            budget = window.remaining - self.in_flight
            if budget > 0:
                spacing = max(spacing, (window.reset - now) / budget)
        return spacing


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()
_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")


def shared_limiter(key: str, rate_per_minute: float | None) -> RateLimiter:
    """The process-wide :class:`RateLimiter` of ``key`` (a fingerprint, never the key) for one
    more run: its cap set to ``rate_per_minute``, its 429s forgotten unless a run is sending."""
    if not _FINGERPRINT.fullmatch(key):
        raise ValueError("shared_limiter needs a SHA-256 hex fingerprint, not a raw API key")
    with _SHARED_LOCK:
        if (limiter := _SHARED.get(key)) is None:
            limiter = _SHARED[key] = RateLimiter(rate_per_minute)
        elif limiter.rate_per_minute != rate_per_minute:
            limiter.set_rate(rate_per_minute)
        limiter.new_run()
        return limiter


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
    """The places for a run's requests in flight: ``fixed``, or (None) adapted as above."""

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
        self.peak = 0  # the most requests in flight at once
        self._filled = 0  # times a request took the last free place
        self._cut_at = -math.inf
        self._fastest: deque[float] = deque(maxlen=FASTEST_OF)
        self._recent: float | None = None
        self._base = math.inf  # the run's fastest answer

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
        """A request ended: ``latency`` of a healthy answer (None: none), ``strain``: overload."""
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
        elif self._filled > slot.filled and latency <= LATENCY_RISE * self._base + 0.01:
            step = 1.0 if self._limit < self._threshold else 1.0 / self._limit
            self._limit = min(self._ceiling, self._limit + step)

    def _cut(self) -> None:
        self._limit = max(1.0, self._limit * CUT)
        self._threshold = self._limit
        self._cut_at = self._clock()
        self._recent = None
