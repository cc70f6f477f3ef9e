"""An Airflow 3 DAG that pushes a parquet export of customers into Flameup.

Put this file in your dags folder (or point ``AIRFLOW__CORE__DAGS_FOLDER`` at ``examples/``)
and set, in the worker's environment:

    FLAMEUP_API_KEY     the key (or read it from an Airflow Variable: see upsert_file_task)
    FLAMEUP_BASE_URL    optional, for another server (the local one in tests)
    FLAMEUP_SOURCE      the parquet file or folder (default: examples/customers.parquet)
    FLAMEUP_WORK_DIR    where the sync state and the per-row results live: in production a
                        folder of object storage that outlasts the worker, such as
                        s3://my-bucket/flameup (pip install "flameup-pandas[s3]"; credentials
                        from the worker's AWS environment), or a lasting local path (default:
                        a folder in the system's temporary directory)

Try it without a scheduler: ``airflow dags test flameup_customers_sync``.

The sample has 3 invalid rows (never sent) and one duplicate userId (``skipped``), hence
``max_failed=3``. A retry, or the next day's run, sends only new or changed people: the rest
are ``skipped`` thanks to the sync state.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

DEFAULT_SOURCE = Path(__file__).resolve().parent / "customers.parquet"
DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "flameup_customers_sync"


@dag(dag_id="flameup_customers_sync", schedule=None, catchup=False, tags=["flameup"])
def flameup_customers_sync() -> None:
    @task(retries=2, retry_delay=timedelta(minutes=1), multiple_outputs=False)
    def upsert_customers() -> dict[str, Any]:
        # Imported here, not at the top: the scheduler parses this file often and
        # pandas/pyarrow are only needed when the task runs.
        from flameup_pandas.airflow import upsert_file_task

        source = os.environ.get("FLAMEUP_SOURCE", str(DEFAULT_SOURCE))
        work_dir = os.environ.get("FLAMEUP_WORK_DIR", str(DEFAULT_WORK_DIR)).rstrip("/")
        return upsert_file_task(
            source,
            state=f"{work_dir}/customers.state.parquet",  # a path or s3://, gs://, az:// URI
            results=f"{work_dir}/customers.results.parquet",
            max_failed=3,
        )

    upsert_customers()


flameup_customers_sync()
