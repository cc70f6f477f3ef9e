"""Requests in flight: worker threads deliver batches and answers come back as they arrive.

What a batch is and how it is sent is the caller's (a
:class:`~flameup_pandas._send.delivery.Deliverer`'s ``send``, or an event sender).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .delivery import Deliverer

__all__ = ["IN_FLIGHT", "NOT_SENT", "Stream", "mark_sent"]

NOT_SENT = "interrupted before sending"
IN_FLIGHT = "interrupted; may have been stored: rerun with the state to confirm"

T = TypeVar("T")
R = TypeVar("R")
Out = TypeVar("Out")


class Stream(Generic[T, Out]):
    """Batches delivered by worker threads; iterating yields ``(tag, outcomes)`` as each batch
    is answered.

    There are as many workers as requests may be in flight (the workers grow with an adaptive
    limit), and up to two batches per place are handed out at once, so a worker that finishes
    starts its next request without waiting for the consumer; the first batch goes alone, so a
    bad key or URL costs one request. The workers are daemon threads: :meth:`stop` returns at
    once, never waiting for a request in flight or its retries, and an interpreter that exits
    does not wait for them either.
    """

    def __init__(
        self,
        deliverer: Deliverer,
        batches: Iterable[tuple[T, Sequence[Any]]],
        work: Callable[[Any], list[Out]],
        failed: Callable[[str], Out],
    ) -> None:
        self._deliverer = deliverer
        self._batches = batches
        self._work = work
        self._failed = failed
        self._pending: dict[Future[list[Out]], tuple[T, int, threading.Event]] = {}
        self._done: queue.SimpleQueue[Future[list[Out]]] = queue.SimpleQueue()
        self._workers: _Workers | None = None

    def __iter__(self) -> Iterator[tuple[T, list[Out]]]:
        self._workers = workers = _Workers()
        places = self._deliverer.places
        try:
            for index, (tag, people) in enumerate(self._batches):
                if self._deliverer.breaker.opened.is_set():
                    reason = f"not sent: {self._deliverer.breaker.reason}"
                    yield tag, [self._failed(reason) for _ in people]
                    continue
                while len(self._pending) >= 2 * places.limit:
                    yield self._collect()
                workers.grow_to(places.limit)
                future, sent = workers.submit(self._work, people)
                self._pending[future] = (tag, len(people), sent)
                future.add_done_callback(self._done.put)
                while index == 0 and self._pending:
                    yield self._collect()
            while self._pending:
                yield self._collect()
        except BaseException:
            self._halt()
            raise
        workers.shutdown(wait=True)

    def stop(self) -> list[tuple[T, list[Out]]]:
        """End the stream now; every batch handed out and not yet yielded, with its outcomes.

        An answered batch keeps its answer. Every person of the others is ``failed``: with
        :data:`IN_FLIGHT` when a request of its batch was sent (it may have been stored), else
        :data:`NOT_SENT` (a batch still waiting for the budget or a place in flight too).
        """
        self._halt()
        left: list[tuple[T, list[Out]]] = []
        for future, (tag, size, sent) in self._pending.items():
            if not future.cancel() and future.done() and future.exception() is None:
                left.append((tag, future.result()))
            else:  # (a cancelled batch was never sent)
                error = IN_FLIGHT if sent.is_set() else NOT_SENT
                left.append((tag, [self._failed(error) for _ in range(size)]))
        self._pending.clear()
        return left

    def _halt(self) -> None:
        self._deliverer.abort()
        for future in self._pending:
            future.cancel()
        if self._workers is not None:
            self._workers.shutdown(wait=False)

    def _collect(self) -> tuple[T, list[Out]]:
        future = self._done.get()  # the next answered, in O(1) however many are pending
        outcomes = future.result()  # (a batch that raised stays pending, for stop())
        return self._pending.pop(future)[0], outcomes


_CURRENT = threading.local()
"""Set once a request of the call this worker thread runs went on the wire (its ``sent``)."""


def mark_sent() -> None:
    sent = getattr(_CURRENT, "sent", None)
    if sent is not None:
        sent.set()


class _Workers:
    """Daemon threads running submitted calls, as many as :meth:`grow_to` asked for; a stopped
    run never waits for them."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[
            tuple[Future[Any], threading.Event, Callable[..., Any], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def grow_to(self, n: int) -> None:
        """At least ``n`` threads (never fewer than there were)."""
        while len(self._threads) < n:
            thread = threading.Thread(
                target=self._work, name=f"flameup-send-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def submit(self, call: Callable[..., R], *args: Any) -> tuple[Future[R], threading.Event]:
        """Run ``call(*args)``: its future, and an event set once a request of it is sent."""
        future: Future[R] = Future()
        sent = threading.Event()
        # in the submitter's context: the run's observers see its requests (observe.request)
        self._queue.put((future, sent, contextvars.copy_context().run, (call, *args)))
        return future, sent

    def shutdown(self, *, wait: bool) -> None:
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, sent, call, args = item
            if not future.set_running_or_notify_cancel():
                continue
            _CURRENT.sent = sent
            try:
                result = call(*args)
            except BaseException as exc:  # handed to the consumer, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                _CURRENT.sent = None
