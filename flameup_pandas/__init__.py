"""flameup-pandas: upsert pandas DataFrames and parquet files into Flameup's people API.

``import flameup_pandas`` registers the ``df.flameup`` accessor::

    report = df.flameup.validate()      # every problem, one row each
    plan = df.flameup.plan(state=...)   # what upsert would do, row by row and field by field
    result = df.flameup.upsert()        # df + flameup_id, flameup_status, flameup_error
    result.flameup.summary()            # counts per status, requests, retries, time
"""

from __future__ import annotations

import contextlib

from . import (
    _accessor,  # noqa: F401  (registers df.flameup)
    _polars,
)
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
from .exceptions import (
    APIError,
    AuthenticationError,
    ChangeGuardError,
    ConfigurationError,
    DuplicateIdentityError,
    FieldNameWarning,
    FlameupError,
    MappingError,
    NaiveTimestampError,
    RateLimitError,
    ReadInterrupted,
    RequestRejectedError,
    ServerError,
    SourceError,
    StateError,
    TransportError,
    UpsertInterrupted,
)

__all__ = [
    "STATUSES",
    "APIError",
    "AuthenticationError",
    "ChangeGuardError",
    "ConfigurationError",
    "DuplicateIdentityError",
    "FieldChange",
    "FieldNameWarning",
    "FlameupClient",
    "FlameupError",
    "MappingError",
    "NaiveTimestampError",
    "PeopleSchema",
    "PlanSummary",
    "Progress",
    "RateLimitError",
    "ReadInterrupted",
    "RequestRejectedError",
    "RetryPolicy",
    "RunReport",
    "ServerError",
    "SourceError",
    "StateError",
    "Summary",
    "Timeout",
    "TrackSummary",
    "TransportError",
    "UpsertInterrupted",
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
]
