"""Rows to events: the event rules, the event's body and its key.

Values are encoded by people's value registry (:mod:`flameup_pandas._people.values`), a missing
one left out. :func:`plan_events` judges every row before anything is sent, listing every rule
a row breaks in a report like people's. The **event key** says which event a row is: the id
column's value when there is one, else a hash of what is sent (identity, name, timestamp as the
registry writes it, parameters): two rows with the same key are the same event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from .._people.column_encoders import utc_instants
from .._people.emails import plausible_email
from .._people.mapping import USER_ID_ALIASES
from .._people.schema import REPORT_COLUMNS, row_reasons
from .._people.values import RULES, column_values, is_missing, is_string, rule_for
from ..exceptions import MappingError

__all__ = ["Event", "EventPlan", "EventRules", "plan_events"]

MAX_EVENT_NAME = 255
MAX_USER_ID = 255
RESULT_COLUMNS = ("flameup_event_id", "flameup_status", "flameup_error")
Found = tuple[int, Any, str, Any]  # a broken rule: row, column, check, value

_MESSAGES = {  # the checks people have not, or name otherwise (the rest: describe_check)
    "identity_required": "neither a userId nor an email",
    "event_required": "no event name",
    "event_name": f"not an event name (1 to {MAX_EVENT_NAME} characters, no control characters)",
    "timestamp_required": "no timestamp",
    "timestamp_format": "not an ISO 8601 date-time",
    "timestamp_time_zone": "no time zone (pass naive_timestamps='utc' to read it as UTC)",
    "not_in_future": "in the future",
    "event_id_required": "no event id",
}


@dataclass(frozen=True)
class EventRules:
    """Which columns make an event, and the rules its values meet."""

    event: str | None = None
    """The event name of every row (or ``event_column``, one of the two)."""
    event_column: Hashable | None = None
    """The column holding each row's event name."""
    timestamp: Hashable = "timestamp"
    """The column of when each event occurred (tz-aware datetimes or ISO 8601 strings)."""
    user_id: Hashable = "userId"
    """The column of external ids (sent as ``external_id``)."""
    email: Hashable = "email"
    """The column of emails (the identity of a row without a userId)."""
    parameters: Sequence[Hashable] | None = None
    """The columns sent as ``parameters``; None: every column not used otherwise."""
    exclude: Sequence[Hashable] = ()
    """Columns never sent."""
    event_id_column: Hashable | None = None
    """A column whose value identifies the event (then the key is that value, not a hash)."""
    naive_timestamps: Literal["error", "utc"] = "error"
    """``"utc"``: datetimes without a time zone are read as UTC (as for people)."""
    future_tolerance: dt.timedelta = dt.timedelta(minutes=5)
    """How far ahead of this machine's clock a timestamp may be (clocks drift)."""

    def __post_init__(self) -> None:
        if (self.event is None) == (self.event_column is None):
            raise ValueError("pass exactly one of event= (one name) and event_column=")
        if self.event is not None and not _good_name(self.event):
            raise ValueError(
                f"event= must be 1 to {MAX_EVENT_NAME} characters, not only blanks, "
                f"without control characters; got {self.event!r}"
            )
        if self.naive_timestamps not in ("error", "utc"):
            raise ValueError("naive_timestamps must be 'error' or 'utc'")

    def parameter_columns(self, df: pd.DataFrame) -> list[Hashable]:
        if self.parameters is not None:
            if missing := [c for c in self.parameters if c not in df.columns]:
                raise MappingError(f"parameters= names columns the frame lacks: {missing}")
            return list(self.parameters)
        used = {self.user_id, self.email, self.event_column, self.timestamp, self.event_id_column}
        skipped = used | set(self.exclude) | set(RESULT_COLUMNS)
        return [c for c in df.columns if c not in skipped]


