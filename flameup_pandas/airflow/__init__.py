"""Airflow: a ``flameup`` connection, its hook and operators, and plain task functions.

With ``pip install "flameup-pandas[airflow]"`` Airflow finds this package as a provider (the
``apache_airflow_provider`` entry point, :func:`get_provider_info`): a connection type
``flameup`` (the API key as its password, the base URL as its host),
:class:`FlameupHook`, :class:`FlameupUpsertOperator` and :class:`FlameupTrackOperator`
(these three import Airflow when first used). The task functions need no Airflow unless given
``flameup_conn_id=``: :func:`upsert_file_task` fits a TaskFlow ``@task`` or a
``PythonOperator``, returns the run's summary as plain values (for XCom), logs it, and fails
the task when too many rows need attention (the Airflow guide has a whole DAG).

The exception tree gains two leaves here::

    FlameupError
    ├── TooManyFailedRowsError    the run ended, but too many rows need attention
    └── RunStoppedError           Flameup went down mid-run: the run stopped early
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._api import upsert_file
from .._events.api import track_file
from .._run.progress import Progress
from .._run.result import PROBLEMS, Summary
from .._version import __version__
from ..exceptions import ChangeGuardError, FlameupError, UpsertInterrupted

if TYPE_CHECKING:
    import pyarrow.dataset as ds

__all__ = [
    "FlameupHook",
    "FlameupTrackOperator",
    "FlameupUpsertOperator",
    "RunStoppedError",
    "TooManyFailedRowsError",
    "get_provider_info",
    "track_file_task",
    "upsert_file_task",
]
_NEEDS_AIRFLOW = frozenset({"FlameupHook", "FlameupTrackOperator", "FlameupUpsertOperator"})

logger = logging.getLogger("flameup_pandas.airflow")


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_AIRFLOW:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import _provider
    except ModuleNotFoundError as missing:
        needs = f"{name} needs Airflow: pip install 'flameup-pandas[airflow]' ({missing})"
        raise AttributeError(needs) from missing
    return getattr(_provider, name)


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads through the ``apache_airflow_provider`` entry
    point: the ``flameup`` connection type and its hook.

    >>> get_provider_info()["connection-types"][0]["connection-type"]
    'flameup'
    """
    return {
        "package-name": "flameup-pandas",
        "name": "Flameup",
        "description": "Upsert people and track events into Flameup from files and frames.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "flameup",
                "hook-class-name": "flameup_pandas.airflow.FlameupHook",
                "hook-name": "Flameup",
            }
        ],
    }


class _TaskError(FlameupError):
    """A task's failure carrying ``summary`` (picklable: Airflow may pickle it)."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.summary))


class TooManyFailedRowsError(_TaskError):
    """More rows were invalid, rejected or failed than the task allows.

    ``summary`` is the run's summary as :func:`upsert_file_task` would have returned it; the
    message gives the counts and where the per-row reasons are.
    """


class RunStoppedError(_TaskError):
    """The run stopped sending because Flameup could not be reached.

    Raised after the state and the results were written, so the task's own retries (with their
    delay, the right tool for an outage) send only the rows not delivered yet. ``summary`` is
    as for :class:`TooManyFailedRowsError`.
    """


def upsert_file_task(
    path: str | Path | ds.Dataset,
    *,
    max_failed: int = 0,
    max_failed_share: float | None = None,
    flameup_conn_id: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Upsert a parquet or CSV file for an Airflow task; return the summary as plain data.

    Runs :func:`flameup_pandas.upsert_file` (the other keywords go to it unchanged; progress
    as INFO lines of the ``flameup_pandas.progress`` logger, at most one every 10 s and one at
    the end, unless ``progress=`` says otherwise), logs the summary, and returns
    ``summary.to_dict()`` (plain values fit for XCom; ``reasons`` a list of ``{status, reason,
    count, examples}`` dicts) plus ``results`` when a results file was written.

    The task fails with :class:`TooManyFailedRowsError` when the invalid, rejected and failed
    rows exceed ``max_failed``, or ``max_failed_share`` of all rows when given and larger; with
    :class:`RunStoppedError` when Flameup went down mid-run (the state and results written,
    for the task's retries). Authentication and configuration errors, and a Flameup never
    reached (``TransportError``), are raised as they are.

    With ``max_changes=``/``max_creates=`` the run is planned first and fails with
    :class:`~flameup_pandas.ChangeGuardError` before any request when too many would change. On
    SIGTERM the run stops, closes the results file and the state, logs how far it got and
    raises :class:`~flameup_pandas.UpsertInterrupted`. Retries are safe with ``state=``: a
    retried task sends only what was not acknowledged or changed. On workers that keep no disk,
    point ``state`` at object storage (``s3://...``, with ``storage_options=`` or
    ``filesystem=``, e.g. ``ObjectStoragePath(...).fs``; ``docs/guides/airflow.md``).

    The API key and URL come from the Airflow connection ``flameup_conn_id`` (type
    ``flameup``: the key as its password, the base URL as its host) when that is given, else
    from ``FLAMEUP_API_KEY`` and ``FLAMEUP_BASE_URL`` in the worker's environment, unless
    ``api_key=`` / ``base_url=`` are passed. Never pass the key as a templated argument
    (rendered arguments are shown in the UI).

    Example (needs FLAMEUP_API_KEY and a reachable server, so it is not a doctest)::

        summary = upsert_file_task("customers.parquet", max_failed=3)
        summary["created"], summary["invalid"]  # (1996, 3) for the shipped sample
    """
    return _file_task(upsert_file, path, (max_failed, max_failed_share), flameup_conn_id, options)


