"""The exceptions flameup-pandas raises.

Per-row problems are never exceptions: a bad row gets a status and a reason in the result
frame. Exceptions are for what stops a whole run::

    FlameupError
    ├── ConfigurationError (ValueError)      no API key, a bad base URL, plain http to a remote host
    ├── MappingError (ValueError)            a mapping names a missing column, no identity column
    ├── DuplicateIdentityError (ValueError)  duplicates found and on_duplicate="error"
    ├── NaiveTimestampError (ValueError)     a timestamp column without a time zone
    ├── StateError                           a sync state file that cannot be read or written
    ├── ChangeGuardError                     max_changes/max_creates: the run would change too
    │                                        many people; nothing was sent (.plan holds the plan)
    ├── SourceError                          a query or stream failed while its rows were read
    ├── TransportError                       no answer (connection, timeout); Flameup unreachable
    └── APIError                             Flameup answered with an error status
        ├── AuthenticationError              401 or 403: the key is missing, wrong or lacks rights
        ├── RateLimitError                   429 after the retry policy was spent
        ├── RequestRejectedError             400 or 422: the request (or a person in it) was refused
        └── ServerError                      5xx after the retry policy was spent

One more stops a run but is not an error: :class:`UpsertInterrupted`, a ``KeyboardInterrupt``
(so Ctrl-C still stops a script, and ``except Exception`` cannot swallow it) that carries the
run's partial result::

    KeyboardInterrupt
    ├── UpsertInterrupted                    Ctrl-C or SIGTERM: .result holds what was done
    └── ReadInterrupted                      the same for read_people and export_people

And one warning::

    UserWarning
    └── FieldNameWarning                     a column named like a known field but for case,
                                             spaces, - or _ (``Email``) became a custom trait

Every message is safe to log: none ever holds the API key.
"""

from __future__ import annotations

import functools
import typing

__all__ = [
    "APIError",
    "AuthenticationError",
    "ChangeGuardError",
    "ConfigurationError",
    "DuplicateIdentityError",
    "FieldNameWarning",
    "FlameupError",
    "MappingError",
    "NaiveTimestampError",
    "RateLimitError",
    "ReadInterrupted",
    "RequestRejectedError",
    "ServerError",
    "SourceError",
    "StateError",
    "TransportError",
    "UpsertInterrupted",
]


class FlameupError(Exception):
    """The root of every exception flameup-pandas raises on purpose."""


class ConfigurationError(FlameupError, ValueError):
    """The client cannot be set up: no API key, a bad base URL, an unsafe scheme."""


class MappingError(FlameupError, ValueError):
    """The column mapping does not fit the frame (a named column is missing, no identity)."""


class FieldNameWarning(UserWarning):
    """A column is named like a known field but for case, spaces, ``-`` or ``_`` (``Email``,
    ``First_Name``, ``"phone "``): it is sent as a custom trait of its own name, and the
    message names the mapping that would send it as the field instead."""


class DuplicateIdentityError(FlameupError, ValueError):
    """Two rows share an identity and the caller asked for that to be an error."""


class NaiveTimestampError(FlameupError, ValueError):
    """A timestamp column has no time zone, and guessing one would silently shift data."""


class StateError(FlameupError):
    """The incremental sync state cannot be read or written."""


class ChangeGuardError(FlameupError):
    """A run would update (or create) more people than ``max_changes`` (``max_creates``)
    allows: it was stopped before any request.

    The message gives the counts and the fields that change most; ``plan`` is the whole
    plan (the input rows with ``flameup_action``, ``flameup_changes``, ``flameup_error``)
    and ``summary`` its :class:`~flameup_pandas.PlanSummary`.
    """

    def __init__(self, message: str, *, plan: typing.Any = None, summary: typing.Any = None):
        super().__init__(message)
        self.plan = plan
        self.summary = summary


class SourceError(FlameupError):
    """The rows could not be read to the end: a query failed part way, a stream broke.

    What was read before stays done (results written, state recorded).
    """


class TransportError(FlameupError):
    """The request got no answer: the connection failed, was dropped, or timed out.

    ``reason`` says why in a few words (``connection refused``, ``name not resolved``);
    ``url`` is the base URL it was sent to (scheme, host, port and path only: never the key);
    ``unreachable`` is True when no connection to the server was made, or it was closed
    before any answer: what a wrong URL or a host that is down looks like.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        url: str | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.url = url
        self.unreachable = unreachable


class APIError(FlameupError):
    """Flameup answered with an error status.

    ``status`` is the HTTP status, ``message`` the server's explanation (read from any of the
    documented error body shapes), ``fields`` the per-field details when the server gave them,
    and ``request_id`` the server's request id when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        fields: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.fields = fields or {}
        self.request_id = request_id

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class AuthenticationError(APIError):
    """401 or 403: the key is missing, malformed, revoked or lacks ``people:write``."""


class RateLimitError(APIError):
    """429 Too Many Requests, after the retry policy's patience was spent."""


class RequestRejectedError(APIError):
    """400 or 422: the request, or a person in it, broke one of Flameup's rules."""


class ServerError(APIError):
    """A 5xx answer, after the retry policy's patience was spent."""


class _Interrupted(KeyboardInterrupt):
    """A stop by Ctrl-C or SIGTERM carrying ``result`` and the ``signal``'s number."""

    def __init__(self, message: str, *, result: typing.Any = None, signal: int = 2) -> None:
        super().__init__(message)
        self.result: typing.Any = result
        self.signal = signal

    def __reduce__(self) -> tuple[object, ...]:
        rebuild = functools.partial(type(self), result=self.result, signal=self.signal)
        return (rebuild, (str(self),))


class UpsertInterrupted(_Interrupted):
    """The run was stopped by Ctrl-C (SIGINT) or SIGTERM; ``result`` holds what it did.

    For ``df.flameup.upsert()`` (pandas or polars) ``result`` is the result frame: rows answered
    before the interrupt keep their statuses, the others are ``failed`` ("interrupted before
    sending", or for a batch in flight "interrupted; may have been stored: rerun with the state
    to confirm"). For ``upsert_file``/``upsert_arrow`` it is the :class:`Summary` of the rows
    written to the results file. ``signal`` is the signal's number. With ``state=``, every
    acknowledged batch is recorded, so a rerun sends only what was not acknowledged::

        try:
            result = df.flameup.upsert(state="people.state.parquet")
        except flameup_pandas.UpsertInterrupted as stop:
            result = stop.result
    """


class ReadInterrupted(_Interrupted):
    """Reading people back was stopped by Ctrl-C (SIGINT) or SIGTERM, as
    :class:`UpsertInterrupted` is for upserts: a ``KeyboardInterrupt`` with ``result`` and
    ``signal``.

    For ``read_people()`` ``result`` is the frame of the people read so far (the same columns a
    whole read has). ``export_people()`` writes its file only once every page is read, so an
    interrupted export leaves no partial file behind (a file at that path before is left as it
    was) and ``result`` is None; the message says so.
    """
