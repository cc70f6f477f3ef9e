"""flameup-pandas: upsert pandas DataFrames and parquet files into Flameup's people API.

``import flameup_pandas`` registers the ``df.flameup`` accessor::

    report = df.flameup.validate()      # every problem, one row each
    plan = df.flameup.plan(state=...)   # what upsert would do, row by row and field by field
    result = df.flameup.upsert()        # df + flameup_id, flameup_status, flameup_error
    result.flameup.summary()            # counts per status, requests, retries, time
"""

from __future__ import annotations

import contextlib

from . import _accessor, _polars, exceptions  # noqa: F401  (_accessor registers df.flameup)
from ._api import (
    plan,
    plan_arrow,
    plan_file,
    read_people,
    to_people,
    unlock_state,
    upsert,
    upsert_arrow,
    upsert_file,
    validate,
)
from ._events.api import TrackSummary, read_events, track, track_file, validate_events
from ._people.schema import PeopleSchema
from ._run.changes import FieldChange, PlanSummary
from ._run.progress import Progress
from ._run.result import STATUSES, RunReport, Summary
from ._send.client import FlameupClient, Timeout
from ._send.retry import RetryPolicy
from ._version import __version__

with contextlib.suppress(ImportError):  # polars is optional: the namespace when it is there
    _polars.register()
from .exceptions import *  # noqa: F403  (every name of exceptions.__all__)

__all__ = [
    "STATUSES",
    "FieldChange",
    "FlameupClient",
    "PeopleSchema",
    "PlanSummary",
    "Progress",
    "RetryPolicy",
    "RunReport",
    "Summary",
    "Timeout",
    "TrackSummary",
    "__version__",
    "plan",
    "plan_arrow",
    "plan_file",
    "read_events",
    "read_people",
    "to_people",
    "track",
    "track_file",
    "unlock_state",
    "upsert",
    "upsert_arrow",
    "upsert_file",
    "validate",
    "validate_events",
    *exceptions.__all__,
]
