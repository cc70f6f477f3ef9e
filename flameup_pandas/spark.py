"""Upsert a Spark DataFrame: the cluster validates, converts, hashes and diffs; one driver sends.

``pip install flameup-pandas[spark]``; importing ``flameup_pandas`` never imports pyspark::

    from flameup_pandas import spark as flameup_spark

    run = flameup_spark.upsert(customers_sdf, state="/dbfs/flameup/customers.state.parquet",
                               api_key=key)
    run.summary                     # counts per status, requests, rows that reached the driver
    run.results                     # Spark DataFrame: row, userId, email, identity, flameup_*

How a run goes, and why
-----------------------
1. **Plan on the executors.** ``mapInArrow`` hands each Arrow batch of the table to
   :meth:`Rules.plan <flameup_pandas._run.plan.Rules.plan>`, which encodes every person
   column by column and gives its content hash and identity key: the very code the pandas
   and file paths run, so there is one implementation of the rules. Each input row comes out
   as one narrow row: its identity, the 64-bit identity and content hashes, a status if it is
   already settled (``invalid``, or ``skipped`` as a duplicate inside its batch) with the
   reason, and, only for rows still to send, the person as a JSON string. As on the file
   path, content hashes are taken only when a state is read or written, and the JSON only
   when the run sends (a dry run without a state builds neither). The rows are built a column
   at a time and go back to Spark as Arrow arrays. The batches cross to pandas as every other
   source's do, so a value means on Spark what it means everywhere: ``timestamp`` columns
   arrive as instants, ``timestamp_ntz`` columns stay naive and follow ``naive_timestamps``.
2. **Duplicates across batches and partitions** are settled in Spark: among rows still to send,
   the one with the highest ``row`` (``monotonically_increasing_id``: partition order, then row
   order) wins, as ``on_duplicate="last"`` does in pandas; the others are ``skipped`` naming it.
3. **Diff in Spark.** With ``state=``, the state parquet file (the format of
   :mod:`flameup_pandas._run.state`, shared with the pandas and file paths) is read with
   ``spark.read.parquet`` when it is a local path; a state on object storage (``s3://``,
   ``gs://``, ``az://``...) is read by the driver through the same storage layer as every
   other path, and its join columns reach the executors with the plan
   (``createDataFrame``), so the cluster needs no filesystem or credential for it. It is
   left-joined on ``identity_hash`` and ``identity``; rows whose
   ``content_hash`` matches are ``skipped`` as unchanged, with their known ``flameup_id``. These
   decisions are ``localCheckpoint``-ed once: the planning runs exactly once, and the results
   never re-read a state file that this run then rewrites.
4. **Send from the driver.** Only rows still to send leave the cluster, through
   ``toLocalIterator()`` over partitions of at most ``FETCH_ROWS`` rows (fetched one at a
   time: bounded driver memory, and no task result large enough to be lost), in batches of
   100, into the same :class:`~flameup_pandas._send.delivery.Deliverer` as every other path. One
   sender per run means one rate budget: the key's limit holds however large the cluster is, and
   the API's per-key limit (not the cluster) is the bottleneck of any sync anyway. Executors
   never send, so a retried or speculative Spark task cannot send twice or count twice.
5. **Record on the driver.** Each acknowledged batch is journalled through
   :class:`~flameup_pandas._run.state.SyncState` and folded into the parquet file when the run
   ends (atomic rename): the same file a pandas or file run reads, so a table synced from pandas
   can be synced from Spark and back. A driver killed mid-run loses at most the batches in flight.

The driver holds the sync state (one parquet file, as in the pandas path) and one small record
per sent row; nothing else of the table. ``state`` is a local path or a URI: on a cluster, a
local path must be one the driver can lock and write and the executors can read at the same
name (a shared mount such as ``/dbfs/...``); a URI (``state="s3://bucket/customers.state"``)
is locked, read, journalled and written by the driver alone (credentials from the driver's
environment, or ``filesystem=``), as on the pandas path. ``results`` is written by Spark's own
writer, so it takes the paths Spark's filesystems know (``s3a://`` with hadoop-aws,
``dbfs:/``...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._people.outgoing import Outgoing
from ._people.values import naive_error
from ._run.changes import ACTIONS, PLAN_COLUMNS, PlanSummary, summarize_plan, value_pair
from ._run.interrupt import deliver_all, interrupted, interruptible, shielded
from ._run.options import Delivery, Options, Run, split_options
from ._run.plan import BATCH_SIZE, UNCHANGED, Plan, Rules, Sender
from ._run.progress import Progress, open_progress
from ._run.result import STATUSES, RunReport, Summary
from ._run.sources import CHUNK_ROWS, arrow_frame, rechunked
from ._run.state import SyncState
from ._send import observe
from ._send.delivery import IN_FLIGHT, NOT_SENT, PersonOutcome, count_failed
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkPlan", "SparkUpsertResult", "plan", "upsert"]

ROW = "row"
STATUS, ERROR, FLAMEUP_ID = "flameup_status", "flameup_error", "flameup_id"
PLANNED_DDL = (
    "row long, userId string, email string, identity string, identity_hash long, "
    "content_hash long, flameup_status string, flameup_error string, payload string"
)
RESULT_COLUMNS = (ROW, "userId", "email", "identity", FLAMEUP_ID, STATUS, ERROR)
OUTCOMES_SCHEMA = pa.schema(
    [
        ("_sent_row", pa.int64()),
        ("_sent_id", pa.string()),
        ("_sent_status", pa.string()),
        ("_sent_error", pa.string()),
    ]
)
PLANNED_SCHEMA = pa.schema(
    [
        (ROW, pa.int64()),
        ("userId", pa.large_string()),
        ("email", pa.large_string()),
        ("identity", pa.large_string()),
        ("identity_hash", pa.int64()),
        ("content_hash", pa.int64()),
        (STATUS, pa.large_string()),
        (ERROR, pa.large_string()),
        ("payload", pa.large_string()),
    ]
)
""":data:`PLANNED_DDL` as the executors build it (large strings: no 2 GB limit per column)."""
_SPARK_PLANNED = pa.schema(
    [(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in PLANNED_SCHEMA]
)
""":data:`PLANNED_SCHEMA` with Spark's ``string`` (what ``mapInArrow`` must hand back)."""
DRY_RUN = "dry run: would be sent"
FETCH_ROWS = 20_000
"""At most this many rows to send per partition the driver fetches (a few MB)."""


