"""``spark.upsert`` on the driver: the cluster's decisions through the one engine.

The rows to send leave the cluster as Arrow batches, from partitions of at most
:data:`FETCH_ROWS` fetched one at a time (bounded driver memory), in chunks the engine sends,
records and reports as it does a file's. Executors never send, so a retried or speculative
Spark task cannot send twice; one sender means one rate budget, however large the cluster.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Unpack

import numpy as np
import pyarrow as pa

from .._people.encode import Identity, Payloads
from .._people.wire import BINARY
from .._run.changes import refuse_over
from .._run.engine import Decided, run_rows
from .._run.interrupt import interrupted, interruptible, shielded, unfinished
from .._run.kind import Chunk
from .._run.options import Delivery, Options, Run, split_options
from .._run.people import Kept, People
from .._run.plan import Plan, Rules
from .._run.result import STATUSES, RunReport, Summary
from .._run.state import SyncState
from .._send import observe
from .._send.delivery import NOT_SENT
from ..exceptions import UpsertInterrupted
from ._decide import ACTION, FLAMEUP_ID, SENDING, checkpoint, decide, functions, state_of, statuses
from ._executors import ERROR, ROW, STATUS, Needs, check_columns, planned
from ._plans import counted, plan_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["SparkUpsertResult", "upsert"]

RESULT_COLUMNS = (ROW, "userId", "email", "identity", FLAMEUP_ID, STATUS, ERROR)
FETCH_ROWS = 20_000
"""At most this many rows to send per partition the driver fetches (a few MB)."""
CHUNK_ROWS = 5_000
"""Rows to send per chunk handed to the engine."""
_OUTCOMES = pa.schema(
    [
        ("_sent_row", pa.int64()),
        ("_sent_id", pa.string()),
        ("_sent_status", pa.string()),
        ("_sent_error", pa.string()),
    ]
)


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
    :func:`flameup_pandas.upsert_file`, all of them. Each identity is sent once (the last row
    by ``row`` wins). ``summary.to_dict()["rows_to_driver"]`` counts the rows that reached the
    driver to be sent; ``results`` is where the per-row results are written (a Spark parquet
    dataset), and ``progress`` is off unless asked for. With ``max_changes``/``max_creates``
    the run's plan is counted in Spark and its creates and updates (row, identity, changed
    fields) reach the driver first: :class:`~flameup_pandas.ChangeGuardError` (its ``plan``
    every row's decision, as :func:`plan` gives it) is raised before any request.
    ``state_values=True`` keeps each person as sent in the state.

    On Ctrl-C or SIGTERM no new request starts and none in flight is waited for; the state
    keeps every acknowledged batch, and :class:`~flameup_pandas.UpsertInterrupted` is raised
    whose ``result`` is this run's :class:`SparkUpsertResult` so far: sent rows with their
    outcomes, the rest ``failed`` ("interrupted before sending", or "may have been stored"
    for a batch in flight); with ``results=`` they are written there first.
    """
    with interruptible():
        # observers (lineage, tracing): the run's one hook, flameup_pandas._send.observe; the
        # engine leaves a Decided source's run to its caller, so Spark's counts are the whole run
        rules, delivery, run = split_options("spark.upsert", {"progress": False, **options})
        operation = "dry_run" if run.dry_run else "upsert"
        return observe.run(
            "people", operation, sdf, delivery, lambda: _upsert(sdf, rules, delivery, run)
        )


def _upsert(sdf: DataFrame, rules: Rules, delivery: Delivery, run: Run) -> SparkUpsertResult:
    started = time.monotonic()
    check_columns(sdf, rules)
    with state_of(sdf, run) as (sync, known):
        recorded = sync is not None and not run.dry_run
        needs = Needs(
            payloads=not run.dry_run,
            hashes=known is not None or recorded,
            fields=recorded or run.guarded,
            sent=run.state_values and recorded,
        )
        decided = decide(
            planned(sdf, rules, needs),
            known,
            with_state=sync is not None,
            full_refresh=run.full_refresh,
        )
        decided = checkpoint(decided)
        if run.guarded:
            guard = plan_of(decided, values=False)
            refuse_over(guard.summary, run.max_changes, run.max_creates, lambda: guard.plan)
        decided = statuses(decided, dry_run=run.dry_run)
        if run.dry_run:
            would = decided.where(functions().col(ACTION).isin(*SENDING)).count()
            report = RunReport(elapsed=time.monotonic() - started, dry_run=True)
            summary = Summary(counted(decided, STATUS, STATUSES), report, {"would_send": would})
            return _finish(decided, summary, run)
        return _send(decided, sync, rules, delivery, run)


