"""The plain functions: validate, to_people, the plans and upserts, read_people, export_people
and unlock_state. Their shared keywords are typed once, in :mod:`flameup_pandas._run.options`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Unpack

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ._people.columns import conform, people_table, to_frame, unified_schema
from ._run.against import compare_with_flameup
from ._run.changes import PlanRecorder
from ._run.engine import run_frame, run_rows
from ._run.interrupt import interruptible, shielded, stopped
from ._run.options import (
    READ_KEYWORDS,
    Delivery,
    DeliveryOptions,
    Options,
    RuleOptions,
    Run,
    check_keywords,
    rules_of,
    split_options,
)
from ._run.people import People
from ._run.plan import Rules
from ._run.progress import Meter, Progress, open_progress
from ._run.result import Summary, tell
from ._run.sources import CHUNK_ROWS, Rows, open_rows
from ._run.state import SyncState, break_state_lock
from ._send.reader import PeopleReader
from .exceptions import ConfigurationError, ReadInterrupted

if TYPE_CHECKING:
    import pyarrow.dataset as ds

__all__ = [
    "export_people",
    "plan",
    "plan_arrow",
    "plan_file",
    "read_people",
    "to_people",
    "unlock_state",
    "upsert",
    "upsert_arrow",
    "upsert_file",
    "validate",
]


def validate(df: pd.DataFrame, **options: Unpack[RuleOptions]) -> pd.DataFrame:
    """Every problem in ``df``, one row each: index label, column, check, offending value.

    Empty when every row can be sent. Never raises for bad data: it reports it. Values that
    JSON cannot carry (inf, bytes) are reported too, under the check ``json_value``. The
    keywords (``mapping``, ``traits``, ``exclude``, ``schema``, ``naive_timestamps``...) are
    :func:`upsert`'s.
    """
    return rules_of("validate", options).plan(df).report


def to_people(df: pd.DataFrame, **options: Unpack[RuleOptions]) -> list[dict[str, Any]]:
    """The people dicts exactly as upsert would send them, for the rows it would send."""
    plan = rules_of("to_people", options).plan(df)
    people = plan.payloads.people
    return [person for p in plan.pending().tolist() if (person := people[p]) is not None]


def upsert(
    df: pd.DataFrame, *, on_duplicate: Literal["last", "error"] = "last", **options: Unpack[Options]
) -> pd.DataFrame:
    """Upsert every row of ``df`` into Flameup; return ``df`` with three columns added.

    ``flameup_id``, ``flameup_status`` (created, updated, invalid, rejected, failed, skipped)
    and ``flameup_error`` (why, for every status but created/updated). Same index, same order,
    same columns as ``df``. ``result.flameup.summary()`` tells what the run did.

    How rows become people: ``mapping``, ``traits``, ``exclude``, ``schema``, ``send_nulls``,
    ``naive_timestamps``, ``on_duplicate``. How they are sent: ``client`` or ``api_key`` and
    ``base_url``, ``timeout``, ``allow_http``, ``rate_limit``, ``concurrency``, ``retry``
    (see :class:`~flameup_pandas._run.options.Delivery`). What the run keeps and shows:
    ``state`` (send only new or changed people; a local path or a URI such as
    ``s3://bucket/people.state.parquet``, or a path on ``filesystem``), ``full_refresh``,
    ``dry_run`` (send nothing), ``progress`` (see :class:`~flameup_pandas._run.options.Run`).
    The frame goes through the same engine as a file: it is one chunk of its stream.
    """
    rules, delivery, run = split_options("upsert", options, on_duplicate=on_duplicate)
    return run_frame(df, People(rules, run), delivery=delivery, run=run)


def upsert_file(
    path: str | Path | ds.Dataset,
    *,
    chunk_rows: int = CHUNK_ROWS,
    column_types: Mapping[str, Any] | None = None,
    **options: Unpack[Options],
) -> Summary:
    """Upsert a parquet file, directory or dataset, or a CSV file, in bounded memory.

    Reads record batches of ``chunk_rows``, sends full batches of 100, and writes per-row
    results (row, userId, email, flameup_id, flameup_status, flameup_error), in input order,
    to the ``results`` parquet file. With ``state=`` only new or changed people are sent.
    Returns the run's :class:`Summary`. The other keywords are :func:`upsert`'s.

    ``path``, ``state`` and ``results`` are local paths or URIs (``s3://``, ``gs://``,
    ``az://``/``abfs://``, ``file://``; ``pip install flameup-pandas[s3]`` and the like), opened
    with the cloud's standard credentials, ``storage_options=`` (a dict, as pandas takes it) or
    ``filesystem=`` (an fsspec or pyarrow filesystem).

    A CSV cell means what it says: a column is read as numbers only when every cell is
    written exactly as its number is sent (``02134``, ``+1``, ``1.50`` stay text);
    ``column_types={"zip": "int64"}`` names the type of a column instead.
    """
    rows, rules, delivery, run = _rows("upsert_file", path, chunk_rows, options, column_types)
    return run_rows(rows, People(rules, run), delivery=delivery, run=run)


def upsert_arrow(
    source: Any, *, chunk_rows: int = CHUNK_ROWS, **options: Unpack[Options]
) -> Summary:
    """Upsert the rows of any Arrow source, batch by batch, in bounded memory.

    ``source`` is a ``pyarrow.RecordBatchReader``, ``Table`` or dataset, a polars DataFrame or
    LazyFrame, or any object with ``__arrow_c_stream__``: a DuckDB relation, an ADBC cursor's
    ``fetch_record_batch()``, a Delta table's ``to_pyarrow_dataset()``. Everything else is
    :func:`upsert_file`'s: the same keywords, results file, state (reruns send only changes),
    repeated identities across batches (the last row wins), and :class:`Summary`. A stream is
    read once; its row numbers in ``results`` count from 0. For example::

        rel = duckdb.sql("SELECT id AS userId, mail AS email FROM 'crm.parquet'")
        summary = upsert_arrow(rel, results="results.parquet", state="crm.state.parquet")
    """
    rows, rules, delivery, run = _rows("upsert_arrow", source, chunk_rows, options)
    return run_rows(rows, People(rules, run), delivery=delivery, run=run)


def plan(
    df: pd.DataFrame,
    *,
    on_duplicate: Literal["last", "error"] = "last",
    against: Literal["state", "flameup"] = "state",
    sample: int | None = None,
    **options: Unpack[Options],
) -> pd.DataFrame:
    """What :func:`upsert` would do to each row of ``df``, sending nothing.

    Returns ``df`` (same index, order and columns) with ``flameup_action`` (``create``,
    ``update``, ``unchanged``, ``invalid``, ``skipped``), ``flameup_changes`` (for an update,
    the names of the fields that differ from what the state says was last sent; for a
    create, the fields that would be set; None where unknown) and ``flameup_error`` (why a
    row is invalid or skipped). ``plan.flameup.summary()`` counts the actions and the fields
    that change most. The keywords are :func:`upsert`'s; ``state=`` is what makes a plan
    tell creates, updates and unchanged people apart (without one, every person to send
    plans as an update with changes unknown). The state is read, never written. With
    ``complete_source=True`` (the source holds everyone), the summary also counts the people
    of the state that the source no longer holds as ``gone``, with examples; nothing is
    deleted (Flameup documents no delete call).

    ``against="flameup"`` also reads each person a run would send from Flameup (the cost is
    logged first) and compares field by field; ``sample=N`` reads only the first N.
    ``flameup_before``/``flameup_after`` then map each changed field to the value held and the
    value that would be sent; ``state_values=True`` gives them from the state alone (see
    ``docs/guides/plan.md``).

    >>> import pandas as pd, flameup_pandas
    >>> df = pd.DataFrame({"userId": ["u1", "u1", "u2"], "email": ["a@x.io", "a@x.io", "no"]})
    >>> df.flameup.plan()["flameup_action"].tolist()
    ['skipped', 'update', 'invalid']
    """
    rules, delivery, run = split_options("plan", options, on_duplicate=on_duplicate)
    rows = Rows((frame for frame in [df]), total=len(df), labelled=True)
    return plan_rows(rows, rules, delivery, run, (against, sample), df)


def plan_file(
    path: str | Path | ds.Dataset,
    *,
    chunk_rows: int = CHUNK_ROWS,
    column_types: Mapping[str, Any] | None = None,
    against: Literal["state", "flameup"] = "state",
    sample: int | None = None,
    **options: Unpack[Options],
) -> pd.DataFrame:
    """What :func:`upsert_file` would do to each row of a file, sending nothing.

    The file's rows as one frame (numbered from 0, as in a results file) with :func:`plan`'s
    three columns (``against`` and ``sample`` are :func:`plan`'s). The file is read in chunks,
    but the plan holds every row: for a file larger than memory, select the columns you need
    first (``mapping=``) or use the command line's ``flameup-pandas plan FILE --out plan.parquet``.
    """
    rows, rules, delivery, run = _rows("plan_file", path, chunk_rows, options, column_types)
    return plan_rows(rows, rules, delivery, run, (against, sample))


def plan_arrow(
    source: Any,
    *,
    chunk_rows: int = CHUNK_ROWS,
    against: Literal["state", "flameup"] = "state",
    sample: int | None = None,
    **options: Unpack[Options],
) -> pd.DataFrame:
    """What :func:`upsert_arrow` would do to each row of an Arrow source, sending nothing.

    The source's rows as one frame (numbered from 0) with :func:`plan`'s three columns;
    ``against`` and ``sample`` are :func:`plan`'s.
    """
    return plan_rows(*_rows("plan_arrow", source, chunk_rows, options), (against, sample))


def _rows(
    where: str,
    source: Any,
    chunk_rows: int,
    options: Options,
    column_types: Mapping[str, Any] | None = None,
) -> tuple[Rows, Rules, Delivery, Run]:
    """The options of ``where`` and its source's rows (a path opened on the run's storage)."""
    if where.endswith("_arrow") and isinstance(source, str | Path):
        raise ConfigurationError(
            f"{where} takes Arrow data, not a path ({str(source)!r}): "
            f"use {where.replace('_arrow', '_file')}"
        )
    rules, delivery, run = split_options(where, options)
    rows = open_rows(
        source,
        chunk_rows=chunk_rows,
        mapping=rules.mapping,
        column_types=column_types,
        filesystem=run.storage,
    )
    return rows, rules, delivery, run


def against_people(against: str, sample: int | None) -> int:
    """People a plan reads from Flameup: none against the state, else ``sample`` (or all)."""
    if against not in ("state", "flameup"):
        raise ValueError(f"against must be 'state' or 'flameup', got {against!r}")
    if sample is not None and (type(sample) is bool or not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample must be a number of people, at least 1: {sample!r}")
    return 0 if against == "state" else sample or 2**62


def plan_rows(
    rows: Rows,
    rules: Rules,
    delivery: Delivery,
    run: Run,
    against: tuple[str, int | None],
    source: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The plan of opened rows: the engine's dry run into a decisions sink."""
    decisions = PlanRecorder(
        complete_source=run.complete_source,
        keep_people=against_people(*against),
        values=run.state_values,  # Run refuses it without a state
    )
    planning = planned_run(
        run,
        "a plan returns its rows as a frame; results= is for upsert_file "
        "and upsert_arrow (write the plan with .to_parquet(...))",
    )
    run_rows(rows, People(rules, planning, decisions), delivery=delivery, run=planning)
    planned = decisions.frame(source)
    if against[0] == "flameup":
        planned = compare_with_flameup(planned, decisions.sent, delivery)
    if run.complete_source and run.state is not None:
        if decisions.sync is None:  # an empty source: everyone in the state is gone
            with SyncState.open(run.state, filesystem=run.storage) as sync:
                tell(planned, "gone", decisions.gone(sync))
        else:
            tell(planned, "gone", decisions.gone())
    return planned


def planned_run(run: Run, results: str) -> Run:
    """A plan's run: a dry run with no guard; ``results`` says why it takes no results file."""
    if run.results is not None:
        raise ConfigurationError(results)
    if run.complete_source and run.state is None:
        raise ConfigurationError(
            "complete_source=True lists the people of the state the source no longer "
            "holds: pass state="
        )
    return dataclasses.replace(run, dry_run=True, max_changes=None, max_creates=None)


def unlock_state(
    state: str | Path, *, filesystem: Any = None, storage_options: Mapping[str, Any] | None = None
) -> str:
    """Break the lock of a sync state on object storage, left by a run that died.

    A dead run's lock expires on its own after its lease (two minutes); this frees it at
    once. The holder, were it still alive, finds at its next check that it lost the lock and
    writes nothing more, so the state stays consistent either way. Returns what was done, as
    a sentence. A local state needs no unlocking: its lock dies with its process.
    """
    opened = Run(filesystem=filesystem, storage_options=storage_options).storage
    return break_state_lock(state, filesystem=opened)


def read_people(
    *,
    search: str | None = None,
    status: str | None = None,
    progress: bool | Progress = True,
    **options: Unpack[DeliveryOptions],
) -> pd.DataFrame:
    """Every person of the workspace (or those matching ``search``/``status``) as a DataFrame.

    One row per person: ``id``, ``external_id``, ``email``, ``phone``, ``first_name``,
    ``last_name``, ``avatar_url``, ``timezone``, ``locale``, ``status``; ``created_at``,
    ``updated_at``, ``first_seen_at``, ``last_seen_at`` as UTC datetimes; then every custom
    trait as a column of its own (``attributes.<name>`` where a trait is named like a person
    field). A trait a person lacks is missing (``pd.NA``). Pages of 100 are read one after
    another under the key's shared budget and retried like batches; each person comes once,
    even when people are added or removed while paging. The keywords (``api_key``,
    ``base_url``, ``client``, ``rate_limit``, ``retry``, ``timeout``...) are :func:`upsert`'s.

    On Ctrl-C or SIGTERM raises :class:`~flameup_pandas.ReadInterrupted` at once, whose
    ``result`` is the frame of the people read so far.
    """
    check_keywords("read_people", options, READ_KEYWORDS)
    pages = _Pages(Delivery(**options), search, status, progress)
    tables: list[pa.Table] = []
    try:
        with interruptible(), pages.read() as read:
            tables.extend(read)
    except KeyboardInterrupt as exc:
        so_far = _people_frame(tables)
        message = f"{pages.describe(len(so_far))}; .result holds them"
        raise stopped(exc, ReadInterrupted, "read_people", message, so_far) from None
    return _people_frame(tables)


def _people_frame(pages: list[pa.Table]) -> pd.DataFrame:
    pages = pages or [people_table([])]
    schema = unified_schema(t.schema for t in pages)
    return to_frame(pa.concat_tables([conform(t, schema) for t in pages]))


def export_people(
    path: str | Path,
    *,
    search: str | None = None,
    status: str | None = None,
    progress: bool | Progress = True,
    **options: Unpack[DeliveryOptions],
) -> int:
    """Write :func:`read_people`'s table to a parquet file page by page; return the row count.

    Pages are appended to parts as they come (a new part when a page brings a new trait or
    type), then the parts are rewritten into ``path`` under one schema: memory holds a page
    at a time, never the whole table. ``path`` appears only when complete: a read that fails
    part way, or is stopped by Ctrl-C or SIGTERM (:class:`~flameup_pandas.ReadInterrupted`),
    leaves no partial file behind, and any earlier file there untouched.
    """
    check_keywords("export_people", options, READ_KEYWORDS)
    pages = _Pages(Delivery(**options), search, status, progress)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            interruptible(),
            tempfile.TemporaryDirectory(dir=target.parent, prefix=".flameup-export-") as scratch,
        ):
            with pages.read() as tables:
                parts = _write_parts(tables, Path(scratch))
            whole = Path(scratch) / "people.parquet"
            rows = _rewrite(parts, whole)
            with shielded():  # the file appears whole or not at all
                os.replace(whole, target)
            return rows
    except KeyboardInterrupt as exc:
        message = (
            f"{pages.describe()}; nothing was written to {target} (no partial file; a file "
            "there before is left as it was): rerun to export"
        )
        raise stopped(exc, ReadInterrupted, "export_people", message, None) from None


def _write_parts(tables: Iterator[pa.Table], folder: Path) -> list[Path]:
    parts: list[Path] = []
    writer: pq.ParquetWriter | None = None
    with contextlib.ExitStack() as part:
        for table in tables:
            if writer is None or not writer.schema.equals(table.schema):
                part.close()  # the part before, if any
                parts.append(folder / f"part-{len(parts):05d}.parquet")
                writer = part.enter_context(pq.ParquetWriter(parts[-1], table.schema))
            writer.write_table(table)
    return parts


def _rewrite(parts: list[Path], whole: Path) -> int:
    schema = unified_schema([people_table([]).schema, *(pq.read_schema(p) for p in parts)])
    rows = 0
    with pq.ParquetWriter(whole, schema, compression="zstd") as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=10_000):
                writer.write_table(conform(pa.Table.from_batches([batch]), schema))
                rows += batch.num_rows
    return rows


@dataclasses.dataclass
class _Pages:
    """A read's pages of people as tables, counting the people read and the total listed."""

    delivery: Delivery
    search: str | None
    status: str | None
    progress: bool | Progress
    people: int = 0
    total: int | None = None

    def describe(self, people: int | None = None) -> str:
        of = f" of {self.total:,}" if self.total is not None else ""
        return f"{self.people if people is None else people:,}{of} people read"

    @contextlib.contextmanager
    def read(self) -> Iterator[Iterator[pa.Table]]:
        sender = dataclasses.replace(self.delivery, concurrency=1).open()
        reader = PeopleReader(sender.deliverer, search=self.search, status=self.status)
        bars: list[Meter] = []

        def total(n: int) -> None:
            self.total = n
            if not bars:
                bars.append(open_progress(self.progress, n, desc="read", requests=sender.requests))
            bars[0].set_total(n)

        def tables() -> Iterator[pa.Table]:
            for page in reader.pages(on_total=total):
                bars[0].update(page.read)
                if page.people:
                    table = people_table(page.people)
                    self.people += table.num_rows
                    yield table

        try:
            yield tables()
        finally:
            for bar in bars:
                bar.close()
            sender.close()
