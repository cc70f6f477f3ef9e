"""The circuit breaker: when Flameup stays unreachable, the run stops sending.

Before any answer (:attr:`Breaker.reached`), an unreachable host is a wrong URL or no network:
the engine raises ``TransportError`` after the short first-contact budget
(:func:`unreachable_error`). After one, ``RetryPolicy.outage_batches`` batches in a row that
spent their retries on connection errors or 5xx open the breaker: nothing more is sent and
every row not delivered is ``failed`` with :attr:`Breaker.reason`; a healthy answer ends the
streak. Shared by the engine's threads under a lock (``docs/behaviour/outages.md``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ..exceptions import TransportError

__all__ = ["Breaker", "unreachable_error"]


class Breaker:
    """Whether this run may still send, from what its requests met."""

    def __init__(self, threshold: int | None, clock: Callable[[], float] = time.time) -> None:
        self._threshold = threshold
        self._clock = clock
        self._lock = threading.Lock()
        self._streak = 0
        self._trouble_since: float | None = None
        self._last_cause = "unknown"
        self.reason: str | None = None
        """Why the run stopped sending; None while it has not."""
        self.reached = False
        """Some request of this run has had an answer (any status)."""
        self.opened = threading.Event()
        """Set once the run stops sending."""

    def answered(self, *, healthy: bool) -> None:
        """A request got an answer; ``healthy`` unless it was a 5xx that will be retried."""
        with self._lock:
            self.reached = True
            if healthy:
                self._streak, self._trouble_since = 0, None

    def failed_attempt(self, cause: str) -> None:
        """A request got no answer, or a 5xx: remembers when the trouble began, and why."""
        with self._lock:
            if self._trouble_since is None:
                self._trouble_since = self._clock()
            self._last_cause = cause

    def gave_up(self) -> bool:
        """A batch spent its retries on connection errors or 5xx; True if that opens the breaker."""
        with self._lock:
            self._streak += 1
            if self._threshold is None or self._streak < self._threshold or self.opened.is_set():
                return False
            since = self._trouble_since if self._trouble_since is not None else self._clock()
            when = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            self.reason = (
                f"the run stopped because Flameup was unreachable since {when} "
                f"({self._streak} batches in a row spent their retries; last: {self._last_cause})"
            )
            self.opened.set()
            return True


def unreachable_error(error: TransportError) -> TransportError:
    """The error that ends a run whose host was never reached: where, why, what to check."""
    where = error.url or "Flameup"
    return TransportError(
        f"cannot reach {where}: {error.reason}; check FLAMEUP_BASE_URL and the network",
        reason=error.reason,
        url=error.url,
        unreachable=True,
    )
