"""CI, under Airflow (.ci/airflow runs it in .venv-airflow): the Flameup provider end to end.

Needs AIRFLOW_CONN_FLAMEUP_DEFAULT (JSON: the local server's key as password, its base URL as
host) and FLAMEUP_SAMPLE; FLAMEUP_API_KEY must NOT be set, so every key used comes from the
connection. Exits non-zero on the first check that fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
from airflow.providers_manager import ProvidersManager

from flameup_pandas.airflow import (
    FlameupHook,
    FlameupTrackOperator,
    FlameupUpsertOperator,
    TooManyFailedRowsError,
    upsert_file_task,
)


def check(ok: object, what: str) -> None:
    print(f"airflow provider: {'ok' if ok else 'FAILED'}: {what}", flush=True)
    if not ok:
        sys.exit(1)


assert "FLAMEUP_API_KEY" not in os.environ, "the key must come from the connection"
sample = Path(os.environ["FLAMEUP_SAMPLE"])
work = Path(tempfile.mkdtemp(prefix="flameup-provider-"))

info = ProvidersManager().hooks.get("flameup")
check(info is not None and info.hook_class_name.endswith("FlameupHook"), "connection type found")
behaviour = FlameupHook.get_ui_field_behaviour()
check({"login", "port"} <= set(behaviour["hidden_fields"]), f"unused fields hidden {behaviour}")

hook = FlameupHook()
check(hook.test_connection()[0], "test_connection with the key of AIRFLOW_CONN_FLAMEUP_DEFAULT")
planned = hook.plan_file(sample)
check(len(planned) == 2000, "hook.plan_file")
frame = pd.DataFrame({"userId": ["hook-1", "hook-2"], "email": ["h1@example.com", "h2@x.io"]})
check((hook.upsert(frame, progress=False)["flameup_status"] == "created").all(), "hook.upsert")
summary = hook.upsert_file(sample, progress=False)
check(summary.counts["invalid"] == 3 and summary.rows == 2000, f"hook.upsert_file {summary.counts}")
events = work / "events.parquet"
pd.DataFrame(
    {"userId": ["hook-1", "hook-2"], "timestamp": pd.Timestamp("2026-01-01", tz="UTC")}
).to_parquet(events)
tracked = hook.track_file(events, event="hook_checked", progress=False)
check(tracked.counts.get("sent") == 2, f"hook.track_file {tracked.counts}")

operator = FlameupUpsertOperator(
    task_id="upsert",
    source=str(sample),
    state=str(work / "state.parquet"),
    results=str(work / "results.parquet"),
    max_failed=3,
    options={"progress": False},
)
out = operator.execute(context={})
check(out["rows"] == 2000 and out["invalid"] == 3, f"FlameupUpsertOperator.execute -> {out}")
lineage = operator.get_openlineage_facets_on_complete(None)
check(lineage.inputs[0].name == str(sample.resolve()), f"lineage input {lineage.inputs}")
output = lineage.outputs[0]
written = out.get("created", 0) + out.get("updated", 0)
rows = output.outputFacets["outputStatistics"].rowCount if output.outputFacets else None
check(output.name == "people" and rows == written, f"lineage output {output}")
check("max_changes" in FlameupUpsertOperator.template_fields, "templated fields")

strict = FlameupUpsertOperator(task_id="strict", source=str(sample), options={"progress": False})
try:
    strict.execute(context={})
except TooManyFailedRowsError as failed:
    check(failed.summary["invalid"] == 3, "max_failed=0 fails the task")
else:
    check(False, "max_failed=0 fails the task")
check(strict.get_openlineage_facets_on_failure(None).outputs, "lineage on failure")

track = FlameupTrackOperator(
    task_id="track", source=str(events), options={"event": "operator_checked", "progress": False}
)
check(track.execute(context={}).get("sent") == 2, "FlameupTrackOperator.execute")
task_out = upsert_file_task(sample, max_failed=3, flameup_conn_id="flameup_default")
check(task_out["rows"] == 2000, "upsert_file_task(flameup_conn_id=...)")
print("airflow provider: all checks passed", flush=True)
