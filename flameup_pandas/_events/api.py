"""The events' plain functions: ``track`` sends rows as events, ``validate_events`` judges them."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any, Unpack

import pandas as pd

from .._people.values import scalar
from .._run.engine import run_frame, run_rows
from .._run.options import (
    READ_KEYWORDS,
    Delivery,
    DeliveryOptions,
    EventRuleOptions,
    TrackOptions,
    check_keywords,
    event_rules_of,
    split_track_options,
)
from .._run.result import TrackSummary
from .._run.sources import CHUNK_ROWS, open_rows
from .kind import Events
from .rules import plan_events
from .send import EventSender

EVENT_FIELDS = ("id", "workspace_id", "person_id", "event", "timestamp", "created_at")

__all__ = ["TrackSummary", "read_events", "track", "track_file", "validate_events"]


def track(df: pd.DataFrame, **options: Unpack[TrackOptions]) -> pd.DataFrame:
    """Send every row of ``df`` to Flameup as one event; return ``df`` with three columns.

    ``flameup_event_id``, ``flameup_status`` (``sent``, ``invalid``, ``rejected``,
    ``failed``, ``skipped``, ``uncertain``) and ``flameup_error``, in the frame's order. The
    event's name is ``event=`` (every row) or ``event_column=``; who is the ``user_id``
    column (default ``"userId"``, sent as ``external_id``), else ``email``; when is the
    ``timestamp`` column (time-zone aware, or ``naive_timestamps="utc"``); every other column
    (or those in ``parameters``, less ``exclude``) is sent under ``parameters`` by the same
    value rules as traits. ``event_id_column=`` names a column whose value is the event's key.

    Never twice: a repeated event is ``skipped``; with ``state=`` (a path or URI) so is one Flameup
    confirmed in an earlier run, and one whose answer was lost is looked up in the events listing
    before it is sent again (``uncertain`` when the listing cannot tell). ``max_duration`` and
    ``dry_run`` are :func:`upsert`'s, as are the delivery keywords (one request per event). Ctrl-C
    or SIGTERM raises :class:`~flameup_pandas.UpsertInterrupted` whose ``result`` is the frame so
    far. ``docs/guides/events.md`` tells exactly what is promised.

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": ["u1"], "timestamp": [pd.Timestamp("2026-01-02", tz="UTC")],
    ...                    "plan": ["pro"]})
    >>> flameup_pandas.validate_events(df, event="trial_started").empty
    True
    """
    rules, delivery, run, sending = split_track_options("track", options)
    return run_frame(df, Events(rules, sending), delivery=delivery, run=run)


def validate_events(df: pd.DataFrame, **options: Unpack[EventRuleOptions]) -> pd.DataFrame:
    """Every problem :func:`track` would find, one row each: index label, column, check, value.

    Empty when every row can be sent. The keywords are :func:`track`'s rules (``event``,
    ``event_column``, ``timestamp``, ``user_id``, ``email``, ``parameters``, ``exclude``,
    ``event_id_column``, ``naive_timestamps``).

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": [None], "timestamp": [pd.Timestamp("2026-01-02", tz="UTC")]})
    >>> flameup_pandas.validate_events(df, event="signed_up")[["index", "check"]]
       index              check
    0      0  identity_required
    """
    rules = event_rules_of("validate_events", options)
    report = plan_events(df, rules, dt.datetime.now(dt.UTC)).report
    out = report.drop(columns="row")
    out.insert(0, "index", pd.Series(df.index.to_numpy()[report["row"].to_numpy()], dtype=object))
    return out


def track_file(
    source: Any,
    *,
    chunk_rows: int = CHUNK_ROWS,
    column_types: Mapping[str, Any] | None = None,
    **options: Unpack[TrackOptions],
) -> TrackSummary:
    """Send the rows of a parquet or CSV file, or any Arrow source, as events, in bounded
    memory; return the rows per status (a :class:`~flameup_pandas.TrackSummary`).

    ``source`` is what :func:`upsert_file` and :func:`upsert_arrow` take, read the same way in
    batches of ``chunk_rows``, each judged and sent as :func:`track` sends a frame; a repeat of
    an earlier batch's event is ``skipped``. ``results=`` receives the per-row results
    (``row`` from 0, ``flameup_event_id``, ``flameup_status``, ``flameup_error``) in input
    order. Other keywords, and Ctrl-C (``result``: the summary so far), are :func:`track`'s.

    Example::

        summary = flameup_pandas.track_file(
            "purchases.parquet", event="purchase_completed", state="events.state",
            results="purchases.results.parquet",
        )
    """
    rules, delivery, run, sending = split_track_options("track_file", options)
    rows = open_rows(
        source, chunk_rows=chunk_rows, column_types=column_types, filesystem=run.storage
    )
    summary = run_rows(rows, Events(rules, sending, run.results), delivery=delivery, run=run)
    assert isinstance(summary, TrackSummary)
    return summary


def read_events(
    *,
    workspace_id: str | None = None,
    user_id: str | None = None,
    event: str | None = None,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    **options: Unpack[DeliveryOptions],
) -> pd.DataFrame:
    """The events Flameup holds, paged from the events listing into a frame, oldest first.

    One row per event: ``id``, ``workspace_id``, ``person_id``, ``event``, ``timestamp`` and
    ``created_at`` (UTC datetimes), then each parameter as a column of its own name
    (``parameters.<name>`` where a parameter is named like one of those fields), missing where
    an event lacks it. ``user_id`` (the external id or email), ``event``, ``since`` and
    ``until`` (datetimes or ISO 8601) filter on the server. ``workspace_id``: the workspace
    whose events are read; None: the one a listed person names. Pages share the key's budget
    with any other run in the process.

    Example::

        purchases = flameup_pandas.read_events(event="purchase_completed", since="2026-01-01")
    """
    check_keywords("read_events", options, READ_KEYWORDS)
    asked = {"user_id": user_id, "event": event, "since": since, "until": until}
    filters = {
        name: scalar(value, "utc", name) if isinstance(value, dt.datetime) else value
        for name, value in asked.items()
        if value is not None
    }
    with contextlib.closing(Delivery(**options).open()) as sender:
        return _events_frame(list(EventSender(sender.deliverer, workspace_id).listed(filters)))


def _events_frame(listed: list[dict[str, Any]]) -> pd.DataFrame:
    fields = pd.DataFrame(
        [{f: e.get(f) for f in EVENT_FIELDS} for e in listed], columns=list(EVENT_FIELDS)
    )
    for name in ("timestamp", "created_at"):
        fields[name] = pd.to_datetime(fields[name], utc=True, format="ISO8601")
    shown = [e.get("parameters", e.get("properties")) or {} for e in listed]
    names = list(dict.fromkeys(n for p in shown for n in p))
    named = {n: f"parameters.{n}" if n in EVENT_FIELDS else n for n in names}
    columns = {named[n]: pd.Series([p.get(n) for p in shown], dtype=object) for n in names}
    return pd.concat([fields, pd.DataFrame(columns, index=fields.index)], axis=1)
