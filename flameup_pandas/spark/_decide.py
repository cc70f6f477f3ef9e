"""In Spark: each row's decision against the sync state, across batches and partitions.

Among rows still to send, the highest ``row`` of an identity wins (as ``on_duplicate="last"``);
the state is left-joined on ``identity_hash`` and ``identity``: a person it knows with the same
content hash is ``unchanged``, one it knows an ``update``, any other a ``create``, and the
changed fields come from the hashes it keeps of each field. A local state (a shared mount on
a cluster) is read by Spark; one on object storage reaches the executors from the driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .._run.options import Run
from .._run.plan import DRY_RUN, UNCHANGED
from .._run.state import SyncState
from ._executors import ERROR, ROW, STATUS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["ACTION", "FLAMEUP_ID", "SENDING", "checkpoint", "decide", "state_of", "statuses"]

ACTION, FLAMEUP_ID = "flameup_action", "flameup_id"
SENDING = ("create", "update")
_REPEAT = "duplicate identity: row %d with the same identity was sent instead"
_KNOWN = {
    "identity_hash": "_known_hash",
    "identity": "_known_identity",
    "content_hash": "_known_content",
    "flameup_id": "_known_id",
    "fields": "_known_fields",
    "sent": "_known_sent",
}
_TO_SEND = ("payload", "sent")
_KINDS = {"fields": "array<bigint>", "sent": "string"}


def functions() -> Any:
    """``pyspark.sql.functions``, imported only when a Spark run starts."""
    from pyspark.sql import functions

    return functions


def known_state(spark: SparkSession, sync: SyncState) -> DataFrame | None:
    """The state's columns the decisions join on, as a Spark DataFrame (None when empty)."""
    f = functions()
    if isinstance(sync.path, Path):
        if not sync.path.exists():
            return None
        state = spark.read.parquet(str(sync.path))
    elif len(sync) == 0:
        return None
    else:  # read by the driver: no filesystem or credential needed on the cluster
        table = sync.table.select(list(_KNOWN)).combine_chunks()
        at = table.column_names.index("fields")  # Spark has no unsigned integers
        table = table.set_column(at, "fields", table["fields"].cast(pa.list_(pa.int64())))
        state = spark.createDataFrame(table)

    def column(name: str) -> Column:
        value: Column = f.col(name) if name in state.columns else f.lit(None)
        return value.cast(_KINDS[name]) if name in _KINDS else value

    return state.select(*(column(name).alias(alias) for name, alias in _KNOWN.items()))


@contextlib.contextmanager
def state_of(sdf: DataFrame, run: Run) -> Iterator[tuple[SyncState | None, DataFrame | None]]:
    """The run's state, opened (locked, journals folded) before Spark reads :func:`known_state`."""
    if run.state is None:
        yield None, None
        return
    with SyncState.open(run.state, filesystem=run.storage) as sync:
        yield sync, known_state(sdf.sparkSession, sync)


def decide(
    planned: DataFrame, known: DataFrame | None, *, with_state: bool, full_refresh: bool = False
) -> DataFrame:
    """Every planned row with its ``flameup_action``, ``flameup_error``, known ``flameup_id``,
    ``_known_sent``; with field lists, ``flameup_changes`` and ``fields`` (the hashes the state
    keeps: all but userId). Without a state every person to send is an update."""
    from pyspark.sql import Window

    f = functions()
    settled = planned.where(f.col(STATUS).isNotNull()).withColumn(
        ACTION, f.when(f.col(STATUS) == "invalid", "invalid").otherwise("skipped")
    )
    winner = f.max(ROW).over(Window.partitionBy("identity_hash", "identity"))
    pending = planned.where(f.col(STATUS).isNull()).withColumn("_winner", winner)
    duplicate = f.col(ROW) != f.col("_winner")
    found = unchanged = f.lit(False)
    if known is not None:
        on = (pending["identity_hash"] == known["_known_hash"]) & (
            pending["identity"] == known["_known_identity"]
        )
        pending = pending.join(known, on=on, how="left")
        found = f.col("_known_hash").isNotNull()
        if not full_refresh:
            unchanged = f.coalesce(f.col("_known_content") == f.col("content_hash"), f.lit(False))
    else:
        for name, alias in _KNOWN.items():
            pending = pending.withColumn(alias, f.lit(None).cast(_KINDS.get(name, "string")))
    action = (
        f.when(duplicate, "skipped")
        .when(unchanged, "unchanged")
        .when(found | f.lit(not with_state), "update")
        .otherwise("create")
    )
    error = f.when(duplicate, f.format_string(_REPEAT, "_winner")).when(unchanged, f.lit(UNCHANGED))
    decided = pending.select(
        *[c for c in planned.columns if c not in (ERROR, *_TO_SEND)],
        # only the people to send keep their JSON in the checkpoint
        *[
            f.when(action.isin(*SENDING), f.col(c)).alias(c)
            for c in _TO_SEND
            if c in planned.columns
        ],
        action.alias(ACTION),
        error.cast("string").alias(ERROR),
        f.when(unchanged & ~duplicate, f.col("_known_id")).cast("string").alias(FLAMEUP_ID),
        f.col("_known_sent"),
        *_field_columns(planned, action, f.col("_known_fields")),
    )
    return decided.unionByName(settled, allowMissingColumns=True)


def _field_columns(planned: DataFrame, action: Column, old: Column) -> list[Column]:
    """The changed fields of a create or update, and the field hashes the state keeps."""
    if "field_names" not in planned.columns:
        return []
    f = functions()
    pairs = f.arrays_zip("field_names", "field_hashes")
    kept = f.filter(pairs, lambda x: x["field_names"] != "userId")
    differing = f.filter(kept, lambda x: ~f.array_contains(old, x["field_hashes"]))
    changes = f.when(action == "create", f.col("field_names")).when(
        (action == "update") & old.isNotNull(), f.transform(differing, lambda x: x["field_names"])
    )
    return [
        changes.alias("flameup_changes"),
        f.transform(kept, lambda x: x["field_hashes"]).alias("fields"),
    ]


def checkpoint(decided: DataFrame) -> DataFrame:
    """The decisions computed once and kept on the executors' disks (in memory, a local driver
    sharing its heap with the executors ran out of it reading them back: 2M rows, 1 GiB)."""
    from pyspark import StorageLevel

    return decided.localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)


def statuses(decided: DataFrame, *, dry_run: bool) -> DataFrame:
    """The decisions as a run's statuses: creates and updates are to send (no status yet;
    ``skipped`` as "dry run: would be sent" in a dry run), unchanged people ``skipped``."""
    f = functions()
    sending = f.col(ACTION).isin(*SENDING)
    invalid = f.col(ACTION) == "invalid"
    status = f.when(sending, f.lit("skipped" if dry_run else None)).when(invalid, "invalid")
    error = f.when(sending, f.lit(DRY_RUN if dry_run else None)).otherwise(f.col(ERROR))
    return decided.withColumns(
        {STATUS: status.otherwise("skipped").cast("string"), ERROR: error.cast("string")}
    )
