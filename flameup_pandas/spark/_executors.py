"""On the executors: each Arrow batch of the table planned by the shared rules.

``mapInArrow`` hands each batch to :meth:`Rules.plan <flameup_pandas._run.plan.Rules.plan>`,
the code every other path runs; each input row comes out as one narrow row: its identity and
hashes, a status if already settled (``invalid``, or a duplicate in its batch) with the
reason, and what the driver needs of the rows to send (:class:`Needs`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._people.column_encoders import naive_error
from .._people.identity import identity_hashes, identity_key_array
from .._run.plan import Plan, Rules
from .._run.sources import CHUNK_ROWS, arrow_frame, rechunked

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["PLANNED_DDL", "PLANNED_SCHEMA", "Needs", "plan_batches", "planned_batch"]

ROW = "row"
STATUS, ERROR = "flameup_status", "flameup_error"
_SPARK_TYPES = {
    pa.int64(): "long",
    pa.large_string(): "string",
    pa.list_(pa.string()): "array<string>",
    pa.list_(pa.int64()): "array<bigint>",
}
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
"""The planned rows as the executors build them (large strings: no 2 GB limit per column)."""
_OPTIONAL = {
    "field_names": pa.list_(pa.string()),
    "field_hashes": pa.list_(pa.int64()),
    "sent": pa.large_string(),
    "given_hash": pa.int64(),
}


def _ddl(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in schema)


PLANNED_DDL = _ddl(PLANNED_SCHEMA)


@dataclass(frozen=True)
class Needs:
    """The costly columns a run reads (others left empty): the JSON to send (``payloads``),
    content hashes (``hashes``: a state), field names and hashes (``fields``: a state, a plan),
    sorted JSON (``sent``: ``state_values``), every identity's hash (``given``: complete_source)."""

    payloads: bool = True
    hashes: bool = True
    fields: bool = False
    sent: bool = False
    given: bool = False

    @property
    def schema(self) -> pa.Schema:
        wanted = {"field_names": self.fields, "field_hashes": self.fields}
        wanted |= {"sent": self.sent, "given_hash": self.given}
        return pa.schema([*PLANNED_SCHEMA, *((n, t) for n, t in _OPTIONAL.items() if wanted[n])])


def check_columns(sdf: DataFrame, rules: Rules) -> None:
    """Mapping and naive-timestamp errors surface on the driver, before any job starts."""
    from pyspark.sql.types import TimestampNTZType

    used = set(map(str, rules.fieldmap(list(sdf.columns)).source_columns()))
    for column in sdf.schema.fields:
        naive = isinstance(column.dataType, TimestampNTZType)
        if naive and column.name in used and rules.naive_timestamps == "error":
            raise naive_error(column.name)


def planned(sdf: DataFrame, rules: Rules, needs: Needs) -> DataFrame:
    """One narrow row per input row, planned on the executors by the shared rules."""
    from pyspark.sql import functions as f

    with_row = sdf.select(f.monotonically_increasing_id().alias(ROW), *sdf.columns)
    batches = functools.partial(plan_batches, rules=rules, needs=needs)
    return with_row.mapInArrow(batches, _ddl(needs.schema))


def plan_batches(
    batches: Iterable[pa.RecordBatch], *, rules: Rules, needs: Needs = Needs()
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: Spark's Arrow batches (10,000 rows) through
    :meth:`Rules.plan` in pieces of :data:`CHUNK_ROWS`, so validation's fixed cost per call
    counts once per piece. ``timestamp_ntz`` columns stay naive (``naive_timestamps``)."""
    spark = pa.schema(
        [(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in needs.schema]
    )
    for batch in rechunked(batches, CHUNK_ROWS):
        frame = arrow_frame(batch)
        rows = frame.pop(ROW).to_numpy(dtype=np.int64)
        yield planned_batch(rules, frame, rows, needs=needs).cast(spark)


def planned_batch(
    rules: Rules, frame: pd.DataFrame, rows: np.ndarray, *, needs: Needs = Needs()
) -> pa.RecordBatch:
    """A batch's plan as rows (:data:`PLANNED_SCHEMA`, and the columns ``needs`` asks for)."""
    plan = rules.plan(frame, labels=rows.tolist())
    n = len(plan.status)
    pending = plan.pending()
    to_send = np.zeros(n, dtype=bool)
    to_send[pending] = True
    content = np.zeros(n, dtype=np.int64)
    if needs.hashes:
        content[pending] = plan.payloads.content_hashes(pending)
    columns: list[Any] = [
        pa.array(rows, pa.int64()),
        plan.payloads.shown_user_ids,
        plan.payloads.shown_emails,
        plan.key_array,
        pa.array(plan.identity_hashes, pa.int64()),
        pa.array(content, pa.int64()),
        pa.array(plan.status, pa.large_string(), from_pandas=True),
        pa.array(plan.error, pa.large_string(), from_pandas=True),
        _where(to_send, plan.payloads.wire) if needs.payloads else pa.nulls(n, pa.string()),
    ]
    if needs.fields:
        columns += _field_lists(plan, pending)
    if needs.sent:
        columns.append(_where(to_send, plan.payloads.hashed))
    if needs.given:
        shown = identity_key_array(plan.payloads.shown_user_ids, plan.payloads.shown_emails)
        columns.append(pa.array(identity_hashes(shown), pa.int64()))
    schema = needs.schema
    return pa.RecordBatch.from_arrays(
        [column.cast(kind) for column, kind in zip(columns, schema.types, strict=True)],
        schema=schema,
    )


def _where(mask: np.ndarray, texts: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask), texts, pa.scalar(None, texts.type))


def _field_lists(plan: Plan, pending: np.ndarray) -> list[pa.Array]:
    """Per row to send, the names and hashes of its fields (userId too); null for the rest."""
    n = len(plan.status)
    if (fields := plan.payloads.field_hashes(pending)) is None or len(pending) == 0:
        return [pa.nulls(n, pa.list_(pa.string())), pa.nulls(n, pa.list_(pa.int64()))]
    present = fields.present.T  # rows x fields
    names = np.asarray(fields.names, dtype=object)[np.nonzero(present)[1]]
    hashes = fields.hashes.T[present].astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32))
    where = np.full(n, -1, dtype=np.int64)  # each row's place among those to send
    where[pending] = np.arange(len(pending))
    at = pa.array(where, mask=where < 0)
    return [
        pa.ListArray.from_arrays(offsets, pa.array(names, pa.string())).take(at),
        pa.ListArray.from_arrays(offsets, pa.array(hashes, pa.int64())).take(at),
    ]
