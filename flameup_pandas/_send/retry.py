"""The retry policy: which failures are worth another attempt, and how long to wait before it.

:class:`RetryPolicy` is a value, modelled on urllib3's ``Retry``: nothing here sends, reads a
clock or sleeps (the caller passes ``now`` and an ``rng``). Resending ``POST /people/batch`` is
safe because every person is an upsert keyed by identity: a lost answer (timeout, dropped
connection, a 500 after storing) is resent, and the resend is the only way to learn the ids.
``first_contact_*`` and ``outage_batches`` are about the run (the
:mod:`~flameup_pandas._send.breaker` applies them; ``docs/behaviour/outages.md``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "header", "header_number", "parse_reset", "parse_retry_after"]

_DEFAULT_RNG = random.Random()
_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")
_EPOCH_THRESHOLD = 1_000_000_000.0
"""A reset below this (September 2001) is read as seconds from now, not as a Unix time."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, looked up case-insensitively in any mapping."""
    if name in headers:
        return headers[name]
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def header_number(value: str | None) -> float | None:
    """A finite, non-negative number from a header's text; None for anything else."""
    try:
        number = float(value.strip())  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_retry_after(value: str, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP-date), or None."""
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_wall)


def parse_reset(value: str | None, now_wall: float) -> float | None:
    """The Unix time an ``X-RateLimit-Reset`` names (None if unreadable); one too small to be
    a recent Unix time is seconds from now (as some servers send), not a moment in 1970."""
    if (reset := header_number(value)) is None:
        return None
    return reset if reset >= _EPOCH_THRESHOLD else now_wall + reset


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one request may be retried; a value, never mutated.

    >>> policy = RetryPolicy(total=2)
    >>> policy = policy.increment(status=503, now=100.0)
    >>> policy.errors, policy.is_exhausted(now=101.0)
    (1, False)
    >>> policy = policy.increment(status=503, now=102.0).increment(error=TimeoutError(), now=104.0)
    >>> policy.is_exhausted(now=104.0), policy.describe()
    (True, 'gave up after 3 attempts over 4.0 s (3 errors, 0 rate-limited; last: TimeoutError)')
    """

    total: int = 8
    """Attempts allowed after the first for errors (5xx, connection failures, timeouts)."""
    rate_limited: int = 30
    """429 answers tolerated per request: the server pacing us, not a failure."""
    backoff_factor: float = 0.5
    """Exponential backoff: up to ``backoff_factor * 2**(n-1)`` seconds after the n-th error."""
    backoff_max: float = 30.0
    """No single backoff is longer than this."""
    max_elapsed: float = 900.0
    """Total seconds one request (one batch) may spend, from its first attempt, retrying."""
    retry_statuses: frozenset[int] = frozenset({500, 502, 503, 504})
    """Server errors worth another attempt (429 always is; other 4xx never are)."""
    rate_limit_wait_max: float = 120.0
    """No wait after a 429 is longer than this, whatever the headers say."""
    reset_margin: float = 1.0
    """Added to absolute reset times after a 429: they have 1 s resolution and clocks drift."""
    first_contact_attempts: int = 5
    """Attempts while no request of the run has been answered and the host cannot be reached
    (refused, name not resolved, TLS failure, connect timeout); then the run raises."""
    first_contact_elapsed: float = 30.0
    """Seconds those attempts may take, from the first, waits included."""
    outage_batches: int | None = 3
    """Batches in a row that may spend their retries on connection errors or 5xx before the
    run stops sending (a circuit breaker); None: never stop early."""

    # State: the value returned by increment() carries it.
    errors: int = 0
    rate_limits: int = 0
    started: float | None = None
    """Monotonic time of the first attempt (set by the first increment unless given)."""
    last: float | None = None
    """Monotonic time of the latest failed attempt."""
    last_cause: str | None = None
    """What the latest failed attempt ended with, for messages: ``HTTP 503`` or an error type."""

    def __post_init__(self) -> None:
        for number in fields(self):  # (the annotations are strings: __future__)
            floor = 1 if number.name == "first_contact_attempts" else 0
            value = getattr(self, number.name)
            if number.type in ("int", "float") and value < floor:
                raise ValueError(f"{number.name} must be >= {floor}, got {value}")
        if self.outage_batches is not None and self.outage_batches < 1:
            raise ValueError("outage_batches must be >= 1 (or None: never stop early)")
        if refused := sorted(s for s in self.retry_statuses if not 500 <= s <= 599):
            raise ValueError(f"retry_statuses must be 5xx (429 is always retried): {refused}")

    def should_retry_status(self, status: int) -> bool:
        """True for 429 and the configured 5xx statuses; never for any other 4xx."""
        return status == 429 or status in self.retry_statuses

    def increment(
        self, *, status: int | None = None, error: BaseException | None = None, now: float
    ) -> RetryPolicy:
        """The policy after one more failed attempt; ``self`` is left unchanged.

        A 429 counts against ``rate_limited``; anything else (a 5xx, an error) against ``total``."""
        cause = f"HTTP {status}" if status is not None else None
        if error is not None and status is None:
            cause = type(error).__name__  # the type only: messages may carry URLs, never keys
        started = self.started if self.started is not None else now
        counted = "rate_limits" if status == 429 else "errors"
        changes = {counted: getattr(self, counted) + 1, "started": started, "last": now}
        return replace(self, **changes, last_cause=cause)

    def elapsed(self, now: float) -> float:
        """Seconds since the first attempt (0 before it)."""
        return 0.0 if self.started is None else max(0.0, now - self.started)

    def is_exhausted(self, now: float) -> bool:
        """True once either count is over its budget or ``max_elapsed`` has passed."""
        return (
            self.errors > self.total
            or self.rate_limits > self.rate_limited
            or (self.started is not None and self.elapsed(now) >= self.max_elapsed)
        )

    def first_contact_spent(self, now: float, wait: float) -> bool:
        """True when a host never reached in this run has had its short budget.

        Counts the attempts so far and the time they took plus ``wait``, the pause before the
        next one: the run never starts an attempt it would have to abandon.

        >>> policy = RetryPolicy().increment(error=ConnectionError(), now=0.0)
        >>> policy.first_contact_spent(now=1.0, wait=0.5), policy.first_contact_spent(1.0, 29.5)
        (False, True)
        """
        return (
            self.errors >= self.first_contact_attempts
            or self.elapsed(now) + wait >= self.first_contact_elapsed
        )

    def backoff(self, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt after an error: full jitter, capped.

        Drawn uniformly from ``[0, min(backoff_max, backoff_factor * 2**(errors-1))]``; 0 before
        the first error. Full jitter keeps threads that failed together from retrying together."""
        return (rng or _DEFAULT_RNG).uniform(0.0, self._backoff_cap(self.errors))

    def rate_limit_wait(
        self, headers: Mapping[str, str], now_wall: float, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after a 429, from the answer's headers.

        ``Retry-After`` (delta seconds, or an HTTP-date plus ``reset_margin``) when present;
        else ``X-RateLimit-Reset`` minus ``now_wall`` plus ``reset_margin``; else, or when the
        reset has already passed (stale header, skewed clocks), a jittered backoff that grows
        with the 429s so far. Never negative, never over ``rate_limit_wait_max``."""
        if (wait := self._server_wait(headers, now_wall)) is None:
            cap = self._backoff_cap(max(1, self.rate_limits))
            # Equal jitter, not full: a 429 retried at once only wastes another request.
            wait = cap / 2 + (rng or _DEFAULT_RNG).uniform(0.0, cap / 2)
        return min(max(0.0, wait), self.rate_limit_wait_max)

    def describe(self) -> str:
        """A summary for error messages: ``gave up after 9 attempts over 12.3 s (...)``."""
        attempts = self.errors + self.rate_limits
        elapsed = 0.0 if self.last is None else self.elapsed(self.last)
        last = "" if self.last_cause is None else f"; last: {self.last_cause}"
        return (
            f"gave up after {attempts} attempt{'' if attempts == 1 else 's'} over {elapsed:.1f} s "
            f"({self.errors} errors, {self.rate_limits} rate-limited{last})"
        )

    def _backoff_cap(self, n: int) -> float:
        if n <= 0:
            return 0.0
        # Cap the exponent first: 2.0**1024 overflows, and 2**60 seconds is already forever.
        return min(self.backoff_max, self.backoff_factor * 2.0 ** min(n - 1, 60))

    def _server_wait(self, headers: Mapping[str, str], now_wall: float) -> float | None:
        retry_after = (header(headers, "Retry-After") or "").strip()
        seconds = parse_retry_after(retry_after, now_wall) if retry_after else None
        if seconds is not None:
            return seconds + (0.0 if _DELTA_SECONDS.fullmatch(retry_after) else self.reset_margin)
        reset = parse_reset(header(headers, "X-RateLimit-Reset"), now_wall)
        if reset is None or reset <= now_wall:
            return None
        return reset - now_wall + self.reset_margin