@dataclass(frozen=True)
class SparkUpsertResult:
    """What a Spark run did: the :class:`Summary` and the per-row results.

    ``results`` is a Spark DataFrame (row, userId, email, identity, flameup_id, flameup_status,
    flameup_error; one row per input row), or the parquet dataset path it was written to when
    ``results=`` was given. The DataFrame rests on a local checkpoint of the run's decisions
    (executor storage): pass ``results=`` to keep the results beyond the session.
    """

    summary: Summary
    results: DataFrame | str


def upsert(sdf: DataFrame, **options: Unpack[Options]) -> SparkUpsertResult:
    """Upsert every row of a Spark DataFrame; only new or changed people leave the cluster.

    Keywords mean what they mean for :func:`flameup_pandas.upsert` and
    :func:`flameup_pandas.upsert_file`. Each identity is sent once (the last row by
    ``row`` wins). ``summary.to_dict()["rows_to_driver"]`` counts the rows that reached the
    driver; ``results`` is where the per-row results are written (a Spark parquet dataset),
    and ``progress`` is off unless asked for. See the module docstring for how the work is
    split and why.

    On Ctrl-C or SIGTERM no new request starts and none in flight is waited for; the state
    keeps every acknowledged batch, and :class:`~flameup_pandas.UpsertInterrupted` is raised
    whose ``result`` is this run's :class:`SparkUpsertResult` so far: sent rows with their
    outcomes, the rest ``failed`` ("interrupted before sending", or "may have been stored"
    for a batch in flight); with ``results=`` they are written there first.
    """
    rules, delivery, run = split_options("spark.upsert", {"progress": False, **options})
    with interruptible():
        # observers (lineage, tracing): the run's one hook, flameup_pandas._send.observe
        operation = "dry_run" if run.dry_run else "upsert"
        upsert = lambda: _upsert(sdf, rules, delivery, run)  # noqa: E731
        return observe.run("people", operation, sdf, delivery, upsert)