@dataclass(frozen=True)
class Event:
    """One event as it will be sent: its key, body and what the listing is searched by."""

    key: str
    user: str  # the external id (or the email) it is sent with: the listing's ``user_id``
    name: str
    timestamp: dt.datetime
    parameters: dict[str, Any]
    body: bytes
    by_id: bool = True  # sent with ``external_id`` (else ``email``)

    def hashed(self, timestamp: str) -> str:
        """The key of an event without an id: its content hashed, with ``timestamp`` as text."""
        who = ["u", self.user] if self.by_id else ["e", self.user.lower()]
        content = [*who, self.name, timestamp, self.parameters]
        text = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        return "h:" + hashlib.blake2b(text, digest_size=16).hexdigest()


@dataclass
class EventPlan:
    """Every row judged: the events to send (None for an invalid row) and the report."""

    events: list[Event | None]
    report: pd.DataFrame
    reasons: list[str | None]


def plan_events(df: pd.DataFrame, rules: EventRules, now: dt.datetime) -> EventPlan:
    """Validate and encode every row of ``df`` (``now``: the clock the future is judged by);
    without a ``userId`` column, another of people's names for it (``user_id``...) is used."""
    if rules.user_id == "userId" and "userId" not in df.columns:
        found = next((alias for alias in USER_ID_ALIASES if alias in df.columns), "userId")
        rules = dataclasses.replace(rules, user_id=found)
    n = len(df)
    for column in (rules.timestamp, rules.event_column, rules.event_id_column):
        if column is not None and column not in df.columns:
            raise MappingError(f"the frame has no column {column!r}")
    if rules.user_id not in df.columns and rules.email not in df.columns:
        raise MappingError(
            f"the frame has neither a {rules.user_id!r} nor an {rules.email!r} column"
        )
    users = _column(df, rules.user_id)
    emails = _column(df, rules.email)
    names = _column(df, rules.event_column) if rules.event_column is not None else None
    stamps, unreadable = _timestamps(df[rules.timestamp], rules)
    ids = _column(df, rules.event_id_column) if rules.event_id_column is not None else None
    when = pd.Series(stamps, dtype="datetime64[us, UTC]")
    latest = pd.Timestamp(now + rules.future_tolerance).tz_convert("UTC")
    broken = _broken(rules, (users, emails, names, when, ids), latest, {f[0] for f in unreadable})
    parameters, value_problems = _parameters(df, rules)
    report = _report(sorted(broken + unreadable + value_problems, key=lambda found: found[0]))
    reasons = row_reasons(report, n, _MESSAGES)
    texts = column_values(when, "utc", str(rules.timestamp))[0]
    events: list[Event | None] = [None] * n
    for i in [row for row, reason in enumerate(reasons) if reason is None]:
        by_id = _present_string(users[i])
        user = str(users[i] if by_id else emails[i])
        name = str(rules.event if names is None else names[i])
        body: dict[str, Any] = {"external_id" if by_id else "email": user, "event": name}
        body.update(parameters=parameters[i], timestamp=texts[i])
        at = pd.Timestamp(stamps[i]).to_pydatetime()
        event = Event("", user, name, at, parameters[i], orjson.dumps(body), by_id)
        key = "id:" + str(ids[i]) if ids is not None else event.hashed(texts[i])
        events[i] = dataclasses.replace(event, key=key)
    return EventPlan(events, report, reasons)


def _column(df: pd.DataFrame, name: Hashable | None) -> list[Any]:
    if name is None or name not in df.columns:
        return [None] * len(df)
    return [None if is_missing(v) else v for v in df[name].astype(object).tolist()]


def _present_string(value: Any) -> bool:
    return is_string(value) and bool(value.strip())


def _good_name(value: Any) -> bool:
    return _present_string(value) and len(value) <= MAX_EVENT_NAME and value.isprintable()


