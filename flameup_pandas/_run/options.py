"""A run's options, defined once: how rows become people (:class:`Rules`), how they are sent
(:class:`Delivery`) and what the run keeps and shows (:class:`Run`).

Every entry point turns its keywords into these with :func:`split_options` (events:
:func:`split_track_options`, with :class:`EventRuleOptions` and :class:`EventSending`), so a
new option is one field of its class plus one line of its typed keywords
(``tests/test_options.py`` pins that they agree).
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from .._events.rules import EventRules
from .._people.mapping import USER_ID_ALIASES
from .._send.client import FlameupClient, Timeout
from .._send.delivery import Deliverer
from .._send.pacing import MAX_IN_FLIGHT, shared_limiter
from .._send.retry import RetryPolicy
from .._storage import StorageOptions
from ..exceptions import ConfigurationError, MappingError
from .changes import parse_limit
from .plan import Rules, Sender
from .progress import Progress

if TYPE_CHECKING:
    import pandera.pandas as pandera

__all__ = [
    "Delivery",
    "DeliveryOptions",
    "EventRuleOptions",
    "EventSending",
    "EventSendingOptions",
    "Options",
    "RuleOptions",
    "Run",
    "RunOptions",
    "SharedRunOptions",
    "TrackOptions",
    "split_options",
    "split_track_options",
]


class RuleOptions(TypedDict, total=False):
    """The keywords of :class:`Rules` that every entry point takes (defaults: ``Rules``)."""

    mapping: Mapping[str, Hashable] | None
    traits: Sequence[Hashable] | None
    exclude: Sequence[Hashable] | None
    schema: type[pandera.DataFrameModel] | pandera.DataFrameSchema | None
    send_nulls: bool
    naive_timestamps: Literal["error", "utc"]


class DeliveryOptions(TypedDict, total=False):
    """The keywords of :class:`Delivery` (defaults and meaning: ``Delivery``)."""

    client: FlameupClient | None
    api_key: str | None
    base_url: str | None
    timeout: Timeout | float | tuple[float, float] | None
    allow_http: bool
    rate_limit: float | None
    concurrency: int | None
    retry: RetryPolicy | None


class SharedRunOptions(TypedDict, total=False):
    """The keywords of :class:`Run` that ``upsert`` and ``track`` both take, meaning the same
    (defaults and meaning: ``Run``)."""

    state: str | Path | None
    dry_run: bool
    progress: bool | Progress
    results: str | Path | None
    filesystem: Any
    storage_options: Mapping[str, Any] | None
    max_duration: float | None


class RunOptions(SharedRunOptions, total=False):
    """The keywords of :class:`Run` (defaults and meaning: ``Run``)."""

    full_refresh: bool
    max_changes: int | float | str | None
    max_creates: int | float | str | None
    complete_source: bool
    state_values: bool


class Options(RuleOptions, DeliveryOptions, RunOptions, total=False):
    """Every keyword shared by the entry points that send: rules, delivery and the run's."""


class EventRuleOptions(TypedDict, total=False):
    """The keywords of :class:`~flameup_pandas._events.rules.EventRules` (defaults and
    meaning there): which columns make an event; ``mapping`` as ``upsert`` takes it (only
    ``userId`` and ``email``)."""

    event: str | None
    event_column: Hashable | None
    timestamp: Hashable
    user_id: Hashable
    email: Hashable
    mapping: Mapping[str, Hashable] | None
    parameters: Sequence[Hashable] | None
    exclude: Sequence[Hashable]
    event_id_column: Hashable | None
    naive_timestamps: Literal["error", "utc"]
    future_tolerance: dt.timedelta


class EventSendingOptions(TypedDict, total=False):
    """The keywords of :class:`EventSending` (defaults and meaning: ``EventSending``)."""

    workspace_id: str | None
    max_resends: int


class TrackOptions(
    EventRuleOptions, DeliveryOptions, SharedRunOptions, EventSendingOptions, total=False
):
    """Every keyword of the entry points that send events: rules, delivery and the run's
    (those :class:`Run` options that mean the same for events: :class:`SharedRunOptions`)."""


@dataclass(frozen=True)
class EventSending:
    """How events whose answer was lost are settled.

    >>> EventSending().max_resends
    3
    """

    workspace_id: str | None = None
    """The workspace whose events listing is searched for a lost answer; None: the one a
    listed person names."""
    max_resends: int = 3
    """How often an event whose answer was lost, and which the listing shows absent, is sent
    again before it is ``failed``."""

    def __post_init__(self) -> None:
        resends = self.max_resends
        if isinstance(resends, bool) or not isinstance(resends, int) or resends < 0:
            raise ValueError(f"max_resends must be an int of at least 0, got {resends!r}")