def _upsert(sdf: DataFrame, rules: Rules, delivery: Delivery, run: Run) -> SparkUpsertResult:
    started = time.monotonic()
    _refuse_unsupported(run)
    state, results, full_refresh, dry_run = run.state, run.results, run.full_refresh, run.dry_run
    stopped: KeyboardInterrupt | None = None
    _check_columns(sdf, rules)
    with (
        SyncState.open(state, filesystem=run.storage)
        if state is not None
        else contextlib.nullcontext() as sync
    ):
        # the state is opened (locked, any leftover journal folded) before Spark reads it
        known = None if sync is None or full_refresh else _read_state(sdf.sparkSession, sync)
        # content hashes serve the diff and the state's record of what was sent; the JSON, a send
        recorded = sync is not None and not dry_run
        needs = _Needs(payloads=not dry_run, hashes=known is not None or recorded, fields=recorded)
        decided = _decide(_plan(sdf, rules, needs), known, dry_run).localCheckpoint(eager=True)
        to_send = decided.where(_functions().col(STATUS).isNull())
        if dry_run:
            would_send = decided.where(_functions().col(ERROR) == DRY_RUN).count()
            report = RunReport(elapsed=time.monotonic() - started, dry_run=True)
            final, extra = decided, {"would_send": would_send}
            outcomes = OUTCOMES_SCHEMA.empty_table()
        else:
            sender = delivery.open()
            collected: list[pa.Table] = []
            try:
                reached = _deliver(to_send, sender, sync, run.progress, collected)
            except KeyboardInterrupt as exc:
                stopped, reached = exc, sum(t.num_rows for t in collected)
            finally:
                sender.close()
            outcomes = pa.concat_tables([OUTCOMES_SCHEMA.empty_table(), *collected])
            report = sender.report(time.monotonic() - started)
            final, extra = _settle(decided, outcomes), {"rows_to_driver": reached}
    with shielded():
        out = final.select(*RESULT_COLUMNS)
        summary = Summary(_counts(decided, outcomes, complete=stopped is None), report, extra)
        done = SparkUpsertResult(summary, out)
        if results is not None:
            out.write.mode("overwrite").parquet(str(results))
            done = SparkUpsertResult(summary, str(results))
    if stopped is not None:
        finished = summary.rows - summary.counts["failed"] + _answered_failed(outcomes)
        raise interrupted(stopped, done, finished=finished, rows=summary.rows) from None
    return done


def _refuse_unsupported(run: Run, where: str = "spark.upsert") -> None:
    """Run options a Spark run does not honour yet fail loudly rather than being ignored."""
    unsupported = [
        name
        for name in ("max_changes", "max_creates", "state_values", "complete_source")
        if getattr(run, name) not in (None, False)
    ]
    if unsupported:
        raise ConfigurationError(
            f"{where} does not take {', '.join(unsupported)} (a Spark run is not planned "
            "before it sends; a Spark plan lists no people gone)"
        )


def _answered_failed(outcomes: pa.Table) -> int:
    """Rows that failed for a reason of their own (not the interrupt): they are finished."""
    errors = outcomes["_sent_error"].to_pylist()
    statuses = outcomes["_sent_status"].to_pylist()
    return sum(
        1
        for status, error in zip(statuses, errors, strict=True)
        if status == "failed" and error not in (NOT_SENT, IN_FLIGHT)
    )


def _functions() -> Any:
    """``pyspark.sql.functions``, imported only when a Spark run starts."""
    from pyspark.sql import functions

    return functions


# -- on the executors ------------------------------------------------------------------------


def _check_columns(sdf: DataFrame, rules: Rules) -> None:
    """Mapping and naive-timestamp errors surface on the driver, before any job starts."""
    from pyspark.sql.types import TimestampNTZType

    fieldmap = rules.fieldmap(list(sdf.columns))
    used = set(map(str, fieldmap.source_columns()))
    for column in sdf.schema.fields:
        if (
            column.name in used
            and isinstance(column.dataType, TimestampNTZType)
            and rules.naive_timestamps == "error"
        ):
            raise naive_error(column.name)


@dataclass(frozen=True)
class _Needs:
    """Which costly columns of the planned rows a run reads: the JSON of the people to send
    (not in a dry run) and their content hashes (only with a state). The others are left
    empty, as the file path skips them."""

    payloads: bool = True
    hashes: bool = True
    fields: bool = False
    """The hashes of each field sent, which the state keeps so a plan names the changed
    fields (only when the run records a state)."""


def _plan(sdf: DataFrame, rules: Rules, needs: _Needs) -> DataFrame:
    """One narrow row per input row, planned on the executors by the shared rules."""
    if needs.fields:
        return _plan_fields(sdf, rules, payloads=needs.payloads)
    plan = functools.partial(
        plan_batches, rules=rules, payloads=needs.payloads, hashes=needs.hashes
    )
    with_row = sdf.select(_functions().monotonically_increasing_id().alias(ROW), *sdf.columns)
    return with_row.mapInArrow(plan, PLANNED_DDL)


