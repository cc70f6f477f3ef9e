"""A run's observers: OpenLineage events to a loopback receiver, OpenTelemetry spans and
metrics to the SDK's in-memory exporters, and nothing at all when neither is configured."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import flameup_pandas as fp
from flameup_pandas._send import observe
from flameup_pandas.testing import Faults, FlameupServer

from .conftest import target

pytest.importorskip("openlineage.client")
otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.metrics import _internal as metrics_globals  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)


def _people(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"userId": [f"u{i}" for i in range(n)], "email": [f"p{i}@example.com" for i in range(n)]}
    )


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InMemorySpanExporter, Any]]:
    """SDK tracer and meter providers with in-memory exporters, installed as the process's
    providers for this test only (what ``set_tracer_provider`` does, undone afterwards)."""
    spans = InMemorySpanExporter()
    tracer_provider = otel_sdk.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)
    monkeypatch.setattr(metrics_globals, "_METER_PROVIDER", meter_provider)
    yield spans, reader
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _points(reader: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def test_file_run_sends_start_and_complete_with_datasets_and_row_count(
    lineage: list[dict[str, Any]], flameup_server: FlameupServer, tmp_path: Path
) -> None:
    path = tmp_path / "customers.parquet"
    _people(250).to_parquet(path)
    fp.upsert_file(path, **target(flameup_server))
    start, complete = lineage
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["inputs"] == [{"namespace": "file", "name": str(path), "facets": {}}] or (
        complete["inputs"][0]["namespace"],
        complete["inputs"][0]["name"],
    ) == ("file", str(path.resolve()))
    output = complete["outputs"][0]
    host = flameup_server.base_url.split("//")[1].split("/")[0]
    assert (output["namespace"], output["name"]) == (f"flameup://{host}", "people")
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 250
    assert complete["run"]["facets"]["flameup"]["counts"]["created"] == 250
    assert flameup_server.api_key not in json.dumps(lineage)


def test_refused_key_sends_fail(
    lineage: list[dict[str, Any]], flameup_server: FlameupServer
) -> None:
    options = target(flameup_server, api_key="ws_test_refused_0000")
    with pytest.raises(fp.AuthenticationError):
        fp.upsert(_people(3), **options)
    start, fail = lineage
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["runId"] == start["run"]["runId"]
    assert "AuthenticationError" in fail["run"]["facets"]["errorMessage"]["message"]
    assert "ws_test_refused_0000" not in json.dumps(lineage)


def test_duckdb_query_is_the_input_and_events_go_to_events(
    lineage: list[dict[str, Any]], flameup_server: FlameupServer
) -> None:
    duckdb = pytest.importorskip("duckdb")
    query = (
        "SELECT 'u' || i AS userId, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS timestamp "
        "FROM range(3) t(i)"
    )
    fp.track_file(duckdb.sql(query), event="signed_up", **target(flameup_server))
    complete = lineage[-1]
    assert complete["inputs"][0]["namespace"] == "duckdb"
    assert complete["inputs"][0]["name"] == duckdb.sql(query).sql_query()
    assert complete["outputs"][0]["name"] == "events"
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3


def test_a_dead_receiver_never_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
    flameup_server: FlameupServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", "http://127.0.0.1:9")  # discard: closed
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0}')
    result = fp.upsert(_people(2), **target(flameup_server))
    assert (result["flameup_status"] == "created").all()
    assert len([r for r in caplog.records if "OpenLineage" in r.getMessage()]) == 1


def test_one_root_span_with_counts_and_a_child_per_request(
    otel: tuple[InMemorySpanExporter, Any], flameup_server: FlameupServer
) -> None:
    spans, reader = otel
    fp.upsert(_people(250), concurrency=2, **target(flameup_server))
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.parent is None]
    assert [s.name for s in roots] == ["flameup upsert"]
    root = roots[0]
    assert root.attributes["flameup.rows.created"] == 250
    assert root.attributes["flameup.kind"] == "people"
    children = [s for s in finished if s.parent is not None]
    assert len(children) == 3  # 100 + 100 + 50
    assert {s.parent.span_id for s in children} == {root.context.span_id}
    assert {s.trace_id for s in (c.context for c in children)} == {root.context.trace_id}
    child = children[0]
    assert child.name == "POST /people/batch"
    assert child.attributes["http.response.status_code"] == 200
    assert child.attributes["flameup.retries"] == 0
    assert "flameup.ratelimit.remaining" in child.attributes
    assert child.attributes["flameup.budget_wait"] >= 0
    points = _points(reader)
    assert sum(p.value for p in points["flameup.requests"]) == 3
    assert sum(p.count for p in points["flameup.request.duration"]) == 3
    assert sum(p.count for p in points["flameup.budget.wait"]) == 3
    rows = {p.attributes["flameup.status"]: p.value for p in points["flameup.rows"]}
    assert rows == {"created": 250}


def test_429s_are_counted_and_the_failed_run_span_says_why(
    otel: tuple[InMemorySpanExporter, Any], flameup_server_factory: Any
) -> None:
    spans, reader = otel
    storms = Faults(storm_rate=0.5, storm_length=1, storm_retry_after=0.1, seed=3)
    server = flameup_server_factory(faults=storms, rate_window=1.0)
    fp.upsert(_people(200), concurrency=1, **target(server))
    points = _points(reader)
    limited = sum(p.value for p in points["flameup.rate_limited"])
    requests = [s for s in spans.get_finished_spans() if s.parent is not None]
    assert limited >= 1
    assert limited == sum(s.attributes["http.response.status_code"] == 429 for s in requests)
    assert sum(p.value for p in points["flameup.requests"]) == len(requests) == 2 + limited
    assert any(s.attributes["flameup.retries"] > 0 for s in requests)
    spans.clear()
    spans.clear()
    with pytest.raises(fp.AuthenticationError):
        fp.upsert(_people(1), **target(server, api_key="ws_test_refused_0000"))
    [root] = [s for s in spans.get_finished_spans() if s.parent is None]
    assert root.status.status_code == trace.StatusCode.ERROR


def test_route_ids_are_not_in_span_names(
    otel: tuple[InMemorySpanExporter, Any], flameup_server: FlameupServer
) -> None:
    spans, _ = otel
    df = _people(2)
    fp.upsert(df, **target(flameup_server))
    spans.clear()
    fp.plan(df, against="flameup", **target(flameup_server))
    names = {s.name for s in spans.get_finished_spans()}
    assert not any("u0" in name or "@" in name for name in names)


def test_nothing_observes_when_nothing_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(name)
    assert observe._Lineage.configured() is None
    assert observe._Tracing.configured() is None
    assert observe.run("people", "upsert", None, None, lambda: 7) == 7


@given(st.text(min_size=1), st.sampled_from(["/people/", "/workspaces/"]))
@example("batch-1", "/people/")
def test_a_route_never_carries_an_id_or_email(ident: str, prefix: str) -> None:
    quoted = urllib.parse.quote(ident, safe="")
    route = observe._ROUTE_ID.sub(r"\1/{id}", prefix + quoted + "/events")
    assert route == prefix + "{id}/events" or quoted == "batch"


@given(st.lists(st.sampled_from(["a", "b", "c d", "é"]), min_size=1, max_size=4))
def test_a_file_source_is_named_by_its_absolute_path(parts: list[str]) -> None:
    path = "/".join(parts) + ".parquet"
    assert observe._dataset(path) == ("file", str(Path(path).resolve()))
    assert observe._dataset(f"s3://bucket/{path}") == ("s3://bucket", path)
