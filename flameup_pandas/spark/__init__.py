"""Upsert a Spark DataFrame: the cluster validates, hashes and decides; the driver sends.

``pip install flameup-pandas[spark]``; importing ``flameup_pandas`` never imports pyspark::

    from flameup_pandas import spark as flameup_spark

    run = flameup_spark.upsert(customers_sdf, state="/dbfs/flameup/customers.state.parquet",
                               api_key=key)
    run.summary                     # counts per status, requests, rows that reached the driver
    run.results                     # Spark DataFrame: row, userId, email, identity, flameup_*

How a run goes: the executors plan each Arrow batch with the rules every path runs
(``_executors``); Spark decides each row against the state, across partitions (``_decide``),
and those decisions are ``localCheckpoint``-ed once, so the planning runs exactly once; only
the rows to send reach the driver, whose chunks go through the one engine every other path
runs (``_driver``): one sender, one rate budget, the same state, summary, progress,
interrupts and change guard. :func:`plan` is the plan of a Spark DataFrame.

``state`` is a local path or a URI: on a cluster, a local path must be one the driver can lock
and write and the executors can read at the same name (a shared mount such as ``/dbfs/...``);
a URI (``s3://bucket/customers.state``) is locked, read and written by the driver alone, as on
the pandas path. ``results`` is written by Spark's own writer, so it takes the paths Spark's
filesystems know (``s3a://`` with hadoop-aws, ``dbfs:/``...).
"""

from __future__ import annotations

from ._driver import SparkUpsertResult, upsert
from ._plans import SparkPlan, plan

__all__ = ["SparkPlan", "SparkUpsertResult", "plan", "upsert"]
