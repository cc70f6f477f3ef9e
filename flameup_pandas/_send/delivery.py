"""Sending batches: pacing, retries, split retries, concurrency.

A :class:`Deliverer` answers one :class:`PersonOutcome` for every person of every batch, never
losing one: connection errors, timeouts, 5xx, 429 and a 2xx that is not Flameup's answer are
retried under the :class:`RetryPolicy`; a 400/409/422 rejects the people the server names and
resends the rest, or splits the batch in halves until the bad people stand alone (a 413 splits
too); 401/403 stop the run; an outage opens the breaker. ``docs/behaviour/errors.md``.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from .._people.outgoing import Outgoing, as_outgoing, encode_batch
from .._people.person import IDENTITY_KEYS, identity_of, is_new
from ..exceptions import APIError, AuthenticationError, TransportError
from . import observe
from .breaker import Breaker, unreachable_error
from .client import Answer, FlameupClient, error_class, is_batch_answer
from .pacing import InFlight, RateLimiter, Slot
from .retry import RetryPolicy

__all__ = [
    "IN_FLIGHT",
    "NOT_SENT",
    "Deliverer",
    "GaveUp",
    "PersonOutcome",
    "Stream",
    "is_batch_answer",
]


logger = logging.getLogger("flameup_pandas")

T = TypeVar("T")
Out = TypeVar("Out")
People = Sequence[Mapping[str, Any] | Outgoing]

SPLIT_STATUSES = frozenset({400, 409, 413, 422})
STRAIN_STATUSES = frozenset({502, 503, 504})
"""Answers that say the server (or its gateway) is overloaded: fewer requests in flight."""
_FIELD_INDEX = re.compile(r"^people\[(\d+)\]\.?(.*)$")
NOT_SENT = "interrupted before sending"
IN_FLIGHT = "interrupted; may have been stored: rerun with the state to confirm"


@dataclass(frozen=True)
class PersonOutcome:
    """What became of one person: ``created``, ``updated``, ``rejected`` or ``failed``."""

    status: str
    flameup_id: str | None = None
    error: str | None = None


@dataclass
class DeliveryStats:
    """Counters for one run, safe to update from several threads."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    concurrency: int = 0
    """The fixed ``concurrency=N``; 0 when the number in flight adapted."""
    places: InFlight = field(default_factory=InFlight, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def in_flight(self) -> int:
        """The most requests that were in flight at once."""
        return self.places.peak

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        return counts | {"in_flight": self.in_flight}


class GaveUp(Exception):
    """A request spent its retries; ``answer`` is the last (error) answer, None if none came."""

    def __init__(self, message: str, answer: Answer | None = None) -> None:
        super().__init__(message)
        self.answer = answer

    def error(self, what: str) -> Exception:
        if self.answer is None:
            return TransportError(f"{what}: {self}")
        return error_class(self.answer.status)(f"{what}: {self}", status=self.answer.status)


class Deliverer:
    """Delivers batches of people through one client and rate budget: ``send()`` one and wait,
    ``stream()`` many, ``concurrency`` in flight (default: adaptive, ``pacing.InFlight``)."""

    def __init__(
        self,
        client: FlameupClient,
        *,
        limiter: RateLimiter,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.places = InFlight(concurrency)  # (which refuses a concurrency below 1)
        self.stats = DeliveryStats(concurrency=concurrency or 0, places=self.places)
        self.breaker = Breaker(self.retry.outage_batches)
        self._rng = random.Random(seed)
        self._abort = threading.Event()

    def send(self, people: People) -> list[PersonOutcome]:
        """Deliver one batch (at most 100 people), splitting it if the server rejects it."""
        if not people:
            return []
        people = [as_outgoing(p) for p in people]
        body = encode_batch(people)
        try:
            answer = self.request(
                lambda: self.client.post_batch(body), f"batch of {len(people)}", is_batch_answer
            )
        except GaveUp as exc:
            return [PersonOutcome("failed", error=str(exc))] * len(people)
        if answer.ok:
            return read_success(people, answer)
        if answer.status in (401, 403):
            raise auth_error(answer)
        if answer.status in SPLIT_STATUSES:
            return self._isolate(people, answer)
        raise stop_error(answer)

    def stream(
        self,
        batches: Iterable[tuple[T, Sequence[Any]]],
        work: Callable[[Sequence[Any]], list[Any]] | None = None,
        failed: Callable[[str], Any] | None = None,
    ) -> Stream[T, Any]:
        """A :class:`Stream` of ``batches`` of people, or of another kind delivered by ``work``
        (events), ``failed`` making the outcome of one not (or maybe not) delivered."""
        return Stream(self, batches, work or self.send, failed or _failed)

    def twin(self, retry: RetryPolicy) -> Deliverer:
        """This deliverer under another retry policy, sharing all else (budget, breaker, abort)."""
        other = copy.copy(self)
        other.retry = retry
        return other

    def abort(self) -> None:
        """No request of this deliverer starts from now on; retries and pauses end."""
        self._abort.set()
        self.places.wake()

    def request(
        self,
        call: Callable[[], Answer],
        what: str,
        readable: Callable[[Answer], bool] | None = None,
    ) -> Answer:
        """One request through the shared budget, ``call`` made again for every retry the policy
        allows (a 2xx that ``readable`` refuses is retried like a 503); :class:`GaveUp` if spent."""
        policy = self.retry
        while True:
            self._check_sending(policy)
            try:
                answer = self._exchange(call, policy)
            except TransportError as exc:
                now = time.monotonic()
                policy = policy.increment(error=exc, now=now)
                self.breaker.failed_attempt(exc.reason)
                wait = policy.backoff(self._rng)
                exhausted = policy.is_exhausted(now)
                # a host never reached in this run is a wrong URL or no network: raise soon
                first_contact = exc.unreachable and not self.breaker.reached
                if first_contact and (exhausted or policy.first_contact_spent(now, wait)):
                    raise unreachable_error(exc) from exc
                if exhausted:
                    raise self._give_up(f"{exc}; {policy.describe()}", None, outage=True) from exc
                logger.info("%s: %s; retrying", what, exc)
                self._pause(wait)
                continue
            unreadable = answer.ok and readable is not None and not readable(answer)
            # a 5xx, or a 2xx that is not Flameup's (a proxy's page): Flameup is not answering
            failing = unreadable or answer.status in policy.retry_statuses
            self.breaker.answered(healthy=not failing)
            if not (unreadable or policy.should_retry_status(answer.status)):
                return answer
            policy = policy.increment(status=answer.status, now=time.monotonic())
            said = f"an answer that is not Flameup's: {answer.describe()}" if unreadable else None
            if failing:
                self.breaker.failed_attempt(said or f"HTTP {answer.status}")
            if policy.is_exhausted(time.monotonic()):
                message = f"{said or answer.error()}; {policy.describe()}"
                raise self._give_up(message, answer, outage=failing)
            if answer.status == 429:
                self.stats.add(rate_limited=1)
                # Reset and an HTTP-date Retry-After are times on the server's clock
                server_now = self.limiter.server_time()
                wait_s = policy.rate_limit_wait(answer.headers, server_now, self._rng)
                logger.info("rate limited (429); holding all senders for %.1f s", wait_s)
                self.limiter.hold_until(time.time() + wait_s)
            else:
                logger.info("%s: %s; retrying", what, said or f"HTTP {answer.status}")
                self._pause(policy.backoff(self._rng))

    def _check_sending(self, policy: RetryPolicy) -> None:
        if self.breaker.opened.is_set():
            spent = "not sent:" if policy.started is None else f"{policy.describe()};"
            raise GaveUp(f"{spent} {self.breaker.reason}")
        if self._abort.is_set():
            raise GaveUp(NOT_SENT)  # only an interrupt aborts a run without opening the breaker

    def _give_up(self, message: str, answer: Answer | None, *, outage: bool) -> GaveUp:
        if outage and self.breaker.gave_up():
            logger.warning("%s; the rows not delivered yet are failed", self.breaker.reason)
            self.abort()  # wakes the senders waiting to retry: they stop now
        return GaveUp(message, answer)

    def _exchange(self, call: Callable[[], Answer], policy: RetryPolicy) -> Answer:
        """One request, once the limiter and a place in flight allow; both hear how it went."""
        waited = self.limiter.acquire()
        slot: Slot | None = None
        try:
            slot = self.places.enter(self._abort)
            self._check_sending(policy)  # it may have stopped while waiting for a slot
            self.stats.add(requests=1)
            if (sent := getattr(_SENT, "event", None)) is not None:
                sent.set()
            retries = policy.errors + policy.rate_limits
            answer = observe.request(call, waited=waited, retries=retries)
        except BaseException as exc:
            self.limiter.release()
            # no answer (a timeout, a dropped connection) is a strain
            self.places.leave(slot, strain=isinstance(exc, TransportError))
            raise
        self.limiter.observe(answer.headers, answer.elapsed)
        strain = answer.status in STRAIN_STATUSES
        self.places.leave(slot, latency=answer.elapsed if answer.ok else None, strain=strain)
        return answer

    def _pause(self, seconds: float) -> None:
        self.stats.add(retries=1)
        self._abort.wait(seconds)

    def _isolate(self, people: People, answer: Answer) -> list[PersonOutcome]:
        error = answer.error()
        if len(people) == 1:
            return [PersonOutcome("rejected", error=rejection_message(error, 0))]
        self.stats.add(splits=1)
        if named := named_indices(error, len(people)):
            resent = iter(self.send([p for i, p in enumerate(people) if i not in named]))
            return [
                PersonOutcome("rejected", error=rejection_message(error, i))
                if i in named
                else next(resent)
                for i in range(len(people))
            ]
        middle = len(people) // 2
        return self.send(people[:middle]) + self.send(people[middle:])


_SENT = threading.local()
"""The ``sent`` event of the batch this worker delivers: set once a request of it went out."""


class Stream(Generic[T, Out]):
    """Batches delivered by worker threads; iterating yields ``(tag, outcomes)`` as each batch is
    answered. There are as many workers as requests may be in flight (the workers grow with an
    adaptive limit), and up to two batches per place are handed out at once, so a worker that
    finishes starts its next request without waiting for the consumer; the first batch goes alone,
    so a bad key or URL costs one request. The workers are daemon threads: :meth:`stop` returns at
    once, never waiting for a request in flight or its retries, nor does an exiting interpreter."""

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
        self._calls: queue.SimpleQueue[
            tuple[Future[list[Out]], threading.Event, contextvars.Context, Sequence[Any]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def __iter__(self) -> Iterator[tuple[T, list[Out]]]:
        places = self._deliverer.places
        try:
            for index, (tag, people) in enumerate(self._batches):
                if self._deliverer.breaker.opened.is_set():
                    reason = f"not sent: {self._deliverer.breaker.reason}"
                    yield tag, [self._failed(reason) for _ in people]
                    continue
                while len(self._pending) >= 2 * places.limit:
                    yield self._collect()
                while len(self._threads) < places.limit:  # (never fewer than there were)
                    thread = threading.Thread(
                        target=self._serve, name=f"flameup-send-{len(self._threads)}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
                future: Future[list[Out]] = Future()
                sent = threading.Event()
                self._pending[future] = (tag, len(people), sent)
                future.add_done_callback(self._done.put)
                # in this context: the run's observers see its requests (observe.request)
                self._calls.put((future, sent, contextvars.copy_context(), people))
                while index == 0 and self._pending:
                    yield self._collect()
            while self._pending:
                yield self._collect()
        except BaseException:
            self._halt()
            raise
        self._shutdown(wait=True)

    def stop(self) -> list[tuple[T, list[Out]]]:
        """End the stream now: every batch handed out and not yet yielded, an answered one with
        its answer, the others ``failed``: :data:`IN_FLIGHT` when a request of it was sent (it
        may have been stored), else :data:`NOT_SENT`."""
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
        self._shutdown(wait=False)

    def _shutdown(self, *, wait: bool) -> None:
        for _ in self._threads:
            self._calls.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _collect(self) -> tuple[T, list[Out]]:
        future = self._done.get()  # the next answered, in O(1) however many are pending
        outcomes = future.result()  # (a batch that raised stays pending, for stop())
        return self._pending.pop(future)[0], outcomes

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            future, sent, context, people = call
            if not future.set_running_or_notify_cancel():
                continue
            _SENT.event = sent
            try:
                result = context.run(self._work, people)
            except BaseException as exc:  # handed to the consumer, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                _SENT.event = None


_failed = functools.partial(PersonOutcome, "failed", None)
_NOT_IN_ANSWER = _failed("Flameup's answer did not include this person; rerun to confirm")


def named_indices(error: APIError, size: int) -> set[int]:
    """Positions of the people a validation error names (``people[3].email``), if all valid."""
    indices = set()
    for key in error.fields:
        if (match := _FIELD_INDEX.match(key)) is None:
            return set()
        indices.add(int(match.group(1)))
    return indices if indices and max(indices) < size else set()


def rejection_message(error: APIError, index: int) -> str:
    own = []
    for key, message in error.fields.items():
        if (match := _FIELD_INDEX.match(key)) is None:
            own.append((key, message))
        elif int(match.group(1)) == index:
            own.append((match.group(2) or "person", message))
    return _with_detail(f"HTTP {error.status} {error.message}", own)


def read_success(people: People, answer: Answer) -> list[PersonOutcome]:
    """One outcome per person of a 2xx answer, matched by identity (userId, in either shape the
    answer has, then email), never by position."""
    body = answer.body if isinstance(answer.body, dict) else {}
    refused = _refused_people(body.get("errors"), people)
    stored_people = [s for s in body.get("people") or [] if isinstance(s, dict)]
    matched = _match_people(people, stored_people)
    missing = sum(s is None for i, s in enumerate(matched) if i not in refused)
    if missing:  # say which keys the unclaimed people carried, so a new shape is seen at once
        claimed = {id(s) for s in matched if s is not None}
        strays = [s for s in stored_people if id(s) not in claimed]
        shapes = sorted({", ".join(sorted(map(str, s))) for s in strays})
        logger.warning(
            "%d of %d people sent are not in Flameup's answer (matched by %s); "
            "%d people of the answer match nobody sent, carrying the keys: %s",
            missing,
            len(matched),
            " or ".join(IDENTITY_KEYS),
            len(strays),
            "; ".join(f"[{keys}]" for keys in shapes) or "none",
        )
    created = _created_flags(matched, body)
    return [
        PersonOutcome("rejected", error=refused[i])
        if i in refused
        else _NOT_IN_ANSWER
        if stored is None
        else PersonOutcome("created" if created[i] else "updated", flameup_id=str(stored.get("id")))
        for i, stored in enumerate(matched)
    ]


def _match_people(
    people: People, stored_people: list[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    by_id: dict[str, dict[str, Any]] = {}
    by_email: dict[str, dict[str, Any]] = {}
    for stored in stored_people:
        user_id, email = identity_of(stored)
        if user_id is not None:
            by_id[user_id] = stored
        if email:
            by_email.setdefault(email, stored)
    matched: list[dict[str, Any] | None] = []
    for person in map(as_outgoing, people):
        found = None if person.user_id is None else by_id.get(person.user_id)
        if found is None and person.email:
            found = by_email.get(person.email.lower())
        matched.append(found)
    return matched


def _created_flags(matched: list[dict[str, Any] | None], body: dict[str, Any]) -> list[bool]:
    """created (``created_at == updated_at``) vs updated per person; where the answer's counts
    disagree (clocks a microsecond apart), they win when unambiguous (all created or updated)."""
    flags = [s is not None and is_new(s) for s in matched]
    created, updated = body.get("created_count"), body.get("updated_count")
    found = [s is not None for s in matched]
    if isinstance(created, int) and sum(flags) != created:
        if created == sum(found):
            return found
        if isinstance(updated, int) and updated == sum(found):
            return [False] * len(matched)
        logger.warning(
            "answer counts (%s created) disagree with its timestamps (%d)", created, sum(flags)
        )
    return flags


def _refused_people(errors: Any, people: People) -> dict[int, str]:
    """Per-person errors from a server that reports them: ``[{"index": i, "message": ...}]``."""
    refused: dict[int, str] = {}
    for item in errors if isinstance(errors, list) else ():
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < len(people):
            fields = item.get("fields")
            pairs = fields.items() if isinstance(fields, dict) else ()
            refused[index] = _with_detail(str(item.get("message") or "refused"), pairs)
    return refused


def _with_detail(message: str, pairs: Iterable[tuple[Any, Any]]) -> str:
    detail = "; ".join(f"{k}: {v}" for k, v in pairs)
    return f"{message} ({detail})" if detail else message


def auth_error(answer: Answer, permission: str = "people:write") -> AuthenticationError:
    """The error for a 401 (the key refused) or a 403 (it lacks ``permission``)."""
    error = answer.error()
    what = "was refused" if answer.status == 401 else f"lacks the {permission} permission"
    return AuthenticationError(
        f"Flameup says the API key {what} ({error.message}). "
        "Check FLAMEUP_API_KEY (a ws_live_/ws_test_ key of this workspace) and FLAMEUP_BASE_URL.",
        status=answer.status,
        request_id=error.request_id,
    )


def stop_error(answer: Answer, what: str = "") -> APIError:
    """The error for any other answer that stops the run, ``what`` asked first when given."""
    error = answer.error()
    hint = " Check FLAMEUP_BASE_URL." if answer.status in (404, 405) else ""
    return type(error)(
        f"{what}{': ' if what else ''}{error.message}.{hint}",
        status=error.status,
        fields=error.fields,
        request_id=error.request_id,
    )
