"""The Flameup connection type, hook and operators (Airflow 3: ``flameup-pandas[airflow]``).

Imported through :mod:`flameup_pandas.airflow` only when one of these names is asked for, so
the plain task functions work without Airflow.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from airflow.sdk import BaseHook, BaseOperator

from .. import _api
from .._events import api as _events_api
from .._send.client import FlameupClient
from .._send.observe import Watched
from ..exceptions import FlameupError
from . import RunStoppedError, TooManyFailedRowsError, track_file_task, upsert_file_task


class FlameupHook(BaseHook):  # type: ignore[misc]
    """Runs flameup-pandas with the API key and base URL of a ``flameup`` connection.

    The key is the connection's password; its host is the API's base URL
    (``https://api.flameup.ai/api/v1``; a bare host gets ``https://`` and ``/api/v1``). Each
    method takes the keywords of the function it runs::

        hook = FlameupHook()  # the connection "flameup_default"
        summary = hook.upsert_file("customers.parquet", state="customers.state.parquet")
    """

    conn_name_attr = "flameup_conn_id"
    default_conn_name = "flameup_default"
    conn_type = "flameup"
    hook_name = "Flameup"

    def __init__(self, flameup_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.flameup_conn_id = flameup_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login", "port", "extra"],
            "relabeling": {"host": "Base URL", "password": "API key"},
            "placeholders": {"host": "https://api.flameup.ai/api/v1", "password": "ws_live_..."},
        }

    def options(self) -> dict[str, Any]:
        """``api_key`` and ``base_url`` from the connection: keywords of every function."""
        conn = self.get_connection(self.flameup_conn_id)
        host = (conn.host or "").strip().rstrip("/")
        if host and "://" not in host:
            host = f"https://{host}" + (f":{conn.port}" if conn.port else "")
        if host and not urllib.parse.urlsplit(host).path:
            host += "/api/v1"
        return {"api_key": conn.password, "base_url": host or None}

    def get_conn(self) -> FlameupClient:
        return FlameupClient(**self.options())

    def test_connection(self) -> tuple[bool, str]:
        """One ``GET /people?limit=1`` with the key (the UI's "Test" button)."""
        try:
            with self.get_conn() as client:
                answer = client.request("GET", "/people", params={"limit": 1})
        except FlameupError as exc:
            return False, str(exc)
        return answer.ok, "Connected" if answer.ok else str(answer.error())

    def upsert(self, df: pd.DataFrame, **options: Any) -> pd.DataFrame:
        return _api.upsert(df, **{**self.options(), **options})

    def upsert_file(self, path: Any, **options: Any) -> Any:
        return _api.upsert_file(path, **{**self.options(), **options})

    def plan_file(self, path: Any, **options: Any) -> pd.DataFrame:
        return _api.plan_file(path, **{**self.options(), **options})

    def track_file(self, source: Any, **options: Any) -> Any:
        return _events_api.track_file(source, **{**self.options(), **options})


class _FlameupOperator(BaseOperator):  # type: ignore[misc]
    """A file sync as a task: the summary goes to XCom; lineage for Airflow's OpenLineage."""

    template_fields: Sequence[str] = ("source", "state", "results", "max_failed")
    kind = "people"

    def __init__(
        self,
        *,
        source: Any,
        state: str | None = None,
        results: str | None = None,
        max_failed: int | str = 0,
        flameup_conn_id: str = FlameupHook.default_conn_name,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source, self.state, self.results = source, state, results
        self.max_failed, self.flameup_conn_id = max_failed, flameup_conn_id
        self.options = options or {}
        self.summary: dict[str, Any] | None = None

    def _run(self, task: Callable[..., dict[str, Any]], **extra: Any) -> dict[str, Any]:
        try:
            self.summary = task(
                self.source,
                state=self.state,
                results=self.results,
                max_failed=int(self.max_failed),
                flameup_conn_id=self.flameup_conn_id,
                **extra,
                **self.options,
            )
        except (TooManyFailedRowsError, RunStoppedError) as failed:
            self.summary = failed.summary
            raise
        return self.summary

    def get_openlineage_facets_on_complete(self, task_instance: Any = None) -> Any:
        """The datasets as the library's lineage names them (rows written once summarized)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        url = FlameupHook(self.flameup_conn_id).options()["base_url"] or "https://api.flameup.ai"
        watched = Watched(self.kind, "upsert", self.source, url, self.summary or {})
        inputs, output = watched.datasets(counted=self.summary is not None)
        return OperatorLineage(inputs=inputs, outputs=[output])

    get_openlineage_facets_on_start = get_openlineage_facets_on_failure = (
        get_openlineage_facets_on_complete
    )


class FlameupUpsertOperator(_FlameupOperator):
    """:func:`~flameup_pandas.airflow.upsert_file_task` with a Flameup connection's key.

    ``source``, ``state``, ``results``, ``max_failed`` and ``max_changes`` are templated;
    ``options`` holds :func:`~flameup_pandas.upsert_file`'s other keywords::

        FlameupUpsertOperator(task_id="push", source="s3://data/{{ ds }}/customers.parquet",
                              state="s3://flameup/customers.state.parquet", max_failed=10)
    """

    template_fields: Sequence[str] = (*_FlameupOperator.template_fields, "max_changes")

    def __init__(self, *, max_changes: int | float | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_changes = max_changes

    def execute(self, context: Any) -> dict[str, Any]:
        return self._run(upsert_file_task, max_changes=self.max_changes or None)


class FlameupTrackOperator(_FlameupOperator):
    """:func:`~flameup_pandas.airflow.track_file_task` with a Flameup connection's key;
    ``options`` holds ``event=`` (or ``event_column=``) and the other keywords of
    :func:`~flameup_pandas.track_file`."""

    kind = "events"

    def execute(self, context: Any) -> dict[str, Any]:
        return self._run(track_file_task)
