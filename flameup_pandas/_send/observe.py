"""Observers of a run: OpenLineage events, OpenTelemetry spans and metrics.

The engine wraps each run in :func:`run` and the send layer each request in :func:`request`.
Each observer loads only when configured, so unconfigured a run costs a few environment
lookups; lineage never fails a run. ``docs/guides/lineage.md`` and ``docs/guides/tracing.md``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.dataset as ds

from .._version import __version__
from ..exceptions import TransportError
from .client import BASE_URL_ENV, DEFAULT_BASE_URL, Answer

__all__ = ["Watched", "request", "run"]

logger = logging.getLogger("flameup_pandas")

R = TypeVar("R")
PRODUCER = f"https://github.com/flameup/flameup-pandas/tree/{__version__}"
_ROUTE_ID = re.compile(r"(/people|/workspaces)/(?!batch(?:[/?]|$))[^/?]+")
_TRACING: ContextVar[_Tracing | None] = ContextVar("flameup_tracing", default=None)


@dataclass
class Watched:
    """One run as its observers see it: what it sends, from where, to where."""

    kind: str  # "people" or "events"
    operation: str  # "upsert", "plan", "dry_run", "track"
    source: Any  # the path, dataset, relation or Spark frame read (None for a frame)
    base_url: str
    counts: dict[str, int] = field(default_factory=dict)

    @functools.cached_property
    def input(self) -> tuple[str, str] | None:
        """The source as an OpenLineage dataset (namespace, name), where it is known."""
        try:
            return _dataset(self.source)
        except Exception as exc:  # (a Spark frame's files, say): the run goes on without
            logger.debug("no input dataset for the run's observers: %s", exc)
            return None

    @property
    def output(self) -> tuple[str, str]:
        host = urllib.parse.urlsplit(self.base_url).netloc.rpartition("@")[2]
        return f"flameup://{host}", self.kind

    def datasets(self, counted: bool) -> tuple[list[Any], Any]:
        """OpenLineage's input and output datasets, with the rows written once ``counted``."""
        from openlineage.client import event_v2 as ol
        from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

        output = ol.OutputDataset(*self.output)
        if counted:
            written = sum(self.counts.get(s, 0) for s in ("created", "updated", "sent"))
            facet = stats.OutputStatisticsOutputDatasetFacet(rowCount=written)
            output.outputFacets = {"outputStatistics": facet}
        return ([ol.InputDataset(*self.input)] if self.input else []), output


def run(kind: str, operation: str, source: Any, delivery: Any, call: Callable[[], R]) -> R:
    """``call()`` (a whole run), seen by the configured observers: the engine's one hook;
    ``delivery`` says where it sends; its result's (or interrupt's) summary gives the counts."""
    observers: list[Any] = [o() for o in (_Lineage.configured(), _Tracing.configured()) if o]
    if not observers:
        return call()
    client = getattr(delivery, "client", None)
    url = client.base_url if client is not None else getattr(delivery, "base_url", None)
    url = url or os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL)
    watched = Watched(kind, operation, source, url)
    for observer in observers:
        observer.start(watched)
    try:
        result = call()
    except BaseException as exc:
        watched.counts = _counts(getattr(exc, "result", None))
        for observer in reversed(observers):
            observer.end(watched, exc)
        raise
    watched.counts = _counts(result)
    for observer in reversed(observers):
        observer.end(watched, None)
    return result


def request(call: Callable[[], Answer], *, waited: float, retries: int) -> Answer:
    """``call()`` (one request to Flameup), seen by the run's tracing; the send layer's one
    hook. ``waited``: seconds it waited for the rate budget; ``retries``: earlier attempts."""
    if (tracing := _TRACING.get()) is None:
        return call()
    started = time.time_ns() - int(waited * 1e9)
    try:
        answer = call()
    except TransportError as exc:
        tracing.requested(started, waited, retries, exc)
        raise
    tracing.requested(started, waited, retries, answer)
    return answer


def _counts(result: Any) -> dict[str, int]:
    summary = getattr(result, "summary", result)  # a Spark result holds its summary
    counts = getattr(summary, "counts", summary)
    return {str(s): int(n) for s, n in counts.items()} if isinstance(counts, Mapping) else {}


