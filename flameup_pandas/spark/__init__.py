"""Upsert a Spark DataFrame: the cluster validates, converts, hashes and decides; the driver
feeds the one engine.

``pip install flameup-pandas[spark]``; importing ``flameup_pandas`` never imports pyspark::

    from flameup_pandas import spark as flameup_spark

    run = flameup_spark.upsert(customers_sdf, state="/dbfs/flameup/customers.state.parquet",
                               api_key=key)
    run.summary                     # counts per status, requests, rows that reached the driver
    run.results                     # Spark DataFrame: row, userId, email, identity, flameup_*

How a run goes, and why
-----------------------
1. **Plan on the executors** (:mod:`~flameup_pandas.spark.executors`): ``mapInArrow`` hands
   each Arrow batch to the rules every other path runs; each input row comes out as one
   narrow row (identity, hashes, a settled status with its reason, and only for the rows to
   send, their JSON). Content hashes are taken only when a state is read or written, the
   JSON only when the run sends.
2. **Decide in Spark** (:mod:`~flameup_pandas.spark.decide`): duplicates across partitions
   (the highest ``row`` wins), then the diff against the state: ``create``, ``update``,
   ``unchanged`` and the changed fields. These decisions are ``localCheckpoint``-ed once: the
   planning runs exactly once, and the results never re-read a state file that this run then
   rewrites. With ``max_changes``/``max_creates`` they are counted in Spark first, and the
   change guard refuses before any row to send leaves the cluster.
3. **Send through the engine** (:mod:`~flameup_pandas.spark.driver`): only the rows to send
   reach the driver, in chunks the engine sends, records (state, ``state_values``), reports
   (summary, progress) and stops (Ctrl-C, SIGTERM) as it does a file's. A driver killed
   mid-run loses at most the batches in flight.

The driver holds the sync state (one parquet file, as in the pandas path) and the outcome of
each sent row; nothing else of the table. ``state`` is a local path or a URI: on a cluster, a
local path must be one the driver can lock and write and the executors can read at the same
name (a shared mount such as ``/dbfs/...``); a URI (``state="s3://bucket/customers.state"``)
is locked, read, journalled and written by the driver alone (credentials from the driver's
environment, or ``filesystem=``), as on the pandas path. ``results`` is written by Spark's own
writer, so it takes the paths Spark's filesystems know (``s3a://`` with hadoop-aws,
``dbfs:/``...). :func:`plan` is the plan of a Spark DataFrame (:mod:`~flameup_pandas.spark.plans`).
"""

from __future__ import annotations

from .driver import SparkUpsertResult, upsert
from .executors import PLANNED_DDL as PLANNED_DDL  # the executors' own, for benchmarks
from .executors import PLANNED_SCHEMA as PLANNED_SCHEMA
from .executors import plan_batches as plan_batches
from .executors import planned_batch as planned_batch
from .plans import SparkPlan, plan

__all__ = ["SparkPlan", "SparkUpsertResult", "plan", "upsert"]