def plan_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    rules: Rules,
    payloads: bool = True,
    hashes: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: Spark's Arrow batches through :meth:`Rules.plan`.

    The batches cross to pandas as every other source's do
    (:func:`~flameup_pandas._run.sources.arrow_frame`), so a value means on Spark what it
    means everywhere: integers beside nulls stay integers, decimals keep their digits, Spark
    ``timestamp`` columns arrive as instants in the session's zone. Spark hands over 10,000
    rows at a time (``spark.sql.execution.arrow.maxRecordsPerBatch``); they are gathered into
    pieces of :data:`CHUNK_ROWS`, as on the file path, so validation's fixed cost per call
    counts once per piece. ``payloads`` and ``hashes`` as in :func:`planned_batch`.
    """
    for batch in rechunked(batches, CHUNK_ROWS):
        frame = arrow_frame(batch)
        rows = frame.pop(ROW).to_numpy(dtype=np.int64)
        planned = planned_batch(rules, frame, rows, payloads=payloads, hashes=hashes)
        yield planned.cast(_SPARK_PLANNED)


def planned_batch(
    rules: Rules,
    frame: pd.DataFrame,
    rows: np.ndarray,
    *,
    payloads: bool = True,
    hashes: bool = True,
) -> pa.RecordBatch:
    """A batch's plan as rows (:data:`PLANNED_SCHEMA`): identity, hashes, settled status, and
    JSON of those to send.

    Built a column at a time from the plan's Arrow arrays; the only values Python looks at one
    by one are the given userId and email of rows that have no person (invalid ones). Without
    ``payloads`` the JSON column is all null (a dry run sends nothing), without ``hashes`` the
    content hashes are all 0 (no state to compare with or to record in): neither is built.
    """
    plan = rules.plan(frame, labels=rows.tolist())
    return _planned_rows(plan, rows, payloads=payloads, hashes=hashes)


def _planned_rows(
    plan: Plan, rows: np.ndarray, *, payloads: bool = True, hashes: bool = True
) -> pa.RecordBatch:
    frame_rows = len(plan.status)
    pending = plan.pending()
    content = np.zeros(frame_rows, dtype=np.int64)
    if hashes:
        content[pending] = plan.payloads.content_hashes(pending)
    if payloads:
        to_send = np.zeros(frame_rows, dtype=bool)
        to_send[pending] = True
        wire = plan.payloads.wire
        people = pc.if_else(pa.array(to_send), wire, pa.scalar(None, wire.type))
    else:
        people = pa.nulls(frame_rows, pa.large_string())
    user_ids, emails = _shown_identities(plan)
    columns: list[Any] = [
        pa.array(rows, pa.int64()),
        user_ids,
        emails,
        plan.key_array,
        pa.array(plan.identity_hashes, pa.int64()),
        pa.array(content, pa.int64()),
        pa.array(plan.status, pa.large_string(), from_pandas=True),
        pa.array(plan.error, pa.large_string(), from_pandas=True),
        people,
    ]
    return pa.RecordBatch.from_arrays(
        [column.cast(kind) for column, kind in zip(columns, PLANNED_SCHEMA.types, strict=True)],
        schema=PLANNED_SCHEMA,
    )


def _shown_identities(plan: Plan) -> tuple[pa.Array, pa.Array]:
    """userId and email for the results: as given, in every row (invalid ones too)."""
    return plan.payloads.shown_user_ids, plan.payloads.shown_emails


# -- in Spark --------------------------------------------------------------------------------


_KNOWN = {
    "identity_hash": "_known_hash",
    "identity": "_known_identity",
    "content_hash": "_known_content",
    "flameup_id": "_known_id",
}


def _read_state(spark: SparkSession, sync: SyncState) -> DataFrame | None:
    """The state's columns the diff joins on, as a Spark DataFrame.

    A local state (a shared mount on a cluster) is read by Spark itself. A state on object
    storage was read by the driver through the storage layer when it was opened (locked,
    its journal folded): those columns go to the executors with the plan, so no Hadoop
    filesystem or credential is needed on the cluster.
    """
    if isinstance(sync.path, Path):
        if not sync.path.exists():
            return None
        known = spark.read.parquet(str(sync.path))
    else:
        if len(sync) == 0:
            return None
        known = spark.createDataFrame(sync.table.select(list(_KNOWN)).combine_chunks())
    return known.select(*(_functions().col(name).alias(alias) for name, alias in _KNOWN.items()))


def _decide(planned: DataFrame, known: DataFrame | None, dry_run: bool) -> DataFrame:
    """Settle cross-batch duplicates, unchanged rows and (dry run) the rest, in Spark."""
    from pyspark.sql import Window

    f = _functions()
    settled = planned.where(f.col(STATUS).isNotNull()).withColumn(
        FLAMEUP_ID, f.lit(None).cast("string")
    )
    pending = planned.where(f.col(STATUS).isNull())
    winner = f.max(ROW).over(Window.partitionBy("identity_hash", "identity"))
    pending = pending.withColumn("_winner", winner)
    duplicate = f.col(ROW) != f.col("_winner")
    unchanged: Column = f.lit(False)
    known_id: Column = f.lit(None)
    if known is not None:
        on = (pending["identity_hash"] == known["_known_hash"]) & (
            pending["identity"] == known["_known_identity"]
        )
        pending = pending.join(known, on=on, how="left")
        unchanged = f.coalesce(f.col("_known_content") == f.col("content_hash"), f.lit(False))
        known_id = f.col("_known_id")
    duplicate_error = f.concat(
        f.lit("duplicate identity: row "),
        f.col("_winner").cast("string"),
        f.lit(" with the same identity was sent instead"),
    )
    status = f.when(duplicate | unchanged, f.lit("skipped")).otherwise(
        f.lit("skipped") if dry_run else f.lit(None)
    )
    error = (
        f.when(duplicate, duplicate_error)
        .when(unchanged, f.lit(UNCHANGED))
        .otherwise(f.lit(DRY_RUN) if dry_run else f.lit(None))
    )
    pending = pending.select(
        *[c for c in planned.columns if c not in (STATUS, ERROR, "payload")],
        status.cast("string").alias(STATUS),
        error.cast("string").alias(ERROR),
        f.when(status.isNull(), f.col("payload")).alias("payload"),
        f.when(unchanged & ~duplicate, known_id).cast("string").alias(FLAMEUP_ID),
    )
    return settled.unionByName(pending)


def _settle(decided: DataFrame, outcomes: pa.Table) -> DataFrame:
    """The decisions with each sent row's outcome filled in (rows never sent: failed)."""
    f = _functions()
    sent = decided.sparkSession.createDataFrame(outcomes)
    joined = decided.join(sent, decided[ROW] == sent["_sent_row"], "left")
    # a row to send with no outcome was never sent: the run was interrupted first
    unsent = f.col("_sent_row").isNull() & f.col(STATUS).isNull()
    return joined.select(
        *[c for c in decided.columns if c not in (STATUS, ERROR, FLAMEUP_ID)],
        f.coalesce(f.col("_sent_id"), f.col(FLAMEUP_ID)).alias(FLAMEUP_ID),
        f.when(unsent, f.lit("failed"))
        .otherwise(f.coalesce(f.col("_sent_status"), f.col(STATUS)))
        .alias(STATUS),
        f.when(unsent, f.lit(NOT_SENT))
        .when(f.col("_sent_row").isNull(), f.col(ERROR))
        .otherwise(f.col("_sent_error"))
        .alias(ERROR),
    )


