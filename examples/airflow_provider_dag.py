"""An Airflow 3 DAG using the Flameup provider: the key and URL come from a connection.

Create the connection once (the UI's Admin > Connections, type "Flameup"), or give it to
the workers in the environment, as JSON:

    AIRFLOW_CONN_FLAMEUP_DEFAULT='{"conn_type": "flameup", "password": "ws_live_...",
                                   "host": "https://api.flameup.ai/api/v1"}'

and, optionally, FLAMEUP_SOURCE and FLAMEUP_WORK_DIR as for examples/airflow_dag.py. Try it
without a scheduler: ``airflow dags test flameup_provider_sync``. The task's return value (the
run's summary) goes to XCom; with Airflow's OpenLineage provider configured, the task reports
the file it read and the Flameup people it wrote (with the rows written).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from airflow.sdk import dag

from flameup_pandas.airflow import FlameupUpsertOperator

SOURCE = os.environ.get(
    "FLAMEUP_SOURCE", str(Path(__file__).resolve().parent / "customers.parquet")
)
WORK_DIR = os.environ.get("FLAMEUP_WORK_DIR", str(Path(tempfile.gettempdir()) / "flameup_sync"))


@dag(dag_id="flameup_provider_sync", schedule=None, catchup=False, tags=["flameup"])
def flameup_provider_sync() -> None:
    FlameupUpsertOperator(
        task_id="upsert_customers",
        source=SOURCE,
        state=WORK_DIR.rstrip("/") + "/provider.state.parquet",
        results=WORK_DIR.rstrip("/") + "/provider-{{ ds_nodash }}.results.parquet",  # templated
        max_failed=3,  # the sample's 3 invalid rows
        retries=2,
    )


flameup_provider_sync()