@dataclass(frozen=True)
class Run:
    """What a run keeps and shows: its sync state, its results file, its progress.

    >>> Run(state="people.state.parquet").dry_run
    False
    """

    state: str | Path | None = None
    """The sync state: only new or changed people are sent, and what Flameup confirmed is
    recorded. A local path or a URI (``s3://``, ``gs://``, ``az://``), or a path on
    ``filesystem``."""
    full_refresh: bool = False
    """Send everyone, whatever the state says (and record them in it)."""
    dry_run: bool = False
    """Validate, encode and diff; send nothing."""
    progress: bool | Progress = True
    """A progress bar (tqdm), or a :class:`~flameup_pandas.Progress` to report to."""
    results: str | Path | None = None
    """A parquet file (or URI) of per-row results, written in input order as rows settle."""
    max_duration: float | None = None
    """Seconds after which no request is started; the rows left are ``skipped`` and a rerun
    with the same state continues."""
    filesystem: Any = None
    """An fsspec or pyarrow filesystem that ``state``, ``results`` and a source path are on."""
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False)
    """Keywords for the filesystem of each URI (fsspec's storage options, as pandas takes
    them: ``{"endpoint_url": ..., "profile": ...}`` for ``s3://``) where the environment is
    not enough; local paths are unaffected. Not with ``filesystem``."""
    max_changes: int | float | str | None = None
    """The change guard: plan first, and stop before any request when more people would be
    updated than this: a number (``500``), a fraction of the source's people (``0.05``) or
    ``"5%"``. See :class:`~flameup_pandas.ChangeGuardError`."""
    max_creates: int | float | str | None = None
    """The same guard for people the state does not know (creates do not count against
    ``max_changes``)."""
    complete_source: bool = False
    """The source holds everyone: a plan lists the people of the state that are not in it as
    ``gone`` (a count and examples, in its summary). Nothing is ever deleted."""
    state_values: bool = False
    """Keep in the state, beside the hashes, the values each person was last sent (its
    JSON), so a plan shows each changed field's value before and after
    (``flameup_before``/``flameup_after``) with no request. Off by default: it makes the
    state several times larger (see the plan guide for the measured size). A plan with it
    shows what the state holds; a run with it records the values of the people it sends."""

    @property
    def storage(self) -> Any:
        """What paths are opened with: ``filesystem``, the storage options, or None (the
        environment of each URI's scheme)."""
        if self.storage_options:
            return StorageOptions(dict(self.storage_options))
        return self.filesystem

    def __post_init__(self) -> None:
        if self.filesystem is not None and self.storage_options:
            raise ConfigurationError(
                "give filesystem= or storage_options=, not both (the options are for the "
                "filesystems built from URIs)"
            )
        for name in ("full_refresh", "dry_run", "complete_source", "state_values"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.state_values and self.state is None:
            raise ConfigurationError(
                "state_values=True keeps the values sent in the sync state: pass state="
            )
        limit = self.max_duration
        if isinstance(limit, bool) or not isinstance(limit, int | float | None):
            raise TypeError(f"max_duration must be a number of seconds, got {limit!r}")
        if limit is not None and not limit >= 0:
            raise ValueError(f"max_duration must be at least 0, got {limit!r}")
        for name in ("max_changes", "max_creates"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, parse_limit(getattr(self, name), name))

    @property
    def guarded(self) -> bool:
        """Whether the run plans first (a change guard is set)."""
        return self.max_changes is not None or self.max_creates is not None


@dataclass(frozen=True)
class Delivery:
    """How a run sends: where to, with which key, how fast, how many at once, how persistently.

    A value, checked when built, so a bad option fails before any row is read. ``open()``
    makes the run's :class:`Sender`: a client (unless one is given), the key's process-wide
    rate limiter and a deliverer.

    >>> Delivery(concurrency=8).concurrency
    8
    >>> Delivery(concurrency=0)
    Traceback (most recent call last):
    ...
    ValueError: concurrency must be at least 1, got 0
    """

    client: FlameupClient | None = None
    """An open client to send through (then the key, URL, timeout and allow_http are its)."""
    api_key: str | None = field(default=None, repr=False)
    """The key; ``FLAMEUP_API_KEY`` when None. Never shown in a repr."""
    base_url: str | None = None
    """The API's URL; ``FLAMEUP_BASE_URL`` or Flameup's when None."""
    timeout: Timeout | float | tuple[float, float] | None = None
    """Per-request connect/read seconds; :class:`Timeout`'s defaults when None."""
    allow_http: bool = False
    """Allow plain ``http://`` to a host other than loopback."""
    rate_limit: float | None = None
    """A cap of ours: at most this many requests in any 60 s for this key, to leave room for
    other jobs. None (the default): only the budget the server announces limits the run."""
    concurrency: int | None = None
    """Requests in flight at once. None (the default): as many as the rate budget and the
    server's latency call for, fewer when it shows strain, at most 32 (see
    :mod:`flameup_pandas._send.pacing`); a number fixes it."""
    retry: RetryPolicy | None = None
    """Which failures are retried and how long to wait; :class:`RetryPolicy` () when None."""

    def __post_init__(self) -> None:
        concurrency = self.concurrency
        if isinstance(concurrency, bool) or not isinstance(concurrency, int | None):
            raise TypeError(f"concurrency must be an int or None, got {concurrency!r}")
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        rate = self.rate_limit
        if rate is not None and (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not (math.isfinite(rate) and rate > 0)
        ):
            raise ValueError(f"rate_limit must be a positive number or None, got {rate!r}")

    def open(self) -> Sender:
        """The run's sender: a client (ours to close, unless one was given), the key's shared
        rate budget and a deliverer."""
        client = self.client or FlameupClient(
            self.api_key,
            self.base_url,
            timeout=self.timeout or Timeout(),
            allow_http=self.allow_http,
            pool_size=self.concurrency or MAX_IN_FLIGHT,
        )
        limiter = shared_limiter(client.fingerprint, self.rate_limit)
        deliverer = Deliverer(
            client, limiter=limiter, retry=self.retry, concurrency=self.concurrency
        )
        return Sender(client, deliverer, self.client is None)


RULE_KEYWORDS = frozenset(RuleOptions.__annotations__)
DELIVERY_KEYWORDS = frozenset(DeliveryOptions.__annotations__)
RUN_KEYWORDS = frozenset(RunOptions.__annotations__)
EVENT_RULE_KEYWORDS = frozenset(EventRuleOptions.__annotations__)
SHARED_RUN_KEYWORDS = frozenset(SharedRunOptions.__annotations__)
SENDING_KEYWORDS = frozenset(EventSendingOptions.__annotations__)
TRACK_KEYWORDS = EVENT_RULE_KEYWORDS | DELIVERY_KEYWORDS | SHARED_RUN_KEYWORDS | SENDING_KEYWORDS
READ_KEYWORDS = DELIVERY_KEYWORDS - {"concurrency"}  # readers take one page at a time


def split_options(
    where: str, options: Mapping[str, Any], **rules_extra: Any
) -> tuple[Rules, Delivery, Run]:
    """The :class:`Rules`, :class:`Delivery` and :class:`Run` that the options of ``where``
    describe (``rules_extra``: rule keywords only some take, ``on_duplicate``); an unknown
    keyword is a ``TypeError`` naming it and the nearest known one, as Python's would be."""
    check_keywords(where, options, RULE_KEYWORDS | DELIVERY_KEYWORDS | RUN_KEYWORDS)
    rules = Rules(**{k: v for k, v in options.items() if k in RULE_KEYWORDS}, **rules_extra)
    delivery = Delivery(**{k: v for k, v in options.items() if k in DELIVERY_KEYWORDS})
    run = Run(**{k: v for k, v in options.items() if k in RUN_KEYWORDS})
    return rules, delivery, run


def split_track_options(
    where: str, options: Mapping[str, Any]
) -> tuple[EventRules, Delivery, Run, EventSending]:
    """:func:`split_options` for events: also :class:`EventRules` and :class:`EventSending`."""
    check_keywords(where, options, TRACK_KEYWORDS)
    rules = event_rules_of(where, {k: v for k, v in options.items() if k in EVENT_RULE_KEYWORDS})
    delivery = Delivery(**{k: v for k, v in options.items() if k in DELIVERY_KEYWORDS})
    run = Run(**{k: v for k, v in options.items() if k in SHARED_RUN_KEYWORDS})
    sending = EventSending(**{k: v for k, v in options.items() if k in SENDING_KEYWORDS})
    return rules, delivery, run, sending


def event_rules_of(where: str, options: Mapping[str, Any]) -> EventRules:
    """The :class:`EventRules` of an entry point that sends nothing (``validate_events``); a
    ``mapping=`` (as ``upsert`` takes it: field -> column) becomes ``user_id=``/``email=``."""
    check_keywords(where, options, EVENT_RULE_KEYWORDS)
    values = dict(options)
    mapping = values.pop("mapping", None) or {}
    fields = {alias: "user_id" for alias in USER_ID_ALIASES} | {"email": "email"}
    unknown = sorted(str(name) for name in mapping if name not in fields)
    if unknown:
        raise MappingError(
            f"track's mapping= names who an event is for (userId, email); got {unknown}"
        )
    values |= {fields[name]: column for name, column in mapping.items()}
    if "exclude" in values:
        values["exclude"] = tuple(values["exclude"])
    return EventRules(**values)


def rules_of(where: str, options: Mapping[str, Any]) -> Rules:
    """The :class:`Rules` of an entry point that sends nothing (``validate``, ``to_people``)."""
    check_keywords(where, options, RULE_KEYWORDS)
    return Rules(**options)


def check_keywords(where: str, options: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}{hint}")