def _counts(decided: DataFrame, outcomes: pa.Table, *, complete: bool) -> dict[str, int]:
    """Statuses settled in Spark plus those of the sent rows, counted on the driver: the
    results DataFrame stays lazy (joining every outcome back costs a shuffle). Rows to send
    with no outcome are failed (only an interrupted run has them)."""
    found = {r[STATUS]: int(r["count"]) for r in decided.groupBy(STATUS).count().collect()}
    unsent = found.pop(None, 0) - outcomes.num_rows
    if complete and unsent:
        raise RuntimeError("some rows to send ended without an outcome")
    found["failed"] = found.get("failed", 0) + unsent
    for status, count in pd.Series(outcomes["_sent_status"].to_pylist()).value_counts().items():
        found[status] = found.get(status, 0) + int(count)
    unknown = set(found) - set(STATUSES)
    if unknown:
        raise RuntimeError(f"rows ended without a known status: {sorted(map(str, unknown))}")
    return {status: found.get(status, 0) for status in STATUSES}


# -- on the driver ---------------------------------------------------------------------------


@dataclass
class _Sent:
    """One batch on its way: each person's row, identity key and content hash."""

    rows: list[int]
    keys: list[str]
    hashes: np.ndarray
    fields: list[list[int] | None] | None = None