def _send(
    decided: DataFrame, sync: SyncState | None, rules: Rules, delivery: Delivery, run: Run
) -> SparkUpsertResult:
    """The rows to send through the engine; the results: the decisions, outcomes joined in."""
    to_send = decided.where(functions().col(STATUS).isNull())
    total = to_send.count()
    outcomes: list[pa.Table] = []
    only_send = dataclasses.replace(
        run, state=None, results=None, max_changes=None, max_creates=None, state_values=False
    )
    chunks = _chunks(to_send, total, sync is not None)
    stopped: UpsertInterrupted | None = None
    try:
        sent = run_rows(
            Decided(chunks, total, sync),
            People(rules, only_send),
            delivery=delivery,
            run=only_send,
            written=lambda plan: outcomes.append(_outcome_table(plan)),
            sample=0,
        )
    except UpsertInterrupted as exc:
        stopped, sent = exc, exc.result
    finally:
        chunks.close()
    with shielded():
        reached = sum(table.num_rows for table in outcomes)
        counts = counted(decided, STATUS, STATUSES)
        for status, count in sent.counts.items():
            counts[status] += count
        counts["failed"] += total - reached  # never reached the driver: interrupted first
        summary = Summary(counts, sent.run, {"rows_to_driver": reached}, reasons=sent.reasons)
        done = _finish(_with_outcomes(decided, outcomes), summary, run)
    if stopped is not None:
        errors = [e for table in outcomes for e in table["_sent_error"].to_pylist()]
        finished = summary.rows - (total - reached) - unfinished(errors)
        raise interrupted(stopped, done, finished=finished, rows=summary.rows) from None
    return done


def _finish(decided: DataFrame, summary: Summary, run: Run) -> SparkUpsertResult:
    out = decided.select(*RESULT_COLUMNS)
    if run.results is None:
        return SparkUpsertResult(summary, out)
    out.write.mode("overwrite").parquet(str(run.results))
    return SparkUpsertResult(summary, str(run.results))


def _chunks(to_send: DataFrame, total: int, with_state: bool) -> Generator[Chunk, None, None]:
    """The rows to send as the engine's chunks, every row of each pending."""
    names = [ROW, "userId", "email", "content_hash", "payload"]
    names += [n for n in ("fields", "sent") if n in to_send.columns]
    if total == 0:
        return
    # fetched a partition at a time: bound them, whatever the shuffles made
    parts = to_send.select(*names).repartition(-(-total // FETCH_ROWS))
    for blob in _fetched(parts.mapInArrow(_packed, "arrow binary")):
        table = pa.ipc.open_stream(blob).read_all()
        for start in range(0, table.num_rows, CHUNK_ROWS):
            yield _chunk(table.slice(start, CHUNK_ROWS).combine_chunks(), with_state)


def _packed(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """On the executors: each batch of rows as one Arrow IPC stream (one binary value)."""
    for batch in batches:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        yield pa.record_batch([pa.array([sink.getvalue().to_pybytes()], pa.binary())], ["arrow"])


def _fetched(packed: DataFrame) -> Iterator[bytes]:
    """The packed batches, one partition at a time. Classic Spark runs a job per partition:
    its ``toLocalIterator()`` keeps what it served in the driver's heap (measured: about 500
    bytes a row, so 5M rows ran a 3 GiB driver out of memory). Spark Connect streams them."""
    if type(packed).__module__.startswith("pyspark.sql.connect"):
        yield from (row[0] for row in packed.toLocalIterator())
        return
    rdd = packed.rdd
    for partition in range(rdd.getNumPartitions()):
        yield from packed.sparkSession.sparkContext.runJob(rdd, _blobs, [partition])


def _blobs(rows: Iterable[Any]) -> list[bytes]:
    return [bytes(row[0]) for row in rows]


def _chunk(table: pa.Table, with_state: bool) -> Chunk:
    def column(name: str, kind: pa.DataType) -> pa.Array:
        return table[name].chunk(0).cast(kind)

    wire = column("payload", pa.large_string()).cast(BINARY)
    identity = Identity(column("userId", pa.large_string()), column("email", pa.large_string()))
    payloads = Payloads(np.ones(table.num_rows, dtype=bool), identity, wire_by=lambda: wire)
    names = table.column_names
    hashes = table["content_hash"].to_numpy().astype(np.int64) if with_state else None
    fields = column("fields", pa.list_(pa.int64())) if "fields" in names else None
    sent = column("sent", pa.large_string()) if "sent" in names else None
    return Chunk(Plan.start(payloads, table[ROW].to_pylist()), Kept(hashes, fields, sent))


def _outcome_table(plan: Plan) -> pa.Table:
    names = ("flameup_id", "status", "error")
    arrays = [pa.array(getattr(plan, name).tolist(), pa.string()) for name in names]
    return pa.Table.from_arrays([pa.array(plan.labels, pa.int64()), *arrays], schema=_OUTCOMES)


def _with_outcomes(decided: DataFrame, outcomes: list[pa.Table]) -> DataFrame:
    """The decisions with each sent row's outcome filled in (rows never sent: failed)."""
    f = functions()
    table = pa.concat_tables([_OUTCOMES.empty_table(), *outcomes])
    sent = decided.sparkSession.createDataFrame(table)
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
