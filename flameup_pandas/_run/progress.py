"""How a run shows its progress: the one place that picks a bar or log lines.

:func:`open_progress` gives a :class:`Meter`: nothing (progress off, or one request), tqdm's
widget in a notebook, its text bar on a terminal, else INFO records on the
``flameup_pandas.progress`` logger at most every :attr:`Progress.every` seconds plus one at the
end, never a carriage return, e.g. ``upsert: 120,000/1,000,000 rows (12%), 1,200 requests, up
to 16 in flight, 0 failed, 2,300 rows/s, about 7 min left``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from .._send.pacing import ASSUMED_LIMIT

__all__ = ["DOCUMENTED_RATE", "LogMeter", "Meter", "Progress", "duration", "open_progress"]

logger = logging.getLogger("flameup_pandas.progress")

DOCUMENTED_RATE = ASSUMED_LIMIT  # requests a minute a key may make (Flameup's rate-limit page)
ONE_REQUEST = 100  # a run this small is over before a bar would be read


@dataclass(frozen=True)
class Progress:
    """How to show progress: ``progress=Progress(every=60)`` logs at most once a minute.

    ``style`` is ``"auto"`` (a bar in a notebook or a terminal, log lines anywhere else),
    ``"bar"`` or ``"log"``. ``progress=True`` is ``Progress()``, ``progress=False`` shows nothing.

    >>> Progress(every=0)
    Traceback (most recent call last):
    ...
    ValueError: Progress.every must be a positive number of seconds, got 0
    """

    every: float = 10.0
    """Seconds between two progress log records (the bars redraw as tqdm does)."""
    style: Literal["auto", "bar", "log"] = "auto"

    def __post_init__(self) -> None:
        every = self.every
        if isinstance(every, bool) or not (
            isinstance(every, int | float) and math.isfinite(every) and every > 0
        ):
            raise ValueError(f"Progress.every must be a positive number of seconds, got {every!r}")
        if self.style not in ("auto", "bar", "log"):
            raise ValueError(f"Progress.style must be 'auto', 'bar' or 'log', got {self.style!r}")


class Meter:
    """What a run reports to as rows settle; this one shows nothing (progress off)."""

    def update(self, rows: int, failed: int = 0) -> None: ...

    def set_total(self, total: int | None) -> None: ...

    def close(self) -> None: ...


def open_progress(
    progress: bool | Progress,
    total: int | None,
    *,
    desc: str = "upsert",
    requests: Callable[[], int] | None = None,
    in_flight: Callable[[], int] | None = None,
) -> Meter:
    """The meter of a run of ``total`` rows (None: unknown), showing ``requests``, ``in_flight``."""
    if not isinstance(progress, bool | Progress):
        raise TypeError(f"progress must be True, False or a Progress, got {progress!r}")
    if progress is False or (total is not None and total <= ONE_REQUEST):
        return Meter()
    if progress is True:
        progress = Progress()
    style = progress.style
    if style == "auto":
        try:
            terminal = sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):  # a replaced or closed stderr
            terminal = False
        style = "bar" if in_notebook() or terminal else "log"
    if style == "log":
        return LogMeter(
            total, desc=desc, every=progress.every, requests=requests, in_flight=in_flight
        )
    return _Bar(total, desc, in_flight)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is never a terminal, yet a widget shows)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class _Bar(Meter):
    """tqdm's bar: the widget in a notebook, text in a terminal."""

    def __init__(self, total: int | None, desc: str, in_flight: Callable[[], int] | None) -> None:
        if in_notebook():
            from tqdm.auto import tqdm
        else:
            from tqdm.std import tqdm
        self._bar: Any = tqdm(
            total=total, unit="row", desc=desc, dynamic_ncols=True, leave=True, file=sys.stderr
        )
        self._failed = 0
        self._in_flight = in_flight

    def update(self, rows: int, failed: int = 0) -> None:
        self._failed += failed
        postfix = {}
        if self._in_flight is not None:
            postfix["in_flight"] = f"{self._in_flight()}"
        if self._failed:
            postfix["failed"] = f"{self._failed:,}"
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(rows)

    def set_total(self, total: int | None) -> None:
        self._bar.total = total
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@dataclass(eq=False)
class LogMeter(Meter):
    """Progress as log records: at most one every ``every`` seconds, and one at the end."""

    total: int | None
    _: KW_ONLY
    desc: str = "upsert"
    every: float = 10.0
    requests: Callable[[], int] | None = None
    in_flight: Callable[[], int] | None = None
    clock: Callable[[], float] = time.monotonic
    done: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)
    closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.started = self.last = self.clock()

    def update(self, rows: int, failed: int = 0) -> None:
        self.done += rows
        self.failed += failed
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            logger.info("%s", self.line(now))

    def set_total(self, total: int | None) -> None:
        self.total = total

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            logger.info("%s", self.line(self.clock(), final=True))

    def line(self, now: float, *, final: bool = False) -> str:
        """``upsert: 120,000/1,000,000 rows (12%), 1,200 requests, up to 16 in flight, ...``."""
        elapsed = max(now - self.started, 0.0)
        parts = [f"{self.done:,} rows"]
        if self.total:
            share = math.floor(100 * self.done / self.total)
            parts = [f"{self.done:,}/{self.total:,} rows ({share}%)"]
        if self.requests is not None:
            parts.append(f"{self.requests():,} requests")
        if self.in_flight is not None:
            parts.append(f"up to {self.in_flight():,} in flight")
        parts.append(f"{self.failed:,} failed")
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(f"{rate:,.0f} rows/s")
        if final:
            parts.append(f"in {duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"about {duration((self.total - self.done) / rate)} left")
        return f"{self.desc}: " + ", ".join(parts)


def duration(seconds: float) -> str:
    """A duration as people say it: ``40 s``, ``7 min``, ``2 h 5 min``.

    >>> duration(40.2), duration(419), duration(7500)
    ('40 s', '7 min', '2 h 5 min')
    """
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
