"""Where a run's per-row results go: the results file of a streaming run.

Results are appended in row groups as answers arrive, so a run of any size never holds its
results whole; statuses and the reasons rows need attention are counted on the way. The file
(a local path or a URI, see :mod:`flameup_pandas._storage`) appears whole when the run
closes it: a killed run leaves the previous results file as it was.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._send.delivery import NOT_SENT
from .._storage import atomic_output, resolve
from .interrupt import unfinished
from .kind import Kind
from .plan import Decisions as Plan
from .result import PROBLEMS, ReasonTally

__all__ = ["ResultsWriter"]

BUFFER_ROWS = 50_000  # rows written to the file at once: one row group


class ResultsWriter:
    """Writes per-row results to a parquet file in input order, counting statuses and reasons.
    Rows settle out of order: a chunk is written (and ``written`` called with its plan) once its
    rows and every earlier chunk's are; on close, rows never settled are written ``failed``."""

    def __init__(
        self,
        path: str | Path | None,
        kind: Kind,
        *,
        filesystem: Any = None,
        written: Callable[[Plan], None] | None = None,
    ) -> None:
        self.kind = kind
        # the label, what identifies the row, the id Flameup answered with, status, error
        decided = [(kind.id_column, pa.string()), ("flameup_status", pa.string())]
        self.schema = pa.schema(
            [("row", pa.int64()), *kind.results_schema, *decided, ("flameup_error", pa.string())]
        )
        self.counts = dict.fromkeys(kind.statuses, 0)
        self.reasons = ReasonTally()
        self.unfinished = 0  # rows failed because the run was interrupted
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._waiting: deque[Plan] = deque()  # chunks in input order, not yet written
        self._left: dict[int, int] = {}  # rows not yet settled, by id of the chunk's plan
        self._written = written
        self._output = contextlib.ExitStack()
        if path is not None:
            sink = self._output.enter_context(atomic_output(resolve(path, filesystem)))
            self._writer = pq.ParquetWriter(sink, self.schema, compression="zstd")

    def track(self, plan: Plan) -> None:
        """A chunk read from the source: its rows are written in this order."""
        self._waiting.append(plan)
        self._left[id(plan)] = len(plan.status)

    def add(self, plan: Plan, positions: np.ndarray) -> None:
        """Rows of a tracked chunk that are settled (their statuses are in ``plan``)."""
        positions = np.asarray(positions, dtype=np.int64)
        self._count(plan, positions)
        self._left[id(plan)] -= len(positions)
        self._drain()

    def _drain(self, closing: bool = False) -> None:
        """The head's fully settled chunks (``closing``: all, the rest not sent) to the file."""
        while self._waiting and (closing or self._left[id(self._waiting[0])] == 0):
            plan = self._waiting.popleft()
            del self._left[id(plan)]
            if closing:
                unsettled = plan.pending()
                plan.mark(unsettled, "failed", NOT_SENT)
                self._count(plan, unsettled)
            self._write(plan)
            if self._written is not None:
                self._written(plan)

    def _count(self, plan: Plan, positions: np.ndarray) -> None:
        statuses = plan.status[positions]
        counted = Counter(statuses.tolist())
        for status, count in counted.items():
            self.counts[str(status)] += count
        if not any(status in PROBLEMS for status in counted):
            return  # (the usual chunk: isin over object arrays sorts them)
        failed = positions[statuses == "failed"]  # only failed rows were cut short
        self.unfinished += unfinished(plan.error[failed])
        problems = positions[np.isin(statuses, PROBLEMS)].tolist()
        at = plan.labels  # only the problems' labels: this runs once per answer
        labels = at[problems].tolist() if isinstance(at, pd.Index) else [at[p] for p in problems]
        self.reasons.add(plan.status[problems], plan.error[problems], labels)

    def _write(self, plan: Plan) -> None:
        if self._writer is None:
            return
        rows = len(plan.status)
        columns = {
            "row": pa.array(np.asarray(plan.labels), pa.int64()),
            **self.kind.shown(plan, pa.array(np.arange(rows))),
            self.kind.id_column: pa.array(plan.flameup_id.tolist(), pa.string()),
            "flameup_status": pa.array(plan.status.tolist(), pa.string()),
            "flameup_error": pa.array(plan.error.tolist(), pa.string()),
        }
        self._buffer.append(pa.table(columns, schema=self.schema))
        self._buffered += rows
        if self._buffered >= BUFFER_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._writer is not None and self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        """Write every chunk still waiting (rows never settled as not sent); complete the file."""
        with self._output:
            self._drain(closing=True)
            self.flush()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