def _dataset(source: Any) -> tuple[str, str] | None:
    """(namespace, name) as OpenLineage names datasets: ``file`` and an absolute path,
    ``s3://bucket`` and a key; a DuckDB relation's query; a dataset's or Spark frame's files."""
    if isinstance(source, str | Path):
        text = str(source)
        parts = urllib.parse.urlsplit(text)
        if "://" not in text or parts.scheme == "file":
            return "file", str(Path(parts.path if "://" in text else text).resolve())
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    kind = type(source)
    # asked of the type: a Spark frame's columns are attributes
    if callable(getattr(kind, "sql_query", None)):
        return "duckdb", source.sql_query()
    files: list[str] = []
    if callable(getattr(kind, "inputFiles", None)):  # Spark
        files = source.inputFiles()
    elif isinstance(source, ds.FileSystemDataset):
        scheme = source.filesystem.type_name
        files = [f if scheme == "local" else f"{scheme}://{f}" for f in source.files]
    if files[1:]:  # their folder (URIs: commonpath would fold the "//")
        return _dataset(os.path.commonprefix(files).rpartition("/")[0])  # noqa: RUF071
    return _dataset(files[0]) if files else None


@functools.cache
def _installed(module: str) -> bool:
    """Whether ``module`` can be imported; False when its package is missing (find_spec of a
    submodule raises, rather than answering None, when the parent is not installed)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class _Lineage:
    """OpenLineage RunEvents for one run: START, then COMPLETE or FAIL."""

    @staticmethod
    def configured() -> type[_Lineage] | None:
        if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
            return None
        named = ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE__TRANSPORT__TYPE")
        files = ("openlineage.yml", os.path.expanduser("~/.openlineage/openlineage.yml"))
        if not (any(map(os.environ.__contains__, named)) or any(map(os.path.isfile, files))):
            return None
        return _Lineage if _installed("openlineage.client") else None

    def __init__(self) -> None:
        from openlineage.client import OpenLineageClient
        from openlineage.client.uuid import generate_new_uuid

        self.run_id = str(generate_new_uuid())
        self.failed = False
        try:
            self.client: Any = OpenLineageClient()
        except Exception as exc:  # a bad config must not stop the run
            self._failed(exc)

    def start(self, watched: Watched) -> None:
        self._emit(watched, "START", None)

    def end(self, watched: Watched, error: BaseException | None) -> None:
        self._emit(watched, "COMPLETE" if error is None else "FAIL", error)

    def _emit(self, watched: Watched, state: str, error: BaseException | None) -> None:
        if self.failed:
            return
        try:
            self.client.emit(self._event(watched, state, error))
        except Exception as exc:  # lineage never fails a run
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failed = True
        logger.warning("OpenLineage: no events for this run (%s: %s)", type(exc).__name__, exc)

    def _event(self, watched: Watched, state: str, error: BaseException | None) -> Any:
        from openlineage.client import event_v2 as ol
        from openlineage.client import facet_v2 as facets

        job_facets: dict[str, Any] = {
            "jobType": facets.job_type_job.JobTypeJobFacet("BATCH", "FLAMEUP_PANDAS", "JOB")
        }
        if watched.input is not None and watched.input[0] == "duckdb":
            job_facets["sql"] = facets.sql_job.SQLJobFacet(watched.input[1], "duckdb")
        inputs, output = watched.datasets(counted=state != "START")
        run_facets: dict[str, Any] = {}
        if state != "START":
            run_facets["flameup"] = facets.RunFacet().with_additional_properties(
                counts=watched.counts
            )
        if error is not None:
            message = facets.error_message_run.ErrorMessageRunFacet
            run_facets["errorMessage"] = message(f"{type(error).__name__}: {error}", "python")
        name = watched.input[1] if watched.input else "frame"
        return ol.RunEvent(
            eventType=getattr(ol.RunState, state),
            eventTime=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            run=ol.Run(self.run_id, facets=run_facets),
            job=ol.Job(
                os.environ.get("OPENLINEAGE_NAMESPACE", "flameup-pandas"),
                f"{watched.operation}.{watched.kind}:{name}"[:1000],
                facets=job_facets,
            ),
            producer=PRODUCER,
            inputs=inputs,
            outputs=[output],
        )


class _Tracing:
    """An OpenTelemetry span for one run, a child span per request, and the metrics."""

    @staticmethod
    def configured() -> type[_Tracing] | None:
        if not _installed("opentelemetry.trace"):
            return None
        from opentelemetry import metrics, trace

        kinds = type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider())
        no_ops = {"ProxyTracerProvider", "NoOpTracerProvider"}
        meters = {"_ProxyMeterProvider", "NoOpMeterProvider"}
        return None if kinds[0] in no_ops and kinds[1].__name__ in meters else _Tracing

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace

        self.trace, self.context = trace, context
        self.tracer = trace.get_tracer("flameup_pandas", __version__)
        self.meters = _instruments(metrics.get_meter_provider())

    def start(self, watched: Watched) -> None:
        self.kind = {"flameup.kind": watched.kind}
        self.span = self.tracer.start_span(
            f"flameup {watched.operation}",
            attributes={
                **self.kind,
                "flameup.operation": watched.operation,
                "flameup.source": watched.input[1] if watched.input else "frame",
                "server.address": watched.output[0].removeprefix("flameup://"),
            },
        )
        self.token = self.context.attach(self.trace.set_span_in_context(self.span))
        self.held = _TRACING.set(self)

    def requested(self, started: int, waited: float, retries: int, got: Answer | Exception) -> None:
        answer = got if isinstance(got, Answer) else None
        method, _, path = (answer.request if answer else "").partition(" ")
        route = _ROUTE_ID.sub(r"\1/{id}", path.partition("?")[0])
        attributes: dict[str, Any] = {"flameup.retries": retries, "flameup.budget_wait": waited}
        if method:
            attributes |= {"http.request.method": method, "url.template": route}
        if answer is not None:
            attributes["http.response.status_code"] = answer.status
            for name in ("Limit", "Remaining", "Reset"):
                if (value := answer.headers.get(f"X-RateLimit-{name}")) is not None:
                    attributes[f"flameup.ratelimit.{name.lower()}"] = value
        else:
            attributes["error.type"] = getattr(got, "reason", None) or "TransportError"
        span = self.tracer.start_span(
            f"{method} {route}" if method else "flameup request",
            kind=self.trace.SpanKind.CLIENT,
            start_time=started,
            attributes=attributes,
        )
        if answer is None or answer.status >= 400:
            span.set_status(self.trace.StatusCode.ERROR)
        span.end()
        shared = {**self.kind, "http.response.status_code": answer.status if answer else 0}
        requests, limited, duration, wait, _ = self.meters
        requests.add(1, shared)
        wait.record(waited, self.kind)
        if answer is not None:
            duration.record(answer.elapsed, shared)
            if answer.status == 429:
                limited.add(1, self.kind)

    def end(self, watched: Watched, error: BaseException | None) -> None:
        _TRACING.reset(self.held)
        self.context.detach(self.token)
        rows = self.meters[4]
        for status, n in watched.counts.items():
            self.span.set_attribute(f"flameup.rows.{status}", n)
            if n:
                rows.add(n, {**self.kind, "flameup.status": status})
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(self.trace.StatusCode.ERROR, f"{type(error).__name__}: {error}")
        self.span.end()


@functools.lru_cache(maxsize=4)
def _instruments(provider: Any) -> tuple[Any, ...]:
    meter = provider.get_meter("flameup_pandas", __version__)
    return (
        meter.create_counter("flameup.requests", "{request}", "Requests sent to Flameup"),
        meter.create_counter("flameup.rate_limited", "{request}", "Answers of 429"),
        meter.create_histogram("flameup.request.duration", "s", "Time to each answer"),
        meter.create_histogram("flameup.budget.wait", "s", "Time waiting for the rate budget"),
        meter.create_counter("flameup.rows", "{row}", "Rows per status at the end of a run"),
    )
