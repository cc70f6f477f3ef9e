"""The events' plain functions: ``track`` sends rows as events, ``validate_events`` judges them.

See the docs' events guide (docs/events.md) for exactly what is promised about sending an
event once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Unpack

import pandas as pd

from ._people.events import EventRules, plan_events
from ._run.options import DELIVERY_KEYWORDS, Delivery, DeliveryOptions, check_keywords
from ._run.sources import open_rows, read_chunks
from ._run.track import TrackRun, track_frame
from ._send.track import EventSender

EVENT_FIELDS = ("id", "workspace_id", "person_id", "event", "timestamp", "created_at")

__all__ = ["read_events", "track", "track_file", "validate_events"]


def track(
    df: pd.DataFrame,
    *,
    event: str | None = None,
    event_column: Hashable | None = None,
    timestamp: Hashable = "timestamp",
    user_id: Hashable = "userId",
    email: Hashable = "email",
    parameters: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] = (),
    event_id_column: Hashable | None = None,
    naive_timestamps: Literal["error", "utc"] = "error",
    state: str | Path | None = None,
    workspace_id: str | None = None,
    max_duration: float | None = None,
    **options: Unpack[DeliveryOptions],
) -> pd.DataFrame:
    """Send every row of ``df`` to Flameup as one event; return ``df`` with three columns.

    ``flameup_event_id``, ``flameup_status`` (``sent``, ``invalid``, ``rejected``,
    ``failed``, ``skipped``, ``uncertain``) and ``flameup_error``. The event's name is
    ``event=`` (every row) or ``event_column=``; who is the ``user_id`` column (sent as
    ``external_id``), else ``email``; when is the ``timestamp`` column (time-zone aware, or
    ``naive_timestamps="utc"``); every other column (or those in ``parameters``, less
    ``exclude``) is sent under ``parameters`` by the same value rules as traits.

    Never twice: a row that repeats an earlier row's event is ``skipped``; with ``state=`` (a
    local file) an event Flameup confirmed in an earlier run is ``skipped`` too, and one whose
    answer was lost is looked up in the events listing (of ``workspace_id``, else the
    workspace a listed person names) before it is sent again. ``uncertain``: the listing could
    not tell; a later run with the same state settles it. ``max_duration`` (seconds): start no
    event after that; the rest are ``skipped`` and a rerun with the state continues. Delivery
    keywords (``client``, ``api_key``, ``base_url``, ``rate_limit``, ``retry``...) are
    :func:`upsert`'s; events go one at a time under the key's shared rate budget. Ctrl-C or
    SIGTERM raises :class:`~flameup_pandas.UpsertInterrupted` whose ``result`` is the frame so
    far (rows not answered are ``failed``).

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": ["u1"], "timestamp": [pd.Timestamp("2026-01-02", tz="UTC")],
    ...                    "plan": ["pro"]})
    >>> flameup_pandas.validate_events(df, event="trial_started").empty
    True
    """
    check_keywords("track", options, DELIVERY_KEYWORDS - {"concurrency"})
    rules = EventRules(
        event=event,
        event_column=event_column,
        timestamp=timestamp,
        user_id=user_id,
        email=email,
        parameters=parameters,
        exclude=tuple(exclude),
        event_id_column=event_id_column,
        naive_timestamps=naive_timestamps,
    )
    run = TrackRun(state=state, workspace_id=workspace_id, max_duration=max_duration)
    return track_frame(df, rules=rules, delivery=Delivery(**options), run=run)


def validate_events(
    df: pd.DataFrame,
    *,
    event: str | None = None,
    event_column: Hashable | None = None,
    timestamp: Hashable = "timestamp",
    user_id: Hashable = "userId",
    email: Hashable = "email",
    parameters: Sequence[Hashable] | None = None,
    exclude: Sequence[Hashable] = (),
    event_id_column: Hashable | None = None,
    naive_timestamps: Literal["error", "utc"] = "error",
) -> pd.DataFrame:
    """Every problem :func:`track` would find, one row each: index label, column, check, value.

    Empty when every row can be sent. The keywords are :func:`track`'s.

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": [None], "timestamp": [pd.Timestamp("2026-01-02", tz="UTC")]})
    >>> flameup_pandas.validate_events(df, event="signed_up")[["index", "check"]]
       index              check
    0      0  identity_required
    """
    rules = EventRules(
        event=event,
        event_column=event_column,
        timestamp=timestamp,
        user_id=user_id,
        email=email,
        parameters=parameters,
        exclude=tuple(exclude),
        event_id_column=event_id_column,
        naive_timestamps=naive_timestamps,
    )
    report = plan_events(df, rules, dt.datetime.now(dt.UTC)).report
    labels = df.index.to_numpy()[report["row"].to_numpy()]
    out = report.drop(columns="row")
    out.insert(0, "index", pd.Series(labels, dtype=object))
    return out


def track_file(
    source: Any,
    *,
    column_types: Mapping[str, Any] | None = None,
    results: str | Path | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Send the rows of a parquet or CSV file, or any Arrow source, as events.

    ``source`` is what :func:`upsert_file` and :func:`upsert_arrow` take (a path, a
    ``pyarrow.Table``, a record batch reader...), read with the same types (a CSV's
    ``column_types=``, cells that stay text); the rows are read whole, then sent as
    :func:`track` sends a frame (every other keyword is ``track``'s). Returns the result frame
    (index: row numbers from 0); ``results=`` also writes it to a parquet file.

    Example::

        result = flameup_pandas.track_file(
            "purchases.parquet", event="purchase_completed", state="events.state"
        )
    """
    rows = open_rows(source, column_types=column_types)
    frames = list(read_chunks(rows.batches))
    frame = pd.concat(frames) if frames else pd.DataFrame()
    result = track(frame, **options)
    if results is not None:
        text = {name: "string" for name in ("flameup_event_id", "flameup_status", "flameup_error")}
        result.astype(text).to_parquet(results)
    return result


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
    check_keywords("read_events", options, DELIVERY_KEYWORDS - {"concurrency"})
    filters = {
        name: value.isoformat() if isinstance(value, dt.datetime) else value
        for name, value in (
            ("user_id", user_id),
            ("event", event),
            ("since", since),
            ("until", until),
        )
        if value is not None
    }
    sender = Delivery(**options).open()
    try:
        listed = list(EventSender(sender.deliverer, workspace_id).listed(filters))
    finally:
        sender.close()
    return _events_frame(listed)


def _events_frame(listed: list[dict[str, Any]]) -> pd.DataFrame:
    fields = pd.DataFrame(
        [{f: e.get(f) for f in EVENT_FIELDS} for e in listed], columns=list(EVENT_FIELDS)
    )
    for name in ("timestamp", "created_at"):
        fields[name] = pd.to_datetime(fields[name], utc=True, format="ISO8601")
    shown = [e.get("parameters", e.get("properties")) or {} for e in listed]
    names = list(dict.fromkeys(n for p in shown for n in p))
    columns = {
        (f"parameters.{n}" if n in EVENT_FIELDS else n): pd.Series(
            [p.get(n) for p in shown], dtype=object
        )
        for n in names
    }
    return pd.concat([fields, pd.DataFrame(columns, index=fields.index)], axis=1)