def _timestamps(series: pd.Series, rules: EventRules) -> tuple[list[Any], list[Found]]:
    """Each row's UTC pd.Timestamp (None when missing or bad) and each bad one's problem: a
    datetime column read as people's are (naive raises unless declared UTC), strings as ISO 8601."""
    if rule_for(series.dtype) is _TIMESTAMPS:
        utc, missing = utc_instants(series, rules.naive_timestamps, str(rules.timestamp))
        stamps = pd.DatetimeIndex(utc).tz_localize("UTC")
        return [None if m else s for s, m in zip(stamps, missing.tolist(), strict=True)], []
    given = series.astype(object).tolist()
    judged = [_one_timestamp(v, rules.naive_timestamps) for v in given]
    label = str(rules.timestamp)
    problems = [(i, label, why, given[i]) for i, (_, why) in enumerate(judged) if why is not None]
    return [stamp for stamp, _ in judged], problems


_TIMESTAMPS = next(rule for rule in RULES if dt.datetime in rule.types)


def _one_timestamp(value: Any, naive: str) -> tuple[Any, str | None]:
    if is_missing(value):
        return None, None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None, "timestamp_format"
    if isinstance(value, dt.datetime | np.datetime64):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            if naive != "utc":
                return None, "timestamp_time_zone"
            stamp = stamp.tz_localize("UTC")
        return stamp.tz_convert("UTC"), None
    return None, "timestamp_format"


def _broken(
    rules: EventRules,
    columns: tuple[list[Any], list[Any], list[Any] | None, pd.Series, list[Any] | None],
    latest: pd.Timestamp,
    unreadable: set[int],
) -> list[Found]:
    """Every rule each row breaks (an ``unreadable`` timestamp is reported already)."""
    users, emails, names, when, ids = columns
    event = str(rules.event_column) if names is not None else "event"
    found: list[Found] = []

    def check(column: Any, name: str, values: list[Any], fails: Any, shown: bool = True) -> None:
        label = None if column is None else str(column)
        found.extend(
            (i, label, name, v if shown else None) for i, v in enumerate(values) if fails(v)
        )

    stamps = when.tolist()
    nobody = [
        not (_present_string(u) or _present_string(e)) for u, e in zip(users, emails, strict=True)
    ]
    no_time = [t is pd.NaT and i not in unreadable for i, t in enumerate(stamps)]
    check(None, "identity_required", nobody, bool, shown=False)
    check(rules.user_id, "string_type", users, lambda v: v is not None and not is_string(v))
    too_long = f"max_length({MAX_USER_ID})"
    check(rules.user_id, too_long, users, lambda v: is_string(v) and len(v) > MAX_USER_ID)
    check(
        rules.email, "email_plausible", emails, lambda v: v is not None and not plausible_email(v)
    )
    if names is not None:
        check(event, "event_required", names, lambda v: v is None, shown=False)
        check(event, "event_name", names, lambda v: v is not None and not _good_name(v))
    check(rules.timestamp, "timestamp_required", no_time, bool, shown=False)
    check(rules.timestamp, "not_in_future", stamps, lambda t: t is not pd.NaT and t > latest)
    if ids is not None:
        check(rules.event_id_column, "event_id_required", ids, lambda v: v is None, shown=False)
    return found


def _report(found: list[Found]) -> pd.DataFrame:
    rows, *rest = zip(*found, strict=True) if found else ((), (), (), ())
    report = dict(zip(REPORT_COLUMNS[1:], (pd.Series(c, dtype=object) for c in rest), strict=True))
    return pd.DataFrame({"row": pd.Series(rows, dtype=np.int64), **report})


def _parameters(df: pd.DataFrame, rules: EventRules) -> tuple[list[dict[str, Any]], list[Found]]:
    """Each row's parameters (missing values left out) and the values JSON cannot hold."""
    out: list[dict[str, Any]] = [{} for _ in range(len(df))]
    found: list[Found] = []
    for column in rules.parameter_columns(df):
        label = str(column)
        values, problems = column_values(df[column], rules.naive_timestamps, label)
        found.extend((row, label, "json_value", why) for row, why in problems.items())
        for row, value in enumerate(values):
            if value is not None:
                out[row][label] = value
    return out, found