def _deliver(
    to_send: DataFrame,
    sender: Sender,
    sync: SyncState | None,
    progress: bool | Progress,
    collected: list[pa.Table],
) -> int:
    """Stream the rows to send into the shared deliverer; record their outcomes and collect
    them into ``collected`` (which keeps them when an interrupt cuts the run short); the rows
    that reached the driver."""
    names = [ROW, "identity", "content_hash", "payload", "userId", "email"]
    names += [name for name in ("field_names", "field_hashes") if name in to_send.columns]
    columns = to_send.select(*names)
    total = columns.count()
    if total == 0:
        return 0
    # toLocalIterator fetches one partition at a time: bound them, whatever the shuffles made
    parts = columns.repartition(-(-total // FETCH_ROWS))
    bar = open_progress(progress, total, desc="upsert (spark)", requests=sender.requests)

    def settle(sent: _Sent, outcomes: list[PersonOutcome]) -> None:
        if sync is not None:
            sync.record_outcomes(sent.keys, sent.hashes, outcomes, sent.fields)
        collected.append(_outcome_table(sent.rows, outcomes))
        bar.update(len(outcomes), failed=count_failed(outcomes))

    try:
        deliver_all(sender.deliverer.stream(_batches(parts.toLocalIterator())), settle)
    finally:
        bar.close()
    return sum(table.num_rows for table in collected)


def _batches(rows: Iterator[Any]) -> Iterator[tuple[_Sent, list[Outgoing]]]:
    """Full batches of people from the rows reaching the driver (the last may be short)."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_SIZE:
            yield _batch(batch)
            batch = []
    if batch:
        yield _batch(batch)


def _batch(rows: list[Any]) -> tuple[_Sent, list[Outgoing]]:
    fields = None
    if rows and "field_hashes" in rows[0].__fields__:
        fields = [_kept_fields(r["field_names"], r["field_hashes"]) for r in rows]
    sent = _Sent(
        [r[ROW] for r in rows],
        [r["identity"] for r in rows],
        np.array([r["content_hash"] for r in rows], dtype=np.int64),
        fields,
    )
    return sent, [Outgoing(r["payload"].encode(), r["userId"], r["email"]) for r in rows]


def _kept_fields(names: list[str] | None, hashes: list[int] | None) -> list[int] | None:
    """The field hashes the state keeps of a person: every field sent but userId."""
    if names is None or hashes is None:
        return None
    return [h for n, h in zip(names, hashes, strict=True) if n != "userId"]


def _outcome_table(rows: list[int], outcomes: list[PersonOutcome]) -> pa.Table:
    return pa.table(
        {
            "_sent_row": pa.array(rows, pa.int64()),
            "_sent_id": pa.array([o.flameup_id for o in outcomes], pa.string()),
            "_sent_status": pa.array([o.status for o in outcomes], pa.string()),
            "_sent_error": pa.array([o.error for o in outcomes], pa.string()),
        },
        schema=OUTCOMES_SCHEMA,
    )


# -- plans -----------------------------------------------------------------------------------

PLAN_FIELDS_DDL = PLANNED_DDL + ", field_names array<string>, field_hashes array<bigint>"
"""What the executors hand back for a plan: the planned rows, and for each row still to send
the fields it sends (names, and the hashes the state keeps of them, as ``bigint``)."""
PLAN_COLUMNS_SPARK = (ROW, "userId", "email", "identity", *PLAN_COLUMNS)


@dataclass(frozen=True)
class SparkPlan:
    """What a Spark run would do, sending nothing.

    ``summary`` is the :class:`~flameup_pandas.PlanSummary` (people per action, counted in
    Spark; the fields that change most). ``changes`` is a pandas frame, indexed by ``row``, of
    the only rows that reached the driver: those a run would send (``create``/``update``),
    with ``userId``, ``email``, ``flameup_action``, ``flameup_changes`` and, with
    ``state_values=True``, ``flameup_before``/``flameup_after``. ``plan`` is every row's
    decision as a Spark DataFrame (row, userId, email, identity and the three plan columns),
    resting on a local checkpoint.
    """

    summary: PlanSummary
    changes: pd.DataFrame
    plan: DataFrame


def plan(sdf: DataFrame, **options: Unpack[Options]) -> SparkPlan:
    """What :func:`upsert` would do to each row of a Spark DataFrame, sending nothing.

    Planned on the executors by the same rules (each field a row sends is hashed as the sync
    state keeps it), diffed against ``state=`` in Spark, field by field, with Spark's own
    array functions; only the rows a run would send reach the driver
    (``len(result.changes)``). With ``state_values=True`` (and a state kept with it), those
    rows carry each changed field's value before and after. The keywords are
    :func:`upsert`'s; the state is read, never written.

    ``complete_source``, ``max_changes`` and ``max_creates`` are refused: a Spark plan does
    not list people gone, and a plan guards nothing.
    """
    rules, _, run = split_options("spark.plan", {"progress": False, **options})
    _refuse_unsupported(dataclasses.replace(run, state_values=False), "spark.plan")
    if run.results is not None:
        raise ConfigurationError("spark.plan returns its rows: results= is for spark.upsert")
    _check_columns(sdf, rules)
    with (
        SyncState.open(run.state, filesystem=run.storage)
        if run.state is not None
        else contextlib.nullcontext() as sync
    ):
        known = None if sync is None else _read_known(sdf.sparkSession, sync)
        planned = _plan_fields(sdf, rules, payloads=run.state_values)
        decided = _actions(planned, known, sync is not None).localCheckpoint(eager=True)
    f = _functions()
    counts = {
        r["flameup_action"]: int(r["count"]) for r in decided.groupBy(ACTION).count().collect()
    }
    wanted = decided.where(f.col(ACTION).isin("create", "update"))
    changes = _changes_frame(wanted, values=run.state_values and sync is not None)
    summary = summarize_plan(changes)
    summary = dataclasses.replace(summary, actions={a: counts.get(a, 0) for a in ACTIONS})
    every: DataFrame = decided.select(*PLAN_COLUMNS_SPARK)
    return SparkPlan(summary, changes, every)


ACTION = "flameup_action"


def _plan_fields(sdf: DataFrame, rules: Rules, *, payloads: bool) -> DataFrame:
    batches = functools.partial(plan_field_batches, rules=rules, payloads=payloads)
    with_row = sdf.select(_functions().monotonically_increasing_id().alias(ROW), *sdf.columns)
    return with_row.mapInArrow(batches, PLAN_FIELDS_DDL)


def plan_field_batches(
    batches: Iterable[pa.RecordBatch], *, rules: Rules, payloads: bool = False
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of a plan: :func:`plan_batches`' rows (with content
    hashes; the JSON only with ``payloads``), and each row's fields as the state keeps them."""
    schema = _SPARK_PLANNED.append(pa.field("field_names", pa.list_(pa.string()))).append(
        pa.field("field_hashes", pa.list_(pa.int64()))
    )
    for batch in rechunked(batches, CHUNK_ROWS):
        frame = arrow_frame(batch)
        rows = frame.pop(ROW).to_numpy(dtype=np.int64)
        plan = rules.plan(frame, labels=rows.tolist())
        planned = _planned_rows(plan, rows, payloads=payloads, hashes=True)
        names, hashes = _field_lists(plan)
        arrays = [*planned.columns, names, hashes]
        yield pa.RecordBatch.from_arrays(
            [a.cast(kind) for a, kind in zip(arrays, schema.types, strict=True)], schema=schema
        )


def _field_lists(plan: Plan) -> tuple[pa.Array, pa.Array]:
    """Per row still to send, the names and hashes of the fields it sends (userId too);
    null for the other rows."""
    n = len(plan.status)
    pending = plan.pending()
    fields = plan.payloads.field_hashes(pending)
    if fields is None or len(pending) == 0:
        return pa.nulls(n, pa.list_(pa.string())), pa.nulls(n, pa.list_(pa.int64()))
    present = fields.present.T  # rows x fields
    names = np.asarray(fields.names, dtype=object)[np.nonzero(present)[1]]
    hashes = fields.hashes.T[present].astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32))
    where = np.zeros(n, dtype=np.int64)
    where[pending] = np.arange(len(pending))
    absent = np.ones(n, dtype=bool)
    absent[pending] = False
    at = pa.array(where, mask=absent)
    name_lists = pa.ListArray.from_arrays(offsets, pa.array(names, pa.string())).take(at)
    hash_lists = pa.ListArray.from_arrays(offsets, pa.array(hashes, pa.int64())).take(at)
    return name_lists, hash_lists


