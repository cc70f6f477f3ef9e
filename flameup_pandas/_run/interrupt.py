"""Ctrl-C and SIGTERM: the one place that turns an interrupt into a partial result.

Entry points send inside :func:`interruptible` and settle answers through :func:`deliver_all`.
On an interrupt no new request starts and none in flight is waited for; answered batches are
settled as answered, one in flight is ``failed`` with :data:`IN_FLIGHT`, one not sent with
:data:`NOT_SENT`; the entry point raises :class:`~flameup_pandas.exceptions.UpsertInterrupted`
(:func:`interrupted`). A signal waits while an answer is being settled (:func:`shielded`), so
the state and results file are never half-written. Handlers are installed in the main thread
only, and restored after (``docs/behaviour/interrupts.md``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .._send.delivery import IN_FLIGHT, NOT_SENT, Stream
from ..exceptions import ReadInterrupted, UpsertInterrupted

__all__ = [
    "IN_FLIGHT",
    "NOT_SENT",
    "Stopped",
    "deliver_all",
    "interrupted",
    "interruptible",
    "shielded",
]

SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")
Out = TypeVar("Out")
Stop = TypeVar("Stop", UpsertInterrupted, ReadInterrupted)


class Stopped(KeyboardInterrupt):
    """Raised in the main thread by our handler for SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Guard:
    """Process-wide: signal handlers are, too. Touched only from the main thread."""

    depth = 0
    shielded = 0
    pending: int | None = None
    saved: dict[int, Any] = {}  # noqa: RUF012  (one guard per process, never copied)


def _handle(signum: int, frame: object) -> None:
    if _Guard.shielded:
        _Guard.pending = signum
        return
    raise Stopped(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise :class:`Stopped` in here (in the main thread; no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Guard.depth == 0:
        _Guard.saved = {int(number): signal.getsignal(number) for number in SIGNALS}
        for number in SIGNALS:
            signal.signal(number, _handle)
    _Guard.depth += 1
    try:
        yield
    finally:
        _Guard.depth -= 1
        if _Guard.depth == 0:
            for signum, handler in _Guard.saved.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
            _Guard.pending = None


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A signal arriving in here is raised when the block ends, not in the middle of it."""
    if _Guard.depth == 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    _Guard.shielded += 1
    try:
        yield
    finally:
        _Guard.shielded -= 1
        if _Guard.shielded == 0 and _Guard.pending is not None:
            pending, _Guard.pending = _Guard.pending, None
            raise Stopped(pending)


def deliver_all(stream: Stream[T, Out], settle: Callable[[T, list[Out]], None]) -> None:
    """Settle every batch as answered; on an interrupt, settle what the stopped stream gives."""
    try:
        for tag, outcomes in stream:
            with shielded():
                settle(tag, outcomes)
    except KeyboardInterrupt:
        with shielded():
            for tag, outcomes in stream.stop():
                settle(tag, outcomes)
        raise


def interrupted(
    exc: BaseException, result: Any, *, finished: int, rows: int | None, what: str = "upsert"
) -> UpsertInterrupted:
    """The :class:`UpsertInterrupted` an entry point raises, holding its partial ``result``."""
    of = f" of {rows:,}" if rows is not None else ""
    message = (
        f"{finished:,}{of} rows finished; .result holds them, and the rows not answered are "
        "failed (rerun with the same state to send only those)"
    )
    return stopped(exc, UpsertInterrupted, what, message, result)


def stopped(exc: BaseException, cls: type[Stop], what: str, message: str, result: object) -> Stop:
    """A ``cls`` interrupt carrying ``result``: how ``what`` was stopped, then ``message``."""
    signum = getattr(exc, "signum", signal.SIGINT)  # SIGTERM when our handler saw one
    name = signal.Signals(signum).name
    how = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {name}"
    return cls(f"{what} {how}: {message}", result=result, signal=signum)


def unfinished(errors: Iterable[object]) -> int:
    """How many of these flameup_error values say the row was cut short by the interrupt."""
    return sum(error in (NOT_SENT, IN_FLIGHT) for error in errors)