def track_file_task(
    path: Any,
    *,
    max_failed: int = 0,
    max_failed_share: float | None = None,
    flameup_conn_id: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Send a file's rows as events for an Airflow task; return the counts per status.

    Runs :func:`flameup_pandas.track_file` (the other keywords go to it: ``event=`` or
    ``event_column=``, ``timestamp=``, ``workspace_id=``, ``max_duration=``...) as
    :func:`upsert_file_task` runs ``upsert_file``, with the same keywords (``flameup_conn_id=``
    too), logs and errors, and returns ``{"rows": n, "sent": ..., "skipped": ..., ...}``
    (plain ints, fit for XCom) plus ``results`` when a results file was written. ``uncertain``
    rows count as rows that need attention. A retried task with the same ``state=`` (a local
    file the worker keeps, or a URI such as ``s3://...``) sends no event Flameup confirmed, and
    looks up the ones a killed attempt may have sent before sending them (see the events
    guide). ``dry_run=True`` sends nothing and returns what would happen.

    Example (needs FLAMEUP_API_KEY and a reachable server, so it is not a doctest)::

        counts = track_file_task("purchases.parquet", event="purchase_completed",
                                 state="/data/flameup/events.state", max_failed=5)
    """
    return _file_task(track_file, path, (max_failed, max_failed_share), flameup_conn_id, options)


def _file_task(
    run: Callable[..., Summary],
    path: Any,
    allowed: tuple[int, float | None],
    flameup_conn_id: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """One file run for a task, whatever its kind (``allowed``: rows, share)."""
    what = run.__name__.removesuffix("_file")  # upsert, track
    _allowance(0, *allowed)  # limits that make no sense are refused before anything is sent
    if flameup_conn_id is not None:
        options = {**__getattr__("FlameupHook")(flameup_conn_id).options(), **options}
    options = {"progress": Progress(style="log"), **options}
    title = f"flameup {what} of {path if isinstance(path, str | Path) else type(path).__name__}"
    try:
        summary = run(path, **options)
    except ChangeGuardError as refused:
        # max_changes/max_creates: nothing was sent; the plan's summary goes to the task log
        logger.error("%s: %s", title, refused)
        raise
    except UpsertInterrupted as stop:
        # SIGTERM (a timeout, "mark failed"): the results file and state are closed; say so.
        done = _one_line(_plain(stop.result.to_dict())) if stop.result is not None else ""
        logger.warning("%s: %s; %s", title, stop, done)
        raise
    out = _plain(summary.to_dict())
    if (results := options.get("results")) is not None:
        out["results"] = str(results)
    logger.info("%s: %s", title, _one_line(out))
    if summary.stopped is not None:
        delivered = out.get("created", 0) + out.get("updated", 0) + out.get("sent", 0)
        raise RunStoppedError(
            f"{summary.stopped}; {delivered:,} rows delivered, {out.get('failed', 0):,} failed; "
            "the state and results are written, so a retry sends only the rest",
            out,
        )
    most = _allowance(summary.rows, *allowed)
    if summary.problems > most:
        rows = "events" if what == "track" else "rows"
        counts = ", ".join(f"{status} {out[status]:,}" for status in PROBLEMS if status in out)
        where = "pass results= to keep the per-row reasons"
        where = where if results is None else f"per-row reasons in {results}"
        raise TooManyFailedRowsError(
            f"{summary.problems:,} of {out.get('rows', 0):,} {rows} need attention ({counts}), "
            f"more than the {most:,} allowed; {where}",
            out,
        )
    return out


def _allowance(rows: int, max_failed: int, max_failed_share: float | None) -> int:
    if max_failed < 0:
        raise ValueError(f"max_failed must be 0 or more, not {max_failed}")
    if max_failed_share is None:
        return max_failed
    if not 0 <= max_failed_share <= 1:
        raise ValueError(f"max_failed_share must be between 0 and 1, not {max_failed_share}")
    return max(max_failed, math.floor(max_failed_share * rows))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON's plain values: numpy scalars as numbers, anything else as text."""
    return dict(orjson.loads(orjson.dumps(values, default=str, option=orjson.OPT_SERIALIZE_NUMPY)))


def _one_line(summary: dict[str, Any]) -> str:
    """The counts and figures in one line, then the top reasons (``invalid 3: email: ...``)."""
    line = ", ".join(f"{key}={value}" for key, value in summary.items() if key != "reasons")
    reasons = "; ".join(
        f"{r['status']} {r['count']}: {r['reason']}" for r in summary.get("reasons", [])
    )
    return f"{line}; why: {reasons}" if reasons else line