def _read_known(spark: SparkSession, sync: SyncState) -> DataFrame | None:
    """The state as Spark reads it for a plan: hashes, the fields kept, the values kept."""
    if not sync.path.exists():
        return None
    f = _functions()
    state = spark.read.parquet(str(sync.path))

    def kept(name: str, kind: str) -> Column:
        column: Column = (f.col(name) if name in state.columns else f.lit(None)).cast(kind)
        return column

    return state.select(
        f.col("identity_hash").alias("_known_hash"),
        f.col("identity").alias("_known_identity"),
        f.col("content_hash").alias("_known_content"),
        kept("fields", "array<bigint>").alias("_known_fields"),
        kept("sent", "string").alias("_known_sent"),
    )


def _actions(planned: DataFrame, known: DataFrame | None, with_state: bool) -> DataFrame:
    """Each row's action, changed fields and error, decided in Spark (as
    :func:`flameup_pandas._run.changes.decide` does for a frame)."""
    from pyspark.sql import Window

    f = _functions()
    settled = planned.where(f.col(STATUS).isNotNull()).select(
        *PLAN_COLUMNS_SPARK[:4],
        f.when(f.col(STATUS) == "invalid", "invalid").otherwise("skipped").alias(ACTION),
        f.lit(None).cast("array<string>").alias("flameup_changes"),
        f.col(ERROR).alias("flameup_error"),
        f.lit(None).cast("string").alias("payload"),
        f.lit(None).cast("string").alias("_known_sent"),
    )
    pending = planned.where(f.col(STATUS).isNull())
    pending = pending.withColumn(
        "_winner", f.max(ROW).over(Window.partitionBy("identity_hash", "identity"))
    )
    duplicate = f.col(ROW) != f.col("_winner")
    found: Column = f.lit(False)
    unchanged: Column = f.lit(False)
    old_fields: Column = f.lit(None).cast("array<bigint>")
    old_sent: Column = f.lit(None).cast("string")
    if known is not None:
        on = (pending["identity_hash"] == known["_known_hash"]) & (
            pending["identity"] == known["_known_identity"]
        )
        pending = pending.join(known, on=on, how="left")
        found = f.col("_known_hash").isNotNull()
        unchanged = f.coalesce(f.col("_known_content") == f.col("content_hash"), f.lit(False))
        old_fields, old_sent = f.col("_known_fields"), f.col("_known_sent")
    action = (
        f.when(duplicate, "skipped")
        .when(unchanged, "unchanged")
        .when(found | f.lit(not with_state), "update")
        .otherwise("create")
    )
    differing = f.filter(
        f.arrays_zip("field_names", "field_hashes"),
        lambda x: (x["field_names"] != "userId") & ~f.array_contains(old_fields, x["field_hashes"]),
    )
    changes = f.when(action == "create", f.col("field_names")).when(
        (action == "update") & old_fields.isNotNull(),
        f.transform(differing, lambda x: x["field_names"]),
    )
    error = f.when(
        duplicate,
        f.concat(
            f.lit("duplicate identity: row "),
            f.col("_winner").cast("string"),
            f.lit(" with the same identity was sent instead"),
        ),
    )
    decided = pending.select(
        *PLAN_COLUMNS_SPARK[:4],
        action.alias(ACTION),
        changes.alias("flameup_changes"),
        error.cast("string").alias("flameup_error"),
        f.col("payload"),
        old_sent.alias("_known_sent"),
    )
    return settled.unionByName(decided)


def _changes_frame(wanted: DataFrame, *, values: bool) -> pd.DataFrame:
    """The rows a run would send, on the driver, indexed by row (before/after with
    ``values``)."""
    columns = [ROW, "userId", "email", ACTION, "flameup_changes", "payload", "_known_sent"]
    table = wanted.select(*columns).toArrow().sort_by(ROW)
    changes = [None if c is None else list(c) for c in table["flameup_changes"].to_pylist()]
    frame = pd.DataFrame(
        {name: table[name].to_pylist() for name in columns[1:4]},
        index=pd.Index(table[ROW].to_pylist(), name=ROW, dtype="int64"),
        dtype=object,
    )
    frame["flameup_changes"] = pd.Series(changes, index=frame.index, dtype=object)
    if values:
        olds, news = table["_known_sent"].to_pylist(), table["payload"].to_pylist()
        pairs = [
            (None, None) if names is None else value_pair(action == "create", names, old, new)
            for action, names, old, new in zip(
                frame[ACTION].tolist(), changes, olds, news, strict=True
            )
        ]
        for name, at in (("flameup_before", 0), ("flameup_after", 1)):
            frame[name] = pd.Series([pair[at] for pair in pairs], index=frame.index, dtype=object)
    return frame
